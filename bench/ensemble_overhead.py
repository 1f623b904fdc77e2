#!/usr/bin/env python
"""Fixed cost of one ensemble member process against the interpreter with its libraries imported.

    python bench/ensemble_overhead.py [--rounds 7] [--config configs/ensemble.yaml]

Runs, interleaved so machine noise hits all alike: ``python -c pass``, ``python -c "import numpy, h5py"``,
``python -c "import numba, numpy"`` and one member (``python solver/ensemble.py --force 1``) of the config on a
tiny grid (33 x 17, 20 steps), with the numba kernel (from numba's cache) and with the numpy kernel (which
imports no numba). Prints median wall times and each one's ratio to ``import numpy, h5py`` (the least a member
that writes HDF5 needs) and to ``import numba, numpy``. Hold the machine's lock while it runs; it prints figures and asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wall(command: list[str], env: dict) -> float:
    """Wall seconds of one process. No timeout: with one, subprocess waits for the child by polling with
    sleeps of up to 50 ms, which rounded every figure up to the next step of about 50 ms."""
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--config", default="configs/ensemble.yaml")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=REPO)
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        # numpy's and h5py's modules were compiled to bytecode when installed; without a cache of its own
        # every member would compile the solver's modules again (about 30 ms), which is this variable's
        # cost, not the member's
        print("PYTHONDONTWRITEBYTECODE is set here: unset for these processes (Python's default)")
    with open(os.path.join(REPO, args.config)) as stream:
        base = yaml.safe_load(stream)
    with tempfile.TemporaryDirectory() as tmp:
        commands = {"python -c pass": [sys.executable, "-c", "pass"],
                    "import numpy, h5py": [sys.executable, "-c", "import numpy, h5py"],
                    "import numba, numpy": [sys.executable, "-c", "import numba, numpy"]}
        for kernel in ("numba", "numpy"):
            data = yaml.safe_load(yaml.safe_dump(base))
            data["grid"].update(nx=33, ny=17)
            data["time"].update(dt=0.01, t_end=0.2)
            data["numerics"] = {"kernel": kernel}
            data["ensemble"]["output_dir"] = os.path.join(tmp, kernel)
            path = os.path.join(tmp, f"{kernel}.yaml")
            with open(path, "w") as stream:
                yaml.safe_dump(data, stream)
            commands[f"member, {kernel} kernel"] = [sys.executable, "solver/ensemble.py", "--config", path,
                                                   "--force", "1"]
        for command in commands.values():          # warm the caches (numba's, the page cache)
            wall(command, env)
        times = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, command in commands.items():
                times[name].append(wall(command, env))
    medians = {name: statistics.median(t) for name, t in times.items()}
    light, heavy = medians["import numpy, h5py"], medians["import numba, numpy"]
    print(f"median of {args.rounds} interleaved rounds, wall seconds")
    for name, seconds in medians.items():
        print(f"  {name:24s} {seconds:6.3f} s   {seconds / light:4.2f} x import numpy, h5py   "
              f"{seconds / heavy:4.2f} x import numba, numpy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
