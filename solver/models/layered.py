"""Diffusion through a heterogeneous medium: dC/dt = div(D grad C), with D a coefficient field.

D is computed once from the parameters and the node coordinates: horizontal layers of two diffusivities
alternating in y, and a circular inclusion of a third. Forward time, conservative flux form: each face
carries the harmonic mean of the diffusivities of its two nodes, 2 D_a D_b / (D_a + D_b) (two half-cells in
series; exact for layers), times the difference across it: the flux a node gains through a face is the
flux its neighbour loses, to round-off. With zero-flux sides (the mirror halo, D mirrored too) the
trapezoid-weighted total of C is therefore conserved to round-off. No exact solution.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIELDS = {"C": ("1", "concentration")}
COEFFICIENT_FIELDS = {"D": ("m2 s-1", "diffusivity")}
UNITS = {"physics.diffusivity": "m2 s-1", "physics.layer_diffusivity": "m2 s-1",
         "physics.inclusion_diffusivity": "m2 s-1", "physics.span": "m", "physics.inclusion_center": "m",
         "physics.inclusion_radius": "m", "initial.center": "m", "initial.sigma": "m", "initial.amplitude": "1"}


@dataclass(frozen=True)
class Physics:
    diffusivity: float = 1e-3                  # D of the background layers, in m2 s-1
    layer_diffusivity: float = 1e-4            # D of every other layer (the 2nd, 4th, ...)
    layers: int = 4                            # layers of equal thickness across span
    span: tuple[float, float] = (0.0, 1.0)     # the y extent cut into layers
    inclusion_diffusivity: float = 1e-2        # D inside the circular inclusion
    inclusion_center: tuple[float, float] = (0.3, 0.6)
    inclusion_radius: float = 0.1              # 0: no inclusion


@dataclass(frozen=True)
class Initial:
    center: tuple[float, float] = (0.5, 0.5)   # centre of the Gaussian
    sigma: float = 0.08                        # its standard deviation
    amplitude: float = 1.0                     # its peak value at t = 0


def check(physics: Physics, initial: Initial) -> str | None:
    for key in ("diffusivity", "layer_diffusivity", "inclusion_diffusivity"):
        if not getattr(physics, key) > 0:
            return f"physics.{key} = {getattr(physics, key)} must be positive"
    if physics.layers < 1:
        return f"physics.layers = {physics.layers} must be 1 or more"
    if not physics.span[1] > physics.span[0]:
        return f"physics.span = {list(physics.span)} must be [low, high] with low < high"
    if not physics.inclusion_radius >= 0:
        return f"physics.inclusion_radius = {physics.inclusion_radius} must be 0 (none) or positive"
    if not initial.sigma > 0:
        return f"initial.sigma = {initial.sigma} must be positive"
    return None


def coefficient_fields(physics: Physics, x, y, uniform):
    """D on the nodes: layer index from y, then the inclusion painted over it."""
    low, high = physics.span
    layer = np.floor((y[:, np.newaxis] - low) / (high - low) * physics.layers)
    d = np.where(layer % 2 == 1, physics.layer_diffusivity, physics.diffusivity) + 0.0 * x[np.newaxis, :]
    r2 = (x[np.newaxis, :] - physics.inclusion_center[0]) ** 2 + (y[:, np.newaxis] - physics.inclusion_center[1]) ** 2
    return np.where(r2 <= physics.inclusion_radius ** 2, physics.inclusion_diffusivity, d)


def coefficients(physics: Physics, dx: float, dy: float, dt: float) -> tuple[float, ...]:
    """(dt / dx^2, dt / dy^2)."""
    return dt / dx ** 2, dt / dy ** 2


def update(u, a, k, f):
    """C + dt/dx^2 (flux in from west and east) + dt/dy^2 (from south and north), each face's D the harmonic
    mean of its two nodes', 2 D_c D_n / (D_c + D_n). The four fractions are put over one denominator: one
    division per node instead of four (divisions are the slowest arithmetic a core does; with four the
    update is bound by them rather than by memory, and temporal blocking has nothing to save)."""
    rx, ry = k
    c, d = u.c, a.c
    west, east, south, north = d + a.w, d + a.e, d + a.s, d + a.n
    horizontal = west * east
    vertical = south * north
    flow_x = a.w * (u.w - c) * east + a.e * (u.e - c) * west         # over west * east
    flow_y = a.s * (u.s - c) * north + a.n * (u.n - c) * south       # over south * north
    return c + 2.0 * d * (rx * flow_x * vertical + ry * flow_y * horizontal) / (horizontal * vertical)


def max_stable_dt(physics: Physics, dx: float, dy: float) -> float:
    """Every weight non-negative: a face's D is at most the largest D, so dt 2 D_max (1/dx^2 + 1/dy^2) <= 1."""
    largest = max(physics.diffusivity, physics.layer_diffusivity,
                  physics.inclusion_diffusivity if physics.inclusion_radius > 0 else 0.0)
    return 0.5 / (largest * (dx ** -2 + dy ** -2))


def initial(physics: Physics, initial: Initial, x, y, uniform):
    r2 = (x[np.newaxis, :] - initial.center[0]) ** 2 + (y[:, np.newaxis] - initial.center[1]) ** 2
    return initial.amplitude * np.exp(-r2 / (2.0 * initial.sigma ** 2))
