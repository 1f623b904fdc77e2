"""Every job script in jobs/ submitted to a real SLURM (the local one of tests/slurm/local-cluster.sh when no
cluster answers), with small configs passed as arguments; plus a checkpoint, requeue and resume on USR1.

On a real cluster: SOLVER_TEST_PARTITION names the partition, SOLVER_TEST_SBATCH adds options (an account),
and pytest --basetemp=DIR puts the test files on a file system the compute nodes share."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import REPO, SMALL, require, run_solver, write_config
from solver.info import read_attrs

pytestmark = pytest.mark.slurm

JOBS = REPO / "jobs"
SUBMITTED = {"threaded.slurm", "plot.slurm", "scaling.slurm", "mpi2d.slurm", "ensemble.slurm",
             "ensemble-array.slurm"}
CPUS = 2                                  # the local cluster's node has at least this many


def sbatch_options(log: Path, name: str) -> list[str]:
    options = [f"--job-name={name}", f"--output={log}", f"--cpus-per-task={CPUS}", "--time=00:10:00"]
    if os.environ.get("SOLVER_TEST_PARTITION"):
        options.append(f"--partition={os.environ['SOLVER_TEST_PARTITION']}")
    return options + shlex.split(os.environ.get("SOLVER_TEST_SBATCH", ""))


def script(name: str) -> Path:
    path = JOBS / name
    if not path.is_file():
        pytest.fail(f"jobs/{name} is missing: every job script of the template is submitted here; "
                    "merge the branch that adds it (or drop it from SUBMITTED in tests/test_slurm.py)")
    return path


def submit(env: dict, tmp_path: Path, *args, wait: bool = True, timeout: float = 180,
           extra_env: dict | None = None) -> tuple[str, Path]:
    """sbatch [--wait] from the repository root; returns (job id, log). A failed or stuck job fails the
    test with its log."""
    require("sbatch")
    name = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / f"{name}.out"
    command = ["sbatch", "--parsable", *(["--wait"] if wait else []), *sbatch_options(log, name), *map(str, args)]
    try:
        result = subprocess.run(command, cwd=REPO, env={**env, **(extra_env or {})}, capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        subprocess.run(["scancel", "--name", name], env=env, timeout=30)
        pytest.fail(f"{shlex.join(command)} did not finish in {timeout} s; log:\n{read(log)}")
    job = result.stdout.strip().split(";")[0].splitlines()[0] if result.stdout.strip() else "?"
    if result.returncode != 0:
        pytest.fail(f"{shlex.join(command)} failed ({result.returncode}): {result.stderr}\nlog:\n{read(log)}")
    return job, log


def read(path: Path) -> str:
    return path.read_text()[-4000:] if path.exists() else "(no log)"


def job_field(env: dict, job: str, key: str) -> str:
    shown = subprocess.run(["scontrol", "show", "job", "-o", job], env=env, capture_output=True, text=True,
                           timeout=30).stdout
    match = re.search(rf"\b{key}=(\S+)", shown)
    return match.group(1) if match else ""


def wait_for(env: dict, job: str, log: Path, predicate, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job], env=env, timeout=30)
            pytest.fail(f"job {job}: {what} did not happen in {timeout} s (state "
                        f"{job_field(env, job, 'JobState')}); log:\n{read(log)}")
        time.sleep(0.2)


def release(env: dict, job: str) -> None:
    """Start a requeued job now instead of after its two-minute BeginTime. slurmd refuses a job credential
    whose creation second is not later than the second its predecessor's was revoked ("Job credential
    revoked"). The caller has seen the requeue, so the revocation happened by now: the update waits for the
    event that rule needs, the wall clock entering a later second (at most one second, never a guess)."""
    revoked_by = int(time.time())
    deadline = time.monotonic() + 5
    while int(time.time()) <= revoked_by:
        if time.monotonic() > deadline:
            pytest.fail(f"job {job}: the wall clock did not advance a second in 5 s")
        time.sleep(0.01)
    subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], env=env, check=True, timeout=30)


def attrs_of(path: Path) -> dict:
    assert path.is_file(), f"{path} was not written"
    return read_attrs(str(path))


def field_of(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["C"][:]


def test_every_job_script_is_submitted_here():
    scripts = {p.name for p in JOBS.glob("*.slurm")}
    assert scripts <= SUBMITTED, f"job scripts without a submission test: {sorted(scripts - SUBMITTED)}"


def test_threaded_job(slurm_env, tmp_path):
    config = write_config(tmp_path, parallel={"threads": "auto"})
    out = tmp_path / "threaded.h5"
    job, log = submit(slurm_env, tmp_path, script("threaded.slurm"), config, "--set", f"output.path={out}")
    attrs = attrs_of(out)
    assert attrs["complete"] == 1 and attrs["slurm_job_id"] == job, read(log)
    assert attrs["threads_per_rank"] == CPUS, "parallel.threads: auto follows --cpus-per-task"
    run_solver("run", config, "-o", tmp_path / "local.h5")
    assert np.array_equal(field_of(out), field_of(tmp_path / "local.h5"))
    assert "done:" in read(log)


def test_analysis_job_runs_after_the_run(slurm_env, tmp_path):
    config = write_config(tmp_path)
    out, png = tmp_path / "run.h5", tmp_path / "run.png"
    run, _ = submit(slurm_env, tmp_path, script("threaded.slurm"), config, "--set", f"output.path={out}",
                    wait=False)
    plot, log = submit(slurm_env, tmp_path, f"--dependency=afterok:{run}", script("plot.slurm"), out, "-o", png)
    assert png.is_file() and png.stat().st_size > 1000, read(log)
    assert attrs_of(out)["slurm_job_id"] == run


def test_usr1_checkpoints_requeues_and_resumes(slurm_env, tmp_path):
    """SLURM's warning signal mid-run: checkpoint, exit 3, scontrol requeue, the requeued job resumes and
    ends with the field of an uninterrupted run."""
    out = tmp_path / "long.h5"
    config = write_config(tmp_path, grid={"nx": 301, "ny": 151}, time={"dt": 0.005, "t_end": 60.0},
                          output={"path": str(out), "every": 2000})
    job, log = submit(slurm_env, tmp_path, script("threaded.slurm"), config, wait=False,
                      extra_env={"SOLVER_HOLD_AT": "0:2000"})     # the requeued run resumes past it: no hold
    wait_for(slurm_env, job, log, lambda: "held at step" in read(log), "the run held mid-run (SOLVER_HOLD_AT)")
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=slurm_env, check=True, timeout=30)
    wait_for(slurm_env, job, log, lambda: job_field(slurm_env, job, "Restarts") == "1"
             and job_field(slurm_env, job, "JobState") == "PENDING", "the requeue")
    assert (tmp_path / "long.ckpt.h5").is_file(), read(log)
    release(slurm_env, job)
    wait_for(slurm_env, job, log, lambda: job_field(slurm_env, job, "JobState") in
             ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"), "the end")
    text = read(log)
    assert job_field(slurm_env, job, "JobState") == "COMPLETED", text
    assert "(signal)" in text and "requeueing job" in text and "resuming from" in text, text
    attrs = attrs_of(out)
    assert attrs["slurm_job_id"] == job and attrs["slurm_restart_count"] == "1"
    run_solver("run", config, "-o", tmp_path / "reference.h5")
    assert np.array_equal(field_of(out), field_of(tmp_path / "reference.h5"))
    assert not (tmp_path / "long.ckpt.h5").exists()


@pytest.mark.mpi
def test_scaling_job(slurm_env, tmp_path):
    """The sweep inside one allocation of 2 tasks: rank counts 1 and 2 (threads 1), then its plot."""
    job, log = submit(slurm_env, tmp_path, "--ntasks=2", "--cpus-per-task=1", script("scaling.slurm"),
                      "configs/scaling.yaml", "--set", "grid.nx=64", "--set", "grid.ny=48",
                      extra_env={"SCALING_DIR": str(tmp_path), "SCALING_MODES": "strong", "SCALING_THREADS": "1"})
    for ranks in (1, 2):
        attrs = attrs_of(tmp_path / f"strong-r{ranks}-t1.h5")
        assert attrs["ranks"] == ranks and attrs["slurm_job_id"] == job, read(log)
    assert (tmp_path / "strong.png").is_file() and (tmp_path / "strong.csv").is_file(), read(log)


# --- scripts from the MPI and ensemble work: the interface they are expected to have ---------------------
@pytest.mark.mpi
def test_mpi_job_with_2_tasks(slurm_env, tmp_path):
    config = write_config(tmp_path)
    out = tmp_path / "mpi.h5"
    job, log = submit(slurm_env, tmp_path, "--ntasks=2", "--cpus-per-task=1", script("mpi2d.slurm"), config,
                      "--set", f"output.path={out}")
    attrs = attrs_of(out)
    assert attrs["ranks"] == 2 and attrs["slurm_job_id"] == job, read(log)
    run_solver("run", config, "-o", tmp_path / "serial.h5")
    assert np.array_equal(field_of(out), field_of(tmp_path / "serial.h5"))


@pytest.mark.mpi
@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_one_failing_rank_ends_the_mpi_job(slurm_env, tmp_path, launcher):
    """Rank 1 raises at step 20 (SOLVER_FAIL_AT): under srun (with the plugin mpi_launch.sh picks for this MPI:
    pmix for Open MPI, pmi2 for MPICH) and under mpirun the job ends as failed within 30 s, the rank's error
    is in the log, and the output stays .partial; no rank waits in a collective."""
    config = write_config(tmp_path, time={"dt": 0.01, "t_end": 5.0})
    out = tmp_path / "fail.h5"
    name = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / f"{name}.out"
    command = ["sbatch", "--parsable", "--wait", *sbatch_options(log, name), "--ntasks=2", "--cpus-per-task=1",
               str(script("mpi2d.slurm")), str(config), "--set", f"output.path={out}"]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**slurm_env, "SOLVER_FAIL_AT": "1:20", "LAUNCHER": launcher})
    elapsed = time.monotonic() - started
    assert result.returncode != 0, f"the job succeeded although rank 1 failed:\n{read(log)}"
    assert elapsed < 30, f"the job took {elapsed:.0f} s to end after a rank failed"
    text = read(log)
    assert f"launch: {launcher}" in text and "rank 1: error: injected failure at step" in text, text
    assert not out.exists() and Path(f"{out}.partial").exists()


ENSEMBLE = {**SMALL, "output": {"every": 0}, "time": {"dt": 0.01, "t_end": 0.2},
            "ensemble": {"seed": 7, "members": 4,
                         "perturb": {"physics.diffusivity": {"dist": "uniform", "low": 0.0008, "high": 0.001}}}}


@pytest.mark.parametrize("name, options", [("ensemble.slurm", ["--ntasks=2", "--cpus-per-task=1"]),
                                           ("ensemble-array.slurm", ["--array=0-1", "--cpus-per-task=1"])])
def test_ensemble_jobs(slurm_env, tmp_path, name, options):
    members = tmp_path / "members"
    config = write_config(tmp_path, base=ENSEMBLE, ensemble={"output_dir": str(members)})
    job, log = submit(slurm_env, tmp_path, *options, script(name), 1, 4,
                      extra_env={"ENSEMBLE_CONFIG": str(config), "ENSEMBLE_BLOCK": "2"})
    for member in range(1, 5):
        attrs = attrs_of(members / f"member-{member:04d}.h5")
        assert attrs["complete"] == 1 and attrs["slurm_job_id"], read(log)
