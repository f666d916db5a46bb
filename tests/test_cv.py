"""`digit-keras cv` end to end on tiny synthetic data, then every ensemble method on its runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from digit_keras.cli import main
from digit_keras.config import load_config, to_toml
from digit_keras.data.split import stratified_folds
from digit_keras.errors import UserError
from digit_keras.keras_inference import load_model, predict_logits
from digit_keras.scoring import accuracy, mean_log_probabilities
from digit_keras.training.cv import seed_statistics
from tests.conftest import synthetic_digits

TINY_CV = ["--folds", "2", "--epochs", "1", "--batch-size", "32"]


def _cv(data_dir, out, *extra: str) -> int:
    """A 2-fold cv of a tiny basic CNN (other --arch values need their own size --set)."""
    extra = extra or ("--set", "model.width=4")
    return main(["cv", "--data", str(data_dir), *TINY_CV, "--out", str(out), *extra])


@pytest.mark.slow
def test_cv_writes_out_of_fold_logits_that_ensembles_combine(data_dir, tmp_path, capsys):
    assert _cv(data_dir, "a") == 0
    assert _cv(data_dir, "b", "--set", "model.width=6", "--seed", "1") == 0
    assert _cv(data_dir, "h", "--holdout", "--tta", "--set", "model.width=4", "--seed", "2") == 0
    _, labels = synthetic_digits(320)

    run = tmp_path / "a"
    assert np.array_equal(np.load(run / "folds.npy"), stratified_folds(labels, 2, 0))
    assert np.array_equal(np.load(run / "labels.npy"), labels)
    # Another --seed trains other models on the same folds, so the two runs ensemble.
    assert np.array_equal(np.load(tmp_path / "b" / "folds.npy"), np.load(run / "folds.npy"))
    oof = np.load(run / "oof_logits.npy")
    assert oof.shape == (320, 10) and not np.isnan(oof).any()
    assert np.load(run / "test_logits.npy").shape == (2, 50, 10)
    for fold in (0, 1):
        assert (run / f"fold-{fold}" / "model.keras").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["oof_rows"] == 320 and [f["rows"] for f in metrics["folds"]] == [160, 160]
    assert metrics["oof_accuracy"] == pytest.approx(accuracy(oof, labels))

    holdout = tmp_path / "h"
    holdout_oof = np.load(holdout / "oof_logits.npy")
    assert np.array_equal(~np.isnan(holdout_oof[:, 0]), np.load(run / "folds.npy") == 0)
    assert np.load(holdout / "test_logits.npy").shape == (1, 50, 10)
    assert not (holdout / "fold-1").exists()
    # --tta: the saved logits are the fold model's test-time augmented ones
    assert json.loads((holdout / "cv.json").read_text())["tta"] is True
    images, _ = synthetic_digits(320)
    fold_model = load_model(holdout / "fold-0" / "model.keras")
    held_out = images[np.load(run / "folds.npy") == 0][..., None]
    expected = predict_logits(fold_model, held_out, tta=True)
    np.testing.assert_allclose(holdout_oof[~np.isnan(holdout_oof[:, 0])], expected, atol=1e-4)

    capsys.readouterr()
    for method in ("mean", "vote", "super"):
        assert main(["ensemble", "a", "b", "--method", method, "--out", f"{method}.csv"]) == 0
        lines = (tmp_path / f"{method}.csv").read_text().splitlines()
        assert lines[0] == "ImageId,Label" and len(lines) == 51
    assert main(["ensemble", "a", "b", "--every-row", "rows", "--out", "super.csv"]) == 0
    expected = {"a", "b", "mean", "vote", "super-logistic", "super-convex", "super-discrete"}
    assert {path.stem for path in (tmp_path / "rows").iterdir()} == expected
    assert (tmp_path / "rows" / "super-convex.csv").read_text() == (  # the default meta-learner
        tmp_path / "super.csv"
    ).read_text()
    assert main(["ensemble", "a", "b", "h", "--meta", "convex", "--out", "mixed.csv"]) == 0
    assert json.loads((tmp_path / "mixed.json").read_text())["oof_rows"] == 160
    # The runs' member files, with the training labels from the CSV, give the same ensemble.
    members = ["a/member.npz", "b/member.npz", "h/member.npz", "--data", str(data_dir)]
    assert main(["ensemble", *members, "--meta", "convex", "--out", "from-members.csv"]) == 0
    agree = [
        a == b
        for a, b in zip(
            (tmp_path / "from-members.csv").read_text().splitlines(),
            (tmp_path / "mixed.csv").read_text().splitlines(),
            strict=True,
        )
    ]
    assert sum(agree) >= len(agree) - 1  # float16 may flip one near-tie at most


@pytest.mark.slow
def test_killed_cv_resumes_at_its_first_unfinished_fold(data_dir, tmp_path, capsys):
    assert _cv(data_dir, "run", "--deterministic", "--set", "model.width=4") == 0
    run = tmp_path / "run"
    finished_oof = np.load(run / "oof_logits.npy")
    fold0_logits = (run / "fold-0" / "test_logits.npy").stat().st_mtime_ns

    # Killed while training fold 1: fold 0 is kept, fold 1 trains again from the same seed.
    (run / "metrics.json").unlink()
    shutil.rmtree(run / "fold-1")
    capsys.readouterr()
    assert main(["cv", "--resume", "run", "--data", str(data_dir)]) == 0
    err = capsys.readouterr().err
    assert "training in run/fold-1" in err and "fold-0" not in err
    assert (run / "fold-0" / "test_logits.npy").stat().st_mtime_ns == fold0_logits
    np.testing.assert_allclose(np.load(run / "oof_logits.npy"), finished_oof, atol=1e-5)

    # Killed after fold 1's model was saved but before its logits: predict, do not retrain.
    (run / "metrics.json").unlink()
    (run / "fold-1" / "test_logits.npy").unlink()
    assert main(["cv", "--resume", "run", "--data", str(data_dir)]) == 0
    assert "training" not in capsys.readouterr().err
    assert (run / "fold-1" / "test_logits.npy").is_file()

    assert main(["cv", "--resume", "run", "--data", str(data_dir)]) == 2
    assert "already finished" in capsys.readouterr().err


@pytest.mark.slow
def test_bag_members_train_on_their_own_rows_never_on_the_held_out_share(
    data_dir, tmp_path, capsys
):
    assert _cv(data_dir, "bag", "--bag", "3", "--set", "model.width=4") == 0
    run = tmp_path / "bag"
    folds = np.load(run / "folds.npy")
    held_out = np.flatnonzero(folds == 0)  # the share no member trains on: fold 0 of 2
    rows = [np.load(run / f"member-{member}" / "train_rows.npy") for member in range(3)]
    for trained in rows:
        assert len(np.unique(trained)) == len(trained) == 144  # 90% of the other 160 rows
        assert not np.isin(trained, held_out).any()
    assert not any(np.array_equal(rows[a], rows[b]) for a, b in ((0, 1), (0, 2), (1, 2)))

    # The bag predicts the members' mean probability on the held-out share, and nothing else.
    members = np.stack([np.load(run / f"member-{m}" / "oof_logits.npy") for m in range(3)])
    oof = np.load(run / "oof_logits.npy")
    assert np.array_equal(~np.isnan(oof[:, 0]), folds == 0)
    np.testing.assert_allclose(oof[held_out], mean_log_probabilities(members), atol=1e-5)
    assert np.load(run / "test_logits.npy").shape == (3, 50, 10)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["mode"] == "bag" and [m["member"] for m in metrics["members"]] == [0, 1, 2]
    by_size = metrics["bag_accuracy_by_size"]
    assert by_size[0] == metrics["members"][0]["accuracy"]
    assert by_size[-1] == pytest.approx(metrics["oof_accuracy"])
    assert "bag members alone:" in capsys.readouterr().out

    # The bag joins ensembles on fold 0; its members' own files rebuild its mean.
    files = [f"bag/member-{member}/member.npz" for member in range(3)]
    assert main(["ensemble", "bag", files[0], "--data", str(data_dir), "--out", "mixed.csv"]) == 0
    assert json.loads((tmp_path / "mixed.json").read_text())["oof_rows"] == 160
    argv = ["ensemble", *files, "--data", str(data_dir), "--method", "mean", "--out", "mean.csv"]
    assert main(argv) == 0
    written = np.loadtxt(tmp_path / "mean.csv", delimiter=",", skiprows=1, dtype=int)[:, 1]
    expected = mean_log_probabilities(np.load(run / "test_logits.npy")).argmax(axis=1)
    assert np.sum(written != expected) <= 1  # float16 may flip one near-tie at most

    # Killed while training member 2: members 0 and 1 are kept, member 2 draws the same rows.
    (run / "metrics.json").unlink()
    shutil.rmtree(run / "member-2")
    capsys.readouterr()
    assert main(["cv", "--resume", "bag", "--data", str(data_dir)]) == 0
    err = capsys.readouterr().err
    assert "member 3/3: training in bag/member-2" in err and err.count("training") == 1
    assert np.array_equal(np.load(run / "member-2" / "train_rows.npy"), rows[2])

    # A member started on other rows (another version's draw) is never resumed on these.
    (run / "metrics.json").unlink()
    for name in ("model.keras", "test_logits.npy"):
        (run / "member-2" / name).unlink()
    np.save(run / "member-2" / "train_rows.npy", rows[1])
    assert main(["cv", "--resume", "bag", "--data", str(data_dir)]) == 2
    assert "member-2: this model started on other training rows" in capsys.readouterr().err
    assert np.array_equal(np.load(run / "member-2" / "train_rows.npy"), rows[1])


def test_cv_rejects_bad_folds_and_config_flags_on_resume(data_dir, tmp_path, capsys):
    assert _cv(data_dir, "broken", "--set", "model.depth=3") == 2
    assert "model 'basic' has no option depth" in capsys.readouterr().err
    assert not (tmp_path / "broken").exists()
    assert main(["cv", "--data", str(data_dir), "--folds", "1"]) == 2
    assert "--folds must be at least 2" in capsys.readouterr().err
    # A process for one fold of a shared run makes the folder only once it can start.
    shared = ["--out", str(tmp_path / "shared")]
    assert main(["cv", "--data", str(data_dir), "--folds", "3", "--fold", "3", *shared]) == 2
    assert "--fold must be 0 to 2 in a 3-fold run" in capsys.readouterr().err
    assert main(["cv", "--data", str(tmp_path / "no-data"), "--fold", "0", *shared]) == 2
    assert "no train.csv" in capsys.readouterr().err
    assert not (tmp_path / "shared").exists()
    assert main(["cv", "--resume", "nothing"]) == 2
    assert "no cv.json here" in capsys.readouterr().err
    assert main(["cv", "--resume", "nothing", "--folds", "3", "--holdout"]) == 2
    assert "drop --folds, --holdout" in capsys.readouterr().err
    assert main(["cv", "--data", str(data_dir), "--bag", "3", "--holdout"]) == 2
    assert "--bag already holds out fold 0 only; drop --holdout" in capsys.readouterr().err
    assert main(["cv", "--data", str(data_dir), "--bag", "3", "--bag-fraction", "1"]) == 2
    assert "--bag-fraction must be between 0 and 1, got 1" in capsys.readouterr().err
    assert main(["cv", "--data", str(data_dir), "--bag-fraction", "0.5"]) == 2
    assert "--bag-fraction needs --bag N" in capsys.readouterr().err
    assert main(["cv", "--data", str(data_dir), "--bag", "2", "--fold", "2", *shared]) == 2
    assert "--fold must be 0 to 1 in a 2-member run" in capsys.readouterr().err
    assert not (tmp_path / "saved_models").exists()


@pytest.mark.slow
def test_cv_over_seeds_reports_the_spread_of_one_recipe_on_one_split(data_dir, tmp_path, capsys):
    assert _cv(data_dir, "seeds", "--holdout", "--seeds", "0,1", "--set", "model.width=4") == 0
    runs = [tmp_path / "seeds" / f"seed-{seed}" for seed in (0, 1)]
    assert np.array_equal(np.load(runs[0] / "folds.npy"), np.load(runs[1] / "folds.npy"))
    scores = [json.loads((run / "metrics.json").read_text())["oof_accuracy"] for run in runs]
    summary = json.loads((tmp_path / "seeds" / "seeds.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["oof_accuracy"]["values"] == scores
    assert summary["oof_accuracy"]["mean"] == pytest.approx(np.mean(scores))
    assert summary["oof_accuracy"]["std"] == pytest.approx(np.std(scores, ddof=1))
    assert "over seeds 0, 1: out-of-fold accuracy" in capsys.readouterr().out

    # Runs that differ in more than the seed are not one recipe's spread.
    other = tmp_path / "other"
    shutil.copytree(runs[1], other)
    config = load_config(other / "config.toml")
    config.model["width"] = 6
    (other / "config.toml").write_text(to_toml(config))
    with pytest.raises(UserError, match="differ in more than their seed"):
        seed_statistics([runs[0], other])
    assert main(["cv", "--data", str(data_dir), "--seeds", "0,0"]) == 2
    assert "need two or more different seeds" in capsys.readouterr().err
    seeded_fold = ["cv", "--data", str(data_dir), "--seeds", "0,1", "--fold", "0"]
    assert main([*seeded_fold, "--out", str(tmp_path / "one-fold")]) == 2
    assert "--fold trains one fold of one run" in capsys.readouterr().err
    assert not (tmp_path / "one-fold").exists()
    # A seeds run that fails before any training leaves no folder behind.
    unfillable = ["cv", "--data", str(data_dir), "--seeds", "0,1", "--batch-size", "100000"]
    assert main([*unfillable, "--out", str(tmp_path / "failed")]) == 2
    assert "cannot fill one global batch" in capsys.readouterr().err
    assert not (tmp_path / "failed").exists()


@pytest.mark.slow
def test_folds_trained_by_separate_processes_merge_into_one_run(data_dir, tmp_path, capsys):
    """As on two machines sharing a folder: each process trains one fold; the last merges."""
    shared = tmp_path / "shared"

    def fold_process(fold: int) -> subprocess.Popen:
        argv = ["cv", "--data", str(data_dir), *TINY_CV, "--set", "model.width=4"]
        argv += ["--fold", str(fold), "--out", str(shared)]
        code = f"import sys; from digit_keras.cli import main; sys.exit(main({argv!r}))"
        return subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    processes = [fold_process(fold) for fold in (0, 1)]
    try:
        outputs = [process.communicate(timeout=240)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert [process.returncode for process in processes] == [0, 0], outputs
    metrics = json.loads((shared / "metrics.json").read_text())
    assert metrics["oof_rows"] == 320 and [f["fold"] for f in metrics["folds"]] == [0, 1]
    assert not np.isnan(np.load(shared / "oof_logits.npy")).any()
    assert np.load(shared / "test_logits.npy").shape == (2, 50, 10)

    # A fold of another config cannot join the run.
    (shared / "metrics.json").unlink()
    shutil.rmtree(shared / "fold-1")
    args = ["cv", "--data", str(data_dir), *TINY_CV, "--set", "model.width=6", "--fold", "1"]
    assert main([*args, "--out", str(shared)]) == 2
    assert "holds folds of another config (differs in config.toml)" in capsys.readouterr().err
    assert (shared / "fold-0" / "model.keras").is_file()  # the refusal deleted nothing
    assert main(["cv", "--data", str(data_dir), "--fold", "0"]) == 2
    assert "--fold needs --out DIR" in capsys.readouterr().err
