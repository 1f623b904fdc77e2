"""The tiled kernel's sizes: strips, steps per chunk and ring-buffer rows, and the memory they take.

Read by the kernels' template (solver/core/stencil.py, which compiles them into its machine code: the
generated kernels are keyed on this file's text too) and by planning and --dry-run. Plain Python, no numba.
"""
from __future__ import annotations

# Temporal blocking: strips of at most STRIP columns, advanced DEPTH steps (odd, see _advance_tiled) at a time
# as a wavefront; models with several fields take fewer steps at a time (depth_for), so that each thread's
# ring buffers (about 0.72 MB) stay in its L2 cache. Chosen by a sweep at 2048^2 and 4096^2 on 2 cores
# (docs/performance.md).
STRIP, DEPTH = 512, 31
# Ring rows kept per level. A pair of rows reads rows r - 1 .. r + 2 of the level below, and the level below
# may only overwrite rows the level above has read: with five, a level that must wait for the one above to
# read (it runs at least three rows ahead) never blocks the one above (which waits for at most two), so the
# wavefront cannot stall; four can (it hangs). Five rather than six: faster (docs/performance.md).
SLOTS = 5


def depth_for(fields: int) -> int:
    """Steps per tiled chunk for a model of ``fields`` fields: DEPTH shared out among them, odd, at least 3."""
    return max(3, (DEPTH // fields) | 1)


def ring_columns(width: int, depth: int) -> int:
    """Length of a ring row of the tiled kernel: a strip and its overlap, rounded up to end 512 B past a
    4 KiB page. A step loads rows of one level's ring and stores rows of the next, a few rows apart; rows of
    that length keep those addresses from sharing their low 12 bits (4K aliasing), which measurably slows
    the kernel (docs/performance.md)."""
    needed = width + 2 * depth + 2
    return needed + (64 - needed % 512) % 512


def scratch_bytes_per_thread(fields: int = 1, rows: int = 0) -> int:
    """Memory of the tiled kernel's ring buffers per thread (about 0.72 MB for one field with the sizes
    above), and of the copies of the region's side columns for a block of ``rows`` rows (32 B a row and
    field)."""
    depth = depth_for(fields)
    size = fields * depth * SLOTS * ring_columns(STRIP, depth)
    return (-(-size // 512) * 512 + 256) * 8 + 4 * fields * rows * 8
