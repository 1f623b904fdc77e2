"""A manufactured solution: dC/dt = div(D grad C) + s, with D varying in x and y and a source s in x, y, t.

On the unit square [0, 1] x [0, 1] (fixed sides, C = 0 there) the exact solution is

    C = A (1 + sin(w t)) phi,   phi = sin(pi x) sin(pi y),   D = D0 (1 + eps x y),

which holds when s = A (w cos(w t) phi - (1 + sin(w t)) L phi), with L phi = div(D grad phi)
= -2 pi^2 D phi + D0 eps pi (y cos(pi x) sin(pi y) + x sin(pi x) cos(pi y)). The source is a sum of two
separable terms, g1(x, y) h1(t) + g2(x, y) h2(t): g1 = A phi and g2 = -A L phi are coefficient fields, with
D, computed once; h1 = w cos(w t) and h2 = 1 + sin(w t) are forcing values, computed once per step at its
start time. Forward time, conservative centred space with arithmetic face means: second order in space
(first in time, and dt ~ dx^2), so analysis/convergence.py observes order 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FIELDS = {"C": ("1", "concentration")}
COEFFICIENT_FIELDS = {"D": ("m2 s-1", "diffusivity"), "g1": ("s-1", "source factor of h1 = w cos(w t)"),
                      "g2": ("s-1", "source factor of h2 = 1 + sin(w t)")}
UNITS = {"physics.diffusivity": "m2 s-1", "physics.variation": "1", "physics.frequency": "rad s-1",
         "physics.amplitude": "1"}


@dataclass(frozen=True)
class Physics:
    diffusivity: float = 0.01                  # D0, in m2 s-1
    variation: float = 1.0                     # eps: D = D0 (1 + eps x y), between D0 and D0 (1 + eps)
    frequency: float = 2.0 * math.pi           # w, in rad s-1
    amplitude: float = 1.0                     # A (in physics: the source scales with it)


@dataclass(frozen=True)
class Initial:
    """Nothing to set: the initial field is the exact solution at t = 0, A phi."""


def check(physics: Physics, initial: Initial) -> str | None:
    if not physics.diffusivity > 0:
        return f"physics.diffusivity = {physics.diffusivity} must be positive"
    if not physics.variation > -1:
        return f"physics.variation = {physics.variation} must exceed -1 (D must stay positive)"
    return None


def coefficient_fields(physics: Physics, x, y, uniform):
    """D, g1 = A phi and g2 = -A L phi on the nodes (transcendental functions are fine here: once per run)."""
    px, py = np.pi * x[np.newaxis, :], np.pi * y[:, np.newaxis]
    xx, yy = x[np.newaxis, :], y[:, np.newaxis]
    phi = np.sin(px) * np.sin(py)
    d0, eps = physics.diffusivity, physics.variation
    d = d0 * (1.0 + eps * xx * yy)
    lphi = -2.0 * np.pi ** 2 * d * phi + d0 * eps * np.pi * (yy * np.cos(px) * np.sin(py) +
                                                               xx * np.sin(px) * np.cos(py))
    return d, physics.amplitude * phi, -physics.amplitude * lphi


def forcing(physics: Physics, t: float) -> tuple[float, ...]:
    """(h1, h2) at time t."""
    w = physics.frequency
    return w * math.cos(w * t), 1.0 + math.sin(w * t)


def coefficients(physics: Physics, dx: float, dy: float, dt: float) -> tuple[float, ...]:
    """(dt / dx^2, dt / dy^2, dt)."""
    return dt / dx ** 2, dt / dy ** 2, dt


def update(u, a, k, f):
    rx, ry, dt = k
    h1, h2 = f[0], f[1]
    c = u.c
    d = a.c[0]
    west = 0.5 * (d + a.w[0]) * (u.w - c)
    east = 0.5 * (d + a.e[0]) * (u.e - c)
    south = 0.5 * (d + a.s[0]) * (u.s - c)
    north = 0.5 * (d + a.n[0]) * (u.n - c)
    return c + rx * (west + east) + ry * (south + north) + dt * (a.c[1] * h1 + a.c[2] * h2)


def max_stable_dt(physics: Physics, dx: float, dy: float) -> float:
    """FTCS with the largest D on the unit square, D0 (1 + max(eps, 0))."""
    largest = physics.diffusivity * (1.0 + max(physics.variation, 0.0))
    return 0.5 / (largest * (dx ** -2 + dy ** -2))


def initial(physics: Physics, initial: Initial, x, y, uniform):
    return exact(physics, initial, x, y, 0.0)


def exact(physics: Physics, initial: Initial, x, y, t: float):
    phi = np.sin(np.pi * x[np.newaxis, :]) * np.sin(np.pi * y[:, np.newaxis])
    return physics.amplitude * (1.0 + math.sin(physics.frequency * t)) * phi
