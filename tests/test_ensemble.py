"""Ensembles for real: GNU parallel over solver/ensemble.py, resuming, --force, the pool driver, a failing
member and --resume-failed, the job-array block arithmetic and the statistics script (tiny grids)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import PYTHON, REPO, require, solver_env
from solver.core import config as config_module
from solver import ensemble

MEMBERS = 20
TINY = {
    "grid": {"nx": 33, "ny": 17, "x": [0.0, 2.0], "y": [0.0, 1.0]},
    "physics": {"diffusivity": 0.002},
    "initial": {"center": [1.0, 0.5], "sigma": 0.1, "amplitude": 1.0},
    "time": {"dt": 0.01, "t_end": 0.2},
    "output": {"every": 0},
    "parallel": {"threads": "auto"},
    "ensemble": {"seed": 7, "members": MEMBERS, "output_dir": "members", "perturb": {
        "physics.diffusivity": {"dist": "lognormal", "mean": -6.2146, "sigma": 0.3},
        "initial.center": {"dist": "normal", "mean": [1.0, 0.5], "std": [0.1, 0.05]},
        "initial.sigma": {"dist": "uniform", "low": 0.08, "high": 0.15}}},
}


def tiny_config(directory: Path, name: str = "tiny.yaml", **ensemble_keys) -> Path:
    data = yaml.safe_load(yaml.safe_dump(TINY))
    data["ensemble"]["output_dir"] = str(directory / ensemble_keys.pop("output_dir", "members"))
    data["ensemble"].update(ensemble_keys)
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def sh(command: str, timeout: float = 240, **env) -> subprocess.CompletedProcess:
    """A shell pipeline from the repository root, as a user types it."""
    return subprocess.run(["bash", "-c", command], cwd=REPO, env=solver_env(**env), capture_output=True,
                          text=True, timeout=timeout)


def member_file(cfg_path: Path, member: int) -> Path:
    return Path(ensemble.member_path(config_module.load(cfg_path), member))


def final_field(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["C"][-1]


def parameters(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        keys = f.attrs["ensemble_parameters"].decode().split(",")
        return {key: np.asarray(f.attrs[f"param.{key}"]).tolist() for key in keys}


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory):
    """``seq 20 | parallel -P2 python solver/ensemble.py --config tiny.yaml``, once for the module."""
    require("parallel")
    directory = tmp_path_factory.mktemp("ensemble")
    cfg = tiny_config(directory)
    result = sh(f"seq {MEMBERS} | parallel -P2 python solver/ensemble.py --config {cfg}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return cfg, result


def test_parallel_writes_every_member_with_its_draws(parallel_run):
    cfg_path, result = parallel_run
    cfg = config_module.load(cfg_path)
    assert sorted(int(line.split()[1].rstrip(":")) for line in result.stdout.splitlines()
                  if " done in " in line) == list(range(1, MEMBERS + 1))
    draws = set()
    for member in range(1, MEMBERS + 1):
        path = member_file(cfg_path, member)
        with h5py.File(path, "r") as f:
            assert f.attrs["complete"] == 1 and f.attrs["ensemble_member"] == member
            assert f.attrs["git_commit"] and "ensemble.py" in f.attrs["solver_command"].decode()
            stored = yaml.safe_load(f.attrs["config"])
        drawn = ensemble.draw(cfg, member)
        assert parameters(path) == drawn                   # stored exactly
        assert stored["physics"]["diffusivity"] == drawn["physics.diffusivity"]
        assert stored["initial"]["center"] == drawn["initial.center"]
        draws.add(drawn["physics.diffusivity"])
        assert not Path(str(path) + ".partial").exists()
    assert len(draws) == MEMBERS            # members differ


def test_rerun_skips_every_member_and_force_gives_the_same_bits(parallel_run):
    cfg_path, _ = parallel_run
    before = {m: member_file(cfg_path, m).stat().st_mtime_ns for m in range(1, MEMBERS + 1)}
    again = sh(f"seq {MEMBERS} | parallel -P2 python solver/ensemble.py --config {cfg_path}")
    assert again.returncode == 0, again.stderr
    skipped = [line for line in again.stdout.splitlines() if "skipped" in line]
    assert len(skipped) == MEMBERS and " done in " not in again.stdout
    assert before == {m: member_file(cfg_path, m).stat().st_mtime_ns for m in range(1, MEMBERS + 1)}

    path = member_file(cfg_path, 5)
    old, old_params = final_field(path), parameters(path)
    with h5py.File(path, "r") as f:
        old_start = f.attrs["start_time"]
    forced = subprocess.run([PYTHON, "solver/ensemble.py", "--config", str(cfg_path), "--force", "5"], cwd=REPO,
                            env=solver_env(), capture_output=True, text=True, timeout=120)
    assert forced.returncode == 0 and "member 5: done" in forced.stdout, forced.stderr
    assert path.stat().st_mtime_ns != before[5]           # recomputed, not skipped
    np.testing.assert_array_equal(final_field(path), old)
    assert final_field(path).tobytes() == old.tobytes() and parameters(path) == old_params
    with h5py.File(path, "r") as f:
        assert f.attrs["start_time"] >= old_start


def test_pool_gives_the_same_files_as_gnu_parallel(parallel_run, tmp_path):
    cfg_path, _ = parallel_run
    data = yaml.safe_load(cfg_path.read_text())
    data["ensemble"]["output_dir"] = str(tmp_path / "pool")
    pool_cfg = tmp_path / "pool.yaml"
    pool_cfg.write_text(yaml.safe_dump(data))
    result = subprocess.run([PYTHON, "-m", "solver.pool", "--config", str(pool_cfg), "-j", "2"], cwd=REPO,
                            env=solver_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for member in range(1, MEMBERS + 1):
        ours, theirs = member_file(pool_cfg, member), member_file(cfg_path, member)
        assert final_field(ours).tobytes() == final_field(theirs).tobytes(), member
        assert parameters(ours) == parameters(theirs)


def test_bad_member_numbers_are_one_line_and_exit_2(tmp_path):
    cfg = tiny_config(tmp_path)
    for bad in ("0", "-3", "abc", "", "2.5"):
        result = subprocess.run([PYTHON, "solver/ensemble.py", "--config", str(cfg), "1", bad], cwd=REPO,
                                env=solver_env(), capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (bad, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert repr(bad) in result.stderr
    beyond = subprocess.run([PYTHON, "solver/ensemble.py", "--config", str(cfg), str(MEMBERS + 1)], cwd=REPO,
                            env=solver_env(), capture_output=True, text=True, timeout=60)
    assert beyond.returncode == 2 and "ensemble.members" in beyond.stderr
    assert not (tmp_path / "members").exists()


def test_member_path_imports_no_mpi4py_and_loads_cached_kernels(parallel_run):
    cfg_path, _ = parallel_run
    result = subprocess.run([PYTHON, "-X", "importtime", "solver/ensemble.py", "--config", str(cfg_path),
                             "--force", "3"], cwd=REPO, env=solver_env(NUMBA_DEBUG_CACHE="1"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "mpi4py" not in result.stderr
    assert "data loaded" in result.stdout and "data saved" not in result.stdout   # numba's cache, no compile


def test_a_numpy_kernel_member_imports_no_numba(tmp_path):
    """The numpy kernel (configs/ensemble.yaml's) needs no numba: its import alone costs a small member 2x."""
    cfg = tiny_config(tmp_path, "numpy.yaml")
    data = yaml.safe_load(cfg.read_text())
    data["numerics"] = {"kernel": "numpy"}
    cfg.write_text(yaml.safe_dump(data))
    result = subprocess.run([PYTHON, "-X", "importtime", "solver/ensemble.py", "--config", str(cfg), "--force", "2"],
                            cwd=REPO, env=solver_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "h5py" in imported and "numba" not in imported and "mpi4py" not in imported


def failing_config(directory: Path) -> tuple[Path, int]:
    """A tiny ensemble whose diffusivity is unstable for exactly one member (found by the real validation)."""
    perturb = {"physics.diffusivity": {"dist": "uniform", "low": 0.001, "high": 0.1}}
    for seed in range(500):
        cfg = tiny_config(directory, "failing.yaml", seed=seed, perturb=perturb, output_dir="failing")
        loaded = config_module.load(cfg)
        bad = []
        for member in range(1, MEMBERS + 1):
            try:
                ensemble.member_config(loaded, member)
            except config_module.ConfigError:
                bad.append(member)
        if len(bad) == 1:
            return cfg, bad[0]
    raise AssertionError("no seed with exactly one unstable member; widen the search")


def joblog_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


def test_a_failing_member_fails_alone_and_resume_reruns_only_it(tmp_path):
    require("parallel")
    cfg, bad = failing_config(tmp_path)
    first = sh("bash jobs/ensemble.sh", ENSEMBLE_CONFIG=str(cfg), ENSEMBLE_JOBS="2")
    assert first.returncode != 0
    errors = [line for line in first.stderr.splitlines() if line.startswith("error: member")]
    assert len(errors) == 1 and f"member {bad} " in errors[0] and "unstable" in errors[0], first.stderr
    assert "Traceback" not in first.stderr
    joblog = tmp_path / "failing" / f"joblog-0001-{MEMBERS:04d}.tsv"
    rows = joblog_rows(joblog)
    assert len(rows) == MEMBERS
    assert [int(r[8].split()[-1]) for r in rows if r[6] != "0"] == [bad]
    done = {m: member_file(cfg, m).stat().st_mtime_ns for m in range(1, MEMBERS + 1) if m != bad}
    assert len(done) == MEMBERS - 1 and not member_file(cfg, bad).exists()

    # Fix the cause (a smaller dt keeps every draw stable) and run the same command again.
    data = yaml.safe_load(cfg.read_text())
    data["time"]["dt"] = 0.005
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    second = sh("bash jobs/ensemble.sh", ENSEMBLE_CONFIG=str(cfg), ENSEMBLE_JOBS="2")
    assert second.returncode == 0, second.stderr
    rows = joblog_rows(joblog)
    assert len(rows) == MEMBERS + 1 and int(rows[-1][8].split()[-1]) == bad and rows[-1][6] == "0"
    assert f"member {bad}: done" in second.stdout and second.stdout.count(" done in ") == 1
    assert member_file(cfg, bad).exists()
    assert done == {m: member_file(cfg, m).stat().st_mtime_ns for m in done}


def test_array_task_runs_its_block(parallel_run):
    """jobs/ensemble-array.slurm's block arithmetic, run with bash and the array variables SLURM would set."""
    cfg_path, _ = parallel_run
    result = sh("bash jobs/ensemble-array.slurm", ENSEMBLE_CONFIG=str(cfg_path), ENSEMBLE_BLOCK="6",
                SLURM_ARRAY_TASK_ID="3", SLURM_ARRAY_TASK_MAX="3", SLURM_CPUS_PER_TASK="1")
    assert result.returncode == 0, result.stderr
    skipped = sorted(int(line.split()[1].rstrip(":")) for line in result.stdout.splitlines() if "skipped" in line)
    assert skipped == [19, 20]                                    # block 3 of 6: members 19..24, cut at 20
    assert "covers members 1..24" not in result.stderr
    short = sh("bash jobs/ensemble-array.slurm", ENSEMBLE_CONFIG=str(cfg_path), ENSEMBLE_BLOCK="6",
               SLURM_ARRAY_TASK_ID="2", SLURM_ARRAY_TASK_MAX="2", SLURM_CPUS_PER_TASK="1")
    assert short.returncode == 0 and "--array=0-3" in short.stderr     # members 19, 20 left out: says so


def test_statistics_stream_members_and_list_missing_ones(parallel_run, tmp_path):
    cfg_path, _ = parallel_run
    data = yaml.safe_load(cfg_path.read_text())
    source = Path(data["ensemble"]["output_dir"])
    data["ensemble"]["output_dir"] = str(tmp_path / "copy")
    cfg = tmp_path / "stats.yaml"
    cfg.write_text(yaml.safe_dump(data))
    shutil.copytree(source, tmp_path / "copy")
    (tmp_path / "copy" / "member-0004.h5").unlink()                                    # missing
    (tmp_path / "copy" / "member-0009.h5").rename(tmp_path / "copy" / "member-0009.h5.partial")   # failed

    result = subprocess.run([PYTHON, "analysis/ensemble_stats.py", "--config", str(cfg), "--memory-mib", "0.002"],
                            cwd=REPO, env=solver_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "missing (1, no file): 4" in result.stdout and "failed: member 9:" in result.stdout
    used = [m for m in range(1, MEMBERS + 1) if m not in (4, 9)]
    finals = np.stack([final_field(tmp_path / "copy" / f"member-{m:04d}.h5") for m in used])

    import xarray as xr
    with xr.open_dataset(tmp_path / "copy" / "stats.h5", engine="h5netcdf") as stats:
        assert stats["member"].values.tolist() == used
        np.testing.assert_allclose(stats["mean"].values, finals.mean(axis=0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(stats["std"].values, finals.std(axis=0, ddof=1), rtol=1e-9, atol=1e-14)
        np.testing.assert_array_equal(stats["min"].values, finals.min(axis=0))
        np.testing.assert_array_equal(stats["max"].values, finals.max(axis=0))
        np.testing.assert_array_equal(stats["quantiles"].values,       # row blocks of 1 row (tiny memory)
                                      np.quantile(finals, [0.05, 0.5, 0.95], axis=0))
        np.testing.assert_allclose(stats["peak"].values, finals.max(axis=(1, 2)))
        drawn = [ensemble.draw(config_module.load(cfg), m)["physics.diffusivity"] for m in used]
        assert stats["param_physics_diffusivity"].values.tolist() == drawn
        assert stats["param_initial_center_1"].attrs["units"] == "m"
        assert stats["param_physics_diffusivity"].attrs["units"] == "m2 s-1"     # the model's UNITS
        assert stats["mean"].attrs["long_name"].startswith("mean of concentration C in the final field")
        assert stats.attrs["members_missing"] == "4" and stats.attrs["members_failed"] == "9"
    for png in ("stats-fields.png", "stats-scalars.png"):
        assert (tmp_path / "copy" / png).stat().st_size > 10_000


def test_draws_depend_only_on_seed_member_and_key():
    cfg = config_module.from_dict(yaml.safe_load(yaml.safe_dump(TINY)), "tiny")
    first = ensemble.draw(cfg, 17)
    assert ensemble.draw(cfg, 17) == first and ensemble.draw(cfg, 18) != first
    assert len(first["initial.center"]) == 2 and first["initial.center"][0] != first["initial.center"][1]
    data = yaml.safe_load(yaml.safe_dump(TINY))
    data["ensemble"]["perturb"] = {"initial.amplitude": {"dist": "choice", "values": [1.0, 2.0]},
                                   **dict(reversed(list(data["ensemble"]["perturb"].items())))}
    more = ensemble.draw(config_module.from_dict(data, "tiny"), 17)
    assert {k: v for k, v in more.items() if k in first} == first     # adding or reordering keys changes none
    assert more["initial.amplitude"] in (1.0, 2.0)


@pytest.mark.parametrize("spec, message", [
    ({"physics.diffusivity": {"dist": "uniform", "low": 1, "high": 0}}, "high > low"),
    ({"initial.center": {"dist": "normal", "mean": [1, 2, 3], "std": 0.1}}, "list of 2 numbers"),
    ({"initial.sigma": {"dist": "lognormal", "mean": -3, "sigma": -1}}, "must not be negative"),
    ({"initial.sigma": {"dist": "choice", "values": []}}, "non-empty list"),
    ({"initial.sigma": {"dist": "normal", "mean": "a", "std": 1}}, "expected a number"),
])
def test_bad_perturbations_are_config_errors(spec, message):
    with pytest.raises(config_module.ConfigError, match=message):
        config_module.from_dict({"ensemble": {"perturb": spec}}, "x.yaml")


def test_draws_follow_the_seed():
    """Another ensemble.seed draws other values for every member and key; the same seed the same ones."""
    def drawn(seed):
        data = yaml.safe_load(yaml.safe_dump(TINY))
        data["ensemble"]["seed"] = seed
        cfg = config_module.from_dict(data, "tiny")
        return [ensemble.draw(cfg, member) for member in (1, 2, 3)]
    seven, eight = drawn(7), drawn(8)
    assert drawn(7) == seven
    for a, b in zip(seven, eight):
        assert all(a[key] != b[key] for key in a), (a, b)
