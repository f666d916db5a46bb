"""Pseudo-labels: a model scored on held-out rows learns only from teacher models that never
trained on those rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digit_keras.cli import main
from digit_keras.errors import UserError
from digit_keras.members import BaseRun, save_member
from digit_keras.training.pseudo_labels import pseudo_labels

ROWS, TEST = 20, 6
LABELS = np.arange(ROWS) % 10


def _logits(digits: list[int], sure: list[bool]) -> np.ndarray:
    """Test-set logits that favour `digits`: by far where `sure`, barely elsewhere."""
    return np.eye(10)[digits] * np.where(sure, 12.0, 0.5)[:, None]


@pytest.fixture
def teacher(tmp_path):
    """A finished 2-fold cv run in files: fold 0's model (trained on the odd rows) calls every
    test image a 3, fold 1's (trained on the even rows) a 7; the last image unsure in both."""
    run = tmp_path / "teacher"
    run.mkdir()
    (run / "cv.json").write_text(json.dumps({"mode": "kfold", "folds": 2, "trained_folds": 2}))
    np.save(run / "labels.npy", LABELS)
    sure = [True] * (TEST - 1) + [False]
    for fold, (trained, digit) in enumerate(((1, 3), (0, 7))):
        (run / f"fold-{fold}").mkdir()
        np.save(run / f"fold-{fold}" / "train_rows.npy", np.arange(trained, ROWS, 2))
        np.save(run / f"fold-{fold}" / "test_logits.npy", _logits([digit] * TEST, sure))
    return run


def test_a_model_learns_only_from_teachers_that_never_trained_on_its_held_out_rows(teacher):
    even, odd = np.arange(0, ROWS, 2), np.arange(1, ROWS, 2)
    rows, labels = pseudo_labels(teacher, LABELS, even, 0.99, TEST)  # fold 0: fold 0's teacher
    np.testing.assert_array_equal(rows, np.arange(TEST - 1))  # the unsure image left out
    assert (labels == 3).all()
    rows, labels = pseudo_labels(teacher, LABELS, odd[:3], 0.99, TEST)  # odd rows: not fold 0's
    assert (labels == 7).all() and len(rows) == TEST - 1
    rows, _ = pseudo_labels(teacher, LABELS, np.array([], int), 0.4, TEST)  # none held out
    assert len(rows) == TEST - 1  # both teach; they disagree: each sure image gets about half
    with pytest.raises(UserError, match="every model of the teacher trained on rows"):
        pseudo_labels(teacher, LABELS, np.array([0, 1]), 0.99, TEST)
    with pytest.raises(UserError, match="predicted 6 test images, not the 7 given"):
        pseudo_labels(teacher, LABELS, even, 0.99, TEST + 1)
    with pytest.raises(UserError, match="other rows than the data given"):
        pseudo_labels(teacher, (LABELS + 1) % 10, even, 0.99, TEST)
    with pytest.raises(UserError, match="nothing to teach"):
        pseudo_labels(teacher / "fold-0", LABELS, even, 0.99, TEST)


def test_member_files_teach_only_students_whose_held_out_rows_they_all_held_out(tmp_path):
    """A member file records only its out-of-fold rows: one fold's member never trained on them;
    a k-fold run's member mixes models that between them trained on every row."""
    folds = np.arange(ROWS) % 2
    even, odd = np.flatnonzero(folds == 0), np.flatnonzero(folds == 1)
    sure = [True] * (TEST - 1) + [False]

    def member(name: str, predicted: np.ndarray, digit: int) -> None:
        oof = np.full((ROWS, 10), np.nan)
        oof[predicted] = np.eye(10)[LABELS[predicted]] * 5.0
        test = _logits([digit] * TEST, sure)[None]
        save_member(BaseRun(name, "basic", LABELS, folds, oof, test), tmp_path / f"{name}.npz")

    member("bag-a", even, 3)  # a fold-0 holdout or bag member: never trained on fold 0
    member("bag-b", even, 3)
    member("kfold", np.arange(ROWS), 7)  # its fold models trained on every row between them
    rows, labels = pseudo_labels(tmp_path / "bag-a.npz", LABELS, even[:4], 0.99, TEST)
    assert len(rows) == TEST - 1 and (labels == 3).all()
    rows, labels = pseudo_labels(tmp_path, LABELS, even, 0.99, TEST)  # the folder: two teach
    assert len(rows) == TEST - 1 and (labels == 3).all()  # the k-fold member did not
    none = np.array([], int)  # a student that holds nothing out learns from all three:
    rows, labels = pseudo_labels(tmp_path, LABELS, none, 0.6, TEST)  # 3 at about 2/3
    assert len(rows) == TEST - 1 and (labels == 3).all()
    assert len(pseudo_labels(tmp_path, LABELS, none, 0.7, TEST)[0]) == 0
    with pytest.raises(UserError, match="every model of the teacher trained on rows"):
        pseudo_labels(tmp_path / "bag-a.npz", LABELS, odd[:1], 0.99, TEST)
    with pytest.raises(UserError, match="every model of the teacher trained on rows"):
        pseudo_labels(tmp_path / "kfold.npz", LABELS, even[:1], 0.99, TEST)
    with pytest.raises(UserError, match="other training rows"):
        pseudo_labels(tmp_path / "bag-a.npz", (LABELS + 1) % 10, even, 0.99, TEST)
    with pytest.raises(UserError, match="no such teacher"):
        pseudo_labels(tmp_path / "missing.npz", LABELS, even, 0.99, TEST)


@pytest.mark.slow
def test_cv_trains_each_fold_on_its_own_teachers_pseudo_labels(data_dir, tmp_path, capsys):
    common = ["--data", str(data_dir), "--epochs", "1", "--batch-size", "32"]
    common += ["--set", "model.width=4", "--folds", "2"]
    assert main(["cv", *common, "--out", "teacher"]) == 0
    student = ["--pseudo-labels", "teacher", "--set", "data.pseudo_threshold=0.05"]
    assert main(["cv", *common, "--holdout", *student, "--out", "student"]) == 0
    assert "learning from 210 images, 50 of them test images labelled by" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "student" / "fold-0" / "metrics.json").read_text())
    assert metrics["pseudo_labelled_images"] == 50  # every test image, at this threshold
    assert metrics["train_images"] == 160 + 50
    fold = tmp_path / "student" / "fold-0"
    trained = np.load(fold / "train_rows.npy")
    assert len(trained) == 160 and trained.max() < 320  # train.csv's rows only
    learnt = np.load(fold / "pseudo_labels.npy")  # (test row, label) of each image it learnt
    assert learnt.shape == (50, 2) and np.array_equal(learnt[:, 0], np.arange(50))
    config = (tmp_path / "student" / "config.toml").read_text()
    assert f'pseudo_labels = "{tmp_path / "teacher"}"' in config
    # The teacher's fold-0 model as a member file (what gets committed) teaches the same way.
    member = ["--pseudo-labels", "teacher/fold-0/member.npz", *student[2:]]
    assert main(["cv", *common, "--holdout", *member, "--out", "from-member"]) == 0
    metrics = json.loads((tmp_path / "from-member" / "fold-0" / "metrics.json").read_text())
    assert metrics["pseudo_labelled_images"] == 50

    # Resumed after its teacher changed (other test images or labels): refused, not mixed.
    (tmp_path / "student" / "metrics.json").unlink()
    for name in ("model.keras", "test_logits.npy"):
        (fold / name).unlink()
    np.save(fold / "pseudo_labels.npy", learnt[1:])
    capsys.readouterr()
    assert main(["cv", "--resume", "student", "--data", str(data_dir)]) == 2
    assert "started on other training rows than this version draws (pseudo_labels.npy)" in (
        capsys.readouterr().err
    )

    # A fit's 10% holdout cuts across both teacher folds: no teacher is allowed, one line.
    capsys.readouterr()
    assert main(["fit", *common[:-2], "--pseudo-labels", "teacher", "--out", "fit"]) == 2
    assert "every model of the teacher trained on rows" in capsys.readouterr().err
    assert not (tmp_path / "fit").exists()
