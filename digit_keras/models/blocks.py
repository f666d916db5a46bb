"""Layer blocks shared by the model families."""

from collections.abc import Callable, Sequence

import keras
from keras import layers

from digit_keras.models.deskew import Deskew
from digit_keras.models.fused_batch_norm import FusedBatchNormalization

# PyTorch's default (its 0.1). Keras's 0.99 averages over ~100 steps, so at a high learning rate
# the moving statistics trail the weights and early-epoch holdout scores collapse (11% after
# epoch 1 of `basic`); 0.9 follows within ~10 steps. Training itself never reads them, and the
# saved model gets exact statistics anyway (digit_keras/training/bn_recalibration.py).
BN_MOMENTUM = 0.9


def conv(x, filters: int, kernel_size: int, strides: int = 1, padding: str = "same", name=None):
    """Conv without bias: every conv here is followed, or preceded, by batch norm."""
    return layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False, name=name
    )(x)


def conv_bn_relu(
    x, filters: int, kernel_size: int, strides: int = 1, padding: str = "same", name=None
):
    """Conv -> BatchNorm -> ReLU."""
    x = conv(x, filters, kernel_size, strides, padding, name=name and f"{name}_conv")
    return bn_relu(x, name)


def batch_norm(x, name=None, gamma_initializer: str = "ones"):
    return FusedBatchNormalization(
        momentum=BN_MOMENTUM, gamma_initializer=gamma_initializer, name=name
    )(x)


def bn_relu(x, name=None):
    x = batch_norm(x, name=name and f"{name}_bn")
    return layers.ReLU(name=name and f"{name}_relu")(x)


def residual_stages(x, blocks: Sequence[int], widths: Sequence[int], block: Callable):
    """Stack `block(x, width, strides, name)`; each stage after the first starts at stride 2."""
    for stage, (count, width) in enumerate(zip(blocks, widths, strict=True), start=1):
        for index in range(1, count + 1):
            strides = 2 if stage > 1 and index == 1 else 1
            x = block(x, width, strides, name=f"stage{stage}_block{index}")
    return x


def image_input(input_shape: tuple[int, int, int], pad: int = 0, deskew: bool = False):
    """The model input and what the first layer sees: every model takes raw pixel values 0-255
    and scales them to [0, 1] itself, so training, export and serving share one input contract.
    With `deskew`, each digit's slant is then sheared away (`Deskew`); with `pad`, the image is
    zero-padded that many pixels a side (2: 28x28 to 32x32)."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    if deskew:
        x = Deskew(name="deskew")(x)
    if pad:
        x = layers.ZeroPadding2D(pad, name="pad")(x)
    return inputs, x


def logits_head(x, num_classes: int, dropout: float = 0.0):
    """Global average pool -> (dropout) -> float32 logits, even under mixed precision."""
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return logits(x, num_classes)


def logits(x, num_classes: int):
    """The output layer: float32 even under a mixed-precision policy, so the loss stays exact."""
    return layers.Dense(num_classes, dtype="float32", name="logits")(x)
