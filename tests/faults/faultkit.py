"""Helpers for the fault-injection tests: start a real solver process, wait until it is mid-run, break it.

Everything here acts on real processes, signals and file systems; nothing is mocked.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import PYTHON, REPO, solver_env, write_config

# A serial run that tests stop mid-run: they start it with SOLVER_HOLD_AT (see held), so its length never
# decides whether it is still running when the test acts; it matters only when a run is let finish.
LONG = {"grid": {"nx": 201, "ny": 201}, "time": {"dt": 0.01, "t_end": 20.0},
        "output": {"path": "out.h5", "every": 200}, "parallel": {"threads": 1}}
HOLD_STEP = 300      # past the first snapshot and a progress line, well before the end (2000 steps)


def hold_env(rank: int = 0, step: int = HOLD_STEP, **extra: str) -> dict:
    """Environment that makes rank RANK wait at STEP until it gets a signal (solver/run/'s test hook)."""
    return solver_env(SOLVER_HOLD_AT=f"{rank}:{step}", **extra)


def default_signals() -> None:
    """``preexec_fn`` of a job script that the test will Ctrl-C: SIGINT and SIGQUIT back to their defaults.
    Whatever a non-interactive shell starts in the background (``nohup make test &``) ignores them, and a
    shell started with a signal ignored cannot trap it: the script's trap would never run."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def held(proc: subprocess.Popen, rank: int = 0) -> str:
    """Read proc's stdout until rank RANK says it is held mid-run; returns what it printed up to then.

    An event, not a delay: the run is between two steps of its time loop and stays there, on any machine."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if f"rank {rank} held at step" in line:
            return "".join(seen)
    proc.wait()
    raise AssertionError(f"the run ended ({proc.returncode}) before rank {rank} was held:\n"
                         f"{''.join(seen)[-2000:]}\n{proc.stderr.read()[-2000:]}")


def config(directory: Path, sections: dict, name: str = "fault.yaml") -> Path:
    return write_config(directory, name, **sections)


def start(*args, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """``python -m solver ARGS`` in the background, its own process group, output captured."""
    return subprocess.Popen([PYTHON, "-m", "solver", *map(str, args)], cwd=cwd, env=env or solver_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(predicate, timeout: float = 60, what: str = "condition", proc: subprocess.Popen | None = None):
    """Poll predicate every 10 ms; fail (killing proc) if it does not hold within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended ({proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-2000:]}")
        time.sleep(0.01)
    if proc is not None:
        kill_group(proc)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def partial_grown(path: Path, size: int = 1):
    """A predicate: PATH.partial exists and holds at least size bytes."""
    partial = Path(str(path) + ".partial")
    return lambda: partial.exists() and partial.stat().st_size >= size


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"the process did not end within {timeout} s")
    return proc.returncode, out, err


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def one_line(stderr: str) -> str:
    """The stderr of a refused or failed run must be exactly one line and no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, f"expected one line on stderr, got:\n{stderr}"
    return lines[0]


def read_cli(*args, cwd: Path, script: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m solver ARGS`` or ``python SCRIPT ARGS`` to completion (60 s at most)."""
    command = [PYTHON, str(REPO / script)] if script else [PYTHON, "-m", "solver"]
    return subprocess.run([*command, *map(str, args)], cwd=cwd, env=env or solver_env(), capture_output=True,
                          text=True, timeout=60)
