"""`vgg16`: VGG-16 (Simonyan & Zisserman 2015, arXiv:1409.1556) with batch norm, for digits.

The 13-conv layout in five stages of 3x3 convs, each stage closed by 2x2 max-pooling, with batch
norm after every conv (as in the CIFAR adaptations of VGG). Five poolings need a 32x32 input, so
the digit is zero-padded by 2 pixels a side: 32 -> 16 -> 8 -> 4 -> 2 -> 1. The ImageNet head of
three 4096-wide dense layers is replaced by one 512-wide dense layer with dropout: 15.0M
parameters in all (14.7M in the convs).
"""

import keras
from keras import layers

from digit_keras.models.blocks import bn_relu, conv_bn_relu, image_input, logits
from digit_keras.models.registry import register

STAGES = ((1, 2), (2, 2), (4, 3), (8, 3), (8, 3))  # (width multiple, convs) per stage


@register("vgg16")
def vgg16(
    width: int,
    dense_units: int,
    dropout: float,
    pad: int,
    deskew: bool,
    num_classes: int = 10,
    input_shape: tuple[int, int, int] = (28, 28, 1),
) -> keras.Model:
    """Build VGG-16-BN; `width` is the first stage's filter count (stages use 1, 2, 4, 8, 8x)."""
    inputs, x = image_input(input_shape, pad, deskew=deskew)
    for stage, (multiple, convs) in enumerate(STAGES, start=1):
        for index in range(1, convs + 1):
            x = conv_bn_relu(x, width * multiple, 3, name=f"stage{stage}_conv{index}")
        x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, use_bias=False, name="fc")(x)
    x = bn_relu(x, "fc")
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return keras.Model(inputs, logits(x, num_classes), name="vgg16")
