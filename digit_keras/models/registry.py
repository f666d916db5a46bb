"""A small model registry: `register` a builder once, `build_model(name, **overrides)` anywhere."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import keras

from digit_keras.config import MODEL_OPTIONS, model_options
from digit_keras.errors import UserError

# Builder arguments that are not options of a config: the task's shape, the same for every run.
TASK_ARGUMENTS = ("num_classes", "input_shape")

ModelBuilder = Callable[..., keras.Model]
_BUILDERS: dict[str, ModelBuilder] = {}


def register(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator adding a builder under `name`: its keyword arguments are the options the config
    declares for `name` (config.MODEL_OPTIONS, which owns their defaults), then the task's."""

    def add(builder: ModelBuilder) -> ModelBuilder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        declared = [option.name for option in dataclasses.fields(MODEL_OPTIONS[name])]
        if list(inspect.signature(builder).parameters) != [*declared, *TASK_ARGUMENTS]:
            raise ValueError(f"{builder.__name__} takes other arguments than {name!r} declares")
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
    """Build a fresh model: `overrides` over the options' defaults, checked as a config's are
    (an unknown name or a bad value is a UserError, not silently ignored)."""
    builder = get_builder(name)
    task = {key: overrides.pop(key) for key in TASK_ARGUMENTS if key in overrides}
    return builder(**model_options(name, overrides), **task)
