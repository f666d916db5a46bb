"""Typed run configuration: TOML files in configs/, command-line overrides, saved beside each run.

A config resolves in this order: the dataclass defaults, then `configs/<arch>.toml` (or
`--config FILE`), then `--set key=value` overrides and the dedicated flags. The resolved config is
written to the run directory as `config.toml`; `fit --config RUN_DIR/config.toml` repeats the run.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import tomllib
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import Strict, TypeAdapter, ValidationError, field_validator

from digit_keras.errors import ConfigError

# The recipes ship inside the package, so an installed copy finds them from any folder; the
# repository's top-level configs/ is a link to this folder.
CONFIG_DIR = importlib.resources.files("digit_keras") / "configs"

# TOML values are typed: a config takes them as written (no "3" for 3, no 1 for true), except an
# int where a float is expected. pydantic validates against these annotations (`from_dict`).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
FORBID_UNKNOWN_KEYS = {"extra": "forbid"}


Width = Annotated[Int, Gt(0)]
Dropout = Annotated[Float, Ge(0.0), Lt(1.0)]
Padding = Annotated[Int, Ge(0)]  # zero pixels added on every side: 28 + 2 * pad per side


# The options of each model family (the `[model]` table), with the defaults its builder uses:
# checked with the rest of the config, before any data is read, and saved in full with each run.
# They live here, free of Keras, so a config is checked without importing it; the registry
# (models/registry.py) refuses a builder whose keyword arguments differ from its options.
@dataclass
class BasicOptions:
    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    width: Width = 32  # the first stage's filters; stages use 1x, 2x, 4x
    dropout: Dropout = 0.4
    deskew: Bool = False  # straighten each digit by its image moments first (models/deskew.py)


@dataclass
class MobileNetOptions:
    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    alpha: Annotated[Float, Gt(0.0)] = 1.0  # the paper's width multiplier
    dropout: Dropout = 0.2
    deskew: Bool = False


@dataclass
class VggOptions:
    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    width: Width = 64  # the first stage's filters; stages use 1, 2, 4, 8, 8x
    dense_units: Width = 512
    dropout: Dropout = 0.5
    pad: Padding = 2
    deskew: Bool = False


@dataclass
class ResNet50Options:
    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    blocks: Annotated[tuple[Width, ...], MinLen(1)] = (3, 4, 6, 3)  # bottleneck blocks per stage
    width: Width = 64  # stage 1's bottleneck width; stages use 1, 2, 4, 8x
    # small: a 3x3 stride-1 stem; stride2: the same at stride 2; imagenet: 7x7/2 and a max-pool
    stem: Literal["small", "stride2", "imagenet"] = "small"
    deskew: Bool = False


@dataclass
class ResNet164Options:
    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    depth: Int = 164  # 9n + 2: n bottleneck blocks per stage
    width: Width = 16
    pad: Padding = 2
    deskew: Bool = False

    @field_validator("depth")
    @classmethod
    def _blocks_fit(cls, depth: int) -> int:
        if depth < 11 or (depth - 2) % 9:
            raise ValueError("must be 9n + 2 (11, 20, ..., 164)")
        return depth


@dataclass
class WideResNetOptions:
    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    depth: Int = 28  # 6n + 4: n blocks per stage
    widen_factor: Width = 10
    dropout: Dropout = 0.3
    pad: Padding = 2
    deskew: Bool = False

    @field_validator("depth")
    @classmethod
    def _blocks_fit(cls, depth: int) -> int:
        if depth < 10 or (depth - 4) % 6:
            raise ValueError("must be 6n + 4 (10, 16, ..., 28)")
        return depth


MODEL_OPTIONS: dict[str, type] = {
    "basic": BasicOptions,
    "mobilenet": MobileNetOptions,
    "vgg16": VggOptions,
    "resnet50": ResNet50Options,
    "resnet164": ResNet164Options,
    "wrn28_10": WideResNetOptions,
}


def model_options(arch: str, values: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """Every option of `arch`'s network: `values` over the defaults, checked; a ConfigError
    names the architecture, key or value that is wrong."""
    where = f"{source}: " if source else ""
    options = MODEL_OPTIONS.get(arch)
    if options is None:
        known = ", ".join(MODEL_OPTIONS)
        raise ConfigError(f"{where}unknown architecture {arch!r}; choose from: {known}")
    names = [option.name for option in dataclasses.fields(options)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"{where}model {arch!r} has no option {', '.join(unknown)}; options: {', '.join(names)}"
        )
    try:
        return dataclasses.asdict(_validator(options).validate_python(values))
    except ValidationError as err:
        error = err.errors()[0]
        raise _config_error({**error, "loc": ("model", *error["loc"])}, source or arch) from None


@dataclass
class DataConfig:
    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    # "kaggle" (train.csv/test.csv) or "mnist" (keras.datasets.mnist)
    dataset: Literal["kaggle", "mnist"] = "kaggle"
    # stratified holdout share of the training rows; 0 trains on all
    val_fraction: Annotated[Float, Ge(0.0), Lt(1.0)] = 0.1
    # Seeds the holdout split and cv's folds, apart from `seed` (initial weights, shuffling,
    # augmentation), so runs of several seeds hold out the same rows and can be ensembled.
    split_seed: Int = 0
    limit: Annotated[Int, Ge(0)] = 0  # use only the first N training rows (0 = all), for smoke runs
    # Rows of train.csv (0-based) kept out of training, e.g. a label audit's list (`--drop-rows`);
    # they stay held out and scored, so a run without them is measured on the same rows.
    drop_rows: list[Annotated[Int, Ge(0)]] = field(default_factory=list)
    # The teacher (a finished cv run, a member file or a folder of them) whose test-set
    # predictions with a top probability of at least `pseudo_threshold` are added to training as
    # labels; "" = none. Only its models that never trained on this run's held-out rows teach
    # (training/pseudo_labels.py).
    pseudo_labels: str = ""
    pseudo_threshold: Annotated[Float, Gt(0.0), Le(1.0)] = 0.99


@dataclass
class AugmentConfig:
    """Per-image random affine transform of training batches, optionally with an elastic
    distortion; all strengths 0 turns augmentation off."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    rotation: Float = 10.0  # maximum rotation, degrees either way
    zoom: Float = 0.1  # maximum relative scale change either way
    shift: Float = 0.1  # maximum shift, as a fraction of the image side, either way
    # Elastic distortion (Simard et al. 2003): uniform noise in [-1, 1] per pixel, smoothed by a
    # Gaussian of `elastic_sigma` pixels, scaled by `elastic_alpha` pixels; 0 = off.
    elastic_alpha: Annotated[Float, Ge(0.0)] = 0.0
    elastic_sigma: Annotated[Float, Gt(0.0)] = 4.0
    # Stroke width: each image's strokes grow by up to this many pixels on every side (3x3 grey
    # dilations, fractions blended) or shrink by up to min(this, 0.5) (half an erosion); 0 = off.
    stroke: Annotated[Float, Ge(0.0), Le(3.0)] = 0.0

    @property
    def enabled(self) -> bool:
        return any((self.rotation, self.zoom, self.shift, self.elastic_alpha, self.stroke))


@dataclass
class OptimizerConfig:
    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    name: Literal["adam", "adamw", "sgd"] = "adam"
    learning_rate: Annotated[Float, Gt(0.0)] = 1e-3  # peak rate, reached after the warm-up
    # sgd: the papers' L2 penalty, coupled to the gradient; adamw: decoupled decay; adam: none
    # (digit_keras/training/optim.py says why the difference matters)
    weight_decay: Annotated[Float, Ge(0.0)] = 0.0
    momentum: Float = 0.9  # sgd only (Nesterov)
    schedule: Literal["cosine", "exponential", "constant"] = "cosine"
    warmup_epochs: Annotated[Float, Ge(0.0)] = 0.0  # linear warm-up from 0 to learning_rate
    decay_rate: Float = 0.95  # exponential only: factor per epoch
    # Keep an exponential moving average of the weights with this momentum per step and save
    # the average (Polyak averaging); 0 = off. Per-epoch holdout figures are the raw weights'.
    # Lowered for runs too short to forget their first steps (optim.ema_momentum).
    ema_momentum: Annotated[Float, Ge(0.0), Lt(1.0)] = 0.0


@dataclass
class TrainConfig:
    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    arch: str = "basic"
    epochs: Annotated[Int, Gt(0)] = 30
    # per replica; the global batch is this times the replica count
    batch_size: Annotated[Int, Gt(0)] = 128
    seed: Int = 0
    deterministic: Bool = False
    strategy: Literal["auto", "default", "mirrored", "multi-worker"] = "auto"
    # auto: bf16 where the hardware has it
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = "auto"
    # Images over which BatchNorm statistics are recomputed after training (0: keep Keras's
    # moving averages); see digit_keras/training/bn_recalibration.py.
    bn_recalibration_images: Annotated[Int, Ge(0)] = 8192
    # Save the resume state this often inside an epoch too (0: at epoch ends only), so a run
    # whose epochs take hours resumes close to where it stopped (single-process runs only).
    backup_minutes: Annotated[Float, Ge(0.0)] = 10.0
    # Share of each target spread evenly over all classes (training/losses.py); 0 = hard labels.
    label_smoothing: Annotated[Float, Ge(0.0), Lt(1.0)] = 0.0
    # the arch's options (MODEL_OPTIONS); a config may give some, a run saves them all
    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)


def choices(dotted: str) -> tuple[str, ...]:
    """The values a `Literal` field allows, e.g. choices("optimizer.name"), for the CLI."""
    return typing.get_args(_field_type(dotted.split(".")))


def _field_type(path: Sequence[str]) -> Any:
    """The type of a field of TrainConfig, by its path of names (empty: TrainConfig)."""
    kind: Any = TrainConfig
    for name in path:
        kind = typing.get_type_hints(kind)[name]
    return kind


def default_config_path(arch: str) -> Traversable:
    """The recipe shipped for `arch`; a ConfigError naming the known ones if there is none."""
    return _shipped(CONFIG_DIR, arch, "recipe", "--config")


def default_space_path(arch: str) -> Traversable:
    """The keras-tuner search space shipped for `arch` (configs/tune/)."""
    return _shipped(CONFIG_DIR / "tune", arch, "search space", "--space")


def named_recipes() -> list[str]:
    """The named recipes shipped in configs/recipes/, which `--config NAME` takes."""
    names = (entry.name for entry in (CONFIG_DIR / "recipes").iterdir() if entry.is_file())
    return sorted(name.removesuffix(".toml") for name in names if name.endswith(".toml"))


def config_file(name_or_path: str) -> Path | Traversable:
    """What `--config` names: a TOML file, or else a named recipe (configs/recipes/NAME.toml)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file() or len(path.parts) > 1:
        return path  # a file: load_config says so if it is missing
    recipe = CONFIG_DIR / "recipes" / f"{name_or_path}.toml"
    if not recipe.is_file():
        known = ", ".join(named_recipes())
        raise ConfigError(f"{name_or_path}: no such config file or named recipe (named: {known})")
    return recipe


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
    """Validate a config's tables (as TOML reads them); the first problem is a ConfigError."""
    try:
        config = _validator(TrainConfig).validate_python(raw)
    except ValidationError as err:
        raise _config_error(err.errors()[0], source) from None
    config.model = model_options(config.arch, config.model, source)
    if config.optimizer.name == "adam" and config.optimizer.weight_decay:
        raise ConfigError(
            f"{source}: 'optimizer.weight_decay' does nothing with adam; use optimizer.name=adamw"
        )
    return config


@functools.cache
def _validator(kind: type) -> TypeAdapter:
    return TypeAdapter(kind)


def _config_error(error: dict[str, Any], source: str) -> ConfigError:
    """One line naming the dotted key, what is wrong and the value given."""
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "unexpected_keyword_argument":
        table = _field_type(error["loc"][:-1])
        prefix = "".join(f"{part}." for part in error["loc"][:-1])
        known = ", ".join(sorted(prefix + f.name for f in dataclasses.fields(table)))
        return ConfigError(f"{source}: unknown key '{key}' (known: {known})")
    return ConfigError(f"{source}: '{key}': {error['msg']}; got {error['input']!r}")


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
