"""The built wheel works on its own: installed into a fresh environment, run from another folder.

`python -m build` makes the sdist and then the wheel from that sdist, so both are checked. The
fresh environment gets only the wheel; its dependencies are borrowed from the test's environment
through a .pth file (installing TensorFlow again would take minutes), and never digit_keras itself,
which must come from the wheel.
"""

from __future__ import annotations

import email
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from digit_keras import __version__
from tests.conftest import REPO, write_kaggle_data
from tests.test_serve import drawn_seven, png

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def fresh_env(dist, tmp_path_factory) -> Path:
    """A new virtual environment holding the wheel; returns its bin folder."""
    env = tmp_path_factory.mktemp("env")
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    (wheel,) = dist.glob("*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env / "bin"


def _run(bin_dir: Path, *argv: str, cwd: Path) -> str:
    result = subprocess.run(
        [str(bin_dir / "digit-keras"), *argv], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_wheel_and_sdist_metadata(dist):
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    assert wheel.name == f"digit_keras-{__version__}-py3-none-any.whl"
    assert sdist.name == f"digit_keras-{__version__}.tar.gz"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = email.message_from_bytes(
            archive.read(f"digit_keras-{__version__}.dist-info/METADATA")
        )
    assert metadata["Name"] == "digit-keras"
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "MIT"
    assert set(metadata.get_all("Provides-Extra")) == {
        "train",
        "tensorflow",
        "jax",
        "serve",
        "report",
    }
    for shipped in (
        "digit_keras/configs/basic.toml",
        "digit_keras/configs/tune/wrn28_10.toml",
        "digit_keras/configs/recipes/basic-bag15.toml",
        "digit_keras/serving/default_model/model.onnx",
        "digit_keras/serving/default_model/manifest.json",
        "digit_keras/serving/static/index.html",
    ):
        assert shipped in names
    modules = {path.relative_to(REPO).as_posix() for path in (REPO / "digit_keras").rglob("*.py")}
    assert modules <= names, modules - names


def test_installed_wheel_trains_predicts_and_serves_from_another_folder(fresh_env, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run(
        [str(fresh_env / "python"), "-c", "import digit_keras; print(digit_keras.__file__)"],
        capture_output=True,
        text=True,
        cwd=work,
        check=True,
    ).stdout
    assert where.startswith(str(fresh_env.parent)), where

    assert _run(fresh_env, "--version", cwd=work).strip() == f"digit-keras {__version__}"
    assert _run(fresh_env, "config", "show", "--arch", "vgg16", cwd=work).count('arch = "vgg16"')

    data = write_kaggle_data(work / "data")
    tiny = ["--set", "model.width=4", "--batch-size", "32", "--epochs", "1", "--out", "run"]
    assert "holdout accuracy" in _run(fresh_env, "fit", "--data", str(data), *tiny, cwd=work)
    _run(fresh_env, "predict", "--model", "run", "--data", str(data), "--out", "s.csv", cwd=work)
    assert len((work / "s.csv").read_text().splitlines()) == 1 + 50

    (work / "seven.png").write_bytes(png(drawn_seven()))
    answer = _run(fresh_env, "predict", "seven.png", cwd=work)  # the bundled model, from the wheel
    assert answer.startswith("seven.png: 7 ("), answer
