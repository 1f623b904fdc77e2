"""The per-step series of each field over a rank's owned nodes, in one pass: the trapezoid-weighted total, the
minimum, the maximum and the weighted sum of squares (the L2 norm's square).

The kernels take them inside their sweeps, for every step of a call, into slots (solver/core/stencil.py
``_tally``): :func:`slot_partials` adds the slots up. Otherwise (the numpy kernel, sides that change with time)
one compiled, threaded pass over the block (rows in parallel, each row's partials kept apart and added in row
order), so a record costs one read of the field; the ranks' partials are then combined with one reduction
(solver/comm.py ``sum_and_max``). Runs of the numpy kernel take the same sums in plain numpy instead (no numba:
an ensemble member's start-up, and no thread pool beside the members). No MPI, no I/O here.
"""
from __future__ import annotations

import numpy as np

STATISTICS = ("total", "min", "max", "l2")       # in the order of the file's series of each field

_compiled = None


def _compile():
    from numba import njit, prange

    @njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
    def partials(block, wx, wy):
        fields, ny, nx = block.shape
        rows = np.empty((ny, fields, 4))
        for j in prange(ny):
            for f in range(fields):
                total, squares, low, high = 0.0, 0.0, np.inf, -np.inf
                for i in range(nx):
                    c = block[f, j, i]
                    w = wx[i]
                    total += w * c
                    squares += w * c * c
                    low = min(low, c)
                    high = max(high, c)
                if squares != squares:      # a NaN in the row (min and max would skip it); not +-inf alone
                    low = high = np.nan
                rows[j, f, 0] = wy[j] * total
                rows[j, f, 1] = wy[j] * squares
                rows[j, f, 2] = low
                rows[j, f, 3] = high
        out = np.empty((fields, 4))
        for f in range(fields):
            total, squares, low, high = 0.0, 0.0, np.inf, -np.inf
            for j in range(ny):
                total += rows[j, f, 0]
                squares += rows[j, f, 1]
                if rows[j, f, 2] != rows[j, f, 2] or low != low:
                    low = high = np.nan
                else:
                    low = min(low, rows[j, f, 2])
                    high = max(high, rows[j, f, 3])
            out[f, 0], out[f, 1], out[f, 2], out[f, 3] = total, squares, low, high
        return out
    return partials


def block_partials(block: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """The compiled pass's ``(fields, 4)`` (weighted total, weighted sum of squares, min, max) in plain numpy,
    for runs of the numpy kernel: they never import numba (an ensemble member's start-up) nor start its thread
    pool beside the members running side by side. Totals agree with the compiled pass's to rounding; min and
    max are the same (NaN when any node is NaN)."""
    out = np.empty((block.shape[0], 4))
    for f, c in enumerate(block):
        out[f, 0] = np.sum(np.sum(c * wx, axis=1) * wy)          # no BLAS: no thread pool of its own either
        out[f, 1] = np.sum(np.sum(c * c * wx, axis=1) * wy)
        out[f, 2], out[f, 3] = np.min(c), np.max(c)
    return out


def local_partials(block: np.ndarray, wx: np.ndarray, wy: np.ndarray,
                   compiled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(sums, maxima) of a rank's owned ``block`` ``(fields, y, x)`` with trapezoid weights ``wx``, ``wy``:
    sums ``(fields, 2)`` = weighted total and weighted sum of squares, maxima ``(fields, 2)`` = max and -min,
    so that ranks combine both with one sum-and-max reduction. ``compiled=False``: without numba (the numpy
    kernel's runs)."""
    global _compiled
    if not compiled:
        out = block_partials(block, wx, wy)
    else:
        if _compiled is None:
            _compiled = _compile()
        out = _compiled(block, wx, wy)
    return np.ascontiguousarray(out[:, :2]), np.stack([out[:, 3], -out[:, 2]], axis=1)


def slot_partials(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sums, maxima) as :func:`local_partials` gives them, ``(records, fields, 2)``, from the kernels' records
    ``(records, slots, fields, 4)`` (solver/core/kernels.py ``records_for``): the slots added in their order."""
    sums = stats[..., :2].sum(axis=1)
    return sums, np.stack([stats[..., 3].max(axis=1), -stats[..., 2].min(axis=1)], axis=-1)


def statistics(sums: np.ndarray, maxima: np.ndarray) -> np.ndarray:
    """The series' values ``(fields, 4)`` in :data:`STATISTICS` order from the combined partials."""
    return np.stack([sums[:, 0], -maxima[:, 1], maxima[:, 0], np.sqrt(np.maximum(sums[:, 1], 0.0))], axis=1)
