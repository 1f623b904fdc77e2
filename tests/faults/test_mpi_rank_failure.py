"""One failing or killed MPI rank ends the whole job within 30 s with a non-zero status, never a hang.

Driven from outside, with real signals to one rank's process under mpirun: SIGKILL (the rank vanishes:
the launcher must notice) and SIGTERM (what scancel sends to one task: the ranks agree at the next step
boundary, write one checkpoint collectively and all exit 3, so nobody waits for a rank that left).
An exception on one rank (``comm.Abort``) is tested in tests/test_mpi.py with the SOLVER_FAIL_AT hook.
Under MPI an aborted run keeps its ``.partial`` (no rank can safely finish it); readers refuse it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PYTHON, require
from faultkit import LONG, config, held, hold_env, kill_group, one_line, read_cli, wait_for

JOB_ENDS_WITHIN = 30.0      # seconds, from the signal to mpirun's exit


def rank_processes(launcher_pid: int) -> dict[int, int]:
    """MPI rank -> pid for the solver processes started by mpirun (children or deeper descendants)."""
    ranks, todo = {}, [launcher_pid]
    while todo:
        parent = todo.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            todo.append(child)
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            rank = [v for v in environ if v.startswith(b"OMPI_COMM_WORLD_RANK=")]
            if b"solver" in cmdline and rank:
                ranks[int(rank[0].split(b"=")[1])] = child
    return ranks


def alive(pid: int) -> bool:
    """pid is a process that still runs (not gone, not a zombie waiting to be reaped)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.mpi
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_one_rank_of_three_fails_and_the_job_ends(tmp_path, signum):
    cfg_path = config(tmp_path, LONG)
    out = tmp_path / "out.h5"
    command = [require("mpirun"), "-n", "3", "--bind-to", "none", PYTHON, "-m", "solver", "run", str(cfg_path)]
    job = subprocess.Popen(command, cwd=tmp_path, env=hold_env(rank=1), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        held(job, rank=1)                        # rank 1 waits mid-run; the others block in its exchange
        ranks = wait_for(lambda: (r := rank_processes(job.pid)) and len(r) == 3 and r, timeout=30,
                         what="three solver ranks under mpirun", proc=job)
        os.kill(ranks[1], signum)
        start = time.monotonic()
        try:
            stdout, stderr = job.communicate(timeout=JOB_ENDS_WITHIN)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the job still ran {JOB_ENDS_WITHIN:.0f} s after rank 1 got {signal.Signals(signum).name}")
        elapsed = time.monotonic() - start
    finally:
        if job.poll() is None:
            kill_group(job)
    assert job.returncode != 0, f"the job exited 0 although rank 1 failed:\n{stderr[-2000:]}"
    assert elapsed < JOB_ENDS_WITHIN
    if signum == signal.SIGTERM:                  # a collective stop with a checkpoint, not a hang
        assert job.returncode == 3 and "stopped at step" in stderr and "(signal)" in stderr, stderr[-2000:]
        assert (tmp_path / "out.ckpt.h5").exists()
    assert "Traceback" not in stderr, stderr[-3000:]
    wait_for(lambda: not any(map(alive, ranks.values())), timeout=10,
             what="every rank to be gone within 10 s of mpirun's exit")      # no rank is left running
    assert not out.exists()
    assert Path(str(out) + ".partial").exists()
    result = read_cli("info", out, cwd=tmp_path)
    assert result.returncode == 2 and "did not finish" in one_line(result.stderr)
