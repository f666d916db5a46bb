"""Ensemble methods on synthetic out-of-fold matrices whose right answer is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier

from digit_keras.cli import main
from digit_keras.data.split import stratified_folds
from digit_keras.ensemble import META_LEARNER_NAMES
from digit_keras.ensemble.base_runs import load_base_runs
from digit_keras.ensemble.combine import majority_vote, mean_probabilities
from digit_keras.ensemble.super_learner import (
    META_LEARNERS,
    ConvexWeights,
    DiscreteSuperLearner,
    cross_validated_probabilities,
    make_meta_learner,
    model_weights,
)
from digit_keras.errors import UserError
from digit_keras.scoring import accuracy, log_loss, log_softmax


def _logits_with_accuracy(labels: np.ndarray, share_correct: float, seed: int) -> np.ndarray:
    """Logits that put the top score on the true label for `share_correct` of rows."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), 10))
    top = np.where(
        rng.random(len(labels)) < share_correct, labels, rng.integers(0, 10, len(labels))
    )
    logits[np.arange(len(labels)), top] += 4.0
    return logits


def _stacked(*logits: np.ndarray) -> np.ndarray:
    return np.concatenate([log_softmax(x) for x in logits], axis=1)


def write_cv_run(
    path: Path,
    labels: np.ndarray,
    oof_logits: np.ndarray,
    folds: np.ndarray | None = None,
    test_rows: int = 6,
    arch: str = "basic",
) -> Path:
    """A finished cv run directory made of arrays, as `digit-keras cv` would write it."""
    path.mkdir(parents=True)
    folds = stratified_folds(labels, 2, 0) if folds is None else folds
    np.save(path / "labels.npy", labels)
    np.save(path / "folds.npy", folds)
    np.save(path / "oof_logits.npy", oof_logits.astype(np.float32))
    test = np.random.default_rng(len(str(path))).normal(size=(2, test_rows, 10))
    np.save(path / "test_logits.npy", test.astype(np.float32))
    (path / "cv.json").write_text(json.dumps({"arch": arch, "folds": 2, "mode": "kfold"}))
    (path / "metrics.json").write_text("{}")
    return path


def test_mean_equals_the_hand_computed_average():
    a = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    b = np.array([[0.1, 0.6, 0.3], [0.3, 0.3, 0.4]])
    expected = np.array([[0.4, 0.4, 0.2], [0.2, 0.2, 0.6]])
    np.testing.assert_allclose(mean_probabilities(np.stack([a, b])), expected)


def test_vote_takes_the_majority_and_breaks_ties_by_mean_probability():
    confident_minority = np.array([[0.99, 0.01, 0.0]])
    weak_majority = np.array([[0.3, 0.4, 0.3]])
    # Two weak votes for class 1 beat one confident vote for class 0 (mean prob favours 0).
    assert majority_vote(np.stack([confident_minority, weak_majority, weak_majority])) == [1]
    # One vote each for 0 and 2: class 2's mean probability (0.5) beats class 0's (0.45).
    first = np.array([[0.50, 0.10, 0.40]])
    second = np.array([[0.40, 0.00, 0.60]])
    assert majority_vote(np.stack([first, second])) == [2]


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 10, 2000)


def test_a_perfect_base_model_gets_almost_all_the_weight(labels):
    perfect = 8.0 * np.eye(10)[labels]
    noisy = [_logits_with_accuracy(labels, share, seed) for seed, share in ((2, 0.8), (3, 0.7))]
    features = _stacked(noisy[0], perfect, noisy[1])
    convex = ConvexWeights().fit(features, labels)
    assert convex.weights_[1] > 0.95
    assert np.all(convex.weights_ >= 0) and convex.weights_.sum() == pytest.approx(1.0)
    assert list(DiscreteSuperLearner().fit(features, labels).weights_) == [0, 1, 0]
    logistic = make_meta_learner("logistic").fit(features, labels)
    assert np.argmax(model_weights(logistic)) == 1
    for name in ("logistic", "convex", "discrete"):
        held_out = cross_validated_probabilities(make_meta_learner(name), features, labels)
        assert accuracy(held_out, labels) > 0.99, name


def test_convex_weights_mix_two_complementary_models(labels):
    """Two 80% models that err on different rows: the best mixture uses both."""
    a = _logits_with_accuracy(labels, 0.8, seed=4)
    b = _logits_with_accuracy(labels, 0.8, seed=5)
    weights = ConvexWeights().fit(_stacked(a, b), labels).weights_
    assert 0.3 < weights[0] < 0.7 and weights.sum() == pytest.approx(1.0)


def test_super_learner_scores_only_rows_its_meta_learner_was_not_fitted_on(labels):
    """A 1-nearest-neighbour meta-learner memorises its fitting rows: on them it is always
    right; on random features it cannot beat chance on rows it has not seen."""
    features = np.random.default_rng(6).normal(size=(len(labels), 20))
    memoriser = KNeighborsClassifier(n_neighbors=1)
    assert accuracy(memoriser.fit(features, labels).predict_proba(features), labels) == 1.0
    held_out = cross_validated_probabilities(memoriser, features, labels, seed=0)
    assert accuracy(held_out, labels) < 0.2


def test_stratified_folds_are_balanced_seeded_and_cover_every_row(labels):
    folds = stratified_folds(labels, 5, seed=3)
    assert np.array_equal(folds, stratified_folds(labels, 5, seed=3))
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=4))
    sizes = np.bincount(folds, minlength=5)
    assert sizes.sum() == len(labels) and sizes.max() - sizes.min() <= 1
    for digit in range(10):
        per_fold = np.bincount(folds[labels == digit], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1


def test_ensemble_command_writes_table_report_and_submission(tmp_path, labels, capsys):
    good = write_cv_run(tmp_path / "good", labels, _logits_with_accuracy(labels, 0.9, 7))
    fair = write_cv_run(tmp_path / "fair", labels, _logits_with_accuracy(labels, 0.7, 8))
    assert main(["ensemble", str(good), str(fair), "--method", "vote", "--out", "e.csv"]) == 0
    out = capsys.readouterr().out
    for name in ("good (basic)", "fair (basic)", "mean", "vote", "super:logistic",
                 "super:convex", "super:discrete"):  # fmt: skip
        assert f"\n{name} " in out, name
    assert tuple(META_LEARNERS) == META_LEARNER_NAMES  # the CLI offers exactly these
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["submission_method"] == "vote" and report["oof_rows"] == len(labels)
    scores = {s["name"]: s for s in report["scores"]}
    assert scores["good (basic)"]["accuracy"] == pytest.approx(
        accuracy(_logits_with_accuracy(labels, 0.9, 7), labels)
    )
    assert scores["super:discrete"]["weights"] == [1.0, 0.0]
    assert (tmp_path / "e.txt").read_text() in out
    lines = (tmp_path / "e.csv").read_text().splitlines()
    assert lines[0] == "ImageId,Label" and len(lines) == 7


def test_also_without_scores_every_row_of_the_table_on_the_rows_a_list_does_not_name(
    tmp_path, labels, capsys
):
    """A label audit's rows count against every model; the second score leaves them out."""
    wrong = np.array([3, 17, 40])  # rows whose "labels" the good model disagrees with
    logits = np.eye(10)[labels] * 5.0
    logits[wrong] = np.roll(logits[wrong], 1, axis=1)
    good = write_cv_run(tmp_path / "good", labels, logits)
    fair = write_cv_run(tmp_path / "fair", labels, _logits_with_accuracy(labels, 0.7, 8))
    pd.DataFrame({"row": [*wrong, len(labels) + 5]}).to_csv(tmp_path / "audit.csv", index=False)
    argv = ["ensemble", str(good), str(fair), "--method", "mean", "--out", "e.csv"]
    assert main([*argv, "--also-without", "audit.csv"]) == 0
    assert f"on {len(labels) - 3:,}" in capsys.readouterr().out
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["left_out_rows"] == wrong.tolist()  # the row past train.csv's end is no row
    scores = {s["name"]: s for s in report["scores"]}
    assert scores["good (basic)"]["accuracy"] == 1 - 3 / len(labels)
    assert scores["good (basic)"]["accuracy_without_left_out"] == 1.0
    kept = np.setdiff1d(np.arange(len(labels)), wrong)
    fair_logits = _logits_with_accuracy(labels, 0.7, 8)
    assert scores["fair (basic)"]["accuracy_without_left_out"] == pytest.approx(
        accuracy(fair_logits[kept], labels[kept])
    )
    assert main([*argv, "--also-without", "missing.csv"]) == 2
    assert "missing.csv: not a label audit" in capsys.readouterr().err
    pd.DataFrame({"row": np.arange(len(labels))}).to_csv(tmp_path / "all.csv", index=False)
    assert main([*argv, "--also-without", "all.csv"]) == 2
    assert "names every out-of-fold row" in capsys.readouterr().err


def test_runs_whose_rows_or_folds_differ_are_refused(tmp_path, labels, capsys):
    logits = _logits_with_accuracy(labels, 0.9, 9)
    base = write_cv_run(tmp_path / "base", labels, logits)
    write_cv_run(tmp_path / "other_folds", labels, logits, folds=stratified_folds(labels, 2, 1))
    write_cv_run(tmp_path / "other_rows", labels[:-1], logits[:-1])
    unfinished = write_cv_run(tmp_path / "unfinished", labels, logits)
    (unfinished / "metrics.json").unlink()
    cases = {
        "other_folds": "hold out different folds",
        "other_rows": "were trained on different rows",
        "unfinished": "has not finished",
        "base": "listed twice",
        "nowhere": "not a cv run",
    }
    for name, message in cases.items():
        with pytest.raises(UserError, match=message):
            load_base_runs([str(base), str(tmp_path / name)])
        assert main(["ensemble", str(base), str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not Path("submissions").exists()


def test_holdout_runs_restrict_the_ensemble_to_their_rows(tmp_path, labels):
    folds = stratified_folds(labels, 2, 0)
    logits = _logits_with_accuracy(labels, 0.9, 10)
    holdout_logits = np.where((folds == 0)[:, None], logits, np.nan)
    kfold = write_cv_run(tmp_path / "kfold", labels, logits)
    holdout = write_cv_run(tmp_path / "holdout", labels, holdout_logits)
    _, rows = load_base_runs([str(kfold), str(holdout)])
    assert np.array_equal(rows, np.flatnonzero(folds == 0))


def test_member_files_stand_in_for_their_runs(tmp_path, labels, capsys):
    """A member file (float16, no labels) ensembles like its run, given the training labels."""
    from digit_keras.ensemble.base_runs import load_run
    from digit_keras.members import save_member

    good = write_cv_run(tmp_path / "good", labels, _logits_with_accuracy(labels, 0.9, 7))
    fair = write_cv_run(tmp_path / "fair", labels, _logits_with_accuracy(labels, 0.7, 8))
    save_member(load_run(good), tmp_path / "good-renamed.npz")
    save_member(load_run(good), good / "member.npz")
    runs, _ = load_base_runs([str(good), str(fair)])
    files = [str(tmp_path / "good-renamed.npz"), str(good / "member.npz")]
    mixed, _ = load_base_runs([*files, str(fair)], labels=lambda: labels)
    assert [run.name for run in mixed] == ["good-renamed", "good", "fair"]  # file, else its run
    assert mixed[0].arch == "basic"
    np.testing.assert_array_equal(mixed[0].folds, runs[0].folds)
    np.testing.assert_allclose(
        mixed[0].oof_log_probabilities(slice(None)), runs[0].oof_log_probabilities(slice(None)),
        atol=2e-2, rtol=2e-3,
    )  # fmt: skip
    np.testing.assert_allclose(
        mixed[0].test_log_probabilities(), runs[0].test_log_probabilities(), atol=2e-2, rtol=2e-3
    )
    assert accuracy(mixed[0].oof_logits, labels) == accuracy(runs[0].oof_logits, labels)
    shuffled = np.roll(labels, 1)
    with pytest.raises(UserError, match="other training rows"):
        load_base_runs([str(tmp_path / "good-renamed.npz"), str(fair)], labels=lambda: shuffled)
    (tmp_path / "bad.npz").write_bytes(b"not a member")
    with pytest.raises(UserError, match="not a member file"):
        load_base_runs([str(tmp_path / "bad.npz"), str(fair)], labels=lambda: labels)


def test_logistic_meta_learner_sharpens_an_under_confident_pool(labels):
    """Its coefficients are one per model and may sum above 1, which convex weights cannot."""
    timid = [0.25 * _logits_with_accuracy(labels, 0.9, seed) for seed in (1, 2)]
    features = _stacked(*timid)
    logistic = make_meta_learner("logistic").fit(features, labels)
    assert logistic.coef_.shape == (2,) and logistic.coef_.sum() > 2.0
    held_out = cross_validated_probabilities(make_meta_learner("logistic"), features, labels)
    mixed = cross_validated_probabilities(ConvexWeights(), features, labels)
    assert log_loss(held_out, labels) < log_loss(mixed, labels) - 0.1
    assert accuracy(held_out, labels) >= max(accuracy(x, labels) for x in timid)


def test_logistic_meta_learner_never_weighs_a_member_negatively(labels):
    """`echo` is `a` less half of `c`: a negative weight on it would add `c` back; the bounded
    fit leaves it out instead, so no member is ever trusted in reverse."""
    a = _logits_with_accuracy(labels, 0.8, seed=6)
    c = _logits_with_accuracy(labels, 0.8, seed=7)
    echo = a - 0.5 * c
    logistic = make_meta_learner("logistic").fit(_stacked(a, echo), labels)
    assert logistic.coef_[0] > 0.5 and logistic.coef_[1] == 0.0
