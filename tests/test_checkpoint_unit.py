"""solver/storage/checkpoint.py in one process, in milliseconds: what a checkpoint holds, when it is trusted
and when refused, its checksum and result hash, the stop record and the signal flag. tests/test_checkpoint.py
runs the solver itself (stop, resume, the same bits); this file is also what .ci/mutate.py runs against each
mutant of the module."""
from __future__ import annotations

import os
import signal

import h5py
import numpy as np
import pytest

from solver.comm import SERIAL
from solver.core import config as config_module
from solver.core.grid import Decomposition, init_global_grid
from solver.errors import CheckpointError, EnvironmentSettingError
from solver.storage import checkpoint
from solver.storage.checkpoint import (STOP_FILE_VARIABLE, SignalFlag, Stopped, check_owner, check_stop_file,
                                       checksum, inspect, load, path_for, record_stop, remove, result_hash,
                                       stop_file_problem, write)

BASE = {"grid": {"nx": 13, "ny": 9}, "time": {"dt": 0.001, "t_end": 0.02}, "output": {"every": 5}}


def make(**sections):
    data = {name: dict(values) for name, values in BASE.items()}
    for name, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:
            data[name] = values                                 # model: a name
    return config_module.from_dict(data, "test.yaml")


def field(cfg, seed=1):
    return np.random.default_rng(seed).random((len(cfg.model_impl.fields), cfg.grid.ny, cfg.grid.nx))


def partial_output(path, cfg, snapshots):
    with h5py.File(path, "w") as f:
        for name in cfg.model_impl.fields:
            f.create_dataset(name, data=np.zeros((snapshots, cfg.grid.ny, cfg.grid.nx)))
        f.create_dataset("time", data=np.zeros(snapshots))
    return str(path)


@pytest.fixture
def saved(tmp_path):
    """A checkpoint at step 10 with 3 snapshots, beside an unfinished output holding 3."""
    cfg = make()
    decomp = init_global_grid(cfg)
    block = field(cfg)
    path = str(tmp_path / "run.ckpt.h5")
    write(path, cfg, decomp, block, step=10, snapshots=3)
    return cfg, decomp, block, path, partial_output(tmp_path / "run.h5.partial", cfg, 3)


def test_write_then_load_gives_the_block_step_and_snapshots(saved):
    cfg, decomp, block, path, partial = saved
    assert not os.path.exists(path + ".partial")
    with h5py.File(path, "r") as f:
        assert f.attrs["step"] == 10 and f.attrs["snapshots"] == 3 and f.attrs["time"] == pytest.approx(0.01)
        assert (f.attrs["nx"], f.attrs["ny"], f.attrs["ranks"]) == (13, 9, 1)
        assert f.attrs["result_hash"] == result_hash(cfg) and f.attrs["checksum"] == checksum(block, decomp)
    loaded, step, snapshots = load(path, cfg, decomp, partial)
    assert np.array_equal(loaded, block) and (step, snapshots) == (10, 3)
    assert inspect(path, cfg, partial) == {"step": 10, "snapshots": 3, "checksum": checksum(block, decomp)}


def test_write_creates_the_folder_and_leaves_nothing_when_it_fails(saved, tmp_path):
    cfg, decomp, block, path, _ = saved
    deep = tmp_path / "new" / "folder" / "run.ckpt.h5"
    write(str(deep), cfg, decomp, block, step=10, snapshots=3)
    assert deep.exists()
    two_fields = make(model="gray_scott", time={"dt": 0.01, "t_end": 0.2})
    with pytest.raises(IndexError):          # fails inside the file: the second field has no block
        write(path, two_fields, decomp, block, step=12, snapshots=3)
    assert not os.path.exists(path + ".partial")
    with h5py.File(path, "r") as f:                                  # the last checkpoint stays whole
        assert f.attrs["step"] == 10


def test_a_two_field_model_keeps_each_field(tmp_path):
    cfg = make(model="gray_scott", grid={"nx": 12, "ny": 10}, time={"dt": 0.01, "t_end": 0.2},
               boundary=dict.fromkeys(("west", "east", "south", "north"), "periodic"))
    decomp = init_global_grid(cfg)
    block = field(cfg, seed=4)
    path = str(tmp_path / "gs.ckpt.h5")
    write(path, cfg, decomp, block, step=4, snapshots=1)
    partial = partial_output(tmp_path / "gs.partial", cfg, 1)
    loaded, step, _ = load(path, cfg, decomp, partial)
    assert np.array_equal(loaded, block) and step == 4
    with h5py.File(path, "r+") as f:                       # the fields disagree on the grid: not complete
        del f["v"]
        f.create_dataset("v", data=np.zeros((10, 11)))
    with pytest.raises(CheckpointError, match="is not a complete"):
        inspect(path, cfg, partial)


def test_the_checksum_is_a_stable_format():
    """A checkpoint written by one version is read by the next: the checksum of a known block is pinned."""
    block = (np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4) + 1.0) / 11.0   # full mantissas
    decomp = Decomposition(4, 3, (1, 1), (0, 0), (0, 4), (0, 3), 1, {}, {}, SERIAL)
    assert checksum(block, decomp) == "eacdd1745d1745bc"                 # the top bit set: modulo 2**64
    sevenths = (np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4) + 1.0) / 7.0
    assert checksum(sevenths, decomp) == "01bedb6db6db6d8b"                # leading zeros kept: 16 digits


def test_a_damaged_field_is_refused(saved):
    """Any changed value is refused, whichever way it moves the checksum."""
    cfg, decomp, block, path, partial = saved
    stored = checksum(block, decomp)
    moved = set()
    for j, i, delta in ((4, 6, 1e-9), (1, 1, -1e-9), (7, 11, 0.5), (0, 3, -0.25)):
        damaged = block.copy()
        damaged[0, j, i] += delta
        with h5py.File(path, "r+") as f:
            f["C"][...] = damaged[0]
        moved.add(checksum(damaged, decomp) > stored)
        with pytest.raises(CheckpointError, match="is damaged .* does not match the checksum"):
            load(path, cfg, decomp, partial)
    assert moved == {True, False}


@pytest.mark.parametrize("change, words", [
    (lambda f: f.attrs.__setitem__("format", "something else"), "is not a complete"),
    (lambda f: f.attrs.__setitem__("format", "aaa"), "is not a complete"),       # sorts before ours
    (lambda f: f.attrs.__delitem__("checksum"), "is not a complete"),
    (lambda f: f.attrs.__setitem__("step", 2.5), "is not a complete"),
    (lambda f: f.attrs.__setitem__("step", True), "is not a complete"),
    (lambda f: f.attrs.__setitem__("checksum", 5), "is not a complete"),
    (lambda f: f.attrs.__setitem__("step", 21), "does not fit the grid or the step range"),   # nsteps = 20
    (lambda f: f.attrs.__setitem__("step", -1), "does not fit the grid or the step range"),
    (lambda f: f.attrs.__setitem__("snapshots", 0), "does not fit"),
    (lambda f: f.attrs.__setitem__("snapshots", 12), "does not fit"),     # more than step + 1
    (lambda f: f.__delitem__("C"), "is not a complete"),
])
def test_attributes_that_do_not_fit_are_refused(saved, change, words):
    cfg, _, _, path, partial = saved
    with h5py.File(path, "r+") as f:
        change(f)
    with pytest.raises(CheckpointError, match=words):
        inspect(path, cfg, partial)


def test_the_edges_of_the_step_range_are_accepted(saved):
    cfg, _, _, path, partial = saved
    for step, snapshots in ((20, 3), (2, 3), (0, 1)):
        with h5py.File(path, "r+") as f:
            f.attrs["step"], f.attrs["snapshots"] = step, snapshots
        if snapshots > 3:
            continue
        assert inspect(path, cfg, partial)["step"] == step


OTHERS = [{"physics": {"diffusivity": 0.0005}}, {"physics": {"diffusivity": 0.0007}}, {"initial": {"sigma": 0.3}},
          {"time": {"t_end": 0.03}}, {"output": {"every": 4}}, {"grid": {"nx": 15}}]


def test_another_config_or_grid_is_refused(saved, tmp_path):
    cfg, _, _, path, partial = saved
    others = [make(**other) for other in OTHERS]
    mine = result_hash(cfg)
    assert min(map(result_hash, others)) < mine < max(map(result_hash, others))   # hashes on both sides
    named = ["physics.diffusivity", "physics.diffusivity", "initial.sigma", "time.t_end", "output.every", "grid.nx"]
    for other, key in zip(others, named):
        with pytest.raises(CheckpointError, match=rf"was written for another config \({key} differs\)"):
            inspect(path, other, partial)
        with pytest.raises(CheckpointError, match=rf"belongs to the run of another config \({key} differs\)"):
            check_owner(path, other)
    # an older checkpoint without them; one whose record does not tell (its settings, not its hash, match);
    # records the solver does not write (a foreign or damaged file): the same wording, no traceback
    for settings in (None, checkpoint.result_settings(others[0]), "x: !!int abc\n", "[[[[" * 200):
        with h5py.File(path, "r+") as f:
            f.attrs.pop("result_settings", None)
            if settings is not None:
                f.attrs["result_settings"] = settings
        with pytest.raises(CheckpointError, match=r"another config \(the model or its source, grid, .* differ\)"):
            check_owner(path, others[0])
    for shape in ((9, 12), (9, 14), (8, 13), (10, 13)):     # the hash fits, the field does not
        with h5py.File(path, "r+") as f:
            del f["C"]
            f.create_dataset("C", data=np.zeros(shape))
        with pytest.raises(CheckpointError, match="does not fit the grid"):
            inspect(path, cfg, partial)
    with pytest.raises(CheckpointError, match="no checkpoint .* to resume from"):
        inspect(str(tmp_path / "none.h5"), cfg, partial)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(CheckpointError, match="cannot be read .* damaged or not a checkpoint"):
        inspect(str(tmp_path / "junk.h5"), cfg, partial)


def test_the_unfinished_output_must_hold_the_snapshots(saved, tmp_path):
    cfg, _, _, path, _ = saved
    with pytest.raises(CheckpointError, match="needs the unfinished output .* cannot be read"):
        inspect(path, cfg, str(tmp_path / "missing.partial"))
    short = partial_output(tmp_path / "short.partial", cfg, 2)
    with pytest.raises(CheckpointError, match="expects 3 snapshots in .*short.partial, which holds 2"):
        inspect(path, cfg, short)
    with h5py.File(short, "r+") as f:           # the fewest of the fields and the time axis count
        del f["time"]
        f.create_dataset("time", data=np.zeros(5))
    with pytest.raises(CheckpointError, match="which holds 2"):
        inspect(path, cfg, short)


class SumWithAnotherRank:
    """A communicator whose allreduce adds another rank's sum, as MPI's does: the total passes 2**64."""

    def __init__(self, other: int):
        self.other = other

    def allreduce(self, value):
        return value + self.other


def test_the_ranks_sums_wrap_at_2_to_the_64():
    cfg = make()
    block = field(cfg)
    serial = int(checksum(block, init_global_grid(cfg)), 16)
    other = 2 ** 64 - 3
    two = Decomposition(13, 9, (1, 1), (0, 0), (0, 13), (0, 9), 1, {}, {}, SumWithAnotherRank(other))
    assert checksum(block, two) == f"{(serial + other) % 2 ** 64:016x}"


def test_checksum_is_the_same_for_any_decomposition_and_sees_any_change():
    cfg = make()
    block = field(cfg)
    whole = init_global_grid(cfg)
    cut = 6

    def part(x0, x1):
        return Decomposition(13, 9, (2, 1), (0, 0), (x0, x1), (0, 9), 1, {}, {}, SERIAL)
    left, right = checksum(block[:, :, :cut], part(0, cut)), checksum(block[:, :, cut:], part(cut, 13))
    assert (int(left, 16) + int(right, 16)) % 2 ** 64 == int(checksum(block, whole), 16)
    assert len(checksum(block, whole)) == 16
    swapped = block.copy()
    swapped[0, 2, 3], swapped[0, 3, 2] = block[0, 3, 2], block[0, 2, 3]
    assert checksum(swapped, whole) != checksum(block, whole)
    moved = block.copy()
    moved[0, 0, 0] = np.nextafter(block[0, 0, 0], 2.0)
    assert checksum(moved, whole) != checksum(block, whole)
    two = np.stack([block[0], block[0] * 0.5])
    fields = Decomposition(13, 9, (1, 1), (0, 0), (0, 13), (0, 9), 1, {}, {}, SERIAL)
    assert checksum(two, fields) != checksum(two[::-1].copy(), fields)


def test_result_hash_follows_what_decides_the_result_only():
    cfg = make()
    same = [make(parallel={"threads": 2}), make(numerics={"kernel": "numpy"}), make(output={"path": "x.h5"}),
            make(checkpoint={"every": 3})]
    assert all(result_hash(other) == result_hash(cfg) for other in same)
    different = [make(grid={"nx": 15}), make(physics={"diffusivity": 0.0005}), make(initial={"sigma": 0.2}),
                 make(boundary={"west": "zero_flux"}), make(time={"t_end": 0.03}), make(output={"every": 4}),
                 make(model="fisher_kpp")]
    hashes = {result_hash(other) for other in different}
    assert len(hashes) == len(different) and result_hash(cfg) not in hashes
    assert len(result_hash(cfg)) == 16


def test_check_owner_refuses_only_another_configs_checkpoint(saved, tmp_path):
    cfg, _, _, path, _ = saved
    check_owner(path, cfg)
    check_owner(str(tmp_path / "missing.h5"), cfg)
    (tmp_path / "junk.h5").write_bytes(b"junk")
    check_owner(str(tmp_path / "junk.h5"), make(grid={"nx": 15}))          # left to the restart's checks
    for name in ("aaa", "zzz"):                             # another program's format, either side of ours
        with h5py.File(tmp_path / "other.h5", "w") as f:
            f.attrs["format"], f.attrs["result_hash"] = name, "0"
        check_owner(str(tmp_path / "other.h5"), cfg)
    with pytest.raises(CheckpointError, match="belongs to the run of another config"):
        check_owner(path, make(grid={"nx": 15}))


def test_remove_deletes_a_checkpoint_and_nothing_else(saved, tmp_path):
    cfg, decomp, _, path, _ = saved
    remove(path, decomp)
    assert not os.path.exists(path)
    mine = tmp_path / "notes.h5"
    mine.write_text("my notes")
    remove(str(mine), decomp)
    assert mine.read_text() == "my notes"
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    remove(str(picture), decomp)
    assert picture.exists()
    write(path, cfg, decomp, field(cfg), 10, 3)
    other_rank = Decomposition(13, 9, (1, 1), (0, 0), (0, 13), (0, 9), 1, {}, {}, SERIAL, rank=1, size=2)
    remove(path, other_rank)                                 # only rank 0 deletes
    assert os.path.exists(path)


def test_path_for_follows_the_output_unless_set():
    assert path_for(make(), "results/run.h5") == "results/run.ckpt.h5"
    assert path_for(make(), "a.b.h5") == "a.b.ckpt.h5"
    assert path_for(make(checkpoint={"path": "keep/here.h5"}), "results/run.h5") == "keep/here.h5"


def test_the_stop_record_and_its_file(tmp_path, monkeypatch, capsys):
    stop = Stopped(40, "run.ckpt.h5", "signal")
    assert str(stop) == "stopped at step 40 (signal); checkpoint run.ckpt.h5" and stop.step == 40
    record = tmp_path / "stop"
    monkeypatch.delenv(STOP_FILE_VARIABLE, raising=False)
    record_stop(stop)                                           # unset: nothing
    monkeypatch.setenv(STOP_FILE_VARIABLE, str(record))
    record_stop(stop)
    assert record.read_text() == "stopped at step 40 (signal); checkpoint run.ckpt.h5\n"
    record_stop(Stopped(50, "run.ckpt.h5", "--max-steps"))       # an earlier record is replaced
    assert record.read_text().startswith("stopped at step 50")
    mine = tmp_path / "config.yaml"
    mine.write_text("grid: {}\n")
    monkeypatch.setenv(STOP_FILE_VARIABLE, str(mine))
    record_stop(stop)
    assert mine.read_text() == "grid: {}\n" and "warning: not recording the stop" in capsys.readouterr().err
    monkeypatch.setenv(STOP_FILE_VARIABLE, str(tmp_path / "no" / "such" / "folder"))
    record_stop(stop)                                           # cannot be written: a warning, not a crash
    assert "warning: cannot record the stop" in capsys.readouterr().err


def test_stop_file_problems(tmp_path):
    assert stop_file_problem(str(tmp_path / "new")) is None
    (tmp_path / "empty").write_text("")
    assert stop_file_problem(str(tmp_path / "empty")) is None
    (tmp_path / "record").write_text("stopped at step 3 (signal); checkpoint x\n")
    assert stop_file_problem(str(tmp_path / "record")) is None
    (tmp_path / "other").write_text("stopped")                   # shorter than a record's beginning
    assert "does not hold a stop record" in stop_file_problem(str(tmp_path / "other"))
    assert stop_file_problem(str(tmp_path)) == "it is not a regular file"
    (tmp_path / "zebra").write_text("zebra crossings and other notes")       # sorts after a stop record
    assert "does not hold a stop record" in stop_file_problem(str(tmp_path / "zebra"))
    assert stop_file_problem(str(tmp_path / "record" / "below")).startswith("it cannot be read (")
    check_stop_file({})
    check_stop_file({STOP_FILE_VARIABLE: str(tmp_path / "new")})
    with pytest.raises(EnvironmentSettingError, match=f"{STOP_FILE_VARIABLE}=.*: it is not a regular file"):
        check_stop_file({STOP_FILE_VARIABLE: str(tmp_path)})


@pytest.mark.parametrize("signum", checkpoint.SIGNALS)
def test_signal_flag_catches_the_stop_signals_only_while_entered(signum):
    before = signal.getsignal(signum)
    with SignalFlag() as flag:
        assert flag.received is None and not flag.agreed(SERIAL)
        os.kill(os.getpid(), signum)
        assert flag.received == signum and flag.agreed(SERIAL)
    assert signal.getsignal(signum) is before
