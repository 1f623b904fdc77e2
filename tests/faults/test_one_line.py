"""What used to end in a traceback, a hang or an OOM kill ends in one line and exit 2, with nothing written:
YAML that is ambiguous or explosive, degenerate parameters, malformed HDF5 anywhere a file is read, absurd
sizes, and signals while the solver is still starting (solver/safety.py, solver/core/config.py's loader)."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import PYTHON, solver_env
from faultkit import config, finish, one_line, read_cli, wait_for

TINY = {"grid": {"nx": 21, "ny": 15}, "time": {"dt": 0.01, "t_end": 0.1}, "output": {"path": "out.h5"},
        "parallel": {"threads": 1}, "numerics": {"kernel": "numpy"}}


def refused(result, *words, code: int = 2) -> str:
    assert result.returncode == code, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    line = one_line(result.stderr)
    for word in words:
        assert word in line, line
    return line


# --- YAML -------------------------------------------------------------------------------------------
BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['x'] * 9)}]\n"
               for p, c in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh"))


@pytest.mark.parametrize("text, words", [
    ("grid: {nx: 21}\ngrid: {ny: 15}\n", ["'grid' appears twice", "line 2"]),
    ("grid:\n  nx: 21\n  nx: 31\n", ["'nx' appears twice", "line 3"]),
    ("", ["empty", "{}"]),
    ("# nothing but a comment\n", ["empty", "{}"]),
    (BOMB, ["expands to more than"]),
])
def test_yaml_that_would_be_misread_is_refused(tmp_path, text, words):
    (tmp_path / "c.yaml").write_text(text)
    for command in ("validate", "run"):      # the bomb is refused before it is expanded (else: no memory)
        refused(read_cli(command, "c.yaml", cwd=tmp_path), "c.yaml", *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_explicit_empty_mapping_means_all_defaults(tmp_path):
    (tmp_path / "c.yaml").write_text("{}\n")
    result = read_cli("validate", "c.yaml", cwd=tmp_path)
    assert result.returncode == 0 and "valid" in result.stdout, result.stderr


def test_duplicate_key_in_an_override_is_refused(tmp_path):
    cfg_path = config(tmp_path, TINY)
    refused(read_cli("run", cfg_path, "--set", "grid={nx: 21, nx: 22}", cwd=tmp_path), "grid")


# --- degenerate parameters, names, sizes ----------------------------------------------------------
@pytest.mark.parametrize("sets, words", [
    (["initial.amplitude=0"], ["initial.amplitude", "nonzero"]),
    (["initial.sigma=1e-200"], ["initial.sigma"]),
    (["parallel.halo=1000000000"], ["parallel.halo", "smallest block"]),
    (["grid.nx=200000", "grid.ny=200000", "time.dt=1e-10", "time.t_end=1e-10"], ["memory", "--mem"]),
])
@pytest.mark.parametrize("dry", [False, True])
def test_degenerate_or_oversized_runs_are_refused_before_allocating(tmp_path, sets, words, dry):
    cfg_path = config(tmp_path, TINY)
    args = ["run", cfg_path, *[a for s in sets for a in ("--set", s)]] + (["--dry-run"] if dry else [])
    result = read_cli(*args, cwd=tmp_path)
    if dry and "memory" in words:         # --dry-run predicts, and warns
        assert result.returncode == 0 and "warning:" in result.stderr and "memory" in result.stderr
    else:
        refused(result, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fault.yaml"]


def test_memory_limit_is_enforced_before_allocating(tmp_path):
    cfg_path = config(tmp_path, TINY)
    result = read_cli("run", cfg_path, cwd=tmp_path, env=solver_env(SOLVER_MEMORY_LIMIT="1000"))
    refused(result, "SOLVER_MEMORY_LIMIT", "--mem")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fault.yaml"]


def test_absurd_rank_count_answers_at_once(tmp_path):
    cfg_path = config(tmp_path, TINY)
    refused(read_cli("run", cfg_path, "--dry-run", "--ranks", "10000000000", cwd=tmp_path), "ranks")


def test_output_name_that_is_not_utf8_is_refused(tmp_path):
    cfg_path = config(tmp_path, TINY)
    result = subprocess.run([PYTHON, "-m", "solver", "run", str(cfg_path), "-o", b"\xff.h5"], cwd=tmp_path,
                            env=solver_env(), capture_output=True, text=True, timeout=60)
    refused(result, "UTF-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fault.yaml"]


# --- malformed HDF5 -------------------------------------------------------------------------------
def _finished(directory: Path) -> Path:
    cfg_path = config(directory, TINY)
    assert read_cli("run", cfg_path, cwd=directory).returncode == 0
    return directory / "out.h5"


def _config_not_text(path):
    with h5py.File(path, "r+") as f:
        del f.attrs["config"]
        f.attrs["config"] = np.arange(3)


def _group_for_dataset(path):
    with h5py.File(path, "r+") as f:
        del f["C"]
        f.create_group("C")


def _times_as_text(path):
    with h5py.File(path, "r+") as f:
        del f.attrs["wall_seconds"]
        f.attrs["wall_seconds"] = "fast"


def _damaged_bytes(path):
    data = bytearray(path.read_bytes())
    data[100:4000] = bytes(3900)
    path.write_bytes(bytes(data))


def _truncated(path):
    path.write_bytes(path.read_bytes()[:3000])


@pytest.mark.parametrize("damage", [_config_not_text, _group_for_dataset, _times_as_text, _damaged_bytes,
                                    _truncated])
@pytest.mark.parametrize("reader", [["info"], ["analysis/verify.py"], ["analysis/plot_field.py"]])
def test_malformed_outputs_are_one_line(tmp_path, damage, reader):
    out = _finished(tmp_path)
    damage(out)
    if reader == ["info"]:
        result = read_cli("info", out, cwd=tmp_path)
        if damage is _group_for_dataset:       # info reads attributes only: the field does not matter
            assert result.returncode == 0
            return
    else:
        result = read_cli(out, "-o", tmp_path / "x.png", cwd=tmp_path, script=reader[0])
        if damage is _times_as_text:          # the scripts need no timings
            assert result.returncode == 0, result.stderr
            return
    refused(result, "out.h5")


def _stopped_run(directory: Path) -> Path:
    cfg_path = config(directory, TINY)
    result = read_cli("run", cfg_path, "--max-steps", "4", cwd=directory)
    assert result.returncode == 3, result.stderr
    return directory / "out.ckpt.h5"


@pytest.mark.parametrize("key, value", [("snapshots", -5), ("snapshots", 10 ** 6), ("step", "abc"),
                                        ("step", 2.5), ("checksum", 17), ("format", np.arange(2))])
def test_checkpoint_with_odd_attributes_is_one_line(tmp_path, key, value):
    checkpoint = _stopped_run(tmp_path)
    with h5py.File(checkpoint, "r+") as f:
        del f.attrs[key]
        f.attrs[key] = value
    result = read_cli("run", "fault.yaml", "--restart", "auto", cwd=tmp_path)
    refused(result, "checkpoint")


def test_checkpoint_with_a_group_for_its_field_is_one_line(tmp_path):
    checkpoint = _stopped_run(tmp_path)
    with h5py.File(checkpoint, "r+") as f:
        del f["C"]
        f.create_group("C")
    refused(read_cli("run", "fault.yaml", "--restart", "auto", cwd=tmp_path), "checkpoint")


# --- signals while starting -----------------------------------------------------------------------
def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (solver.safety.quiet_start installs one first)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except (FileNotFoundError, ProcessLookupError):
        pass
    return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_starting_is_one_line(tmp_path, signum):
    """The signal lands while Python imports numpy, numba and h5py (the first half second)."""
    cfg_path = config(tmp_path, TINY)
    proc = subprocess.Popen([PYTHON, "-m", "solver", "run", str(cfg_path)], cwd=tmp_path, env=solver_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(lambda: _catches_sigterm(proc.pid), timeout=60, proc=proc,
             what="the run's SIGTERM handler (solver.safety.quiet_start)")
    proc.send_signal(signum)
    code, out, err = finish(proc)
    assert code == 128 + signum, (code, out, err)
    assert signal.Signals(signum).name in one_line(err)
    assert "out.h5" not in os.listdir(tmp_path)


@pytest.mark.parametrize("make", ["fifo", "directory"])
@pytest.mark.parametrize("reader", ["info", "analysis/verify.py"])
def test_readers_refuse_what_is_not_a_file_without_waiting(tmp_path, make, reader):
    """A FIFO would block the HDF5 open until a writer came; a directory is no output either."""
    target = tmp_path / "x.h5"
    os.mkfifo(target) if make == "fifo" else target.mkdir()
    result = read_cli("info", target, cwd=tmp_path) if reader == "info" else \
        read_cli(target, cwd=tmp_path, script=reader)
    refused(result, "x.h5")


ENSEMBLE = {**TINY, "ensemble": {"members": 3, "output_dir": "ens", "perturb": {
    "physics.diffusivity": {"dist": "uniform", "low": 0.0005, "high": 0.001}}}}


def test_member_that_cannot_fit_fails_alone_in_one_line(tmp_path):
    config(tmp_path, {**ENSEMBLE, "parallel": {"threads": 1, "halo": 10 ** 9}}, "ens.yaml")
    result = subprocess.run([PYTHON, "solver/ensemble.py", "--config", str(tmp_path / "ens.yaml"), "1"],
                            cwd=Path(__file__).resolve().parents[2], env=solver_env(), capture_output=True,
                            text=True, timeout=120)
    refused(result, "member 1", "parallel.halo", code=1)


def test_ctrl_c_during_a_member_is_one_line_and_leaves_nothing(tmp_path):
    from faultkit import LONG, held, hold_env
    config(tmp_path, {**ENSEMBLE, **{k: LONG[k] for k in ("grid", "time")}}, "ens.yaml")
    proc = subprocess.Popen([PYTHON, str(Path(__file__).resolve().parents[2] / "solver" / "ensemble.py"),
                             "--config", "ens.yaml", "1", "2"], cwd=tmp_path, env=hold_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    held(proc)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130 and "resume" in one_line(err), err
    assert sorted(p.name for p in (tmp_path / "ens").iterdir()) == []


# --- messages that say what is wrong -----------------------------------------------------------------------
MODEL = Path(__file__).resolve().parents[2] / "solver" / "models" / "diffusion.py"


def broken_model(directory: Path, old: str, new: str) -> str:
    """A copy of the diffusion model with one line changed; returns its file name for model:."""
    text = MODEL.read_text()
    assert old in text, old
    (directory / "broken.py").write_text(text.replace(old, new))
    return "broken.py"


def model_config(directory: Path, model: str) -> Path:
    import yaml
    path = directory / "fault.yaml"
    path.write_text(yaml.safe_dump({**TINY, "model": model}))
    return path


def test_a_huge_config_is_not_read_to_the_end(tmp_path):
    for name in ("/dev/zero", str(tmp_path / "big.yaml")):
        if name.endswith("big.yaml"):
            Path(name).write_text("# " + "x" * 2 ** 21 + "\n{}\n")
        result = read_cli("run", name, cwd=tmp_path, env=solver_env())
        refused(result, name, "MiB")
    result = read_cli("validate", "/dev/zero", cwd=tmp_path)
    refused(result, "/dev/zero", "MiB")


def test_a_nan_initial_condition_is_reported_as_such(tmp_path):
    model = broken_model(tmp_path, "    return exact(physics, initial, x, y, 0.0)",
                         "    return exact(physics, initial, x, y, 0.0) * np.nan")
    cfg_path = model_config(tmp_path, model)
    line = refused(read_cli("run", cfg_path, cwd=tmp_path), "initial condition", "not finite", "broken.py")
    assert "dt" not in line, line
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["broken.py", "fault.yaml"]


@pytest.mark.parametrize("value", ["0.0", "-1.0", "math.nan"])
def test_a_model_stability_limit_that_is_not_positive_blames_the_model(tmp_path, value):
    model = broken_model(tmp_path, "    return 0.5 / rate if rate > 0 else math.inf", f"    return {value}")
    cfg_path = model_config(tmp_path, model)
    for command in ("validate", "run"):
        line = refused(read_cli(command, cfg_path, cwd=tmp_path), "max_stable_dt", "broken.py")
        assert "time.dt <=" not in line, line


@pytest.mark.parametrize("make", ["file", "under a file"])
def test_kernel_directory_that_cannot_be_written_names_the_variable(tmp_path, make):
    (tmp_path / "afile").write_text("not a directory\n")
    directory = tmp_path / "afile" if make == "file" else tmp_path / "afile" / "kernels"
    cfg_path = config(tmp_path, {**TINY, "numerics": {"kernel": "numba"}})
    result = read_cli("run", cfg_path, cwd=tmp_path, env=solver_env(SOLVER_KERNEL_DIR=str(directory)))
    refused(result, "SOLVER_KERNEL_DIR", str(directory), "writable directory")
    assert not (tmp_path / "out.h5.partial").exists() and not (tmp_path / "out.h5").exists()


@pytest.mark.parametrize("text", ["grid: {nx: 1:30}\n", "grid: {ny: '1:30'}\n", "time: {t_end: 1:30.0}\n"])
def test_base_60_numbers_are_read_as_written(tmp_path, text):
    """YAML 1.1 reads 1:30 as 90: here it is text, which a count refuses."""
    (tmp_path / "c.yaml").write_text(text)
    line = refused(read_cli("validate", "c.yaml", cwd=tmp_path), "1:30")
    assert "90" not in line, line


def test_convergence_workdir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("my notes\n")
    result = read_cli("--levels", "2", "--workdir", "notes.txt", cwd=tmp_path, script="analysis/convergence.py")
    refused(result, "--workdir", "notes.txt", "not a directory")
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"
