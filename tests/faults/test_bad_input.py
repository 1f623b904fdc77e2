"""Bad input anywhere (environment, overrides, command line) -> one line, exit 2, no traceback, no file.

tests/test_config.py covers the config file itself; this covers the environment a batch system hands the
solver and the overrides and output names a job script passes, always through the real command line.
"""
from __future__ import annotations

import pytest

from conftest import solver_env
from faultkit import config, one_line, read_cli

TINY = {"grid": {"nx": 21, "ny": 15}, "time": {"dt": 0.01, "t_end": 0.1}, "output": {"path": "out.h5"}}

BAD_ENVIRONMENT = [
    ("SLURM_CPUS_PER_TASK", "0"), ("SLURM_CPUS_PER_TASK", "abc"), ("SLURM_CPUS_PER_TASK", "-3"),
    ("SLURM_CPUS_PER_TASK", ""), ("SLURM_CPUS_PER_TASK", "2.5"),
    ("NUMBA_NUM_THREADS", "0"), ("NUMBA_NUM_THREADS", "abc"), ("NUMBA_NUM_THREADS", "-1"),
    ("NUMBA_NUM_THREADS", ""),
    ("SLURM_CPUS_PER_TASK", "\u00b2"), ("NUMBA_NUM_THREADS", "\u00b2"), ("OMPI_COMM_WORLD_SIZE", "\u0663"),  # digits
    ("NUMBA_THREADING_LAYER", "bogus"),
    ("OMPI_COMM_WORLD_SIZE", "abc"), ("OMPI_COMM_WORLD_SIZE", "0"), ("PMI_SIZE", "-2"), ("PMI_RANK", "x"),
]


def assert_refused(result, directory, *words):
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stderr}"
    line = one_line(result.stderr)
    for word in words:
        assert word in line, line
    assert result.stdout == ""
    assert sorted(p.name for p in directory.iterdir()) == ["fault.yaml"], "a refused run left files"
    return line


@pytest.mark.parametrize("name, value", BAD_ENVIRONMENT)
def test_bad_environment_variable(tmp_path, name, value):
    cfg_path = config(tmp_path, TINY)
    result = read_cli("run", cfg_path, cwd=tmp_path, env=solver_env(**{name: value}))
    assert_refused(result, tmp_path, name, repr(value), "unset it")


@pytest.mark.parametrize("name", ["SLURM_CPUS_PER_TASK", "NUMBA_NUM_THREADS"])
def test_bad_environment_refused_by_dry_run_too(tmp_path, name):
    cfg_path = config(tmp_path, TINY)
    result = read_cli("run", cfg_path, "--dry-run", cwd=tmp_path, env=solver_env(**{name: "0"}))
    assert_refused(result, tmp_path, name)


def test_good_environment_is_accepted(tmp_path):
    """The check is not a blanket refusal: sane values run."""
    cfg_path = config(tmp_path, TINY)
    env = solver_env(SLURM_CPUS_PER_TASK="1", NUMBA_NUM_THREADS="2", NUMBA_THREADING_LAYER="workqueue")
    result = read_cli("run", cfg_path, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "1 thread(s)" in result.stdout


BAD_OVERRIDES = [
    (["=5"], ["KEY=VALUE"]),
    (["grid=5"], ["grid", "section"]),
    (["grid.nx.deep=1"], ["grid.nx", "not a section"]),
    (["grid..nx=1"], ["empty part"]),
    (["output.path="], ["output.path"]),
    (["output.path=''"], ["output.path", "empty"]),
    (["time.dt=.nan"], ["time.dt", "finite"]),
    (["time.dt=.inf"], ["time.dt", "finite"]),
    (["time.dt=1e-400"], ["time.dt", "positive"]),
    (["grid.nx=1e400"], ["grid.nx", "whole number"]),
    (["grid.nx=true"], ["grid.nx", "whole number"]),
    (["grid.x=[0]"], ["grid.x", "pair"]),
    (["grid.x=[0, .nan]"], ["grid.x", "pair"]),
    (["parallel.ranks=[0, 1]"], ["parallel.ranks", "at least 1"]),
    (["parallel.threads=-1"], ["parallel.threads", "at least 1"]),
    (["parallel.threads=many"], ["parallel.threads", "auto or a whole number"]),
    (["ensemble.members=-3"], ["ensemble.members", "0 or more"]),
    (["ensemble.members=abc"], ["ensemble.members", "whole number"]),
    (["ensemble.perturb={x: 1}"], ["ensemble.perturb.x"]),
    (["numerics.kernel=7"], ["numerics.kernel", "string"]),
    (["a.b.c=1"], ["unknown key 'a'"]),
    (["grid.nx=!!python/name:os.system"], ["grid.nx", "quote it"]),
    (["grid.nx=[1"], ["grid.nx", "YAML"]),
    (["output.every=-1"], ["output.every"]),
    (["checkpoint.every=-5"], ["checkpoint.every"]),
]


@pytest.mark.parametrize("overrides, words", BAD_OVERRIDES, ids=[o[0] for o, _ in BAD_OVERRIDES])
def test_bad_override(tmp_path, overrides, words):
    cfg_path = config(tmp_path, TINY)
    sets = [arg for item in overrides for arg in ("--set", item)]
    result = read_cli("run", cfg_path, *sets, cwd=tmp_path)
    assert_refused(result, tmp_path, *words)


@pytest.mark.parametrize("output, words", [
    ("", ["empty"]),
    ("sub/", ["directory"]),
    (".", ["directory"]),
    ("/proc/out.h5", ["/proc"]),
    ("x" * 300 + ".h5", ["too long"]),
])
def test_bad_output_name(tmp_path, output, words):
    cfg_path = config(tmp_path, TINY)
    result = read_cli("run", cfg_path, "-o", output, cwd=tmp_path)
    assert_refused(result, tmp_path, *words)


@pytest.mark.parametrize("args", [["--ranks", "0"], ["--ranks", "abc"], ["--ranks", "-4"]])
def test_bad_dry_run_ranks(tmp_path, args):
    cfg_path = config(tmp_path, TINY)
    result = read_cli("run", cfg_path, "--dry-run", *args, cwd=tmp_path)
    assert_refused(result, tmp_path, "ranks")


def test_grid_bigger_than_memory(tmp_path):
    """A valid config no machine can hold: refused before allocating, one line naming the memory, exit 2."""
    cfg_path = config(tmp_path, TINY)
    sets = ["grid.nx=2000000", "grid.ny=2000000", "time.dt=1e-10", "time.t_end=1e-10"]
    result = read_cli("run", cfg_path, *[a for s in sets for a in ("--set", s)], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "memory" in one_line(result.stderr) and "TiB" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fault.yaml"]
