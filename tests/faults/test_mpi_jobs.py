"""MPI and job scripts: ranks agree on the config before anything collective, and the requeue status of a
checkpoint survives the launcher when the job is told to stop (also one that loses the ranks' status, as
MPICH's mpiexec does after it forwarded a signal: jobs/launch.sh then reads the solver's record of the stop)."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest
import yaml

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
@pytest.mark.parametrize("second, words", [
    (["-o", "b.h5"], ["output path", "b.h5"]),             # MPMD: each rank its own output
    (["--max-steps", "3"], ["--max-steps"]),                 # an option on one rank only
    (["--restart", "auto"], ["--restart"]),
    (["--overwrite"], ["--overwrite"]),
])
def test_ranks_started_with_other_arguments_refuse_in_one_line_and_never_hang(tmp_path, second, words):
    """Everything that decides the run is compared across ranks before anything is written: one line from
    rank 0, exit 2, no .partial and no lock (these launches used to spin forever)."""
    config(tmp_path, TINY, "c.yaml")
    run = [PYTHON, "-m", "solver", "run", "c.yaml", "-o", "a.h5"]
    command = [require("mpirun"), "--bind-to", "none", "-n", "1", *run, ":", "-n", "1", *run, *second]
    proc = subprocess.Popen(command, cwd=tmp_path, env=solver_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    code, _, err = finish(proc, timeout=90)        # a hang fails here (and the job is killed)
    assert code == 2, err
    ours = [line for line in err.splitlines() if "error" in line and "Process" not in line]
    assert len(ours) == 1 and "different" in ours[0], err
    for word in words:
        assert word in ours[0], ours[0]
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@pytest.mark.mpi
def test_ranks_that_imported_different_model_sources_refuse(tmp_path):
    """The model file edited while the job starts: rank 1 imports another source of the same model (here
    the module ``mymodel`` found on each rank's own PYTHONPATH, as a shared file system could show them)."""
    text = (REPO / "solver" / "models" / "diffusion.py").read_text()
    for name in ("r0", "r1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mymodel.py").write_text(text + ("\n# edited\n" if name == "r1" else ""))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**TINY, "model": "mymodel"}))
    env = solver_env()

    def rank(name):
        return ["env", f"PYTHONPATH={tmp_path / name}{os.pathsep}{env['PYTHONPATH']}", PYTHON, "-m", "solver",
                "run", "c.yaml"]
    command = [require("mpirun"), "--bind-to", "none", "-n", "1", *rank("r0"), ":", "-n", "1", *rank("r1")]
    proc = subprocess.Popen(command, cwd=tmp_path, env=solver_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    code, _, err = finish(proc, timeout=90)
    assert code == 2, err
    ours = [line for line in err.splitlines() if "error" in line and "Process" not in line]
    assert len(ours) == 1 and "different sources of the model" in ours[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "r0", "r1"]


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
