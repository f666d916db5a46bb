"""A small model registry: `register` a builder once, `build_model(name, **overrides)` anywhere."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import keras

from digit_keras.errors import UserError

ModelBuilder = Callable[..., keras.Model]
_BUILDERS: dict[str, ModelBuilder] = {}


def register(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator adding a builder under `name`; every keyword argument becomes an override."""

    def add(builder: ModelBuilder) -> ModelBuilder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return add


def list_models() -> list[str]:
    return list(_BUILDERS)


def get_builder(name: str) -> ModelBuilder:
    if name not in _BUILDERS:
        raise UserError(f"unknown architecture {name!r}; choose from: {', '.join(_BUILDERS)}")
    return _BUILDERS[name]


def build_model(name: str, **overrides) -> keras.Model:
    """Build a fresh model; unknown override names are an error, not silently ignored."""
    builder = get_builder(name)
    accepted = inspect.signature(builder).parameters
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise UserError(
            f"model {name!r} has no option {', '.join(unknown)}; "
            f"options: {', '.join(p for p in accepted)}"
        )
    return builder(**overrides)
