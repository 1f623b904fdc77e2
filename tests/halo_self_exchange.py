"""The halo exchange over a one-rank periodic Cartesian communicator, where every neighbour is the rank
itself: run by tests/test_halo.py in a process of its own (MPI starts here, not in pytest's). Prints one line
per case and ``ok`` at the end; any wrong halo raises."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_halo import SIDES, decomposition, numbered, wrapped  # noqa: E402

from solver.comm import mpi  # noqa: E402
from solver.parallel.halo import HaloExchange  # noqa: E402


def both_axes(cart, h, fields):
    """Every one of the eight directions (four with a halo of one: no corners needed) goes to the rank
    itself: each strip must come from the owned nodes on the far side, in the right direction."""
    u = numbered(fields, 5, 7, h)
    decomp = decomposition(5, 7, h, dict.fromkeys(SIDES, "periodic"), dict.fromkeys(SIDES, 0), cart)
    exchange = HaloExchange(decomp, fields)
    assert len(exchange.links) == (8 if h > 1 else 4)
    exchange.update(u)
    assert np.array_equal(u, wrapped(u, h, corners=h > 1), equal_nan=True)
    assert exchange.requests == []
    exchange.start(u)
    refused = False
    try:
        exchange.start(u)
    except AssertionError as err:
        refused = "finish" in str(err)
    assert refused, "a second start() before finish() was accepted"
    exchange.finish()
    types = [t for link in exchange.links for t in link[1:3]]
    exchange.free()
    assert exchange.links == [] and all(t == mpi().DATATYPE_NULL for t in types)   # freed, not leaked


def no_periodic_side():
    """Zero-flux and fixed sides on one rank: no neighbour, no message (the mirror is fill_boundaries')."""
    cart = mpi().COMM_SELF.Create_cart([1, 1], periods=[False, False], reorder=False)
    boundary = {"west": "zero_flux", "east": "zero_flux", "south": "fixed", "north": "flux"}
    exchange = HaloExchange(decomposition(4, 6, 2, boundary, comm=cart))
    assert exchange.links == []
    exchange.free()
    cart.Free()


def one_axis(axis):
    h = 2
    cart = mpi().COMM_SELF.Create_cart([1, 1], periods=[axis == "y", axis == "x"], reorder=False)
    u = numbered(1, 4, 6, h)
    wrap = ("west", "east") if axis == "x" else ("south", "north")
    boundary = {side: "periodic" if side in wrap else "fixed" for side in SIDES}
    decomp = decomposition(4, 6, h, boundary, {side: 0 if side in wrap else None for side in SIDES}, cart)
    exchange = HaloExchange(decomp)
    assert len(exchange.links) == 2
    exchange.update(u)
    expected = numbered(1, 4, 6, h)
    if axis == "x":
        expected[:, h:-h, :] = np.pad(expected[:, h:-h, h:-h], ((0, 0), (0, 0), (h, h)), mode="wrap")
    else:
        expected[:, :, h:-h] = np.pad(expected[:, h:-h, h:-h], ((0, 0), (h, h), (0, 0)), mode="wrap")
    assert np.array_equal(u, expected, equal_nan=True)
    exchange.free()
    cart.Free()


def main() -> None:
    cart = mpi().COMM_SELF.Create_cart([1, 1], periods=[True, True], reorder=False)
    for h in (1, 2, 3):
        for fields in (1, 2):
            both_axes(cart, h, fields)
            print(f"both axes periodic, halo {h}, {fields} field(s)")
    cart.Free()
    no_periodic_side()
    print("no periodic side")
    for axis in ("x", "y"):
        one_axis(axis)
        print(f"{axis} periodic alone")
    print("ok")


if __name__ == "__main__":
    main()
