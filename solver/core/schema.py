"""The config's schema: its sections as frozen dataclasses, every key with its default and meaning.

A config is a YAML mapping of sections (``grid``, ``physics``, ...) and the name of its model (``model:``, see
solver/models). Every key has a default, here or in the model's file, so a config file names only what
differs; the ``physics`` and ``initial`` sections are the model's. :class:`Config` also derives the numerics
of the problem (node coordinates, spacing, step count, stability). Loading and checking: solver/core/config.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from .. import models
from . import yamlfile
from .kernels import KERNELS

@dataclass(frozen=True)
class Grid:
    nx: int = 1024                        # nodes along x, boundaries included (as np.linspace)
    ny: int = 512                         # nodes along y
    x: tuple[float, float] = (0.0, 2.0)   # domain extent along x
    y: tuple[float, float] = (0.0, 1.0)   # domain extent along y


BOUNDARIES = ("fixed", "zero_flux", "periodic", "flux")
SIDES = ("west", "east", "south", "north")


@dataclass(frozen=True)
class Boundary:
    """Per side: fixed (boundary nodes keep their initial values, or follow the model's boundary_values(physics,
    side, coordinates, t)), zero_flux (mirror), periodic, or flux (the mirror plus the offset of the outward
    normal derivative the model's boundary_gradient(physics, side, coordinates, t) prescribes)."""
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


PRECISIONS = ("float64", "float32")
COMPRESSIONS = ("none", "gzip")


@dataclass(frozen=True)
class Output:
    """What the output file holds and how it is stored (solver/storage/output.py, records.py). The computation is
    float64 whatever is stored; checkpoints are always float64 and whole."""
    path: str = "results/default.h5"      # HDF5 file, relative to the working directory
    every: int = 0                        # steps between snapshots; 0 = initial and final state only
    precision: str = "float64"            # float64 | float32: the snapshots' storage type; float32 is the float64
                                          # result rounded once (to nearest), recorded in each field's attributes
    compression: str = "none"             # none | gzip: a lossless filter on the snapshot datasets (chunked;
                                          # collective under MPI, which needs HDF5 >= 1.10.2)
    compression_level: int = 4            # gzip level, 1 (fast) .. 9 (small)
    shuffle: bool = True                  # byte shuffle before gzip (smaller files for floats)
    subsample: tuple[int, int] = (1, 1)   # [sx, sy]: keep every sx-th node along x, every sy-th along y
    window: dict = field(default_factory=dict)   # {x: [a, b], y: [c, d]}: keep only the nodes inside (either
                                                 # axis may be left out); the coordinates follow
    probes: dict = field(default_factory=dict)   # {name: [x, y]}: points snapped to their nearest node whose
                                                 # value of every field is recorded every probe_every steps
    probe_every: int = 1                  # steps between probe records (with step 0 and the last step)
    series_every: int = 0                 # steps between records of each field's total (trapezoid integral),
                                          # min, max and L2 norm; 0 = none


@dataclass(frozen=True)
class Numerics:
    kernel: str = "auto"                  # auto (the fastest of numba, rows, tiled, measured once per kind of run
                                          # and machine: solver/run/wisdom.py) | numba (pairs of rows) | rows |
                                          # tiled (temporal blocking) | numpy (reference); all give the same bits


@dataclass(frozen=True)
class Parallel:
    threads: int | str = "auto"           # numba threads per rank: auto or a number
    ranks: tuple[int, int] | str = "auto" # MPI process grid [px, py] or auto (MPI.Compute_dims)
    halo: int | str = "auto"              # halo width k: exchange every k steps; auto: from the launch and the
                                          # subdomain size (solver/run/ plan)


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
        return yamlfile.dump(self.to_dict())


KERNEL_CHOICES = ("auto", *KERNELS)           # numerics.kernel: auto, or a kernel by name
AUTO_COUNTS = ("parallel.threads", "parallel.ranks", "parallel.halo")    # a count, or auto
COUNT_PAIRS = ("output.subsample",)    # two whole numbers
MAX_NODES = 2 ** 31 - 1     # per axis: far beyond any memory, and keeps dx and the indices sane
MAX_STEPS = 1e15


def section_types(model: models.Model) -> dict[str, type]:
    """Section name -> dataclass, with the model's physics and initial sections."""
    return {**_SECTION_TYPES, "physics": model.Physics, "initial": model.Initial}


def plain(obj: Any) -> Any:
    """A section (or the config) as plain YAML-ready values: mappings, lists, numbers, text."""
    return _to_plain(obj)


def _to_plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj) if f.name != "source"}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


_SECTION_TYPES = {f.name: f.default_factory for f in fields(Config)
                  if f.name not in ("source", "model", "physics", "initial")}   # name -> class
