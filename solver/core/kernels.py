"""Kernels: a model's point update applied over an index box, by three interchangeable kernels.

``get_advance(model, name)`` returns, for the kernel ``name``,
``advance(u, v, a, steps, k, values, region, shrink=(0, 0, 0, 0)) -> (new, old)``:

- ``numba``: the plain threaded kernel of solver/core/stencil.py (``auto`` in the run loop picks it in cache);
- ``tiled``: temporal blocking, solver/core/stencil.py too (``auto`` picks it out of cache);
- ``numpy``: the model's update on whole array slices, the readable reference (and no numba import).

All advance fields stored as ``(fields, y, x)`` arrays by ``steps`` steps with the model's coefficients
``k`` and give the same bits (see solver/core/stencil.py for ``region`` and ``shrink``). ``a`` holds the model's
coefficient fields, ``(coefficient fields, y, x)`` with u's layout and halo, read-only (its halo filled once
by the caller; :func:`no_coefficients` for a model without any); ``values`` the forcing values of the call's
steps, ``(steps, n)``, row s for the call's step s (``models.time_values``). ``get(model, name)`` is the
short form ``advance(u, v, steps, k, region, shrink)`` for models with neither.

The numba kernels are compiled per model. numba's on-disk cache keys a function on its own file only: a
kernel calling a model's update from another file would keep running the old update after the model is
edited, and an update passed as an argument or captured in a closure misses the cache on every run. So
this module writes, once per (stencil source, model source), a copy of solver/core/stencil.py with the model's
update bound at module level (``stencil_<model>_<hash>.py`` under ``__pycache__/kernels``), and imports
that: an unchanged model loads its machine code from the cache, an edited one compiles afresh.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import re
import sys
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, EnvironmentSettingError, ModelError
from ..models import CLASSIC, Model, Neighbours, import_statement, time_values, update_form
from . import tiling

KERNELS = ("numba", "rows", "tiled", "numpy")    # and "prange", the benchmark's yardstick
STENCIL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stencil.py")
TILING = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiling.py")
KERNEL_DIR_VARIABLE = "SOLVER_KERNEL_DIR"


def get_advance(model: Model, name: str):
    """The kernel ``name`` for ``model``: ``advance(u, v, a, steps, k, values, region, shrink=(0, 0, 0, 0))``.

    u, v: ``(fields, y, x)`` float64, C-contiguous (:func:`buffer_pair`); a: ``(coefficient fields, y, x)``
    float64, C-contiguous, the same y and x extents and halo as u, halo filled (:func:`no_coefficients` for a
    model without any); steps: int; k: the model's coefficients (a tuple of numbers); values: ``(steps, n)``
    float64, row s the forcing values of the call's step s (``models.time_values(model, physics, dt,
    first_step, steps)``; ``(steps, 0)`` without forcing); region, shrink: as in solver/core/stencil.py."""
    if name not in (*KERNELS, "prange"):
        raise ValueError(f"unknown kernel {name!r}; choose one of {', '.join(KERNELS)} or prange")
    if name == "numpy":
        return lambda u, v, a, steps, k, values, region, shrink=(0, 0, 0, 0): \
            advance_numpy(model.update, u, v, a, steps, k, values, region, shrink)
    compiled = compile_for(model)
    if name in ("numba", "rows", "prange"):
        advance = {"numba": compiled._advance_numba, "rows": compiled._advance_rows,
                   "prange": compiled._advance_prange}[name]
        return lambda u, v, a, steps, k, values, region, shrink=(0, 0, 0, 0), records=None: \
            advance(u, v, a, steps, _floats(k), _values(values, steps), tuple(region), tuple(shrink),
                    _records(records, steps, name, u.shape))
    depth = tiling.depth_for(len(model.fields))
    columns = tiling.ring_columns(tiling.STRIP, depth)

    def advance_tiled(u, v, a, steps, k, values, region, shrink=(0, 0, 0, 0), records=None):
        import numba
        return compiled._advance_tiled(u, v, a, steps, _floats(k), _values(values, steps), tuple(region),
                                       tuple(shrink), tiling.STRIP, depth, columns, numba.get_num_threads(),
                                       _records(records, steps, "tiled", u.shape))
    return advance_tiled


def get(model: Model, name: str):
    """The kernel ``name`` for a model without coefficient fields or forcing:
    ``advance(u, v, steps, k, region, shrink=(0, 0, 0, 0))`` (see :func:`get_advance`)."""
    if model.coefficient_names or model.has_forcing:
        raise ConfigError(f"model {model.name} has coefficient fields or forcing, which this caller does not "
                          "pass: its kernels take them through kernels.get_advance")
    advance = get_advance(model, name)
    empty = no_coefficients()

    def advance_plain(u, v, steps, k, region, shrink=(0, 0, 0, 0)):
        return advance(u, v, empty, steps, k, np.zeros((steps, 0)), region, shrink)
    return advance_plain


def no_coefficients() -> np.ndarray:
    """The ``a`` of a model without coefficient fields: an empty array, never read."""
    return np.empty((0, 1, 1))


class KernelRecords(NamedTuple):
    """The records of a numba kernel call (solver/core/stencil.py ``_tally``), as :func:`records_for` makes them."""
    own: tuple            # the owned box (j0, j1, i0, i1)
    wx: np.ndarray        # weights along it
    wy: np.ndarray
    want: np.ndarray      # (steps,): bit 1 the series, bit 2 the probes after each step
    stats: np.ndarray     # (steps, slots, fields, 4)
    row_first: np.ndarray  # the probes by row (records_for)
    probe_at: np.ndarray
    probes: np.ndarray    # (steps, probes, fields)


def records_for(own, wx, wy, want, stats, probes, nodes) -> KernelRecords:
    """The ``records`` of a numba kernel call (solver/core/stencil.py ``_tally``): for each of its steps s,
    the statistics of the owned box ``own = (j0, j1, i0, i1)`` (weights ``wx``, ``wy`` along it) added into
    ``stats[s, slot]``, ``(steps, slots, fields, 4)`` = weighted total, weighted sum of squares, min, max, and
    the value of every field at ``nodes`` (``(j, i)`` pairs, local) stored into ``probes[s]``, ``(steps, nodes,
    fields)``, as ``want[s]`` asks (bit 1: statistics, bit 2: probes). A slot is an owned row (numba, rows)
    or a strip of columns (tiled): at least :func:`record_slots` of them; start them at :data:`NEUTRAL`.
    ``own`` within the region must lie within the last step's box (as the owned block does in the stepper's
    calls). Only nodes the call writes are recorded: those it never writes (a fixed boundary) are the caller's.
    The nodes travel sorted by row: ``row_first[j]`` is the first of row j's in ``probe_at`` (column, index in
    ``nodes``), so a kernel finds a row's probes without looking at the others; it has the last probe's row + 2
    entries, and rows past its end have none."""
    nodes = np.array(list(nodes), dtype=np.int64).reshape(-1, 2)
    by_row = np.argsort(nodes[:, 0], kind="stable")
    rows = int(nodes[:, 0].max()) + 1 if len(nodes) else 0
    row_first = np.searchsorted(nodes[by_row, 0], np.arange(rows + 1)).astype(np.int64)
    probe_at = np.ascontiguousarray(np.stack([nodes[by_row, 1], by_row], axis=1), dtype=np.int64)
    return KernelRecords(tuple(int(x) for x in own), np.ascontiguousarray(wx, dtype=np.float64),
                         np.ascontiguousarray(wy, dtype=np.float64), np.ascontiguousarray(want, dtype=np.int64),
                         stats, row_first, probe_at, probes)


def record_slots(name: str, shape: tuple[int, ...]) -> int:
    """How many slots of ``stats`` (:func:`records_for`) a call of the numba kernel ``name`` on arrays of
    ``shape`` (fields, y, x) writes at most, with numba's thread count now: a slot per row (numba, rows,
    prange), or per strip of columns (tiled: as solver/core/stencil.py ``_advance_tiled`` cuts them). Records
    add up every slot after each call, so there should be no more than the kernel writes."""
    ny, nx = shape[-2:]
    rows, columns = max(1, ny - 2), max(1, nx - 2)      # a box leaves a node on every side
    if name != "tiled":
        return rows
    import numba
    strips, threads = -(-columns // tiling.STRIP), numba.get_num_threads()
    return min(-(-strips // threads) * threads, columns)


NEUTRAL = (0.0, 0.0, np.inf, -np.inf)      # a slot of ``stats`` before any node is added
NO_RECORDS = records_for((0, 0, 0, 0), np.empty(0), np.empty(0), np.empty(0), np.empty((0, 1, 1, 4)),
                         np.empty((0, 0, 1)), ())


def _records(records: KernelRecords | None, steps: int, name: str, shape: tuple[int, ...]) -> KernelRecords:
    """The records of a call of kernel ``name`` on arrays of ``shape`` (:data:`NO_RECORDS` for None), checked:
    one more step than ``want`` holds, or fewer slots than the kernel writes (:func:`record_slots`), would
    write past its arrays."""
    if records is None:
        return NO_RECORDS
    if not records.want.shape[0] == records.stats.shape[0] == records.probes.shape[0] == steps:
        raise ValueError(f"records for {records.want.shape[0]} steps given to a kernel call of {steps} steps")
    slots = record_slots(name, shape)
    if records.stats.shape[1] < slots:
        raise ValueError(f"records with {records.stats.shape[1]} slots given to a kernel call that writes up to "
                         f"{slots}")
    return records


def _values(values, steps: int) -> np.ndarray:
    """The forcing values as a C-contiguous ``(steps, n)`` float64 array (one numba type), checked."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < steps:
        raise ValueError(f"values has shape {values.shape}; a kernel call of {steps} steps needs ({steps}, n)")
    return values


PAGE_BYTES = 4096


def buffer_pair(shape: tuple[int, ...], pool: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two uninitialised float64 arrays of ``shape`` for a kernel's ``(u, v)``, cut from one allocation (or
    from the start of ``pool``, of at least :func:`pair_size` doubles) so that their starts differ by
    :func:`alias_free_offset` bytes modulo a 4 KiB page.

    A step loads rows of one buffer and stores rows of the other at the same columns. When the two
    addresses share their low 12 bits, each load waits for the pending store (4K aliasing), and two arrays
    allocated one after the other land there by chance, depending on the grid's size: the plain kernel then
    runs measurably slower (docs/performance.md)."""
    size = int(np.prod(shape))
    second = pair_size(shape) - size
    pool = np.empty(second + size) if pool is None else pool
    return pool[:size].reshape(shape), pool[second:second + size].reshape(shape)


def pair_size(shape: tuple[int, ...]) -> int:
    """Doubles that :func:`buffer_pair` takes for two arrays of ``shape``: the first in whole pages, then the
    offset that keeps the second free of 4K aliasing, then the second."""
    size = int(np.prod(shape))
    whole = -(-size * 8 // PAGE_BYTES) * PAGE_BYTES // 8
    return whole + alias_free_offset(shape[-1] * 8) // 8 + size


def alias_free_offset(row_bytes: int) -> int:
    """The offset (bytes, a multiple of 64, modulo 4 KiB) between the two buffers that keeps every pair of
    rows a step loads and stores (up to two rows apart, either buffer first) furthest from 4K aliasing."""
    def distance(offset):
        offset %= PAGE_BYTES
        return min(offset, PAGE_BYTES - offset)
    return max(range(0, PAGE_BYTES, 64), key=lambda g: (min(distance(g + m * row_bytes) for m in range(-2, 3)),
                                                       -abs(g - PAGE_BYTES // 2)))


def advance_numpy(update, u, v, a, steps, k, values, region, shrink=(0, 0, 0, 0)):
    """The model's update on array slices: the readable reference for tests and small ensemble members.
    ``update`` in either form (models.update_form); ``a`` and ``values`` as for :func:`get_advance`."""
    classic = update_form(update) == CLASSIC
    j0, j1, i0, i1 = region
    s_south, s_north, s_west, s_east = shrink
    fields = u.shape[0]
    for s in range(steps):
        jl, jh = j0 + s * s_south, j1 - s * s_north
        il, ih = i0 + s * s_west, i1 - s * s_east

        def at(x, dj, di):
            views = tuple(x[f, jl + dj:jh + dj, il + di:ih + di] for f in range(x.shape[0]))
            for view in views:
                view.flags.writeable = False        # an update changing its arguments fails, not the result
            return views[0] if len(views) == 1 else views

        def around(x):
            return Neighbours(at(x, 0, 0), at(x, 0, -1), at(x, 0, 1), at(x, -1, 0), at(x, 1, 0))
        if classic:
            new = update(*around(u), k)
        else:
            new = update(around(u), around(a) if a.shape[0] else None, k, values[s])
        v[:, jl:jh, il:ih] = new if fields > 1 else (new,)
        u, v = v, u
    return u, v


def _floats(k) -> tuple[float, ...]:
    """The coefficients as a tuple of floats: one numba type, so one compiled (and cached) signature."""
    return tuple(float(value) for value in k)


def warm_up(model: Model, name: str) -> None:
    """Compile (or load from cache) a kernel for the types a run calls it with, without running it (so the
    update never meets made-up values), so the first timed step is not a compile; an update numba cannot
    compile is one line naming the model file. Nothing to do for the numpy kernel."""
    if name == "numpy":
        return
    import numba
    k = _floats(model.coefficients(*_warm_up_args(model)))
    u = np.zeros((len(model.fields), 4, 4))
    a = np.zeros((len(model.coefficient_names), 4, 4))
    values = np.zeros((1, _forcing_count(model)))
    compiled = compile_for(model)
    if name in ("numba", "rows"):
        dispatcher = compiled._advance_numba if name == "numba" else compiled._advance_rows
        args = (u, u, a, 1, k, values, (1, 3, 1, 3), (0, 0, 0, 0), NO_RECORDS)
    elif name == "prange":
        dispatcher, args = compiled._prange_step, (u, u, a, (1, 3, 1, 3), k, values[0], NO_RECORDS, 0)
    else:
        dispatcher, args = compiled._advance_tiled, (u, u, a, 1, k, values, (1, 3, 1, 3), (0, 0, 0, 0), 1, 1, 1, 1,
                                                     NO_RECORDS)
    try:
        dispatcher.compile(tuple(numba.typeof(arg) for arg in args))
    except Exception as err:
        if not type(err).__module__.startswith("numba"):
            raise
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(err).splitlines()]
        at = next((n for n, line in enumerate(lines) if line and not line.startswith(("Failed in", "During:"))),
                  None)
        cause = "" if at is None else lines[at]
        call = next((line for line in lines[at + 1:] if line), "") if at is not None else ""
        if cause.endswith(":") and call:              # "... found for signature:", then the call
            cause = f"{cause} {call.lstrip('> ')}"
        fix = "call only @njit functions and module constants (numbers, tuples, numpy arrays; no dicts) from update"
        if "getitem(float64" in cause:
            fix = ("update gets a field's value at one node, a number: index only the tuples of a model's several "
                   "fields or coefficient fields")
        raise ConfigError(f"model {model.name} ({model.file}): numba cannot compile its update for the {name} "
                          f"kernel: {cause[:200]}; {fix} (docs/models.md)") from None


ROUNDING = 64         # units in the last place: a difference up to this is rounding computed otherwise


def check_compiled(model: Model, name: str, u: np.ndarray, a: np.ndarray, k, values: np.ndarray) -> str | None:
    """Step kernel ``name`` and the numpy reference once from ``u`` (sample values, ``(fields, y, x)``, the
    edge read as halo), with coefficient fields ``a`` and forcing ``values``; they agree in every bit when
    the machine code is today's update. A larger difference than :data:`ROUNDING` is a ModelError: numba
    keeps the value of every global update reads as it was when it compiled, so one read from os.environ, a
    file or another module runs stale. A smaller one (``c ** 3``, ``np.exp``: numba and numpy compute them
    otherwise) is returned as a warning: the run's last bits depend on its kernel."""
    if name == "numpy" or min(u.shape[1:]) < 3:
        return None
    region = (1, u.shape[1] - 1, 1, u.shape[2] - 1)
    with np.errstate(all="ignore"):
        want, _ = get_advance(model, "numpy")(u.copy(), u.copy(), a, 1, k, values, region)
    first, second = buffer_pair(u.shape)
    first[...] = second[...] = u
    got, _ = get_advance(model, name)(first, second, a, 1, k, values, region)
    differ = (got != want) & ~(np.isnan(got) & np.isnan(want))
    if not differ.any():
        return None
    with np.errstate(all="ignore"):
        ulps = np.abs(got - want)[differ] / np.spacing(np.abs(want[differ]))
    worst, count, nodes = float(np.max(ulps)), int(differ.sum()), got[:, 1:-1, 1:-1].size
    where = (f"model file {model.file}: its update compiled for the {name} kernel and run by numpy give other "
             f"numbers on sample values ({count} of {nodes} nodes")
    if worst <= ROUNDING:
        return (f"{where}, by up to {worst:.0f} units in the last place): the run's last bits depend on its kernel; "
                "write powers as products (c * c * c, not c ** 3) and keep np.exp, np.sin and the like out of "
                "update (docs/models.md)")
    raise ModelError(f"{where}, by up to {worst:.3g} units in the last place): numba keeps the values of the globals "
                     "update reads as they were when it compiled; read parameters from physics, not from "
                     f"os.environ, files or other modules, or delete {compile_for(model).__file__} to compile afresh "
                     "(docs/models.md)")


def _warm_up_args(model: Model):
    return model.Physics(), 1.0, 1.0, 1e-3


def _forcing_count(model: Model) -> int:
    """How many forcing values the model's forcing() returns (0 without one)."""
    return time_values(model, model.Physics(), 1e-3, 0, 1).shape[1]


# --- per-model compilation --------------------------------------------------------------------------------
_compiled: dict[str, object] = {}


def binding(model: Model) -> str:
    """The code appended to solver/core/stencil.py for ``model``: its update (called by ``_point`` in its form)
    and the accessors of its fields and coefficient fields."""
    fields, coefficients = len(model.fields), len(model.coefficient_names)

    def accessors(count):
        each = range(count)
        views = "(" + ", ".join(f"a[{f}, j, i:i + n]" for f in each) + ",)"
        at = "v[0][m]" if count == 1 else "(" + ", ".join(f"v[{f}][m]" for f in each) + ")"
        return views, at
    views, at = accessors(fields)
    put = "    v[0][m] = x\n" if fields == 1 else "".join(f"    v[{f}][m] = x[{f}]\n" for f in range(fields))
    # Without coefficient fields _cviews and _cat give 0.0, which no update sees: LLVM drops them.
    cviews, cat = accessors(coefficients) if coefficients else ("0.0", "0.0")
    if model.form == CLASSIC:
        call = "update(c, w, e, s, n, k)"
    else:
        around = "Neighbours(ac, aw, ae, a_s, an)" if coefficients else "None"
        call = f"update(Neighbours(c, w, e, s, n), {around}, k, f)"
    return (f"\n\n# --- binding: model {model.spec} (source {model.source_hash}), {fields} field(s), "
            f"{coefficients} coefficient field(s), update form {model.form} ---\n"
            f"{import_statement(model)}"
            "from solver.models import Neighbours\n"
            f"COEFFICIENTS = {coefficients}\n"
            f"FORCING = {int(model.has_forcing)}\n"
            "update = njit(inline='always')(_model.update)\n\n\n"
            "@njit(inline='always')\n"
            f"def _point(c, w, e, s, n, ac, aw, ae, a_s, an, k, f):\n    return {call}\n\n\n"
            "@njit(inline='always')\n"
            f"def _views(a, j, i, n):\n    return {views}\n\n\n"
            "@njit(inline='always')\n"
            f"def _at(v, m):\n    return {at}\n\n\n"
            "@njit(inline='always')\n"
            f"def _put(v, m, x):\n{put}\n\n"
            "@njit(inline='always')\n"
            f"def _cviews(a, j, i, n):\n    return {cviews}\n\n\n"
            "@njit(inline='always')\n"
            f"def _cat(v, m):\n    return {cat}\n")


def kernel_dir() -> str:
    """Where generated kernel modules go: SOLVER_KERNEL_DIR, else beside numba's cache of this package."""
    configured = os.environ.get(KERNEL_DIR_VARIABLE)
    if configured:
        return configured
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__", "kernels")
    if os.access(os.path.dirname(os.path.dirname(here)), os.W_OK):
        return here
    return os.path.join(os.path.expanduser("~"), ".cache", "hpc-stencil-kernels")


def _write_kernel(directory: str, path: str, model: Model, text: str) -> None:
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise NotADirectoryError(20, "it is not a directory")
    os.makedirs(directory, exist_ok=True)
    # Write aside and link into place: concurrent ranks never see half a file, and the first one's
    # file (and its modification time, which numba's cache index checks) is the one that stays.
    import tempfile          # here: an ensemble member with the numpy kernel never gets this far
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(f"# Generated by solver/core/kernels.py from solver/core/stencil.py and {model.file}.\n"
                         "# Do not edit: a new file is written whenever either changes.\n" + text)
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def generated(model: Model) -> tuple[str, str]:
    """(name, text) of the kernel module generated for ``model``: the name carries a hash of the kernels'
    sources (stencil.py, tiling.py) and of the model's, so it changes whenever any of them does."""
    with open(STENCIL, encoding="utf-8") as stream:
        text = stream.read() + binding(model)
    with open(TILING, encoding="utf-8") as stream:      # the template reads its ring size from there
        tiling = stream.read()
    digest = hashlib.sha256((text + tiling).encode()).hexdigest()[:16]
    return f"stencil_{model.name}_{digest}", text


def compile_for(model: Model):
    """The generated kernel module of ``model`` (written if absent, imported once per process)."""
    name, text = generated(model)
    if name in _compiled:
        return _compiled[name]
    directory = kernel_dir()
    path = os.path.join(directory, name + ".py")
    if not os.path.exists(path):
        try:
            _write_kernel(directory, path, model, text)
        except OSError as err:
            where = (f"{KERNEL_DIR_VARIABLE}={directory}" if os.environ.get(KERNEL_DIR_VARIABLE)
                     else f"the kernel directory {directory}")
            fix = (f"point {KERNEL_DIR_VARIABLE} at a writable directory or unset it"
                   if os.environ.get(KERNEL_DIR_VARIABLE) else f"set {KERNEL_DIR_VARIABLE} to a writable directory")
            raise EnvironmentSettingError(f"environment: {where}: cannot write the generated kernels there "
                                          f"({err.strerror or type(err).__name__}); {fix}") from None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _serialise_cache_writes(module, name + ".lock")
    # numba's thread pool, launched now: a compiled kernel calling a parallel sweep that its process loaded
    # from the cache is cached without the launch (numba/numba#4807), and a later process loading that
    # kernel first crashed in its first parallel loop
    import numba
    numba.get_num_threads()
    _compiled[name] = module
    return module


class _SerialisedCache:
    """A compiled function's numba cache whose writes exclude one another and its reads across processes
    (an ``flock`` on ``lock`` beside its index: exclusive to save, shared to load). numba saves an entry by
    reading the index, numbering a data file after the entries it lists and writing both: two processes
    compiling different signatures at once (the two halves of the test suite, runs with and without probes
    starting together) could both take number 1, leaving the index naming one signature beside the other's
    machine code, which a later run would load and execute. Loads stay concurrent: the ranks of a job start
    together."""

    def __init__(self, cache, lock: str):
        self._cache, self._lock = cache, os.path.join(cache._cache_path, lock)

    def _holding(self, mode, call, *args):
        try:
            fd = os.open(self._lock, os.O_RDONLY | os.O_CREAT, 0o644)   # flock needs no write access
        except OSError:                 # where nothing can be written, numba's own cache writes nothing
            return call(*args)
        try:
            try:
                fcntl.flock(fd, mode)
            except OSError:             # a file system without locks: as numba does by itself
                pass
            return call(*args)
        finally:
            os.close(fd)                # and with it the lock

    def load_overload(self, sig, target_context):
        return self._holding(fcntl.LOCK_SH, self._cache.load_overload, sig, target_context)

    def save_overload(self, sig, data):
        return self._holding(fcntl.LOCK_EX, self._cache.save_overload, sig, data)

    def __getattr__(self, name):
        return getattr(self._cache, name)


def _serialise_cache_writes(module, lock: str) -> None:
    """Give every cached compiled function of the generated ``module`` a :class:`_SerialisedCache` locking
    the file named ``lock`` in its cache folder."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher
    for value in vars(module).values():
        if isinstance(value, Dispatcher) and not isinstance(value._cache, (NullCache, _SerialisedCache)):
            value._cache = _SerialisedCache(value._cache, lock)
