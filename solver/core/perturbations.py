"""Ensemble perturbations: which config keys a member may draw, from which distributions, and the checks of
their parameters. The draws themselves are the ensemble's (solver/ensemble.py); the rules live here so a
config is checked once, on loading."""
from __future__ import annotations

import math
from typing import Any

from ..errors import ConfigError
from .schema import Config

DISTRIBUTIONS = {"uniform": ("low", "high"), "normal": ("mean", "std"),
                 "lognormal": ("mean", "sigma"), "choice": ("values",)}
NOT_PERTURBED = ("ensemble", "parallel", "output", "checkpoint", "model", "boundary")   # sections


def show(value: Any) -> str:
    return "nothing" if value is None else f"{value!r} ({type(value).__name__})"


def perturbed_width(cfg: Config, key: str) -> int:
    """How many numbers a perturbed key holds: 2 for a pair such as initial.center, else 1."""
    section, name = key.split(".")
    return 2 if isinstance(getattr(getattr(cfg, section), name), tuple) else 1


def check_distribution(spec: dict, width: int, where: str) -> None:
    """Parameters are numbers, or for a pair key numbers or pairs (one per component); ranges make sense."""
    dist = spec["dist"]
    if dist == "choice":
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.values = {show(values)}: expected a non-empty list of values")
        return
    for name in DISTRIBUTIONS[dist]:
        value = spec[name]
        items = value if isinstance(value, list) and width > 1 and len(value) == width else [value]
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in items):
            shape = "a number" if width == 1 else f"a number or a list of {width} numbers (one per component)"
            raise ConfigError(f"{where}.{name} = {show(value)}: expected {shape}")
    parts = {name: components(spec[name], width) for name in DISTRIBUTIONS[dist]}
    if dist == "uniform" and any(not high > low for low, high in zip(parts["low"], parts["high"])):
        raise ConfigError(f"{where}: uniform needs high > low, got low = {spec['low']}, high = {spec['high']}")
    spread = {"normal": "std", "lognormal": "sigma"}.get(dist)
    if spread and min(parts[spread]) < 0:
        raise ConfigError(f"{where}.{spread} = {spec[spread]} must not be negative")


def components(value: Any, width: int) -> list:
    """A distribution parameter per component: a list as given, a single number repeated."""
    return list(value) if isinstance(value, list) else [value] * width
