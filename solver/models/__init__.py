"""Models: the physics of a run, one Python file each; everything else in the solver is model-agnostic.

A model file defines (see docs/models.md for a worked example):

- ``FIELDS``: ``{name: (units, long name)}``, one entry per field, in the order the update sees them;
- ``Physics`` and ``Initial``: frozen dataclasses of the ``physics:`` and ``initial:`` config sections, every
  field with a default (its type is what the config checks);
- ``check(physics, initial)``: ``None``, or one line saying which value is wrong and how to fix it;
- ``coefficients(physics, dx, dy, dt)``: a tuple of floats computed once per run, passed to every update;
- ``update(c, w, e, s, n, k)``: the new value at a node from the node (c) and its west, east, south and north
  neighbours, with ``k`` the coefficients. Plain Python arithmetic: the numpy kernel calls it on whole
  array slices, the numba kernels compile and inline it per node, so every kernel computes the same bits.
  One field: floats in, a float out; several: tuples in (one entry per field), a tuple out;
- ``max_stable_dt(physics, dx, dy)``: the largest stable time step (``math.inf`` if none);
- ``initial(physics, initial, x, y, uniform)``: the fields at t = 0 on nodes ``x`` (columns) by ``y``
  (rows), one array (or a tuple of arrays) broadcastable to ``(len(y), len(x))``; ``uniform(seed, low,
  high)`` gives random numbers per node that do not depend on the decomposition;
- optionally ``exact(physics, initial, x, y, t)``: the exact solution, for error reports and verification;
- optionally ``UNITS``: ``{"physics.NAME" or "initial.NAME": units}`` of the config values, for the analysis
  scripts' labels (CF notation; "1" where absent).

A config names its model with ``model:``: a built-in name (a file in this folder), an importable module
(``mygroup.models.ocean``) or a path to a ``.py`` file (relative to the config's folder). The model's
source is hashed: compiled kernels (solver/core/kernels.py) and checkpoints are keyed on it.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import ModelError

BUILT_IN = ("diffusion", "advection_diffusion", "fisher_kpp", "gray_scott")
REQUIRED = ("FIELDS", "Physics", "Initial", "coefficients", "update", "max_stable_dt", "initial")


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
        raise ModelError(f"model file {path} fails on import: {type(err).__name__}: {err}") from None
    return module


def import_statement(model: Model) -> str:
    """Python code that binds ``_model`` to the model's module, for a generated kernel module."""
    if os.path.isabs(model.spec):
        return f"from solver.models import load as _load\n_model = _load({model.spec!r}).module\n"
    return f"import {model.module.__name__} as _model\n"
