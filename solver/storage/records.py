"""Records between snapshots, in the output file: probes and per-step series, each along its own time axis.

- **Probes** (``output.probes``, every ``output.probe_every`` steps): the value of every field at each probe's
  node, ``probe_<name>_<field>(probe_time)``, written by the rank that owns the node. Each variable's
  attributes say where the probe was asked for and which node it reads (``x``, ``y``, ``node_i``,
  ``node_j``).
- **Series** (every ``output.series_every`` steps): ``<field>_total`` (trapezoid-weighted integral),
  ``<field>_min``, ``<field>_max`` and ``<field>_l2`` (sqrt of the weighted sum of squares) over the whole
  grid, ``(series_time)``, written by rank 0. The compiled kernels take both inside their sweeps for every
  step of a call (:meth:`Records.take`: one sum-and-max reduction for all of a call's series records, solver/comm.py);
  otherwise the loop stops at each record (:meth:`Records.sample`: one pass and one reduction per record,
  solver/core/series.py).

Both take a record at step 0, at every multiple of their period and at the last step
(solver/core/sampling.py), all float64. Their count is known from the config, so each time axis has its final
length from the start (not unlimited: the netCDF classic model, ``nccopy -k classic``, allows one unlimited
dimension, the snapshots' ``time``) and record k always lands at index k. Records are kept in memory and
written in blocks (every :data:`BLOCK` records, before a checkpoint and at the end: collective calls, which
every rank reaches at the same record), so a record costs no HDF5 call; a restart writes on from the index
after its checkpoint's last record, so the finished file has no gap and no duplicate.
"""
from __future__ import annotations

import numpy as np

from ..comm import sum_and_max
from ..core import sampling, series
from ..core.config import Config
from ..core.grid import Decomposition
from .netcdf import set_netcdf_attrs

BLOCK = 4096        # records kept in memory between writes
CHUNK = 1024        # records per chunk of a series dataset
AXES = sampling.RECORD_AXES


class Records:
    """The probe and series records of one run, in the open output file ``f``."""

    def __init__(self, f, cfg: Config, decomp: Decomposition, resume_step: int | None):
        self.f, self.decomp, self.nsteps, self.dt = f, decomp, cfg.nsteps, cfg.time.dt
        out = cfg.output
        self.fields = cfg.model_impl.fields
        self.cfg = cfg
        self.compiled = cfg.numerics.kernel != "numpy"      # the numpy kernel's runs never import numba
        self.every = {"probe": out.probe_every if out.probes else 0, "series": out.series_every}
        self.probes = sampling.probe_nodes(cfg)
        self.requested = {name: (float(x), float(y)) for name, (x, y) in out.probes.items()}
        self.axes = cfg.axis("x"), cfg.axis("y")
        (x0, x1), (y0, y1) = decomp.x_range, decomp.y_range
        self.mine = {name: (j - y0, i - x0) for name, (i, j) in self.probes.items()
                     if x0 <= i < x1 and y0 <= j < y1}            # probes whose node this rank owns
        self.wx = sampling.trapezoid_weights(cfg, "x", x0, x1)
        self.wy = sampling.trapezoid_weights(cfg, "y", y0, y1)
        self.buffer = {kind: [] for kind in AXES}                 # kind -> [(t, values), ...] not yet written
        # kind -> records in the file: a restart keeps those up to its checkpoint and writes on after them
        self.written = {kind: 0 if resume_step is None else sampling.records_until(every, resume_step, self.nsteps)
                        for kind, every in self.every.items()}
        if resume_step is None:
            self._create()
        else:                    # a .partial begun before the axes had their final length: unlimited, give it
            for kind, every in self.every.items():                    # (collective: every rank resizes)
                count = sampling.records_until(every, self.nsteps, self.nsteps)
                for name in (AXES[kind], *self.names(kind)) if every else ():
                    if self.f[name].shape[0] < count and self.f[name].maxshape[0] is None:
                        self.f[name].resize((count,))

    def names(self, kind: str) -> list[str]:
        """The datasets of one kind of record, in the order of a record's values."""
        if kind == "probe":
            return [f"probe_{name}_{field}" for name in self.probes for field in self.fields]
        return [f"{field}_{stat}" for field in self.fields for stat in series.STATISTICS]

    def describe(self) -> list[str]:
        """One line per probe: where it was asked for and the node it reads."""
        return sampling.describe_probes(self.cfg)

    def _create(self) -> None:
        f = self.f
        for dimid, (kind, axis) in enumerate(AXES.items(), start=3):   # after time, y, x (output.py)
            if not self.every[kind]:
                continue
            count = sampling.records_until(self.every[kind], self.nsteps, self.nsteps)     # the run's records
            chunks = (min(CHUNK, count),)
            scale = f.create_dataset(axis, shape=(count,), chunks=chunks, dtype="f8")
            scale.make_scale(axis)
            set_netcdf_attrs(scale.attrs, {"units": "s", "long_name": f"time of the {kind} records", "axis": "T",
                                        "_Netcdf4Dimid": dimid})
            for name in self.names(kind):
                data = f.create_dataset(name, shape=(count,), chunks=chunks, dtype="f8")
                data.dims[0].attach_scale(scale)
                set_netcdf_attrs(data.attrs, self._attrs(kind, name))

    def _attrs(self, kind: str, name: str) -> dict:
        if kind == "probe":
            probe, field = next((p, fd) for p in self.probes for fd in self.fields if name == f"probe_{p}_{fd}")
            (i, j), (x, y) = self.probes[probe], self.axes
            units, long_name = self.fields[field]
            return {"units": units, "long_name": f"{long_name} at probe {probe}", "x": float(x[i]),
                    "y": float(y[j]), "node_i": i, "node_j": j, "x_requested": self.requested[probe][0],
                    "y_requested": self.requested[probe][1]}
        field, stat = name.rsplit("_", 1)
        units, long_name = self.fields[field]
        times = "" if units in ("", "1") else f"{units} "
        what = {"total": ("trapezoid-weighted integral over the domain", f"{times}m2"),
                "min": ("minimum over the domain", units), "max": ("maximum over the domain", units),
                "l2": ("L2 norm over the domain (sqrt of the trapezoid-weighted integral of the square)",
                       f"{times}m")}[stat]
        return {"units": what[1], "long_name": f"{what[0]} of {long_name}"}

    def due(self, step: int) -> bool:
        return any(sampling.is_record_step(every, step, self.nsteps) for every in self.every.values())

    def stops(self) -> tuple[int, ...]:
        """The periods the time loop must stop at (besides the last step)."""
        return tuple(every for every in self.every.values() if every)

    def sample(self, step: int, block: np.ndarray) -> None:
        """Record what is due at ``step`` from this rank's owned ``block`` ``(fields, y, x)``; collective when a
        series record is due (its reduction) or the buffers are full (the write)."""
        t = step * self.dt
        if sampling.is_record_step(self.every["probe"], step, self.nsteps):
            values = [block[:, j, i].copy() for j, i in self.mine.values()]
            self.buffer["probe"].append((t, values))
        if sampling.is_record_step(self.every["series"], step, self.nsteps):
            sums, maxima = series.local_partials(block, self.wx, self.wy, self.compiled)
            sums, maxima = sum_and_max(self.decomp.comm, sums, maxima)
            self.buffer["series"].append((t, series.statistics(sums, maxima).ravel()))
        if max(len(b) for b in self.buffer.values()) >= BLOCK:
            self.flush()

    def wants(self, first: int, steps: int) -> np.ndarray:
        """What the kernels record after each step of an advance from step ``first`` (solver/run/stepper.py
        ``Recording``): bit 1 the series, bit 2 the probes."""
        return np.array([sampling.is_record_step(self.every["series"], step, self.nsteps)
                         + 2 * sampling.is_record_step(self.every["probe"], step, self.nsteps)
                         for step in range(first + 1, first + steps + 1)], dtype=np.int64)

    def take(self, first: int, want: np.ndarray, stats: np.ndarray, probes: np.ndarray) -> None:
        """Keep the records the kernels took during an advance from step ``first`` (``want``, ``stats`` and
        ``probes`` as in solver/run/stepper.py ``Recording``); collective: one reduction for all its series
        records, and the write when the buffers are full."""
        rows = np.nonzero(want & 1)[0]
        if rows.size:
            sums, maxima = sum_and_max(self.decomp.comm, *series.slot_partials(stats[rows]))
            for s, total, most in zip(rows, sums, maxima):
                self.buffer["series"].append(((first + s + 1) * self.dt, series.statistics(total, most).ravel()))
        for s in np.nonzero(want & 2)[0]:
            self.buffer["probe"].append(((first + s + 1) * self.dt, list(probes[s].copy())))
        if max(len(b) for b in self.buffer.values()) >= BLOCK:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records (every rank calls it at the same record; the owners write)."""
        for kind, records in self.buffer.items():
            if not records:
                continue
            start = self.written[kind]
            stop = start + len(records)
            self.written[kind] = stop
            if self.decomp.rank == 0:
                self.f[AXES[kind]][start:stop] = [t for t, _ in records]
            if kind == "series" and self.decomp.rank == 0:
                values = np.array([v for _, v in records])
                for column, name in enumerate(self.names(kind)):
                    self.f[name][start:stop] = values[:, column]
            elif kind == "probe":
                for index, probe in enumerate(self.mine):
                    values = np.array([v[index] for _, v in records])      # (records, fields)
                    for column, field in enumerate(self.fields):
                        self.f[f"probe_{probe}_{field}"][start:stop] = values[:, column]
            records.clear()
