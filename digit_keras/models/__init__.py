"""Model zoo: one module per family, all reachable through the registry."""

from digit_keras.models import basic  # noqa: F401  (registers "basic")
from digit_keras.models.registry import build_model, get_builder, list_models, register

__all__ = ["build_model", "get_builder", "list_models", "register"]
