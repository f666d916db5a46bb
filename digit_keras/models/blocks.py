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
    return bn_relu(x, name)


def bn_relu(x, name=None):
    x = layers.BatchNormalization(name=name and f"{name}_bn")(x)
    return layers.ReLU(name=name and f"{name}_relu")(x)


def padded_input(input_shape: tuple[int, int, int], pad: int):
    """The model input, zero-padded by `pad` pixels a side (2 turns 28x28 into CIFAR's 32x32)."""
    import keras

    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.ZeroPadding2D(pad, name="pad")(inputs) if pad else inputs
    return inputs, x


def logits_head(x, num_classes: int, dropout: float = 0.0):
    """Global average pool -> (dropout) -> float32 logits, even under mixed precision."""
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(num_classes, dtype="float32", name="logits")(x)
