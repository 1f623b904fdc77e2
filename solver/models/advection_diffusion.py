"""Advection-diffusion of a tracer in a constant current (u, v): dC/dt + u dC/dx + v dC/dy = D lap C.

Forward time, first-order upwind advection (differences taken on the side the current comes from), centred
diffusion. Every weight is non-negative below the stability limit, so the scheme is monotone and stable for
pure advection (D = 0) too; it is first-order accurate in space. Exact solution on the infinite plane: the
Gaussian of the diffusion model, carried along by the current.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .diffusion import check_gaussian, gaussian

FIELDS = {"C": ("1", "tracer concentration")}
UNITS = {"physics.diffusivity": "m2 s-1", "physics.velocity": "m s-1", "initial.center": "m",
         "initial.sigma": "m", "initial.amplitude": "1"}


@dataclass(frozen=True)
class Physics:
    diffusivity: float = 0.0005                  # D, in m2 s-1 (0: pure advection)
    velocity: tuple[float, float] = (0.1, 0.05)  # the current (u, v), in m s-1


@dataclass(frozen=True)
class Initial:
    center: tuple[float, float] = (0.5, 0.5)   # centre of the Gaussian at t = 0
    sigma: float = 0.05                        # its standard deviation
    amplitude: float = 1.0                     # its peak value at t = 0


def check(physics: Physics, initial: Initial) -> str | None:
    if not physics.diffusivity >= 0:
        return f"physics.diffusivity = {physics.diffusivity} must be 0 (pure advection) or positive"
    return check_gaussian(initial)


def coefficients(physics: Physics, dx: float, dy: float, dt: float) -> tuple[float, ...]:
    """Weights of the node and of its west, east, south and north neighbours (they sum to one)."""
    cx = physics.diffusivity * dt / dx ** 2
    cy = physics.diffusivity * dt / dy ** 2
    ax = physics.velocity[0] * dt / dx
    ay = physics.velocity[1] * dt / dy
    west, east = cx + max(ax, 0.0), cx + max(-ax, 0.0)
    south, north = cy + max(ay, 0.0), cy + max(-ay, 0.0)
    return 1.0 - (west + east + south + north), west, east, south, north


def update(c, w, e, s, n, k):
    centre, west, east, south, north = k
    return centre * c + (west * w + east * e) + (south * s + north * n)


def max_stable_dt(physics: Physics, dx: float, dy: float) -> float:
    """The centre weight stays non-negative: dt (2 D (1/dx^2 + 1/dy^2) + |u|/dx + |v|/dy) <= 1."""
    rate = 2.0 * physics.diffusivity * (dx ** -2 + dy ** -2) + abs(physics.velocity[0]) / dx \
        + abs(physics.velocity[1]) / dy
    return 1.0 / rate if rate > 0 else math.inf


def initial(physics: Physics, initial: Initial, x, y, uniform):
    return exact(physics, initial, x, y, 0.0)


def exact(physics: Physics, initial: Initial, x, y, t: float):
    """The spreading Gaussian of the diffusion model, its centre moved by the current."""
    center = (initial.center[0] + physics.velocity[0] * t, initial.center[1] + physics.velocity[1] * t)
    return gaussian(initial, x, y, center, initial.sigma ** 2 + 2.0 * physics.diffusivity * t)
