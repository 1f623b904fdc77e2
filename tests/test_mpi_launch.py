"""jobs/mpi_launch.sh picks the launcher for the MPI and the SLURM it finds; here both are fakes on PATH.

Each case is a situation (an Open MPI or a Hydra mpirun, or none; what `srun --mpi=list` offers; inside an
allocation or not; LAUNCHER and SRUN_MPI) and the launch line the script must print. Nothing is started.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import REPO

OPEN_MPI = "mpirun (Open MPI) 4.1.4"
HYDRA = "HYDRA build details:\n    Version:                                 4.0.2"
SLURM_22 = "MPI plugin types are...\n\tnone\n\tcray_shasta\n\tpmi2\n\tpmix\nspecific pmix plugin versions available: pmix_v4"
SLURM_OLD = "srun: MPI types are...\nsrun: none\nsrun: pmi2"          # older SLURM prefixes every line


def launch_line(tmp_path, mpirun: str | None, plugins: str | None, **env: str) -> subprocess.CompletedProcess:
    """Source mpi_launch.sh with only the fakes (and the few tools it uses) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cat", "grep", "sed", "tr", "nproc", "getconf"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    for name, output in (("mpirun", mpirun), ("srun", plugins)):
        if output is not None:
            (bin_dir / name).write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\n")
            (bin_dir / name).chmod(0o755)
    environment = {"PATH": str(bin_dir), "NP": "2", **env}
    return subprocess.run([shutil.which("bash"), "-c", "source jobs/mpi_launch.sh"], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=30)


ALLOCATION = {"SLURM_JOB_ID": "7", "SLURM_CPUS_PER_TASK": "4"}


@pytest.mark.parametrize("mpirun, plugins, env, expected", [
    # outside an allocation: mpirun, whatever the MPI
    (OPEN_MPI, SLURM_22, {}, "mpirun -n 2 --bind-to none"),
    (HYDRA, SLURM_22, {}, "mpirun -n 2 --bind-to none"),
    # Open MPI speaks PMIx: srun when SLURM offers it, else mpirun
    (OPEN_MPI, SLURM_22, ALLOCATION, "srun --mpi=pmix --kill-on-bad-exit=1 -n 2 --cpus-per-task=4"),
    (OPEN_MPI, SLURM_OLD, ALLOCATION, "mpirun -n 2 --bind-to none"),
    # MPICH family: its Hydra mpirun works in any allocation; srun on request, with PMI-2
    (HYDRA, SLURM_22, ALLOCATION, "mpirun -n 2 --bind-to none"),
    (HYDRA, SLURM_22, {**ALLOCATION, "LAUNCHER": "srun"}, "srun --mpi=pmi2 --kill-on-bad-exit=1 -n 2 --cpus-per-task=4"),
    (HYDRA, SLURM_OLD, {**ALLOCATION, "LAUNCHER": "srun"}, "srun --mpi=pmi2 --kill-on-bad-exit=1 -n 2 --cpus-per-task=4"),
    (HYDRA, SLURM_22, {**ALLOCATION, "SRUN_MPI": "pmix_v4"}, "srun --mpi=pmix_v4 --kill-on-bad-exit=1 -n 2 --cpus-per-task=4"),
    # no mpirun at all (a Cray): srun with cray_shasta
    (None, SLURM_22, ALLOCATION, "srun --mpi=cray_shasta --kill-on-bad-exit=1 -n 2 --cpus-per-task=4"),
    # SRUN_MPI alone means srun; LAUNCHER=mpirun wins over a PMIx SLURM
    (OPEN_MPI, SLURM_22, {**ALLOCATION, "SRUN_MPI": "pmi2"}, "srun --mpi=pmi2 --kill-on-bad-exit=1 -n 2 --cpus-per-task=4"),
    (OPEN_MPI, SLURM_22, {**ALLOCATION, "LAUNCHER": "mpirun"}, "mpirun -n 2 --bind-to none"),
])
def test_launcher_choice(tmp_path, mpirun, plugins, env, expected):
    result = launch_line(tmp_path, mpirun, plugins, **env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"launch: {expected}"


@pytest.mark.parametrize("mpirun, plugins, env, message", [
    (HYDRA, SLURM_22, {**ALLOCATION, "SRUN_MPI": "pmi3"},
     "error: SRUN_MPI = 'pmi3' is not a plugin of this SLURM (srun --mpi=list: none cray_shasta pmi2 pmix); "
     "pick one your MPI was built for"),
    (HYDRA, None, {"LAUNCHER": "srun"}, "error: LAUNCHER=srun but srun is not found; use LAUNCHER=mpirun"),
    (None, None, {}, "error: mpirun not found; run 'bash jobs/setup.sh' or load your site's MPI module"),
    (HYDRA, None, {"NP": "0"}, "error: NP = '0' is not a positive number of ranks; set NP (or sbatch --ntasks)"),
])
def test_launcher_mistakes_are_one_line(tmp_path, mpirun, plugins, env, message):
    result = launch_line(tmp_path, mpirun, plugins, **env)
    assert result.returncode == 2 and result.stderr.strip() == message
