#!/usr/bin/env python
"""Machine code of the kernels' inner loops, and their cycles per iteration by LLVM's static model.

    python bench/hot_loops.py [--tree PATH] MODEL [MODEL ...]

Compiles the plain (``numba``) and ``tiled`` kernels of each model (built-in names or model files) in fresh
caches, takes from each the longest basic block that multiplies vectors (the vectorised loop over a row's
nodes: ``_row_pair`` for the plain kernel, ``_strip`` for the tiled one) and prints its instruction count and
``llvm-mca``'s cycles per iteration for this machine's core, and a digest of its text (equal digests: the
same instructions on the same registers). Two source trees give the same figures exactly when their inner
loops are the same: a comparison free of the noise of a shared machine, which wall-clock
benchmarks of a few per cent cannot be (docs/performance.md). ``--tree`` imports ``solver`` from another
checkout, e.g. ``git worktree add /tmp/old <commit>``. Needs ``llvm-mca`` (Debian: llvm). Asserts nothing.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

FUNCTIONS = {"numba": "_row_pair", "tiled": "_strip"}
OLDER_NAMES = {"emeraldrapids": "sapphirerapids", "graniterapids": "sapphirerapids", "znver5": "znver4"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="MODEL")
    parser.add_argument("--tree", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        help="checkout whose solver package is compiled (default: this one)")
    parser.add_argument("--mcpu", help="the core llvm-mca models (default: this machine's, or the nearest "
                                       "older one an older llvm-mca knows)")
    args = parser.parse_args()
    if shutil.which("llvm-mca") is None:
        sys.exit("hot_loops: llvm-mca not found; install LLVM's tools (Debian: apt-get install llvm)")
    scratch = tempfile.mkdtemp(prefix="hot-loops-")
    # fresh caches: a kernel loaded from numba's cache leaves the functions it calls uncompiled
    os.environ.update(SOLVER_KERNEL_DIR=os.path.join(scratch, "kernels"), NUMBA_CACHE_DIR=os.path.join(scratch, "nc"))
    sys.path.insert(0, os.path.abspath(args.tree))
    import llvmlite.binding as llvm
    from solver import models
    try:
        from solver.core import kernels
    except ImportError:                   # a tree from before solver/core
        from solver import kernels
    cpu = args.mcpu or _known(llvm.get_host_cpu_name())
    print(f"{os.path.abspath(args.tree)}: inner loops on {cpu} (llvm-mca, 200 iterations)")
    try:
        for spec in args.models:
            model = models.load(os.path.abspath(spec) if spec.endswith(".py") else spec)
            module = kernels.compile_for(model)
            for kernel, function in FUNCTIONS.items():
                kernels.warm_up(model, kernel)
                dispatcher = getattr(module, function)
                loop = _inner_loop(dispatcher.inspect_asm(dispatcher.signatures[0]))
                digest = hashlib.sha256("\n".join(loop).encode()).hexdigest()[:10]
                print(f"  {model.name:14s} {kernel:6s} {function:10s} {len(loop):4d} instructions  "
                      f"{_cycles(loop, cpu):6.2f} cycles per iteration  text {digest}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _inner_loop(asm: str) -> list[str]:
    """The longest basic block with a vector multiply: the vectorised loop over a row's nodes. A block ends
    at a label or after a jump."""
    blocks, current = [], []
    for line in asm.splitlines():
        if re.match(r"^[\w.$]+:", line):
            blocks.append(current)
            current = []
        elif line.startswith("\t") and not line.strip().startswith("."):
            current.append(line.strip())
            if line.strip().startswith("j"):
                blocks.append(current)
                current = []
    blocks.append(current)
    return max((b for b in blocks if any(i.startswith("vmulpd") for i in b)), key=len)


def _known(cpu: str) -> str:
    """``cpu``, or the older core it extends when this llvm-mca does not know it."""
    probe = subprocess.run(["llvm-mca", f"-mcpu={cpu}"], input="nop\n", capture_output=True, text=True)
    if probe.returncode == 0 or cpu not in OLDER_NAMES:
        return cpu
    return OLDER_NAMES[cpu]


def _cycles(loop: list[str], cpu: str) -> float:
    body = "\n".join(i for i in loop if not i.startswith("j")) + "\n"      # the branch back: one iteration
    out = subprocess.run(["llvm-mca", f"-mcpu={cpu}", "-iterations=200"], input=body, capture_output=True,
                         text=True, check=True).stdout
    return int(re.search(r"Total Cycles:\s+(\d+)", out).group(1)) / 200


if __name__ == "__main__":
    main()
