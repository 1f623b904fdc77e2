"""Grid and decomposition: who owns which nodes of the global grid.

The global grid has ``nx x ny`` nodes, boundaries included, stored as arrays of shape ``(ny, nx)`` (x is
the fast index, as in the output's ``C(time, y, x)``). Ranks form a ``py x px`` Cartesian process grid; each
owns a block whose sizes differ by at most one node from the others' and stores it with a halo of width
``halo`` on every side. With one rank (a serial run) the same object describes the whole grid, so the
run loop has one path. Kernels and I/O ask this object for offsets; they never compute them.

A side of a block is *open* when its halo holds data to compute with: a neighbouring rank's nodes, the
wrapped-around nodes of a periodic axis, or the mirrored nodes of a zero-flux boundary. Steps update the
open sides' boundary nodes and, with deep halos, their halos; a fixed boundary's nodes are never updated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..comm import SERIAL, mpi
from ..errors import ConfigError
from .config import SIDES, Config


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
    """One rank's view of the global grid; on one rank, the whole grid."""

    nx: int                       # global nodes along x
    ny: int                       # global nodes along y
    dims: tuple[int, int]         # process grid (px, py)
    coords: tuple[int, int]       # this rank's place in it (cx, cy)
    x_range: tuple[int, int]      # owned global x indices [start, stop)
    y_range: tuple[int, int]      # owned global y indices [start, stop)
    halo: int                     # halo width on every side
    neighbours: dict              # 'west', 'east', 'south', 'north' -> rank, or None at the boundary
    boundary: dict                # 'west', ... -> 'fixed', 'zero_flux' or 'periodic' (of the global grid)
    comm: Any = SERIAL            # Cartesian communicator (the serial stand-in on one rank)
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
        return any(self.open(side) for side in SIDES)

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
        return tuple(int(self.open(s)) for s in ("south", "north", "west", "east"))   # the kernels' order


def process_dims(cfg: Config, size: int) -> tuple[int, int]:
    """The ``(px, py)`` process grid of ``size`` ranks: parallel.ranks, or the least halo surface (auto)."""
    if cfg.parallel.ranks == "auto":
        return process_grid(size, cfg.grid.nx, cfg.grid.ny)
    px, py = cfg.parallel.ranks
    if px * py != size:
        raise ConfigError(f"{cfg.source}: parallel.ranks = [{px}, {py}] needs {px * py} ranks, "
                          f"but {size} were started; launch {px * py} or set parallel.ranks: auto")
    return px, py


def check_halo(cfg: Config, dims: tuple[int, int], halo: int) -> None:
    """Refuse a halo wider than the smallest block of the process grid ``dims`` (its steps would read nodes
    no neighbour holds)."""
    px, py = dims
    if px > cfg.grid.nx or py > cfg.grid.ny:
        raise ConfigError(f"{cfg.source}: a {px} x {py} process grid leaves ranks without nodes on a grid of "
                          f"{cfg.grid.nx} x {cfg.grid.ny} nodes; use at most {cfg.grid.nx} ranks along x and "
                          f"{cfg.grid.ny} along y (parallel.ranks), or fewer ranks")
    smallest = min(cfg.grid.nx // px, cfg.grid.ny // py)
    if halo > smallest:
        raise ConfigError(f"{cfg.source}: parallel.halo = {halo} is wider than the smallest block ({smallest} "
                          f"nodes on {px * py} rank(s)); use parallel.halo <= {smallest}")


def largest_block(cfg: Config, dims: tuple[int, int]) -> tuple[int, int]:
    """Owned nodes ``(x, y)`` of the largest block (the first rank's): where memory per rank is decided."""
    (px, py), (nx, ny) = dims, (cfg.grid.nx, cfg.grid.ny)
    return split(nx, px, 0)[1], split(ny, py, 0)[1]


def init_global_grid(cfg: Config, comm: Any = SERIAL, halo: int | None = None) -> Decomposition:
    """Decompose the grid of ``cfg`` over ``comm`` and return this rank's view, with a
    halo of width ``halo`` (default: parallel.halo, 1 for auto; the run passes what it planned)."""
    nx, ny = cfg.grid.nx, cfg.grid.ny
    if halo is None:
        halo = cfg.parallel.halo if isinstance(cfg.parallel.halo, int) else 1
    boundary = {side: getattr(cfg.boundary, side) for side in SIDES}
    size = comm.Get_size()
    if size == 1:       # periodic wraps and mirrors are filled in place: no neighbours, no messages
        return Decomposition(nx, ny, (1, 1), (0, 0), (0, nx), (0, ny), halo, dict.fromkeys(SIDES), boundary, comm)
    px, py = process_dims(cfg, size)
    check_halo(cfg, (px, py), halo)
    # Cartesian dimensions are ordered (y, x) like the arrays, so x-neighbours are adjacent ranks; a periodic
    # axis wraps around, so its first and last ranks (or one rank with itself) exchange like any neighbours.
    MPI = mpi()
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
