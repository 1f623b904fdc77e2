"""Models: the physics of a run, one Python file each; everything else in the solver is model-agnostic.

A model file defines (see docs/models.md for a worked example):

- ``FIELDS``: ``{name: (units, long name)}``, one entry per field, in the order the update sees them;
- ``Physics`` and ``Initial``: frozen dataclasses of the ``physics:`` and ``initial:`` config sections, every
  field with a default (its type is what the config checks);
- ``check(physics, initial)``: ``None``, or one line saying which value is wrong and how to fix it;
- ``coefficients(physics, dx, dy, dt)``: a tuple of floats computed once per run, passed to every update;
- ``update``: the new value at a node, in one of two forms (told apart by the number of parameters):

  - ``update(c, w, e, s, n, k)``: from the node (c) and its west, east, south and north neighbours, with
    ``k`` the coefficients (the classic form, for models without coefficient fields or forcing);
  - ``update(u, a, k, f)``: ``u`` the fields at the node and its neighbours (``u.c``, ``u.w``, ``u.e``,
    ``u.s``, ``u.n``, a :data:`Neighbours`), ``a`` the coefficient fields there (the same, or None without
    any), ``k`` the coefficients and ``f`` this step's forcing values (a 1-D array, ``f[0]`` ...).

  Plain Python arithmetic: the numpy kernel calls it on whole array slices, the numba kernels compile and
  inline it per node, so every kernel computes the same bits. One field: floats in, a float out (``u.c`` a
  float); several: tuples in (one entry per field), a tuple out;
- ``max_stable_dt(physics, dx, dy)``: the largest stable time step (``math.inf`` if none);
- ``initial(physics, initial, x, y, uniform)``: the fields at t = 0 on nodes ``x`` (columns) by ``y``
  (rows), one array (or a tuple of arrays) broadcastable to ``(len(y), len(x))``; ``uniform(seed, low,
  high)`` gives random numbers per node that do not depend on the decomposition;
- optionally ``exact(physics, initial, x, y, t)``: the exact solution, for error reports and verification;
- optionally ``COEFFICIENT_FIELDS``: ``{name: (units, long name)}`` of fields that do not evolve (a
  diffusivity map, a source's shape, a mask), and ``coefficient_fields(physics, x, y, uniform)`` computing
  them once (any numpy code), one array (or a tuple of arrays) broadcastable to ``(len(y), len(x))``;
- optionally ``forcing(physics, t)``: a tuple of floats evaluated once per step at the step's start time
  ``t``, outside the node loop, handed to the update as ``f``;
- optionally ``boundary_values(physics, side, coordinates, t)``: the values of a ``fixed`` side's boundary
  nodes at time ``t`` (``side`` one of ``west``, ``east``, ``south``, ``north``; ``coordinates`` the global
  node coordinates along that side, y for west and east, x for south and north): a number or an array of
  ``len(coordinates)`` (a tuple of them with several fields), or None for a side that keeps its initial
  values (decided at t = 0); evaluated once per step, outside the node loop, on the whole side;
- optionally ``boundary_gradient(physics, side, coordinates, t)``: on a ``flux`` side, the outward normal
  derivative ``g = dC/dn`` of each field at time ``t`` (for a diffusive flux ``q`` into the domain, ``q / D``);
  the ghost node ``m`` layers out is the mirror plus ``2 m (h g)``, h the spacing normal to the side
  (``zero_flux`` is ``g = 0``); same shapes as ``boundary_values``, never None;
- optionally ``UNITS``: ``{"physics.NAME" or "initial.NAME": units}`` of the config values, for the analysis
  scripts' labels (CF notation; "1" where absent).

A config names its model with ``model:``: a built-in name (a file in this folder), an importable module
(``mygroup.models.ocean``) or a path to a ``.py`` file (relative to the config's folder). The model's
source is hashed: compiled kernels (solver/core/kernels.py) and checkpoints are keyed on it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import keyword
import math
import numbers
import os
import sys
import traceback
from collections import namedtuple
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import ModelError

BUILT_IN = ("diffusion", "advection_diffusion", "fisher_kpp", "gray_scott", "layered", "manufactured")
REQUIRED = ("FIELDS", "Physics", "Initial", "coefficients", "update", "max_stable_dt", "initial")
OPTIONAL_HOOKS = ("check", "exact", "coefficient_fields", "forcing", "boundary_values", "boundary_gradient")
SIDES = ("west", "east", "south", "north")           # the order in which side values are applied
SIDE_HOOKS = {"fixed": "boundary_values", "flux": "boundary_gradient"}
# Names the output file uses for its own datasets: no field or coefficient field may take them.
RESERVED_NAMES = ("time", "x", "y")

# What ``update(u, a, k, f)`` sees at a node: its value (c) and its west, east, south and north neighbours.
# Wider stencils will come as further attributes (corners ``sw, se, nw, ne``; radius 2 ``ww, ee, ss, nn``)
# of a larger tuple chosen by a model's declaration, so that updates written for this one keep working.
Neighbours = namedtuple("Neighbours", ("c", "w", "e", "s", "n"))
CLASSIC, NEIGHBOURHOOD = "classic", "neighbourhood"


@dataclass(frozen=True)
class Model:
    """A loaded model: its module, where it came from and a hash of its source."""
    spec: str                 # as resolved: a built-in name, a module name or an absolute file path
    module: ModuleType
    file: str                 # the source file the run imports
    source_hash: str          # sha256 of that file, first 16 hex digits

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.file))[0]

    @property
    def fields(self) -> dict[str, tuple[str, str]]:
        return dict(self.module.FIELDS)

    @property
    def parameter_units(self) -> dict[str, str]:
        return dict(getattr(self.module, "UNITS", {}))

    @property
    def has_exact(self) -> bool:
        return callable(getattr(self.module, "exact", None))

    @property
    def coefficient_names(self) -> dict[str, tuple[str, str]]:
        """The coefficient fields, ``{name: (units, long name)}`` (empty without any)."""
        return dict(getattr(self.module, "COEFFICIENT_FIELDS", None) or {})

    @property
    def has_forcing(self) -> bool:
        return callable(getattr(self.module, "forcing", None))

    @property
    def form(self) -> str:
        """CLASSIC for ``update(c, w, e, s, n, k)``, NEIGHBOURHOOD for ``update(u, a, k, f)``."""
        return update_form(self.module.update)

    def __getattr__(self, name: str) -> Any:          # the hooks: model.update, model.initial, ...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.module, name)


_loaded: dict[str, Model] = {}


def resolve(spec: str, base_dir: str | None = None) -> str:
    """The canonical form of a model spec: built-in names and module names as given, file paths absolute
    (relative ones taken from base_dir, the config's folder)."""
    spec = spec.strip()
    if spec.endswith(".py") or os.sep in spec:
        return os.path.abspath(os.path.join(base_dir or ".", os.path.expanduser(spec)))
    return spec


def load(spec: str) -> Model:
    """Import the model named by a resolved spec (once per process) and check it defines every hook."""
    if spec in _loaded:
        return _loaded[spec]
    if not spec:
        raise ModelError("model is empty: name a built-in model (" + ", ".join(BUILT_IN) + ") or a model file")
    if os.path.isabs(spec):
        module = _import_file(spec)
    else:
        name = f"{__name__}.{spec}" if spec in BUILT_IN else spec
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name and not name.startswith(err.name) and not err.name.startswith(name):
                raise ModelError(f"model {spec}: it imports {err.name}, which is not installed") from None
            raise ModelError(f"model {spec!r} is neither a built-in model ({', '.join(BUILT_IN)}) nor an "
                             "importable module; give the path of your model file (ending in .py)") from None
        except SyntaxError as err:
            raise ModelError(f"model {spec}: syntax error in {err.filename} line {err.lineno}") from None
    missing = [hook for hook in REQUIRED if not hasattr(module, hook)]
    if missing:
        raise ModelError(f"model {spec} ({module.__file__}) lacks {', '.join(missing)}; "
                         "see docs/models.md for what a model defines")
    path = os.path.abspath(inspect.getsourcefile(module))
    problem = check_definitions(module)
    if problem:
        raise ModelError(f"model file {path}: {problem}")
    with open(path, "rb") as stream:
        digest = hashlib.sha256(stream.read()).hexdigest()[:16]
    model = Model(spec, module, path, digest)
    _loaded[spec] = model
    return model


def _import_file(path: str) -> ModuleType:
    """Import a model file by path under a name unique to that path (two files may share a base name)."""
    if not os.path.isfile(path):
        raise ModelError(f"model file {path} does not exist; check model: in the config (a relative path is "
                         "taken from the config's folder)")
    tag = hashlib.sha256(path.encode()).hexdigest()[:12]
    name = f"_solver_model_{tag}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        del sys.modules[name]
        raise ModelError(f"model file {path}: syntax error line {err.lineno}: {err.msg}") from None
    except Exception as err:
        del sys.modules[name]
        lines = [line for frame, line in traceback.walk_tb(err.__traceback__)
                 if os.path.abspath(frame.f_code.co_filename) == os.path.abspath(path)]
        where = f", line {lines[-1]}" if lines else ""
        text = str(err).strip().splitlines()
        raise ModelError(f"model file {path}{where} fails on import: {type(err).__name__}: "
                         f"{text[0] if text else ''}") from None
    return module


def import_statement(model: Model) -> str:
    """Python code that binds ``_model`` to the model's module, for a generated kernel module."""
    if os.path.isabs(model.spec):
        return f"from solver.models import load as _load\n_model = _load({model.spec!r}).module\n"
    return f"import {model.module.__name__} as _model\n"


# --- checking a model ----------------------------------------------------------------------------------
def update_form(update) -> str:
    """The form of an update by its parameters: six (c, w, e, s, n, k) or four (u, a, k, f)."""
    try:
        parameters = list(inspect.signature(update).parameters.values())
    except (TypeError, ValueError):
        raise ModelError("update is not a Python function; define it with def in the model file") from None
    if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters):
        raise ModelError("update takes *args, **kwargs or keyword-only parameters; define update(c, w, e, s, n, k) "
                         "or update(u, a, k, f)")
    if len(parameters) == 6:
        return CLASSIC
    if len(parameters) == 4:
        return NEIGHBOURHOOD
    raise ModelError(f"update takes {len(parameters)} parameters ({', '.join(p.name for p in parameters)}); "
                     "define update(c, w, e, s, n, k) or update(u, a, k, f) (docs/models.md)")


def _names_problem(what: str, names: Any, taken: dict[str, str]) -> str | None:
    """Why ``names`` (FIELDS or COEFFICIENT_FIELDS) is not a dict of fresh identifiers to (units, long name)."""
    if not isinstance(names, dict):
        return f"{what} is a {type(names).__name__}; define it as a dict {{name: (units, long name)}}"
    for name, value in names.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            return f"{what} has the name {name!r}; names must be Python identifiers (letters, digits, _)"
        if name in taken:
            return f"{what} has the name {name!r}, which {taken[name]}; rename it"
        if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            return f"{what}[{name!r}] = {value!r}; give (units, long name), two strings such as (\"1\", \"concentration\")"
        taken[name] = f"is already a name in {what}"
    return None


def check_definitions(module: ModuleType) -> str | None:
    """What is wrong with a model module's definitions (no hook is called), or None: FIELDS and
    COEFFICIENT_FIELDS, Physics and Initial (dataclasses whose every field has a default), the hooks callable,
    the update's form."""
    fields = getattr(module, "FIELDS")
    taken = {name: "the output uses for a coordinate" for name in RESERVED_NAMES}
    problem = _names_problem("FIELDS", fields, taken)
    if problem:
        return problem
    if not fields:
        return "FIELDS is empty; name at least one field, e.g. FIELDS = {\"C\": (\"1\", \"concentration\")}"
    coefficient_names = getattr(module, "COEFFICIENT_FIELDS", None)
    if coefficient_names is not None:
        problem = _names_problem("COEFFICIENT_FIELDS", coefficient_names, taken)
        if problem:
            return problem
    for section in ("Physics", "Initial"):
        cls = getattr(module, section)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            return f"{section} is not a dataclass; define it with @dataclass(frozen=True) (docs/models.md)"
        bare = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
        if bare:
            return f"{section}.{bare[0]} has no default; give every field of {section} a default value"
    for hook in (*REQUIRED[3:], *OPTIONAL_HOOKS):
        value = getattr(module, hook, None)
        if (hook in REQUIRED or value is not None) and not callable(value):
            return f"{hook} is a {type(value).__name__}, not a function; define it with def (docs/models.md)"
    if bool(coefficient_names) != callable(getattr(module, "coefficient_fields", None)):
        return ("COEFFICIENT_FIELDS and coefficient_fields(physics, x, y, uniform) come together; define both "
                "or neither")
    try:
        form = update_form(module.update)
    except ModelError as err:
        return str(err)
    if form == CLASSIC and (coefficient_names or callable(getattr(module, "forcing", None))):
        return ("update(c, w, e, s, n, k) cannot see coefficient fields or forcing; write it as update(u, a, k, f) "
                "(docs/models.md)")
    return None


def _hook_line(model: "Model | ModuleType", err: BaseException) -> str:
    """', line N' of the innermost frame of the model file in err's traceback ('' if none)."""
    path = os.path.abspath(getattr(model, "file", None) or model.__file__)
    lines = [line for frame, line in traceback.walk_tb(err.__traceback__)
             if os.path.abspath(frame.f_code.co_filename) == path]
    return f", line {lines[-1]}" if lines else ""


SCALAR_ONLY = ("arrays can be converted to Python scalars", "truth value of an array")


def call(model: Model, hook: str, *args):
    """``model.hook(*args)``; an exception raised inside becomes one ModelError line naming the model file,
    the hook and the line of the model file it came from."""
    try:
        return getattr(model.module, hook)(*args)
    except ModelError:
        raise
    except Exception as err:
        text = str(err).strip().splitlines()
        hint = ""
        if hook == "update" and any(s in str(err) for s in SCALAR_ONLY):
            hint = ("; the numpy kernel calls update on whole arrays: no math.* functions and no branches on "
                    "field values in update (compute them in coefficients, coefficient_fields or forcing; "
                    "docs/models.md)")
        if hook == "update" and not model.has_forcing and "with size 0" in str(err):
            hint = "; f is empty: the model defines no forcing()"
        if hook == "update" and not model.coefficient_names and "'NoneType'" in str(err):
            hint = "; a is None: the model declares no COEFFICIENT_FIELDS"
        if hook == "update" and "read-only" in str(err):
            hint = ("; update must not change its arguments (the numpy kernel passes the fields themselves): "
                    "write c = c * w, not c *= w")
        raise ModelError(f"model file {model.file}{_hook_line(model, err)}: {hook}() raised "
                         f"{type(err).__name__}: {text[0] if text else ''}{hint}") from None


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _numbers(model: Model, hook: str, value, at: str = "") -> tuple[float, ...]:
    """value as a tuple of floats, none of them NaN, or a ModelError saying what the hook returned instead
    (``at``: when, as " at t = ...")."""
    if not isinstance(value, (tuple, list)) or not all(_is_number(v) for v in value):
        got = type(value).__name__ if not isinstance(value, (tuple, list)) else \
            "a " + type(value).__name__ + " holding " + ", ".join(sorted({type(v).__name__ for v in value}))
        raise ModelError(f"model file {model.file}: {hook}(){at} returned {got}; return a tuple of numbers, "
                         "e.g. (a, b) or (a,) for one")
    out = tuple(float(v) for v in value)
    if any(math.isnan(v) for v in out):     # it would reach every node, and look like an unstable dt
        raise ModelError(f"model file {model.file}: {hook}(){at} returned ({', '.join(map(repr, out))}); return "
                         "numbers, not NaN (0 / 0, or a parameter of 0?)")
    return out


def _arrays(model: Model, hook: str, value, count: int, names, shape) -> list[np.ndarray]:
    """A hook's field (or tuple of fields) as ``count`` float arrays broadcast to ``shape``."""
    import numpy as np
    values = list(value) if isinstance(value, (tuple, list)) else [value]
    if len(values) != count:
        raise ModelError(f"model file {model.file}: {hook}() returned {len(values)} field(s) for the {count} of "
                         f"{', '.join(names)}; return " + ("one array" if count == 1 else f"a tuple of {count}"))
    out = []
    for name, v in zip(names, values):
        try:
            array = np.asarray(v, dtype=np.float64)
            out.append(np.broadcast_to(array, shape))
        except (TypeError, ValueError):
            got = f"shape {np.shape(v)}" if hasattr(v, "shape") else type(v).__name__
            raise ModelError(f"model file {model.file}: {hook}() returned {got} for {name} on {shape[1]} x "
                             f"nodes by {shape[0]} y nodes; return numbers broadcastable to (len(y), len(x)), "
                             "using x[np.newaxis, :] and y[:, np.newaxis]") from None
    return out


def coefficient_values(model: Model, physics, x, y, uniform) -> "np.ndarray":
    """The model's coefficient fields on nodes x (columns) by y (rows) as one ``(coefficient fields,
    len(y), len(x))`` float64 array (``(0, len(y), len(x))`` without any); errors as one ModelError line."""
    import numpy as np
    names = model.coefficient_names
    if not names:
        return np.empty((0, len(y), len(x)))
    value = call(model, "coefficient_fields", physics, x, y, uniform)
    fields = np.stack(_arrays(model, "coefficient_fields", value, len(names), names, (len(y), len(x))))
    bad = np.argwhere(np.isnan(fields))      # every node: one NaN would look like an unstable dt later
    if len(bad):
        f, j, i = bad[0]
        raise ModelError(f"model file {model.file}: coefficient_fields() gave NaN for {list(names)[f]} at "
                         f"x = {x[i]:g}, y = {y[j]:g} (at {len(bad)} node(s)); return numbers on every node")
    return fields


def time_values(model: Model, physics, dt: float, first: int, steps: int, t0: float = 0.0) -> "np.ndarray":
    """The forcing values of steps first .. first + steps - 1 (at t = t0 + step dt, each step's start) as a
    ``(steps, values)`` float64 array, one row per step, for a kernel call; ``(steps, 0)`` without forcing.
    The same numbers on every kernel, thread count and rank: computed here, once per step, in Python."""
    import numpy as np
    if not model.has_forcing:
        return np.zeros((steps, 0))
    times = [t0 + (first + s) * dt for s in range(steps)]
    rows = [_numbers(model, "forcing", call(model, "forcing", physics, t), f" at t = {t:g}") for t in times]
    width = {len(row) for row in rows}
    if len(width) > 1:
        raise ModelError(f"model file {model.file}: forcing() returned tuples of {sorted(width)} values at "
                         "different times; return the same number every step")
    return np.array(rows, dtype=np.float64).reshape(steps, width.pop() if rows else 0)


def sample_values(shape, start: int = 0) -> "np.ndarray":
    """Values in 0.5 .. 1.5 that differ from node to node (a golden-ratio sequence from ``start``): a hook's
    sample input, without numpy's random module (an ensemble member's start-up would pay for its import)."""
    import numpy as np
    size = int(np.prod(shape))
    return (0.5 + np.arange(start, start + size) * 0.6180339887498949 % 1.0).reshape(shape)


def sample_update(model: Model, k, physics=None, dt: float = 1e-3, shape=(2, 3), seed: int = 0):
    """The update on small arrays of finite, positive sample values (0.5 .. 1.5, also for the coefficient
    fields), as the numpy kernel calls it: checks it runs on arrays and returns one array per field."""
    import numpy as np
    fields, coefficient_count = len(model.fields), len(model.coefficient_names)
    size = int(np.prod(shape))
    drawn = [seed]

    def spread():
        drawn[0] += size
        values = sample_values(shape, drawn[0] - size)
        values.flags.writeable = False          # as the numpy kernel passes them: an update changing one fails
        return values

    def sample(count):
        if count == 0:
            return None
        values = [tuple(spread() for _ in range(count)) for _ in Neighbours._fields]
        return Neighbours(*(v[0] if count == 1 else v for v in values))
    u = sample(fields)
    with np.errstate(all="ignore"):
        if model.form == CLASSIC:
            result = call(model, "update", *u, k)
        else:
            f = time_values(model, model.Physics() if physics is None else physics, dt, 0, 1)[0]
            result = call(model, "update", u, sample(coefficient_count), k, f)
    names = ", ".join(model.fields)
    if fields == 1 and isinstance(result, (tuple, list)):
        raise ModelError(f"model file {model.file}: update() returned {len(result)} values for the one field "
                         f"{names}; return one value")
    if fields > 1 and not isinstance(result, (tuple, list)):
        raise ModelError(f"model file {model.file}: update() returned one value for the {fields} fields {names}; "
                         f"return a tuple of {fields}, in the order of FIELDS")
    if fields > 1 and len(result) != fields:
        raise ModelError(f"model file {model.file}: update() returned {len(result)} values for the {fields} "
                         f"fields {names}; return {fields}, in the order of FIELDS")
    for name, value in zip(model.fields, result if fields > 1 else (result,)):
        array = np.asarray(value)
        if array.dtype.kind not in "fiu" or array.shape not in ((), shape):    # c[0] would broadcast a row
            raise ModelError(f"model file {model.file}: update() returned {array.dtype} of shape {array.shape} "
                             f"for {name} on arrays of shape {shape}; return plain arithmetic on its arguments")
    return result


def check_model(model: Model, physics=None, initial=None, x=None, y=None, dx: float | None = None,
                dy: float | None = None, dt: float | None = None, boundary=None) -> str | None:
    """Try every hook of ``model`` before any output exists, on the run's parameters and (a sample of) its
    nodes: check(), max_stable_dt(), coefficients() (a tuple of numbers), the update on sample arrays (runs
    on arrays, returns one value per field), initial(), exact() at t = 0, coefficient_fields() and forcing()
    (numbers and shapes), and, given the config's ``boundary`` (a dict or the Boundary section),
    boundary_values() on its fixed sides and boundary_gradient() on its flux sides at t = 0 and dt. Returns check()'s message (a wrong config value) or None; a mistake in the model
    raises one ModelError line naming the model file, the hook and, where known, the line."""
    import numpy as np
    physics = model.Physics() if physics is None else physics
    initial = model.Initial() if initial is None else initial
    x = np.linspace(0.0, 1.0, 7) if x is None else np.asarray(x, dtype=np.float64)
    y = np.linspace(0.0, 1.0, 5) if y is None else np.asarray(y, dtype=np.float64)
    dx = float(x[1] - x[0]) if dx is None and len(x) > 1 else (dx or 1.0)
    dy = float(y[1] - y[0]) if dy is None and len(y) > 1 else (dy or 1.0)
    if callable(getattr(model.module, "check", None)):
        problem = call(model, "check", physics, initial)
        if problem is not None and not isinstance(problem, str):
            raise ModelError(f"model file {model.file}: check() returned {type(problem).__name__}; return None "
                             "or one line (a str) naming the wrong value")
        if problem:
            return problem
    limit = call(model, "max_stable_dt", physics, dx, dy)
    if not _is_number(limit) or not limit > 0:
        raise ModelError(f"model file {model.file}: max_stable_dt() returned {limit!r}; return a positive number "
                         "(math.inf if any dt is stable)")
    if dt is None:
        dt = 0.5 * min(float(limit), 1e-3)
    k = _numbers(model, "coefficients", call(model, "coefficients", physics, dx, dy, dt))
    shape = (len(y), len(x))

    def fields(hook, count, names, xs, ys, uniform):
        args = {"initial": (physics, initial, xs, ys, uniform), "exact": (physics, initial, xs, ys, 0.0),
                "coefficient_fields": (physics, xs, ys, uniform)}[hook]
        return np.stack(_arrays(model, hook, call(model, hook, *args), count, names, (len(ys), len(xs))))
    hooks = [("initial", len(model.fields), model.fields)]
    if model.has_exact:
        hooks.append(("exact", len(model.fields), model.fields))
    for hook, count, names in hooks:
        _same_on_every_part(model, hook, lambda *part: fields(hook, count, names, *part), x, y)
    if model.coefficient_names:
        _same_on_every_part(model, "coefficient_fields", lambda xs, ys, uniform: coefficient_values(
            model, physics, xs, ys, uniform), x, y)
    time_values(model, physics, dt, 0, 2)
    if boundary is not None:
        kinds = _kinds(boundary)
        for side in SIDES:
            hook = SIDE_HOOKS.get(kinds[side])
            if hook is not None and callable(getattr(model.module, hook, None)):
                for t in (0.0, dt):
                    side_values(model, hook, physics, side, y if side in ("west", "east") else x, t)
    sample_update(model, k, physics, dt)
    return None


def side_values(model: Model, hook: str, physics, side: str, coordinates, t: float) -> "np.ndarray | None":
    """``hook(physics, side, coordinates, t)`` (boundary_values or boundary_gradient) as a ``(fields,
    len(coordinates))`` float64 array; None where boundary_values returns None (the side keeps its values).
    Errors (an exception inside, None from boundary_gradient, a wrong count, shape or type) are one ModelError
    line naming the model file and the hook."""
    import numpy as np
    value = call(model, hook, physics, side, coordinates, t)
    names = list(model.fields)
    count, n = len(names), len(coordinates)
    where = f"model file {model.file}: {hook}(physics, {side!r}, coordinates, t={t:g})"
    if value is None:
        if hook == "boundary_values":
            return None
        raise ModelError(f"{where} returned None; return the outward normal derivative on the side: a number, "
                         "an array of len(coordinates), or a tuple of them with several fields (0.0 for no flux)")
    values = list(value) if isinstance(value, tuple) or (count > 1 and isinstance(value, list)) else [value]
    if len(values) != count:
        raise ModelError(f"{where} returned {len(values)} value(s) for the {count} field(s) {', '.join(names)}; "
                         "return " + ("a number or an array" if count == 1 else f"a tuple of {count}"))
    out = np.empty((count, n))
    for i, (name, v) in enumerate(zip(names, values)):
        try:
            if isinstance(v, (bool, np.bool_)) or isinstance(v, (str, bytes)):
                raise TypeError
            array = np.asarray(v, dtype=np.float64)
            if array.ndim > 1 or array.ndim == 1 and array.shape[0] != n:
                raise ValueError
            out[i] = array
        except (TypeError, ValueError):
            got = f"shape {np.shape(v)}" if hasattr(v, "shape") else type(v).__name__
            raise ModelError(f"{where} returned {got} for {name} on the {n} nodes of the side; return a number "
                             "or an array of len(coordinates)") from None
    return out


def side_hooks(model: Model, physics, kinds: dict, x, y) -> dict[str, str]:
    """The sides whose nodes or ghost nodes change with time, ``{side: hook}`` in SIDES order: every ``flux``
    side (boundary_gradient) and every ``fixed`` side for which the model's boundary_values does not return
    None at t = 0. Empty for every model without these hooks: its run is stepped as before."""
    out = {}
    for side in SIDES:
        hook = SIDE_HOOKS.get(kinds[side])
        if hook is None or not callable(getattr(model.module, hook, None)):
            continue
        coordinates = y if side in ("west", "east") else x
        if hook == "boundary_gradient" or side_values(model, hook, physics, side, coordinates, 0.0) is not None:
            out[side] = hook
    return out


def _kinds(boundary) -> dict:
    return dict(boundary) if isinstance(boundary, dict) else {side: getattr(boundary, side) for side in SIDES}


class SampleUniform:
    """``uniform(seed, low, high)`` on a sample grid, for check_model; ``part``: (rows, columns) of it, as a
    rank's uniform gives its own nodes' part of the draws."""

    def __init__(self, shape, part=(slice(None), slice(None))):
        self.shape, self.part = shape, part

    def __call__(self, seed: int, low: float = 0.0, high: float = 1.0):
        import numpy as np
        return np.random.default_rng(int(seed)).uniform(low, high, self.shape)[self.part]


def _same_on_every_part(model: Model, hook: str, compute, x, y) -> None:
    """``compute(x, y, uniform)`` (a hook's fields, ``(n, len(y), len(x))``) gives the same bits on a second
    call and, cut into four parts, on each part, as each rank computes it on its own nodes; else one ModelError
    line: a hook drawing unseeded random numbers, or reading the ends or length of x or y, gives a run that
    depends on its decomposition, or on nothing at all."""
    import numpy as np
    shape = (len(y), len(x))
    whole = compute(x, y, SampleUniform(shape))
    if not np.array_equal(compute(x, y, SampleUniform(shape)), whole, equal_nan=True):
        raise ModelError(f"model file {model.file}: {hook}() gave other values on a second call with the same "
                         "arguments; draw random numbers only with its uniform argument (seeded by the config)")
    j, i = len(y) // 2, len(x) // 2
    parts = [(slice(None, j), slice(None, i)), (slice(None, j), slice(i, None)), (slice(j, None), slice(None, i)),
             (slice(j, None), slice(i, None))]
    for rows, columns in parts:
        if not np.array_equal(compute(x[columns], y[rows], SampleUniform(shape, (rows, columns))),
                              whole[:, rows, columns], equal_nan=True):
            raise ModelError(f"model file {model.file}: {hook}() gave other values on part of the nodes than on "
                             "all of them, and each rank calls it on its own nodes; compute a node's value from its "
                             "own x and y, not from the ends, length or mean of x or y")
