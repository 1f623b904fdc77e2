"""Provenance: what produced an output file (config, versions, git state, launch, SLURM ids, timings)."""
from __future__ import annotations

import datetime
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

from .. import REPO
from ..comm import SERIAL
from ..parallel import mpilib

SLURM_VARIABLES = ("SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
                   "SLURM_NTASKS", "SLURM_CPUS_PER_TASK", "SLURM_JOB_NODELIST", "SLURM_RESTART_COUNT",
                   "SLURM_CLUSTER_NAME")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_state() -> tuple[str, bool]:
    """(commit, dirty) of the repository holding the solver; ('unknown', False) outside git. One git call
    (it counts in a small ensemble member's start-up)."""
    try:
        done = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain=v2", "--branch",
                               "--untracked-files=no"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    if done.returncode != 0:
        return "unknown", False
    lines = done.stdout.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), "unknown")
    dirty = any(not line.startswith("#") for line in lines)
    return ("unknown" if commit == "(initial)" else commit), dirty


def versions() -> dict[str, str]:
    """Versions of the stack, the MPI library included in a serial run too (h5py loads it through parallel
    HDF5; it is read without importing mpi4py or starting MPI)."""
    import h5py
    import numpy

    numba = sys.modules.get("numba")        # the numpy kernel never imports it: then it played no part
    return {"python_version": platform.python_version(), "numpy_version": numpy.__version__,
            "numba_version": numba.__version__ if numba else "not imported (numpy kernel)",
            "h5py_version": h5py.__version__, "hdf5_version": h5py.version.hdf5_version,
            "mpi4py_version": installed_version("mpi4py"), **mpilib.in_use()}


def installed_version(package: str) -> str:
    """The installed version of ``package`` without importing it: from the ``NAME-VERSION.dist-info``
    directory beside it, else importlib.metadata (whose imports alone cost an ensemble member 8 ms)."""
    import importlib.util
    spec = importlib.util.find_spec(package)
    if spec is None:
        return "none"
    for location in spec.submodule_search_locations or []:
        site = os.path.dirname(location)
        for name in os.listdir(site):
            if name.startswith(package + "-") and name.endswith(".dist-info"):
                return name[len(package) + 1:-len(".dist-info")]
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def command_line() -> str:
    """The command as typed: ``python -m solver ...`` rather than the path of __main__.py."""
    program = "python -m solver" if sys.argv[0].endswith("__main__.py") else Path(sys.argv[0]).name
    return " ".join([program, *sys.argv[1:]])


def collect(config_yaml: str, ranks: int, threads: int, process_grid: tuple[int, int], comm=SERIAL,
            ranks_on_node: int = 1) -> dict:
    """Attributes known when a run starts (identical on every rank: gather them on rank 0 and share).
    With ``comm`` (a collective: every rank calls it) they include where each rank ran: see placement."""
    commit, dirty = git_state()
    attrs = {"config": config_yaml, "solver_command": command_line(),
             "git_commit": commit, "git_dirty": int(dirty), "host": platform.node(),
             "ranks": ranks, "threads_per_rank": threads, "process_grid": list(process_grid),
             "start_time": now(), **versions(), **placement(comm, threads, ranks_on_node)}
    for name in SLURM_VARIABLES:
        attrs[name.lower()] = os.environ.get(name, "")
    return attrs


def placement(comm, threads: int, ranks_on_node: int) -> dict:
    """Where every rank ran, in rank order: ``hosts`` (host names separated by spaces), ``ranks_on_node``
    (the ranks sharing each rank's node, as the rank counted them) and ``rank_threads`` (threads of each
    rank). On several nodes these differ per rank; a collective under MPI (call it on every rank)."""
    mine = (platform.node(), ranks_on_node, threads)
    ranks = comm.allgather(mine)
    return {"hosts": " ".join(host for host, _, _ in ranks), "ranks_on_node": [n for _, n, _ in ranks],
            "rank_threads": [t for _, _, t in ranks]}


def peak_memory_mib() -> float:
    """Peak resident size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
