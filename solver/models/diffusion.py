"""Diffusion of one tracer: dC/dt = D (d2C/dx2 + d2C/dy2), forward time, centred space.

The reference problem of the talk the template grew from: a Gaussian spreading in a box. Its exact solution
on the infinite plane is a Gaussian of variance sigma^2 + 2 D t, which the run compares against.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FIELDS = {"C": ("1", "concentration")}
UNITS = {"physics.diffusivity": "m2 s-1", "initial.center": "m", "initial.sigma": "m",   # of the config values
         "initial.amplitude": "1"}


@dataclass(frozen=True)
class Physics:
    diffusivity: float = 0.0009                # D, in m2 s-1


@dataclass(frozen=True)
class Initial:
    center: tuple[float, float] = (1.0, 0.5)   # centre of the Gaussian
    sigma: float = 0.05                        # its standard deviation
    amplitude: float = 1.0                     # its peak value at t = 0


def check(physics: Physics, initial: Initial) -> str | None:
    if not physics.diffusivity > 0:
        return f"physics.diffusivity = {physics.diffusivity} must be positive"
    return check_gaussian(initial)


def check_gaussian(initial) -> str | None:
    """A Gaussian the run can follow: a representable width and a nonzero peak (also advection_diffusion's)."""
    if not (initial.sigma > 0 and 0 < initial.sigma * initial.sigma < math.inf):
        return f"initial.sigma = {initial.sigma} must be positive, and its square a finite, non-zero number"
    if initial.amplitude == 0:
        return f"initial.amplitude = {initial.amplitude} gives no Gaussian to follow; use a nonzero amplitude"
    return None


def coefficients(physics: Physics, dx: float, dy: float, dt: float) -> tuple[float, ...]:
    """(centre weight, cx, cy) with cx = D dt / dx^2: four additions and three multiplications per update."""
    cx = physics.diffusivity * dt / dx ** 2
    cy = physics.diffusivity * dt / dy ** 2
    return 1.0 - 2.0 * cx - 2.0 * cy, cx, cy


def update(c, w, e, s, n, k):
    weight, cx, cy = k
    return weight * c + cx * (w + e) + cy * (s + n)


def max_stable_dt(physics: Physics, dx: float, dy: float) -> float:
    """FTCS is stable while D dt (1/dx^2 + 1/dy^2) <= 1/2."""
    rate = physics.diffusivity * (dx ** -2 + dy ** -2)
    return 0.5 / rate if rate > 0 else math.inf


def initial(physics: Physics, initial: Initial, x, y, uniform):
    return exact(physics, initial, x, y, 0.0)


def exact(physics: Physics, initial: Initial, x, y, t: float):
    """A Gaussian of variance sigma^2 + 2 D t (mass conserved) on the infinite plane."""
    return gaussian(initial, x, y, initial.center, initial.sigma ** 2 + 2.0 * physics.diffusivity * t)


def gaussian(initial, x, y, center, variance):
    """The Gaussian of ``initial`` spread to ``variance`` around ``center``, on nodes x (columns) by y (rows)."""
    r2 = (x[np.newaxis, :] - center[0]) ** 2 + (y[:, np.newaxis] - center[1]) ** 2
    return initial.amplitude * initial.sigma ** 2 / variance * np.exp(-r2 / (2.0 * variance))
