import numpy as np
import pytest

from digit_keras.data.split import stratified_holdout
from digit_keras.data.submission import write_submission


def test_holdout_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(10), [100, 200, 50, 80, 120, 90, 60, 70, 110, 120])
    train, holdout = stratified_holdout(labels, 0.1, seed=3)
    assert len(np.intersect1d(train, holdout)) == 0
    assert len(train) + len(holdout) == len(labels)
    for cls, count in zip(range(10), np.bincount(labels), strict=True):
        assert np.sum(labels[holdout] == cls) == round(count * 0.1)
    again, _ = stratified_holdout(labels, 0.1, seed=3)
    other, _ = stratified_holdout(labels, 0.1, seed=4)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_zero_fraction_keeps_everything_for_training():
    train, holdout = stratified_holdout(np.arange(20) % 10, 0.0, seed=0)
    assert len(train) == 20 and len(holdout) == 0


def test_submission_format(tmp_path):
    path = write_submission(np.array([3, 1, 4]), tmp_path / "sub" / "s.csv")
    assert path.read_text() == "ImageId,Label\n1,3\n2,1\n3,4\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["s.csv"]


def test_submission_failure_leaves_no_file(tmp_path):
    with pytest.raises(ValueError):
        write_submission(np.array([1, "x"], dtype=object), tmp_path / "s.csv")
    assert list(tmp_path.iterdir()) == []
