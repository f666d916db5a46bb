"""`digit-keras report`: one self-contained HTML page on what a model or ensemble gets right and
wrong on its held-out rows of train.csv, with its charts also saved as PNGs beside it.

One run (fit or cv) is reported on its own held-out predictions. Several cv runs are compared as
ensemble members on the rows they all held out, and the detailed sections describe their mean
ensemble (it fits nothing to those rows, so its scores there are honest).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, log_loss

from digit_keras import layout
from digit_keras.atomic import atomic_path, write_text_atomic
from digit_keras.config import load_config
from digit_keras.data import load_train
from digit_keras.errors import UserError
from digit_keras.label_audit import suspect_labels
from digit_keras.members import oof_probabilities
from digit_keras.report import figures
from digit_keras.report.sources import HeldOut, ReportRun, load_report_run

CALIBRATION_BINS = 10
CONFIDENT_CORRECT = 16


@dataclass
class Section:
    anchor: str
    title: str
    body: str  # HTML


def write_report(
    run_paths: list[str | Path],
    out: Path | None = None,
    data_dir: str | Path | None = None,
    mistakes: int = 48,
    seed: int = 0,
) -> Path:
    """Write the report and its PNGs; returns the HTML path (default RUN/report.html for one
    run, ./report.html for several)."""
    reported = [load_report_run(path) for path in run_paths]
    if len(reported) > 1 and any(run.kind != "cv" for run in reported):
        names = ", ".join(run.name for run in reported if run.kind != "cv")
        raise UserError(
            f"several runs are compared as ensemble members, so give cv runs; {names} is not"
        )
    config = load_config(reported[0].path / layout.CONFIG_FILE)
    images, labels, source = load_train(config.data.dataset, data_dir, config.data.limit)
    for run in reported:
        rows = run.held_out.rows
        if rows.max() >= len(labels) or not np.array_equal(labels[rows], run.held_out.labels):
            raise UserError(
                f"{run.path}: trained on other rows than {source}; pass its data with --data"
            )

    out = Path(out) if out else (reported[0].path if len(reported) == 1 else Path()) / "report.html"
    pictures: dict[str, bytes] = {}
    sections: list[Section] = []
    if len(reported) > 1:
        held_out, comparison = _compare(reported, labels, seed, pictures)
        sections.append(comparison)
        subject = "the mean ensemble of the runs"
    else:
        held_out, subject = reported[0].held_out, f"{reported[0].name}"
    sections += _judge(held_out, images, mistakes, pictures)
    sections.append(_audit(held_out, images, pictures))
    sections += [_training(run, pictures) for run in reported]
    page = _page(reported, subject, source, held_out, sections, out, pictures)
    for name, data in pictures.items():
        with atomic_path(out.parent / f"{out.stem}-{name}.png") as tmp:
            tmp.write_bytes(data)
    write_text_atomic(out, page)
    return out


def calibration_table(held_out: HeldOut) -> tuple[pd.DataFrame, float]:
    """Per confidence bin: rows, mean confidence, accuracy; and the expected calibration error
    (the rows-weighted mean gap between accuracy and confidence; scikit-learn has no ECE)."""
    confidence = held_out.confidence
    correct = held_out.predicted == held_out.labels
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    bins = pd.cut(confidence, edges, include_lowest=True)
    frame = pd.DataFrame({"confidence": confidence, "accuracy": correct.astype(float), "bin": bins})
    table = frame.groupby("bin", observed=True).agg(
        rows=("accuracy", "size"), confidence=("confidence", "mean"), accuracy=("accuracy", "mean")
    )
    ece = float(
        (table["rows"] / len(frame) * (table["accuracy"] - table["confidence"]).abs()).sum()
    )
    return table, ece


def _judge(held_out: HeldOut, images: np.ndarray, mistakes: int, pictures: dict) -> list[Section]:
    labels, probabilities = held_out.labels, held_out.probabilities
    predicted = held_out.predicted
    pictures["confusion"] = figures.confusion_matrices(labels, predicted)
    report = classification_report(
        labels, predicted, labels=range(10), output_dict=True, zero_division=0
    )
    report.pop("accuracy", None)  # a scalar; the page's summary gives it
    per_class = pd.DataFrame(report).T
    per_class["support"] = per_class["support"].astype(int)
    confusion = Section(
        "confusion",
        "Confusion matrix and per-class precision and recall",
        _img(pictures, "confusion", "confusion matrices")
        + per_class.to_html(float_format="{:.4f}".format, classes="table"),
    )

    confidence = held_out.confidence
    wrong = np.flatnonzero(predicted != labels)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:mistakes]
    right = np.flatnonzero(predicted == labels)
    surest = right[np.argsort(-confidence[right], kind="stable")][:CONFIDENT_CORRECT]
    gallery_sections = []
    for name, title, chosen in (
        ("mistakes", f"Mistakes, most confident first ({len(worst)} of {len(wrong)})", worst),
        ("confident", f"The most confident correct answers ({len(surest)})", surest),
    ):
        if not len(chosen):
            gallery_sections.append(Section(name, title, "<p>None.</p>"))
            continue
        captions = [f"{labels[i]}→{predicted[i]} ({confidence[i]:.2f})" for i in chosen]
        pictures[name] = figures.gallery(images[held_out.rows[chosen]], captions)
        table = pd.DataFrame(
            {
                "train.csv row": held_out.rows[chosen],
                "true": labels[chosen],
                "predicted": predicted[chosen],
                "top probabilities": [_top(probabilities[i]) for i in chosen],
            }
        )
        body = (
            "<p>Above each image: true digit → predicted digit (the prediction's probability)."
            "</p>" + _img(pictures, name, title) + table.to_html(index=False, classes="table")
        )
        gallery_sections.append(Section(name, title, body))

    table, ece = calibration_table(held_out)
    pictures["calibration"] = figures.reliability(table, confidence)
    loss = log_loss(labels, probabilities, labels=range(10))
    calibration = Section(
        "calibration",
        "Calibration",
        f"<p>Expected calibration error <b>{ece:.4f}</b> ({CALIBRATION_BINS} equal-width "
        f"confidence bins); log-loss <b>{loss:.4f}</b>.</p>"
        + _img(pictures, "calibration", "reliability diagram")
        + table.to_html(float_format="{:.4f}".format, classes="table"),
    )
    return [confusion, *gallery_sections, calibration]


def _audit(held_out: HeldOut, images: np.ndarray, pictures: dict) -> Section:
    """The held-out rows whose label looks wrong to the models (label_audit.py), with images."""
    suspects = suspect_labels(held_out.labels, held_out.probabilities)
    title = f"Labels that look wrong ({len(suspects)})"
    if not len(suspects):
        return Section("audit", title, "<p>Confident learning flags no held-out label.</p>")
    chosen = suspects["row"].to_numpy()  # positions among the held-out rows
    captions = [
        f"{label}? {suggested} ({p:.2f})"
        for label, suggested, p in suspects[["label", "suggested", "suggested_probability"]].values
    ]
    pictures["audit"] = figures.gallery(images[held_out.rows[chosen]], captions)
    clean = np.setdiff1d(np.arange(len(held_out.labels)), chosen)
    clean_accuracy = accuracy_score(held_out.labels[clean], held_out.predicted[clean])
    table = suspects.assign(row=held_out.rows[chosen]).rename(columns={"row": "train.csv row"})
    body = (
        "<p>Rows whose given label the held-out probabilities contradict, by cleanlab's "
        "confident learning, worst first; above each image: given label? the models' digit "
        "(its probability). <code>digit-keras audit</code> writes such a list, and "
        "<code>--drop-rows</code> trains without it. Accuracy on the "
        f"{len(clean):,} held-out rows not flagged: <b>{clean_accuracy:.2%}</b>.</p>"
        + _img(pictures, "audit", title)
        + table.to_html(index=False, float_format="{:.4f}".format, classes="table")
    )
    return Section("audit", title, body)


def _compare(
    reported: list[ReportRun], labels: np.ndarray, seed: int, pictures: dict
) -> tuple[HeldOut, Section]:
    from digit_keras.ensemble.base_runs import load_base_runs
    from digit_keras.ensemble.combine import mean_probabilities
    from digit_keras.ensemble.evaluate import evaluate

    members, rows = load_base_runs([str(run.path) for run in reported])
    if not len(rows):
        raise UserError("the runs share no held-out rows; train them with the same --split-seed")
    scored = evaluate(members, rows, seed)
    scores = pd.DataFrame(
        {
            "model or method": [s.name for s in scored],
            "accuracy": [s.accuracy for s in scored],
            "log-loss": [s.log_loss for s in scored],
        }
    )
    pictures["comparison"] = figures.comparison(scores)
    probabilities = oof_probabilities(members, rows)
    votes = probabilities.argmax(axis=2)
    names = [m.name for m in members]
    shares = pd.DataFrame(
        [[np.mean(a != b) for b in votes] for a in votes], index=names, columns=names
    )
    pictures["disagreement"] = figures.disagreement(shares)
    mean = HeldOut(rows, labels[rows], mean_probabilities(probabilities))
    split = np.flatnonzero((votes != votes[0]).any(axis=0))
    mean_right = int(np.sum(mean.predicted[split] == mean.labels[split]))
    missed_by_all = (votes != mean.labels).all(axis=0)
    same_wrong_label = int(np.sum(missed_by_all & (votes == votes[0]).all(axis=0)))
    body = (
        f"<p>{len(rows):,} rows held out by every run. Super Learner scores are cross-validated "
        "over these rows; mean and vote fit nothing to them.</p>"
        + scores.to_html(
            index=False,
            formatters={"accuracy": "{:.2%}".format, "log-loss": "{:.4f}".format},
            classes="table",
            na_rep="-",
        )
        + _img(pictures, "comparison", "accuracy of members and methods")
        + f"<p>The members disagree on <b>{len(split):,}</b> rows; the mean ensemble is right on "
        f"{mean_right:,} of them.</p>"
        + _img(pictures, "disagreement", "pairwise disagreement")
        + _oracle_ceiling(missed_by_all, same_wrong_label)
    )
    return mean, Section("comparison", "Members and ensembles", body)


def _oracle_ceiling(missed_by_all: np.ndarray, same_wrong_label: int) -> str:
    """The best any ensemble that picks one member's label per row could score."""
    if not missed_by_all.any():
        return (
            "<p>No row is missed by every member: an oracle that picked the right member for "
            "each row would get all of them right.</p>"
        )
    return (
        f"<p>Every member is wrong on <b>{missed_by_all.sum():,}</b> rows, all with the same "
        f"wrong label on {same_wrong_label:,} of them: even an oracle that picked the right "
        f"member for each row would stay at {1 - missed_by_all.mean():.2%} (members that err "
        "on other rows raise that ceiling).</p>"
    )


def _training(run: ReportRun, pictures: dict) -> Section:
    name = f"curves-{run.name}"
    pictures[name] = figures.learning_curves(run.histories)
    metrics = pd.DataFrame(
        {"value": {k: v if np.isscalar(v) else json.dumps(v) for k, v in run.metrics.items()}}
    )
    body = (
        f"<p>Command: <code>{html.escape(str(run.metrics.get('command', 'not recorded')))}</code>; "
        f"commit <code>{html.escape(str(run.metrics.get('commit', 'not recorded')))}</code>.</p>"
        + _img(pictures, name, f"learning curves of {run.name}")
        + "<details><summary>metrics.json</summary>"
        + metrics.to_html(classes="table")
        + "</details><details open><summary>config.toml</summary><pre>"
        + html.escape(run.config_text)
        + "</pre></details>"
    )
    return Section(name, f"Training: {run.name} ({run.kind})", body)


def _page(
    reported: list[ReportRun],
    subject: str,
    source: str,
    held_out: HeldOut,
    sections: list[Section],
    out: Path,
    pictures: dict,
) -> str:
    accuracy = accuracy_score(held_out.labels, held_out.predicted)
    wrong = int(np.sum(held_out.predicted != held_out.labels))
    contents = "".join(
        f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections
    )
    body = "".join(
        f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body}</section>'
        for s in sections
    )
    title = "digit-keras report: " + ", ".join(run.name for run in reported)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
<p class="summary">Held-out accuracy of {html.escape(subject)}: <b id="accuracy">{accuracy:.2%}</b>
({wrong:,} wrong of {len(held_out.labels):,} held-out rows of {html.escape(source)}).
Every number here is on rows the models did not train on.</p>
<nav><ol>{contents}</ol></nav>{body}
<footer>Charts also saved beside this file as {html.escape(out.stem)}-*.png
({len(pictures)} files).</footer></body></html>
"""


def _top(probabilities: np.ndarray, count: int = 3) -> str:
    best = np.argsort(-probabilities)[:count]
    return ", ".join(f"{digit}: {probabilities[digit]:.3f}" for digit in best)


def _img(pictures: dict, name: str, alt: str) -> str:
    data = base64.b64encode(pictures[name]).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
img { max-width: 100%; display: block; margin: .8rem 0; }
.table { border-collapse: collapse; font-size: 13px; margin: .6rem 0; }
.table td, .table th { border: 1px solid #ddd; padding: 2px 8px; text-align: right; }
pre { background: #f6f6f6; padding: .6rem; overflow-x: auto; }
.summary { font-size: 1.1rem; } footer { color: #777; margin-top: 2rem; }
"""
