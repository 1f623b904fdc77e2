"""numerics.kernel: auto decided by measurement (solver/run/wisdom.py): recorded once, reused by later runs and
every rank, never changing a result; a damaged wisdom file is measured again, an unwritable kernel directory
falls back to the heuristic and says so. The tests check the decisions, never timings."""
from __future__ import annotations

import json
import os
import subprocess

import h5py
import numpy as np
import pytest

from conftest import PYTHON, REPO, require, run_solver, solver_env, write_config
from solver.core.config import SIDES
from solver.run import wisdom

# 401 x 341 nodes: a block of more than wisdom.SMALL_NODES nodes on each of two ranks; 20 steps.
GRID = {"grid": {"nx": 401, "ny": 341}, "time": {"dt": 0.002, "t_end": 0.04}, "output": {"every": 0}}


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """One kernel directory for the module (the kernels compile once), its wisdom removed before each use."""
    return tmp_path_factory.mktemp("kernels")


@pytest.fixture
def env(kernel_dir):
    (kernel_dir / wisdom.WISDOM_FILE).unlink(missing_ok=True)
    # record whatever the machine's load (a test checks decisions, and CI machines are busy)
    return solver_env(SOLVER_KERNEL_DIR=str(kernel_dir), **{wisdom.BUSY_VARIABLE: "0"})


def run(config, out, env, *extra, ranks=None):
    result = run_solver("run", config, "-o", out, "--overwrite", *extra, env=env, ranks=ranks, timeout=600)
    with h5py.File(out, "r") as f:
        attrs = {key: (value.decode() if isinstance(value, bytes) else value) for key, value in f.attrs.items()}
        return result, attrs, f["C"][-1]


def entries(kernel_dir) -> dict:
    return json.loads((kernel_dir / wisdom.WISDOM_FILE).read_text())


def test_auto_measures_once_records_and_reuses_with_the_same_bits(tmp_path, env, kernel_dir):
    config = write_config(tmp_path, **GRID)
    first, attrs, field = run(config, tmp_path / "a.h5", env)
    assert "measuring the numba, rows and tiled kernels" in first.stdout
    assert attrs["kernel_decision"] == "measured" and "measured now" in attrs["auto_choice"]
    measurement = json.loads(attrs["kernel_measurement"])
    assert set(measurement["mlups"]) == {"numba", "rows", "tiled"} and attrs["kernel"] == measurement["kernel"]
    recorded = entries(kernel_dir)
    assert list(recorded.values()) == [measurement] and "1 thread(s) x 1 rank(s)" in measurement["key"]

    second, again, same = run(config, tmp_path / "b.h5", env)
    assert "measuring" not in second.stdout
    assert again["kernel_decision"] == "wisdom" and again["kernel"] == attrs["kernel"]
    assert json.loads(again["kernel_measurement"]) == measurement and entries(kernel_dir) == recorded
    assert np.array_equal(field, same)
    for kernel in ("numba", "rows", "tiled", "numpy"):       # every candidate, and the reference: the same bits
        _, forced, bits = run(config, tmp_path / f"{kernel}.h5", env, "--set", f"numerics.kernel={kernel}")
        assert forced["kernel_decision"] == "configured" and np.array_equal(bits, field), kernel

    # The recorded winner is what later runs follow: plant the other candidate and it runs
    key, entry = next(iter(recorded.items()))
    other = "numba" if entry["kernel"] == "tiled" else "tiled"
    (kernel_dir / wisdom.WISDOM_FILE).write_text(json.dumps({key: {**entry, "kernel": other}}))
    _, planted, bits = run(config, tmp_path / "c.h5", env)
    assert (planted["kernel"], planted["kernel_decision"]) == (other, "wisdom") and np.array_equal(bits, field)

    dry = run_solver("run", config, "--dry-run", env=env).stdout
    assert f"kernel {other} (fastest of" in dry and "# kernel decision  wisdom" in dry


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"k": {"kernel": "fastest"}}', ""])
def test_a_damaged_wisdom_file_is_measured_again(tmp_path, env, kernel_dir, damage):
    (kernel_dir / wisdom.WISDOM_FILE).write_text(damage)
    config = write_config(tmp_path, **GRID)
    result, attrs, _ = run(config, tmp_path / "a.h5", env)
    assert attrs["kernel_decision"] == "measured" and "measuring" in result.stdout
    assert [e["kernel"] for e in entries(kernel_dir).values()] == [attrs["kernel"]]


def test_no_wisdom_file_in_a_read_only_kernel_directory_the_heuristic_says_so(tmp_path, env, kernel_dir):
    config = write_config(tmp_path, **GRID)
    run(config, tmp_path / "warm.h5", env, "--set", "numerics.kernel=tiled")   # the kernels exist there
    run(config, tmp_path / "warm.h5", env, "--set", "numerics.kernel=numba")
    out = tmp_path / "ro.h5"
    command = [PYTHON, "-m", "solver", "run", str(config), "-o", str(out), "--overwrite"]
    if os.geteuid() == 0:
        # root writes through permission bits, not through a read-only mount: one in a mount namespace of the
        # solver's own (needs CAP_SYS_ADMIN, as the two-node local cluster does)
        mount = f"mount --bind {kernel_dir} {kernel_dir} && mount -o remount,bind,ro {kernel_dir} && exec \"$@\""
        command = [require("unshare"), "-m", "sh", "-c", mount, "sh", *command]
    kernel_dir.chmod(0o555)
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    finally:
        kernel_dir.chmod(0o755)
    assert done.returncode == 0, done.stderr
    with h5py.File(out, "r") as f:
        decision, reason = (f.attrs[key].decode() for key in ("kernel_decision", "auto_choice"))
    assert decision == "heuristic" and "cannot be written" in reason and "measuring" not in done.stdout
    assert not (kernel_dir / wisdom.WISDOM_FILE).exists()


def test_a_measurement_on_busy_cores_decides_the_run_but_is_not_recorded(tmp_path, env, kernel_dir):
    env[wisdom.BUSY_VARIABLE] = "1000"          # no measurement gets a thousand cores per thread
    config = write_config(tmp_path, **GRID)
    for _ in range(2):
        result, attrs, _ = run(config, tmp_path / "a.h5", env)
        assert attrs["kernel_decision"] == "measured" and "not recorded: the cores were busy" in attrs["auto_choice"]
        assert not (kernel_dir / wisdom.WISDOM_FILE).exists()
    env[wisdom.BUSY_VARIABLE] = "much"
    bad = run_solver("run", config, "-o", tmp_path / "b.h5", env=env, check=False)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"error: environment: {wisdom.BUSY_VARIABLE}='much' is not a number; set it to a share such as "
        f"{wisdom.BUSY_SHARE} (0 records every measurement) or unset it"]


def test_a_small_block_is_not_measured(tmp_path, env, kernel_dir):
    config = write_config(tmp_path)            # 61 x 45 nodes
    result, attrs, _ = run(config, tmp_path / "a.h5", env)
    assert attrs["kernel_decision"] == "heuristic" and "too small to measure" in attrs["auto_choice"]
    assert attrs["kernel"] == "numba" and not (kernel_dir / wisdom.WISDOM_FILE).exists()


def test_dry_run_measures_nothing_and_says_what_the_first_run_does(tmp_path, env, kernel_dir):
    dry = run_solver("run", write_config(tmp_path, **GRID), "--dry-run", env=env).stdout
    assert "the first run measures numba, rows and tiled" in dry and "# kernel decision  heuristic" in dry
    assert not (kernel_dir / wisdom.WISDOM_FILE).exists()


def test_record_keeps_other_entries_and_replaces_the_file_whole(tmp_path):
    file = tmp_path / "sub" / wisdom.WISDOM_FILE
    assert wisdom.read(str(file)) == {}
    assert wisdom.record(str(file), "a", {"kernel": "numba", "mlups": {}})
    assert wisdom.record(str(file), "b", {"kernel": "tiled", "mlups": {}})
    assert set(wisdom.read(str(file))) == {"a", "b"}
    assert [p.name for p in file.parent.iterdir()] == [wisdom.WISDOM_FILE]     # no temporary file left
    file.write_bytes(b"\xff\xfe garbage")
    assert wisdom.read(str(file)) == {}


@pytest.mark.mpi
def test_every_rank_follows_rank_0s_decision_of_kernel_and_halo(tmp_path, env, kernel_dir):
    require("mpirun")
    config = write_config(tmp_path, **GRID)
    _, serial, field = run(config, tmp_path / "serial.h5", env, "--set", "numerics.kernel=numpy")
    first, attrs, bits = run(config, tmp_path / "a.h5", env, ranks=2)
    assert first.stdout.count("measuring") == 1 and attrs["kernel_decision"] == "measured"
    (key, entry), = entries(kernel_dir).items()
    assert "2 rank(s) on the node" in key and np.array_equal(bits, field)
    # under MPI the halo widths are timed too: an exchange every step (overlapped) or every 15 (31 tiled)
    assert set(entry["mlups"]) == {"numba/halo 1", "numba/halo 15", "rows/halo 1", "rows/halo 15", "tiled/halo 31"}
    assert f"halo {entry['halo']} (an exchange every {entry['halo']} step(s), measured" in attrs["auto_choice"]
    other = ("numba", 1) if (entry["kernel"], entry["halo"]) != ("numba", 1) else ("rows", 15)
    (kernel_dir / wisdom.WISDOM_FILE).write_text(json.dumps({key: {**entry, "kernel": other[0], "halo": other[1]}}))
    second, again, bits = run(config, tmp_path / "b.h5", env, ranks=2)
    assert "measuring" not in second.stdout
    assert (again["kernel"], again["kernel_decision"]) == (other[0], "wisdom") and np.array_equal(bits, field)
    assert f"halo {other[1]} (an exchange every {other[1]} step(s), measured" in again["auto_choice"]


@pytest.mark.parametrize("sides, timed", [
    ("fixed", {"numba": ("numba", None), "rows": ("rows", None), "tiled": ("tiled", None)}),
    ("periodic", {"numba/halo 1": ("numba", 1), "numba/halo 15": ("numba", 15), "rows/halo 1": ("rows", 1),
                  "rows/halo 15": ("rows", 15), "tiled/halo 31": ("tiled", 31)}),
    ("zero_flux", {"numba": ("numba", None), "rows": ("rows", None)}),
])
def test_halo_widths_are_timed_where_halos_are_exchanged_and_not_refilled_every_step(tmp_path, sides, timed):
    from solver.core.config import load
    cfg = load(write_config(tmp_path, **GRID), [f"boundary.{side}={sides}" for side in SIDES])
    assert wisdom.ways(cfg, (1, 1)) == timed
    configured = load(write_config(tmp_path, **GRID), [f"boundary.{side}={sides}" for side in SIDES]
                      + ["parallel.halo=5"])
    assert all(halo is None for _, halo in wisdom.ways(configured, (1, 1)).values())


def test_a_wisdom_entry_with_a_halo_that_is_no_width_is_measured_again(tmp_path):
    file = tmp_path / wisdom.WISDOM_FILE
    file.write_text(json.dumps({"a": {"kernel": "numba", "halo": 0}, "b": {"kernel": "numba", "halo": "15"},
                                "c": {"kernel": "numba", "halo": 15}, "d": {"kernel": "rows"}}))
    assert set(wisdom.read(str(file))) == {"c", "d"}


def test_the_benchmarks_in_cache_ceiling_is_measured_not_sized_from_the_reported_cache(monkeypatch):
    """The ceiling's grids are a sweep of sizes, whatever cache sysfs reports (a guest may report its host's)."""
    from solver import machine
    from solver.bench import main as bench

    def reported():
        raise AssertionError("the benchmark read the reported cache size")
    monkeypatch.setattr(machine, "last_level_cache", reported)
    monkeypatch.setattr(machine, "data_caches", reported)
    grids = bench.in_cache_grids(1)
    kib = [2 * 8 * nx * ny // 1024 for ny, nx in grids]
    assert len(grids) >= bench.SWEEP_LEAST and kib == sorted(kib) and kib[0] <= 512 and kib[-1] >= 32 * 1024
    assert all(nx == 1000 for _, nx in grids)


def test_waiting_threads_and_ranks_sleep_or_yield_unless_told_otherwise(monkeypatch):
    """OpenMP threads wait passively and Open MPI's waits yield (busy cores: docs/performance.md), each unless
    the variable is set already."""
    from solver import comm
    from solver.run import planning
    environ = {}
    comm.yielding_waits(environ)
    assert environ == {"OMPI_MCA_mpi_yield_when_idle": "1"}
    environ = {"OMPI_MCA_mpi_yield_when_idle": "0"}
    comm.yielding_waits(environ)
    assert environ == {"OMPI_MCA_mpi_yield_when_idle": "0"}
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    planning.passive_waiting()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    planning.passive_waiting()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
