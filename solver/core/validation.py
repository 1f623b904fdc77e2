"""Checking a config: each value against the type of its default, then the relations between keys.

Any mistake becomes one :class:`~solver.errors.ConfigError` line naming the file, the key and the fix; nothing
downstream needs to check types again.
"""
from __future__ import annotations

import math
import re
from dataclasses import fields
from typing import Any

import numpy as np

from .. import models
from ..errors import ConfigError, ModelError
from . import sampling, series
from .perturbations import DISTRIBUTIONS, NOT_PERTURBED, check_distribution, perturbed_width, show
from .schema import (AUTO_COUNTS, BOUNDARIES, COMPRESSIONS, COUNT_PAIRS, KERNEL_CHOICES, MAX_NODES, MAX_STEPS,
                     PRECISIONS, SIDES, Config, section_types)


def close_matches(word: str, choices, n: int = 1) -> list[str]:
    """The nearest of ``choices`` to a misspelt ``word`` (difflib, imported only when a config is wrong)."""
    import difflib
    return difflib.get_close_matches(word, choices, n=n)


def known_key(cls, name: str, source: str, prefix: str) -> str:
    """name if cls has that field, else a ConfigError suggesting the closest one."""
    names = [f.name for f in fields(cls) if f.name != "source"]
    if name in names:
        return name
    where = f"{prefix}{name}"
    close = close_matches(name, names, n=1)
    hint = f"did you mean {prefix}{close[0]}?" if close else f"valid keys: {', '.join(names)}"
    raise ConfigError(f"{source}: unknown key {where!r}; {hint}")


def build_section(cls, raw: dict, source: str, section: str):
    values = {}
    defaults = cls()
    for key, value in raw.items():
        name = known_key(cls, str(key), source, section + ".")
        values[name] = _coerce(value, getattr(defaults, name), f"{section}.{name}", source)
    return cls(**values)


def _coerce(value: Any, default: Any, key: str, source: str) -> Any:
    """Check a value against the type of its default; the counts that default to 'auto' also take 'auto'."""
    bad = ConfigError(f"{source}: {key} = {show(value)}: expected "
                      f"{_expected(default, key)}")
    if key in COUNT_PAIRS:
        return _pair(value, int, bad)
    if key in AUTO_COUNTS:
        if value == "auto":
            return value
        if key == "parallel.ranks":
            return _pair(value, int, bad)
        return _whole(value, bad, key, source)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(default, int):
        return _whole(value, bad, key, source)
    if isinstance(default, float):
        number = _number(value)
        if number is None:
            raise bad
        if not math.isfinite(number):
            raise ConfigError(f"{source}: {key} = {value}: must be a finite number")
        return number
    if isinstance(default, tuple):
        return _pair(value, float, bad)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad
        return value
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise bad
        return value
    raise bad


# YAML 1.1 (PyYAML) reads 1e-3 and 1.0e3 as text: a number must have a dot and a signed exponent there.
_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _number(value: Any) -> float | None:
    """value as a float (inf for an int too large for one), or None if it is not a number."""
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _pair(value: Any, kind: type, bad: ConfigError) -> tuple:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise bad
    out = []
    for v in value:
        if kind is float:
            v = _number(v)
            if v is None or not math.isfinite(v):
                raise bad
        else:
            v = _whole(v, bad)
        out.append(kind(v))
    return tuple(out)


LARGEST_WHOLE = 2 ** 63 - 1     # the output stores the config's whole numbers as 64-bit integers


def _whole(value: Any, bad: ConfigError, key: str = "", source: str = "") -> int:
    """value, a whole number (not a bool) that a 64-bit integer holds, or the error ``bad``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad
    if abs(value) > LARGEST_WHOLE:
        if not key:
            raise bad
        raise ConfigError(f"{source}: {key} = {value} is too large: whole numbers must fit 64 bits "
                          f"(at most {LARGEST_WHOLE})")
    return value


def _expected(default: Any, key: str) -> str:
    if key in COUNT_PAIRS:
        return "a pair of whole numbers like [2, 2]"
    if key in AUTO_COUNTS:
        return "auto or a whole number"
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, tuple):
        return "a pair of numbers like [0.0, 1.0]"
    if isinstance(default, dict):
        return "a mapping"
    return "a string"


# --- checks across keys -----------------------------------------------------------------------
def sample_axes(cfg: Config, count: int = 9):
    """At most ``count`` node coordinates along x and along y, spread over each axis: where
    models.check_model tries the model's initial, exact and coefficient fields (and the run its kernel). Never as many along y as
    along x, so that a field returned transposed, ``(len(x), len(y))``, is refused there."""
    x, y = cfg.axis("x"), cfg.axis("y")
    sizes = [min(count, x.size), min(count, y.size)]
    if sizes[0] == sizes[1]:
        sizes[1] -= 1                    # a grid has at least 3 nodes a side: 2 or more remain
    axes = []
    for axis, size in zip((x, y), sizes):
        picked = sorted(set(np.linspace(0, axis.size - 1, size).astype(int).tolist()))
        axes.append(axis[picked])        # (not np.unique: it imports numpy.ma, 40 ms of a member's start-up)
    return axes


def validate(cfg: Config) -> None:
    """Check ranges and the relations between keys; raise one ConfigError naming key and fix."""
    src = cfg.source

    def fail(message: str) -> None:
        raise ConfigError(f"{src}: {message}")

    g = cfg.grid
    for key in ("nx", "ny"):
        if getattr(g, key) < 3:
            fail(f"grid.{key} = {getattr(g, key)} is below 3: the grid needs an interior node; use at least 3")
        if getattr(g, key) > MAX_NODES:
            fail(f"grid.{key} = {getattr(g, key)} is more nodes than any machine holds; use at most {MAX_NODES}")
    for key, spacing in (("x", "dx"), ("y", "dy")):
        lo, hi = getattr(g, key)
        if not hi > lo:
            fail(f"grid.{key} = [{lo}, {hi}]: the upper end must exceed the lower one")
        step = getattr(cfg, spacing)
        if not (1e-150 < step < 1e150):      # so that 1/dx^2 and the stability number stay finite
            fail(f"grid.{key} = [{lo}, {hi}] with {getattr(g, 'n' + key)} nodes gives {spacing} = {step:g}, "
                 "beyond what floating point resolves; choose a sensible extent")
    for key, value in (("time.dt", cfg.time.dt), ("time.t_end", cfg.time.t_end)):
        if not value > 0:
            fail(f"{key} = {value} must be positive")
    for side in SIDES:
        value = getattr(cfg.boundary, side)
        if value not in BOUNDARIES:
            close = close_matches(value, BOUNDARIES, n=1)
            fail(f"boundary.{side} = {value!r}; " + (f"did you mean {close[0]}?" if close else
                                                       f"choose one of {', '.join(BOUNDARIES)}"))
    for low, high in (("west", "east"), ("south", "north")):
        if (getattr(cfg.boundary, low) == "periodic") != (getattr(cfg.boundary, high) == "periodic"):
            fail(f"boundary.{low} = {getattr(cfg.boundary, low)} but boundary.{high} = "
                 f"{getattr(cfg.boundary, high)}: periodic takes both sides of an axis; set both to periodic")
    model = cfg.model_impl
    for side in SIDES:
        if getattr(cfg.boundary, side) == "flux" and not callable(getattr(model.module, "boundary_gradient", None)):
            fail(f"boundary.{side} = flux, but model {model.name} ({model.file}) defines no "
                 "boundary_gradient(physics, side, coordinates, t) giving the flux; define it (docs/models.md) "
                 "or use zero_flux")
    try:                  # every hook tried on the run's parameters and a sample of its nodes
        problem = models.check_model(model, cfg.physics, cfg.initial, *sample_axes(cfg), cfg.dx, cfg.dy,
                                     cfg.time.dt, cfg.boundary)
    except ModelError as err:
        fail(str(err))
    if problem:
        fail(f"{problem} (model {model.name})")
    if cfg.output.every < 0:
        fail(f"output.every = {cfg.output.every} must be 0 (final state only) or a positive step count")
    if cfg.checkpoint.every < 0:
        fail(f"checkpoint.every = {cfg.checkpoint.every} must be 0 (on signal only) or a positive step count")
    if not cfg.output.path:
        fail("output.path is empty: name an output file such as results/run.h5")
    _validate_output(cfg, fail)
    if cfg.numerics.kernel not in KERNEL_CHOICES:
        close = close_matches(cfg.numerics.kernel, KERNEL_CHOICES, n=1)
        hint = f"did you mean {close[0]}?" if close else f"choose one of {', '.join(KERNEL_CHOICES)}"
        fail(f"numerics.kernel = {cfg.numerics.kernel!r} is not a kernel; {hint}")
    p = cfg.parallel
    if p.threads != "auto" and p.threads < 1:
        fail(f"parallel.threads = {p.threads} must be auto or at least 1")
    if p.ranks != "auto" and min(p.ranks) < 1:
        fail(f"parallel.ranks = {list(p.ranks)} must be auto or two counts of at least 1")
    if p.halo != "auto" and p.halo < 1:
        fail(f"parallel.halo = {p.halo} must be auto or at least 1")

    steps = cfg.time.t_end / cfg.time.dt
    if not steps < MAX_STEPS:
        fail(f"time.t_end = {cfg.time.t_end} / time.dt = {cfg.time.dt} is {steps:.3g} steps, more than any run "
             f"can take; use at most {MAX_STEPS:.0e} steps")
    if abs(steps - round(steps)) > 1e-9 * max(1.0, steps) or round(steps) < 1:
        fail(f"time.t_end = {cfg.time.t_end} is not a whole number of steps of dt = {cfg.time.dt} "
             f"({steps:.6g} steps); choose t_end = {max(1, round(steps)) * cfg.time.dt:.6g} or another dt")
    limit = cfg.max_stable_dt
    if not cfg.time.dt <= limit:
        fail(f"time.dt = {cfg.time.dt} is unstable for the {model.name} model on this grid "
             f"({cfg.stability:.3g} times the largest stable dt); use time.dt <= {limit:.4g}")
    _validate_ensemble(cfg, src)


PROBE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def _choice(fail, key: str, value: str, choices) -> None:
    if value not in choices:
        close = close_matches(str(value), choices, n=1)
        fail(f"{key} = {value!r}; choose one of {', '.join(choices)}" + (f" (did you mean {close[0]}?)" if close else ""))


def _validate_output(cfg: Config, fail) -> None:
    """The output's storage, selection, probes and series (solver/core/sampling.py reads them)."""
    out = cfg.output
    _choice(fail, "output.precision", out.precision, PRECISIONS)
    _choice(fail, "output.compression", out.compression, COMPRESSIONS)
    if not 1 <= out.compression_level <= 9:
        fail(f"output.compression_level = {out.compression_level} must be a gzip level from 1 (fast) to 9 (small)")
    if min(out.subsample) < 1:
        fail(f"output.subsample = {list(out.subsample)} must be two counts of at least 1 ([1, 1] keeps every node)")
    for axis in out.window:
        if axis not in ("x", "y"):
            fail(f"output.window has a key {axis!r}; give x: [a, b] and/or y: [c, d]")
    for axis, span in out.window.items():
        lo, hi = _pair(span, float, ConfigError(f"{cfg.source}: output.window.{axis} = {show(span)}: expected "
                                                "a pair of numbers like [0.5, 1.5]"))
        if not lo <= hi:
            fail(f"output.window.{axis} = [{lo}, {hi}]: the upper end must not be below the lower one")
    for axis in ("x", "y"):
        kept = len(sampling.selection(cfg, axis))
        if kept < 2:
            lo, hi = getattr(cfg.grid, axis)
            fail(f"output.window and output.subsample keep {kept} node(s) along {axis}; snapshots need at least "
                 f"2 (widen output.window.{axis} within the domain's {axis} in [{lo:g}, {hi:g}], or lower the "
                 "subsample)")
    if out.probe_every < 1:
        fail(f"output.probe_every = {out.probe_every} must be at least 1 (steps between probe records)")
    if out.series_every < 0:
        fail(f"output.series_every = {out.series_every} must be 0 (no series) or a positive step count")
    (x0, x1), (y0, y1) = cfg.grid.x, cfg.grid.y
    for name, point in out.probes.items():
        if not isinstance(name, str) or not PROBE_NAME.fullmatch(name):
            fail(f"output.probes: the name {show(name)} must start with a letter and hold only letters, digits "
                 "and _ (64 at most): it names the probe's series in the file")
        where = f"output.probes.{name}"
        x, y = _pair(point, float, ConfigError(f"{cfg.source}: {where} = {show(point)}: expected a point [x, y]"))
        if sampling.snap(cfg, "x", x) is None or sampling.snap(cfg, "y", y) is None:
            fail(f"{where} = [{x!r}, {y!r}] lies outside the domain x in [{x0:g}, {x1:g}], y in [{y0:g}, {y1:g}]; "
                 "move it inside")
    _check_stored_names(cfg, fail)


def without_effect(cfg: Config) -> list[str]:
    """Settings given that change nothing (one line each, for a warning): a valid config, so that a run
    stopped or an ensemble computed with them still resumes (they are part of its result hash)."""
    out, defaults = cfg.output, type(cfg.output)()
    return [f"{cfg.source}: output.{key} = {str(value).lower() if isinstance(value, bool) else value} has no "
            "effect with output.compression = none (set output.compression: gzip to compress)"
            for key, value in (("compression_level", out.compression_level), ("shuffle", out.shuffle))
            if out.compression == "none" and value != getattr(defaults, key)]


def _check_stored_names(cfg: Config, fail) -> None:
    """Every variable the output would hold has a name of its own: the probes' and series' variables and
    time axes must not take the name of a field, a coefficient field or one another (HDF5 would refuse the
    second, after the run had started)."""
    out, model = cfg.output, cfg.model_impl
    owners = {"x": "the x coordinate", "y": "the y coordinate", "time": "the snapshots' time axis"}
    owners.update({name: f"the model's field {name}" for name in model.fields})
    owners.update({name: f"the model's coefficient field {name}" for name in model.coefficient_names})
    rename = f"rename the model's field in {model.file}"
    stored = []           # (name, the key that asks for it, what it holds, the fix)
    if out.series_every:
        every = f"output.series_every = {out.series_every}"
        fix = f"{rename}, or set output.series_every: 0"
        stored.append((sampling.RECORD_AXES["series"], every, "the series' time axis", fix))
        stored += [(f"{field}_{stat}", every, f"the {stat} of {field}", fix)
                   for field in model.fields for stat in series.STATISTICS]
    if out.probes:
        stored.append((sampling.RECORD_AXES["probe"], "output.probes", "the probes' time axis", rename))
        stored += [(f"probe_{probe}_{field}", f"output.probes.{probe}", f"probe {probe}'s value of {field}",
                    f"rename the probe {probe}") for probe in out.probes for field in model.fields]
    for name, key, what, fix in stored:
        if name in owners:
            fail(f"{key}: {what} would be stored as {name}, already the name of {owners[name]} in the output; "
                 f"{fix}")
        owners[name] = f"{what} ({key.split(' = ')[0]})"


def _validate_ensemble(cfg: Config, src: str) -> None:
    ens = cfg.ensemble
    types = section_types(cfg.model_impl)
    if ens.members < 0:
        raise ConfigError(f"{src}: ensemble.members = {ens.members} must be 0 or more")
    if ens.seed < 0:
        raise ConfigError(f"{src}: ensemble.seed = {ens.seed} must be 0 or more")
    if not ens.output_dir:
        raise ConfigError(f"{src}: ensemble.output_dir is empty: name a directory such as results/ensemble")
    for key, spec in ens.perturb.items():
        where = f"ensemble.perturb.{key}"
        parts = str(key).split(".")
        if len(parts) != 2 or parts[0] in NOT_PERTURBED:
            raise ConfigError(f"{src}: {where}: perturb a number of the problem, such as a physics key")
        section = known_key(Config, parts[0], src, "")
        known_key(types[section], parts[1], src, section + ".")
        if not isinstance(spec, dict) or "dist" not in spec:
            raise ConfigError(f"{src}: {where} must be a mapping with dist: "
                              f"{' | '.join(DISTRIBUTIONS)} and its parameters")
        dist = spec["dist"]
        if not isinstance(dist, str) or dist not in DISTRIBUTIONS:
            raise ConfigError(f"{src}: {where}.dist = {dist!r}; choose one of {', '.join(DISTRIBUTIONS)}")
        need = set(DISTRIBUTIONS[dist])
        have = set(spec) - {"dist"}
        if have != need:
            raise ConfigError(f"{src}: {where}: {dist} takes {', '.join(sorted(need))}, got "
                              f"{', '.join(sorted(map(str, have))) or 'nothing'}")
        check_distribution(spec, perturbed_width(cfg, key), f"{src}: {where}")
