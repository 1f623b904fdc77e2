"""Configuration: the YAML schema, its validation and ``--set`` overrides.

A config is a YAML mapping of sections (``grid``, ``physics``, ...) and the name of its model (``model:``,
see solver/models). Every key has a default, here or in the model's file, so a config file names only what
differs; the ``physics`` and ``initial`` sections are the model's. Validation turns any mistake into one :class:`ConfigError` line that
names the file, the key and the fix; nothing downstream needs to check types again.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import yaml

from . import models


class ConfigError(ValueError):
    """A bad config value or command-line override; the message is one line for the user."""

    def __init__(self, message: str):
        # keys and values quoted in a message may hold line breaks: keep the message one line
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


@dataclass(frozen=True)
class Grid:
    nx: int = 1024                        # nodes along x, boundaries included (as np.linspace)
    ny: int = 512                         # nodes along y
    x: tuple[float, float] = (0.0, 2.0)   # domain extent along x
    y: tuple[float, float] = (0.0, 1.0)   # domain extent along y


BOUNDARIES = ("fixed", "zero_flux", "periodic")
SIDES = ("west", "east", "south", "north")


@dataclass(frozen=True)
class Boundary:
    """Per side: fixed (boundary nodes keep their initial values), zero_flux (mirror) or periodic."""
    west: str = "fixed"
    east: str = "fixed"
    south: str = "fixed"
    north: str = "fixed"

    def periodic(self, axis: str) -> bool:
        return getattr(self, "west" if axis == "x" else "south") == "periodic"


@dataclass(frozen=True)
class Time:
    dt: float = 0.001                     # time step
    t_end: float = 5.0                    # simulated time; a whole number of steps


@dataclass(frozen=True)
class Output:
    path: str = "results/default.h5"      # HDF5 file, relative to the working directory
    every: int = 0                        # steps between snapshots; 0 = initial and final state only


@dataclass(frozen=True)
class Numerics:
    kernel: str = "auto"                  # auto (tiled once the fields outgrow the cache, else numba) | numba |
                                          # tiled (temporal blocking) | numpy (reference); all give the same bits


@dataclass(frozen=True)
class Parallel:
    threads: int | str = "auto"           # numba threads per rank: auto or a number
    ranks: tuple[int, int] | str = "auto" # MPI process grid [px, py] or auto (MPI.Compute_dims)
    halo: int | str = "auto"              # halo width k: exchange every k steps; auto: from the launch and the
                                          # subdomain size (solver/run.py plan)


@dataclass(frozen=True)
class Checkpoint:
    every: int = 0                        # steps between checkpoints; 0 = only on a signal
    path: str = ""                        # default: output path with .ckpt.h5


@dataclass(frozen=True)
class Ensemble:
    seed: int = 0                                      # members draw from SeedSequence([seed, member])
    members: int = 0                                   # size of the ensemble (for drivers and statistics)
    perturb: dict = field(default_factory=dict)        # config key -> distribution
    output_dir: str = "results/ensemble"               # member-NNNN.h5 files go here


DEFAULT_MODEL = "diffusion"


@dataclass(frozen=True)
class Config:
    model: str = DEFAULT_MODEL            # built-in name, module name or absolute path of a model file
    grid: Grid = field(default_factory=Grid)
    physics: Any = field(default_factory=lambda: models.load(DEFAULT_MODEL).Physics())   # the model's
    initial: Any = field(default_factory=lambda: models.load(DEFAULT_MODEL).Initial())   # the model's
    boundary: Boundary = field(default_factory=Boundary)
    time: Time = field(default_factory=Time)
    output: Output = field(default_factory=Output)
    numerics: Numerics = field(default_factory=Numerics)
    parallel: Parallel = field(default_factory=Parallel)
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    ensemble: Ensemble = field(default_factory=Ensemble)
    source: str = field(default="<defaults>", compare=False)   # where it came from, for messages

    # --- derived quantities -------------------------------------------------------------------
    @property
    def model_impl(self) -> models.Model:
        """The loaded model (imported once per process)."""
        return models.load(self.model)

    def axis(self, name: str):
        """Node coordinates along ``x`` or ``y``: both ends included, or, on a periodic axis, the start
        included and the end (the start again) left out."""
        import numpy as np
        (lo, hi), n = getattr(self.grid, name), getattr(self.grid, "n" + name)
        if self.boundary.periodic(name):
            return lo + (hi - lo) / n * np.arange(n)
        return np.linspace(lo, hi, n)

    @property
    def dx(self) -> float:
        return (self.grid.x[1] - self.grid.x[0]) / (self.grid.nx - (0 if self.boundary.periodic("x") else 1))

    @property
    def dy(self) -> float:
        return (self.grid.y[1] - self.grid.y[0]) / (self.grid.ny - (0 if self.boundary.periodic("y") else 1))

    @property
    def nsteps(self) -> int:
        return round(self.time.t_end / self.time.dt)

    @property
    def max_stable_dt(self) -> float:
        """The largest stable time step of the model on this grid."""
        return float(self.model_impl.max_stable_dt(self.physics, self.dx, self.dy))

    @property
    def stability(self) -> float:
        """dt as a fraction of the largest stable dt: the run is stable up to 1."""
        limit = self.max_stable_dt
        return self.time.dt / limit if limit > 0 else math.inf

    def coefficients(self) -> tuple[float, ...]:
        """The model's coefficients for this grid and time step, passed to every point update."""
        return tuple(float(k) for k in self.model_impl.coefficients(self.physics, self.dx, self.dy, self.time.dt))

    def to_dict(self) -> dict:
        return _to_plain(self)

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=YAML_DUMPER, sort_keys=False, default_flow_style=None)


KERNELS = ("auto", "numba", "tiled", "numpy")
AUTO_COUNTS = ("parallel.threads", "parallel.ranks", "parallel.halo")    # a count, or auto
MAX_NODES = 2 ** 31 - 1     # per axis: far beyond any memory, and keeps dx and the indices sane
MAX_STEPS = 1e15
DISTRIBUTIONS = {"uniform": ("low", "high"), "normal": ("mean", "std"),
                 "lognormal": ("mean", "sigma"), "choice": ("values",)}


def section_types(model: models.Model) -> dict[str, type]:
    """Section name -> dataclass, with the model's physics and initial sections."""
    return {**_SECTION_TYPES, "physics": model.Physics, "initial": model.Initial}


def _to_plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj) if f.name != "source"}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


# --- loading ----------------------------------------------------------------------------------
def load(path: str | os.PathLike | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or only defaults when path is None), apply ``KEY=VALUE`` overrides, validate."""
    source = str(path) if path is not None else "<defaults>"
    data: dict = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
        except FileNotFoundError:
            raise ConfigError(f"{source}: no such config file; check the path (configs/ has examples)") from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"{source}: not UTF-8 text (byte {err.start}); is it a YAML config?") from None
        except OSError as err:
            raise ConfigError(f"{source}: cannot read the config: {err.strerror}") from None
        if _safe_load(text, source) is None:
            raise ConfigError(f"{source}: the config is empty; write {{}} in it to run every default, or "
                              "name the keys that differ (configs/ has examples)")
        data = parse_yaml(text, source)
    for item in overrides:
        set_dotted(data, item, source)
    return from_dict(data, source)


def parse_yaml(text: str, source: str) -> dict:
    """Safe-load a YAML mapping; syntax errors and Python tags become one-line ConfigErrors."""
    data = _safe_load(text, source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a config is a mapping of sections (grid:, time:, ...), "
                          f"not a {type(data).__name__}")
    return data


MAX_YAML_VALUES = 100_000     # values of a config with its aliases expanded: far beyond any real config


# libyaml's parser and emitter when PyYAML was built with it (pip wheels are), as an ensemble member reads
# two configs and writes one: the same documents (and the same text for every config here), a tenth of the time
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _check_nodes(root, source: str) -> None:
    """Before anything is constructed: no mapping names a key twice (YAML would keep the last silently),
    and aliases do not expand to more than MAX_YAML_VALUES values (an alias bomb)."""
    sizes: dict[int, int] = {}

    def size(node) -> int:          # values once every alias is expanded, each shared node counted once
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1          # a node reached again while being sized (a recursive alias)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        raise ConfigError(f"{source} (line {key.start_mark.line + 1}): the key {key.value!r} "
                                          f"appears twice in one mapping (also line {seen[key.value]}); "
                                          "keep one of them")
                    seen[key.value] = key.start_mark.line + 1
                total += size(key) + size(value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        if total > MAX_YAML_VALUES:
            raise ConfigError(f"{source}: the YAML expands to more than {MAX_YAML_VALUES} values (aliases "
                              "repeated inside aliases?); a config is a few sections of plain keys")
        sizes[id(node)] = total
        return total

    size(root)


def _close_matches(word: str, choices, n: int = 1) -> list[str]:
    """The nearest of ``choices`` to a misspelt ``word`` (difflib, imported only when a config is wrong)."""
    import difflib
    return difflib.get_close_matches(word, choices, n=n)


def _safe_load(text: str, source: str) -> Any:
    """yaml.safe_load with every failure as one ConfigError line (PyYAML also raises ValueError for a
    date like 2001-02-30 or ``!!int abc``, KeyError for ``!!bool maybe``, RecursionError for deep nesting).
    Duplicate keys and alias bombs are refused before anything is built (_check_nodes)."""
    try:
        # libyaml takes exact str (or bytes): not the numpy subclasses an HDF5 attribute gives
        loader = YAML_LOADER(bytes(text).decode() if isinstance(text, bytes) else str(text))
        try:
            root = loader.get_single_node()          # parsed once: checked, then built
            if root is None:
                return None
            _check_nodes(root, source)
            return loader.construct_document(root)
        finally:
            loader.dispose()
    except ConfigError:
        raise
    except yaml.constructor.ConstructorError as err:
        line = f" (line {err.problem_mark.line + 1})" if err.problem_mark else ""
        hint = "configs hold plain YAML values only, remove the tag" if "tag" in str(err.problem) \
            else "configs hold plain YAML values only"
        raise ConfigError(f"{source}{line}: {err.problem}; {hint}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{source}:{line}: YAML syntax error: {problem}; fix the YAML there") from None
    except RecursionError:
        raise ConfigError(f"{source}: the YAML is nested too deeply; a config has sections of plain keys") from None
    except (ValueError, KeyError, TypeError, OverflowError) as err:
        problem = (str(err).splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"{source}: a YAML value cannot be read ({problem}); quote it if it is text, "
                          "or fix it") from None


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
        value = _safe_load(text, f"--set {key}") if text.strip() else None
    except ConfigError:
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
        section = _known_key(Config, str(name), source, "")
        if section == "model":
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name} must be a section (a mapping of keys), "
                              f"got {_show(value)}")
        sections[section] = _build_section(types[section], value, source, section)
    sections.setdefault("physics", model.Physics())
    sections.setdefault("initial", model.Initial())
    cfg = Config(**sections, source=source)
    validate(cfg)
    return cfg


def load_model(spec: Any, source: str) -> models.Model:
    """The model a config names; a relative file path is taken from the config file's folder."""
    if not isinstance(spec, str):
        raise ConfigError(f"{source}: model = {_show(spec)}: expected the name of a built-in model "
                          f"({', '.join(models.BUILT_IN)}), a module or the path of a model file")
    base = os.path.dirname(os.path.abspath(source)) if os.path.isfile(source) else os.getcwd()
    try:
        return models.load(models.resolve(spec, base))
    except models.ModelError as err:
        raise ConfigError(f"{source}: {err}") from None


def _known_key(cls, name: str, source: str, prefix: str) -> str:
    """name if cls has that field, else a ConfigError suggesting the closest one."""
    names = [f.name for f in fields(cls) if f.name != "source"]
    if name in names:
        return name
    where = f"{prefix}{name}"
    close = _close_matches(name, names, n=1)
    hint = f"did you mean {prefix}{close[0]}?" if close else f"valid keys: {', '.join(names)}"
    raise ConfigError(f"{source}: unknown key {where!r}; {hint}")


def _build_section(cls, raw: dict, source: str, section: str):
    values = {}
    defaults = cls()
    for key, value in raw.items():
        name = _known_key(cls, str(key), source, section + ".")
        values[name] = _coerce(value, getattr(defaults, name), f"{section}.{name}", source)
    return cls(**values)


def _show(value: Any) -> str:
    return "nothing" if value is None else f"{value!r} ({type(value).__name__})"


def _coerce(value: Any, default: Any, key: str, source: str) -> Any:
    """Check a value against the type of its default; the counts that default to 'auto' also take 'auto'."""
    bad = ConfigError(f"{source}: {key} = {_show(value)}: expected "
                      f"{_expected(default, key)}")
    if key in AUTO_COUNTS:
        if value == "auto":
            return value
        if key == "parallel.ranks":
            return _pair(value, int, bad)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
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
        elif isinstance(v, bool) or not isinstance(v, int):
            raise bad
        out.append(kind(v))
    return tuple(out)


def _expected(default: Any, key: str) -> str:
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


_SECTION_TYPES = {f.name: f.default_factory for f in fields(Config)
                  if f.name not in ("source", "model", "physics", "initial")}   # name -> class


# --- checks across keys -----------------------------------------------------------------------
def _sample_axes(cfg: Config, count: int = 9):
    """At most ``count`` node coordinates along x and along y, spread over each axis: where
    models.check_model tries the model's initial, exact and coefficient fields."""
    import numpy as np
    axes = []
    for name in ("x", "y"):
        axis = cfg.axis(name)
        axes.append(axis[np.unique(np.linspace(0, axis.size - 1, min(count, axis.size)).astype(int))])
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
            close = _close_matches(value, BOUNDARIES, n=1)
            fail(f"boundary.{side} = {value!r}; " + (f"did you mean {close[0]}?" if close else
                                                       f"choose one of {', '.join(BOUNDARIES)}"))
    for low, high in (("west", "east"), ("south", "north")):
        if (getattr(cfg.boundary, low) == "periodic") != (getattr(cfg.boundary, high) == "periodic"):
            fail(f"boundary.{low} = {getattr(cfg.boundary, low)} but boundary.{high} = "
                 f"{getattr(cfg.boundary, high)}: periodic takes both sides of an axis; set both to periodic")
    model = cfg.model_impl
    try:                  # every hook tried on the run's parameters and a sample of its nodes
        problem = models.check_model(model, cfg.physics, cfg.initial, *_sample_axes(cfg), cfg.dx, cfg.dy,
                                     cfg.time.dt)
    except models.ModelError as err:
        fail(str(err))
    if problem:
        fail(f"{problem} (model {model.name})")
    if cfg.output.every < 0:
        fail(f"output.every = {cfg.output.every} must be 0 (final state only) or a positive step count")
    if cfg.checkpoint.every < 0:
        fail(f"checkpoint.every = {cfg.checkpoint.every} must be 0 (on signal only) or a positive step count")
    if not cfg.output.path:
        fail("output.path is empty: name an output file such as results/run.h5")
    if cfg.numerics.kernel not in KERNELS:
        close = _close_matches(cfg.numerics.kernel, KERNELS, n=1)
        hint = f"did you mean {close[0]}?" if close else f"choose one of {', '.join(KERNELS)}"
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
        if len(parts) != 2 or parts[0] in ("ensemble", "parallel", "output", "checkpoint", "model", "boundary"):
            raise ConfigError(f"{src}: {where}: perturb a number of the problem, such as a physics key")
        section = _known_key(Config, parts[0], src, "")
        _known_key(types[section], parts[1], src, section + ".")
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
        _check_distribution(spec, perturbed_width(cfg, key), f"{src}: {where}")


def perturbed_width(cfg: Config, key: str) -> int:
    """How many numbers a perturbed key holds: 2 for a pair such as initial.center, else 1."""
    section, name = key.split(".")
    return 2 if isinstance(getattr(getattr(cfg, section), name), tuple) else 1


def _check_distribution(spec: dict, width: int, where: str) -> None:
    """Parameters are numbers, or for a pair key numbers or pairs (one per component); ranges make sense."""
    dist = spec["dist"]
    if dist == "choice":
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.values = {_show(values)}: expected a non-empty list of values")
        return
    for name in DISTRIBUTIONS[dist]:
        value = spec[name]
        items = value if isinstance(value, list) and width > 1 and len(value) == width else [value]
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in items):
            shape = "a number" if width == 1 else f"a number or a list of {width} numbers (one per component)"
            raise ConfigError(f"{where}.{name} = {_show(value)}: expected {shape}")
    parts = {name: components(spec[name], width) for name in DISTRIBUTIONS[dist]}
    if dist == "uniform" and any(not high > low for low, high in zip(parts["low"], parts["high"])):
        raise ConfigError(f"{where}: uniform needs high > low, got low = {spec['low']}, high = {spec['high']}")
    spread = {"normal": "std", "lognormal": "sigma"}.get(dist)
    if spread and min(parts[spread]) < 0:
        raise ConfigError(f"{where}.{spread} = {spec[spread]} must not be negative")


def components(value: Any, width: int) -> list:
    """A distribution parameter per component: a list as given, a single number repeated."""
    return list(value) if isinstance(value, list) else [value] * width


def with_values(cfg: Config, values: dict[str, Any]) -> Config:
    """A copy of cfg with dotted keys replaced (used by ensembles and studies), validated again."""
    data = cfg.to_dict()
    for key, value in values.items():
        section, name = key.split(".")
        data[section][name] = value
    return from_dict(data, cfg.source)


__all__ = ["Config", "ConfigError", "load", "from_dict", "set_dotted", "validate", "with_values"]
