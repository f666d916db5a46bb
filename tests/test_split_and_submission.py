import numpy as np
import pytest

from digit_keras.data.split import bag_rows, stratified_folds, stratified_holdout
from digit_keras.data.submission import write_submission
from digit_keras.errors import UserError


def test_holdout_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(10), [100, 200, 50, 80, 120, 90, 60, 70, 110, 120])
    train, holdout = stratified_holdout(labels, 0.1, seed=3)
    assert len(np.intersect1d(train, holdout)) == 0
    assert len(train) + len(holdout) == len(labels)
    assert len(holdout) == 100
    for cls, count in zip(range(10), np.bincount(labels), strict=True):
        assert abs(np.sum(labels[holdout] == cls) - count * 0.1) < 1
    again, _ = stratified_holdout(labels, 0.1, seed=3)
    other, _ = stratified_holdout(labels, 0.1, seed=4)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_zero_fraction_keeps_everything_for_training():
    train, holdout = stratified_holdout(np.arange(20) % 10, 0.0, seed=0)
    assert len(train) == 20 and len(holdout) == 0


def test_too_few_rows_to_stratify_is_a_one_line_error():
    with pytest.raises(UserError, match=r"cannot hold out a stratified 0\.1 of 20 rows"):
        stratified_holdout(np.arange(20) % 10, 0.1, seed=0)
    with pytest.raises(UserError, match="cannot split 3 rows into 5 folds"):
        stratified_folds(np.arange(3), 5, seed=0)


def test_submission_format(tmp_path):
    path = write_submission(np.array([3, 1, 4]), tmp_path / "sub" / "s.csv")
    assert path.read_text() == "ImageId,Label\n1,3\n2,1\n3,4\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["s.csv"]


def test_submission_failure_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        write_submission(np.array([1, "x"], dtype=object), tmp_path / "s.csv")
    assert list(tmp_path.iterdir()) == []


def test_bag_rows_are_a_seeded_stratified_share_of_the_pool():
    labels = np.repeat(np.arange(10), 30)
    pool = np.arange(0, 300, 2)  # every other row: 15 of each class
    rows = bag_rows(labels, pool, 0.8, seed=0, member=0)
    assert len(rows) == 120 and np.isin(rows, pool).all() and np.all(np.diff(rows) > 0)
    assert np.array_equal(np.bincount(labels[rows]), np.full(10, 12))
    assert np.array_equal(rows, bag_rows(labels, pool, 0.8, seed=0, member=0))
    others = [bag_rows(labels, pool, 0.8, seed, member) for seed, member in ((0, 1), (1, 0))]
    assert not any(np.array_equal(rows, other) for other in others)
