"""Kernels: the forward-time centred-space update, as pure functions of arrays and scalars.

Every kernel advances a field by ``steps`` explicit steps of

    C' = C + cx (C[j, i-1] - 2C + C[j, i+1]) + cy (C[j-1, i] - 2C + C[j+1, i])

with ``cx = D dt / dx^2`` and ``cy = D dt / dy^2``, on the index box ``region = (j0, j1, i0, i1)`` of a
double-buffered pair ``(u, v)``. Nodes outside the box are never written, so boundary values (Dirichlet)
and halo cells keep what the caller put there. ``shrink = (south, north, west, east)`` (each 0 or 1) moves
that side of the box inwards by one node per step: a halo of width k is valid for k steps, one layer less
after each (deep halos). Each node is computed by the same expression in the same order in every kernel,
so results do not depend on the kernel, the thread count or the decomposition.

No MPI, no I/O: decomposition, halo exchange and output live elsewhere.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def _step_numba(src, dst, cx, cy, j0, j1, i0, i1):
    for j in prange(j0, j1):
        for i in range(i0, i1):
            c = src[j, i]
            dst[j, i] = c + cx * (src[j, i - 1] - 2.0 * c + src[j, i + 1]) \
                          + cy * (src[j - 1, i] - 2.0 * c + src[j + 1, i])


@njit(cache=True, nogil=True)
def _advance_numba(u, v, steps, cx, cy, j0, j1, i0, i1, s_south, s_north, s_west, s_east):
    for s in range(steps):
        _step_numba(u, v, cx, cy, j0 + s * s_south, j1 - s * s_north, i0 + s * s_west, i1 - s * s_east)
        u, v = v, u
    return u, v


def advance_numba(u, v, steps, cx, cy, region, shrink=(0, 0, 0, 0)):
    """Advance ``steps`` steps with the threaded numba kernel; returns ``(new, old)`` buffers."""
    return _advance_numba(u, v, steps, cx, cy, *region, *shrink)


def advance_numpy(u, v, steps, cx, cy, region, shrink=(0, 0, 0, 0)):
    """The same update written with numpy slices: the readable reference for tests."""
    j0, j1, i0, i1 = region
    s_south, s_north, s_west, s_east = shrink
    for s in range(steps):
        a, b = j0 + s * s_south, j1 - s * s_north
        c, d = i0 + s * s_west, i1 - s * s_east
        centre = u[a:b, c:d]
        v[a:b, c:d] = centre + cx * (u[a:b, c - 1:d - 1] - 2.0 * centre + u[a:b, c + 1:d + 1]) \
                             + cy * (u[a - 1:b - 1, c:d] - 2.0 * centre + u[a + 1:b + 1, c:d])
        u, v = v, u
    return u, v


KERNELS = {"numba": advance_numba, "numpy": advance_numpy}


def gaussian(x, y, t, diffusivity, center, sigma, amplitude):
    """Analytic solution on the infinite plane: a Gaussian of variance sigma^2 + 2 D t."""
    variance = sigma ** 2 + 2.0 * diffusivity * t
    r2 = (x[np.newaxis, :] - center[0]) ** 2 + (y[:, np.newaxis] - center[1]) ** 2
    return amplitude * sigma ** 2 / variance * np.exp(-r2 / (2.0 * variance))


def warm_up(kernel: str) -> None:
    """Compile (or load from cache) a kernel on a tiny grid, so the first timed step is not a compile."""
    u = np.zeros((4, 4))
    KERNELS[kernel](u, u.copy(), 1, 0.1, 0.1, (1, 3, 1, 3))
