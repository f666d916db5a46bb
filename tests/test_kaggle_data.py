import gzip

import numpy as np
import pytest

from digit_keras.cli import main
from digit_keras.data.kaggle import (
    PIXEL_COLUMNS,
    TRAIN_COLUMNS,
    find_csv,
    read_test_csv,
    read_train_csv,
)
from digit_keras.errors import DataError
from tests.conftest import synthetic_digits, write_csv, write_kaggle_data


def test_reads_plain_and_gzip_identically(tmp_path):
    plain = read_train_csv(write_kaggle_data(tmp_path / "plain") / "train.csv")
    packed = read_train_csv(write_kaggle_data(tmp_path / "gz", gz=True) / "train.csv.gz")
    images, labels = plain
    assert images.shape == (320, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and set(labels) == set(range(10))
    np.testing.assert_array_equal(images, packed[0])
    np.testing.assert_array_equal(labels, packed[1])


def test_pixel_order_is_row_major(tmp_path):
    row = np.zeros(785, dtype=int)
    row[0], row[1 + 28 * 2 + 5] = 7, 200  # label 7, pixel at row 2, column 5
    images, labels = read_train_csv(write_csv(tmp_path / "train.csv", TRAIN_COLUMNS, row[None]))
    assert labels[0] == 7 and images[0, 2, 5, 0] == 200 and images.sum() == 200


def test_test_csv_has_no_label(data_dir):
    images = read_test_csv(data_dir / "test.csv")
    assert images.shape == (50, 28, 28, 1)


def test_missing_file_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGIT_KERAS_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"nowhere.*DIGIT_KERAS_DATA.*kaggle competitions download"):
        find_csv(None, "train")


def test_data_dir_precedence(tmp_path, monkeypatch):
    write_kaggle_data(tmp_path / "flag")
    write_kaggle_data(tmp_path / "env")
    write_kaggle_data(tmp_path / "data")
    monkeypatch.setenv("DIGIT_KERAS_DATA", str(tmp_path / "env"))
    assert find_csv(tmp_path / "flag", "train").parent.name == "flag"
    assert find_csv(None, "train").parent.name == "env"
    monkeypatch.delenv("DIGIT_KERAS_DATA")
    assert find_csv(None, "train").parent.name == "data"


def _good_rows(n=5):
    images, labels = synthetic_digits(n)
    return np.column_stack([labels, images.reshape(n, -1)]).astype(object)


def _write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: r.__setitem__((2, 13), 256),
            r"row 3 \(line 4\), column 'pixel12': pixel value 256 is outside 0-255",
        ),
        (
            lambda r: r.__setitem__((0, 1), -1),
            r"row 1 \(line 2\), column 'pixel0': pixel value -1 is outside 0-255",
        ),
        (
            lambda r: r.__setitem__((4, 0), 10),
            r"row 5 \(line 6\), column 'label': label 10 is outside 0-9",
        ),
        (
            lambda r: r.__setitem__((1, 100), "1.5"),
            r"row 2 \(line 3\), column 'pixel99': '1.5' is not an integer",
        ),
        (
            lambda r: r.__setitem__((3, 785 - 1), ""),
            r"row 4 \(line 5\), column 'pixel783': an empty cell is not an integer",
        ),
        (
            lambda r: r.__setitem__((1, 7), "NaN"),
            r"row 2 \(line 3\), column 'pixel6': 'NaN' is not an integer",
        ),
    ],
)
def test_bad_cells_are_named(tmp_path, mutate, message):
    rows = _good_rows()
    mutate(rows)
    path = write_csv(tmp_path / "train.csv", TRAIN_COLUMNS, rows)
    with pytest.raises(DataError, match=message) as err:
        read_train_csv(path)
    assert str(path) in str(err.value)


def test_ragged_row(tmp_path):
    lines = [",".join(TRAIN_COLUMNS)] + [",".join(map(str, r)) for r in _good_rows(3)]
    lines[2] += ",0"
    path = _write_lines(tmp_path / "train.csv", lines)
    with pytest.raises(DataError, match=r"row 2 \(line 3\): expected 785 columns, found 786"):
        read_train_csv(path)


def test_short_row(tmp_path):
    lines = [",".join(TRAIN_COLUMNS)] + [",".join(map(str, r)) for r in _good_rows(3)]
    lines[3] = lines[3].rsplit(",", 10)[0]
    path = _write_lines(tmp_path / "train.csv", lines)
    with pytest.raises(DataError, match=r"row 3 \(line 4\): expected 785 columns, found 775"):
        read_train_csv(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (["label", *PIXEL_COLUMNS[:-1]], r"row 1 \(header\): expected 785 columns .* found 784"),
        (["digit", *PIXEL_COLUMNS], r"column 1: expected 'label', found 'digit'"),
        (PIXEL_COLUMNS, r"column 1: expected 'label', found 'pixel0'"),
    ],
)
def test_wrong_header(tmp_path, header, message):
    path = _write_lines(tmp_path / "train.csv", [",".join(header)])
    with pytest.raises(DataError, match=message):
        read_train_csv(path)


def test_train_file_given_as_test_is_refused(data_dir):
    with pytest.raises(DataError, match="expected 'pixel0', found 'label'"):
        read_test_csv(data_dir / "train.csv")


def test_empty_and_header_only(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: file is empty"):
        read_train_csv(tmp_path / "empty.csv")
    path = _write_lines(tmp_path / "train.csv", [",".join(TRAIN_COLUMNS)])
    with pytest.raises(DataError, match="header but no data rows"):
        read_train_csv(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "train.csv.gz"
    path.write_bytes(gzip.compress(b"label,pixel0\n")[:-8] + b"garbage!")
    with pytest.raises(DataError, match=r"train\.csv\.gz"):
        read_train_csv(path)


def test_bytes_that_are_not_utf8(tmp_path):
    lines = [",".join(TRAIN_COLUMNS)] + [",".join(map(str, r)) for r in _good_rows(30)]
    lines[-1] = lines[-1].rsplit(",", 1)[0] + ",\udcff"  # a 0xff byte in the last cell
    path = tmp_path / "train.csv"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    with pytest.raises(DataError, match=r"train\.csv: cannot read: .*utf-8"):
        read_train_csv(path)


def test_cli_reports_bad_data_in_one_line_and_writes_nothing(tmp_path, capsys):
    data = write_kaggle_data(tmp_path / "data")
    rows = _good_rows(20)
    rows[7, 300] = 999
    write_csv(data / "train.csv", TRAIN_COLUMNS, rows)
    code = main(["fit", "--data", str(data), "--epochs", "1", "--out", "run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("digit-keras: error: ") and err.count("\n") == 1
    assert "row 8 (line 9), column 'pixel299': pixel value 999 is outside 0-255" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_cli_predict_on_bad_test_csv_writes_no_submission(tmp_path, data_dir, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_bytes(b"unused: the data check fails first")
    rows = synthetic_digits(4)[0].reshape(4, -1).astype(object)
    rows[2, 5] = "x"
    write_csv(data_dir / "test.csv", PIXEL_COLUMNS, rows)
    code = main(["predict", "--model", "run", "--data", str(data_dir), "--out", "sub.csv"])
    assert code == 2
    assert "column 'pixel5': 'x' is not an integer" in capsys.readouterr().err
    assert not (tmp_path / "sub.csv").exists()
