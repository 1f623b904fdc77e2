"""solver/core/grid.py without MPI: who owns which nodes, who the neighbours are, where a step may write.

The Cartesian communicator is a stand-in here (FakeComm: MPI's row-major rank order of a ``[py, px]`` grid,
PROC_NULL at the edges, wrap-around on a periodic axis), so every rank of a decomposition is looked at in
one process, in milliseconds; tests/test_mpi.py checks the same against real ranks.
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from solver.core import config as config_module
from solver.core import grid
from solver.core.grid import (Decomposition, check_halo, init_global_grid, largest_block, process_dims,
                              process_grid, split)
from solver.errors import ConfigError

PROC_NULL = -3


class FakeCart:
    """A Cartesian communicator over dims ``[py, px]`` as MPI orders it: rank = cy * px + cx."""

    def __init__(self, dims, periods, rank):
        self.dims, self.periods, self.rank = list(dims), list(periods), rank

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.dims[0] * self.dims[1]

    def Get_coords(self, rank):
        return list(divmod(rank, self.dims[1]))

    def Shift(self, direction, disp):
        coords = self.Get_coords(self.rank)

        def at(offset):
            c = list(coords)
            c[direction] += offset
            if self.periods[direction]:
                c[direction] %= self.dims[direction]
            elif not 0 <= c[direction] < self.dims[direction]:
                return PROC_NULL
            return c[0] * self.dims[1] + c[1]
        return at(-disp), at(disp)


class FakeComm:
    def __init__(self, size, rank):
        self.size, self.rank = size, rank

    def Get_size(self):
        return self.size

    def Get_rank(self):
        return self.rank

    def Create_cart(self, dims, periods, reorder):
        assert reorder is False            # the ranks keep their numbers: output blocks are placed by them
        return FakeCart(dims, periods, self.rank)


@pytest.fixture(autouse=True)
def no_mpi(monkeypatch):
    monkeypatch.setattr(grid, "mpi", lambda: SimpleNamespace(PROC_NULL=PROC_NULL))


def make(nx=23, ny=17, halo=1, ranks="auto", **boundary):
    data = {"grid": {"nx": nx, "ny": ny}, "parallel": {"halo": halo, "ranks": ranks}}
    if boundary:
        data["boundary"] = boundary
    return config_module.from_dict(data, "test.yaml")


def every_rank(cfg, size, halo=None):
    return [init_global_grid(cfg, FakeComm(size, rank), halo) for rank in range(size)]


# --- split and the process grid ---------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 7, 10, 61])
@pytest.mark.parametrize("parts", [1, 2, 3, 4, 7])
def test_split_covers_every_item_once_in_parts_differing_by_at_most_one(n, parts):
    if parts > n:
        return
    spans = [split(n, parts, i) for i in range(parts)]
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    sizes = [stop - start for start, stop in spans]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert sizes == sorted(sizes, reverse=True)          # the larger parts first


def test_split_exact_values():
    assert [split(10, 3, i) for i in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [split(61, 4, i) for i in range(4)] == [(0, 16), (16, 31), (31, 46), (46, 61)]
    assert split(5, 1, 0) == (0, 5)


@pytest.mark.parametrize("size, nx, ny, expected", [
    (1, 100, 100, (1, 1)),
    (4, 100, 100, (2, 2)),
    (2, 1000, 10, (2, 1)),         # cut the long axis
    (2, 10, 1000, (1, 2)),
    (6, 300, 100, (3, 2)),
    (12, 400, 100, (6, 2)),
    (7, 100, 100, (1, 7)),         # a tie (7 x 1 or 1 x 7): the first found, px = 1
    (9, 90, 10, (9, 1)),
    (2, 10, 9, (2, 1)),            # better by half a node: any improvement counts
])
def test_process_grid_minimises_the_halo_surface(size, nx, ny, expected):
    dims = process_grid(size, nx, ny)
    assert dims == expected and all(type(n) is int for n in dims)     # MPI's Create_cart takes ints


def test_process_dims_auto_and_fixed():
    assert process_dims(make(nx=1000, ny=10), 2) == (2, 1)
    assert process_dims(make(ranks=[1, 3]), 3) == (1, 3)
    with pytest.raises(ConfigError, match=r"parallel.ranks = \[1, 3\] needs 3 ranks, but 2 were started; "
                                          r"launch 3 or set parallel.ranks: auto"):
        process_dims(make(ranks=[1, 3]), 2)
    with pytest.raises(ConfigError, match=r"needs 1 ranks, but 2 were started"):
        process_dims(make(ranks=[1, 1]), 2)             # fewer than launched is refused too


def test_check_halo_accepts_the_smallest_block_and_refuses_wider():
    cfg = make(nx=23, ny=17)
    check_halo(cfg, (2, 2), 8)           # smallest block: min(23 // 2, 17 // 2) = 8
    with pytest.raises(ConfigError, match=r"parallel.halo = 9 is wider than the smallest block \(8 nodes on 4 "
                                          r"rank\(s\)\); use parallel.halo <= 8"):
        check_halo(cfg, (2, 2), 9)
    with pytest.raises(ConfigError, match=r"use parallel.halo <= 1$"):
        check_halo(make(nx=5, ny=5), (5, 5), 2)          # smallest 1
    with pytest.raises(ConfigError, match=r"smallest block \(5 nodes on 3 rank\(s\)\)"):
        check_halo(cfg, (1, 3), 9)                       # the rank count is px times py
    with pytest.raises(ConfigError, match=r"a 6 x 1 process grid leaves ranks without nodes on a grid of 5 x 5 "
                                          r"nodes; use at most 5 ranks along x and 5 along y"):
        check_halo(make(nx=5, ny=5), (6, 1), 1)
    with pytest.raises(ConfigError, match=r"a 1 x 6 process grid leaves ranks without nodes"):
        check_halo(make(nx=5, ny=5), (1, 6), 1)
    check_halo(make(nx=5, ny=5), (5, 5), 1)              # one node each: as many ranks as nodes
    narrow = make(nx=9, ny=40)                           # x decides: 9 // 2 = 4 nodes
    check_halo(narrow, (2, 2), 4)
    with pytest.raises(ConfigError, match=r"\(4 nodes on 4 rank\(s\)\); use parallel.halo <= 4$"):
        check_halo(narrow, (2, 2), 5)


def test_largest_block_is_the_first_ranks():
    cfg = make(nx=23, ny=17)
    assert largest_block(cfg, (2, 3)) == (12, 6)
    assert largest_block(cfg, (1, 1)) == (23, 17)


# --- one rank ---------------------------------------------------------------------------------------
def test_one_rank_owns_the_whole_grid_with_no_neighbours():
    cfg = make(nx=23, ny=17, halo=2, west="periodic", east="periodic")
    d = init_global_grid(cfg)
    assert (d.dims, d.coords, d.x_range, d.y_range, d.halo) == ((1, 1), (0, 0), (0, 23), (0, 17), 2)
    assert d.neighbours == dict.fromkeys(("west", "east", "south", "north"))
    assert (d.rank, d.size, d.nx_own, d.ny_own) == (0, 1, 23, 17)
    assert d.local_shape == (21, 27)
    assert d.owned == (slice(2, 19), slice(2, 25))
    assert d.boundary == {"west": "periodic", "east": "periodic", "south": "fixed", "north": "fixed"}
    assert not d.has("west") and d.open("west") and d.open("east") and not d.open("south")
    assert d.needs_halo and d.shrink == (0, 0, 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.halo = 3                                        # one rank's view is fixed for the run


def test_the_default_halo_is_parallel_halo_or_one():
    assert init_global_grid(make(halo=3)).halo == 3
    assert init_global_grid(make(halo="auto")).halo == 1
    assert init_global_grid(make(halo=3), halo=5).halo == 5


def test_fixed_everywhere_needs_no_halo_and_updates_the_interior_only():
    d = init_global_grid(make(nx=10, ny=8, halo=2), halo=2)
    assert not d.needs_halo and d.shrink == (0, 0, 0, 0)
    assert d.update_region() == (3, 9, 3, 11)           # local indices of global nodes 1 .. n-2
    assert d.update_region(extra=2) == (3, 9, 3, 11)    # no open side to widen


def test_open_sides_widen_the_update_region_fixed_ones_never():
    d = init_global_grid(make(nx=10, ny=8, halo=2, west="zero_flux", north="zero_flux"), halo=2)
    assert d.update_region() == (3, 10, 2, 11)          # the zero-flux boundary nodes are updated
    assert d.update_region(extra=1) == (3, 11, 1, 11)
    assert d.shrink == (0, 1, 1, 0)
    d = init_global_grid(make(nx=10, ny=8, halo=2, south="periodic", north="periodic"), halo=2)
    assert d.update_region(extra=2) == (0, 12, 3, 11)


# --- several ranks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size, dims", [(2, (2, 1)), (3, (3, 1)), (4, (2, 2)), (6, (3, 2))])
def test_blocks_tile_the_grid_and_neighbours_are_the_adjacent_blocks(size, dims):
    cfg = make(nx=23, ny=17, ranks=list(dims))
    blocks = every_rank(cfg, size)
    px, py = dims
    owner = {}
    for d in blocks:
        assert d.dims == dims and d.size == size and d.comm.Get_rank() == d.rank
        cx, cy = d.coords
        assert d.rank == cy * px + cx
        assert d.x_range == split(23, px, cx) and d.y_range == split(17, py, cy)
        assert d.local_shape == (d.ny_own + 2, d.nx_own + 2)
        for j in range(*d.y_range):
            for i in range(*d.x_range):
                assert (j, i) not in owner
                owner[j, i] = d.rank
    assert len(owner) == 23 * 17
    for d in blocks:
        (x0, x1), (y0, y1) = d.x_range, d.y_range
        expected = {"west": owner.get((y0, x0 - 1)) if x0 > 0 else None,
                    "east": owner.get((y0, x1)) if x1 < 23 else None,
                    "south": owner.get((y0 - 1, x0)) if y0 > 0 else None,
                    "north": owner.get((y1, x0)) if y1 < 17 else None}
        assert d.neighbours == expected, (d.rank, d.neighbours, expected)


def test_a_periodic_axis_makes_the_end_ranks_neighbours():
    cfg = make(nx=23, ny=17, ranks=[3, 1], west="periodic", east="periodic")
    blocks = every_rank(cfg, 3)
    assert [d.neighbours["west"] for d in blocks] == [2, 0, 1]
    assert [d.neighbours["east"] for d in blocks] == [1, 2, 0]
    assert all(d.neighbours["south"] is None and d.neighbours["north"] is None for d in blocks)
    assert all(d.has("west") and d.has("east") and d.needs_halo for d in blocks)


def test_update_regions_of_the_ranks_stop_at_the_fixed_boundary_only():
    cfg = make(nx=23, ny=17, halo=2, ranks=[2, 1])
    west, east = every_rank(cfg, 2, halo=2)
    assert west.x_range == (0, 12) and east.x_range == (12, 23)
    assert west.update_region() == (3, 18, 3, 14)       # up to its east edge: the neighbour's side is open
    assert east.update_region() == (3, 18, 2, 12)       # from its west edge; not the global last column
    assert west.update_region(extra=2) == (3, 18, 3, 16)
    assert east.update_region(extra=2) == (3, 18, 0, 12)
    assert west.shrink == (0, 0, 0, 1) and east.shrink == (0, 0, 1, 0)
    assert west.needs_halo and east.needs_halo
    assert (east.nx_own, east.ny_own, east.local_shape) == (11, 17, (21, 15))
    assert east.owned == (slice(2, 19), slice(2, 13))


def test_a_middle_rank_is_open_on_both_sides():
    cfg = make(nx=23, ny=20, halo=2, ranks=[3, 2])
    blocks = every_rank(cfg, 6, halo=2)
    middle = blocks[4]                                    # cx = 1, cy = 1: x [8, 16), y [10, 20)
    assert (middle.x_range, middle.y_range) == ((8, 16), (10, 20))
    assert (middle.nx_own, middle.ny_own, middle.local_shape) == (8, 10, (14, 12))
    assert middle.update_region() == (2, 11, 2, 10)       # north is the global boundary: row 19 stays
    assert middle.update_region(extra=1) == (1, 11, 1, 11)
    assert middle.shrink == (1, 0, 1, 1)


def test_a_rank_whose_block_is_only_fixed_boundary_updates_nothing():
    d = Decomposition(nx=5, ny=5, dims=(1, 1), coords=(0, 0), x_range=(0, 2), y_range=(0, 5), halo=1,
                      neighbours=dict.fromkeys(("west", "east", "south", "north")),
                      boundary=dict.fromkeys(("west", "east", "south", "north"), "fixed"))
    j0, j1, i0, i1 = d.update_region()
    assert (i0, i1) == (2, 3) and j1 >= j0                # global node 1 only; never an inverted span
    d = Decomposition(nx=5, ny=5, dims=(1, 1), coords=(0, 0), x_range=(0, 1), y_range=(0, 5), halo=1,
                      neighbours=dict.fromkeys(("west", "east", "south", "north")),
                      boundary=dict.fromkeys(("west", "east", "south", "north"), "fixed"))
    j0, j1, i0, i1 = d.update_region()
    assert i1 == i0 == 2                                  # empty, not negative
