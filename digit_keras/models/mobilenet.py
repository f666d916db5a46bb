"""`mobilenet`: MobileNet v1 (Howard et al. 2017, arXiv:1704.04861) for 28x28 digits.

The ImageNet layout of 13 depthwise-separable blocks, widths 64-1024 times `alpha`. On 224x224
images the net downsamples 32x; on 28x28 digits that would leave under one pixel, so the early
stride-2 step (the stem) and the late one (block 12) are relaxed to stride 1, keeping three
halvings: 28 -> 14 -> 7 -> 4. About 3.2M parameters at alpha 1.0, as in the paper (less the
ImageNet classifier).
"""

import keras
from keras import layers

from digit_keras.models.blocks import bn_relu, conv_bn_relu, image_input, logits_head
from digit_keras.models.registry import register

# (pointwise filters, stride) of the 13 depthwise-separable blocks; block 12 relaxed to stride 1.
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 1),
    (1024, 1),
)


@register("mobilenet")
def mobilenet(
    alpha: float,
    dropout: float,
    deskew: bool,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (28, 28, 1),
) -> keras.Model:
    """Build MobileNet v1; `alpha` is the paper's width multiplier. Returns logits."""
    inputs, x = image_input(input_shape, deskew=deskew)
    x = conv_bn_relu(x, max(8, int(32 * alpha)), 3, name="stem")
    for index, (filters, strides) in enumerate(BLOCKS, start=1):
        name = f"block{index}"
        x = layers.DepthwiseConv2D(
            3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw"
        )(x)
        x = bn_relu(x, f"{name}_dw")
        x = conv_bn_relu(x, max(8, int(filters * alpha)), 1, name=f"{name}_pw")
    return keras.Model(inputs, logits_head(x, num_classes, dropout), name="mobilenet")
