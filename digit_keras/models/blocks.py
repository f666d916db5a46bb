"""Layer blocks shared by the model families."""

from keras import layers


def conv_bn_relu(
    x, filters: int, kernel_size: int, strides: int = 1, padding: str = "same", name=None
):
    """Conv (no bias: batch norm supplies the shift) -> BatchNorm -> ReLU."""
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        name=name and f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(name=name and f"{name}_bn")(x)
    return layers.ReLU(name=name and f"{name}_relu")(x)
