"""The label audit finds planted label flips, `audit` lists them by train.csv row, and
`--drop-rows` keeps the listed rows out of training while they stay held out and scored."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from digit_keras.cli import main
from digit_keras.config import TrainConfig, apply_overrides
from digit_keras.data.split import stratified_folds
from digit_keras.errors import UserError
from digit_keras.label_audit import read_audit, suspect_labels
from digit_keras.members import BaseRun, save_member
from digit_keras.training.session import training_data
from tests.conftest import synthetic_digits, tiny_overrides


def _flip(labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    noisy = labels.copy()
    noisy[rows] = (labels[rows] + 1 + rows % 9) % 10  # another digit, never the true one
    return noisy


def test_the_audit_finds_planted_label_flips_from_out_of_fold_probabilities():
    images, labels = synthetic_digits(600)
    planted = np.random.default_rng(0).choice(600, 15, replace=False)
    noisy = _flip(labels, planted)
    pixels = images.reshape(600, -1) / 255.0
    probabilities = cross_val_predict(
        LogisticRegression(max_iter=300), pixels, noisy, cv=5, method="predict_proba"
    )
    suspects = suspect_labels(noisy, probabilities)
    found = np.isin(planted, suspects["row"])
    assert found.all(), f"found {found.sum()} of 15 planted flips"
    assert len(suspects) <= 16, "flagged correctly labelled rows"
    flips = suspects[suspects["row"].isin(planted)]
    np.testing.assert_array_equal(flips["suggested"], labels[flips["row"]])  # the true digit
    np.testing.assert_array_equal(suspects["label"], noisy[suspects["row"]])
    assert suspects["label_probability"].is_monotonic_increasing  # worst first


def test_audit_lists_suspects_by_train_csv_row_and_drop_rows_reads_the_list(
    data_dir, tmp_path, capsys
):
    """A holdout member predicts fold 0 only: the list names train.csv rows, not fold-0 rows."""
    _, labels = synthetic_digits(320)  # what data_dir's train.csv holds
    folds = stratified_folds(labels, 5, 0)
    held_out = np.flatnonzero(folds == 0)
    disputed = held_out[[3, 17, 40]]
    believed = _flip(labels, disputed)  # what the "model" believes each row shows
    logits = np.full((320, 10), np.nan, np.float32)
    logits[held_out] = np.log(np.where(np.eye(10)[believed[held_out]] == 1, 0.97, 0.03 / 9))
    member = BaseRun("m", "basic", labels, folds, logits, np.zeros((1, 50, 10), np.float32))
    save_member(member, tmp_path / "m.npz")

    argv = ["audit", "m.npz", "--data", str(data_dir), "--out", "audit.csv"]
    assert main(argv) == 0
    assert "3 of 64 rows look mislabelled" in capsys.readouterr().out
    listed = pd.read_csv(tmp_path / "audit.csv")
    assert sorted(listed["row"]) == sorted(disputed)
    assert (listed["suggested"].to_numpy() == believed[listed["row"]]).all()
    assert sorted(read_audit(tmp_path / "audit.csv")) == sorted(disputed)

    (tmp_path / "bad.csv").write_text("image,label\n1,2\n")
    with pytest.raises(UserError, match=r"bad\.csv: not a label audit"):
        read_audit(tmp_path / "bad.csv")
    assert main(["audit", "missing.npz", "--data", str(data_dir)]) == 2
    assert "missing.npz: not a member file" in capsys.readouterr().err


def test_dropped_rows_leave_training_but_stay_held_out():
    config = apply_overrides(TrainConfig(), {"data.drop_rows": [1, 5, 8]}, "test")
    images, labels = synthetic_digits(10)
    data = training_data(config, images, labels, "x", np.arange(0, 6), np.arange(6, 10))
    np.testing.assert_array_equal(data.train_idx, [0, 2, 3, 4])
    np.testing.assert_array_equal(data.holdout_idx, [6, 7, 8, 9])  # 8 is still scored
    config = apply_overrides(TrainConfig(), {"data.drop_rows": [10]}, "test")
    with pytest.raises(UserError, match="names row 10, but the training data has 10 rows"):
        training_data(config, images, labels, "x", np.arange(6), np.arange(6, 10))


@pytest.mark.slow
def test_fit_with_drop_rows_trains_without_them_and_saves_them_in_its_config(data_dir, tmp_path):
    (tmp_path / "audit.csv").write_text("row,label,suggested\n" + "".join(
        f"{row},0,1\n" for row in range(10)
    ))  # fmt: skip
    argv = ["fit", "--data", str(data_dir), "--epochs", "1", "--out", "run"]
    assert main([*argv, "--drop-rows", "audit.csv", *tiny_overrides("basic")]) == 0
    config = (tmp_path / "run" / "config.toml").read_text()
    assert "drop_rows = [\n    0,\n    1," in config or "drop_rows = [0, 1," in config
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["holdout_images"] == 32  # the holdout keeps every row
    holdout = np.load(tmp_path / "run" / "holdout.npz")["rows"]
    assert metrics["train_images"] == 288 - np.sum(~np.isin(np.arange(10), holdout))
