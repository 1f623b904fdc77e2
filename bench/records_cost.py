#!/usr/bin/env python
"""What records cost a kernel call: the same call with no records, with a ``want`` of zeros, with 10 probes,
with the series, and with both, every step, in interleaved rounds, as ratios to the call without.

    python bench/records_cost.py [--kernel tiled] [--model diffusion] [--ny 2050] [--nx 4098] [--rounds 9]

One process, the kernel called directly (solver/core/kernels.py ``get_advance``) on a block of one rank's
size at 4096^2 on two ranks, ``--steps`` steps a call (the tiled kernel's chunk), numba's default threads:
no MPI, no file, no start-up in the figures, so a few per cent show through a shared machine's noise
better than whole runs (``bench/output_options.sh``) do. Per-round ratios, since the machine's speed
drifts between rounds more than between the runs of one. Asserts nothing (docs/performance.md).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from solver import models                     # noqa: E402  (the checkout's solver, not an installed one)
from solver.core import kernels              # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernel", default="tiled", choices=("numba", "rows", "tiled"))
    parser.add_argument("--model", default="diffusion", help="a built-in model's name or a model file")
    parser.add_argument("--ny", type=int, default=2050, help="rows of the block, halo included")
    parser.add_argument("--nx", type=int, default=4098, help="columns of the block, halo included")
    parser.add_argument("--steps", type=int, default=31, help="steps per kernel call")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    model = models.load(args.model)
    ny, nx, steps = args.ny, args.nx, args.steps
    rng = np.random.default_rng(1)
    u = rng.random((len(model.fields), ny, nx))
    v = u.copy()
    own = (1, ny - 1, 1, nx - 1)
    physics = model.Physics()
    k = model.coefficients(physics, 1.0, 1.0, 0.5 * min(1.0, model.max_stable_dt(physics, 1.0, 1.0)))
    a = np.ascontiguousarray(models.coefficient_values(model, physics, np.linspace(0.0, 1.0, nx),
                                                       np.linspace(0.0, 1.0, ny), lambda *_, **__: rng.random((ny, nx))))
    values = models.time_values(model, physics, 0.5 * min(1.0, model.max_stable_dt(physics, 1.0, 1.0)), 0, steps)
    probes = [(own[0] + (own[1] - own[0]) * (p + 1) // 11, own[2] + (own[3] - own[2]) * (10 - p) // 11)
              for p in range(10)]

    def records(bits: int, nodes: list) -> tuple:
        stats = np.empty((steps, max(ny, nx) + 1, len(model.fields), 4))
        stats[...] = kernels.NEUTRAL
        return kernels.records_for(own, np.ones(own[3] - own[2]), np.ones(own[1] - own[0]),
                                   np.full(steps, bits), stats, np.empty((steps, len(nodes), len(model.fields))),
                                   nodes)

    cases = {"none": lambda: None, "want 0": lambda: records(0, []), "10 probes": lambda: records(2, probes),
             "series": lambda: records(1, []), "both": lambda: records(3, probes)}
    advance = kernels.get_advance(model, args.kernel)
    advance(u, v, a, steps, k, values, own, (0, 0, 0, 0), records(3, probes))        # compile
    times = {case: [] for case in cases}
    for _ in range(args.rounds):
        for case, make in cases.items():
            rec = make()
            start = time.perf_counter()
            advance(u, v, a, steps, k, values, own, (0, 0, 0, 0), rec)
            times[case].append((time.perf_counter() - start) / steps * 1e3)
    base = np.array(times["none"])
    print(f"{args.model}, {args.kernel} kernel, {ny} x {nx} nodes, {steps} steps a call, {args.rounds} rounds")
    for case, t in times.items():
        t = np.array(t)
        ratio = t / base
        print(f"  {case:10s} {np.median(t):7.2f} ms a step (median)   ratio to none: median {np.median(ratio):.3f}"
              f"  range {ratio.min():.3f}-{ratio.max():.3f}")


if __name__ == "__main__":
    main()
