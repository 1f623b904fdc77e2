"""Advancing the fields: the kernel steps and the halo fills between them, as the decomposition needs.

A single process with fixed boundaries advances any number of steps per compiled call; otherwise each cycle
of ``halo`` steps starts the exchange, updates the interior, completes the exchange, fills the periodic and
zero-flux halos, updates the rim and then runs the remaining steps of the cycle on the shrinking, still
valid, part of the halo.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .. import models
from ..core import kernels
from ..core.fields import coefficient_field
from ..core.config import SIDES, Config
from ..core.grid import Decomposition
from ..parallel.halo import HaloExchange, fill_boundaries


@dataclass
class Timer:
    """Seconds spent per phase of the run loop."""
    seconds: dict = field(default_factory=lambda: {"compute": 0.0, "halo": 0.0, "io": 0.0})

    def add(self, phase: str, since: float) -> float:
        t = time.perf_counter()
        self.seconds[phase] += t - since
        return t


class Stepper:
    """Advances the pair of buffers by any number of steps, exchanging halos as the decomposition needs.

    Every kernel call gets the model's coefficients, its coefficient fields (read-only, their halo filled once
    here) and the forcing values of each of its steps, computed from the global step number, so that the
    numbers do not depend on how the steps are cut into calls (kernel, halo width, ranks, a restart)."""

    def __init__(self, cfg: Config, decomp: Decomposition, timer: Timer, kernel: str):
        self.decomp, self.timer = decomp, timer
        model = self.model = cfg.model_impl
        self.physics, self.dt = cfg.physics, cfg.time.dt
        self.kernel = kernels.get_advance(model, kernel)
        self.coefficients = cfg.coefficients()
        self.coefficient_fields = kernels.no_coefficients()
        if model.coefficient_names:
            self.coefficient_fields = coefficient_field(cfg, decomp)
            if any(decomp.has(side) for side in SIDES):
                exchange = HaloExchange(decomp, len(model.coefficient_names))
                exchange.update(self.coefficient_fields)
                exchange.free()
            fill_boundaries(self.coefficient_fields, decomp)
        # A mirrored halo stays valid for one step only (the model's update need not be symmetric), so
        # zero-flux boundaries are filled every step; neighbours and periodic wraps every ``halo`` steps.
        self.cycle = 1 if "zero_flux" in decomp.boundary.values() else decomp.halo
        self.exchange = None
        if any(decomp.has(side) for side in SIDES):          # neighbouring ranks, or one across a periodic axis
            self.exchange = HaloExchange(decomp, len(model.fields))

    def advance(self, u: np.ndarray, v: np.ndarray, first: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Steps ``first`` .. ``first + steps - 1`` (global step numbers); returns (new, old)."""
        d = self.decomp
        if not d.needs_halo:
            t = time.perf_counter()
            u, v = self._kernel(u, v, first, steps, d.update_region(), d.shrink)
            self.timer.add("compute", t)
            return u, v
        end = first + steps
        while first < end:
            count = min(self.cycle, end - first)
            u, v = self._overlapped(u, v, first) if count == 1 and self.exchange else self._cycle(u, v, first, count)
            first += count
        return u, v

    def _kernel(self, u, v, first, steps, region, shrink=(0, 0, 0, 0)):
        values = models.time_values(self.model, self.physics, self.dt, first, steps)
        return self.kernel(u, v, self.coefficient_fields, steps, self.coefficients, values, region, shrink)

    def _cycle(self, u, v, first, steps):
        """Fill the whole halo (exchange, periodic wraps, mirrors), then ``steps`` steps in one kernel call:
        with a deep halo the exchange is rare, and the tiled kernel runs all the steps as one chunk."""
        d = self.decomp
        t = time.perf_counter()
        self.fill(u)
        t = self.timer.add("halo", t)
        u, v = self._kernel(u, v, first, steps, d.update_region(steps - 1), d.shrink)
        self.timer.add("compute", t)
        return u, v

    def _overlapped(self, u, v, first):
        """One step with an exchange before it: the interior is computed while the messages travel."""
        d = self.decomp
        t = time.perf_counter()
        self.exchange.start(u)
        t = self.timer.add("halo", t)
        full, inner = d.update_region(0), d.update_region(-1)
        inner = _clip(inner, full)
        self._kernel(u, v, first, 1, inner)
        t = self.timer.add("compute", t)
        self.exchange.finish()
        fill_boundaries(u, d)
        t = self.timer.add("halo", t)
        for box in _rim(full, inner):
            self._kernel(u, v, first, 1, box)
        self.timer.add("compute", t)
        return v, u

    def fill(self, u: np.ndarray) -> None:
        """Fill the whole halo of u: from the neighbours (a collective under MPI) and the boundaries."""
        if self.exchange is not None:
            self.exchange.update(u)
        fill_boundaries(u, self.decomp)

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
