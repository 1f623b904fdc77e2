"""Fisher-KPP: a population spreading and growing, dC/dt = D lap C + r C (1 - C).

Forward time, centred space, the logistic growth taken at the old time level. Exact solution: the travelling
wave of Ablowitz and Zeppetella (1979), C = 1 / (1 + exp(s (x - x0 - c t)))^2 with s = sqrt(r / (6 D)) and
speed c = 5 sqrt(r D / 6), uniform in y: run it with periodic (or zero-flux) south and north sides.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FIELDS = {"C": ("1", "population density (carrying capacity 1)")}
UNITS = {"physics.diffusivity": "m2 s-1", "physics.rate": "s-1", "initial.front": "m"}   # of the config values


@dataclass(frozen=True)
class Physics:
    diffusivity: float = 1.0                   # D, in m2 s-1
    rate: float = 1.0                          # r, the growth rate, in s-1


@dataclass(frozen=True)
class Initial:
    front: float = 20.0                        # x0: where the wave is at t = 0 (C = 1/4 there)


def check(physics: Physics, initial: Initial) -> str | None:
    if not physics.diffusivity > 0:
        return f"physics.diffusivity = {physics.diffusivity} must be positive"
    if not physics.rate > 0:
        return f"physics.rate = {physics.rate} must be positive"
    return None


def coefficients(physics: Physics, dx: float, dy: float, dt: float) -> tuple[float, ...]:
    cx = physics.diffusivity * dt / dx ** 2
    cy = physics.diffusivity * dt / dy ** 2
    return 1.0 - 2.0 * cx - 2.0 * cy, cx, cy, physics.rate * dt


def update(c, w, e, s, n, k):
    weight, cx, cy, growth = k
    return weight * c + cx * (w + e) + cy * (s + n) + growth * c * (1.0 - c)


def max_stable_dt(physics: Physics, dx: float, dy: float) -> float:
    """Monotone for 0 <= C <= 1 (so C stays there): dt (2 D (1/dx^2 + 1/dy^2) + r) <= 1."""
    return 1.0 / (2.0 * physics.diffusivity * (dx ** -2 + dy ** -2) + physics.rate)


def initial(physics: Physics, initial: Initial, x, y, uniform):
    return exact(physics, initial, x, y, 0.0)


def exact(physics: Physics, initial: Initial, x, y, t: float):
    """The travelling wave, the same on every row."""
    steepness = math.sqrt(physics.rate / (6.0 * physics.diffusivity))
    speed = 5.0 * math.sqrt(physics.rate * physics.diffusivity / 6.0)
    wave = 1.0 / (1.0 + np.exp(steepness * (x - initial.front - speed * t))) ** 2
    return np.broadcast_to(wave[np.newaxis, :], (y.size, x.size))
