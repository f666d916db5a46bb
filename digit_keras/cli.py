"""The `digit-keras` command line. Heavy imports happen inside commands, so --help is instant."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from digit_keras import __version__
from digit_keras.config import choices
from digit_keras.ensemble import META_LEARNER_NAMES, METHODS
from digit_keras.errors import UserError
from digit_keras.tuning import TUNERS

# The package extra that installs each optional import, for a one-line error when it is missing.
EXTRA_OF_MODULE = {
    **dict.fromkeys(("keras", "keras_tuner", "pandas", "sklearn", "tensorboard"), "tensorflow"),
    "cleanlab": "tensorflow",
    **dict.fromkeys(("tensorflow", "tf2onnx", "onnx"), "tensorflow"),
    "matplotlib": "report",
    **dict.fromkeys(("fastapi", "uvicorn", "PIL", "multipart", "scipy", "onnxruntime"), "serve"),
    "jax": "jax",
}
DEFAULT_FOLDS = 5


def _add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        help="folder with train.csv/test.csv (plain or .gz); "
        "default $DIGIT_KERAS_DATA, else ./data",
    )


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    _add_data_dir_option(parser)
    parser.add_argument(
        "--dataset",
        choices=choices("data.dataset"),
        help="kaggle CSVs (default) or keras.datasets.mnist, for users without a Kaggle account",
    )


def _add_training_options(parser: argparse.ArgumentParser, with_epochs: bool = True) -> None:
    """Options shared by every command that trains: architecture, config and its overrides."""
    parser.add_argument("--arch", help="architecture (default: the config's, else basic)")
    parser.add_argument(
        "--config",
        metavar="FILE|NAME",
        help="TOML config, or a named recipe (`digit-keras config show --recipe`); "
        "default configs/<arch>.toml",
    )
    _add_data_options(parser)
    if with_epochs:
        parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="per replica")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int, help="initial weights, shuffling, augmentation")
    parser.add_argument(
        "--split-seed",
        type=int,
        help="the holdout split and cv folds (default 0), apart from --seed",
    )
    parser.add_argument("--limit", type=int, metavar="N", help="use the first N training rows")
    parser.add_argument(
        "--pseudo-labels",
        metavar="TEACHER",
        help="also train on the test images a teacher (a finished cv run, a member file or a "
        "folder of member files) labels with probability >= data.pseudo_threshold (0.99), from "
        "its models that never trained on this run's held-out rows (sets data.pseudo_labels)",
    )
    parser.add_argument(
        "--drop-rows",
        metavar="FILE",
        help="keep the rows a label audit lists (`digit-keras audit`) out of training; they are "
        "still held out and scored (sets data.drop_rows)",
    )
    parser.add_argument("--strategy", choices=choices("strategy"))
    parser.add_argument(
        "--precision",
        choices=choices("precision"),
        help="dtype policy; auto is mixed_bfloat16 on accelerators and bf16-capable CPUs, else "
        "float32; the logits layer stays float32 (default auto)",
    )
    parser.add_argument(
        "--deterministic", action="store_true", default=None, help="deterministic kernels (slower)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set optimizer.schedule=constant",
    )


def _add_run_dir_options(
    parser: argparse.ArgumentParser, name: str, resume_help: str, resume_optional: bool = False
) -> None:
    parser.add_argument(
        "--out", metavar="DIR", help=f"run directory (default saved_models/{name}-<time>)"
    )
    optional = {"nargs": "?", "const": "latest"} if resume_optional else {}
    parser.add_argument("--resume", metavar="RUN_DIR", help=resume_help, **optional)


TTA_HELP = "test-time augmentation: mean probabilities over the image and its 1-pixel shifts"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digit-keras",
        description="Train and use handwritten-digit classifiers for Kaggle's Digit Recognizer.",
    )
    parser.add_argument("--version", action="version", version=f"digit-keras {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser("fit", help="train a model on a holdout split and save the run")
    _add_training_options(fit)
    fit.add_argument("--val-fraction", type=float, help="stratified holdout share (0 = none)")
    _add_run_dir_options(fit, "<arch>", "continue an interrupted run with its saved config")
    fit.set_defaults(handler=run_fit)

    cv = commands.add_parser(
        "cv", help="train one model per fold; save out-of-fold and test-set logits for ensembles"
    )
    _add_training_options(cv)
    cv.add_argument(
        "--folds",
        type=int,
        help=f"stratified folds, seeded by --split-seed (default {DEFAULT_FOLDS})",
    )
    cv.add_argument(
        "--holdout",
        action="store_true",
        help="train fold 0 only: a 1/FOLDS holdout, for nets too slow for every fold",
    )
    cv.add_argument(
        "--bag",
        type=int,
        metavar="N",
        help="train N members, each on its own random share of the rows outside fold 0, and "
        "score them and their mean on fold 0, which none of them trains on",
    )
    cv.add_argument(
        "--bag-fraction",
        type=float,
        metavar="F",
        help="share of the rows outside fold 0 each bag member trains on, drawn without "
        "replacement (default 0.9)",
    )
    cv.add_argument(
        "--seeds",
        metavar="S,S,...",
        help="one cv run per seed (same folds) in OUT/seed-<S>, then the mean +- std of their "
        "scores",
    )
    cv.add_argument(
        "--fold",
        type=int,
        metavar="K",
        help="train fold-K alone (0 to FOLDS-1) into --out DIR, which other machines fill with "
        "the other folds; the last to finish merges them",
    )
    cv.add_argument("--tta", action="store_true", help=TTA_HELP + " (out-of-fold and test sets)")
    _add_run_dir_options(cv, "cv-<arch>", "continue an interrupted cv run at its first open fold")
    cv.set_defaults(handler=run_cv)

    tune = commands.add_parser(
        "tune", help="search an architecture's hyperparameters with keras-tuner; write best.toml"
    )
    _add_training_options(tune, with_epochs=False)
    tune.add_argument("--tuner", choices=TUNERS, help="(default random)")
    tune.add_argument(
        "--space", metavar="FILE", help="search space TOML (default configs/tune/<arch>.toml)"
    )
    tune.add_argument(
        "--epochs",
        dest="trial_epochs",
        type=int,
        help="epochs per trial, Hyperband's most per trial (default: the space's [search])",
    )
    tune.add_argument(
        "--max-trials", type=int, help="random and bayesian (default: the space's [search])"
    )
    _add_run_dir_options(
        tune,
        "tune-<arch>",
        "continue an interrupted search (no RUN_DIR: the newest unfinished tune-<arch>-*)",
        resume_optional=True,
    )
    tune.set_defaults(handler=run_tune)

    predict = commands.add_parser(
        "predict",
        help="write a Kaggle submission from a trained model, or classify pictures",
        description="With no IMAGE: predict test.csv and write a Kaggle submission. With IMAGE "
        "files or folders: print the digit and its probability for each picture, preprocessed "
        "as the service does.",
    )
    predict.add_argument("images", nargs="*", metavar="IMAGE", help="picture files or folders")
    predict.add_argument(
        "--model",
        help="run directory, .keras file, SavedModel directory, .onnx file, "
        "or 'latest' (newest finished run); pictures default to the bundled model",
    )
    _add_data_options(predict)
    predict.add_argument(
        "--out", metavar="FILE", help="submission path (default submissions/submission_<run>.csv)"
    )
    predict.add_argument("--batch-size", type=int, default=1024)
    predict.add_argument("--tta", action="store_true", help=TTA_HELP)
    predict.add_argument(
        "--number",
        action="store_true",
        help="each picture holds a whole number (a year, a house number): print it and each "
        "digit's confidence",
    )
    predict.set_defaults(handler=run_predict)

    serve = commands.add_parser(
        "serve", help="answer pictures over HTTP: a JSON API and a draw-a-digit page"
    )
    serve.add_argument(
        "--model",
        help="a run directory holding model.onnx (see export), or a .onnx file "
        "(default: the bundled basic model)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on the port, each using about one core (default 1)",
    )
    serve.set_defaults(handler=run_serve)

    export = commands.add_parser(
        "export",
        help="write a run's model as a SavedModel and/or ONNX, verified against Keras "
        "(runs on TensorFlow whatever KERAS_BACKEND says)",
    )
    export.add_argument("--model", required=True, metavar="RUN_DIR", help="a finished run")
    export.add_argument("--format", choices=("savedmodel", "onnx", "all"), default="all")
    export.add_argument("--opset", type=int, help="ONNX opset (default: tf2onnx's)")
    export.add_argument(
        "--check-images",
        type=int,
        default=1024,
        help="images the check runs on: the first test-set rows, if found (default 1024)",
    )
    _add_data_options(export)
    export.set_defaults(handler=run_export)

    ensemble = commands.add_parser(
        "ensemble", help="combine cv runs: mean, majority vote or Super Learner; write a submission"
    )
    ensemble.add_argument(
        "runs",
        nargs="+",
        metavar="MEMBER",
        help="finished cv run directories, or their member.npz files (these need train.csv)",
    )
    _add_data_options(ensemble)
    ensemble.add_argument(
        "--method",
        choices=METHODS,
        default="super",
        help="which ensemble writes the submission (default super); the table scores all",
    )
    ensemble.add_argument(
        "--meta",
        choices=META_LEARNER_NAMES,
        default="convex",
        help="Super Learner meta-learner: multinomial logistic regression on the stacked "
        "log-probabilities (one coefficient per model), convex weights, or the single best "
        "model (default convex)",
    )
    ensemble.add_argument("--seed", type=int, default=0, help="seeds the meta-learners' folds")
    ensemble.add_argument(
        "--every-row",
        metavar="DIR",
        help="also write a submission for every row of the table (each member, each method) "
        "into DIR",
    )
    ensemble.add_argument(
        "--also-without",
        metavar="FILE",
        help="also score every member and method on the out-of-fold rows that FILE (a label "
        "audit's list, `digit-keras audit`) does not name",
    )
    ensemble.add_argument(
        "--out", metavar="FILE", help="submission path (default submissions/ensemble_<method>.csv)"
    )
    ensemble.set_defaults(handler=run_ensemble)

    audit = commands.add_parser(
        "audit",
        help="list rows of train.csv whose label is likely wrong, from out-of-fold probabilities",
        description="Judge each row's label by the members' mean out-of-fold probabilities "
        "(models that never trained on that row) with cleanlab's confident learning, and write "
        "the suspects, worst first, as CSV: row (0-based, header not counted), label, suggested "
        "label and both probabilities. Train without them with --drop-rows FILE.",
    )
    audit.add_argument(
        "runs",
        nargs="+",
        metavar="MEMBER",
        help="finished cv run directories, or member.npz files (these need train.csv)",
    )
    _add_data_options(audit)
    audit.add_argument("--out", metavar="FILE", help="the list (default label-audit.csv)")
    audit.set_defaults(handler=run_audit)

    report = commands.add_parser(
        "report",
        help="an HTML report of a run's held-out mistakes, confusions, calibration and curves",
        description="Write one self-contained HTML page (charts also saved as PNGs beside it) on "
        "a fit or cv run's held-out rows; several cv runs are compared as ensemble members, and "
        "their mean ensemble is described.",
    )
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="finished fit or cv runs")
    report.add_argument(
        "--out",
        metavar="FILE",
        help="HTML path (default RUN_DIR/report.html for one run, ./report.html for several)",
    )
    _add_data_dir_option(report)  # the images of the held-out rows; each run names its dataset
    report.add_argument(
        "--mistakes", type=int, default=48, help="misclassified images shown (default 48)"
    )
    report.add_argument("--seed", type=int, default=0, help="seeds the Super Learner's folds")
    report.set_defaults(handler=run_report)

    config = commands.add_parser(
        "config", help="print a shipped recipe or search space, to copy and edit"
    )
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = config_commands.add_parser(
        "show",
        help="print an architecture's recipe (the TOML `fit --config FILE` reads)",
        description="Print an architecture's shipped recipe; redirect it to a file, edit it, "
        "and train with `digit-keras fit --config FILE`.",
    )
    show.add_argument("--arch", default="basic", help="(default basic)")
    what = show.add_mutually_exclusive_group()
    what.add_argument(
        "--resolved",
        action="store_true",
        help="every key, the defaults the recipe leaves out included (as a run saves it)",
    )
    what.add_argument(
        "--space", action="store_true", help="the keras-tuner search space instead (for tune)"
    )
    what.add_argument(
        "--recipe",
        metavar="NAME",
        nargs="?",
        const="",
        help="a named recipe (`fit --config NAME` takes it) instead; without NAME, list them",
    )
    show.set_defaults(handler=run_config_show)

    bundle = commands.add_parser(
        "bundle",
        help="make one servable model (model.keras, model.onnx, manifest.json) from fit runs",
        description="One run's model, or the mean of several runs' probabilities, as the model "
        "`serve` and picture `predict` load; the runs must share their holdout (--split-seed).",
    )
    bundle.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="finished fit runs")
    bundle.add_argument(
        "--out", type=Path, metavar="DIR", help="(default: the bundled model, saved_models/default)"
    )
    bundle.set_defaults(handler=run_bundle)

    models = commands.add_parser("models", help="list the architectures with their size and cost")
    models.set_defaults(handler=run_models)
    return parser


# Flags that are shorthands for config keys.
_FLAG_KEYS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "optimizer.learning_rate",
    "seed": "seed",
    "split_seed": "data.split_seed",
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
        config_file,
        default_config_path,
        load_config,
        parse_assignment,
    )

    config = load_config(
        config_file(args.config) if args.config else default_config_path(args.arch or "basic")
    )
    overrides = dict(parse_assignment(item) for item in args.set)
    if args.arch:
        overrides["arch"] = args.arch
    for flag, key in _FLAG_KEYS.items():
        if getattr(args, flag, None) is not None:
            overrides[key] = getattr(args, flag)
    if getattr(args, "drop_rows", None):
        from digit_keras.label_audit import read_audit

        overrides["data.drop_rows"] = read_audit(args.drop_rows).tolist()
    if getattr(args, "pseudo_labels", None):
        overrides["data.pseudo_labels"] = str(Path(args.pseudo_labels).resolve())
    return apply_overrides(config, overrides, source="command line") if overrides else config


def _refuse_config_flags(args: argparse.Namespace, allowed: tuple[str, ...] = ()) -> None:
    """A resumed run continues with its saved config, so flags that would change it are errors."""
    names = ("arch", "config", "out", *_FLAG_KEYS, "set", "folds", "holdout", "fold", "tta")
    names += ("bag", "bag_fraction", "drop_rows", "pseudo_labels")
    names += ("tuner", "space", "trial_epochs", "max_trials")
    given = [
        f"--{name.replace('_', '-').replace('trial-', '')}"
        for name in names
        if name not in allowed and getattr(args, name, None) not in (None, [], False)
    ]
    if given:
        raise UserError(f"--resume continues with the run's saved config; drop {', '.join(given)}")


def run_fit(args: argparse.Namespace) -> None:
    from digit_keras.training.fit import resume_fit, start_fit

    if args.resume:
        _refuse_config_flags(args)
        result = resume_fit(args.resume, args.data)
    else:
        result = start_fit(resolve_config(args), args.out, args.data)
    metrics = result.metrics
    if result.chief:
        print(f"run dir: {result.run_dir}")
    if metrics["holdout_accuracy"] is None:
        print("holdout: none (val_fraction = 0), so accuracy was not measured")
    else:
        print(
            f"holdout accuracy: {metrics['holdout_accuracy']:.4%} on {metrics['holdout_images']} "
            f"images (loss {metrics['holdout_loss']:.4f}); "
            f"{metrics['train_images_per_s']:.0f} train images/s; {metrics['wall_time_s']:.0f} s"
        )


def _seed_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--seeds: expected seeds like 0,1,2; got {text!r}") from None


def run_cv(args: argparse.Namespace) -> None:
    from digit_keras.training import cv

    if args.seeds:
        run_cv_seeds(args)
        return
    if args.resume:
        _refuse_config_flags(args)
        result = cv.resume_cv(args.resume, args.data)
    else:
        result = cv.start_cv(
            resolve_config(args), _scheme(args), args.data, args.tta, args.out, args.fold
        )
    metrics = result.metrics
    if "open_folds" in metrics:
        open_folds = ", ".join(map(str, metrics["open_folds"]))
        print(
            f"model {args.fold} finished; {open_folds} are not yet: the last to finish writes "
            f"the merged results (or `cv --resume {result.run_dir}` trains what is left)"
        )
        return
    if metrics["mode"] == "bag":
        print(
            f"bag members alone: {metrics['member_accuracy_mean']:.4%} +- "
            f"{metrics['member_accuracy_std']:.4%} (mean +- sample std)"
        )
    print(
        f"{metrics['mode']} out-of-fold accuracy: {metrics['oof_accuracy']:.4%} on "
        f"{metrics['oof_rows']} rows (log-loss {metrics['oof_log_loss']:.4f}); "
        f"{metrics['wall_time_s']:.0f} s; run dir: {result.run_dir}"
    )


def _scheme(args: argparse.Namespace):
    """Which models cv trains: --folds, --holdout, --bag and --bag-fraction."""
    from digit_keras.training.cv import Scheme

    if args.bag_fraction is not None and not args.bag:
        raise UserError("--bag-fraction needs --bag N")
    fraction = {} if args.bag_fraction is None else {"bag_fraction": args.bag_fraction}
    return Scheme(args.folds or DEFAULT_FOLDS, args.holdout, args.bag or 0, **fraction)


def run_cv_seeds(args: argparse.Namespace) -> None:
    """`cv --seeds`: one cv run per seed under one folder, then their seed statistics."""
    from digit_keras.training import cv

    if args.resume:
        raise UserError("--seeds starts new runs; resume one seed's run with --resume OUT/seed-S")
    if args.seed is not None:
        raise UserError("give either --seed or --seeds")
    if args.fold is not None:
        raise UserError("--fold trains one fold of one run; give it without --seeds")
    summary = cv.cv_seeds(
        resolve_config(args), _seed_list(args.seeds), _scheme(args), args.data, args.tta, args.out
    )
    print(cv.format_seed_statistics(summary))


def run_tune(args: argparse.Namespace) -> None:
    from digit_keras.runtime import import_keras

    import_keras()
    from digit_keras.config import default_space_path
    from digit_keras.layout import BEST_CONFIG
    from digit_keras.tuning.search import (
        SearchSettings,
        format_trials,
        resume_search,
        start_search,
    )
    from digit_keras.tuning.space import load_space

    if args.resume:
        _refuse_config_flags(args, allowed=("arch",))  # --arch picks the search to resume
        run_dir, result = resume_search(args.resume, args.arch or "basic", args.data)
    else:
        base = resolve_config(args)
        space = load_space(args.space or default_space_path(base.arch), base)
        settings = SearchSettings(
            tuner=args.tuner or "random",
            epochs=args.trial_epochs or space.search["epochs"],
            max_trials=args.max_trials or space.search["max_trials"],
            patience=space.search["patience"],
        )
        run_dir, result = start_search(base, space, settings, args.out, args.data)
    if result.rows is None:
        print(
            f"worker {os.environ['KERASTUNER_TUNER_ID']} finished after {result.trial_runs} trial "
            "runs; the chief writes the results"
        )
        return
    print(format_trials(result.rows), end="")
    print(f"best config; train it with: digit-keras fit --config {run_dir / BEST_CONFIG}")


def run_predict(args: argparse.Namespace) -> None:
    if args.images:
        run_predict_pictures(args)
        return
    if not args.model:
        raise UserError("predict needs --model to write a submission (or IMAGE files)")
    from digit_keras.model_formats import predict_submission

    result = predict_submission(
        args.model, args.out, args.data, args.dataset, args.batch_size, args.tta
    )
    print(
        f"wrote {result.path}: {result.rows} predictions for {result.data_source} "
        f"in {result.seconds:.1f} s"
    )


def _doubt(probabilities) -> str:
    """ ", not sure: 4 or 9?" where the answer is unsure, else nothing."""
    from digit_keras.serving.doubt import is_sure, top_labels

    first, second, _ = top_labels(probabilities)
    return "" if is_sure(probabilities) else f", not sure: {first} or {second}?"


def run_predict_pictures(args: argparse.Namespace) -> None:
    from digit_keras.layout import ONNX_FILE
    from digit_keras.serving import BUNDLED_MODEL_DIR
    from digit_keras.serving.pictures import predict_pictures, read_numbers

    model = args.model or str(BUNDLED_MODEL_DIR / ONNX_FILE)
    if args.number:
        answers = read_numbers(model, args.images)
        for answer in answers:
            if answer.error:
                print(f"{answer.path}: error: {answer.error}")
                continue
            digits = ", ".join(
                f"{p.argmax()} {p.max():.1%}{_doubt(p)}" for p in answer.reading.probabilities
            )
            print(f"{answer.path}: {answer.reading.number} ({digits})")
    else:
        answers = predict_pictures(model, args.images)
        for answer in answers:
            if answer.error:
                print(f"{answer.path}: error: {answer.error}")
            else:
                doubt = _doubt(answer.probabilities)
                print(f"{answer.path}: {answer.label} ({answer.confidence:.1%}{doubt})")
    failed = [answer for answer in answers if answer.error]
    if failed:
        raise UserError(f"{len(failed)} of {len(answers)} pictures could not be read")


def run_serve(args: argparse.Namespace) -> None:
    from digit_keras.serving import BUNDLED_MODEL_DIR
    from digit_keras.serving.server import serve

    serve(Path(args.model) if args.model else BUNDLED_MODEL_DIR, args.host, args.port, args.workers)


def run_export(args: argparse.Namespace) -> None:
    from digit_keras.runtime import use_tensorflow_backend

    use_tensorflow_backend("export")
    from digit_keras.export import FORMATS, export_run

    formats = FORMATS if args.format == "all" else (args.format,)
    report = export_run(Path(args.model), formats, args.data, args.check_images, args.opset)
    for fmt in formats:
        entry = report[fmt]
        print(
            f"{fmt}: {entry['path']} ({entry['bytes'] / 1e6:.2f} MB, {entry['seconds']:.1f} s); "
            f"on {entry['checked_images']} {entry['checked_on']}: max probability difference "
            f"from the trained model {entry['max_abs_diff']:.1e}, labels agree "
            f"{entry['argmax_agreement']:.2%}"
        )


def run_ensemble(args: argparse.Namespace) -> None:
    from digit_keras.ensemble.build import build_ensemble
    from digit_keras.label_audit import read_audit

    left_out = read_audit(args.also_without) if args.also_without else None
    result = build_ensemble(
        args.runs, args.method, args.meta, args.out, args.data, args.dataset, args.seed,
        args.every_row, left_out,
    )  # fmt: skip
    print(result.table, end="")
    print(f"wrote {result.path} ({result.method}, {result.rows} rows) and its table beside it")
    if args.every_row:
        print(f"wrote a submission for each of the {result.methods} rows into {args.every_row}")


def run_audit(args: argparse.Namespace) -> None:
    from digit_keras.label_audit import audit

    result = audit(args.runs, args.data, args.dataset, args.out)
    print(result.suspects.to_string(index=False, float_format="{:.4f}".format))
    print(
        f"{len(result.suspects)} of {result.rows:,} rows look mislabelled (mean of "
        f"{result.members} member(s)); wrote {result.path}"
    )


def run_bundle(args: argparse.Namespace) -> None:
    from digit_keras.serving import BUNDLED_MODEL_DIR
    from digit_keras.serving.bundle import bundle

    manifest = bundle(args.runs, args.out or BUNDLED_MODEL_DIR)
    print(
        f"wrote {args.out or BUNDLED_MODEL_DIR}: {manifest['models']} model(s), holdout accuracy "
        f"{manifest['holdout_accuracy']:.2%} on {manifest['holdout_images']} images"
    )


def run_report(args: argparse.Namespace) -> None:
    from digit_keras.report.page import write_report

    out = write_report(args.runs, args.out and Path(args.out), args.data, args.mistakes, args.seed)
    print(f"wrote {out}")


def run_config_show(args: argparse.Namespace) -> None:
    from digit_keras.config import (
        config_file,
        default_config_path,
        default_space_path,
        load_config,
        named_recipes,
        to_toml,
    )

    if args.recipe == "":
        print("\n".join(named_recipes()))
    elif args.recipe:
        print(config_file(args.recipe).read_text(encoding="utf-8"), end="")
    elif args.space:
        print(default_space_path(args.arch).read_text(encoding="utf-8"), end="")
    elif args.resolved:
        print(to_toml(load_config(default_config_path(args.arch))), end="")
    else:
        print(default_config_path(args.arch).read_text(encoding="utf-8"), end="")


def run_models(args: argparse.Namespace) -> None:
    from digit_keras.runtime import import_keras

    import_keras()
    from digit_keras.models import build_model, list_models
    from digit_keras.models.stats import describe

    print(f"{'name':10s} {'parameters':>12s} {'MFLOPs/image':>13s}  input")
    for name in list_models():
        stats = describe(build_model(name))
        side = 28 + 2 * stats["padding"]
        shape = f"28x28 padded to {side}x{side}" if stats["padding"] else "28x28"
        print(f"{name:10s} {stats['params']:12,d} {stats['mflops']:13.1f}  {shape}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except UserError as err:
        print(f"digit-keras: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        extra = EXTRA_OF_MODULE.get((err.name or "").partition(".")[0])
        if extra is None:
            raise
        print(
            f"digit-keras: error: {args.command} needs {err.name}, which is not installed; "
            f"install the package's {extra} extra: pip install 'digit-keras[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("digit-keras: interrupted", file=sys.stderr)
        return 130
    return 0
