"""The numba kernels, written once for every model: a template that solver/kernels.py compiles per model.

Not imported as it is. solver/kernels.py appends to a copy of this file the model's binding: ``update`` (the
model's point update, inlined), and ``_views``, ``_at`` and ``_put``, which gather the model's fields at a
node (one value, or a tuple of one per field) and store the result. The copy is named after a hash of this
file and of the model's source, so numba's on-disk cache is keyed on both: an unchanged model compiles
nothing, an edited one gets fresh machine code, never stale.

Fields are stored as ``(fields, y, x)`` arrays. Every kernel advances them by ``steps`` explicit steps on the
index box ``region = (j0, j1, i0, i1)`` of a double-buffered pair ``(u, v)`` and returns ``(new, old)``.
Nodes outside the box are never written, so fixed boundary values and halo cells keep what the caller put
there; the box must leave at least one node on every side of the array. ``shrink = (south, north, west,
east)`` (each 0 or 1) moves that side of the box inwards by one node per step: a halo of width k is valid
for k steps, one layer less after each (deep halos). Each node is computed by the same expression in the
same order in every kernel (no fastmath, no fused multiply-add), so results do not depend on the kernel,
the thread count or the decomposition.

- ``_advance_numba``: the plain kernel. One compiled call runs the whole time loop; each step is a threaded
  sweep over pairs of rows whose inner loop LLVM vectorises (row views indexed from zero, so no
  negative-index wraparound). A pair shares two of the rows it reads: four loads per update instead of five.
- ``_advance_tiled``: temporal blocking. Each thread copies a cache-sized tile plus an overlap of ``depth``
  nodes into a private pair of scratch tiles, advances it ``depth`` steps there (recomputing the overlap,
  which neighbouring tiles also compute) and writes back only its own core. Memory traffic per update drops
  by about ``depth``, so it beats the streaming bound once the grid is out of cache. ``new`` matches the
  plain kernel bit for bit on the last step's box; inside the box but outside the last step's box (the
  shrinking rim of deep halos) and in ``old`` it holds stale values that no later step reads.

No MPI, no I/O: decomposition, halo exchange and output live elsewhere.
"""
import numpy as np
from numba import njit, prange

PAGE = 512        # doubles in a 4 KiB page


@njit(cache=True, nogil=True, boundscheck=False)
def _row(src, sj, si, dst, dj, di, n, k):
    """Update n nodes of row sj from column si of src into row dj from column di of dst.

    Views indexed from 0 let LLVM drop the wraparound checks and vectorise."""
    centre = _views(src, sj, si, n)
    west = _views(src, sj, si - 1, n)
    east = _views(src, sj, si + 1, n)
    south = _views(src, sj - 1, si, n)
    north = _views(src, sj + 1, si, n)
    out = _views(dst, dj, di, n)
    for m in range(n):
        _put(out, m, update(_at(centre, m), _at(west, m), _at(east, m), _at(south, m), _at(north, m), k))


@njit(cache=True, nogil=True, boundscheck=False)
def _row_pair(src, sj, si, dst, dj, di, n, k):
    """Rows sj and sj + 1 in one sweep, as two calls of :func:`_row` would: each row's centre is the other's
    north or south neighbour, so the pair loads four values per update instead of five."""
    south = _views(src, sj - 1, si, n)
    centre0 = _views(src, sj, si, n)
    west0 = _views(src, sj, si - 1, n)
    east0 = _views(src, sj, si + 1, n)
    centre1 = _views(src, sj + 1, si, n)
    west1 = _views(src, sj + 1, si - 1, n)
    east1 = _views(src, sj + 1, si + 1, n)
    north = _views(src, sj + 2, si, n)
    out0 = _views(dst, dj, di, n)
    out1 = _views(dst, dj + 1, di, n)
    for m in range(n):
        c0 = _at(centre0, m)
        c1 = _at(centre1, m)
        _put(out0, m, update(c0, _at(west0, m), _at(east0, m), _at(south, m), c1, k))
        _put(out1, m, update(c1, _at(west1, m), _at(east1, m), c0, _at(north, m), k))


@njit(cache=True, nogil=True, boundscheck=False)
def _rows(src, sj0, sj1, si, dst, dj0, di, n, k):
    """Update rows sj0 .. sj1 - 1 (n nodes from column si) of src into rows from dj0 (column di) of dst."""
    j = sj0
    while j + 1 < sj1:
        _row_pair(src, j, si, dst, dj0 + j - sj0, di, n, k)
        j += 2
    if j < sj1:
        _row(src, j, si, dst, dj0 + j - sj0, di, n, k)


@njit(cache=True, nogil=True)
def _box(region, shrink, s):
    """The box of step s: the region moved inwards by s nodes on each shrinking side."""
    j0, j1, i0, i1 = region
    s_south, s_north, s_west, s_east = shrink
    return j0 + s * s_south, j1 - s * s_north, i0 + s * s_west, i1 - s * s_east


@njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _sweep(u, v, box, k):
    """One step on ``box`` from u into v: a threaded sweep over pairs of rows."""
    a, b, c, d = box
    for pair in prange((b - a + 1) // 2):
        j = a + 2 * pair
        _rows(u, j, min(j + 2, b), c, v, j, c, d - c, k)


@njit(cache=True, nogil=True)
def _advance_numba(u, v, steps, k, region, shrink):
    for s in range(steps):
        _sweep(u, v, _box(region, shrink, s), k)
        u, v = v, u
    return u, v


@njit(cache=True, nogil=True, boundscheck=False)
def _ring(scratch, src, ej0, ej1, ei0, ei1, j0, j1, i0, i1):
    """Copy into scratch the nodes of the box (ej0, ej1, ei0, ei1) of src lying outside the region: no step
    writes them, and a scratch tile reads them where the kernels read the caller's values."""
    ni = ei1 - ei0
    for gj in range(ej0, ej1):
        j = gj - ej0
        if gj < j0 or gj >= j1:
            scratch[:, j, :ni] = src[:, gj, ei0:ei1]
        else:
            if ei0 < i0:
                scratch[:, j, 0] = src[:, gj, ei0]
            if ei1 > i1:
                scratch[:, j, ni - 1] = src[:, gj, ei1 - 1]


@njit(cache=True, nogil=True, boundscheck=False)
def _tile(p, q, a, b, k, steps, first, region, shrink, core):
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
    _rows(p, ej0 + 1, ej1 - 1, ei0 + 1, b, 1, 1, ei1 - ei0 - 2, k)
    for t in range(1, steps - 1):
        s = first + t
        grow = steps - 1 - t
        bj0 = max(cj0 - grow, j0 + s * s_south)
        bj1 = min(cj1 + grow, j1 - s * s_north)
        bi0 = max(ci0 - grow, i0 + s * s_west)
        bi1 = min(ci1 + grow, i1 - s * s_east)
        if t % 2 == 1:
            _rows(b, bj0 - ej0, bj1 - ej0, bi0 - ei0, a, bj0 - ej0, bi0 - ei0, bi1 - bi0, k)
        else:
            _rows(a, bj0 - ej0, bj1 - ej0, bi0 - ei0, b, bj0 - ej0, bi0 - ei0, bi1 - bi0, k)
    # steps is odd, so the last step reads a; the core is the last step's box by construction.
    _rows(a, cj0 - ej0, cj1 - ej0, ci0 - ei0, q, cj0, ci0, ci1 - ci0, k)


@njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _advance_tiled(u, v, steps, k, region, shrink, tile_y, tile_x, depth, threads):
    side_y, side_x = tile_y + 2 * depth, tile_x + 2 * depth
    fields = u.shape[0]
    size = fields * side_y * side_x
    # The scratch tiles lie half a page (2 KiB) apart modulo 4 KiB: a step loads from one tile and stores
    # to the other at the same indices, and a load whose address shares its low 12 bits with a pending
    # store waits for it (4K aliasing): tiles that started a whole page apart ran 10-15 % slower.
    stride = -(-size // PAGE) * PAGE + PAGE // 2
    pool = np.empty(2 * threads * stride)
    done = 0
    while done < steps:
        n = min(depth, steps - done)
        if n % 2 == 0:
            n -= 1       # odd chunks: the result lands in the other buffer, so tiles never race
        a, b, c, d = _box(region, shrink, done + n - 1)      # the chunk's last step
        if b <= a or d <= c:
            n = 1        # the box vanishes within the chunk: step by step, as the plain kernel does
        if n == 1:
            _sweep(u, v, _box(region, shrink, done), k)
        else:
            tiles_y = (b - a + tile_y - 1) // tile_y
            tiles_x = (d - c + tile_x - 1) // tile_x
            tiles = tiles_y * tiles_x
            for worker in prange(threads):
                a_tile = pool[2 * worker * stride:2 * worker * stride + size].reshape((fields, side_y, side_x))
                b_tile = pool[(2 * worker + 1) * stride:(2 * worker + 1) * stride + size].reshape(
                    (fields, side_y, side_x))
                for t in range(worker, tiles, threads):
                    ty, tx = t // tiles_x, t % tiles_x
                    core = (a + ty * tile_y, min(b, a + (ty + 1) * tile_y),
                            c + tx * tile_x, min(d, c + (tx + 1) * tile_x))
                    _tile(u, v, a_tile, b_tile, k, n, done, region, shrink, core)
        u, v = v, u
        done += n
    return u, v


@njit(parallel=True, cache=True, nogil=True, boundscheck=False)
def _prange_step(u, v, box, k):
    """One step as one writes it first: a ``prange`` over rows, each row updated on its own (five loads per
    update, no pairs), one compiled call per step."""
    a, b, c, d = box
    for j in prange(a, b):
        _row(u, j, c, v, j, c, d - c, k)


def _advance_prange(u, v, steps, k, region, shrink):
    """The benchmark's yardstick: :func:`_prange_step` called from Python for every step."""
    for s in range(steps):
        _prange_step(u, v, _box(region, shrink, s), k)
        u, v = v, u
    return u, v
