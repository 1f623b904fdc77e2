"""MPI and job scripts: ranks agree on the config before anything collective, and the requeue status of a
checkpoint survives the launcher when the job is told to stop (also one that loses the ranks' status, as
MPICH's mpiexec does after it forwarded a signal: jobs/launch.sh then reads the solver's record of the stop)."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from conftest import PYTHON, REPO, require, solver_env
from faultkit import LONG, config, default_signals, finish, held, kill_group

TINY = {"grid": {"nx": 21, "ny": 15}, "time": {"dt": 0.01, "t_end": 0.1}, "output": {"path": "out.h5"},
        "parallel": {"threads": 1}, "numerics": {"kernel": "numpy"}}


@pytest.mark.mpi
def test_ranks_with_different_configs_refuse_in_one_line(tmp_path):
    """An MPMD launch (or a file edited while the job starts): one line from rank 0, exit 2, no file."""
    config(tmp_path, TINY, "a.yaml")
    config(tmp_path, {**TINY, "physics": {"diffusivity": 0.0005}}, "b.yaml")
    run = [PYTHON, "-m", "solver", "run"]
    command = [require("mpirun"), "--bind-to", "none", "-n", "1", *run, "a.yaml", ":", "-n", "1", *run, "b.yaml"]
    result = subprocess.run(command, cwd=tmp_path, env=solver_env(), capture_output=True, text=True, timeout=120,
                            start_new_session=True)
    assert result.returncode == 2, result.stderr
    ours = [line for line in result.stderr.splitlines() if "error" in line and "Process" not in line]
    assert len(ours) == 1 and "different configs" in ours[0], result.stderr   # the rest is mpirun's banner
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "b.yaml"]


@pytest.mark.mpi
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_to_an_mpi_job_ends_with_the_requeue_status(tmp_path, signum):
    """SIGTERM (scancel, the time limit) or Ctrl-C to the job script: the ranks checkpoint and the job
    ends with status 3 through mpirun, so jobs/launch.sh requeues it (Open MPI's mpirun itself kills on
    SIGTERM; MPICH's reports 0 after a forwarded signal, and the solver's record of the stop counts)."""
    cfg_path = config(tmp_path, {**LONG, "output": {"path": str(tmp_path / "out.h5"), "every": 200}})
    env = solver_env(NP="2", SOLVER_HOLD_AT="0:300", LAUNCHER="mpirun", OMP_WAIT_POLICY="PASSIVE")
    env.pop("SLURM_JOB_ID", None)
    job = subprocess.Popen(["bash", "jobs/mpi2d.sh", str(cfg_path)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=default_signals)
    try:
        held(job)
        os.kill(job.pid, signum)          # the batch shell, as SLURM signals it
        code, _, err = finish(job, timeout=120)
    finally:
        kill_group(job)
    assert code == 3, f"expected the requeue status 3, got {code}:\n{err[-3000:]}"
    assert (tmp_path / "out.ckpt.h5").exists() and (tmp_path / "out.h5.partial").exists()


def test_a_stop_the_launcher_does_not_pass_on_ends_with_the_requeue_status(tmp_path):
    """A launcher that exits 0 although the solver stopped with a checkpoint (as MPICH's mpiexec after a
    forwarded signal): jobs/launch.sh takes the solver's record of the stop, returns 3, and removes the record."""
    cfg_path = config(tmp_path, {**TINY, "output": {"path": str(tmp_path / "out.h5")}})
    env = solver_env()
    env.pop("SLURM_JOB_ID", None)
    launcher = 'echo "record: $SOLVER_STOP_FILE" >&2; "$@"; exit 0'
    script = f'source jobs/env.sh && launch sh -c \'{launcher}\' launcher python -m solver run "$1" --max-steps 3'
    result = subprocess.run(["bash", "-c", script, "job", str(cfg_path)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "stopped at step 3" in result.stderr and "status 3 (launcher: 0)" in result.stderr, result.stderr
    record = result.stderr.split("record: ", 1)[1].splitlines()[0]
    assert record.startswith(str(REPO)) and not os.path.exists(record), record
    assert (tmp_path / "out.ckpt.h5").exists() and (tmp_path / "out.h5.partial").exists()
