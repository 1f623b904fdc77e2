"""Checkpoint and restart: a stopped run resumes to the same bits, on another rank count too; a damaged or
foreign checkpoint is refused with one line; a blown-up field stops the run."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import PYTHON, REPO, rank_processes, require, run_solver, solver_env, write_config
from solver.info import read_attrs

REQUEUE = 3


def fields(path):
    with h5py.File(path, "r") as f:
        return f["time"][:], f["C"][:], read_attrs(str(path))


def assert_same_output(path, reference):
    t, c, attrs = fields(path)
    t_ref, c_ref, _ = fields(reference)
    assert attrs["complete"] == 1
    assert np.array_equal(t, t_ref), (t, t_ref)
    assert c.shape == c_ref.shape and np.array_equal(c, c_ref), "field differs from the uninterrupted run"
    return attrs


def one_error_line(result, *fragments):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def stopped_run(tmp_path):
    """A config (checkpoints every 30 steps), its uninterrupted output, and a run stopped at step 40."""
    config = write_config(tmp_path, checkpoint={"every": 30})
    run_solver("run", config, "-o", tmp_path / "reference.h5")
    out = tmp_path / "out.h5"
    stopped = run_solver("run", config, "-o", out, "--max-steps", 40, check=False)
    assert stopped.returncode == REQUEUE, stopped.stderr
    assert "stopped at step 40" in stopped.stderr and "--restart auto" in stopped.stderr
    assert (tmp_path / "out.ckpt.h5").is_file() and (tmp_path / "out.h5.partial").is_file()
    assert not out.exists()
    return config, out, tmp_path / "reference.h5"


def test_resume_gives_the_uninterrupted_bits(stopped_run):
    config, out, reference = stopped_run
    run_solver("run", config, "-o", out, "--restart", "auto", "--max-steps", 35, check=False)  # to step 75
    run_solver("run", config, "-o", out, "--restart", "auto")
    attrs = assert_same_output(out, reference)
    assert attrs["restarted_from_step"] == 75
    sidecar = out.with_suffix(".xdmf").read_text().replace(out.name, "OUT")
    assert sidecar == reference.with_suffix(".xdmf").read_text().replace(reference.name, "OUT"), \
        "the XDMF sidecar lists the snapshots of the whole run"
    assert not out.with_suffix(".ckpt.h5").exists(), "a finished run leaves no checkpoint behind"


@pytest.mark.mpi
def test_checkpoint_of_2_ranks_resumes_on_3(tmp_path):
    config = write_config(tmp_path, parallel={"threads": 1, "halo": 2})
    run_solver("run", config, "-o", tmp_path / "serial.h5")
    out = tmp_path / "out.h5"
    stopped = run_solver("run", config, "-o", out, "--max-steps", 47, ranks=2, check=False)
    assert stopped.returncode == REQUEUE, stopped.stdout + stopped.stderr
    with h5py.File(tmp_path / "out.ckpt.h5", "r") as f:
        assert f.attrs["ranks"] == 2 and f.attrs["step"] == 47 and f["C"].shape == (45, 61)
    run_solver("run", config, "-o", out, "--restart", "require", ranks=3)
    attrs = assert_same_output(out, tmp_path / "serial.h5")
    assert attrs["ranks"] == 3 and attrs["restarted_from_step"] == 47


def test_signal_checkpoints_and_the_same_command_resumes(tmp_path):
    """USR1 to jobs/run.sh (as SLURM's --signal=B:USR1 does to a batch script): checkpoint, exit 3, resume."""
    config = long_config(tmp_path)
    run_solver("run", config, "-o", tmp_path / "reference.h5")
    job = subprocess.Popen(["bash", "jobs/run.sh", str(config)], cwd=REPO, env=solver_env(SOLVER_HOLD_AT=HOLD),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in job.stdout:            # held mid-run (solver/run/'s test hook): the loop is listening
            if "held at step" in line:
                job.send_signal(signal.SIGUSR1)
                break
        _, err = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == REQUEUE, f"expected a checkpoint (exit 3), got {job.returncode}: {err}"
    assert "(signal)" in err
    again = subprocess.run(["bash", "jobs/run.sh", str(config)], cwd=REPO, env=solver_env(),
                           capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stdout
    assert_same_output(tmp_path / "out.h5", tmp_path / "reference.h5")


HOLD = "0:1000"       # SOLVER_HOLD_AT: rank 0 waits at step 1000 of 8000 until a signal arrives


def long_config(tmp_path):
    """A run that the tests stop mid-run with the hold hook (HOLD), whatever the machine's speed."""
    return write_config(tmp_path, grid={"nx": 301, "ny": 151}, time={"dt": 0.005, "t_end": 40.0},
                        output={"path": str(tmp_path / "out.h5"), "every": 1000})


@pytest.mark.mpi
def test_signal_to_one_rank_stops_all_at_the_same_step(tmp_path):
    """Only rank 1 gets USR1: the ranks agree at the next poll, write one checkpoint and all exit 3."""
    config = long_config(tmp_path)
    run_solver("run", config, "-o", tmp_path / "reference.h5")
    mpirun = subprocess.Popen([require("mpirun"), "-n", "2", "--bind-to", "none", PYTHON, "-m", "solver", "run",
                               str(config)], cwd=REPO, env=solver_env(SOLVER_HOLD_AT="1:1000"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in mpirun.stdout:         # rank 1 is held mid-run; rank 0 waits for it in the exchange
            if "rank 1 held at step" in line:
                os.kill(rank_processes(mpirun.pid)[1], signal.SIGUSR1)
                break
        _, err = mpirun.communicate(timeout=120)
    finally:
        mpirun.kill()
    assert mpirun.returncode == REQUEUE, err
    assert err.count("(signal)") == 1, err
    run_solver("run", config, "--restart", "require")           # resume on one process
    assert_same_output(tmp_path / "out.h5", tmp_path / "reference.h5")


def flip_a_field_byte(path):
    with h5py.File(path, "r") as f:
        offset = f["C"].id.get_offset() + 8 * (f["C"].shape[1] * 20 + 30) + 3
    with open(path, "r+b") as stream:
        stream.seek(offset)
        byte = stream.read(1)
        stream.seek(offset)
        stream.write(bytes([byte[0] ^ 0x10]))


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage, message", [(flip_a_field_byte, "does not match the checksum"),
                                              (truncate, "cannot be read")])
def test_damaged_checkpoint_is_refused(stopped_run, damage, message):
    config, out, _ = stopped_run
    damage(out.with_suffix(".ckpt.h5"))
    result = run_solver("run", config, "-o", out, "--restart", "auto", check=False)
    assert result.returncode == 2
    one_error_line(result, "out.ckpt.h5", message, "delete it")
    assert not out.exists()


def test_checkpoint_of_another_config_is_refused(stopped_run):
    config, out, _ = stopped_run
    result = run_solver("run", config, "-o", out, "--restart", "auto", "--set", "physics.diffusivity=0.001",
                        check=False)
    assert result.returncode == 2
    one_error_line(result, "written for another config (physics.diffusivity differs)")


def test_restart_require_without_checkpoint(small_config, tmp_path):
    result = run_solver("run", small_config, "-o", tmp_path / "x.h5", "--restart", "require", check=False)
    assert result.returncode == 2
    one_error_line(result, "no checkpoint", "x.ckpt.h5")


def test_blown_up_field_stops_with_the_step(tmp_path):
    """Overflow (a huge amplitude) makes inf - inf = NaN in the first steps: the run stops, names the step."""
    config = write_config(tmp_path, initial={"amplitude": 1e308})
    result = run_solver("run", config, "-o", tmp_path / "out.h5", check=False)
    assert result.returncode == 1
    line = one_error_line(result, "not finite at step 10", "time.dt")
    assert "blew up" in line
    assert not (tmp_path / "out.h5").exists()


def test_result_hash_covers_the_model_source_and_every_boundary(tmp_path):
    """The settings hash a resume is checked against changes with the model's source (not its path) and with
    any side's boundary condition; it ignores how the run is parallelised."""
    from solver.core import config as config_module
    from solver.storage.checkpoint import result_hash
    source = (REPO / "solver" / "models" / "diffusion.py").read_text()
    (tmp_path / "a.py").write_text(source)
    (tmp_path / "same.py").write_text(source)
    (tmp_path / "edited.py").write_text(source + "\n# edited\n")

    def digest(model="a.py", **sections):
        data = {"model": str(tmp_path / model), "grid": {"nx": 21, "ny": 15}, "time": {"dt": 0.01, "t_end": 0.1},
                **sections}
        return result_hash(config_module.from_dict(data, str(tmp_path / "c.yaml")))

    base = digest()
    assert digest("same.py") == base                      # where the file lies does not matter
    assert digest("edited.py") != base                    # what it says does
    for side in ("west", "east", "south", "north"):
        assert digest(boundary={side: "zero_flux"}) != base, side
    assert digest(boundary={"west": "periodic", "east": "periodic"}) != base
    assert digest(parallel={"threads": 2, "halo": 3}, numerics={"kernel": "numpy"}) == base


def test_resume_after_switching_a_side_to_zero_flux_is_refused(stopped_run):
    config, out, _ = stopped_run
    result = run_solver("run", config, "-o", out, "--restart", "auto", "--set", "boundary.north=zero_flux",
                        check=False)
    assert result.returncode == 2
    one_error_line(result, "written for another config (boundary.north differs)")
