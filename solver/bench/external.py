"""Devito and pystencils on the benchmark's problem: a yardstick from outside, in the same table.

Issue 7 asks for our kernels to be measured side by side against two stencil compilers that generate C with
OpenMP from a symbolic description: Devito and pystencils (``pip install -e '.[bench]'``). Each builds the
same problem as ``solver.core.kernels``: float64, an ny x nx array, the update in our kernels' form

    C' = (1 - 2 cx - 2 cy) C + cx (W + E) + cy (S + N)

(four additions, not six, so they get the same arithmetic advantage as ours) on the interior with the outer
ring fixed (Dirichlet), double buffered: Devito runs all steps in one call, pystencils one step per call of
its compiled kernel. Both compile with -ffast-math and may use fused multiply-adds, so their bits differ
from ours: before a figure is taken, the result on the timed grid is compared with ``advance_numpy`` to
1e-12, and a mismatch is an error.

OpenMP fixes its thread count when the library loads, so each (library, size, threads) measurement runs in
its own process with OMP_NUM_THREADS set; ``measure`` starts it and reads the figures it prints. The timing
is ``bench.time_kernel``'s: warm-up and compile excluded, calibrated step count, median of repeats.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

from .. import REPO
from ..core.kernels import advance_numpy, no_coefficients
from ..errors import ConfigError
from ..models import diffusion
from ..storage.provenance import installed_version
from .timing import peak_rss_mib, time_kernel

LIBRARIES = ("devito", "pystencils")
INSTALL = "pip install -e '.[bench]'"
RTOL = 1e-12


def available(name: str) -> bool:
    """Whether a library is installed, without importing it (Devito takes seconds to import)."""
    return importlib.util.find_spec(name) is not None


def check_installed(names) -> None:
    missing = [n for n in names if n in LIBRARIES and not available(n)]
    if missing:
        raise ConfigError(f"--kernels {','.join(missing)} needs the bench extra: {INSTALL}")


def centre_weight(cx: float, cy: float) -> float:
    """The diffusion model's centre weight (solver/models/diffusion.py), the same expression."""
    return 1.0 - 2.0 * cx - 2.0 * cy


def reference(u, v, steps, cx, cy, region):
    """The diffusion model's update through our numpy kernel, on 2D arrays."""
    new, old = advance_numpy(diffusion.update, u[np.newaxis], v[np.newaxis], no_coefficients(), steps,
                             (centre_weight(cx, cy), cx, cy), np.zeros((steps, 0)), region)
    return new[0], old[0]


def _whole_interior(u, region, shrink) -> None:
    if tuple(region) != (1, u.shape[0] - 1, 1, u.shape[1] - 1) or any(shrink):
        raise ValueError("the external kernels update the whole interior only")


def devito_kernel(ny: int, nx: int):
    """Devito: one Operator on an ny x nx float64 grid; one ``apply`` runs the whole time loop in C.

    Devito owns its two time levels: a call with other arrays copies them in, and the returned ``(new, old)``
    are views of Devito's buffers, so a caller that passes them back (as the benchmark does) copies nothing."""
    from devito import Constant, Eq, Grid, Operator, TimeFunction

    grid = Grid(shape=(ny, nx), dtype=np.float64)          # Devito's default is float32: not the same work
    c = TimeFunction(name="c", grid=grid, time_order=1, space_order=1)
    weight, cx, cy = (Constant(name=n, dtype=np.float64) for n in ("weight", "cx", "cy"))
    t, j, i = c.dimensions                                    # t: the time level modulo 2
    update = weight * c[t, j, i] + cx * (c[t, j, i - 1] + c[t, j, i + 1]) + cy * (c[t, j - 1, i] + c[t, j + 1, i])
    operator = Operator([Eq(c.forward, update, subdomain=grid.interior)])
    levels = (c.data[0], c.data[1])

    def advance(u, v, steps, cx_value, cy_value, region, shrink=(0, 0, 0, 0)):
        _whole_interior(u, region, shrink)
        if u is levels[0] and v is levels[1]:
            first = 0
        elif u is levels[1] and v is levels[0]:
            first = 1
        else:
            levels[0][:], levels[1][:], first = u, v, 0
        operator.apply(time_m=first, time_M=first + steps - 1, weight=centre_weight(cx_value, cy_value),
                       cx=cx_value, cy=cy_value)
        return levels[(first + steps) % 2], levels[(first + steps + 1) % 2]

    return advance


def pystencils_kernel(ny: int, nx: int):
    """pystencils 2.0: one step, compiled once (cached on disk) for the best vector instruction set of this CPU
    with OpenMP; a Python loop swaps the buffers (a few microseconds per call). The grid size is a run-time
    argument, so ny and nx are not needed."""
    import pystencils as ps
    import sympy

    src, dst = ps.fields("src, dst: float64[2D]")
    weight, cx, cy = sympy.symbols("weight cx cy")
    update = ps.Assignment(dst.center, weight * src.center + cx * (src[0, -1] + src[0, 1])
                                                          + cy * (src[-1, 0] + src[1, 0]))
    config = ps.CreateKernelConfig(target=ps.Target.auto_cpu())
    config.cpu.openmp.enable = True
    config.cpu.vectorize.enable = config.get_target().is_vector_cpu()
    config.cpu.vectorize.assume_inner_stride_one = True      # numpy rows; without it AVX2 cannot vectorise
    step = ps.create_kernel(update, config).compile()        # ghost layers from the stencil: the interior

    def advance(u, v, steps, cx_value, cy_value, region, shrink=(0, 0, 0, 0)):
        _whole_interior(u, region, shrink)
        weight_value = centre_weight(cx_value, cy_value)
        for _ in range(steps):
            step(src=u, dst=v, weight=weight_value, cx=cx_value, cy=cy_value)
            u, v = v, u
        return u, v

    return advance


BUILDERS = {"devito": devito_kernel, "pystencils": pystencils_kernel}


def verify(name: str, advance, ny: int, nx: int, cx: float = 0.21, cy: float = 0.17) -> None:
    """Raise unless ``advance`` matches ``advance_numpy`` to RTOL on a random ny x nx field, ring included.

    Two calls (2 then 3 steps, the second fed the first's buffers) cover both buffer parities; cx != cy on a
    grid with ny != nx would catch swapped axes."""
    region = (1, ny - 1, 1, nx - 1)
    u = np.random.default_rng(1).random((ny, nx))
    expected, _ = reference(u.copy(), u.copy(), 5, cx, cy, region)
    new, old = advance(u.copy(), u.copy(), 2, cx, cy, region)
    new, _ = advance(new, old, 3, cx, cy, region)
    error = float(np.max(np.abs(np.asarray(new) - expected)) / np.max(np.abs(expected)))
    if not error <= RTOL:
        raise RuntimeError(f"{name} differs from the reference kernel on a {nx} x {ny} grid after 5 steps: "
                           f"largest relative difference {error:.1e} > {RTOL:.0e}")


def measure(name: str, ny: int, nx: int, threads: int, seconds: float, repeats: int) -> dict:
    """Verify and time one library in a fresh process with ``threads`` OpenMP threads; its figures as a dict."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("DEVITO_LANGUAGE", "openmp")
    env.setdefault("DEVITO_LOGGING", "ERROR")
    command = [sys.executable, "-m", "solver.bench.external", name, str(ny), str(nx), repr(seconds), str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600 + 20 * seconds * repeats)
    if done.returncode != 0:
        raise RuntimeError(f"{name} at {nx} x {ny} with {threads} thread(s) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m solver.bench.external",
                                description="Verify and time Devito or pystencils on the benchmark's problem; "
                                "print the figures as one JSON line. Threads: OMP_NUM_THREADS.")
    p.add_argument("library", choices=LIBRARIES)
    p.add_argument("ny", type=int)
    p.add_argument("nx", type=int)
    p.add_argument("seconds", type=float, help="target time of one timed repeat")
    p.add_argument("repeats", type=int, help="timed repeats, median reported")
    args = p.parse_args(argv)
    advance = BUILDERS[args.library](args.ny, args.nx)
    verify(args.library, advance, args.ny, args.nx)
    result = time_kernel(lambda u, v, steps, region: advance(u, v, steps, 0.2, 0.2, region), (args.ny, args.nx),
                         args.seconds, args.repeats, 1)
    result.update(peak_rss_mib=round(peak_rss_mib(), 1),
                  library=f"{args.library} {installed_version(args.library)}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
