#!/usr/bin/env python
"""Where the tiled kernel's time goes: the steps that touch memory against the steps inside the scratch tiles.

    python bench/tiled_phases.py [--sizes 1024,4096] [--threads 1,all] [--rounds 3]

Each chunk of the tiled kernel (solver/stencil.py, ``_tile``) reads its tile from the grid in its first step,
runs the middle steps in two private scratch tiles, and writes the tile's core back in its last step. This
script compiles two variants of the kernel for the diffusion model, one without the first and last steps
(``middle``) and one without the middle steps (``memory``), and times them beside the real kernel on square
grids (median of interleaved rounds). It also times the benchmark's in-cache ceiling (the plain kernel on
the smaller grid ``python -m solver bench`` uses for that thread count) at every thread count, and prints
how each scales from one thread to all: a kernel whose threaded schedule cost time would scale worse than
the ceiling.
Hold the machine's lock while it runs; it prints figures and asserts nothing.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from solver import bench, kernels, models  # noqa: E402

FIRST = "    _rows(p, ej0 + 1, ej1 - 1, ei0 + 1, b, 1, 1, ei1 - ei0 - 2, k)\n"
LAST = "    _rows(a, cj0 - ej0, cj1 - ej0, ci0 - ei0, q, cj0, ci0, ci1 - ci0, k)\n"
MIDDLE = "    for t in range(1, steps - 1):\n"
VARIANTS = {"kernel": [], "middle": [(FIRST, "    pass\n"), (LAST, "    pass\n")],
            "memory": [(MIDDLE, "    for t in range(1, 1):\n")]}


def compile_variant(model, name: str, edits, directory: str):
    """The stencil template with ``edits`` applied, bound to ``model``, imported as a module."""
    with open(kernels.STENCIL, encoding="utf-8") as stream:
        text = stream.read()
    for old, new in edits:
        if old not in text:
            raise SystemExit(f"error: solver/stencil.py changed: '{old.strip()}' not found; update {__file__}")
        text = text.replace(old, new)
    path = os.path.join(directory, f"phases_{name}.py")
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text + kernels.binding(model))
    spec = importlib.util.spec_from_file_location(f"phases_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def seconds_per_chunk(module, n: int, k, threads: int, seconds: float = 0.5) -> float:
    """Wall seconds of one chunk of ``module``'s tiled kernel on an n x n grid. Timed here, not by
    bench.time_kernel: the variants skip steps and leave garbage (even non-finite values) in the grid, which
    time_kernel rightly refuses."""
    u = np.random.default_rng(0).random((1, n, n))
    v = u.copy()
    region, depth = (1, n - 1, 1, n - 1), kernels.DEPTH

    def run(steps):
        start = time.perf_counter()
        module._advance_tiled(u, v, steps, k, region, (0, 0, 0, 0), kernels.TILE_Y, kernels.TILE_X, depth, threads)
        return time.perf_counter() - start

    run(depth)
    chunks = max(1, int(seconds / run(2 * depth) * 2))
    return run(chunks * depth) / chunks


def ceiling_rate(module, k, threads: int) -> float:
    """The benchmark's in-cache ceiling for ``threads`` threads: the plain kernel on its smaller grid."""
    def advance(u, v, steps, region):
        return module._advance_numba(u, v, steps, k, region, (0, 0, 0, 0))
    return bench.time_kernel(advance, (1, *bench.in_cache_grids(1, threads)[0]), 0.5, 1, 1)["mlups"]


def main() -> int:
    import numba
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1024,4096", help="square grid sides, comma-separated")
    parser.add_argument("--threads", default="1,all", help="thread counts, comma-separated; all = every thread")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, median reported")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    threads = bench.parse_threads(args.threads, numba.config.NUMBA_NUM_THREADS)
    model = models.load("diffusion")
    k = kernels._floats(bench.unit_coefficients(model))
    with tempfile.TemporaryDirectory() as directory:
        compiled = {name: compile_variant(model, name, edits, directory) for name, edits in VARIANTS.items()}
        times = {}
        for _ in range(args.rounds):
            for t in threads:
                numba.set_num_threads(t)
                times.setdefault(("ceiling", t), []).append(ceiling_rate(compiled["kernel"], k, t))
                for n in sizes:
                    for name, module in compiled.items():
                        times.setdefault((name, t, n), []).append(seconds_per_chunk(module, n, k, t))
    median = {key: float(np.median(values)) for key, values in times.items()}
    print(f"tiles {kernels.TILE_Y} x {kernels.TILE_X}, {kernels.DEPTH} steps per chunk; median of {args.rounds} "
          f"rounds; ms per chunk")
    print(f"{'grid':>6} {'thr':>3} {'kernel':>8} {'middle':>8} {'memory':>8} {'memory %':>9} {'MLUPS':>7} "
          f"{'% ceiling':>9}")
    for t in threads:
        for n in sizes:
            full, middle, memory = (median[(name, t, n)] for name in ("kernel", "middle", "memory"))
            mlups = n * n * kernels.DEPTH / full / 1e6
            print(f"{n:>6} {t:>3} {full * 1e3:>8.2f} {middle * 1e3:>8.2f} {memory * 1e3:>8.2f} "
                  f"{100 * memory / full:>8.0f}% {mlups:>7.0f} {100 * mlups / median[('ceiling', t)]:>8.0f}%")
    for t in threads:
        print(f"in-cache ceiling, {t} thread(s): {median[('ceiling', t)]:.0f} MLUPS")
    if len(threads) > 1:
        lo, hi = threads[0], threads[-1]
        print(f"from {lo} to {hi} threads: in-cache ceiling x{median[('ceiling', hi)] / median[('ceiling', lo)]:.2f}, "
              + ", ".join(f"tiled {n}^2 x{median[('kernel', lo, n)] / median[('kernel', hi, n)]:.2f}"
                          for n in sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
