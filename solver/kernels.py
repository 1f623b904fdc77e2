"""Kernels: the forward-time centred-space update, as pure functions of arrays and scalars.

Every kernel advances a field by ``steps`` explicit steps of

    C' = (1 - 2 cx - 2 cy) C + cx (C[j, i-1] + C[j, i+1]) + cy (C[j-1, i] + C[j+1, i])

with ``cx = D dt / dx^2`` and ``cy = D dt / dy^2`` (the centre weight computed once per call), on the index
box ``region = (j0, j1, i0, i1)`` of a double-buffered pair ``(u, v)``; it returns ``(new, old)``. Nodes
outside the box are never written, so boundary values (Dirichlet) and halo cells keep what the caller put
there; the box must leave at least one node on every side of the array. ``shrink = (south, north, west,
east)`` (each 0 or 1) moves that side of the box inwards by one node per step: a halo of width k is valid for
k steps, one layer less after each (deep halos). Each node is computed by the same expression in the same
order in every kernel (no fastmath, no fused multiply-add), so results do not depend on the kernel, the thread
count or the decomposition. Written as weights times neighbour sums, an update costs four additions and three
multiplications instead of six and three, which matters once tiles sit in cache and the arithmetic is the
limit.

Kernels:
- ``numba``: the plain kernel (``auto`` in the run loop picks it in cache, ``tiled`` out of it). One
  compiled call runs the whole time loop; each step is a threaded sweep over pairs of rows whose inner loop
  LLVM vectorises (row views indexed from zero, so no negative-index wraparound). A pair shares two of the
  rows it reads: four loads per update instead of five.
- ``tiled``: temporal blocking. Each thread copies a cache-sized tile plus an overlap of ``depth`` nodes into
  a private pair of scratch tiles, advances it ``depth`` steps there (recomputing the overlap, which
  neighbouring tiles also compute) and writes back only its own core. Memory traffic per update drops by
  about ``depth``, so it beats the streaming bound once the grid is out of cache. ``new`` matches the
  ``numba`` kernel bit for bit on the last step's box; inside the box but outside the last step's box
  (the shrinking rim of deep halos) and in ``old`` it holds stale values that no later step reads.
- ``numpy``: the same update with array slices, the readable reference for tests.

No MPI, no I/O: decomposition, halo exchange and output live elsewhere.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

# Temporal blocking: tile core (rows x columns) and steps per tile (odd, see _advance_tiled). Wide tiles keep
# the recomputed overlap small (about 12 % here); the two scratch tiles per thread stay in the L3 cache.
# Chosen by a sweep at 4096 x 4096 on 2 cores.
TILE_Y, TILE_X, DEPTH = 128, 1024, 15


def scratch_bytes_per_thread() -> int:
    """Memory of the tiled kernel's two scratch tiles per thread (2.7 MB with the sizes above)."""
    return 2 * (TILE_Y + 2 * DEPTH) * (TILE_X + 2 * DEPTH) * 8


def centre_weight(cx: float, cy: float) -> float:
    """The weight of the node itself in the update, 1 - 2 cx - 2 cy: one expression, so every kernel uses
    the same bits for it."""
    return 1.0 - 2.0 * cx - 2.0 * cy


@njit(cache=True, nogil=True, boundscheck=False)
def _row(src, sj, si, dst, dj, di, n, weight, cx, cy):
    """Update n nodes of row sj from column si of src into row dj from column di of dst.

    Views indexed from 0 let LLVM drop the wraparound checks and vectorise."""
    centre = src[sj, si:si + n]
    west = src[sj, si - 1:si + n - 1]
    east = src[sj, si + 1:si + n + 1]
    south = src[sj - 1, si:si + n]
    north = src[sj + 1, si:si + n]
    out = dst[dj, di:di + n]
    for k in range(n):
        out[k] = weight * centre[k] + cx * (west[k] + east[k]) + cy * (south[k] + north[k])


@njit(cache=True, nogil=True, boundscheck=False)
def _row_pair(src, sj, si, dst, dj, di, n, weight, cx, cy):
    """Rows sj and sj + 1 in one sweep, as two calls of :func:`_row` would: each row's centre is the other's
    north or south neighbour, so the pair loads four values per update instead of five."""
    south = src[sj - 1, si:si + n]
    centre0 = src[sj, si:si + n]
    west0 = src[sj, si - 1:si + n - 1]
    east0 = src[sj, si + 1:si + n + 1]
    centre1 = src[sj + 1, si:si + n]
    west1 = src[sj + 1, si - 1:si + n - 1]
    east1 = src[sj + 1, si + 1:si + n + 1]
    north = src[sj + 2, si:si + n]
    out0 = dst[dj, di:di + n]
    out1 = dst[dj + 1, di:di + n]
    for k in range(n):
        c0 = centre0[k]
        c1 = centre1[k]
        out0[k] = weight * c0 + cx * (west0[k] + east0[k]) + cy * (south[k] + c1)
        out1[k] = weight * c1 + cx * (west1[k] + east1[k]) + cy * (c0 + north[k])


@njit(cache=True, nogil=True, boundscheck=False)
def _rows(src, sj0, sj1, si, dst, dj0, di, n, weight, cx, cy):
    """Update rows sj0 .. sj1 - 1 (n nodes from column si) of src into rows from dj0 (column di) of dst."""
    j = sj0
    while j + 1 < sj1:
        _row_pair(src, j, si, dst, dj0 + j - sj0, di, n, weight, cx, cy)
        j += 2
    if j < sj1:
        _row(src, j, si, dst, dj0 + j - sj0, di, n, weight, cx, cy)


@njit(cache=True, nogil=True)
def _box(region, shrink, s):
    """The box of step s: the region moved inwards by s nodes on each shrinking side."""
    j0, j1, i0, i1 = region
    s_south, s_north, s_west, s_east = shrink
    return j0 + s * s_south, j1 - s * s_north, i0 + s * s_west, i1 - s * s_east


@njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _sweep(u, v, box, weight, cx, cy):
    """One step on ``box`` from u into v: a threaded sweep over pairs of rows."""
    a, b, c, d = box
    for pair in prange((b - a + 1) // 2):
        j = a + 2 * pair
        _rows(u, j, min(j + 2, b), c, v, j, c, d - c, weight, cx, cy)


@njit(cache=True, nogil=True)
def _advance_numba(u, v, steps, weight, cx, cy, region, shrink):
    for s in range(steps):
        _sweep(u, v, _box(region, shrink, s), weight, cx, cy)
        u, v = v, u
    return u, v


def advance_numba(u, v, steps, cx, cy, region, shrink=(0, 0, 0, 0)):
    """Advance ``steps`` steps with the threaded numba kernel; returns ``(new, old)`` buffers."""
    return _advance_numba(u, v, steps, centre_weight(cx, cy), cx, cy, tuple(region), tuple(shrink))


@njit(cache=True, nogil=True, boundscheck=False)
def _ring(scratch, src, ej0, ej1, ei0, ei1, j0, j1, i0, i1):
    """Copy into scratch the nodes of the box (ej0, ej1, ei0, ei1) of src lying outside the region: no step
    writes them, and a scratch tile reads them where the kernels read the caller's values."""
    ni = ei1 - ei0
    for gj in range(ej0, ej1):
        j = gj - ej0
        if gj < j0 or gj >= j1:
            scratch[j, :ni] = src[gj, ei0:ei1]
        else:
            if ei0 < i0:
                scratch[j, 0] = src[gj, ei0]
            if ei1 > i1:
                scratch[j, ni - 1] = src[gj, ei1 - 1]


@njit(cache=True, nogil=True, boundscheck=False)
def _tile(p, q, a, b, weight, cx, cy, steps, first, region, shrink, core):
    """Advance one tile ``steps`` (odd, at least 3) steps from the buffer p (level ``first`` of the call)
    into q, through the scratch pair (a, b): step 0 reads p, the last step writes q's core, the others stay
    in the scratch tiles. Reads q only outside the region, where nobody writes, and writes q only inside
    the core, so tiles may run concurrently."""
    j0, j1, i0, i1 = region
    s_south, s_north, s_west, s_east = shrink
    cj0, cj1, ci0, ci1 = core
    # The box of local step 0, widened by one for its neighbours: the scratch tiles' origin and extent.
    grow = steps - 1
    ej0 = max(cj0 - grow, j0 + first * s_south) - 1
    ej1 = min(cj1 + grow, j1 - first * s_north) + 1
    ei0 = max(ci0 - grow, i0 + first * s_west) - 1
    ei1 = min(ci1 + grow, i1 - first * s_east) + 1
    _ring(a, p, ej0, ej1, ei0, ei1, j0, j1, i0, i1)
    _ring(b, q, ej0, ej1, ei0, ei1, j0, j1, i0, i1)
    _rows(p, ej0 + 1, ej1 - 1, ei0 + 1, b, 1, 1, ei1 - ei0 - 2, weight, cx, cy)
    for t in range(1, steps - 1):
        s = first + t
        grow = steps - 1 - t
        bj0 = max(cj0 - grow, j0 + s * s_south)
        bj1 = min(cj1 + grow, j1 - s * s_north)
        bi0 = max(ci0 - grow, i0 + s * s_west)
        bi1 = min(ci1 + grow, i1 - s * s_east)
        if t % 2 == 1:
            _rows(b, bj0 - ej0, bj1 - ej0, bi0 - ei0, a, bj0 - ej0, bi0 - ei0, bi1 - bi0, weight, cx, cy)
        else:
            _rows(a, bj0 - ej0, bj1 - ej0, bi0 - ei0, b, bj0 - ej0, bi0 - ei0, bi1 - bi0, weight, cx, cy)
    # steps is odd, so the last step reads a; the core is the last step's box by construction.
    _rows(a, cj0 - ej0, cj1 - ej0, ci0 - ei0, q, cj0, ci0, ci1 - ci0, weight, cx, cy)


@njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _advance_tiled(u, v, steps, weight, cx, cy, region, shrink, tile_y, tile_x, depth, threads):
    side_y, side_x = tile_y + 2 * depth, tile_x + 2 * depth
    scratch = np.empty((2 * threads, side_y, side_x))
    done = 0
    while done < steps:
        n = min(depth, steps - done)
        if n % 2 == 0:
            n -= 1       # odd chunks: the result lands in the other buffer, so tiles never race
        a, b, c, d = _box(region, shrink, done + n - 1)      # the chunk's last step
        if b <= a or d <= c:
            n = 1        # the box vanishes within the chunk: step by step, as the plain kernel does
        if n == 1:
            _sweep(u, v, _box(region, shrink, done), weight, cx, cy)
        else:
            tiles_y = (b - a + tile_y - 1) // tile_y
            tiles_x = (d - c + tile_x - 1) // tile_x
            tiles = tiles_y * tiles_x
            for worker in prange(threads):
                for k in range(worker, tiles, threads):
                    ty, tx = k // tiles_x, k % tiles_x
                    core = (a + ty * tile_y, min(b, a + (ty + 1) * tile_y),
                            c + tx * tile_x, min(d, c + (tx + 1) * tile_x))
                    _tile(u, v, scratch[2 * worker], scratch[2 * worker + 1], weight, cx, cy, n, done,
                          region, shrink, core)
        u, v = v, u
        done += n
    return u, v


def advance_tiled(u, v, steps, cx, cy, region, shrink=(0, 0, 0, 0)):
    """Advance ``steps`` steps with temporal blocking; returns ``(new, old)`` buffers."""
    threads = numba.get_num_threads()
    rows = region[1] - region[0]
    tile_y = max(1, min(TILE_Y, -(-rows // (2 * threads))))     # at least two tiles per thread on small grids
    return _advance_tiled(u, v, steps, centre_weight(cx, cy), cx, cy, tuple(region), tuple(shrink), tile_y, TILE_X,
                          DEPTH, threads)


def advance_numpy(u, v, steps, cx, cy, region, shrink=(0, 0, 0, 0)):
    """The same update written with numpy slices: the readable reference for tests."""
    j0, j1, i0, i1 = region
    s_south, s_north, s_west, s_east = shrink
    weight = centre_weight(cx, cy)
    for s in range(steps):
        a, b = j0 + s * s_south, j1 - s * s_north
        c, d = i0 + s * s_west, i1 - s * s_east
        v[a:b, c:d] = weight * u[a:b, c:d] + cx * (u[a:b, c - 1:d - 1] + u[a:b, c + 1:d + 1]) \
                                           + cy * (u[a - 1:b - 1, c:d] + u[a + 1:b + 1, c:d])
        u, v = v, u
    return u, v


KERNELS = {"numba": advance_numba, "tiled": advance_tiled, "numpy": advance_numpy}


def gaussian(x, y, t, diffusivity, center, sigma, amplitude):
    """Analytic solution on the infinite plane: a Gaussian of variance sigma^2 + 2 D t."""
    variance = sigma ** 2 + 2.0 * diffusivity * t
    r2 = (x[np.newaxis, :] - center[0]) ** 2 + (y[:, np.newaxis] - center[1]) ** 2
    return amplitude * sigma ** 2 / variance * np.exp(-r2 / (2.0 * variance))


def warm_up(kernel: str) -> None:
    """Compile (or load from cache) a kernel on a tiny grid, so the first timed step is not a compile."""
    u = np.zeros((4, 4))
    KERNELS[kernel](u, u.copy(), 1, 0.1, 0.1, (1, 3, 1, 3))
    KERNELS[kernel](u, u.copy(), 3, 0.1, 0.1, (1, 3, 1, 3))
