"""A plate heated by a map of sources switched on at a time: dT/dt = D lap T + q(x, y) h(t).

A model file of the kind docs/models.md teaches, kept next to its config (configs/heat-source.yaml) rather
than built in: copy both to start a model of your own. The source strength q is a coefficient field (two
Gaussian heaters, computed once with any numpy code), h(t) a forcing value (0 before the switch-on time, then
1 + modulation sin(w t), computed once per step), so the update is diffusion's plus one multiplication and
one addition. With zero-flux sides nothing leaves the plate: each step adds dt h(t) times the
trapezoid-weighted total of q to the trapezoid-weighted total of T, to round-off (tests/test_model_seam.py
checks the budget). The update reads q at the node only; heating costs one more array read per node, which
the tiled kernel keeps in cache across its steps. No exact solution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FIELDS = {"T": ("K", "temperature above the initial plate temperature")}
COEFFICIENT_FIELDS = {"q": ("K s-1", "heating rate of the sources when switched on")}
UNITS = {"physics.diffusivity": "m2 s-1", "physics.first_heater": "m", "physics.second_heater": "m",
         "physics.width": "m",
         "physics.rate": "K s-1", "physics.switch_on": "s", "physics.frequency": "rad s-1",
         "physics.modulation": "1"}


@dataclass(frozen=True)
class Physics:
    diffusivity: float = 1e-3                  # D, in m2 s-1
    first_heater: tuple[float, float] = (0.3, 0.4)     # centre of a heater
    second_heater: tuple[float, float] = (0.7, 0.6)    # and of the other
    width: float = 0.05                        # their Gaussian width
    rate: float = 1.0                          # peak heating rate
    switch_on: float = 0.1                     # no heating before this time
    frequency: float = 2.0 * math.pi           # w of the modulation
    modulation: float = 0.5                    # h = 1 + modulation sin(w t) once switched on


@dataclass(frozen=True)
class Initial:
    """Nothing to set: the plate starts at T = 0 everywhere."""


def check(physics: Physics, initial: Initial) -> str | None:
    if not physics.diffusivity > 0:
        return f"physics.diffusivity = {physics.diffusivity} must be positive"
    if not physics.width > 0:
        return f"physics.width = {physics.width} must be positive"
    return None


def coefficient_fields(physics: Physics, x, y, uniform):
    """q on the nodes: the sum of the heaters' Gaussians."""
    q = np.zeros((len(y), len(x)))
    for cx, cy in (physics.first_heater, physics.second_heater):
        r2 = (x[np.newaxis, :] - cx) ** 2 + (y[:, np.newaxis] - cy) ** 2
        q += physics.rate * np.exp(-r2 / (2.0 * physics.width ** 2))
    return q


def forcing(physics: Physics, t: float) -> tuple[float, ...]:
    """(h,) at time t: off before the switch-on, then modulated."""
    if t < physics.switch_on:
        return (0.0,)
    return (1.0 + physics.modulation * math.sin(physics.frequency * t),)


def coefficients(physics: Physics, dx: float, dy: float, dt: float) -> tuple[float, ...]:
    """(centre weight, cx, cy, dt) with cx = D dt / dx^2, as diffusion's."""
    cx = physics.diffusivity * dt / dx ** 2
    cy = physics.diffusivity * dt / dy ** 2
    return 1.0 - 2.0 * cx - 2.0 * cy, cx, cy, dt


def update(u, a, k, f):
    weight, cx, cy, dt = k
    return weight * u.c + cx * (u.w + u.e) + cy * (u.s + u.n) + dt * a.c * f[0]


def max_stable_dt(physics: Physics, dx: float, dy: float) -> float:
    """FTCS is stable while D dt (1/dx^2 + 1/dy^2) <= 1/2 (the source does not change the limit)."""
    return 0.5 / (physics.diffusivity * (dx ** -2 + dy ** -2))


def initial(physics: Physics, initial: Initial, x, y, uniform):
    return np.zeros((len(y), len(x)))
