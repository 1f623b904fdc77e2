"""One failing or killed MPI rank ends the whole job within 30 s with a non-zero status, never a hang.

Driven from outside, with real signals to one rank's process under mpirun (any MPI's: ranks are found by
the launcher's rank variable, conftest.RANK_VARIABLES): SIGKILL (the rank vanishes:
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

from conftest import PYTHON, REPO, rank_processes, require, solver_env
from faultkit import LONG, config, held, hold_env, kill_group, one_line, read_cli, wait_for

JOB_ENDS_WITHIN = 30.0      # seconds, from the signal to mpirun's exit


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


TINY = {"grid": {"nx": 21, "ny": 15}, "time": {"dt": 0.01, "t_end": 0.5}, "output": {"path": "out.h5"},
        "parallel": {"threads": 1}}


def unstable_model(directory: Path) -> str:
    """The diffusion model claiming every dt is stable: its field overflows, on every rank at once."""
    source = (REPO / "solver/models/diffusion.py").read_text()
    old = "return 0.5 / rate if rate > 0 else math.inf"
    assert old in source
    (directory / "unstable.py").write_text(source.replace(old, "return math.inf"))
    return "unstable.py"


@pytest.mark.mpi
@pytest.mark.parametrize("case", ["one rank fails", "every rank blows up", "refused together", "stopped"])
def test_a_failure_under_mpi_is_one_line(tmp_path, case):
    """Whatever ends a job early, on one rank or on all, the job prints one line: the rank's own (one rank,
    then MPI_Abort) or rank 0's (all ranks together), and no notice of the MPI library's or launcher's
    (Open MPI's 'MPI_ABORT was invoked', its ORTE_ERROR_LOG line when several ranks abort at once, mpirun's
    'exited with non-zero status'; MPICH's 'Abort(1) on node'). Advice printed before the failure (a
    'warning:' line) is not part of it."""
    sections, args, env = dict(TINY), [], {}
    if case == "one rank fails":
        env = {"SOLVER_FAIL_AT": "1:20"}
        code, line = 1, "rank 1: error: injected failure at step 20 (SOLVER_FAIL_AT=1:20)"
    elif case == "every rank blows up":
        sections = {**TINY, "model": unstable_model(tmp_path), "time": {"dt": 10.0, "t_end": 4000.0}}
        code, line = 1, "error: the field is not finite at step"
    elif case == "refused together":
        args = ["--set", "parallel.ranks=[2, 2]"]
        code, line = 2, "error: fault.yaml: parallel.ranks = [2, 2] needs 4 ranks, but 2 were started"
    else:
        args = ["--max-steps", "7"]
        code, line = 3, "stopped at step 7 (--max-steps); checkpoint"
    model = sections.pop("model", None)
    cfg_path = config(tmp_path, sections)
    if model:
        cfg_path.write_text(f"model: {model}\n" + cfg_path.read_text())
    command = [require("mpirun"), "-n", "2", "--bind-to", "none", PYTHON, "-m", "solver", "run", cfg_path.name,
               *args]
    result = subprocess.run(command, cwd=tmp_path, env=solver_env(**env), capture_output=True, text=True,
                            timeout=120)
    lines = [x for x in result.stderr.splitlines() if x.strip() and not x.startswith("warning: ")]
    assert result.returncode == code and len(lines) == 1 and lines[0].startswith(line), result.stderr[-3000:]


def blocked_in_fifo_open(pid: int) -> bool:
    """The process sleeps in the kernel, opening a FIFO that no one writes."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() in ("wait_for_partner", "fifo_open", "pipe_wait")
    except OSError:
        return False


def kill_launcher_and_wait(job: subprocess.Popen, ranks: dict) -> None:
    """SIGKILL to mpirun alone (its ranks get no signal), then every rank must exit on its own."""
    try:
        os.kill(job.pid, signal.SIGKILL)
        job.wait(timeout=10)
        wait_for(lambda: not any(map(alive, ranks.values())), timeout=JOB_ENDS_WITHIN,
                 what="every rank to exit after mpirun was killed")
    finally:
        for pid in ranks.values():                   # a rank still running failed the test; end it here
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        kill_group(job)


@pytest.mark.mpi
def test_ranks_end_when_the_launcher_is_killed_mid_run(tmp_path):
    """SIGKILL to mpirun (a hard time limit) while rank 1 is held and rank 0 waits for it in an exchange: a
    job that would otherwise hang with nobody left to stop it. Every rank exits on its own; the output stays
    .partial."""
    cfg_path = config(tmp_path, LONG)
    command = [require("mpirun"), "-n", "2", "--bind-to", "none", PYTHON, "-m", "solver", "run", str(cfg_path)]
    job = subprocess.Popen(command, cwd=tmp_path, env=hold_env(rank=1), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        held(job, rank=1)
        ranks = wait_for(lambda: (r := rank_processes(job.pid)) and len(r) == 2 and r, timeout=30,
                         what="two solver ranks under mpirun", proc=job)
    except BaseException:
        kill_group(job)
        raise
    kill_launcher_and_wait(job, ranks)
    assert Path(tmp_path / "out.h5.partial").exists() and not (tmp_path / "out.h5").exists()


@pytest.mark.mpi
def test_ranks_end_when_the_launcher_is_killed_before_mpi_starts(tmp_path):
    """The ranks hang before MPI starts (the config is a FIFO no one writes: a read that never returns), so
    no MPI library can tell them their launcher died: each rank's own watch of its parent must (Open MPI 4
    leaves them running forever without it)."""
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    command = [require("mpirun"), "-n", "2", "--bind-to", "none", PYTHON, "-m", "solver", "run", str(fifo)]
    job = subprocess.Popen(command, cwd=tmp_path, env=solver_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        ranks = wait_for(lambda: (r := rank_processes(job.pid)) and len(r) == 2 and
                         all(map(blocked_in_fifo_open, r.values())) and r, timeout=60,
                         what="two solver ranks blocked reading the config", proc=job)
    except BaseException:
        kill_group(job)
        raise
    kill_launcher_and_wait(job, ranks)
