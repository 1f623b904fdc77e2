"""Grid and decomposition: who owns which nodes of the global grid.

The global grid has ``nx x ny`` nodes, boundaries included, stored as arrays of shape ``(ny, nx)`` (x is
the fast index, as in the output's ``C(time, y, x)``). Ranks form a ``py x px`` Cartesian process grid; each
owns a block whose sizes differ by at most one node from the others' and stores it with a halo of width
``halo`` on every side. With one process (``comm=None``) the same object describes the whole grid, so the
run loop has one path. Kernels and I/O ask this object for offsets; they never compute them.

A side of a block is *open* when its halo holds data to compute with: a neighbouring rank's nodes, the
wrapped-around nodes of a periodic axis, or the mirrored nodes of a zero-flux boundary. Steps update the
open sides' boundary nodes and, with deep halos, their halos; a fixed boundary's nodes are never updated.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config, ConfigError


def split(n: int, parts: int, index: int) -> tuple[int, int]:
    """The ``[start, stop)`` of part ``index`` when n items are cut into parts differing by at most one."""
    base, extra = divmod(n, parts)
    start = index * base + min(index, extra)
    return start, start + base + (index < extra)


def process_grid(size: int, nx: int, ny: int) -> tuple[int, int]:
    """The ``(px, py)`` with ``px * py == size`` that minimises the halo surface of a block."""
    best = None
    for px in range(1, size + 1):
        if size % px:
            continue
        py = size // px
        surface = ny / py + nx / px     # halo length of one block, up to a factor two
        if best is None or surface < best[0] - 1e-12:
            best = (surface, px, py)
    return best[1], best[2]


@dataclass(frozen=True)
class Decomposition:
    """One rank's view of the global grid; with ``comm=None`` the whole grid on one process."""

    nx: int                       # global nodes along x
    ny: int                       # global nodes along y
    dims: tuple[int, int]         # process grid (px, py)
    coords: tuple[int, int]       # this rank's place in it (cx, cy)
    x_range: tuple[int, int]      # owned global x indices [start, stop)
    y_range: tuple[int, int]      # owned global y indices [start, stop)
    halo: int                     # halo width on every side
    neighbours: dict              # 'west', 'east', 'south', 'north' -> rank, or None at the boundary
    boundary: dict                # 'west', ... -> 'fixed', 'zero_flux' or 'periodic' (of the global grid)
    comm: Any = None              # Cartesian communicator, or None for one process
    rank: int = 0
    size: int = 1

    # --- sizes ------------------------------------------------------------------------------
    @property
    def nx_own(self) -> int:
        return self.x_range[1] - self.x_range[0]

    @property
    def ny_own(self) -> int:
        return self.y_range[1] - self.y_range[0]

    @property
    def local_shape(self) -> tuple[int, int]:
        """Shape of the stored subdomain: owned block plus the halo on every side."""
        return self.ny_own + 2 * self.halo, self.nx_own + 2 * self.halo

    @property
    def owned(self) -> tuple[slice, slice]:
        """Index of the owned block inside the stored subdomain."""
        h = self.halo
        return slice(h, h + self.ny_own), slice(h, h + self.nx_own)

    def has(self, side: str) -> bool:
        """A neighbouring rank (or this rank itself, across a periodic axis) fills this side's halo."""
        return self.neighbours[side] is not None

    def open(self, side: str) -> bool:
        """The halo on this side holds data: a neighbour's, or a periodic or zero-flux boundary's."""
        return self.has(side) or self.boundary[side] != "fixed"

    @property
    def needs_halo(self) -> bool:
        """Whether any side must be filled before steps (else one call may advance any number of steps)."""
        return any(self.open(side) for side in ("west", "east", "south", "north"))

    # --- where the kernel may write -----------------------------------------------------------
    def update_region(self, extra: int = 0) -> tuple[int, int, int, int]:
        """Local ``(j0, j1, i0, i1)`` of the nodes to update: the owned block, widened by ``extra``
        halo layers on open sides, never touching the nodes of a fixed global boundary."""
        h = self.halo
        (gx0, gx1), (gy0, gy1) = self.x_range, self.y_range

        def span(g0, g1, n, lower, upper):
            lo = h - (extra if self.open(lower) else 0)
            hi = h + (g1 - g0) + (extra if self.open(upper) else 0)
            if self.boundary[lower] == "fixed":
                lo = max(lo, h + (1 - g0))          # local index of global node 1
            if self.boundary[upper] == "fixed":
                hi = min(hi, h + (n - 1 - g0))      # local index of global node n-1 (exclusive)
            return lo, max(lo, hi)

        j0, j1 = span(gy0, gy1, self.ny, "south", "north")
        i0, i1 = span(gx0, gx1, self.nx, "west", "east")
        return j0, j1, i0, i1

    @property
    def shrink(self) -> tuple[int, int, int, int]:
        """(south, north, west, east): 1 where the side is open, so deep-halo steps shrink it."""
        return tuple(int(self.open(s)) for s in ("south", "north", "west", "east"))

    # --- coordinates --------------------------------------------------------------------------
    def coordinates(self, cfg: Config) -> tuple[np.ndarray, np.ndarray]:
        """x and y of the stored subdomain (halo included; NaN beyond the global grid), taken from the
        same global axes (``Config.axis``) so every rank sees identical values."""
        h = self.halo
        return _padded(cfg.axis("x"), self.x_range, h), _padded(cfg.axis("y"), self.y_range, h)


def _padded(axis: np.ndarray, owned: tuple[int, int], halo: int) -> np.ndarray:
    out = np.full(owned[1] - owned[0] + 2 * halo, np.nan)
    lo, hi = owned[0] - halo, owned[1] + halo
    src_lo, src_hi = max(lo, 0), min(hi, axis.size)
    out[src_lo - lo:src_hi - lo] = axis[src_lo:src_hi]
    return out


def process_dims(cfg: Config, size: int) -> tuple[int, int]:
    """The ``(px, py)`` process grid of ``size`` ranks: parallel.ranks, or the least halo surface (auto)."""
    if cfg.parallel.ranks == "auto":
        return process_grid(size, cfg.grid.nx, cfg.grid.ny)
    px, py = cfg.parallel.ranks
    if px * py != size:
        raise ConfigError(f"{cfg.source}: parallel.ranks = [{px}, {py}] needs {px * py} ranks, "
                          f"but {size} were started; launch {px * py} or set parallel.ranks: auto")
    return px, py


def init_global_grid(cfg: Config, comm: Any = None, halo: int | None = None) -> Decomposition:
    """Decompose the grid of ``cfg`` over ``comm`` (None: one process) and return this rank's view, with a
    halo of width ``halo`` (default: parallel.halo, 1 for auto; the run passes what it planned)."""
    nx, ny = cfg.grid.nx, cfg.grid.ny
    if halo is None:
        halo = cfg.parallel.halo if isinstance(cfg.parallel.halo, int) else 1
    boundary = {side: getattr(cfg.boundary, side) for side in ("west", "east", "south", "north")}
    if comm is None:
        return Decomposition(nx, ny, (1, 1), (0, 0), (0, nx), (0, ny), halo,
                             dict.fromkeys(("west", "east", "south", "north")), boundary)
    size = comm.Get_size()
    px, py = process_dims(cfg, size)
    if nx // px < halo or ny // py < halo:
        raise ConfigError(f"{cfg.source}: {px} x {py} ranks leave blocks of {nx // px} x {ny // py} nodes, "
                          f"fewer than parallel.halo = {halo}; use fewer ranks or a smaller halo")
    # Cartesian dimensions are ordered (y, x) like the arrays, so x-neighbours are adjacent ranks; a periodic
    # axis wraps around, so its first and last ranks (or one rank with itself) exchange like any neighbours.
    from mpi4py import MPI
    periods = [cfg.boundary.periodic("y"), cfg.boundary.periodic("x")]
    cart = comm.Create_cart([py, px], periods=periods, reorder=False)
    cy, cx = cart.Get_coords(cart.Get_rank())
    (south, north), (west, east) = cart.Shift(0, 1), cart.Shift(1, 1)

    def rank_or_none(r):
        return None if r == MPI.PROC_NULL else r

    neighbours = {"west": rank_or_none(west), "east": rank_or_none(east),
                  "south": rank_or_none(south), "north": rank_or_none(north)}
    return Decomposition(nx, ny, (px, py), (cx, cy), split(nx, px, cx), split(ny, py, cy), halo,
                         neighbours, boundary, cart, cart.Get_rank(), size)


def data_caches() -> dict[str, int]:
    """The data caches of the first CPU from Linux sysfs, level name -> bytes, e.g. {'L1': 32768, ...}."""
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = (index / "level").read_text().strip()
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1:], 1)
        if text.rstrip("KMG").isdigit():
            caches[f"L{level}"] = int(text.rstrip("KMG")) * unit
    return caches


def last_level_cache() -> int:
    """Bytes of the largest data cache the kernel sees; 8 MiB where the system does not say."""
    return max(data_caches().values(), default=8 * 1024 ** 2)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # macOS
        return os.cpu_count() or 1
