"""Configuration: defaults, overrides and one clear line for every kind of bad input."""
from __future__ import annotations

import subprocess

import pytest

from solver.core import config
from solver.core.config import ConfigError

from conftest import PYTHON, REPO, solver_env, write_config


def test_default_config_is_the_reference_problem():
    cfg = config.load(REPO / "configs/default.yaml")
    assert (cfg.grid.nx, cfg.grid.ny, cfg.grid.x, cfg.grid.y) == (1024, 512, (0.0, 2.0), (0.0, 1.0))
    assert (cfg.physics.diffusivity, cfg.time.dt, cfg.time.t_end) == (0.0009, 0.001, 5.0)
    assert (cfg.initial.center, cfg.initial.sigma, cfg.initial.amplitude) == ((1.0, 0.5), 0.05, 1.0)
    assert cfg.nsteps == 5000
    assert cfg.dx == pytest.approx(2 / 1023) and cfg.dy == pytest.approx(1 / 511)   # own dx and dy
    assert cfg.stability < 1.0 and cfg.model == "diffusion"


def test_overrides_are_parsed_as_yaml():
    cfg = config.load(REPO / "configs/default.yaml", ["time.t_end=0.5", "grid.x=[0, 4]", "parallel.threads=2"])
    assert cfg.time.t_end == 0.5 and cfg.grid.x == (0.0, 4.0) and cfg.parallel.threads == 2


def test_config_round_trips_through_yaml(tmp_path):
    cfg = config.load(REPO / "configs/default.yaml")
    path = tmp_path / "again.yaml"
    path.write_text(cfg.to_yaml())
    assert config.load(path) == cfg


BAD = [
    # (file text or None, overrides, words the message must contain)
    ("grid: {nx: 10\n", [], ["line", "YAML syntax"]),
    ("grid:\n  nxx: 10\n", [], ["grid.nxx", "did you mean grid.nx"]),
    ("gird:\n  nx: 10\n", [], ["gird", "did you mean grid"]),
    ("grid:\n  nx: ten\n", [], ["grid.nx", "whole number"]),
    ("grid:\n  nx: 2\n", [], ["grid.nx", "at least 3"]),
    ("grid:\n  ny: 1\n", [], ["grid.ny", "at least 3"]),
    ("time:\n  dt: 0\n", [], ["time.dt", "positive"]),
    ("time:\n  dt: -0.001\n", [], ["time.dt", "positive"]),
    ("time:\n  t_end: 0\n", [], ["time.t_end", "positive"]),
    ("physics:\n  diffusivity: -1\n", [], ["physics.diffusivity", "positive"]),
    ("time:\n  dt: 0.002\n", [], ["unstable", "time.dt <= 0.001"]),
    ("time:\n  t_end: 1.0005\n", [], ["whole number of steps", "t_end"]),
    ("grid: !!python/object/apply:os.system ['true']\n", [], ["tag"]),
    ("- 1\n- 2\n", [], ["mapping"]),
    ("grid: 5\n", [], ["grid", "section"]),
    (None, ["grid.nx"], ["KEY=VALUE"]),
    (None, ["grid.nx=[1"], ["grid.nx", "YAML"]),
    (None, ["output.probes={a: [1, 0.5], a: [1.2, 0.5]}"], ["--set output.probes", "'a' appears twice"]),
    (None, ["grid.nx=9223372036854775808"], ["grid.nx", "too large", "64 bits"]),
    (None, ["grid.nyy=5"], ["grid.nyy", "did you mean grid.ny"]),
    (None, ["numerics.kernel=numbaa"], ["numerics.kernel", "did you mean numba"]),
    (None, ["parallel.threads=0"], ["parallel.threads", "at least 1"]),
    (None, ["parallel.halo=0"], ["parallel.halo", "at least 1"]),
    (None, ["grid.x=[1, 0]"], ["grid.x", "upper end"]),
]


@pytest.mark.parametrize("text, overrides, words", BAD)
def test_bad_config_gives_one_clear_line(tmp_path, text, overrides, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text if text is not None else "{}\n")
    with pytest.raises(ConfigError) as err:
        config.load(path, overrides)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        config.load(tmp_path / "nope.yaml")


def cli(*args, cwd):
    return subprocess.run([PYTHON, "-m", "solver", *map(str, args)], cwd=cwd, env=solver_env(),
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("text, overrides, words", [BAD[0], BAD[1], BAD[10], BAD[11], BAD[12], BAD[17]])
def test_cli_rejects_bad_config_with_exit_2_and_no_file(tmp_path, text, overrides, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text if text is not None else "{}\n")
    sets = [a for o in overrides for a in ("--set", o)]
    result = cli("run", path, *sets, "-o", tmp_path / "out.h5", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert all(word in result.stderr for word in words), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_cli_refuses_existing_output_and_unwritable_directory(tmp_path, small_config):
    existing = tmp_path / "exists.h5"
    existing.write_text("precious")
    result = cli("run", small_config, "-o", existing, cwd=tmp_path)
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert existing.read_text() == "precious"

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = cli("run", small_config, "-o", blocker / "sub" / "out.h5", cwd=tmp_path)
    assert result.returncode == 2 and "output directory" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_usage_errors_are_one_line(tmp_path):
    for args in (["frobnicate"], ["run"], ["run", "x.yaml", "--bogus"]):
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_validate_prints_the_resolved_config(tmp_path):
    path = write_config(tmp_path, grid={"nx": 33})
    result = cli("validate", path, "--set", "time.t_end=0.5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resolved = config.parse_yaml(result.stdout, "stdout")
    assert resolved["grid"]["nx"] == 33 and resolved["time"]["t_end"] == 0.5


def test_help_everywhere(tmp_path):
    for args in (["--help"], ["run", "--help"], ["validate", "--help"], ["info", "--help"]):
        result = cli(*args, cwd=tmp_path)
        assert result.returncode == 0 and "usage" in result.stdout


@pytest.mark.parametrize("model, limit", [
    ("diffusion", lambda D, dx, dy: 0.5 / (D * (dx ** -2 + dy ** -2))),
    ("fisher_kpp", lambda D, dx, dy: 1.0 / (2.0 * D * (dx ** -2 + dy ** -2) + 1.0)),
])
def test_stability_limit_uses_dx_and_dy_and_admits_the_limit_itself(model, limit):
    """dx = 0.1 and dy = 0.01 differ tenfold, so a limit computed with dx in place of dy (or dy for dx) is
    about 50 times too large; dt exactly at the limit is stable (<=), a hair above it is refused."""
    grid = {"nx": 21, "ny": 101, "x": [0.0, 2.0], "y": [0.0, 1.0]}
    physics = {"diffusivity": 0.001, **({"rate": 1.0} if model == "fisher_kpp" else {})}
    base = {"model": model, "grid": grid, "physics": physics, "time": {"dt": 1e-4, "t_end": 1e-3}}
    cfg = config.from_dict(base, "x.yaml")
    assert (cfg.dx, cfg.dy) == pytest.approx((0.1, 0.01), rel=1e-12)
    expected = limit(0.001, cfg.dx, cfg.dy)
    assert cfg.max_stable_dt == pytest.approx(expected, rel=1e-12)
    at = config.from_dict({**base, "time": {"dt": cfg.max_stable_dt, "t_end": 10 * cfg.max_stable_dt}},
                                 "x.yaml")
    assert at.stability == 1.0                                   # accepted: dt <= limit, not dt < limit
    above = expected * 1.01
    with pytest.raises(config.ConfigError, match=f"use time.dt <= {expected:.4g}"):
        config.from_dict({**base, "time": {"dt": above, "t_end": 10 * above}}, "x.yaml")


def test_set_dotted_walks_nested_sections_and_names_the_one_that_is_not():
    data = {"physics": {"diffusivity": 1.0}}
    config.set_dotted(data, "a.b.c=[1, 2]")
    config.set_dotted(data, "physics.diffusivity=0.5")
    assert data == {"physics": {"diffusivity": 0.5}, "a": {"b": {"c": [1, 2]}}}
    with pytest.raises(ConfigError, match=r"^--set grid.nx: grid is not a section$"):
        config.set_dotted({"grid": 5}, "grid.nx=3")
    with pytest.raises(ConfigError, match=r"^--set a.b.c: a.b is not a section$"):
        config.set_dotted({"a": {"b": 5}}, "a.b.c=3")


def test_load_without_a_file_is_the_defaults():
    cfg = config.load(None, ["time.t_end=0.5"])
    assert cfg.source == "<defaults>" and cfg.time.t_end == 0.5 and cfg.model == "diffusion"


def test_a_model_file_is_found_beside_the_config_not_in_the_working_directory(tmp_path, monkeypatch):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "mine.py").write_text((REPO / "solver/models/diffusion.py").read_text())
    cfg_path = folder / "c.yaml"
    cfg_path.write_text("model: mine.py\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert config.load(cfg_path).model_impl.file == str(folder / "mine.py")
    with pytest.raises(ConfigError, match=r"^<dict>: "):       # no config file: from the working directory
        config.from_dict({"model": "mine.py"})
    monkeypatch.chdir(folder)
    assert config.from_dict({"model": "mine.py"}).model_impl.file == str(folder / "mine.py")


def test_with_values_replaces_dotted_keys_and_validates_again():
    cfg = config.load(None)
    changed = config.with_values(cfg, {"time.dt": 0.0005, "physics.diffusivity": 0.001})
    assert (changed.time.dt, changed.physics.diffusivity) == (0.0005, 0.001) and cfg.time.dt == 0.001
    with pytest.raises(ConfigError, match="time.dt"):
        config.with_values(cfg, {"time.dt": 1.0})
