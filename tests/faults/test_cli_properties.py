"""Property-based: the real command line under random configs, overrides, output and checkpoint paths, with
existing files of every kind in the way. Whatever comes in:

- exit 0 with a complete solver output, or exit 2 with exactly one line on stderr, never a traceback;
- no file that existed before is changed, unless it is the output and --overwrite was given (or it is the
  run's own leftover: the output's ``.partial`` or a solver checkpoint at its checkpoint path);
- a refused run creates nothing.

Bounded in time (a few dozen examples of well under a second each): CI runs the whole suite in minutes.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import h5py
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import PYTHON, solver_env

TINY = {"grid": {"nx": 21, "ny": 15}, "time": {"dt": 0.01, "t_end": 0.1}, "output": {"path": "out.h5"},
        "parallel": {"threads": 1}, "numerics": {"kernel": "numpy"}}

CONFIGS = {
    "good": yaml.safe_dump(TINY),
    "unstable": yaml.safe_dump({**TINY, "time": {"dt": 0.5, "t_end": 1.0}}),
    "empty": "",
    "duplicate": "grid: {nx: 21}\ngrid: {ny: 15}\n",
    "not yaml": "grid: [1,\n",
    "list": "- 1\n- 2\n",
}
OVERRIDES = [[], ["time.t_end=0.05"], ["grid.nx=2"], ["initial.amplitude=0"], ["parallel.halo=999"],
             ["checkpoint.every=2"], ["output.every=3"], ["grid.nxx=5"], ["time.dt=abc"]]
# Names the output or the checkpoint may point at; most exist before the run, as files of every kind.
TARGETS = ["new.h5", "prev.h5", "prev.h5.partial", "prev.ckpt.h5", "notes.txt", "fifo", "link.h5",
           "dangling.h5", "subdir", "foreign.h5", "c.yaml", "out.h5", "sub/deeper/new.h5", "prev.xdmf"]
LEFTOVER_OK = {"prev.h5.partial"}     # a stale .partial of the output is the run's own to replace


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    """A finished output and a checkpoint, made once; each example copies them."""
    directory = tmp_path_factory.mktemp("samples")
    (directory / "c.yaml").write_text(CONFIGS["good"])
    run = [PYTHON, "-m", "solver", "run", "c.yaml"]
    for args, code in ((["-o", "prev.h5"], 0), (["-o", "stopped.h5", "--max-steps", "4"], 3)):
        result = subprocess.run([*run, *args], cwd=directory, env=solver_env(), capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == code, result.stderr
    return directory


def populate(directory: Path, samples: Path, config: str) -> None:
    (directory / "c.yaml").write_text(CONFIGS[config])
    shutil.copy(samples / "prev.h5", directory / "prev.h5")
    shutil.copy(samples / "prev.xdmf", directory / "prev.xdmf")
    shutil.copy(samples / "stopped.h5.partial", directory / "prev.h5.partial")
    shutil.copy(samples / "stopped.ckpt.h5", directory / "prev.ckpt.h5")
    (directory / "notes.txt").write_text("keep me\n")
    os.mkfifo(directory / "fifo")
    (directory / "link.h5").symlink_to("prev.h5")
    (directory / "dangling.h5").symlink_to("nowhere.h5")
    (directory / "subdir").mkdir()
    with h5py.File(directory / "foreign.h5", "w") as f:
        f["data"] = [1.0, 2.0]


def state(directory: Path) -> dict:
    """Every entry: kind and content (regular files), link target (links); FIFOs are never opened."""
    seen = {}
    for path in directory.rglob("*"):
        name = str(path.relative_to(directory))
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            seen[name] = ("link", os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            seen[name] = ("file", path.read_bytes())
        else:
            seen[name] = ("other", stat.S_IFMT(info.st_mode))
    return seen


EXAMPLES = int(os.environ.get("PROPERTY_EXAMPLES", 40))     # about 0.5 s each; raise it to hunt locally


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=st.sampled_from(["good"] * 6 + sorted(CONFIGS)),        # mostly runs that may succeed
       overrides=st.sampled_from([[]] * 4 + OVERRIDES[:2] * 2 + OVERRIDES),
       output=st.sampled_from(["new.h5", "prev.h5", "sub/deeper/new.h5"] * 2 + TARGETS),
       checkpoint=st.none() | st.none() | st.sampled_from(TARGETS), overwrite=st.booleans())
def test_command_line_invariants(samples, config, overrides, output, checkpoint, overwrite):
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        populate(directory, samples, config)
        before = state(directory)
        sets = [a for o in overrides for a in ("--set", o)]
        if checkpoint is not None:
            sets += ["--set", f"checkpoint.path={checkpoint}"]
        args = [PYTHON, "-m", "solver", "run", "c.yaml", *sets, "-o", output] + (["--overwrite"] if overwrite else [])
        result = subprocess.run(args, cwd=directory, env=solver_env(), capture_output=True, text=True, timeout=120)
        after = state(directory)
        event(f"exit {result.returncode}")

        assert "Traceback" not in result.stderr, result.stderr
        assert result.returncode in (0, 2), (result.returncode, result.stderr)
        if result.returncode == 2:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1, result.stderr
            assert after == before, "a refused run changed files"
            return
        # exit 0: a complete output, and nothing else of before changed but the output (given --overwrite),
        # its sidecar and the run's own leftovers
        with h5py.File(directory / output, "r") as f:
            assert f.attrs["complete"] == 1
        replaced = {output, os.path.splitext(output)[0] + ".xdmf", output + ".partial"}
        for entry, value in before.items():
            if entry in replaced or entry in LEFTOVER_OK:
                continue
            if checkpoint is None and entry == os.path.splitext(output)[0] + ".ckpt.h5" or entry == checkpoint:
                # a solver checkpoint at the run's checkpoint path is a stale one of this output
                assert value[1][:4] == b"\x89HDF", f"{entry} was not a checkpoint"
                continue
            assert after.get(entry) == value, f"{entry} changed"
        if output in before:
            assert overwrite and before[output][0] == "file", "replaced an output without --overwrite"
