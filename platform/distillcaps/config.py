"""One typed configuration for every command: dataclasses, loaded from YAML, with dotted overrides.

    cfg = load_config("tiny", ["train.epochs=3", "retrieval.top_k=5"])

Each section's dataclass lives beside the code it configures (``distillcaps.<room>.config``); this
module only composes them and does the typed loading. Unknown keys and values of the wrong type are
errors that name the dotted key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml

from distillcaps.data.config import DataConfig
from distillcaps.evaluation.config import EvalConfig
from distillcaps.model.config import ModelConfig
from distillcaps.retrieval.config import RetrievalConfig
from distillcaps.tracking.config import TrackingConfig
from distillcaps.training.config import TrainConfig

# The shipped presets are package data (platform/distillcaps/configs/), so an installed wheel has them.
CONFIG_DIR: Traversable = resources.files("distillcaps") / "configs"


class ConfigError(ValueError):
    """A config file or override is wrong; the message names the dotted key."""


@dataclass
class Config:
    # tiny: CPU in minutes; smol: a real pretrained Llama (SmolLM2-135M) on the embedded data;
    # paper: the paper's setup on GPUs
    preset: Literal["tiny", "smol", "paper"] = "tiny"
    run_dir: str = "runs"  # checkpoints, MLflow store and results land under here (relative to cwd)
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value, e.g. for MLflow params."""
        return flatten(self.to_dict())


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Build a Config from a YAML file (or the defaults) plus ``key.sub=value`` overrides.

    A name without a slash or suffix (``tiny``, ``smol``, ``paper``) is a shipped preset
    (``distillcaps/configs/NAME.yaml``, see ``shipped_configs()``); anything else is a file path.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(resolve_config_path(path))
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    return from_dict(Config, raw)


def shipped_configs() -> dict[str, Traversable]:
    """Preset name -> its YAML in the package."""
    return {f.name.removesuffix(".yaml"): f for f in CONFIG_DIR.iterdir() if f.name.endswith(".yaml")}


def resolve_config_path(path: str | Path) -> Path | Traversable:
    p = Path(path)
    if p.suffix not in (".yaml", ".yml") and len(p.parts) == 1:
        shipped = shipped_configs()
        if str(path) not in shipped:
            raise ConfigError(f"no preset {str(path)!r}; shipped: {', '.join(sorted(shipped))}")
        return shipped[str(path)]
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    return p


def read_yaml(path: Path | Traversable) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.sub=value")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    return key, value


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
        node = nxt
    node[parts[-1]] = value


# ---------------------------------------------------------------------------------------------
# Typed conversion


def from_dict(cls: type, raw: Mapping[str, Any], prefix: str = "") -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r}; valid keys here: {', '.join(sorted(names))}"
        )
    kwargs = {k: coerce(hints[k], v, prefix + k) for k, v in raw.items()}
    return cls(**kwargs)


def coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, key + ".")
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_tp = args[0] if args else Any
        items = [coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # PyYAML reads `2e-4` (no dot) as a string; accept any text float() understands.
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            # YAML turns `key=1e-5`-like strings into numbers; a str field takes its text back.
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp}")


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
