"""Read a whole number: split a picture into its digits, left to right, each made MNIST-style.

1. The picture becomes bright ink on black as for one digit (preprocess.py), and its ink mask is
   cut into 8-connected components (scipy.ndimage.label).
2. Pieces of one digit are merged: pieces whose columns overlap by half the narrower one's
   width (a broken 4, a dot above a stroke), then pieces too flat or too small to be a digit (a
   5's flag, a speck) join the piece they overlap most, or the nearest.
3. Digits that touch are split: a piece wider than its height (one digit in a hundred of MNIST
   is wider than 1.4 times its height, two touching digits are rarely narrower than 1.2) is read
   as 1, 2, ... digits, cut at the columns of least ink near even spacing, and the reading the
   model is surest of (the highest mean log-probability of its digits) wins.
4. Each digit's own ink (not its neighbours') goes through `mnist_style` into 28x28.

benchmarks/bench_numbers.py measures it on numbers composed from held-out train.csv digits.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from digit_keras.serving.preprocess import (
    DEFAULT_LIMITS,
    INK_SHARE,
    BadImage,
    Limits,
    mnist_style,
    picture_to_ink,
)

MAX_DIGITS = 32  # a number longer than this is refused: more likely noise than a number
MAX_MARKS = 4 * MAX_DIGITS  # separate ink marks before merging (a dotted background is none)
SPECK_SHARE = 0.1  # a piece with under this share of the largest piece's ink is a speck
PART_HEIGHT = 0.5  # a piece under this share of the tallest piece's height is part of a digit
OVERLAP_SHARE = 0.5  # pieces overlapping by this share of the narrower width are one digit
TOUCHING_ASPECT = 1.0  # a piece wider than this times its height may hold several digits
NARROWEST_ASPECT = (
    0.5  # width / height of a narrow digit (not a 1): bounds the digits a piece holds
)
EDGE = 2  # pixels of faint ink kept around a digit's own pixels


@dataclass(frozen=True)
class Piece:
    """Ink of one digit: some components of the ink mask, within columns [left, right)."""

    marks: frozenset[int]  # component numbers in the labelled mask
    left: int
    right: int
    top: int
    bottom: int  # exclusive
    ink: float  # pixels of ink

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x, y, width, height) in the picture's pixels."""
        return self.left, self.top, self.width, self.height

    def window(self, margin: int = 0) -> tuple[slice, slice]:
        """Its rows (grown by `margin`) and its columns in the picture."""
        return slice(max(0, self.top - margin), self.bottom + margin), slice(self.left, self.right)

    def mask(self, labels: np.ndarray, margin: int = 0) -> np.ndarray:
        """Its pixels within `window(margin)`."""
        return np.isin(labels[self.window(margin)], list(self.marks))

    def __or__(self, other: Piece) -> Piece:
        return Piece(
            self.marks | other.marks,
            min(self.left, other.left),
            max(self.right, other.right),
            min(self.top, other.top),
            max(self.bottom, other.bottom),
            self.ink + other.ink,
        )


def _overlap(a: Piece, b: Piece) -> float:
    """Shared columns of two pieces as a share of the narrower piece's width."""
    return max(0, min(a.right, b.right) - max(a.left, b.left)) / min(a.width, b.width)


def _merged(pieces: list[Piece]) -> list[Piece]:
    """Pieces of one digit merged: overlapping columns, then flat or small parts to the piece
    they overlap most (or the nearest)."""
    pieces = sorted(pieces, key=lambda piece: piece.left)
    merged = True
    while merged:
        merged = False
        for i in range(len(pieces) - 1):
            for j in range(i + 1, len(pieces)):
                if _overlap(pieces[i], pieces[j]) >= OVERLAP_SHARE:
                    pieces[i] = pieces[i] | pieces.pop(j)
                    merged = True
                    break
            if merged:
                break
    largest = max(piece.ink for piece in pieces)
    tallest = max(piece.height for piece in pieces)

    def is_part(piece: Piece) -> bool:  # too small or too flat to be a digit of its own
        return piece.ink < SPECK_SHARE * largest or piece.height < PART_HEIGHT * tallest

    kept = [piece for piece in pieces if not is_part(piece)]
    for part in (piece for piece in pieces if is_part(piece)):
        centre = (part.left + part.right) / 2
        nearest = max(
            range(len(kept)),
            key=lambda k: (
                _overlap(kept[k], part),
                -abs((kept[k].left + kept[k].right) / 2 - centre),
            ),
        )
        kept[nearest] = kept[nearest] | part
    return kept


def _split(piece: Piece, labels: np.ndarray, count: int) -> list[Piece]:
    """`piece` cut into `count` parts at the columns of least ink near even spacing."""
    if count == 1:
        return [piece]
    columns = piece.mask(labels).sum(axis=0)
    window = max(1, round(piece.width / count / 4))
    cuts = [0]
    for k in range(1, count):
        centre = round(k * piece.width / count)
        low, high = max(1, centre - window), min(piece.width - 1, centre + window + 1)
        cuts.append(low + int(np.argmin(columns[low:high])))
    cuts.append(piece.width)
    parts = []
    for left, right in itertools.pairwise(cuts):
        ink = float(columns[left:right].sum())
        if ink:
            bounds = (piece.left + left, piece.left + right, piece.top, piece.bottom)
            parts.append(Piece(piece.marks, *bounds, ink))
    return parts


def segment(ink: np.ndarray) -> tuple[list[Piece], np.ndarray]:
    """The pieces of ink in an ink image (bright on 0), one or more digits each, left to right,
    and the labelled mask."""
    peak = float(ink.max())
    if peak <= 0:
        raise BadImage("no digit found: the image is blank")
    labels, count = ndimage.label(ink > INK_SHARE * peak, structure=np.ones((3, 3)))
    if count > MAX_MARKS:
        raise BadImage(
            f"{count} separate marks: too many for a number of up to {MAX_DIGITS} digits"
        )
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, range(1, count + 1))
    pieces = [
        Piece(frozenset([mark]), cols.start, cols.stop, rows.start, rows.stop, float(size))
        for mark, (rows, cols), size in zip(
            range(1, count + 1), ndimage.find_objects(labels), sizes, strict=True
        )
    ]
    return sorted(_merged(pieces), key=lambda piece: piece.left), labels


Probabilities = Callable[[np.ndarray], np.ndarray]  # (N, 28, 28) uint8 -> (N, 10)


@dataclass
class Reading:
    """A number read from a picture: its digits left to right, their boxes and probabilities."""

    digits: np.ndarray  # (N, 28, 28) uint8: what the model saw
    boxes: list[tuple[int, int, int, int]]  # (x, y, width, height) in the picture
    probabilities: np.ndarray  # (N, 10)

    @property
    def number(self) -> str:
        return "".join(str(label) for label in self.probabilities.argmax(axis=1))


def _digit_images(pieces: list[Piece], labels: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """Each piece's own ink (and the faint edges around it, not its neighbours') in 28x28."""
    images = []
    for piece in pieces:
        own = ndimage.binary_dilation(piece.mask(labels, EDGE), iterations=EDGE)
        images.append(mnist_style(np.where(own, ink[piece.window(EDGE)], 0.0)))
    return np.stack(images)


def _surest_split(
    piece: Piece, labels: np.ndarray, ink: np.ndarray, probabilities: Probabilities
) -> tuple[list[Piece], np.ndarray, np.ndarray]:
    """Read `piece` as 1, 2, ... digits; keep the reading with the highest mean log-probability."""
    most = 1
    if piece.width > TOUCHING_ASPECT * piece.height:
        most = max(2, int(piece.width / (NARROWEST_ASPECT * piece.height)))
    best = None
    for count in range(1, min(most, MAX_DIGITS) + 1):
        parts = _split(piece, labels, count)
        images = _digit_images(parts, labels, ink)
        found = probabilities(images)
        score = float(np.mean(np.log(np.maximum(found.max(axis=1), 1e-12))))
        if best is None or score > best[0]:
            best = (score, parts, images, found)
    return best[1:]


def read_number(
    data: bytes, probabilities: Probabilities, limits: Limits = DEFAULT_LIMITS
) -> Reading:
    """Uploaded picture bytes -> the number in it, read by `probabilities` (the model)."""
    ink = picture_to_ink(data, limits)
    pieces, labels = segment(ink)
    readings = [_surest_split(piece, labels, ink, probabilities) for piece in pieces]
    boxes = [part.box for parts, _, _ in readings for part in parts]
    if len(boxes) > MAX_DIGITS:
        raise BadImage(f"{len(boxes)} digits found; a number may have at most {MAX_DIGITS}")
    return Reading(
        np.concatenate([images for _, images, _ in readings]),
        boxes,
        np.concatenate([found for _, _, found in readings]),
    )
