"""A process deletes or replaces only files it created, or outputs it was told to overwrite that are the
solver's own (solver/storage/files.py); everything else is refused up front with one line, exit 2, nothing changed."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import h5py
import pytest

from conftest import PYTHON, REPO, solver_env
from faultkit import LONG, config, finish, held, hold_env, one_line, read_cli

TINY = {"grid": {"nx": 21, "ny": 15}, "time": {"dt": 0.01, "t_end": 0.1}, "output": {"path": "out.h5"},
        "parallel": {"threads": 1}, "numerics": {"kernel": "numpy"}}


def snapshot(directory: Path) -> dict:
    """Every entry under directory: its kind and, for a regular file, its bytes (FIFOs are not read)."""
    state = {}
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            state[path.name] = ("link", os.readlink(path))
        elif path.is_file():
            state[path.name] = ("file", path.read_bytes())
        else:
            state[path.name] = ("other", info.st_mode)
    return state


def refused(result, *words) -> str:
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    line = one_line(result.stderr)
    for word in words:
        assert word in line, line
    return line


@pytest.fixture
def finished(tmp_path) -> Path:
    """A directory with a config and a finished output prev.h5 of it."""
    cfg_path = config(tmp_path, TINY)
    assert read_cli("run", cfg_path, "-o", "prev.h5", cwd=tmp_path).returncode == 0
    return tmp_path


@pytest.mark.parametrize("checkpoint, words", [
    ("fault.yaml", ["the config", "same file"]),           # the config itself
    ("prev.h5", ["solver output", "not a solver checkpoint"]),   # another run's output
    ("out.h5", ["output and checkpoint", "same file"]),    # the output itself
    ("out.h5.partial", ["same file"]),                     # the output's unfinished file
    ("subdir", ["directory"]),                             # a directory
    ("notes.txt", ["text file"]),                          # any other file
])
def test_checkpoint_path_that_is_not_a_checkpoint_is_refused(finished, checkpoint, words):
    (finished / "subdir").mkdir()
    (finished / "notes.txt").write_text("keep me\n")
    before = snapshot(finished)
    result = read_cli("run", "fault.yaml", "--set", f"checkpoint.path={checkpoint}", "--set",
                      "checkpoint.every=2", cwd=finished)
    refused(result, "checkpoint", *words)
    assert snapshot(finished) == before


def test_default_checkpoint_name_never_deletes_another_output(tmp_path):
    """-o a.ckpt.h5, then -o a.h5: the second run's default checkpoint is the first run's output."""
    cfg_path = config(tmp_path, TINY)
    assert read_cli("run", cfg_path, "-o", "a.ckpt.h5", cwd=tmp_path).returncode == 0
    before = snapshot(tmp_path)
    refused(read_cli("run", cfg_path, "-o", "a.h5", cwd=tmp_path), "a.ckpt.h5", "checkpoint.path")
    assert snapshot(tmp_path) == before


def _special(directory: Path, name: str) -> None:
    path = directory / name
    if name == "fifo.h5":
        os.mkfifo(path)
    elif name == "device.h5":
        path.symlink_to("/dev/null")
    elif name == "link.h5":
        path.symlink_to("prev.h5")
    elif name == "dangling.h5":
        path.symlink_to("nowhere.h5")
    elif name == "foreign.h5":
        with h5py.File(path, "w") as f:
            f["data"] = [1, 2, 3]
    elif name == "notes.h5":
        path.write_text("not HDF5\n")


@pytest.mark.parametrize("name", ["fifo.h5", "device.h5", "link.h5", "dangling.h5", "foreign.h5", "notes.h5",
                                  "fault.yaml"])
def test_overwrite_replaces_only_a_solver_output(finished, name):
    _special(finished, name)
    before = snapshot(finished)
    result = read_cli("run", "fault.yaml", "-o", name, "--overwrite", cwd=finished)
    refused(result, name)
    assert snapshot(finished) == before


def test_overwrite_of_a_solver_output_still_works(finished):
    result = read_cli("run", "fault.yaml", "-o", "prev.h5", "--overwrite", cwd=finished)
    assert result.returncode == 0, result.stderr


def test_run_refuses_a_foreign_lock_or_sidecar(finished):
    (finished / "out.h5.lock").write_text("my notes\n")
    (finished / "x.xdmf").write_text("my notes\n")
    before = snapshot(finished)
    refused(read_cli("run", "fault.yaml", cwd=finished), "out.h5.lock")
    refused(read_cli("run", "fault.yaml", "-o", "x.h5", cwd=finished), "x.xdmf")
    assert snapshot(finished) == before


# --- analysis scripts ------------------------------------------------------------------------------
@pytest.mark.parametrize("script, args, words", [
    ("analysis/verify.py", ["prev.h5", "--csv", "fault.yaml"], ["unknown extension"]),
    ("analysis/verify.py", ["prev.h5", "-o", "prev.h5"], ["unknown extension"]),
    ("analysis/verify.py", ["prev.h5", "-o", "subdir"], ["directory"]),
    ("analysis/verify.py", ["prev.h5", "--csv", "prev.csv"], ["an input"]),
    ("analysis/plot_field.py", ["prev.h5", "-o", "notes.png"], ["text file"]),
    ("analysis/plot_field.py", ["prev.h5", "-o", "plot"], ["unknown extension"]),
    ("analysis/plot_field.py", ["prev.h5", "--animate", "subdir/"], ["directory"]),
    ("analysis/scaling.py", ["plot", "prev.h5", "--mode", "strong", "-o", "fifo.png"], ["FIFO"]),
])
def test_analysis_outputs_never_replace_inputs_or_foreign_files(finished, script, args, words):
    (finished / "subdir").mkdir()
    (finished / "notes.png").write_text("keep me\n")
    os.symlink("prev.h5", finished / "prev.csv")
    os.mkfifo(finished / "fifo.png")
    before = snapshot(finished)
    refused(read_cli(*args, cwd=finished, script=script), *words)
    assert snapshot(finished) == before


ENSEMBLE = {**TINY, "ensemble": {"members": 3, "output_dir": "ens", "perturb": {
    "physics.diffusivity": {"dist": "uniform", "low": 0.0005, "high": 0.001}}}}


def member(*args, cwd: Path, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(REPO / "solver" / "ensemble.py"), "--config", "ens.yaml", *args], cwd=cwd,
                          env=env or solver_env(), capture_output=True, text=True, timeout=120)


def test_statistics_never_written_over_a_member(tmp_path):
    config(tmp_path, ENSEMBLE, "ens.yaml")
    assert member("1", "2", cwd=tmp_path).returncode == 0
    before = snapshot(tmp_path)
    result = read_cli("--config", "ens.yaml", "--members", "1-2", "-o", "ens/member-0001.h5", cwd=tmp_path,
                      script="analysis/ensemble_stats.py")
    refused(result, "member-0001.h5", "solver output")
    assert snapshot(tmp_path) == before


def test_two_runs_of_one_member_at_once_lose_nothing(tmp_path):
    """The second process finds the member locked and skips it; the first finishes it."""
    config(tmp_path, {**ENSEMBLE, **{k: LONG[k] for k in ("grid", "time")}}, "ens.yaml")
    first = subprocess.Popen([PYTHON, str(REPO / "solver" / "ensemble.py"), "--config", "ens.yaml", "1"],
                             cwd=tmp_path, env=hold_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    held(first)
    second = member("1", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert f"pid {first.pid}" in second.stdout and "skipped" in second.stdout, second.stdout
    assert (tmp_path / "ens" / "member-0001.h5.partial").exists()       # the loser removed nothing
    first.send_signal(signal.SIGCONT)
    code, out, err = finish(first)
    assert code == 0 and "done" in out, err
    with h5py.File(tmp_path / "ens" / "member-0001.h5", "r") as f:
        assert f.attrs["complete"] == 1


@pytest.mark.parametrize("setup, words", [
    ({"env": {"NUMBA_THREADING_LAYER": "bogus"}}, ["NUMBA_THREADING_LAYER"]),
    ({"file": "ens"}, ["output_dir", "is a file"]),
    ({"perturb": {"grid.nx": {"dist": "uniform", "low": 20, "high": 30}}}, ["grid.nx", "choice"]),
    ({"checkpoint": "shared.ckpt.h5"}, ["checkpoint.path", "every member"]),
])
@pytest.mark.parametrize("driver", ["ensemble", "pool"])
def test_ensemble_setup_errors_are_reported_once_up_front(tmp_path, setup, words, driver):
    data = {**ENSEMBLE, "ensemble": dict(ENSEMBLE["ensemble"])}
    if "perturb" in setup:
        data["ensemble"]["perturb"] = setup["perturb"]
    if "checkpoint" in setup:
        data["checkpoint"] = {"path": setup["checkpoint"]}
    config(tmp_path, data, "ens.yaml")
    if "file" in setup:
        (tmp_path / setup["file"]).write_text("a file\n")
    command = [PYTHON, str(REPO / "solver" / "ensemble.py")] if driver == "ensemble" else [PYTHON, "-m", "solver.pool"]
    result = subprocess.run([*command, "--config", "ens.yaml", "1", "2", "3"], cwd=tmp_path,
                            env=solver_env(**setup.get("env", {})), capture_output=True, text=True, timeout=120)
    refused(result, *words)


@pytest.mark.parametrize("args, script", [
    (["1-99999999999999"], "pool"), (["--members", "1-99999999999999"], "stats"),
])
def test_member_ranges_beyond_the_ensemble_are_refused_at_once(tmp_path, args, script):
    config(tmp_path, ENSEMBLE, "ens.yaml")
    if script == "pool":
        result = subprocess.run([PYTHON, "-m", "solver.pool", "--config", "ens.yaml", *args], cwd=tmp_path,
                                env=solver_env(), capture_output=True, text=True, timeout=60)
    else:
        result = read_cli("--config", "ens.yaml", *args, cwd=tmp_path, script="analysis/ensemble_stats.py")
    refused(result, "ensemble.members")


def test_convergence_study_replaces_only_its_own_level_outputs(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "level-1.h5").write_text("my own notes\n")
    before = snapshot(tmp_path)
    result = read_cli("--levels", "2", "--workdir", work, cwd=tmp_path, script="analysis/convergence.py")
    refused(result, "level-1.h5", "text file")
    assert snapshot(tmp_path) == before


# --- files of the user's that merely have the right type --------------------------------------------------
USER_PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde" + b"my holiday" * 10


@pytest.mark.parametrize("script, args, name, content", [
    ("analysis/plot_field.py", ["prev.h5", "-o", "holiday.png"], "holiday.png", USER_PNG),
    ("analysis/verify.py", ["prev.h5", "--csv", "measurements.csv"], "measurements.csv",
     b"snapshot,time,temperature\n0,0.0,21.5\n"),
    ("analysis/verify.py", ["prev.h5", "-o", "holiday.png"], "holiday.png", USER_PNG),
])
def test_analysis_scripts_replace_only_their_own_pictures_and_tables(finished, script, args, name, content):
    """A PNG or CSV of the user's is refused; the script's own output (marked inside) is replaced on a rerun."""
    (finished / name).write_bytes(content)
    before = snapshot(finished)
    refused(read_cli(*args, cwd=finished, script=script), name)
    assert snapshot(finished) == before
    (finished / name).unlink()
    for _ in range(2):                    # written, then replaced: it is the script's own
        result = read_cli(*args, cwd=finished, script=script)
        assert result.returncode == 0, result.stderr
    assert (finished / name).read_bytes() != content


def test_animation_without_ffmpeg_refuses_before_writing_anything(finished):
    env = solver_env(PATH="/nonexistent")    # no ffmpeg (the interpreter is started by its full path)
    before = snapshot(finished)
    result = subprocess.run([PYTHON, str(REPO / "analysis" / "plot_field.py"), "prev.h5", "--animate", "prev.mp4"],
                            cwd=finished, env=env, capture_output=True, text=True, timeout=60)
    refused(result, "ffmpeg")
    assert snapshot(finished) == before      # not even the PNG


def test_run_never_replaces_an_unrelated_xdmf(finished):
    """out.xdmf of the user's, describing another file: the run is refused and the file kept."""
    other = (finished / "prev.xdmf").read_text().replace("prev.h5:/", "theirs.h5:/")
    (finished / "out.xdmf").write_text(other)
    before = snapshot(finished)
    refused(read_cli("run", "fault.yaml", cwd=finished), "out.xdmf", "another file")
    assert snapshot(finished) == before
    (finished / "out.xdmf").write_text((finished / "prev.xdmf").read_text().replace("prev.h5:/", "out.h5:/"))
    assert read_cli("run", "fault.yaml", cwd=finished).returncode == 0     # its own sidecar is replaced


def test_stop_file_naming_an_existing_file_is_never_overwritten(finished):
    before = snapshot(finished)
    env = solver_env(SOLVER_STOP_FILE=str(finished / "fault.yaml"))
    result = read_cli("run", "fault.yaml", "-o", "s.h5", "--max-steps", "2", cwd=finished, env=env)
    refused(result, "SOLVER_STOP_FILE", "fault.yaml")
    assert snapshot(finished) == before
    record = finished / "stop"
    record.write_bytes(b"")                  # what jobs/launch.sh creates (mktemp)
    result = read_cli("run", "fault.yaml", "-o", "s.h5", "--max-steps", "2", cwd=finished,
                      env=solver_env(SOLVER_STOP_FILE=str(record)))
    assert result.returncode == 3 and record.read_text().startswith("stopped at step 2"), result.stderr


def test_two_configs_sharing_a_checkpoint_path_never_lose_it(finished):
    """The second config's run refuses the first's checkpoint instead of overwriting, then deleting it."""
    config(finished, {**TINY, "checkpoint": {"path": "shared.ckpt.h5"}}, "a.yaml")
    config(finished, {**TINY, "physics": {"diffusivity": 0.0005}, "checkpoint": {"path": "shared.ckpt.h5"}},
           "b.yaml")
    stopped = read_cli("run", "a.yaml", "-o", "a.h5", "--max-steps", "4", cwd=finished)
    assert stopped.returncode == 3, stopped.stderr
    before = snapshot(finished)
    refused(read_cli("run", "b.yaml", "-o", "b.h5", cwd=finished), "shared.ckpt.h5", "another config")
    assert snapshot(finished) == before
    resumed = read_cli("run", "a.yaml", "-o", "a.h5", "--restart", "auto", cwd=finished)
    assert resumed.returncode == 0 and "resuming from shared.ckpt.h5 at step 4" in resumed.stdout, resumed.stderr
