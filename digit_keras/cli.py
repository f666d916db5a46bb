"""The `digit-keras` command line. Heavy imports happen inside commands, so --help is instant."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from digit_keras import __version__
from digit_keras.config import CHOICES
from digit_keras.errors import UserError

SUBMISSIONS_DIR = Path("submissions")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="folder with train.csv/test.csv (plain or .gz); "
        "default $DIGIT_KERAS_DATA, else ./data",
    )
    parser.add_argument(
        "--dataset",
        choices=CHOICES["data.dataset"],
        help="kaggle CSVs (default) or keras.datasets.mnist, for users without a Kaggle account",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digit-keras",
        description="Train and use handwritten-digit classifiers for Kaggle's Digit Recognizer.",
    )
    parser.add_argument("--version", action="version", version=f"digit-keras {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser("fit", help="train a model on a holdout split and save the run")
    fit.add_argument("--arch", help="architecture (default: the config's, else basic)")
    fit.add_argument("--config", metavar="FILE", help="TOML config (default configs/<arch>.toml)")
    _add_data_options(fit)
    fit.add_argument("--epochs", type=int)
    fit.add_argument("--batch-size", type=int, help="per replica")
    fit.add_argument("--lr", type=float, help="peak learning rate")
    fit.add_argument("--seed", type=int)
    fit.add_argument("--val-fraction", type=float, help="stratified holdout share (0 = none)")
    fit.add_argument("--limit", type=int, metavar="N", help="use the first N training rows")
    fit.add_argument("--strategy", choices=CHOICES["strategy"])
    fit.add_argument(
        "--precision",
        choices=CHOICES["precision"],
        help="dtype policy; the logits layer stays float32 (default float32)",
    )
    fit.add_argument(
        "--deterministic", action="store_true", default=None, help="deterministic TF ops (slower)"
    )
    fit.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set optimizer.schedule=constant",
    )
    fit.add_argument(
        "--out", metavar="DIR", help="run directory (default saved_models/<arch>-<time>)"
    )
    fit.add_argument(
        "--resume", metavar="RUN_DIR", help="continue an interrupted run with its saved config"
    )
    fit.set_defaults(handler=run_fit)

    predict = commands.add_parser("predict", help="write a Kaggle submission from a trained model")
    predict.add_argument(
        "--model",
        required=True,
        help="run directory, .keras file, or 'latest' (newest finished run)",
    )
    _add_data_options(predict)
    predict.add_argument(
        "--out", metavar="FILE", help="submission path (default submissions/submission_<run>.csv)"
    )
    predict.add_argument("--batch-size", type=int, default=1024)
    predict.set_defaults(handler=run_predict)

    models = commands.add_parser("models", help="list the architectures with their size and cost")
    models.set_defaults(handler=run_models)
    return parser


# Flags that are shorthands for config keys.
_FLAG_KEYS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "optimizer.learning_rate",
    "seed": "seed",
    "val_fraction": "data.val_fraction",
    "limit": "data.limit",
    "strategy": "strategy",
    "precision": "precision",
    "deterministic": "deterministic",
    "dataset": "data.dataset",
}


def resolve_config(args: argparse.Namespace):
    """Defaults < config file < --set overrides < dedicated flags."""
    from digit_keras.config import (
        apply_overrides,
        default_config_path,
        load_config,
        parse_assignment,
    )

    path = args.config or default_config_path(args.arch or "basic")
    if not args.config and not Path(path).is_file():
        raise UserError(f"no config for architecture {args.arch!r} at {path}; pass --config FILE")
    config = load_config(path)
    overrides = dict(parse_assignment(item) for item in args.set)
    if args.arch:
        overrides["arch"] = args.arch
    for flag, key in _FLAG_KEYS.items():
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    return apply_overrides(config, overrides, source="command line") if overrides else config


def run_fit(args: argparse.Namespace) -> None:
    from digit_keras.config import load_config
    from digit_keras.training import runs

    if args.resume:
        names = ("arch", "config", "out", *_FLAG_KEYS, "set")
        given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) not in (None, [])]
        if given:
            raise UserError(
                f"--resume continues with the run's saved config; drop {', '.join(given)}"
            )
        run_dir = runs.resumable_run_dir(args.resume)
        config = load_config(run_dir / runs.CONFIG_FILE)
    else:
        config = resolve_config(args)
        run_dir = runs.new_run_dir(config.arch, args.out)
    print(f"run dir: {run_dir}", flush=True)

    from digit_keras.training.fit import fit

    try:
        result = fit(config, run_dir, data_dir=args.data, resuming=bool(args.resume))
    except BaseException:
        if not args.resume:
            runs.discard_if_unstarted(run_dir)
        raise
    metrics = result.metrics
    print(f"run dir: {result.run_dir}")
    if metrics["holdout_accuracy"] is None:
        print("holdout: none (val_fraction = 0), so accuracy was not measured")
    else:
        print(
            f"holdout accuracy: {metrics['holdout_accuracy']:.4%} on {metrics['holdout_images']} "
            f"images (loss {metrics['holdout_loss']:.4f}); "
            f"{metrics['train_images_per_s']:.0f} train images/s; {metrics['wall_time_s']:.0f} s"
        )


def run_predict(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    from concurrent.futures import ThreadPoolExecutor

    from digit_keras.data import load_test
    from digit_keras.data.submission import write_submission
    from digit_keras.runtime import import_tensorflow
    from digit_keras.training import runs

    model_path = runs.resolve_model(args.model)
    dataset = args.dataset or _run_dataset(model_path.parent)
    # Parse the CSV while TensorFlow imports: pandas' parser releases the GIL, so this saves ~1 s.
    with ThreadPoolExecutor(max_workers=1) as pool:
        test_data = pool.submit(load_test, dataset, args.data)
        import_tensorflow()
        images, source = test_data.result()
    from digit_keras.inference import load_model, predict_logits

    model = load_model(model_path)
    labels = predict_logits(model, images, args.batch_size).argmax(axis=1)
    run_name = model_path.parent.name if model_path.name == runs.MODEL_FILE else model_path.stem
    out = Path(args.out) if args.out else SUBMISSIONS_DIR / f"submission_{run_name}.csv"
    write_submission(labels, out)
    seconds = time.perf_counter() - started
    print(f"wrote {out}: {len(labels)} predictions for {source} in {seconds:.1f} s")


def run_models(args: argparse.Namespace) -> None:
    from digit_keras.runtime import import_tensorflow

    import_tensorflow()
    from digit_keras.models import build_model, list_models
    from digit_keras.models.stats import describe

    print(f"{'name':10s} {'parameters':>12s} {'MFLOPs/image':>13s}  input")
    for name in list_models():
        stats = describe(build_model(name))
        side = 28 + 2 * stats["padding"]
        shape = f"28x28 padded to {side}x{side}" if stats["padding"] else "28x28"
        print(f"{name:10s} {stats['params']:12,d} {stats['mflops']:13.1f}  {shape}")


def _run_dataset(run_dir: Path) -> str:
    """The dataset a run trained on (its config says), so predict reads the matching test set."""
    from digit_keras.config import load_config
    from digit_keras.training.runs import CONFIG_FILE

    config_path = run_dir / CONFIG_FILE
    return load_config(config_path).data.dataset if config_path.is_file() else "kaggle"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except UserError as err:
        print(f"digit-keras: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("digit-keras: interrupted", file=sys.stderr)
        return 130
    return 0
