"""Residual networks with bottleneck blocks: `resnet50` and `resnet164`.

`resnet50` (He et al. 2015, arXiv:1512.03385): post-activation bottlenecks in [3, 4, 6, 3]
blocks, output widths 256-2048, stride on the 3x3 conv (as torchvision's "v1.5"). 23.5M
parameters, as ResNet-50 less its ImageNet classifier. Three stems (`stem=`):
  - "small" (default): one 3x3 conv, stride 1, no pooling, as CIFAR-size ResNets do; stages
    at 28 -> 14 -> 7 -> 4; 2,094 MFLOPs a digit.
  - "stride2": the same 3x3 conv with stride 2; stages at 14 -> 7 -> 4 -> 2; 579 MFLOPs.
  - "imagenet": the paper's 7x7 stride-2 conv and 3x3 stride-2 max-pool, which leave a 28x28
    digit 7x7 before the first block; stages at 7 -> 4 -> 2 -> 1; 156 MFLOPs.

`resnet164` (He et al. 2016, "Identity Mappings in Deep Residual Networks", arXiv:1603.05027):
pre-activation bottlenecks (BN-ReLU-conv three times), 3 stages of 18 blocks with bottleneck
widths 16/32/64 and outputs 4x that, on CIFAR's 32x32 geometry (the digit is zero-padded by 2):
32 -> 16 -> 8. 1.7M parameters, as published.
"""

import keras
from keras import layers

from digit_keras.models.blocks import (
    batch_norm,
    bn_relu,
    conv,
    conv_bn_relu,
    image_input,
    logits_head,
    residual_stages,
)
from digit_keras.models.registry import register

EXPANSION = 4


def bottleneck(x, width: int, strides: int, name: str):
    """Post-activation bottleneck: 1x1 -> 3x3 (strided) -> 1x1 x4, added to the shortcut."""
    shortcut = x
    if strides != 1 or x.shape[-1] != width * EXPANSION:
        shortcut = conv(x, width * EXPANSION, 1, strides, name=f"{name}_proj_conv")
        shortcut = batch_norm(shortcut, name=f"{name}_proj_bn")
    y = conv_bn_relu(x, width, 1, name=f"{name}_a")
    y = conv_bn_relu(y, width, 3, strides, name=f"{name}_b")
    y = conv(y, width * EXPANSION, 1, name=f"{name}_c_conv")
    # Zero-initialised scale: each block starts as the identity (Goyal et al. 2017), without
    # which the sum of 16 blocks' outputs made the first epochs diverge on digits.
    y = batch_norm(y, name=f"{name}_c_bn", gamma_initializer="zeros")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def preact_bottleneck(x, width: int, strides: int, name: str):
    """Pre-activation bottleneck; a projection shortcut shares the block's first BN-ReLU."""
    preact = bn_relu(x, f"{name}_pre")
    shortcut = x
    if strides != 1 or x.shape[-1] != width * EXPANSION:
        shortcut = conv(preact, width * EXPANSION, 1, strides, name=f"{name}_proj_conv")
    y = conv(preact, width, 1, name=f"{name}_a_conv")
    y = bn_relu(y, f"{name}_a")
    y = conv(y, width, 3, strides, name=f"{name}_b_conv")
    y = bn_relu(y, f"{name}_b")
    y = conv(y, width * EXPANSION, 1, name=f"{name}_c_conv")
    return layers.Add(name=f"{name}_add")([shortcut, y])


@register("resnet50")
def resnet50(
    blocks: tuple[int, ...],
    width: int,
    stem: str,
    deskew: bool,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (28, 28, 1),
) -> keras.Model:
    """Build ResNet-50; `width` is stage 1's bottleneck width (stages use 1, 2, 4, 8x)."""
    inputs, x = image_input(input_shape, deskew=deskew)
    if stem == "imagenet":
        x = conv_bn_relu(x, width, 7, 2, name="stem")
        x = layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    else:
        x = conv_bn_relu(x, width, 3, 2 if stem == "stride2" else 1, name="stem")
    x = residual_stages(x, blocks, [width * 2**stage for stage in range(len(blocks))], bottleneck)
    return keras.Model(inputs, logits_head(x, num_classes), name="resnet50")


@register("resnet164")
def resnet164(
    depth: int,
    width: int,
    pad: int,
    deskew: bool,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (28, 28, 1),
) -> keras.Model:
    """Build a pre-activation bottleneck ResNet; depth = 9n + 2 gives n blocks per stage."""
    per_stage = (depth - 2) // 9
    inputs, x = image_input(input_shape, pad, deskew=deskew)
    x = conv(x, width, 3, name="stem_conv")
    x = residual_stages(x, [per_stage] * 3, [width, 2 * width, 4 * width], preact_bottleneck)
    x = bn_relu(x, "final")
    return keras.Model(inputs, logits_head(x, num_classes), name=f"resnet{depth}")
