"""The report's charts, drawn with matplotlib (Agg, no display) and returned as PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import ConfusionMatrixDisplay

DPI = 110


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def learning_curves(histories: dict[str, pd.DataFrame]) -> bytes:
    """Loss and accuracy per epoch, training (solid) and holdout (dashed), one colour per run."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for index, (name, history) in enumerate(histories.items()):
        colour = f"C{index}"
        epochs = history["epoch"] + 1
        for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
            label = f"{name} " if name else ""
            axis.plot(epochs, history[metric], color=colour, label=f"{label}training")
            if f"val_{metric}" in history:
                axis.plot(
                    epochs, history[f"val_{metric}"], "--", color=colour, label=f"{label}holdout"
                )
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        axis.set(xlabel="epoch", ylabel=metric, title=metric)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize="small")
    return _png(figure)


def confusion_matrices(labels: np.ndarray, predicted: np.ndarray) -> bytes:
    """Counts, and each true class's row normalised to shares."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 5))
    for axis, normalize, title in ((axes[0], None, "counts"), (axes[1], "true", "share of row")):
        ConfusionMatrixDisplay.from_predictions(
            labels,
            predicted,
            labels=range(10),
            normalize=normalize,
            values_format=".2f" if normalize else "d",
            colorbar=False,
            ax=axis,
            text_kw={"fontsize": 7},
        )
        axis.set_title(title)
    return _png(figure)


def reliability(confidence_bins: pd.DataFrame, confidences: np.ndarray) -> bytes:
    """Accuracy against confidence per bin (the diagonal is perfect calibration), and how the
    confidences are spread."""
    figure, (curve, spread) = plt.subplots(1, 2, figsize=(11, 3.8))
    curve.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    curve.plot(confidence_bins["confidence"], confidence_bins["accuracy"], "o-", label="model")
    curve.set(xlabel="confidence (top probability)", ylabel="accuracy", title="reliability")
    curve.legend()
    spread.hist(confidences, bins=np.linspace(0, 1, 21), log=True)
    spread.set(xlabel="confidence", ylabel="rows (log)", title="confidence of each prediction")
    return _png(figure)


def gallery(images: np.ndarray, captions: list[str], columns: int = 8) -> bytes:
    rows = max(1, -(-len(images) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.35, rows * 1.6))
    for axis in np.ravel(axes):
        axis.axis("off")
    for axis, image, caption in zip(np.ravel(axes), images, captions, strict=False):
        axis.imshow(image.reshape(28, 28), cmap="gray", vmin=0, vmax=255)
        axis.set_title(caption, fontsize=7)
    return _png(figure)


def comparison(scores: pd.DataFrame) -> bytes:
    """Held-out accuracy of each member and ensemble method."""
    figure, axis = plt.subplots(figsize=(8, 0.4 * len(scores) + 1))
    axis.barh(scores["model or method"], scores["accuracy"] * 100, color="C0")
    low = max(0.0, scores["accuracy"].min() * 100 - 0.5)
    axis.set(xlim=(low, 100), xlabel="held-out accuracy (%)")
    axis.invert_yaxis()
    axis.grid(axis="x", alpha=0.3)
    return _png(figure)


def disagreement(shares: pd.DataFrame) -> bytes:
    """Share of held-out rows on which two members predict different digits."""
    figure, axis = plt.subplots(figsize=(1.2 * len(shares) + 2, 1.0 * len(shares) + 1))
    image = axis.imshow(shares.to_numpy() * 100, cmap="Blues")
    axis.set_xticks(range(len(shares)), shares.columns, rotation=30, ha="right")
    axis.set_yticks(range(len(shares)), shares.index)
    for (i, j), value in np.ndenumerate(shares.to_numpy() * 100):
        axis.text(j, i, f"{value:.2f}%", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axis, label="% of rows that differ")
    return _png(figure)
