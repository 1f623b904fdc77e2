"""Configuration: reading a YAML config, applying ``--set`` overrides, building and checking a :class:`Config`.

The schema (sections, keys, defaults) is in solver/core/schema.py, the checks in solver/core/validation.py,
the hardened YAML reading in solver/core/yamlfile.py; this module is what the rest of the solver calls.
"""
from __future__ import annotations

import os
from typing import Any

from .. import models
from ..errors import ConfigError, ModelError
from . import yamlfile
from .yamlfile import parse_yaml
from .schema import BOUNDARIES, DEFAULT_MODEL, SIDES, Config, section_types
from .perturbations import show
from .validation import build_section, known_key, validate

__all__ = ["Config", "ConfigError", "BOUNDARIES", "SIDES", "load", "from_dict", "parse_yaml", "set_dotted",
           "with_values"]


def load(path: str | os.PathLike | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or only defaults when path is None), apply ``KEY=VALUE`` overrides, validate."""
    source = str(path) if path is not None else "<defaults>"
    data: dict = {}
    if path is not None:
        text = yamlfile.read(path, source)
        if yamlfile.safe_load(text, source) is None:
            raise ConfigError(f"{source}: the config is empty; write {{}} in it to run every default, or "
                              "name the keys that differ (configs/ has examples)")
        data = yamlfile.parse_yaml(text, source)
    for item in overrides:
        set_dotted(data, item, source)
    return from_dict(data, source)


def set_dotted(data: dict, item: str, source: str = "--set") -> None:
    """Apply one ``section.key=value`` override (value parsed as YAML) to a raw config mapping."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, for example --set time.t_end=0.5")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"--set {item!r}: empty part in the key {key!r}; use a dotted path like grid.nx")
    try:
        value = yamlfile.safe_load(text, f"--set {key}") if text.strip() else None
    except yamlfile.YamlTextError:      # other problems (a key given twice) are said as they are
        raise ConfigError(f"--set {key}: cannot parse the value {text!r} as YAML; quote it") from None
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def from_dict(data: dict, source: str = "<dict>") -> Config:
    """Build and validate a Config from a raw mapping."""
    model = load_model(data.get("model", DEFAULT_MODEL), source)
    types = section_types(model)
    sections = {"model": model.spec}
    for name, value in data.items():
        section = known_key(Config, str(name), source, "")
        if section == "model":
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name} must be a section (a mapping of keys), "
                              f"got {show(value)}")
        sections[section] = build_section(types[section], value, source, section)
    sections.setdefault("physics", model.Physics())
    sections.setdefault("initial", model.Initial())
    cfg = Config(**sections, source=source)
    validate(cfg)
    return cfg


def load_model(spec: Any, source: str) -> models.Model:
    """The model a config names; a relative file path is taken from the config file's folder."""
    if not isinstance(spec, str):
        raise ConfigError(f"{source}: model = {show(spec)}: expected the name of a built-in model "
                          f"({', '.join(models.BUILT_IN)}), a module or the path of a model file")
    base = os.path.dirname(os.path.abspath(source)) if os.path.isfile(source) else os.getcwd()
    try:
        return models.load(models.resolve(spec, base))
    except ModelError as err:
        raise ConfigError(f"{source}: {err}") from None


def with_values(cfg: Config, values: dict[str, Any]) -> Config:
    """A copy of cfg with dotted keys replaced (used by ensembles and studies), validated again."""
    data = cfg.to_dict()
    for key, value in values.items():
        section, name = key.split(".")
        data[section][name] = value
    return from_dict(data, cfg.source)
