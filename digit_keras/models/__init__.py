"""Model zoo: one module per family, all reachable through the registry."""

# Importing a family module registers its builders; `averaged` registers the layer that saved
# ensembles of trained models are loaded with.
from digit_keras.models import averaged, basic, mobilenet, resnet, vgg, wide_resnet  # noqa: F401
from digit_keras.models.registry import build_model, get_builder, list_models, register

__all__ = ["build_model", "get_builder", "list_models", "register"]
