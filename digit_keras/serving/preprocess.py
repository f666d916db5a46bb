"""Turn a real picture of one digit into the 28x28 image the models know, the way MNIST was made.

MNIST digits are light ink on black, scaled to fit a 20x20 box with their aspect ratio kept, and
placed in 28x28 so their centre of mass sits at the centre. A photo or a drawing is none of that,
so every picture goes through the same steps, shared by the API, the page and `predict IMAGE`:

1. grey: transparency composited onto white (a drawing on a transparent canvas is ink on paper);
2. light background (the median of the border pixels) -> inverted, so ink is bright;
3. background level subtracted, so a grey or noisy background reads as 0;
4. cropped to the ink's bounding box (pixels above a quarter of the brightest ink);
5. scaled to fit 20x20, aspect ratio kept; then placed in 28x28, centre of mass at the centre.

Limits are checked from the header, before the pixels are decoded (decompression bombs).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from digit_keras.errors import UserError

SIDE = 28  # the model's input
BOX = 20  # MNIST scales each digit to fit this box
INK_SHARE = 0.25  # pixels above this share of the brightest ink count as ink when cropping
MAX_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 4096 * 4096
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")


class BadImage(UserError):
    """A picture that cannot be read or holds no digit; the message says which."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS


DEFAULT_LIMITS = Limits()


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Image.Image:
    """Open an upload as a Pillow image, checking size, format and dimensions before decoding.

    Uploads are hostile until decoded: Pillow raises many kinds of error on crafted files (and
    its own decompression-bomb error before our size check can run), so every failure to open
    or decode becomes a BadImage naming what is wrong.
    """
    if not data:
        raise BadImage("the upload is empty")
    if len(data) > limits.max_bytes:
        raise BadImage(f"the upload is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise BadImage(_too_many_pixels("its header claims far more", limits)) from None
    except Exception:  # UnidentifiedImageError, or a crafted header Pillow chokes on
        raise BadImage(f"not an image in a known format ({', '.join(FORMATS)})") from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise BadImage(_too_many_pixels(f"the image is {width}x{height}", limits))
    try:
        image.load()
    except Exception as err:  # truncated or corrupt pixel data, whatever Pillow calls it
        raise BadImage(f"the image data is damaged: {err}") from None
    return image


def _too_many_pixels(what: str, limits: Limits) -> str:
    return f"{what}; the limit is {limits.max_pixels:,} pixels in all"


def to_grey(image: Image.Image) -> np.ndarray:
    """Grey levels 0-255 (float), transparent parts composited onto white."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32)


def ink_on_black(grey: np.ndarray) -> np.ndarray:
    """Bright ink on a 0 background: inverted when the border is light, background removed."""
    background = float(np.median(np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])))
    if background > 127:
        grey, background = 255.0 - grey, 255.0 - background
    return np.clip(grey - background, 0.0, None)


def mnist_style(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, fit it in 20x20 keeping its shape, centre its mass in 28x28 (uint8)."""
    peak = float(ink.max())
    if peak <= 0:
        raise BadImage("no digit found: the image is blank")
    is_ink = ink > INK_SHARE * peak
    rows, cols = np.flatnonzero(is_ink.any(axis=1)), np.flatnonzero(is_ink.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] * (255.0 / peak)
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS))
    digit = np.clip(digit, 0, 255)
    canvas = np.zeros((SIDE, SIDE), np.float32)
    centre_row, centre_col = ndimage.center_of_mass(digit)
    top = int(np.clip(round(SIDE / 2 - centre_row), 0, SIDE - digit.shape[0]))
    left = int(np.clip(round(SIDE / 2 - centre_col), 0, SIDE - digit.shape[1]))
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return np.round(canvas).astype(np.uint8)


def picture_to_ink(data: bytes, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Uploaded picture bytes -> bright ink on 0 (float), at the picture's size: steps 1-3."""
    image = decode(data, limits)
    try:
        grey = to_grey(image)
    except Exception as err:  # a pixel mode Pillow cannot turn grey
        raise BadImage(f"cannot read the colours of a {image.mode} image: {err}") from None
    return ink_on_black(grey)


def picture_to_digit(data: bytes, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Uploaded picture bytes -> the 28x28 uint8 image (ink 255 on 0) the model sees."""
    return mnist_style(picture_to_ink(data, limits))


def pixels_to_digit(pixels) -> np.ndarray:
    """JSON pixels (28x28 nested lists or 784 numbers, 0-255, MNIST-style) -> 28x28 uint8.

    These are taken as they are, without the picture steps: they already are a model input.
    """
    try:
        array = np.asarray(pixels, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadImage("pixels must be numbers: 28x28 nested lists or 784 values") from None
    if array.size != SIDE * SIDE or array.shape not in ((SIDE, SIDE), (SIDE * SIDE,)):
        raise BadImage(f"pixels must be 28x28 or 784 values; got shape {list(array.shape)}")
    if not np.isfinite(array).all():
        raise BadImage("pixels must be finite numbers (no NaN or infinity)")
    if array.min() < 0 or array.max() > 255:
        raise BadImage("pixel values must lie in 0-255")
    return np.round(array).astype(np.uint8).reshape(SIDE, SIDE)
