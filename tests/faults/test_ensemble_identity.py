"""A member file is complete only for the config (and model source) that would produce it: rerunning an
ensemble whose seed, perturbations or model changed refuses the old files in one line (or redoes them with
--force), and the statistics refuse members of mixed configs instead of summarising them."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import PYTHON, REPO, solver_env
from faultkit import one_line, read_cli
from test_ownership import snapshot as whole_snapshot

ENSEMBLE = {"grid": {"nx": 21, "ny": 15}, "time": {"dt": 0.01, "t_end": 0.1}, "parallel": {"threads": 1},
            "numerics": {"kernel": "numpy"},
            "ensemble": {"seed": 1, "members": 2, "output_dir": "ens", "perturb": {
                "physics.diffusivity": {"dist": "uniform", "low": 0.0005, "high": 0.001}}}}


def write(directory: Path, seed: int = 1, model: str | None = None, low: float = 0.0005) -> Path:
    data = yaml.safe_load(yaml.safe_dump(ENSEMBLE))
    data["ensemble"]["seed"] = seed
    data["ensemble"]["perturb"]["physics.diffusivity"]["low"] = low
    if model:
        data["model"] = model
    path = directory / "ens.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def snapshot(directory: Path) -> dict:
    """Every entry under directory but Python's bytecode cache: importing the edited model file (to hash it)
    refreshes its .pyc where bytecode is written, which is Python's doing, not the run's."""
    return {name: entry for name, entry in whole_snapshot(directory).items()
            if name != "__pycache__" and not name.endswith(".pyc")}


def member(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(REPO / "solver" / "ensemble.py"), "--config", "ens.yaml", *map(str, args)],
                          cwd=cwd, env=solver_env(), capture_output=True, text=True, timeout=120)


def stats(cwd: Path) -> subprocess.CompletedProcess:
    return read_cli("--config", "ens.yaml", "--no-plots", "--quantiles", cwd=cwd, script="analysis/ensemble_stats.py")


@pytest.mark.parametrize("change", ["seed", "perturbation", "model source"])
def test_members_of_another_config_are_refused_not_skipped(tmp_path, change):
    model = None
    if change == "model source":
        shutil.copy(REPO / "solver" / "models" / "diffusion.py", tmp_path / "mine.py")
        model = "mine.py"
    write(tmp_path, model=model)
    first = member(1, cwd=tmp_path)
    assert first.returncode == 0 and "member 1: done" in first.stdout, first.stderr
    again = member(1, cwd=tmp_path)
    assert again.returncode == 0 and "member 1: skipped" in again.stdout, again.stderr   # same config: skipped

    if change == "seed":
        write(tmp_path, seed=2, model=model)
    elif change == "perturbation":
        write(tmp_path, low=0.0006, model=model)
    else:
        with open(tmp_path / "mine.py", "a") as stream:
            stream.write("\nEDITED = True    # a change to the model's source\n")
    before = snapshot(tmp_path)
    refused = member(1, cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    line = one_line(refused.stderr)
    assert "member 1" in line and "another config" in line and "--force" in line, line
    assert "skipped" not in refused.stdout
    assert snapshot(tmp_path) == before                       # nothing replaced, nothing deleted

    forced = member("--force", 1, cwd=tmp_path)
    assert forced.returncode == 0 and "member 1: done" in forced.stdout, forced.stderr
    assert member(1, cwd=tmp_path).stdout.count("skipped") == 1   # now it is this config's own


def test_statistics_refuse_members_of_mixed_configs(tmp_path):
    write(tmp_path, seed=1)
    assert member(1, 2, cwd=tmp_path).returncode == 0
    write(tmp_path, seed=2)
    assert member("--force", 2, cwd=tmp_path).returncode == 0     # member 1: seed 1, member 2: seed 2
    before = snapshot(tmp_path)
    result = stats(tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_line(result.stderr)
    assert "member(s) 1 " in line and "another config" in line, line
    assert snapshot(tmp_path) == before                       # no statistics file, no plot

    assert member("--force", 1, cwd=tmp_path).returncode == 0
    result = stats(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 of 2 members" in result.stdout
