"""Typed run configuration: TOML files in configs/, command-line overrides, saved beside each run.

A config resolves in this order: the dataclass defaults, then `configs/<arch>.toml` (or
`--config FILE`), then `--set key=value` overrides and the dedicated flags. The resolved config is
written to the run directory as `config.toml`; `fit --config RUN_DIR/config.toml` repeats the run.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from digit_keras.errors import ConfigError

# The recipes ship inside the package, so an installed copy finds them from any folder; the
# repository's top-level configs/ is a link to this folder.
CONFIG_DIR = importlib.resources.files("digit_keras") / "configs"


@dataclass
class DataConfig:
    dataset: str = "kaggle"  # "kaggle" (train.csv/test.csv) or "mnist" (keras.datasets.mnist)
    val_fraction: float = 0.1  # stratified holdout share of the training rows; 0 trains on all
    # Seeds the holdout split and cv's folds, apart from `seed` (initial weights, shuffling,
    # augmentation), so runs of several seeds hold out the same rows and can be ensembled.
    split_seed: int = 0
    limit: int = 0  # use only the first N training rows (0 = all), for smoke runs


@dataclass
class AugmentConfig:
    """Per-image random affine transform of training batches; set all three to 0 to turn it off."""

    rotation: float = 10.0  # maximum rotation, degrees either way
    zoom: float = 0.1  # maximum relative scale change either way
    shift: float = 0.1  # maximum shift, as a fraction of the image side, either way

    @property
    def enabled(self) -> bool:
        return any((self.rotation, self.zoom, self.shift))


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | adamw | sgd
    learning_rate: float = 1e-3  # peak rate, reached after the warm-up
    # sgd: the papers' L2 penalty, coupled to the gradient; adamw: decoupled decay; adam: none
    # (digit_keras/training/optim.py says why the difference matters)
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only (Nesterov)
    schedule: str = "cosine"  # cosine | exponential | constant
    warmup_epochs: float = 0.0  # linear warm-up from 0 to learning_rate
    decay_rate: float = 0.95  # exponential only: factor per epoch


@dataclass
class TrainConfig:
    arch: str = "basic"
    epochs: int = 30
    batch_size: int = 128  # per replica; the global batch is this times the replica count
    seed: int = 0
    deterministic: bool = False
    strategy: str = "auto"  # auto | default | mirrored | multi-worker
    precision: str = "auto"  # auto (bf16 where the hardware has it) | float32 | mixed_bfloat16
    # Images over which BatchNorm statistics are recomputed after training (0: keep Keras's
    # moving averages); see digit_keras/training/batch_norm.py.
    bn_recalibration_images: int = 8192
    model: dict[str, Any] = field(default_factory=dict)  # keyword overrides for the model builder
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)


CHOICES = {
    "strategy": ("auto", "default", "mirrored", "multi-worker"),
    "precision": ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    "data.dataset": ("kaggle", "mnist"),
    "optimizer.name": ("adam", "adamw", "sgd"),
    "optimizer.schedule": ("cosine", "exponential", "constant"),
}


def default_config_path(arch: str) -> Traversable:
    """The recipe shipped for `arch`; a ConfigError naming the known ones if there is none."""
    return _shipped(CONFIG_DIR, arch, "recipe", "--config")


def default_space_path(arch: str) -> Traversable:
    """The keras-tuner search space shipped for `arch` (configs/tune/)."""
    return _shipped(CONFIG_DIR / "tune", arch, "search space", "--space")


def shipped_recipes() -> list[str]:
    """The architectures with a recipe in configs/."""
    names = (entry.name for entry in CONFIG_DIR.iterdir() if entry.is_file())
    return sorted(name.removesuffix(".toml") for name in names if name.endswith(".toml"))


def _shipped(folder: Traversable, arch: str, what: str, flag: str) -> Traversable:
    path = folder / f"{arch}.toml"
    if not path.is_file():
        known = ", ".join(shipped_recipes())
        raise ConfigError(f"no {what} for architecture {arch!r} (known: {known}); pass {flag} FILE")
    return path


def read_toml(path: Path | Traversable, what: str = "config file") -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed one is a one-line ConfigError naming it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def load_config(path: str | Path | Traversable) -> TrainConfig:
    """Read a TOML config file into a validated TrainConfig."""
    path = Path(path) if isinstance(path, str) else path
    return from_dict(read_toml(path), source=str(path))


def from_dict(raw: dict[str, Any], source: str = "config") -> TrainConfig:
    config = _build(TrainConfig, raw, prefix="", source=source)
    validate(config, source)
    return config


def _build(cls: type, raw: dict[str, Any], prefix: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            known = ", ".join(sorted(prefix + n for n in names))
            raise ConfigError(f"{source}: unknown key '{dotted}' (known: {known})")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{dotted}' must be a table")
            kwargs[key] = _build(kind, value, f"{dotted}.", source)
        else:
            kwargs[key] = _coerce(value, kind, dotted, source)
    return cls(**kwargs)


def _coerce(value: Any, kind: Any, key: str, source: str) -> Any:
    """Check a TOML value against the field's type; ints are accepted where floats are expected."""
    expected = typing.get_origin(kind) or kind
    if expected is dict:
        ok = isinstance(value, dict)
    elif expected is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(expected, types.UnionType):
        ok = isinstance(value, typing.get_args(kind))
    else:
        ok = isinstance(value, expected)
    if not ok:
        name = getattr(expected, "__name__", str(expected))
        raise ConfigError(f"{source}: '{key}' must be {name}, got {value!r}")
    return value


def validate(config: TrainConfig, source: str) -> None:
    for key, allowed in CHOICES.items():
        value = get_value(config, key)
        if value not in allowed:
            raise ConfigError(
                f"{source}: '{key}' must be one of {', '.join(allowed)}; got {value!r}"
            )
    positive = {"epochs": config.epochs, "batch_size": config.batch_size}
    positive["optimizer.learning_rate"] = config.optimizer.learning_rate
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{source}: '{key}' must be positive; got {value!r}")
    if not 0.0 <= config.data.val_fraction < 1.0:
        raise ConfigError(f"{source}: 'data.val_fraction' must be in [0, 1)")
    if config.bn_recalibration_images < 0:
        raise ConfigError(f"{source}: 'bn_recalibration_images' must be 0 (off) or positive")
    if config.optimizer.weight_decay < 0:
        raise ConfigError(f"{source}: 'optimizer.weight_decay' must be 0 or positive")
    if config.optimizer.name == "adam" and config.optimizer.weight_decay:
        raise ConfigError(
            f"{source}: 'optimizer.weight_decay' does nothing with adam; use optimizer.name=adamw"
        )
    if config.data.limit < 0:
        raise ConfigError(f"{source}: 'data.limit' must be 0 (all rows) or positive")


def get_value(config: TrainConfig, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def apply_overrides(config: TrainConfig, overrides: dict[str, Any], source: str) -> TrainConfig:
    """Return a copy of `config` with dotted keys replaced, validated like a config file."""
    raw = dataclasses.asdict(config)
    for dotted, value in overrides.items():
        table = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(table.get(part), dict):
                raise ConfigError(f"{source}: unknown key '{dotted}'")
            table = table[part]
        table[leaf] = value
    return from_dict(raw, source=source)


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse `key=value` from --set; the value is read as TOML, falling back to a bare string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed


def to_toml(config: TrainConfig) -> str:
    """Serialise a config as TOML that `load_config` reads back unchanged."""
    import tomli_w  # the train extra has it; a serve-only install never writes configs

    return tomli_w.dumps(dataclasses.asdict(config))
