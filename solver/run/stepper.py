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

from ..core import kernels
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
    """Advances the pair of buffers by any number of steps, exchanging halos as the decomposition needs."""

    def __init__(self, cfg: Config, decomp: Decomposition, timer: Timer, kernel: str):
        self.decomp, self.timer = decomp, timer
        model = cfg.model_impl
        self.kernel = kernels.get(model, kernel)
        self.coefficients = cfg.coefficients()
        # A mirrored halo stays valid for one step only (the model's update need not be symmetric), so
        # zero-flux boundaries are filled every step; neighbours and periodic wraps every ``halo`` steps.
        self.cycle = 1 if "zero_flux" in decomp.boundary.values() else decomp.halo
        self.exchange = None
        if any(decomp.has(side) for side in SIDES):          # neighbouring ranks, or one across a periodic axis
            self.exchange = HaloExchange(decomp, len(model.fields))

    def advance(self, u: np.ndarray, v: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
        d = self.decomp
        if not d.needs_halo:
            t = time.perf_counter()
            u, v = self.kernel(u, v, steps, self.coefficients, d.update_region(), d.shrink)
            self.timer.add("compute", t)
            return u, v
        while steps > 0:
            count = min(self.cycle, steps)
            u, v = self._overlapped(u, v) if count == 1 and self.exchange else self._cycle(u, v, count)
            steps -= count
        return u, v

    def _cycle(self, u, v, steps):
        """Fill the whole halo (exchange, periodic wraps, mirrors), then ``steps`` steps in one kernel call:
        with a deep halo the exchange is rare, and the tiled kernel runs all the steps as one chunk."""
        d = self.decomp
        t = time.perf_counter()
        self.fill(u)
        t = self.timer.add("halo", t)
        u, v = self.kernel(u, v, steps, self.coefficients, d.update_region(steps - 1), d.shrink)
        self.timer.add("compute", t)
        return u, v

    def _overlapped(self, u, v):
        """One step with an exchange before it: the interior is computed while the messages travel."""
        d, step = self.decomp, self.kernel
        t = time.perf_counter()
        self.exchange.start(u)
        t = self.timer.add("halo", t)
        full, inner = d.update_region(0), d.update_region(-1)
        inner = _clip(inner, full)
        step(u, v, 1, self.coefficients, inner)
        t = self.timer.add("compute", t)
        self.exchange.finish()
        fill_boundaries(u, d)
        t = self.timer.add("halo", t)
        for box in _rim(full, inner):
            step(u, v, 1, self.coefficients, box)
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
