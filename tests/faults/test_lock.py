"""Two runs pointed at the same output refuse to share it: the second is turned away, the first is untouched."""
from __future__ import annotations

import signal

import h5py
import numpy as np

from faultkit import LONG, config, finish, held, hold_env, one_line, read_cli, start

SHORT = {**LONG, "time": {"dt": 0.01, "t_end": 40.0}}      # 4000 steps, a fraction of a second


def test_second_run_on_the_same_output_is_refused(tmp_path):
    cfg_path = config(tmp_path, LONG)
    out = tmp_path / "out.h5"
    first = start("run", cfg_path, cwd=tmp_path, env=hold_env())
    held(first)                                 # mid-run, holding its lock, until SIGCONT
    # --overwrite does not help: it replaces a finished file, never one a live run is writing
    second = read_cli("run", cfg_path, "--overwrite", "--set", "physics.diffusivity=0.0001", cwd=tmp_path)
    assert second.returncode == 2, second.stderr
    line = one_line(second.stderr)
    assert f"pid {first.pid}" in line and "being written" in line and "-o" in line, line
    assert second.stdout == ""

    first.send_signal(signal.SIGCONT)
    code, _, stderr = finish(first)
    assert code == 0, stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["complete"] == 1
        assert "diffusivity: 0.0009" in f.attrs["config"].decode()          # the first run's, not the second's
        assert np.isfinite(f["C"][:]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fault.yaml", "out.h5", "out.xdmf"]   # lock file removed

    again = read_cli("run", cfg_path, cwd=tmp_path)                  # afterwards: the ordinary refusal
    assert again.returncode == 2 and "--overwrite" in one_line(again.stderr)


def test_simultaneous_starts_one_wins(tmp_path):
    """Started in the same instant (no head start for either): exactly one writes, the other exits 2."""
    cfg_path = config(tmp_path, SHORT)
    runs = [start("run", cfg_path, cwd=tmp_path) for _ in range(2)]
    results = [finish(run) for run in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    line = one_line(loser)
    assert "being written by pid" in line or "exists" in line, line
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f.attrs["complete"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fault.yaml", "out.h5", "out.xdmf"]
