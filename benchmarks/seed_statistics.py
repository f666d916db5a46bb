"""Seed statistics of finished cv runs of one recipe that were trained separately.

`cv --seeds 0,1,2` trains the runs and prints this itself; use this script when the seeds ran
as separate `cv --seed S` commands (other sessions, other machines, or a resumed seed). The runs
must differ in their seed only, on the same split.

    python benchmarks/seed_statistics.py RUN_DIR RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from digit_keras.errors import UserError
from digit_keras.training import cv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="finished cv runs")
    args = parser.parse_args()
    try:
        summary = cv.seed_statistics(args.runs)
    except (UserError, FileNotFoundError) as err:
        raise SystemExit(f"seed_statistics: error: {err}") from None
    for run, accuracy in zip(summary["runs"], summary["oof_accuracy"]["values"], strict=True):
        print(f"{run}: {accuracy:.4%}")
    print(cv.format_seed_statistics(summary))


if __name__ == "__main__":
    main()
