"""Gray-Scott reaction-diffusion: two species that make spots and stripes (Pearson, Science 1993).

    du/dt = Du lap u - u v^2 + F (1 - u)
    dv/dt = Dv lap v + u v^2 - (F + k) v

Forward time, centred space. No exact solution: the run reports no error. Start: u = 1, v = 0, with a square
(centre and half-width in the config) at u = 1/2, v = 1/4, plus seeded noise (the same on every decomposition); run it periodic.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIELDS = {"u": ("1", "substrate concentration u"), "v": ("1", "activator concentration v")}
UNITS = {"physics.diffusivity_u": "m2 s-1", "physics.diffusivity_v": "m2 s-1", "physics.feed": "s-1",
         "physics.kill": "s-1", "initial.center": "m", "initial.half_width": "m", "initial.noise": "1"}


@dataclass(frozen=True)
class Physics:
    diffusivity_u: float = 0.2                 # Du, in length^2 per time
    diffusivity_v: float = 0.1                 # Dv
    feed: float = 0.035                        # F, the feed rate of u
    kill: float = 0.065                        # k, the removal rate of v


@dataclass(frozen=True)
class Initial:
    center: tuple[float, float] = (128.0, 128.0)   # centre of the perturbed square
    half_width: float = 10.0                   # its half-width
    noise: float = 0.01                        # amplitude of the uniform noise on both fields
    seed: int = 1                              # of the noise


def check(physics: Physics, initial: Initial) -> str | None:
    for key in ("diffusivity_u", "diffusivity_v", "feed", "kill"):
        if not getattr(physics, key) >= 0:
            return f"physics.{key} = {getattr(physics, key)} must not be negative"
    if not initial.half_width > 0:
        return f"initial.half_width = {initial.half_width} must be positive"
    if initial.seed < 0:
        return f"initial.seed = {initial.seed} must be 0 or more"
    return None


def coefficients(physics: Physics, dx: float, dy: float, dt: float) -> tuple[float, ...]:
    ux, uy = physics.diffusivity_u * dt / dx ** 2, physics.diffusivity_u * dt / dy ** 2
    vx, vy = physics.diffusivity_v * dt / dx ** 2, physics.diffusivity_v * dt / dy ** 2
    return (1.0 - 2.0 * ux - 2.0 * uy, ux, uy, 1.0 - 2.0 * vx - 2.0 * vy, vx, vy,
            dt, physics.feed * dt, (physics.feed + physics.kill) * dt)


def update(c, w, e, s, n, k):
    wu, ux, uy, wv, vx, vy, dt, feed, loss = k
    u, v = c
    reaction = dt * (u * v * v)
    new_u = wu * u + ux * (w[0] + e[0]) + uy * (s[0] + n[0]) - reaction + feed * (1.0 - u)
    new_v = wv * v + vx * (w[1] + e[1]) + vy * (s[1] + n[1]) + reaction - loss * v
    return new_u, new_v


def max_stable_dt(physics: Physics, dx: float, dy: float) -> float:
    """The diffusive limit of the faster species, tightened by the linear reaction rates."""
    fastest = max(physics.diffusivity_u, physics.diffusivity_v)
    return 1.0 / (2.0 * fastest * (dx ** -2 + dy ** -2) + physics.feed + physics.kill)


def initial(physics: Physics, initial: Initial, x, y, uniform):
    xc, yc = initial.center
    inside = (np.abs(x[np.newaxis, :] - xc) <= initial.half_width) & \
        (np.abs(y[:, np.newaxis] - yc) <= initial.half_width)
    u = np.where(inside, 0.5, 1.0) + uniform(initial.seed, -initial.noise, initial.noise)
    v = np.where(inside, 0.25, 0.0) + uniform(initial.seed + 1, -initial.noise, initial.noise)
    return u, v
