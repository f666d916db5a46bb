"""`wrn28_10`: Wide ResNet WRN-28-10 (Zagoruyko & Komodakis 2016, arXiv:1605.07146).

Pre-activation basic blocks (BN-ReLU-conv3x3, dropout, BN-ReLU-conv3x3) in 3 stages of
(depth - 4) / 6 blocks, widths 16k/32k/64k for widen factor k, with the paper's dropout between
the two convs. CIFAR geometry: the digit is zero-padded by 2 to 32x32, then 32 -> 16 -> 8.
36.5M parameters at depth 28, k = 10, as published.
"""

from functools import partial

import keras
from keras import layers

from digit_keras.models.blocks import bn_relu, conv, image_input, logits_head, residual_stages
from digit_keras.models.registry import register


def wide_block(x, filters: int, strides: int, name: str, dropout: float = 0.0):
    """Pre-activation basic block; a projection shortcut shares the block's first BN-ReLU."""
    preact = bn_relu(x, f"{name}_pre")
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv(preact, filters, 1, strides, name=f"{name}_proj_conv")
    y = conv(preact, filters, 3, strides, name=f"{name}_a_conv")
    y = bn_relu(y, f"{name}_a")
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = conv(y, filters, 3, name=f"{name}_b_conv")
    return layers.Add(name=f"{name}_add")([shortcut, y])


@register("wrn28_10")
def wrn28_10(
    depth: int,
    widen_factor: int,
    dropout: float,
    pad: int,
    deskew: bool,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (28, 28, 1),
) -> keras.Model:
    """Build WRN-depth-k; depth = 6n + 4 gives n blocks per stage."""
    per_stage = (depth - 4) // 6
    inputs, x = image_input(input_shape, pad, deskew=deskew)
    x = conv(x, 16, 3, name="stem_conv")
    widths = [16 * widen_factor * 2**stage for stage in range(3)]
    x = residual_stages(x, [per_stage] * 3, widths, partial(wide_block, dropout=dropout))
    x = bn_relu(x, "final")
    name = f"wrn{depth}_{widen_factor}"  # what was built: depth=16, widen_factor=2 is wrn16_2
    return keras.Model(inputs, logits_head(x, num_classes), name=name)
