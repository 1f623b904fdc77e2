"""A run killed at any moment never leaves a file that looks complete, and a rerun is never blocked.

SIGKILL cannot be caught: these tests prove that the ``.partial``-then-rename protocol and the readers'
completion check are enough. SIGTERM and SIGINT can be caught: a serial run then removes its ``.partial``.
"""
from __future__ import annotations

import signal
import subprocess

import h5py
import numpy as np
import pytest

from conftest import PYTHON, require, solver_env
from faultkit import LONG, config, finish, held, hold_env, kill_group, one_line, read_cli, start

# every=1 on 201 x 201 nodes: each step appends one snapshot, one 323208-byte chunk written by pwrite64.
SNAPSHOT_EVERY_STEP = {"grid": {"nx": 201, "ny": 201}, "time": {"dt": 0.01, "t_end": 1.0},
                       "output": {"path": "out.h5", "every": 1}, "parallel": {"threads": 1}}
CHUNK_BYTES = 201 * 201 * 8


def assert_refused_by_readers(directory, out):
    """No file under the final name; info and the plot script refuse both names with one line, exit 2."""
    partial = out.with_name(out.name + ".partial")
    assert not out.exists(), "a killed run left a file under the final name"
    assert partial.exists(), "the killed run should have left its .partial behind"
    for name, hint in ((out, "did not finish"), (partial, "unfinished")):
        for script in (None, "analysis/plot_field.py"):
            args = ("info", name) if script is None else (name, "-o", directory / "plot.png")
            result = read_cli(*args, cwd=directory, script=script)
            assert result.returncode == 2, result.stderr
            line = one_line(result.stderr)
            assert hint in line and str(name) in line, line
    assert not (directory / "plot.png").exists()


def assert_rerun_succeeds(directory, cfg_path, out):
    """A rerun replaces the stale .partial, takes over the stale lock file, and finishes."""
    assert out.with_name(out.name + ".lock").exists(), "expected the killed run's lock file to be left"
    result = read_cli("run", cfg_path, "--set", "time.t_end=0.1", "--set", "output.every=0", cwd=directory)
    assert result.returncode == 0, result.stderr
    assert "replacing" in result.stderr and ".partial" in result.stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"] == 1 and f["time"][-1] == pytest.approx(0.1)
        assert np.isfinite(f["C"][-1]).all()
    assert sorted(p.name for p in directory.iterdir() if p.name.startswith("out")) == ["out.h5", "out.xdmf"]
    info = read_cli("info", out, cwd=directory)
    assert info.returncode == 0 and "complete" in info.stdout


def test_sigkill_during_compute(tmp_path):
    cfg_path = config(tmp_path, LONG)
    out = tmp_path / "out.h5"
    proc = start("run", cfg_path, cwd=tmp_path, env=hold_env())
    held(proc)                      # between two steps of the time loop, snapshots written, more to come
    proc.send_signal(signal.SIGKILL)
    code, _, _ = finish(proc)
    assert code == -signal.SIGKILL
    assert_refused_by_readers(tmp_path, out)
    assert_rerun_succeeds(tmp_path, cfg_path, out)


def test_sigkill_inside_a_snapshot_write(tmp_path):
    """strace delivers SIGKILL on entry to the 20th snapshot's pwrite64 into the .partial file: exactly inside
    a write, not near one."""
    strace = require("strace")
    cfg_path = config(tmp_path, SNAPSHOT_EVERY_STEP)
    out = tmp_path / "out.h5"
    partial = str(out) + ".partial"
    log = tmp_path / "strace.log"
    # pwrite64 calls on the .partial: 4 for the header and coordinates, then per snapshot a chunk and a time.
    when = 4 + 2 * 19 + 1
    command = [strace, "-f", "-qq", "-o", str(log), "-P", partial, "-e", "trace=pwrite64",
               "-e", f"inject=pwrite64:signal=KILL:when={when}", PYTHON, "-m", "solver", "run", str(cfg_path)]
    result = subprocess.run(command, cwd=tmp_path, env=solver_env(), capture_output=True, text=True, timeout=120)
    trace = log.read_text()
    assert "killed by SIGKILL" in trace, f"strace did not kill the run ({result.returncode}):\n{trace[-2000:]}"
    calls = [line for line in trace.splitlines() if "pwrite64(" in line]
    assert len(calls) == when and f", {CHUNK_BYTES}, " in calls[-1], \
        f"the kill did not land in a snapshot's chunk write:\n{calls[-3:]}"
    assert_refused_by_readers(tmp_path, out)
    assert_rerun_succeeds(tmp_path, cfg_path, out)


CHECKPOINTED = {"grid": {"nx": 201, "ny": 201}, "time": {"dt": 0.01, "t_end": 2.0},
                "output": {"path": "out.h5", "every": 100}, "checkpoint": {"every": 50},
                "parallel": {"threads": 1}}


def test_sigkill_inside_a_checkpoint_write(tmp_path):
    """SIGKILL on the second pwrite64 into the first checkpoint's .partial: the damaged checkpoint never
    gets its final name, --restart require refuses to go on without one, and --restart auto starts afresh
    and gives the bits of an uninterrupted run."""
    strace = require("strace")
    cfg_path = config(tmp_path, CHECKPOINTED)
    checkpoint = tmp_path / "out.ckpt.h5"
    log = tmp_path / "strace.log"
    command = [strace, "-f", "-qq", "-o", str(log), "-P", f"{checkpoint}.partial", "-e", "trace=pwrite64",
               "-e", "inject=pwrite64:signal=KILL:when=2", PYTHON, "-m", "solver", "run", str(cfg_path)]
    result = subprocess.run(command, cwd=tmp_path, env=solver_env(), capture_output=True, text=True, timeout=120)
    trace = log.read_text()
    assert "killed by SIGKILL" in trace, f"strace did not kill the run ({result.returncode}):\n{trace[-2000:]}"
    assert not checkpoint.exists() and not (tmp_path / "out.h5").exists()

    refused = read_cli("run", cfg_path, "--restart", "require", cwd=tmp_path)
    assert refused.returncode == 2 and "no checkpoint" in one_line(refused.stderr), refused.stderr
    resumed = read_cli("run", cfg_path, "--restart", "auto", cwd=tmp_path)
    assert resumed.returncode == 0 and "resuming" not in resumed.stdout, resumed.stderr
    clean = read_cli("run", cfg_path, "-o", tmp_path / "clean.h5", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    with h5py.File(tmp_path / "out.h5", "r") as a, h5py.File(tmp_path / "clean.h5", "r") as b:
        assert np.array_equal(a["C"][:], b["C"][:])


def signal_mid_run(directory, signum) -> tuple[int, str, str]:
    """Start a run in directory, send it signum once it is held in its time loop, wait for its end."""
    cfg_path = config(directory, LONG)
    proc = start("run", cfg_path, cwd=directory, env=hold_env())
    before = held(proc)
    proc.send_signal(signum)
    code, stdout, stderr = finish(proc)
    return code, before + stdout, stderr


def test_sigint_ends_the_run_cleanly(tmp_path):
    """Ctrl-C: one line, exit 130, no .partial, no lock file."""
    code, stdout, stderr = signal_mid_run(tmp_path, signal.SIGINT)
    assert code == 128 + signal.SIGINT, stderr
    line = one_line(stderr)
    assert "SIGINT" in line and "was not written" in line, line
    assert "running" in stdout                  # it was mid-run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fault.yaml"]


def test_sigterm_checkpoints_and_restart_finishes(tmp_path):
    """What scancel or a time limit sends: the run checkpoints, exits 3 (requeue me) keeping its .partial,
    and --restart auto finishes it into a complete file with nothing left over."""
    code, stdout, stderr = signal_mid_run(tmp_path, signal.SIGTERM)
    cfg_path, out = tmp_path / "fault.yaml", tmp_path / "out.h5"
    assert code == 3, stderr
    assert "--restart auto" in stderr and "running" in stdout
    assert not out.exists() and (tmp_path / "out.h5.partial").exists()
    assert (tmp_path / "out.ckpt.h5").exists()
    result = read_cli("run", cfg_path, "--restart", "auto", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"] == 1 and f["time"][-1] == pytest.approx(LONG["time"]["t_end"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fault.yaml", "out.h5", "out.xdmf"]


def test_readers_refuse_a_file_being_written(tmp_path):
    """While a run writes, its output does not exist under the final name and its .partial is refused."""
    cfg_path = config(tmp_path, LONG)
    out = tmp_path / "out.h5"
    proc = start("run", cfg_path, cwd=tmp_path, env=hold_env())
    try:
        held(proc)
        for name in (out, out.with_name("out.h5.partial")):
            result = read_cli("info", name, cwd=tmp_path)
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
            assert "still running" in one_line(result.stderr)
    finally:
        kill_group(proc)


def test_plot_script_reads_a_finished_run(tmp_path):
    """The refusals above are not a script that refuses everything: a finished output plots."""
    cfg_path = config(tmp_path, LONG)
    assert read_cli("run", cfg_path, "--set", "time.t_end=0.2", cwd=tmp_path).returncode == 0
    result = read_cli(tmp_path / "out.h5", "-o", tmp_path / "out.png", cwd=tmp_path,
                      script="analysis/plot_field.py")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.png").stat().st_size > 1000
