"""Several runs of one config in one MPI launch, so the tests compare many cases without paying for many
``mpirun`` start-ups: ``mpirun -n N python tests/mpi_cases.py CONFIG OUTDIR CASE...``.

A CASE is ``PXxPY-hHALO-tTHREADS`` (for example ``2x1-h3-t2``); its output is ``OUTDIR/CASE.h5``. Each case
goes through the same function as ``python -m solver run`` (``cli.run_guarded``), so a failing rank aborts the
whole job just as it would there.
"""
from __future__ import annotations

import os
import re
import sys

from mpi4py import MPI

from solver.cli import run_guarded
from solver.core.config import load

CASE = re.compile(r"(\d+)x(\d+)-h(\d+)-t(\d+)$")


def overrides(case: str) -> list[str]:
    match = CASE.match(case)
    if match is None:
        raise SystemExit(f"bad case {case!r}: expected PXxPY-hHALO-tTHREADS, for example 2x1-h3-t2")
    px, py, halo, threads = match.groups()
    return [f"parallel.ranks=[{px}, {py}]", f"parallel.halo={halo}", f"parallel.threads={threads}"]


def main(config: str, outdir: str, cases: list[str]) -> int:
    comm = MPI.COMM_WORLD
    for case in cases:
        cfg = load(config, overrides(case))
        code = run_guarded(cfg, os.path.join(outdir, case + ".h5"), comm)
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
