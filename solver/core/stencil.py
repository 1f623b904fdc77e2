"""The numba kernels, written once for every model: a template that solver/core/kernels.py compiles per model.

Not imported as it is. solver/core/kernels.py appends to a copy of this file the model's binding: ``_point`` (the
model's point update, inlined, called with the fields and the coefficient fields at a node and its four
neighbours, the constants ``k`` and the step's forcing values ``f``), ``_views``, ``_at`` and ``_put``, which
gather the model's fields at a node (one value, or a tuple of one per field) and store the result,
``_cviews`` and ``_cat``, the same for the coefficient fields, and ``COEFFICIENTS``, their number. The copy is named after a hash of this
file and of the model's source, so numba's on-disk cache is keyed on both: an unchanged model compiles
nothing, an edited one gets fresh machine code, never stale.

Fields are stored as ``(fields, y, x)`` arrays. Every kernel advances them by ``steps`` explicit steps on the
index box ``region = (j0, j1, i0, i1)`` of a double-buffered pair ``(u, v)`` and returns ``(new, old)``:
``advance(u, v, a, steps, k, values, region, shrink, rec)``. ``a`` holds the coefficient fields, ``(coefficient
fields, y, x)`` with the layout (and halo) of u, read, never written (any ``(0, ., .)`` array for a model
without them: never read); ``values`` is ``(steps, forcing values)``, row s the forcing of the call's step s.
Nodes outside the box are never written, so fixed boundary values and halo cells keep what the caller put
there; the box must leave at least one node on every side of the array. ``shrink = (south, north, west,
east)`` (each 0 or 1) moves that side of the box inwards by one node per step: a halo of width k is valid
for k steps, one layer less after each (deep halos). Each node is computed by the same expression in the
same order in every kernel (no fastmath, no fused multiply-add), so results do not depend on the kernel,
the thread count or the decomposition.

``rec`` (solver/core/kernels.py ``records_for``) asks for records of the call's steps: after step s, the
weighted total, weighted sum of squares, min and max of each field over the nodes of an owned box (which must
lie within the last step's box) added into a slot of ``stats[s]``, and the fields at probe nodes stored into
``probes[s]``. Each kernel takes them from every row it writes there, right after writing it (still in the
cache, so no pass over memory of its own), in :func:`_tally`; the sums and extremes are one separately compiled
function (:func:`_row_stats`) whose fast-math flags never reach the updates. A slot is a row
(plain kernels: one thread writes it) or a strip (tiled: one thread adds its rows in order into sums of its
own, then those into the slot once), so the sums do not depend on the threads' timing. A call without
records passes empty arrays, and :func:`_tally` is called only for a step with records: the loops without
run the same code as before.

Every kernel is compiled with ``error_model='numpy'``: a division by zero in an update gives inf or nan, as
on the numpy kernel, instead of raising inside compiled code (and costs no check per division).

- ``_advance_numba``: the plain kernel. One compiled call runs the whole time loop; each step is a threaded
  sweep over pairs of rows whose inner loop LLVM vectorises (row views indexed from zero, so no
  negative-index wraparound). A pair shares two of the rows it reads: four loads per update instead of five.
- ``_advance_tiled``: temporal blocking. The box is cut into strips of columns; each thread takes a strip
  up the grid ``depth`` steps at once, as a wavefront: every pass moves each level (steps done) a pair of
  rows further, reading the grid at level 0, keeping the last five rows of each later level in a private
  ring buffer (in the core's L2 cache) and writing the last level into the other grid. A level computes the
  strip's columns and ``depth - level`` more on each side (recomputed by the neighbouring strip too), so the
  last level is exact. Each node is read from and written to memory once per ``depth`` steps, and that
  traffic is spread over the sweep and prefetched a pass ahead, so it overlaps the arithmetic. The
  coefficient fields are read from ``a`` directly (nothing writes them, so they need no ring): the rows the
  strip's levels read lie within about 3 ``depth`` rows of each other, so they stay in the core's cache
  from level 1, which prefetches them a pass ahead like the grid rows, to the last level. ``new``
  matches the plain kernel bit for bit on the last step's box; inside the box but outside the last step's
  box (the shrinking rim of deep halos) and in ``old`` it holds stale values that no later step reads. Level l
  records the call's step first + l - 1 from the rows it computes, on the strip's own columns only (not the
  columns recomputed by its neighbours), whether they land in a ring buffer or in the other grid.

No MPI, no I/O: decomposition, halo exchange and output live elsewhere.
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic

from solver.core.tiling import SLOTS     # ring rows per level (absolute: the generated copy lives elsewhere)

PAGE = 512        # doubles in a 4 KiB page


# --- the model's binding. solver/core/kernels.py appends the model's own definitions of these names to the
# generated copy of this file, where they replace the ones below (a one-field model without coefficient
# fields whose update keeps the value), so that this file also imports and lints on its own.
COEFFICIENTS = 0
FORCING = 0          # 1: the model has forcing values, a row of ``values`` per step


@njit(inline='always')
def _point(c, w, e, s, n, ac, aw, ae, a_s, an, k, f):
    return c


@njit(inline='always')
def _views(a, j, i, n):
    return (a[0, j, i:i + n],)


@njit(inline='always')
def _at(v, m):
    return v[0][m]


@njit(inline='always')
def _put(v, m, x):
    v[0][m] = x


@njit(inline='always')
def _cviews(a, j, i, n):
    return 0.0


@njit(inline='always')
def _cat(v, m):
    return 0.0


def _prefetch_intrinsic(write):
    """``prefetch(address)``: ask the caches for the line holding ``address`` (an integer), to read it or
    (write=1) to overwrite it soon, without waiting for it; LLVM's prefetch, which numba does not expose."""
    try:
        pointer, name = ir.PointerType(), "llvm.prefetch.p0"            # opaque pointers (LLVM >= 15)
    except TypeError:
        pointer, name = ir.IntType(8).as_pointer(), "llvm.prefetch.p0i8"

    @intrinsic
    def prefetch(typingctx, address):
        def codegen(context, builder, signature, args):
            i32 = ir.IntType(32)
            function = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [pointer, i32, i32, i32]), name)
            builder.call(function, [builder.inttoptr(args[0], pointer), ir.Constant(i32, write),
                                    ir.Constant(i32, 3), ir.Constant(i32, 1)])     # keep in every cache, data
            return context.get_dummy_value()
        return types.void(address), codegen
    return prefetch


_prefetch_read, _prefetch_write = _prefetch_intrinsic(0), _prefetch_intrinsic(1)


@njit(inline='always')
def _prefetch_row(a, j, lo, hi, write):
    """Prefetch columns lo .. hi - 1 of row j of every field of a, one cache line (8 nodes) at a time."""
    for f in range(a.shape[0]):
        start = a[f, j, lo:hi].ctypes.data
        for offset in range(0, 8 * (hi - lo) + 63, 64):
            if write:
                _prefetch_write(start + offset)
            else:
                _prefetch_read(start + offset)


@njit(inline='always')
def _one_row(src, south, centre, north, si, co, cj, ci, dst, d, di, n, k, f):
    """Update n nodes of row ``centre`` of src from column si into row d of dst from column di; ``south`` and
    ``north`` are the rows of src holding its neighbours (adjacent in the grid, anywhere in a ring buffer).
    The coefficient fields ``co`` are read in grid coordinates: the node is row cj, column ci.

    Views indexed from 0 let LLVM drop the wraparound checks and vectorise."""
    c = _views(src, centre, si, n)
    w = _views(src, centre, si - 1, n)
    e = _views(src, centre, si + 1, n)
    s = _views(src, south, si, n)
    nn = _views(src, north, si, n)
    ac = _cviews(co, cj, ci, n)
    aw = _cviews(co, cj, ci - 1, n)
    ae = _cviews(co, cj, ci + 1, n)
    a_s = _cviews(co, cj - 1, ci, n)
    an = _cviews(co, cj + 1, ci, n)
    out = _views(dst, d, di, n)
    for m in range(n):
        _put(out, m, _point(_at(c, m), _at(w, m), _at(e, m), _at(s, m), _at(nn, m),
                            _cat(ac, m), _cat(aw, m), _cat(ae, m), _cat(a_s, m), _cat(an, m), k, f))


@njit(inline='always')
def _two_rows(src, south, centre0, centre1, north, si, co, cj, ci, dst, d0, d1, di, n, k, f):
    """Rows ``centre0`` and ``centre1`` (its northern neighbour) in one sweep, as two calls of
    :func:`_one_row` would: each row's centre is the other's north or south neighbour, so the pair loads
    four values per update instead of five (the coefficient fields likewise; row cj is centre0's)."""
    s = _views(src, south, si, n)
    c0 = _views(src, centre0, si, n)
    w0 = _views(src, centre0, si - 1, n)
    e0 = _views(src, centre0, si + 1, n)
    c1 = _views(src, centre1, si, n)
    w1 = _views(src, centre1, si - 1, n)
    e1 = _views(src, centre1, si + 1, n)
    nn = _views(src, north, si, n)
    a_s = _cviews(co, cj - 1, ci, n)
    ac0 = _cviews(co, cj, ci, n)
    aw0 = _cviews(co, cj, ci - 1, n)
    ae0 = _cviews(co, cj, ci + 1, n)
    ac1 = _cviews(co, cj + 1, ci, n)
    aw1 = _cviews(co, cj + 1, ci - 1, n)
    ae1 = _cviews(co, cj + 1, ci + 1, n)
    an = _cviews(co, cj + 2, ci, n)
    out0 = _views(dst, d0, di, n)
    out1 = _views(dst, d1, di, n)
    for m in range(n):
        a = _at(c0, m)
        b = _at(c1, m)
        x = _cat(ac0, m)
        y = _cat(ac1, m)
        _put(out0, m, _point(a, _at(w0, m), _at(e0, m), _at(s, m), b,
                             x, _cat(aw0, m), _cat(ae0, m), _cat(a_s, m), y, k, f))
        _put(out1, m, _point(b, _at(w1, m), _at(e1, m), a, _at(nn, m),
                             y, _cat(aw1, m), _cat(ae1, m), x, _cat(an, m), k, f))


@njit(cache=True, nogil=True, boundscheck=False, error_model='numpy')
def _row(src, sj, si, co, dst, dj, di, n, k, f):
    """Update n nodes of row sj from column si of src (coefficient fields co, laid out as src) into row dj
    from column di of dst."""
    _one_row(src, sj - 1, sj, sj + 1, si, co, sj, si, dst, dj, di, n, k, f)


@njit(cache=True, nogil=True, boundscheck=False, error_model='numpy')
def _row_pair(src, sj, si, co, dst, dj, di, n, k, f):
    """Rows sj and sj + 1 in one sweep (see :func:`_two_rows`)."""
    _two_rows(src, sj - 1, sj, sj + 1, sj + 2, si, co, sj, si, dst, dj, dj + 1, di, n, k, f)



def _extreme_intrinsic(less):
    """``extreme(x, y)``: the smaller (less=True) or larger of two floats, neither of them NaN, compared with
    LLVM's ``nnan nsz`` flags on this comparison alone, so that a loop of them vectorises (Python's ``min``
    must order NaNs, which keeps a loop scalar) while every other operation keeps its strict semantics."""
    @intrinsic
    def extreme(typingctx, x, y):
        def codegen(context, builder, signature, args):
            a, b = args
            flags = ("nnan", "nsz")
            return builder.select(builder.fcmp_ordered("<" if less else ">", a, b, flags=flags), a, b,
                                  flags=flags)
        return types.float64(types.float64, types.float64), codegen
    return extreme


_smaller, _larger = _extreme_intrinsic(True), _extreme_intrinsic(False)


@njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract", "nsz"})
def _row_stats(a, f, d, i, w, wi, n):
    """(weighted total, weighted sum of squares, min, max) of ``a[f, d, i:i + n]`` with weights ``w[wi:wi +
    n]``, in one vectorised pass (reassociated: a function of its own, so that this never reaches the updates).
    Min and max are meaningless when the row holds a NaN; the sum of squares is then NaN, which the caller checks.
    Indices, not slices: a slice counts a reference to its array, an atomic update of memory every thread
    shares; unsigned ones, which numba does not wrap around (a signed index might be negative, which makes
    LLVM gather each value on its own: eight times slower)."""
    total, squares, low, high = 0.0, 0.0, np.inf, -np.inf
    row, weights = np.uint64(i), np.uint64(wi)
    for m in range(np.uint64(n)):
        y = a[f, d, row + m]
        x = w[weights + m] * y
        total += x
        squares += x * y
        low, high = _smaller(y, low), _larger(y, high)
    return total, squares, low, high


@njit(inline='always')
def _recorded(want, row_first, s, j, rows):
    """Whether the call's step s records anything from rows j .. j + rows - 1: its series, or a probe on one of
    them. Checked before :func:`_tally`, so that a row with nothing to record costs a few loads."""
    if want[s] & 1:
        return True
    last = row_first.shape[0] - 1            # the probes' last row + 1
    return want[s] & 2 != 0 and j < last and row_first[j] != row_first[min(j + rows, last)]


@njit(inline='always')
def _add_into(stats, at, slot, f, total, squares, low, high, broken):
    """Add a part's statistics of field f into ``stats[at, slot, f]``: sums added, extremes kept; min and max
    NaN once any part is ``broken`` (holds a NaN node)."""
    stats[at, slot, f, 0] += total
    stats[at, slot, f, 1] += squares
    if broken or stats[at, slot, f, 2] != stats[at, slot, f, 2]:
        stats[at, slot, f, 2] = stats[at, slot, f, 3] = np.nan
    else:
        stats[at, slot, f, 2] = min(stats[at, slot, f, 2], low)
        stats[at, slot, f, 3] = max(stats[at, slot, f, 3], high)


@njit(inline='always')
def _tally(own, wx, wy, want, stats, row_first, probe_at, probes, s, at, slot, dst, d, di, j, i, n):
    """Record the state after the call's step s from row j (grid), columns i .. i + n - 1 (grid), held in row
    d of dst from column di: the statistics of its owned nodes (``own``) into ``stats[at, slot]`` (``at`` is s
    in the call's records, the level in a strip's own sums; added to what the slot holds; min and max NaN when
    the sum of squares is, which only a NaN node makes it: a sum of non-negative terms, where +inf and -inf
    nodes make the total NaN) and the probes on them into
    ``probes[s]``, as ``want[s]`` asks (1: statistics, 2: probes, 3: both). The probes of row j are entries
    ``row_first[j]`` .. ``row_first[j + 1] - 1`` of ``probe_at`` (column, probe); rows past the end of
    ``row_first`` have none. Called only for rows :func:`_recorded` passes, with the record arrays taken out
    of their tuple once per call (each take counts a reference)."""
    oj0, oj1, oi0, oi1 = own
    if oj0 <= j < oj1:                      # want[s] asks for something: _recorded checked it
        lo, hi = max(i, oi0), min(i + n, oi1)
        if lo < hi:
            if want[s] & 1:
                for f in range(dst.shape[0]):
                    total, squares, low, high = _row_stats(dst, f, d, di + lo - i, wx, lo - oi0, hi - lo)
                    _add_into(stats, at, slot, f, wy[j - oj0] * total, wy[j - oj0] * squares, low, high,
                              squares != squares)
            if want[s] & 2 and j + 1 < row_first.shape[0]:
                for t in range(row_first[j], row_first[j + 1]):
                    if lo <= probe_at[t, 0] < hi:
                        for f in range(dst.shape[0]):
                            probes[s, probe_at[t, 1], f] = dst[f, d, di + probe_at[t, 0] - i]


@njit(cache=True, nogil=True, boundscheck=False, error_model='numpy')
def _rows(src, sj0, sj1, si, co, dst, dj0, di, n, k, f):
    """Update rows sj0 .. sj1 - 1 (n nodes from column si) of src into rows from dj0 (column di) of dst."""
    j = sj0
    while j + 1 < sj1:
        _row_pair(src, j, si, co, dst, dj0 + j - sj0, di, n, k, f)
        j += 2
    if j < sj1:
        _row(src, j, si, co, dst, dj0 + j - sj0, di, n, k, f)


@njit(cache=True, nogil=True)
def _box(region, shrink, s):
    """The box of step s: the region moved inwards by s nodes on each shrinking side."""
    j0, j1, i0, i1 = region
    s_south, s_north, s_west, s_east = shrink
    return j0 + s * s_south, j1 - s * s_north, i0 + s * s_west, i1 - s * s_east


@njit(parallel=True, cache=True, nogil=True, boundscheck=False, error_model='numpy')
def _sweep(u, v, co, box, k, f, rec, s):
    """One step (the call's step s) on ``box`` from u into v: a threaded sweep over pairs of rows, each row
    recorded (:func:`_tally`, a slot per owned row) while it is in the cache."""
    a, b, c, d = box
    (oj0, oj1, oi0, oi1), wx, wy, want, stats, row_first, probe_at, probes = rec   # a parallel loop: no nested tuple
    recording = s < want.shape[0] and want[s] != 0
    for pair in prange((b - a + 1) // 2):
        j = a + 2 * pair
        _rows(u, j, min(j + 2, b), c, co, v, j, c, d - c, k, f)
        if recording and _recorded(want, row_first, s, j, min(j + 2, b) - j):
            for row in range(j, min(j + 2, b)):
                _tally((oj0, oj1, oi0, oi1), wx, wy, want, stats, row_first, probe_at, probes, s, s, row - oj0, v,
                       row, c, row, c, d - c)


@njit(cache=True, nogil=True, error_model='numpy')
def _advance_numba(u, v, a, steps, k, values, region, shrink, rec):
    for s in range(steps):
        _sweep(u, v, a, _box(region, shrink, s), k, values[s], rec, s)
        u, v = v, u
    return u, v


@njit(inline='always')
def _slot(level, row):
    """The row of a ring buffer holding ``row`` after ``level`` steps of the chunk (the last SLOTS rows)."""
    return level * SLOTS + row % SLOTS


@njit(inline='always')
def _outside(p, q, level):
    """The buffer holding, after ``level`` steps of a chunk, what the plain kernel reads outside the region:
    p at even levels, q at odd ones (no step writes there)."""
    return p if level % 2 == 0 else q


@njit(inline='always')
def _edge_row(ring, edge, level, row, lo, hi, off):
    """Copy a row outside the region, columns lo - 1 .. hi, from ``edge`` into the ring of ``level``."""
    ring[:, _slot(level, row), lo - 1 - off:hi + 1 - off] = edge[:, row, lo - 1:hi + 1]


@njit(inline='always')
def _edge_columns(ring, sides, parity, d0, d1, x, rows, west, east, west_col, east_col):
    """Copy the nodes just outside the region's west and east sides (as ``west`` and ``east`` say) of rows
    x and, if ``rows`` is 2, x + 1 of ``sides`` at ``parity`` into columns west_col and east_col of ring
    rows d0 and d1."""
    for f in range(ring.shape[0]):
        if west:
            ring[f, d0, west_col] = sides[0, parity, f, x]
            if rows == 2:
                ring[f, d1, west_col] = sides[0, parity, f, x + 1]
        if east:
            ring[f, d0, east_col] = sides[1, parity, f, x]
            if rows == 2:
                ring[f, d1, east_col] = sides[1, parity, f, x + 1]


@njit(cache=True, nogil=True, boundscheck=False, error_model='numpy')
def _strip(p, q, co, ring, k, values, steps, first, region, shrink, c0, c1, rec, strip):
    """Advance the columns [c0, c1) of the chunk's last box ``steps`` steps from p into q: a wavefront up
    the strip, each pass taking every level (steps done) one pair of rows further, from the grid (level 0)
    through the ring buffers of levels 1 .. steps - 1 into q (the last level). Level l computes the columns
    of its box within ``steps - l`` of the strip, so the last level is exact on [c0, c1). The row and the
    columns just outside the region are copied into the rings as the plain kernel would read them there:
    p's at even levels, q's at odd ones (no step writes them). Level l reads the coefficient fields at
    the grid's rows and columns of ``co``, and the forcing values ``values[first + l - 1]``."""
    j0, j1, i0, i1 = region
    fields = p.shape[0]
    off = c0 - steps                      # ring column = grid column - off
    row_next = np.empty(steps + 1, np.int64)     # next row of each level to compute (or copy)
    row_end = np.empty(steps + 1, np.int64)      # end of the level's box
    row_stop = np.empty(steps + 1, np.int64)     # end of its rows in the ring: one more if it copies row j1
    col_lo = np.empty(steps + 1, np.int64)
    col_hi = np.empty(steps + 1, np.int64)
    for level in range(1, steps + 1):
        a, b, c, d = _box(region, shrink, first + level - 1)
        row_next[level], row_end[level] = a, b
        col_lo[level] = max(c0 - (steps - level), c)
        col_hi[level] = min(c1 + (steps - level), d)
    for level in range(1, steps + 1):
        row_stop[level] = row_end[level] + (1 if level < steps and row_end[level + 1] == j1 else 0)
        if level < steps and row_next[level + 1] == j0:       # the row below the region, read at j0
            _edge_row(ring, _outside(p, q, level), level, j0 - 1, col_lo[level], col_hi[level], off)
    # the columns beside the region as the plain kernel reads them at even and odd levels (sides[side,
    # parity]), gathered once: read row by row, q's would miss the cache every time (no level writes q there)
    sides = np.empty((2, 2, fields, j1 - j0))
    if c0 - steps <= i0 or c1 + steps >= i1:
        for parity in range(2):
            edge = _outside(p, q, parity)
            for f in range(fields):
                for x in range(j0, j1):
                    sides[0, parity, f, x - j0], sides[1, parity, f, x - j0] = edge[f, x, i0 - 1], edge[f, x, i1]
    # Without forcing every level gets one empty row: no array view made per level and pass (each would
    # count a reference to ``values``, an atomic update of memory both threads' strips share)
    unforced = values[first]
    own, wx, wy, want, stats, row_first, probe_at, probes = rec
    recording = want.shape[0] > 0         # the call has records (want is empty without)
    # The strip's statistics of each level, added into its slot of ``stats`` at the end: slots of strips
    # side by side share cache lines, which the threads' strips would pass back and forth row by row.
    sums = np.empty((steps + 1 if recording else 0, 1, fields, 4))
    for level in range(sums.shape[0]):
        for f in range(fields):
            sums[level, 0, f, 0], sums[level, 0, f, 1], sums[level, 0, f, 2], sums[level, 0, f, 3] = \
                0.0, 0.0, np.inf, -np.inf
    while row_next[steps] < row_end[steps]:
        for level in range(1, steps + 1):
            r = row_next[level]
            if r >= row_stop[level]:
                continue
            rows = 1 if r >= row_end[level] or r + 1 == row_end[level] else 2
            if level < steps and row_next[level + 1] < row_end[level + 1] and \
                    r + rows - 1 - SLOTS >= row_next[level + 1] - 1:
                continue                  # the level above still reads the ring rows these would replace
            lo, hi = col_lo[level], col_hi[level]
            if r >= row_end[level]:       # the row above the region, read by the level above at j1 - 1
                _edge_row(ring, _outside(p, q, level), level, r, lo, hi, off)
                row_next[level] = r + 1
                continue
            if level > 1 and row_next[level - 1] <= r + rows:
                continue                  # the level below has not yet got every row this one reads
            if level == 1:
                src, s0, s1, s2, s3, si = p, r - 1, r, r + 1, r + 2, lo
            else:
                src, si = ring, lo - off
                s0, s1, s2, s3 = (_slot(level - 1, r - 1), _slot(level - 1, r), _slot(level - 1, r + 1),
                                  _slot(level - 1, r + 2))
            if level == steps:
                dst, d0, d1, di = q, r, r + 1, lo
            else:
                dst, d0, d1, di = ring, _slot(level, r), _slot(level, r + 1), lo - off
            # the grid rows the next pass reads and writes, fetched while this one computes
            if level == 1 and r + 4 <= j1:
                _prefetch_row(p, r + 3, lo - 1, hi + 1, 0)
                _prefetch_row(p, r + 4, lo - 1, hi + 1, 0)
                if COEFFICIENTS:
                    _prefetch_row(co, r + 3, lo - 1, hi + 1, 0)
                    _prefetch_row(co, r + 4, lo - 1, hi + 1, 0)
            if level == steps and r + 3 < row_end[level]:
                _prefetch_row(q, r + 2, lo, hi, 1)
                _prefetch_row(q, r + 3, lo, hi, 1)
            f = values[first + level - 1] if FORCING else unforced
            if rows == 2:
                _two_rows(src, s0, s1, s2, s3, si, co, r, lo, dst, d0, d1, di, hi - lo, k, f)
            else:
                _one_row(src, s0, s1, s2, si, co, r, lo, dst, d0, di, hi - lo, k, f)
            if recording and _recorded(want, row_first, first + level - 1, r, rows):
                _tally(own, wx, wy, want, sums, row_first, probe_at, probes, first + level - 1, level, 0, dst, d0,
                       di + c0 - lo, r, c0, c1 - c0)
                if rows == 2:
                    _tally(own, wx, wy, want, sums, row_first, probe_at, probes, first + level - 1, level, 0, dst, d1,
                           di + c0 - lo, r + 1, c0, c1 - c0)
            if level < steps and (lo == i0 or hi == i1):      # the columns beside the region
                _edge_columns(ring, sides, level % 2, d0, d1, r - j0, rows, lo == i0, hi == i1, i0 - 1 - off,
                              i1 - off)
            row_next[level] = r + rows
    for level in range(1, sums.shape[0]):
        if want[first + level - 1] & 1:
            for f in range(fields):
                _add_into(stats, first + level - 1, strip, f, sums[level, 0, f, 0], sums[level, 0, f, 1],
                          sums[level, 0, f, 2], sums[level, 0, f, 3], sums[level, 0, f, 2] != sums[level, 0, f, 2])


@njit(parallel=True, cache=True, nogil=True, boundscheck=False, error_model='numpy')
def _advance_tiled(u, v, co, steps, k, values, region, shrink, width, depth, columns, threads, rec):
    """``steps`` steps in chunks of at most ``depth`` (odd) through strips of at most ``width`` columns; ring
    rows of ``columns`` (at least width + 2 depth + 2) nodes."""
    fields = u.shape[0]
    size = fields * depth * SLOTS * columns
    stride = -(-size // PAGE) * PAGE + PAGE // 2
    pool = np.empty(threads * stride)
    done = 0
    while done < steps:
        n = min(depth, steps - done)
        if n % 2 == 0:
            n -= 1       # odd chunks: the result lands in the buffer the plain kernel's would
        a, b, c, d = _box(region, shrink, done + n - 1)      # the chunk's last step
        if b <= a or d <= c:
            n = 1        # the box vanishes within the chunk: step by step, as the plain kernel does
            a, b, c, d = _box(region, shrink, done)
        if b > a and d > c:
            # strips of at most ``width`` columns, as even as possible, a whole number per thread
            strips = -(-(d - c) // width)
            strips = min(-(-strips // threads) * threads, d - c)
            (oj0, oj1, oi0, oi1), wx, wy, want, stats, row_first, probe_at, probes = rec        # as in _sweep
            for worker in prange(threads):
                ring = pool[worker * stride:worker * stride + size].reshape((fields, depth * SLOTS, columns))
                for strip in range(worker, strips, threads):
                    c0 = c + (d - c) * strip // strips
                    c1 = c + (d - c) * (strip + 1) // strips
                    _strip(u, v, co, ring, k, values, n, done, region, shrink, c0, c1,
                           ((oj0, oj1, oi0, oi1), wx, wy, want, stats, row_first, probe_at, probes), strip)
        u, v = v, u
        done += n
    return u, v


@njit(parallel=True, cache=True, nogil=True, boundscheck=False, error_model='numpy')
def _prange_step(u, v, co, box, k, f, rec, s):
    """One step as one writes it first: a ``prange`` over rows, each row updated on its own (five loads per
    update, no pairs), one compiled call per step; each row recorded as :func:`_sweep` does."""
    a, b, c, d = box
    (oj0, oj1, oi0, oi1), wx, wy, want, stats, row_first, probe_at, probes = rec       # as in _sweep
    recording = s < want.shape[0] and want[s] != 0
    for j in prange(a, b):
        _row(u, j, c, co, v, j, c, d - c, k, f)
        if recording and _recorded(want, row_first, s, j, 1):
            _tally((oj0, oj1, oi0, oi1), wx, wy, want, stats, row_first, probe_at, probes, s, s, j - oj0, v, j, c, j,
                   c, d - c)


def _advance_prange(u, v, a, steps, k, values, region, shrink, rec):
    """The benchmark's yardstick: :func:`_prange_step` called from Python for every step."""
    for s in range(steps):
        _prange_step(u, v, a, _box(region, shrink, s), k, values[s], rec, s)
        u, v = v, u
    return u, v


@njit(cache=True, nogil=True, error_model='numpy')
def _advance_rows(u, v, a, steps, k, values, region, shrink, rec):
    """The plain kernel over single rows: :func:`_prange_step` with the time loop compiled (five loads per
    update instead of the pairs' four, but one output stream). On some cores it beats the pairs (an Intel
    Xeon guest: 0.75-0.83x for the pairs with one thread at 1024 x 512); ``auto`` measures both."""
    for s in range(steps):
        _prange_step(u, v, a, _box(region, shrink, s), k, values[s], rec, s)
        u, v = v, u
    return u, v
