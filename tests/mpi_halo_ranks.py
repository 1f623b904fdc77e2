"""Halo exchange of global node numbers, run under ``mpirun -n 4 python tests/mpi_halo_ranks.py CONFIG``.

For every process grid of up to the launched number of ranks ([2, 1], [1, 3], [2, 2], ...) and halo widths
1 to 3, each rank fills every owned node with its global node number (``gy * nx + gx``, not its rank id:
a row or column sent from the wrong place inside a block must show) and its halo with -1, exchanges, and
checks every stored node: owned nodes keep their number, halo nodes inside the global grid hold the number
of that very node (corner nodes only for halos wider than one, which is when the deep-halo steps need
them), halo nodes beyond the global boundary stay -1. A second exchange of the same object checks that it
can be reused.
Prints one line per case; exits 1 (from rank 0) when any node is wrong.
"""
from __future__ import annotations

import sys

import numpy as np
from mpi4py import MPI

from solver.core.config import load
from solver.core.grid import init_global_grid, split
from solver.parallel.halo import HaloExchange

EMPTY = -1.0


def expected_ids(decomp, offset: float) -> np.ndarray:
    """What every stored node of this rank must hold after the exchange."""
    (px, py), (mx, my), h = decomp.dims, decomp.coords, decomp.halo
    x_owner = np.full(decomp.nx, -1)
    for cx in range(px):
        x_owner[slice(*split(decomp.nx, px, cx))] = cx
    y_owner = np.full(decomp.ny, -1)
    for cy in range(py):
        y_owner[slice(*split(decomp.ny, py, cy))] = cy
    expected = np.full(decomp.local_shape, EMPTY)
    for j in range(decomp.local_shape[0]):
        gy = decomp.y_range[0] - h + j
        for i in range(decomp.local_shape[1]):
            gx = decomp.x_range[0] - h + i
            if not (0 <= gy < decomp.ny and 0 <= gx < decomp.nx):
                continue                                    # beyond the global boundary
            cx, cy = x_owner[gx], y_owner[gy]
            if h == 1 and cx != mx and cy != my:
                continue                                    # corner: not exchanged for halo 1
            expected[j, i] = gy * decomp.nx + gx + offset
    return expected


def node_numbers(decomp, offset: float) -> np.ndarray:
    """The global number of every owned node of this rank, plus offset."""
    gy = np.arange(*decomp.y_range)[:, np.newaxis]
    gx = np.arange(*decomp.x_range)[np.newaxis, :]
    return (gy * decomp.nx + gx + offset).astype(np.float64)


def check(decomp, exchange, offset: float) -> list[str]:
    u = np.full(decomp.local_shape, EMPTY)
    u[decomp.owned] = node_numbers(decomp, offset)
    exchange.update(u)
    want = expected_ids(decomp, offset)
    wrong = np.argwhere(u != want)
    return [f"rank {decomp.rank} {decomp.coords}: local node (j={j}, i={i}) holds {u[j, i]:g}, "
            f"expected {want[j, i]:g}" for j, i in wrong[:5]]


def main(config: str) -> int:
    world = MPI.COMM_WORLD
    failures = 0
    shapes = [(px, n // px) for n in range(2, world.Get_size() + 1) for px in range(1, n + 1) if n % px == 0]
    for px, py in shapes:
        for halo in (1, 2, 3):
            member = world.Get_rank() < px * py
            comm = world.Split(0 if member else MPI.UNDEFINED, world.Get_rank())
            problems = []
            if member:
                cfg = load(config, [f"parallel.ranks=[{px}, {py}]", f"parallel.halo={halo}"])
                decomp = init_global_grid(cfg, comm)
                exchange = HaloExchange(decomp)
                problems = check(decomp, exchange, 0.0) + check(decomp, exchange, 100.0)
                exchange.free()
                decomp.comm.Free()
                comm.Free()
            problems = [p for rank_problems in world.gather(problems) or [] for p in rank_problems]
            if world.Get_rank() == 0:
                print(f"process grid {px} x {py}, halo {halo}: "
                      f"{'ok' if not problems else f'{len(problems)}+ wrong nodes'}", flush=True)
                for p in problems:
                    print("  " + p, flush=True)
                failures += bool(problems)
    return int(failures > 0) if world.Get_rank() == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
