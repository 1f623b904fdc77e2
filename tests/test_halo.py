"""solver/parallel/halo.py in one process: the boundary fill (wrap, mirror, flux offset) and the MPI exchange
over a one-rank periodic Cartesian communicator, where every neighbour is the rank itself.

The exchange runs in a subprocess (tests/halo_self_exchange.py). Every node holds its own global number (plus a field offset), so a row or column taken from the wrong place,
or a strip sent in the wrong direction, shows as a wrong number; tests/test_mpi.py checks the same between
real ranks.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from conftest import PYTHON, REPO, solver_env
from solver.core.grid import Decomposition
from solver.parallel.halo import HaloExchange, fill_boundaries

SIDES = ("west", "east", "south", "north")


def numbered(fields: int, ny: int, nx: int, h: int) -> np.ndarray:
    """(fields, ny + 2h, nx + 2h): owned node (j, i) of field f holds 1000 f + 100 j + i; the halo NaN."""
    u = np.full((fields, ny + 2 * h, nx + 2 * h), np.nan)
    f, j, i = np.meshgrid(np.arange(fields), np.arange(ny), np.arange(nx), indexing="ij")
    u[:, h:h + ny, h:h + nx] = 1000 * f + 100 * j + i
    return u


def decomposition(ny: int, nx: int, h: int, boundary: dict, neighbours: dict | None = None, comm=None):
    extra = {} if comm is None else {"comm": comm}
    return Decomposition(nx, ny, (1, 1), (0, 0), (0, nx), (0, ny), h, neighbours or dict.fromkeys(SIDES),
                         dict(boundary), **extra)


def wrapped(u: np.ndarray, h: int, corners: bool = True) -> np.ndarray:
    """What a periodic fill must give: np.pad's wrap of the owned block (corners NaN unless corners)."""
    owned = u[:, h:-h, h:-h]
    expected = np.pad(owned, ((0, 0), (h, h), (h, h)), mode="wrap")
    if not corners:
        for rows in (slice(0, h), slice(-h, None)):
            for cols in (slice(0, h), slice(-h, None)):
                expected[:, rows, cols] = np.nan
    return expected


# --- fill_boundaries --------------------------------------------------------------------------------
@pytest.mark.parametrize("h", [1, 2, 3])
def test_periodic_axes_on_one_process_wrap_around(h):
    u = numbered(2, 5, 7, h)
    fill_boundaries(u, decomposition(5, 7, h, dict.fromkeys(SIDES, "periodic")))
    assert np.array_equal(u, wrapped(u, h))


def test_one_periodic_axis_wraps_only_that_axis():
    h = 2
    u = numbered(1, 5, 7, h)
    fill_boundaries(u, decomposition(5, 7, h, {"west": "periodic", "east": "periodic", "south": "fixed",
                                               "north": "fixed"}))
    expected = numbered(1, 5, 7, h)
    expected[:, h:-h, :] = np.pad(expected[:, h:-h, h:-h], ((0, 0), (0, 0), (h, h)), mode="wrap")
    assert np.array_equal(u, expected, equal_nan=True)


@pytest.mark.parametrize("h", [1, 2, 3])
def test_zero_flux_sides_mirror_about_the_boundary_node(h):
    u = numbered(2, 6, 8, h)
    fill_boundaries(u, decomposition(6, 8, h, dict.fromkeys(SIDES, "zero_flux")))
    owned = u[:, h:-h, h:-h]
    assert np.array_equal(u, np.pad(owned, ((0, 0), (h, h), (h, h)), mode="reflect"))   # corners too


def test_mirrored_layers_stop_at_the_block_width():
    """A block of 2 nodes and a halo of 3: one mirrored layer (ghost h - m is node h + m only for m <= n - 1);
    a second would copy the halo beyond the block, here the fixed east side's (99)."""
    h = 3
    u = numbered(1, 2, 2, h)
    u[:, :, :h] = -7.0
    u[:, :, -h:] = 99.0
    fill_boundaries(u, decomposition(2, 2, h, {"west": "zero_flux", "east": "fixed", "south": "fixed",
                                               "north": "fixed"}))
    row = u[0, h]
    assert list(row) == [-7, -7, 1, 0, 1, 99, 99, 99]
    u = numbered(1, 2, 2, h)                                    # the same on the east side
    u[:, :, :h] = -7.0
    u[:, :, -h:] = 99.0
    fill_boundaries(u, decomposition(2, 2, h, {"west": "fixed", "east": "zero_flux", "south": "fixed",
                                               "north": "fixed"}))
    assert list(u[0, h]) == [-7, -7, -7, 0, 1, 0, 99, 99]


def test_only_the_sides_a_rank_has_no_neighbour_on_are_filled():
    h = 2
    u = numbered(1, 5, 6, h)
    neighbours = {"west": 1, "east": None, "south": 2, "north": None}
    fill_boundaries(u, decomposition(5, 6, h, dict.fromkeys(SIDES, "zero_flux"), neighbours))
    assert np.isnan(u[0, h:-h, :h]).all() and np.isnan(u[0, :h, h:-h]).all()      # west, south: a neighbour's
    assert np.array_equal(u[0, h:-h, -h:], u[0, h:-h][:, [-h - 2, -h - 3]])          # east mirrored
    assert np.array_equal(u[0, -h:, h:-h], u[0, [-h - 2, -h - 3], h:-h])           # north mirrored


def test_flux_sides_add_twice_the_layer_times_the_offset():
    """Ghost m layers out = mirror + 2 m (h g), per field and per node along the side."""
    h, ny, nx = 2, 4, 5
    u = numbered(2, ny, nx, h)
    west = np.array([np.arange(ny + 2 * h) * 0.5, np.arange(ny + 2 * h) * -1.0])     # (fields, L)
    north = np.array([np.full(nx + 2 * h, 3.0), np.arange(nx + 2 * h) * 0.25])
    boundary = {"west": "flux", "east": "zero_flux", "south": "fixed", "north": "flux"}
    fill_boundaries(u, decomposition(ny, nx, h, boundary), {"west": west, "north": north})
    for m in (1, 2):
        mirror = u[:, h:-h, h + m]
        assert np.array_equal(u[:, h:-h, h - m], mirror + 2 * m * west[:, h:-h]), m
        top = h + ny - 1
        assert np.allclose(u[:, top + m, :], u[:, top - m, :] + 2 * m * north), m
    assert np.array_equal(u[:, h:-h, -h:], u[:, h:-h][:, :, [-h - 2, -h - 3]])      # east: no offset


# --- HaloExchange -----------------------------------------------------------------------------------
def test_strips_sent_and_filled_along_one_axis():
    """(start, size) of the owned nodes sent towards a direction and of the halo nodes filled from it."""
    strip = HaloExchange._strip
    n, h = 7, 2
    assert strip(0, n, h, inner=True) == strip(0, n, h, inner=False) == (2, 7)
    assert strip(-1, n, h, inner=True) == (2, 2) and strip(-1, n, h, inner=False) == (0, 2)
    assert strip(1, n, h, inner=True) == (7, 2) and strip(1, n, h, inner=False) == (9, 2)



def test_exchange_with_itself_across_periodic_axes():
    """The exchange over a one-rank periodic Cartesian communicator (tests/halo_self_exchange.py), in a process
    of its own: MPI started in pytest's would leave its PMIx variables in the environment that every later
    subprocess without an explicit env (the local SLURM cluster's daemons, say) inherits."""
    result = subprocess.run([PYTHON, str(REPO / "tests" / "halo_self_exchange.py")], env=solver_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.splitlines()[-1:] == ["ok"], result.stdout + result.stderr
