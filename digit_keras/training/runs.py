"""Writing run directories: a fresh folder, clean-up of a failed start, the resume backup, the
holdout predictions and what made the run (layout.py names the files)."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from digit_keras import __version__
from digit_keras.atomic import atomic_path, write_text_atomic
from digit_keras.errors import UserError
from digit_keras.layout import (
    BACKUP_DIR,
    BACKUP_WEIGHTS,
    CONFIG_FILE,
    HISTORY_FILE,
    HOLDOUT_FILE,
    METRICS_FILE,
    RUNS_ROOT,
)


def new_run_dir(arch: str, out: str | Path | None = None) -> Path:
    """A fresh, empty run directory: `out` if given, else a timestamped one under saved_models/."""
    if out is not None:
        run_dir = Path(out)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UserError(f"{run_dir} already exists and is not empty; use --resume {run_dir}")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = RUNS_ROOT / f"{arch}-{stamp}"
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = RUNS_ROOT / f"{arch}-{stamp}-{suffix}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def resumable_run_dir(
    path: str | Path, started: str = CONFIG_FILE, finished: str = METRICS_FILE, kind: str = "run"
) -> Path:
    """Check that `path` holds a `kind` that was started (has `started`) but did not finish
    (has no `finished`); fit, cv and tune each name their own marker files."""
    run_dir = Path(path)
    if not (run_dir / started).is_file():
        raise UserError(f"{run_dir}: no {started} here, so there is no {kind} to resume")
    if (run_dir / finished).is_file():
        raise UserError(f"{run_dir}: this {kind} already finished ({finished} exists)")
    return run_dir


@contextlib.contextmanager
def discarded_if_unstarted(
    run_dir: Path, progress: tuple[str, ...] = (BACKUP_DIR,), enabled: bool = True
) -> Iterator[Path]:
    """Around a new run's work: if it fails (Ctrl-C included) before anything matching a
    `progress` glob (by default: a backed-up epoch) was written, remove `run_dir`, so a failed
    start leaves nothing behind."""
    try:
        yield run_dir
    except BaseException:
        unstarted = not any(any(run_dir.glob(pattern)) for pattern in progress)
        if enabled and run_dir.is_dir() and unstarted:
            shutil.rmtree(run_dir)
        raise


def announce(run_dir: Path) -> None:
    """Say where a run writes before it starts, so an interrupted run can be found and resumed."""
    print(f"run dir: {run_dir}", flush=True)


def remove_backup(run_dir: Path) -> None:
    """Drop the resume backup of a run whose model and metrics are written."""
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)


def keep_history_of(run_dir: Path, epochs: int) -> None:
    """Cut history.csv to its first `epochs` epochs: the ones the backup holds. An epoch is
    logged before it is backed up, so a run stopped in between logs that epoch again."""
    history = run_dir / HISTORY_FILE
    if history.is_file():
        lines = history.read_text().splitlines(keepends=True)
        write_text_atomic(history, "".join(lines[: epochs + 1]))


def backup_position(run_dir: Path) -> tuple[int, int]:
    """(epochs done, steps done of the next epoch) of an interrupted run's newest backup, (0, 0)
    if none: its weights file names them, and is written last (callbacks.Backup)."""
    pattern = re.escape(BACKUP_WEIGHTS).replace(r"\{epochs\}", r"(\d+)")
    pattern = re.compile(pattern.replace(r"\{steps\}", r"(\d+)"))
    backup = run_dir / BACKUP_DIR
    names = (path.name for path in backup.iterdir()) if backup.is_dir() else ()
    positions = [
        tuple(map(int, match.groups())) for match in map(pattern.fullmatch, names) if match
    ]
    return max(positions, default=(0, 0))


def backup_file(run_dir: Path, name: str, position: tuple[int, int]) -> Path:
    """One of the backup's files (`BACKUP_WEIGHTS` or `BACKUP_RANDOM_STATE`) at `position`."""
    epochs, steps = position
    return run_dir / BACKUP_DIR / name.format(epochs=epochs, steps=steps)


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def save_holdout(run_dir: Path, rows: np.ndarray, labels: np.ndarray, logits: np.ndarray) -> None:
    with atomic_path(run_dir / HOLDOUT_FILE) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle, rows=rows.astype(np.int32), labels=labels.astype(np.int8), logits=logits
        )


def git_commit() -> str:
    """The commit of the source this package runs from, or "unknown" outside a git clone."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        )
    except OSError:  # no git
        return "unknown"
    return result.stdout.strip() or "unknown"


def provenance() -> dict[str, str]:
    """What made a run, for its metrics.json: the command line, version and commit."""
    return {
        "command": shlex.join(["digit-keras", *sys.argv[1:]]),
        "version": __version__,
        "commit": git_commit(),
    }
