"""jobs/ensemble.sh checks its arguments and variables before GNU parallel starts: one line, exit 2, nothing
written (bash would read 08 as octal and wrap 20-digit numbers around; GNU parallel would say something else)."""
from __future__ import annotations

import subprocess

import pytest

from conftest import REPO, solver_env
from faultkit import config, one_line

ENSEMBLE = {"grid": {"nx": 21, "ny": 15}, "time": {"dt": 0.01, "t_end": 0.1}, "numerics": {"kernel": "numpy"},
            "ensemble": {"members": 4, "output_dir": "ens", "perturb": {
                "physics.diffusivity": {"dist": "uniform", "low": 0.0005, "high": 0.001}}}}


@pytest.mark.parametrize("args, env, words", [
    (["08", "9"], {}, ["'08'", "leading zeros"]),
    (["1", "99999999999999999999"], {}, ["99999999999999999999"]),
    (["-1", "3"], {}, ["'-1'"]),
    (["3", "1"], {}, ["member range"]),
    (["1", "5"], {}, ["ensemble.members = 4"]),
    (["1", "2", "3"], {}, ["at most FIRST and LAST"]),
    (["1", "2"], {"ENSEMBLE_JOBS": "abc"}, ["ENSEMBLE_JOBS"]),
    (["1", "2"], {"ENSEMBLE_JOBS": "1+1"}, ["ENSEMBLE_JOBS"]),
    (["1", "2"], {"ENSEMBLE_BATCH": "010"}, ["ENSEMBLE_BATCH"]),
    (["1", "2"], {"ENSEMBLE_HALT": "bogus"}, ["ENSEMBLE_HALT"]),
    (["1", "2"], {"NUMBA_THREADING_LAYER": "bogus"}, ["NUMBA_THREADING_LAYER"]),
])
def test_ensemble_script_refuses_bad_ranges_and_variables(tmp_path, args, env, words):
    cfg_path = config(tmp_path, ENSEMBLE, "ens.yaml")
    result = subprocess.run(["bash", str(REPO / "jobs" / "ensemble.sh"), *args], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env=solver_env(ENSEMBLE_CONFIG=str(cfg_path), **env))
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    for word in words:
        assert word in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ens.yaml"]
