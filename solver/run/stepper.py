"""Advancing the fields: the kernel steps and the halo fills between them, as the decomposition needs.

A single process with fixed boundaries advances any number of steps per compiled call; otherwise each cycle
of ``halo`` steps starts the exchange, updates the interior, completes the exchange, fills the periodic and
zero-flux halos, updates the rim and then runs the remaining steps of the cycle on the shrinking, still
valid, part of the halo. A :class:`Recording` passed to :meth:`Stepper.advance` has the kernels record the
series and probes of every step of the advance inside their sweeps, so records cost neither a stop of the
kernel (its chunks and halo cycles run whole) nor a pass over memory of their own.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import models
from ..comm import on_every_rank
from ..core import kernels, series
from ..core.fields import coefficient_field
from ..core.config import SIDES, Config
from ..core.validation import sample_axes
from ..core.grid import Decomposition
from ..parallel.halo import HaloExchange, fill_boundaries


@dataclass
class Timer:
    """Seconds spent per phase of the run loop."""
    seconds: dict = field(default_factory=lambda: {"compute": 0.0, "halo": 0.0, "io": 0.0, "records": 0.0})

    def add(self, phase: str, since: float) -> float:
        t = time.perf_counter()
        self.seconds[phase] += t - since
        return t


class Recording:
    """What the kernels record during one advance of ``len(want)`` steps (``want[s]``: bit 1 the series, bit 2
    the probes after the advance's step s): each field's statistics over the owned nodes (in ``slots`` slots,
    one per owned row or strip of the kernel: kernels.record_slots; and a last one for the owned nodes no
    kernel writes, a fixed boundary's, which keep their values through the advance) and the fields at the owned
    probes' ``nodes`` (``(j, i)`` in the owned block), from u, the state at the advance's start, and the weights
    ``wx``, ``wy`` of the owned nodes."""

    def __init__(self, decomp: Decomposition, u: np.ndarray, want: np.ndarray, wx, wy, nodes, slots: int):
        h, fields = decomp.halo, u.shape[0]
        own = (h, h + decomp.ny_own, h, h + decomp.nx_own)
        nodes = [(j + h, i + h) for j, i in nodes]
        self.want = want
        self.stats = np.empty((len(want), slots + 1, fields, 4))
        self.stats[...] = kernels.NEUTRAL
        self.stats[:, slots] = _unwritten(u, own, decomp.update_region(), wx, wy)
        self.probes = np.empty((len(want), len(nodes), fields))
        self.probes[...] = np.array([u[:, j, i] for j, i in nodes]).reshape(len(nodes), fields)
        self.records = kernels.records_for(own, wx, wy, want, self.stats, self.probes, nodes)

    def part(self, offset: int, count: int) -> kernels.KernelRecords:
        """The records of a kernel call running the advance's steps offset .. offset + count - 1."""
        cut = slice(offset, offset + count)
        return self.records._replace(want=self.records.want[cut], stats=self.records.stats[cut],
                                     probes=self.records.probes[cut])


def _unwritten(u, own, region, wx, wy) -> np.ndarray:
    """The statistics ``(fields, 4)`` of the owned nodes outside ``region`` (as a slot of the kernels' records)."""
    j0, j1, i0, i1 = own
    r0, r1 = min(max(region[0], j0), j1), min(max(region[1], j0), j1)
    c0, c1 = min(max(region[2], i0), i1), min(max(region[3], i0), i1)
    out = np.empty((u.shape[0], 4))
    out[...] = kernels.NEUTRAL
    for a, b, c, d in ((j0, r0, i0, i1), (r1, j1, i0, i1), (r0, r1, i0, c0), (r0, r1, c1, i1)):
        if a < b and c < d:
            part = series.block_partials(u[:, a:b, c:d], wx[c - i0:d - i0], wy[a - j0:b - j0])
            out[:, :2] += part[:, :2]
            out[:, 2], out[:, 3] = np.minimum(out[:, 2], part[:, 2]), np.maximum(out[:, 3], part[:, 3])
    return out


def check_kernel(cfg: Config, kernel: str, comm, say) -> None:
    """One step of ``kernel`` against the numpy reference (kernels.check_compiled) from sample values on up to
    33 x 32 nodes spread over the domain, with their coefficient fields, the run's coefficients and its first
    forcing: the same sample on every rank, and a refusal on any rank raised on all (each rank's machine code
    comes from its own node's cache). A warning is said once."""
    model = cfg.model_impl
    x, y = sample_axes(cfg, 33)
    a = kernels.no_coefficients()
    if model.coefficient_names:
        a = models.coefficient_values(model, cfg.physics, x, y, models.SampleUniform((len(y), len(x))))
    u = models.sample_values((len(model.fields), len(y), len(x)))
    forcing = models.time_values(model, cfg.physics, cfg.time.dt, 0, 1)
    warning = on_every_rank(comm, lambda: kernels.check_compiled(model, kernel, u, a, cfg.coefficients(), forcing))
    if warning:
        say(f"warning: {warning}", error=True)


class Stepper:
    """Advances the pair of buffers by any number of steps, exchanging halos as the decomposition needs.

    Every kernel call gets the model's coefficients, its coefficient fields (read-only, their halo filled once
    here) and the forcing values of each of its steps, computed from the global step number, so that the
    numbers do not depend on how the steps are cut into calls (kernel, halo width, ranks, a restart)."""

    def __init__(self, cfg: Config, decomp: Decomposition, timer: Timer, kernel: str,
                 coefficient_fields: np.ndarray | None = None):
        """``coefficient_fields``: those of another stepper on the same decomposition, shared (read-only)
        instead of computed again (the kernel measurement of solver/run/wisdom.py)."""
        self.decomp, self.timer = decomp, timer
        model = self.model = cfg.model_impl
        self.physics, self.dt = cfg.physics, cfg.time.dt
        self.kernel = kernels.get_advance(model, kernel)
        self.coefficients = cfg.coefficients()
        self.coefficient_fields = kernels.no_coefficients()
        if coefficient_fields is not None:
            self.coefficient_fields = coefficient_fields
        elif model.coefficient_names:
            # a hook failing on some ranks' nodes only: one refusal on every rank, not a hang in the exchange
            self.coefficient_fields = on_every_rank(decomp.comm, lambda: coefficient_field(cfg, decomp))
            if any(decomp.has(side) for side in SIDES):
                exchange = HaloExchange(decomp, len(model.coefficient_names))
                exchange.update(self.coefficient_fields)
                exchange.free()
            fill_boundaries(self.coefficient_fields, decomp)
        # Sides that change with time (models.side_hooks: fixed sides with boundary_values, flux sides),
        # evaluated per step from the global step number on the whole side's global coordinates, so that every
        # kernel, halo width and decomposition sees the same numbers. Empty for every other model.
        axes = {"x": cfg.axis("x"), "y": cfg.axis("y")}
        timed = models.side_hooks(model, self.physics, decomp.boundary, axes["x"], axes["y"])
        self.sides = []         # (side, hook, coordinates, owned global slice, stored global index, spacing)
        for side, hook in timed.items():
            if decomp.has(side):
                continue
            along = "y" if side in ("west", "east") else "x"
            (g0, g1), n = (decomp.y_range, decomp.ny) if along == "y" else (decomp.x_range, decomp.nx)
            stored = np.arange(g0 - decomp.halo, g1 + decomp.halo)
            stored = stored % n if cfg.boundary.periodic(along) else np.clip(stored, 0, n - 1)
            spacing = cfg.dx if along == "y" else cfg.dy            # normal to the side
            self.sides.append((side, hook, axes[along], slice(g0, g1), stored, spacing))
        # A mirrored halo stays valid for one step only (the model's update need not be symmetric), so
        # zero-flux and flux boundaries are filled every step, and sides that change with time are set every
        # step (on every rank: the exchanges are collective); neighbours and periodic wraps every ``halo`` steps.
        self.per_step = bool(timed)
        self.cycle = 1 if "zero_flux" in decomp.boundary.values() or timed else decomp.halo
        self.exchange = None
        if any(decomp.has(side) for side in SIDES):          # neighbouring ranks, or one across a periodic axis
            self.exchange = HaloExchange(decomp, len(model.fields))
        # Records inside the kernels: the compiled ones, and only where the owned nodes they do not write keep
        # their values through a call (not sides that change with time, set between its steps)
        self.records_inside = kernel in ("numba", "rows", "tiled") and not self.per_step
        self.kernel_name = kernel

    def recording(self, u: np.ndarray, want: np.ndarray, wx, wy, nodes) -> Recording:
        """A :class:`Recording` of an advance of u (``want``, ``wx``, ``wy``, ``nodes`` as it takes them), with
        as many slots as this stepper's kernel writes."""
        return Recording(self.decomp, u, want, wx, wy, nodes, kernels.record_slots(self.kernel_name, u.shape))

    def advance(self, u: np.ndarray, v: np.ndarray, first: int, steps: int,
                recording: Recording | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Steps ``first`` .. ``first + steps - 1`` (global step numbers), the kernels recording what
        ``recording`` asks after each (only if :attr:`records_inside`); returns (new, old)."""
        d = self.decomp
        start, end = first, first + steps
        if recording is not None and not self.records_inside:
            raise ValueError("this stepper's kernel calls cannot record: take the records between calls")

        def part(step, count):
            return None if recording is None else recording.part(step - start, count)
        if not d.needs_halo:
            for step in range(first, end) if self.per_step else (first,):   # fixed sides changing with time
                t = time.perf_counter()
                self._set_values(u, step)
                t = self.timer.add("halo", t)
                count = 1 if self.per_step else steps
                u, v = self._kernel(u, v, step, count, d.update_region(), d.shrink, part(step, count))
                self.timer.add("compute", t)
        else:
            while first < end:
                count = min(self.cycle, end - first)
                u, v = (self._overlapped(u, v, first, part(first, 1)) if count == 1 and self.exchange
                        else self._cycle(u, v, first, count, part(first, count)))
                first += count
        if self.per_step:       # the state at the call's end holds its time's side values (output, checkpoint)
            self._set_values(u, end)
        return u, v

    def _set_values(self, u, step):
        """Write the boundary_values of step ``step`` (t = step dt) into this rank's nodes of those fixed sides,
        west, east, south, north in turn (at a corner of two such sides, south or north wins)."""
        h, d = self.decomp.halo, self.decomp
        for side, hook, coordinates, owned, _, _ in self.sides:
            if hook != "boundary_values":
                continue
            values = models.side_values(self.model, hook, self.physics, side, coordinates, step * self.dt)
            if values is None:
                continue
            if side in ("west", "east"):
                u[:, h:h + d.ny_own, h if side == "west" else h + d.nx_own - 1] = values[:, owned]
            else:
                u[:, h if side == "south" else h + d.ny_own - 1, h:h + d.nx_own] = values[:, owned]

    def _offsets(self, step):
        """``{side: h g}`` of this rank's flux sides at step ``step``, over each side's stored extent."""
        out = {}
        for side, hook, coordinates, _, stored, spacing in self.sides:
            if hook == "boundary_gradient":
                g = models.side_values(self.model, hook, self.physics, side, coordinates, step * self.dt)
                out[side] = spacing * g[:, stored]
        return out

    def _kernel(self, u, v, first, steps, region, shrink=(0, 0, 0, 0), records=None):
        values = models.time_values(self.model, self.physics, self.dt, first, steps)
        if records is None:
            return self.kernel(u, v, self.coefficient_fields, steps, self.coefficients, values, region, shrink)
        return self.kernel(u, v, self.coefficient_fields, steps, self.coefficients, values, region, shrink, records)

    def _cycle(self, u, v, first, steps, records=None):
        """Fill the whole halo (exchange, periodic wraps, mirrors), then ``steps`` steps in one kernel call:
        with a deep halo the exchange is rare, and the tiled kernel runs all the steps as one chunk."""
        d = self.decomp
        t = time.perf_counter()
        self.fill(u, first)
        t = self.timer.add("halo", t)
        u, v = self._kernel(u, v, first, steps, d.update_region(steps - 1), d.shrink, records)
        self.timer.add("compute", t)
        return u, v

    def _overlapped(self, u, v, first, records=None):
        """One step with an exchange before it: the interior is computed while the messages travel (each
        call adds its nodes to the step's records)."""
        d = self.decomp
        t = time.perf_counter()
        if self.per_step:
            self._set_values(u, first)
        self.exchange.start(u)
        t = self.timer.add("halo", t)
        full, inner = d.update_region(0), d.update_region(-1)
        inner = _clip(inner, full)
        self._kernel(u, v, first, 1, inner, records=records)
        t = self.timer.add("compute", t)
        self.exchange.finish()
        fill_boundaries(u, d, self._offsets(first) if self.per_step else None)
        t = self.timer.add("halo", t)
        for box in _rim(full, inner):
            self._kernel(u, v, first, 1, box, records=records)
        self.timer.add("compute", t)
        return v, u

    def fill(self, u: np.ndarray, step: int | None = None) -> None:
        """Fill the whole halo of u: from the neighbours (a collective under MPI) and the boundaries; given the
        global step number of u's state, set the sides that change with time to that step's values first."""
        timed = self.per_step and step is not None
        if timed:
            self._set_values(u, step)
        if self.exchange is not None:
            self.exchange.update(u)
        fill_boundaries(u, self.decomp, self._offsets(step) if timed else None)

    def close(self) -> None:
        """Free the exchange's MPI datatypes."""
        if self.exchange is not None:
            self.exchange.free()
            self.exchange = None


def _clip(inner, full):
    j0, j1, i0, i1 = inner
    a, b, c, e = full
    j0 = min(max(j0, a), b)
    i0 = min(max(i0, c), e)
    return j0, min(max(j1, j0), b), i0, min(max(i1, i0), e)


def _rim(full, inner):
    """The boxes of ``full`` outside ``inner`` (south, north, west, east strips)."""
    a, b, c, e = full
    j0, j1, i0, i1 = inner
    boxes = [(a, j0, c, e), (j1, b, c, e), (j0, j1, c, i0), (j0, j1, i1, e)]
    return [box for box in boxes if box[0] < box[1] and box[2] < box[3]]
