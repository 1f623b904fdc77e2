"""MPI: the same bits for every number of ranks, process grid, halo width and thread count; the halo
exchange of rank ids; one failing rank ending the whole job; the mpi2d job script.

Every launch is a real ``mpirun`` (oversubscribed: up to 4 ranks on any machine) on the odd 61 x 45 grid of
conftest.SMALL. Many cases share one launch (tests/mpi_cases.py) to keep the module to about a minute.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess

import h5py
import numpy as np
import pytest
import xarray

from conftest import PYTHON, REPO, require, run_solver, solver_env, write_config

pytestmark = pytest.mark.mpi
TIMEOUT = 150            # seconds for one launch; a hang fails the test instead of the suite
SHAPES = {n: [(px, n // px) for px in range(1, n + 1) if n % px == 0] for n in (2, 3, 4)}


def mpi_env(**extra: str) -> dict:
    """solver_env, plus passive OpenMP waits: up to 4 ranks x 2 threads share the cores here, and spinning
    threads made one 4 x 2 case take 10 s instead of 0.1 s (the solver sets this itself only when its own
    first run is oversubscribed, which is not so for the first case of a batch)."""
    return solver_env(OMP_WAIT_POLICY="PASSIVE", **extra)


def launch(command: list[str], env: dict | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run command in its own session; on timeout kill the whole group (mpirun and every rank) and fail."""
    with subprocess.Popen(command, cwd=REPO, env=env or mpi_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            pytest.fail(f"{' '.join(command)} still running after {timeout} s (hung?):\n{out[-2000:]}\n{err[-2000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def mpirun(ranks: int, *args, env: dict | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return launch([require("mpirun"), "-n", str(ranks), "--bind-to", "none", *map(str, args)], env, timeout)


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (f"{' '.join(result.args)} failed ({result.returncode}):\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def field(path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        assert f.attrs["complete"] == 1
        return f["C"][...]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The small config and its serial run (one process, one thread, no MPI): the reference bits."""
    directory = tmp_path_factory.mktemp("mpi")
    config = write_config(directory)
    run_solver("run", config, "-o", directory / "serial.h5")
    return config, field(directory / "serial.h5")


@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_every_process_grid_halo_and_thread_count_gives_the_serial_bits(small, ranks, tmp_path):
    config, serial = small
    cases = [f"{px}x{py}-h{halo}-t{threads}" for px, py in SHAPES[ranks] for halo in (1, 2, 3)
             for threads in (1, 2)]
    succeeded(mpirun(ranks, PYTHON, REPO / "tests" / "mpi_cases.py", config, tmp_path, *cases))
    for case in cases:
        path = tmp_path / f"{case}.h5"
        assert np.array_equal(field(path), serial), f"{case}: differs from the serial run"
        with h5py.File(path, "r") as f:
            px, py = map(int, case.split("-")[0].split("x"))
            assert (f.attrs["ranks"], list(f.attrs["process_grid"])) == (ranks, [px, py])
            assert f.attrs["threads_per_rank"] == int(case[-1])


def test_command_line_under_mpirun_and_xarray_reads_the_parallel_file(small, tmp_path):
    config, serial = small
    for ranks in (1, 3):
        out = tmp_path / f"cli-{ranks}.h5"
        result = succeeded(mpirun(ranks, PYTHON, "-m", "solver", "run", config, "-o", out))
        assert f"{ranks} rank(s)" in result.stdout
        assert np.array_equal(field(out), serial), f"mpirun -n {ranks}: differs from the serial run"
    with xarray.open_dataset(tmp_path / "cli-3.h5", engine="h5netcdf") as ds:
        assert ds["C"].dims == ("time", "y", "x")
        assert ds.sizes == {"time": serial.shape[0], "y": 45, "x": 61}
        assert np.array_equal(ds["C"].values, serial)
        assert np.array_equal(ds["x"].values, np.linspace(0.0, 2.0, 61))
        assert np.array_equal(ds["time"].values, np.arange(0, 101, 25) * 0.01)
        assert ds.attrs["ranks"] == 3 and ds.attrs["complete"] == 1


def test_threads_match_serial(small, tmp_path):
    config, serial = small
    run_solver("run", config, "-o", tmp_path / "t2.h5", "--set", "parallel.threads=2")
    assert np.array_equal(field(tmp_path / "t2.h5"), serial)


def test_halo_exchange_delivers_each_neighbours_rank_id(small):
    config, _ = small
    result = succeeded(mpirun(4, PYTHON, REPO / "tests" / "mpi_halo_ranks.py", config))
    lines = [line for line in result.stdout.splitlines() if line.startswith("process grid")]
    expected = sum(len(shapes) for shapes in SHAPES.values()) * 3
    assert len(lines) == expected and all(line.endswith(": ok") for line in lines), result.stdout


def test_a_failing_rank_ends_the_job_and_leaves_only_partial_output(small, tmp_path):
    config, _ = small
    out = tmp_path / "fail.h5"
    result = mpirun(3, PYTHON, "-m", "solver", "run", config, "-o", out,
                    env=mpi_env(SOLVER_FAIL_AT="1:50"), timeout=30)
    assert result.returncode != 0
    assert "rank 1: error: injected failure at step 50" in result.stderr, result.stderr[-3000:]
    assert not out.exists()
    assert out.with_name("fail.h5.partial").exists()


def test_a_launch_that_mpi4py_does_not_see_is_refused(small, tmp_path):
    """PMI_SIZE=2 but a single process: what each rank finds when mpirun is another MPI than mpi4py's."""
    config, _ = small
    out = tmp_path / "alone.h5"
    result = launch([PYTHON, "-m", "solver", "run", config, "-o", out], env=mpi_env(PMI_SIZE="2", PMI_RANK="0"))
    assert result.returncode == 2, result.stderr[-3000:]
    error, = [line for line in result.stderr.splitlines() if "error" in line]
    assert error.startswith("error: the launcher started 2 ranks but MPI sees 1: the launcher and mpi4py (")
    assert "are different MPIs" in error and not out.exists()


def test_process_grid_that_does_not_match_the_ranks_is_one_line_and_exit_2(small, tmp_path):
    config, _ = small
    out = tmp_path / "mismatch.h5"
    result = mpirun(3, PYTHON, "-m", "solver", "run", config, "-o", out, "--set", "parallel.ranks=[2, 2]")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "parallel.ranks = [2, 2] needs 4 ranks" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not out.with_name("mismatch.h5.partial").exists()


@pytest.mark.parametrize("override, message", [
    ("output.compression_level=12", "output.compression_level = 12 must be a gzip level"),
    ("time.dt=1", "time.dt = 1.0 is unstable"),
])
def test_a_config_every_rank_refuses_is_said_once(small, tmp_path, override, message):
    """Refused while loading, before MPI starts: rank 0 says it, once, and the MPI library adds nothing."""
    config, _ = small
    out = tmp_path / "refused.h5"
    result = mpirun(2, PYTHON, "-m", "solver", "run", config, "-o", out, "--set", override)
    assert result.returncode == 2, result.stderr
    error, = [line for line in result.stderr.splitlines() if line.strip()]      # one line, once, nothing else
    assert error.startswith("error:") and message in error, result.stderr
    assert not out.exists() and not out.with_name("refused.h5.partial").exists()


def test_a_dry_run_under_mpirun_is_said_once(small, tmp_path):
    """A job script's dry run: every rank predicts, rank 0 prints the prediction and its warnings once, or
    the refusal, once."""
    config, _ = small
    result = succeeded(mpirun(2, PYTHON, "-m", "solver", "run", config, "--dry-run", "--set",
                              "output.compression_level=9"))
    assert result.stdout.count("# decomposition    2 rank(s)") == 1, result.stdout
    warning, = [line for line in result.stderr.splitlines() if line.strip()]
    assert warning.startswith("warning:") and "output.compression_level = 9 has no effect" in warning
    result = mpirun(2, PYTHON, "-m", "solver", "run", config, "--dry-run", "--set", "time.dt=1")
    assert result.returncode == 2 and not result.stdout, result.stdout
    error, = [line for line in result.stderr.splitlines() if line.strip()]
    assert error.startswith("error:") and "time.dt = 1.0 is unstable" in error, result.stderr


def test_mpi2d_script_runs_a_small_config(small, tmp_path):
    config, serial = small
    auto = write_config(tmp_path, "auto.yaml", parallel={"threads": "auto"})
    out = tmp_path / "script.h5"
    script = [require("bash"), str(REPO / "jobs" / "mpi2d.sh")]
    result = succeeded(launch([*script, auto, "-o", out], env=mpi_env(NP="2")))
    assert "launch: mpirun -n 2 --bind-to none" in result.stderr
    assert np.array_equal(field(out), serial)
    with h5py.File(out, "r") as f:      # auto threads: the cores shared by the ranks on the node
        assert f.attrs["ranks"] == 2
        assert f.attrs["threads_per_rank"] == max(1, min(len(os.sched_getaffinity(0)), os.cpu_count() // 2))


def test_mpi2d_script_defaults_to_the_mpi2d_config_and_checks_its_settings():
    script = [require("bash"), str(REPO / "jobs" / "mpi2d.sh")]
    result = succeeded(launch([*script, "--dry-run"], env=mpi_env(NP="1")))
    assert "nx: 2048" in result.stdout and "results/mpi2d.h5" in result.stdout
    result = launch([*script, "--dry-run"], env=mpi_env(LAUNCHER="qsub"))
    assert result.returncode == 2 and "LAUNCHER = 'qsub'; use LAUNCHER=srun or LAUNCHER=mpirun" in result.stderr


def test_bench_mpi_interleaves_one_rank_and_two_ranks(tmp_path):
    """`bench --mpi`: both launches of every kernel, each timed --mpi-repeats times, and the ratio of their
    medians (the figures themselves are the benchmark's business, not the test's)."""
    run_solver("bench", "--sizes", "12x9", "--kernels", "numba", "--threads", "1", "--seconds", "0.01",
               "--repeats", "1", "--copy-mib", "2", "--mpi", "--mpi-sizes", "40x24", "--mpi-steps", "10",
               "--mpi-repeats", "2", "--json", tmp_path / "bench.json", env=mpi_env(), timeout=600)
    rows = json.loads((tmp_path / "bench.json").read_text())["mpi"]
    assert {(r["kernel"], r["ranks"]) for r in rows} == {("auto", 1), ("auto", 2), ("numba", 1), ("numba", 2)}
    for row in rows:
        assert len(row["mlups_samples"]) == 2 and row["mlups"] > 0
        assert row["ratio_to_one_rank"] == (1.0 if row["ranks"] == 1 else pytest.approx(
            row["mlups"] / next(r["mlups"] for r in rows if r["ranks"] == 1 and r["kernel"] == row["kernel"])))
