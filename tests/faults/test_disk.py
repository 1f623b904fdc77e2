"""A full file system or a vanished output directory: one line, a non-zero exit, nothing half-written left.

The full disk is real: a 2 MiB tmpfs mounted for the test (the tests run as root, as in CI and containers).
Decision: on an ordinary error a serial run removes its ``.partial`` (the developers' guide: nothing
half-written is left behind); only a killed run or an MPI abort leaves one, which readers refuse.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess

import h5py
import pytest

from conftest import require
from faultkit import LONG, config, finish, held, hold_env, one_line, read_cli, start

# 11 snapshots of 201 x 201 float64: 3.5 MB, more than the 2 MiB file system holds.
BIGGER_THAN_DISK = {"grid": {"nx": 201, "ny": 201}, "time": {"dt": 0.01, "t_end": 0.1},
                    "output": {"path": "disk/out.h5", "every": 1}, "parallel": {"threads": 1}}
# 5 snapshots of 61 x 45: about 130 KB, for filling the disk to just below, at and above what it needs.
SMALL_OUTPUT = {"grid": {"nx": 61, "ny": 45}, "time": {"dt": 0.01, "t_end": 1.0},
                "output": {"path": "disk/out.h5", "every": 25}, "parallel": {"threads": 1}}


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs at tmp_path/disk, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run([require("mount"), "-t", "tmpfs", "-o", "size=2M", "tmpfs", str(disk)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (needs root, as in CI): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run([require("umount"), "-l", str(disk)], capture_output=True, timeout=30)


def assert_failed_cleanly(result, disk):
    assert result.returncode == 1, result.stderr
    line = one_line(result.stderr)
    assert line == "error: writing disk/out.h5: No space left on device", line
    assert set(os.listdir(disk)) <= {"filler"}, f"left behind: {os.listdir(disk)}"


def test_output_bigger_than_the_disk(tmp_path, small_disk):
    cfg_path = config(tmp_path, BIGGER_THAN_DISK)
    result = read_cli("run", cfg_path, cwd=tmp_path)
    assert "step" in result.stdout                     # it failed mid-run, not up front
    assert_failed_cleanly(result, small_disk)


def test_disk_full_at_every_stage(tmp_path, small_disk):
    """Fill the disk so the run meets a full disk at different moments: creating the file, appending a
    snapshot, the final flush at close. Each run either finishes with a complete file or fails cleanly."""
    cfg_path = config(tmp_path, SMALL_OUTPUT)
    filler = small_disk / "filler"
    outcomes = []
    for free_kib in (0, 8, 16, 64, 112, 128, 1024):
        for name in os.listdir(small_disk):
            os.unlink(small_disk / name)
        filler.write_bytes(b"\0" * ((2048 - free_kib) * 1024))
        result = read_cli("run", cfg_path, cwd=tmp_path)
        if result.returncode == 0:
            with h5py.File(small_disk / "out.h5", "r") as f:
                assert f.attrs["complete"] == 1 and f["C"].shape[0] == 5
        else:
            assert_failed_cleanly(result, small_disk)
        outcomes.append(result.returncode)
    assert outcomes[0] == 1 and outcomes[-1] == 0, outcomes    # both ends really happened


def test_output_directory_deleted_mid_run(tmp_path):
    cfg_path = config(tmp_path, {**LONG, "time": {"dt": 0.01, "t_end": 60.0},
                                 "output": {"path": "sub/out.h5", "every": 2000}})
    proc = start("run", cfg_path, cwd=tmp_path, env=hold_env())
    held(proc)
    shutil.rmtree(tmp_path / "sub")
    proc.send_signal(signal.SIGCONT)
    code, stdout, stderr = finish(proc)
    assert code == 1, stderr
    line = one_line(stderr)
    assert "writing sub/out.h5" in line and "vanished" in line, line
    assert not (tmp_path / "sub").exists()


def test_partial_output_deleted_mid_run(tmp_path):
    """The .partial alone removed (a clean-up script, another job): said as such, not as a vanished directory."""
    cfg_path = config(tmp_path, {**LONG, "time": {"dt": 0.01, "t_end": 4.0}, "output": {"path": "out.h5"}})
    proc = start("run", cfg_path, cwd=tmp_path, env=hold_env())
    held(proc)
    (tmp_path / "out.h5.partial").unlink()
    proc.send_signal(signal.SIGCONT)
    code, stdout, stderr = finish(proc)
    assert code == 1, stderr
    line = one_line(stderr)
    assert line == ("error: writing out.h5: its unfinished file out.h5.partial was removed during the run (by a "
                    "clean-up or another job?), so nothing was saved; keep such clean-ups away from .partial files "
                    "while a run writes, and run again"), line
    assert not (tmp_path / "out.h5").exists() and not (tmp_path / "out.h5.partial").exists()


def test_checkpoint_on_a_full_disk_is_one_line_and_leaves_no_partial(tmp_path, small_disk):
    """The output fits elsewhere; the checkpoint's disk is full: one line, and neither the checkpoint's
    .partial nor the output's .partial (no checkpoint refers to it) is left."""
    cfg_path = config(tmp_path, {**SMALL_OUTPUT, "output": {"path": "out.h5", "every": 25},
                                 "checkpoint": {"path": "disk/run.ckpt.h5"}})
    (small_disk / "filler").write_bytes(b"\0" * (2048 * 1024))
    result = read_cli("run", cfg_path, "--max-steps", "30", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    line = one_line(result.stderr)
    assert line == "error: writing the checkpoint disk/run.ckpt.h5: No space left on device", line
    assert os.listdir(small_disk) == ["filler"], os.listdir(small_disk)
    assert not (tmp_path / "out.h5.partial").exists() and not (tmp_path / "out.h5").exists()
