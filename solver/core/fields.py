"""A model's fields on a rank's block: the initial condition and the exact solution, on the owned nodes.

Fields are stored as ``(fields, y, x)`` arrays over the block and its halo; the model computes them from the
node coordinates (taken from the same global axes on every rank) and the config, so every decomposition gets
the same values at the same node.
"""
from __future__ import annotations

import numpy as np

from .. import models
from .config import Config
from .grid import Decomposition


def initial_field(cfg: Config, decomp: Decomposition, u: np.ndarray) -> np.ndarray:
    """Fill u, ``(fields, y, x)`` over the stored subdomain, with the model's fields at t = 0; halo cells are
    NaN until an exchange or a boundary condition fills them (a NaN that reaches a result shows a missed
    fill)."""
    model = cfg.model_impl
    u[...] = np.nan
    x, y = owned_coordinates(cfg, decomp)
    u[owned_index(decomp)] = _stack(model.initial(cfg.physics, cfg.initial, x, y, GridRandom(decomp)), x, y)
    return u


def coefficient_field(cfg: Config, decomp: Decomposition) -> np.ndarray:
    """The model's coefficient fields on the stored subdomain, ``(coefficient fields, y, x)``: the owned
    nodes from the model, the halo NaN until an exchange or a boundary condition fills it (once: they do not
    change). Computed on the owned nodes only, so every decomposition gets the same values."""
    model = cfg.model_impl
    a = np.full((len(model.coefficient_names), *decomp.local_shape), np.nan)
    x, y = owned_coordinates(cfg, decomp)
    a[owned_index(decomp)] = models.coefficient_values(model, cfg.physics, x, y, GridRandom(decomp))
    return a


def exact_field(cfg: Config, decomp: Decomposition, t: float) -> np.ndarray | None:
    """The model's exact solution at time t on the owned nodes, ``(fields, y, x)``; None without one."""
    model = cfg.model_impl
    if not model.has_exact:
        return None
    x, y = owned_coordinates(cfg, decomp)
    return _stack(model.exact(cfg.physics, cfg.initial, x, y, t), x, y)


def owned_index(decomp: Decomposition) -> tuple[slice, slice, slice]:
    """Index of the owned nodes of every field in a stored ``(fields, y, x)`` array."""
    return (slice(None), *decomp.owned)


def owned_coordinates(cfg: Config, decomp: Decomposition) -> tuple[np.ndarray, np.ndarray]:
    x, y = cfg.axis("x"), cfg.axis("y")
    return x[slice(*decomp.x_range)], y[slice(*decomp.y_range)]


def _stack(values, x, y) -> np.ndarray:
    """A model's field (or tuple of fields) as one ``(fields, len(y), len(x))`` array."""
    values = values if isinstance(values, tuple) else (values,)
    return np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), (y.size, x.size)) for v in values])


class GridRandom:
    """``uniform(seed, low, high)`` for a model's initial condition: one seeded stream per global row, cut
    to this rank's columns, so every decomposition draws the same number at the same node."""

    def __init__(self, decomp: Decomposition):
        self.decomp = decomp

    def __call__(self, seed: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
        d = self.decomp
        rows = [np.random.default_rng([int(seed), j]).uniform(low, high, d.nx)[slice(*d.x_range)]
                for j in range(*d.y_range)]
        return np.array(rows).reshape(d.ny_own, d.nx_own)
