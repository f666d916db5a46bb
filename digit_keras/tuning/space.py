"""Search spaces: `configs/tune/<arch>.toml` maps config keys to keras-tuner hyperparameters.

Each entry under `[space]` is a config key, as `--set` takes it, with a `type`:

    [space."optimizer.learning_rate"]
    type = "float"          # float | int | choice | boolean
    min = 3e-4
    max = 1e-2
    sampling = "log"        # linear (default) | log | reverse_log; float and int only

`[search]` holds the defaults of `--epochs` (per trial), `--max-trials` and `patience` (epochs
without a better holdout score before a random or Bayesian trial stops).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from digit_keras.config import TrainConfig, apply_overrides, read_toml
from digit_keras.errors import ConfigError

_FIELDS = {
    "float": ({"min", "max"}, {"step", "sampling"}),
    "int": ({"min", "max"}, {"step", "sampling"}),
    "choice": ({"values"}, set()),
    "boolean": (set(), set()),
}
_SAMPLINGS = ("linear", "log", "reverse_log")
_SEARCH_DEFAULTS = {"epochs": 5, "max_trials": 10, "patience": 2}


@dataclass(frozen=True)
class Hyperparameter:
    key: str  # the config key the value overrides, e.g. "optimizer.learning_rate"
    kind: str
    options: dict[str, Any]

    def sample(self, hp) -> Any:
        """Ask keras-tuner's HyperParameters for this trial's value."""
        o = self.options
        if self.kind == "float":
            return hp.Float(
                self.key, o["min"], o["max"], o.get("step"), o.get("sampling", "linear")
            )
        if self.kind == "int":
            return hp.Int(self.key, o["min"], o["max"], o.get("step"), o.get("sampling", "linear"))
        if self.kind == "choice":
            return hp.Choice(self.key, o["values"])
        return hp.Boolean(self.key)

    def examples(self) -> list[Any]:
        """Values at the edges of the range, to check they make a valid config."""
        if self.kind == "choice":
            return list(self.options["values"])
        if self.kind == "boolean":
            return [False, True]
        return [self.options["min"], self.options["max"]]


@dataclass
class SearchSpace:
    path: Path | Traversable
    hyperparameters: list[Hyperparameter]
    search: dict[str, int] = field(default_factory=lambda: dict(_SEARCH_DEFAULTS))

    def sample(self, hp) -> dict[str, Any]:
        """Config overrides for one trial."""
        return {h.key: h.sample(hp) for h in self.hyperparameters}

    def overrides(self, values: dict[str, Any]) -> dict[str, Any]:
        """The config overrides in a finished trial's hyperparameter values."""
        return {h.key: values[h.key] for h in self.hyperparameters if h.key in values}


def load_space(path: str | Path | Traversable, base: TrainConfig) -> SearchSpace:
    """Read and check a space file against `base`: every key must be a config key of its arch."""
    path = Path(path) if isinstance(path, str) else path
    raw = read_toml(path, "search space file")
    unknown = sorted(set(raw) - {"space", "search"})
    if unknown:
        raise ConfigError(f"{path}: unknown table '{unknown[0]}'; expected [space] and [search]")
    search = dict(_SEARCH_DEFAULTS)
    for key, value in raw.get("search", {}).items():
        if key not in search:
            raise ConfigError(f"{path}: [search] unknown key '{key}'; expected {list(search)}")
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"{path}: [search] '{key}' must be a non-negative integer")
        search[key] = value
    entries = _flatten(raw.get("space", {}), path)
    if not entries:
        raise ConfigError(f"{path}: [space] names no hyperparameter")
    hyperparameters = [_parse_entry(key, entry, path, base) for key, entry in entries.items()]
    return SearchSpace(path, hyperparameters, search)


def _flatten(
    table: dict[str, Any], path: Path | Traversable, prefix: str = ""
) -> dict[str, dict[str, Any]]:
    """[space."model.width"] and [space.model.width] both work: a table with `type` is an entry."""
    entries = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: space key '{key}' must be a table with a type")
        if "type" in value:
            entries[key] = value
        else:
            entries.update(_flatten(value, path, f"{key}."))
    return entries


def _parse_entry(
    key: str, entry: dict[str, Any], path: Path | Traversable, base: TrainConfig
) -> Hyperparameter:
    where = f"{path}: space key '{key}'"
    kind = entry["type"]
    if kind not in _FIELDS:
        raise ConfigError(f"{where}: type {kind!r} is not one of {', '.join(_FIELDS)}")
    required, optional = _FIELDS[kind]
    options = {name: value for name, value in entry.items() if name != "type"}
    if missing := sorted(required - set(options)):
        raise ConfigError(f"{where}: {kind} needs {', '.join(missing)}")
    if extra := sorted(set(options) - required - optional):
        raise ConfigError(f"{where}: {kind} takes no {', '.join(extra)}")
    if kind in ("float", "int"):
        if not options["min"] < options["max"]:
            raise ConfigError(f"{where}: min must be below max")
        sampling = options.get("sampling", "linear")
        if sampling not in _SAMPLINGS:
            raise ConfigError(f"{where}: sampling {sampling!r} is not one of {_SAMPLINGS}")
        if sampling != "linear" and options["min"] <= 0:
            raise ConfigError(f"{where}: {sampling} sampling needs min > 0")
    if kind == "choice" and (not isinstance(options["values"], list) or not options["values"]):
        raise ConfigError(f"{where}: values must be a non-empty list")
    hyperparameter = Hyperparameter(key, kind, options)
    _check_key(hyperparameter, where, base)
    return hyperparameter


def _check_key(hyperparameter: Hyperparameter, where: str, base: TrainConfig) -> None:
    """The key must name a config field (or a model option of the arch) and take every value."""
    key = hyperparameter.key
    for value in hyperparameter.examples():
        apply_overrides(base, {key: value}, source=where)  # raises naming the key and value
