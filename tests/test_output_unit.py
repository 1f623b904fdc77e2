"""solver/storage/output.py in one process, on grids of a few nodes: a FieldWriter's file read back with h5py
under every output option (precision, gzip, subsample, window, probes, series, the XDMF sidecar), a restart's
resumed file, the failures turned into one line, and the readers' refusals. tests/test_output.py and
tests/test_output_options.py run the solver and netCDF tools; this file is also what .ci/mutate.py runs
against each mutant of the module."""
from __future__ import annotations

import errno
import os
import subprocess

import h5py
import numpy as np
import pytest

from conftest import PYTHON, REPO, solver_env
from solver.comm import SERIAL
from solver.core import config as config_module
from solver.core.grid import init_global_grid
from solver.errors import ConfigError, OutputError
from solver.storage import output
from solver.storage.netcdf import attribute
from solver.storage.output import (FieldWriter, check_storage, chunk_edge, describe_storage, open_complete,
                                   open_hdf5, partial_path, reason, storage, write_part, writing)

BASE = {"grid": {"nx": 13, "ny": 9, "x": [0.0, 1.2], "y": [0.0, 0.8]}, "time": {"dt": 0.001, "t_end": 0.02},
        "output": {"every": 5}}
ATTRS = {"config": "grid: {}", "solver_version": "test"}


def make(model=None, **sections):
    data = {name: dict(values) for name, values in BASE.items()}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    if model:
        data["model"] = model
    return config_module.from_dict(data, "test.yaml")


def block(cfg, seed=1, coefficients=False):
    names = cfg.model_impl.coefficient_names if coefficients else cfg.model_impl.fields
    return np.random.default_rng(seed).random((len(names), cfg.grid.ny, cfg.grid.nx))


def write_run(path, cfg, snapshots=(0.0, 0.005, 0.01), seed=1):
    """A whole serial run's output: the snapshots at these times (field seed + k), closed; its blocks."""
    writer = FieldWriter(str(path), cfg, init_global_grid(cfg), ATTRS)
    blocks = [block(cfg, seed + k) for k in range(len(snapshots))]
    for t, data in zip(snapshots, blocks):
        writer.append(t, data)
    writer.close({"wall_seconds": 1.5})
    return blocks


# --- storage options ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, edge", [(1, 1), (9, 9), (512, 512), (513, 257), (1024, 512), (1025, 342)])
def test_chunks_are_at_most_512_nodes_and_as_even_as_they_can_be(n, edge):
    assert chunk_edge(n) == edge


def test_a_default_output_is_float64_uncompressed_every_node(tmp_path):
    cfg = make()
    blocks = write_run(tmp_path / "run.h5", cfg)
    assert not os.path.exists(tmp_path / "run.h5.partial")
    with h5py.File(tmp_path / "run.h5", "r") as f:
        c = f["C"]
        assert c.shape == (3, 9, 13) and c.dtype == np.float64 and c.compression is None and c.chunks == (1, 9, 13)
        assert np.array_equal(c[...], np.stack(blocks)[:, 0])
        assert np.array_equal(f["time"][:], [0.0, 0.005, 0.01]) and f["time"].maxshape == (None,)
        assert f["time"].chunks == (256,)                            # one chunk per 256 snapshot times
        assert np.array_equal(f["x"][:], cfg.axis("x")) and np.array_equal(f["y"][:], cfg.axis("y"))
        assert [dim[0].name for dim in c.dims] == ["/time", "/y", "/x"]
        assert [f[name].attrs["_Netcdf4Dimid"] for name in ("time", "y", "x")] == [0, 1, 2]
        assert attribute(f["x"].attrs["axis"]) == "X" and attribute(f["time"].attrs["units"]) == "s"
        assert attribute(c.attrs["units"]) == "1" and "comment" not in c.attrs
        attrs = {key: attribute(value) for key, value in f.attrs.items()}
    assert attrs["complete"] == 1 and attrs["Conventions"] == "CF-1.8" and attrs["wall_seconds"] == 1.5
    assert attrs["solver_version"] == "test" and attrs["output_precision"] == "float64"
    assert attrs["output_compression"] == "none"
    assert attrs["output_nodes"] == "x: nodes 0..12 step 1, y: nodes 0..8 step 1 (of 13 x 9)"
    assert attrs["output_probes"] == "" and attrs["output_probe_every"] == 0 and attrs["output_series_every"] == 0


def test_float32_gzip_output_is_the_float64_result_rounded_once(tmp_path):
    cfg = make(output={"precision": "float32", "compression": "gzip", "compression_level": 7, "shuffle": True})
    assert storage(cfg) == {"dtype": np.float32, "compression": "gzip", "compression_opts": 7, "shuffle": True}
    blocks = write_run(tmp_path / "run.h5", cfg)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        c = f["C"]
        assert c.dtype == np.float32 and c.compression == "gzip" and c.compression_opts == 7 and c.shuffle
        assert np.array_equal(c[...], np.stack(blocks)[:, 0].astype(np.float32))
        assert "rounded once" in attribute(c.attrs["comment"])
        assert attribute(f.attrs["output_compression"]) == "gzip level 7 with shuffle"
    assert 'Precision="4"' in (tmp_path / "run.xdmf").read_text()


def test_gzip_without_shuffle_is_said_so(tmp_path):
    cfg = make(output={"compression": "gzip", "compression_level": 1, "shuffle": False})
    assert describe_storage(cfg)["output_compression"] == "gzip level 1"
    write_run(tmp_path / "run.h5", cfg)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f["C"].compression == "gzip" and not f["C"].shuffle
    assert 'Precision="8"' in (tmp_path / "run.xdmf").read_text()


def test_gzip_the_hdf5_in_use_cannot_write_is_refused(monkeypatch):
    gzip = make(output={"compression": "gzip"})
    check_storage(gzip, parallel=True)
    check_storage(make(), parallel=False)
    monkeypatch.setattr(h5py.version, "hdf5_version_tuple", (1, 10, 2))
    check_storage(gzip, parallel=True)                            # exactly the first version that can
    for older in ((1, 10, 1), (1, 8, 22)):
        monkeypatch.setattr(h5py.version, "hdf5_version_tuple", older)
        check_storage(gzip, parallel=False)
        with pytest.raises(ConfigError, match="under MPI needs parallel HDF5 >= 1.10.2"):
            check_storage(gzip, parallel=True)
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda _: False)
    check_storage(make(), parallel=True)                          # none needs no filter
    with pytest.raises(ConfigError, match="has no deflate filter"):
        check_storage(gzip, parallel=False)


def test_subsampled_window_keeps_those_nodes_and_their_coordinates(tmp_path):
    cfg = make(output={"subsample": [3, 2], "window": {"x": [0.2, 1.0]}})
    blocks = write_run(tmp_path / "run.h5", cfg)
    columns, rows = slice(2, 11, 3), slice(0, 9, 2)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f["C"].shape == (3, 5, 3)
        assert np.array_equal(f["C"][...], np.stack(blocks)[:, 0, rows, columns])
        assert np.allclose(f["x"][:], [0.2, 0.5, 0.8]) and np.array_equal(f["y"][:], cfg.axis("y")[rows])
        assert attribute(f.attrs["output_nodes"]) == "x: nodes 2..8 step 3, y: nodes 0..8 step 2 (of 13 x 9)"
    sidecar = (tmp_path / "run.xdmf").read_text()
    assert 'Dimensions="5 3"' in sidecar and "run.h5:/C" in sidecar


def test_two_field_model_writes_each_field(tmp_path):
    cfg = make("gray_scott", time={"dt": 0.01, "t_end": 0.2})
    blocks = write_run(tmp_path / "run.h5", cfg)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        for index, name in enumerate(cfg.model_impl.fields):
            assert np.array_equal(f[name][...], np.stack(blocks)[:, index])
    assert all(f"run.h5:/{name}" in (tmp_path / "run.xdmf").read_text() for name in cfg.model_impl.fields)


def test_coefficient_fields_are_written_once_without_a_time_axis(tmp_path):
    cfg = make("layered", output={"subsample": [2, 1], "precision": "float32"})
    writer = FieldWriter(str(tmp_path / "run.h5"), cfg, init_global_grid(cfg), ATTRS)
    coefficients = block(cfg, 7, coefficients=True)
    writer.write_coefficients(coefficients)
    writer.append(0.0, block(cfg))
    writer.close({})
    with h5py.File(tmp_path / "run.h5", "r") as f:
        d = f["D"]
        assert d.shape == (9, 7) and d.chunks == (9, 7) and d.dtype == np.float32
        assert [dim[0].name for dim in d.dims] == ["/y", "/x"] and attribute(d.attrs["units"]) == "m2 s-1"
        assert np.array_equal(d[...], coefficients[0, :, ::2].astype(np.float32))
        assert "rounded once" in attribute(d.attrs["comment"])


def test_probes_and_series_go_along_their_own_time_axes(tmp_path):
    cfg = make(output={"probes": {"mid": [0.6, 0.4]}, "probe_every": 10, "series_every": 5})
    attrs = describe_storage(cfg)
    assert attrs["output_probes"] == "mid (6, 4)" and attrs["output_probe_every"] == 10
    assert attrs["output_series_every"] == 5
    writer = FieldWriter(str(tmp_path / "run.h5"), cfg, init_global_grid(cfg), ATTRS)
    fields = {step: block(cfg, step) for step in range(cfg.nsteps + 1)}
    for step, data in fields.items():
        writer.record(step, data)
        if step == 10:
            writer.flush()
            assert np.array_equal(writer.file["probe_mid_C"][:2], [fields[0][0, 4, 6], fields[10][0, 4, 6]])
    writer.close({})
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert np.allclose(f["probe_time"][:], [0.0, 0.01, 0.02])
        assert np.array_equal(f["probe_mid_C"][:], [fields[s][0, 4, 6] for s in (0, 10, 20)])
        assert np.allclose(f["series_time"][:], [0.0, 0.005, 0.01, 0.015, 0.02])
        assert f["C_max"][2] == fields[10][0].max() and f["C_min"][4] == fields[20][0].min()


# --- a restart, and the file's life: .partial, complete, renamed ---------------------------------------------

def test_resumed_output_keeps_the_snapshots_before_the_checkpoint(tmp_path):
    cfg = make(output={"series_every": 5})
    decomp = init_global_grid(cfg)
    path = str(tmp_path / "run.h5")
    first = FieldWriter(path, cfg, decomp, ATTRS)
    for k, step in enumerate((0, 5, 10)):
        first.record(step, block(cfg, step))
        first.append(step * 0.001, block(cfg, step))
    first.flush()
    first.file.close()                                  # killed after its third snapshot; checkpoint at step 5
    resumed = FieldWriter(path, cfg, decomp, {"restarted": 1}, resume_at=2, resume_step=5)
    assert resumed.count == 2 and resumed.times == [0.0, 0.005] and resumed.file["C"].shape == (2, 9, 13)
    for step in (10, 15, 20):
        resumed.record(step, block(cfg, step))
        resumed.append(step * 0.001, block(cfg, step))
    resumed.close({})
    with h5py.File(path, "r") as f:
        assert np.array_equal(f["time"][:], [0.0, 0.005, 0.01, 0.015, 0.02])
        assert np.array_equal(f["C"][...], np.stack([block(cfg, s)[0] for s in (0, 5, 10, 15, 20)]))
        assert np.array_equal(f["C_max"][:], [block(cfg, s)[0].max() for s in (0, 5, 10, 15, 20)])
        assert f.attrs["restarted"] == 1 and f.attrs["complete"] == 1
    assert "0.02" in (tmp_path / "run.xdmf").read_text()


def test_the_file_is_partial_until_closed(tmp_path):
    cfg = make()
    path = str(tmp_path / "run.h5")
    writer = FieldWriter(path, cfg, init_global_grid(cfg), ATTRS)
    assert writer.file["C"].shape == (0, 9, 13) and writer.file["time"].shape == (0,)    # as many as times
    writer.append(0.0, block(cfg))
    writer.flush()
    assert not os.path.exists(path) and partial_path(path) == path + ".partial"
    assert os.path.exists(path + ".partial") and writer.file.filename == path + ".partial"
    assert writer.file.attrs["complete"] == 0 and writer.file["C"].shape == (1, 9, 13)
    writer.close({})
    assert os.path.exists(path) and not os.path.exists(path + ".partial")


def test_discard_removes_the_partial_unless_a_checkpoint_needs_it(tmp_path):
    cfg = make()
    for keep in (False, True):
        path = str(tmp_path / f"run{keep}.h5")
        writer = FieldWriter(path, cfg, init_global_grid(cfg), ATTRS)
        writer.append(0.0, block(cfg))
        writer.discard(**({"keep": True} if keep else {}))          # by default, nothing is kept
        assert os.path.exists(path + ".partial") == keep and not os.path.exists(path)
        if keep:
            with h5py.File(path + ".partial", "r") as f:
                assert f["C"].shape == (1, 9, 13)
    assert output.closed_cleanly()


def test_a_failed_start_leaves_nothing_and_a_failed_resume_keeps_the_partial(tmp_path):
    cfg = make()
    path = str(tmp_path / "run.h5")
    with pytest.raises(TypeError):
        FieldWriter(path, cfg, init_global_grid(cfg), {"bad": object()})
    assert not os.path.exists(path + ".partial")
    FieldWriter(path, cfg, init_global_grid(cfg), ATTRS).file.close()
    with pytest.raises(TypeError):
        FieldWriter(path, cfg, init_global_grid(cfg), {"bad": object()}, resume_at=0, resume_step=0)
    with h5py.File(path + ".partial", "r") as f:
        assert "C" in f
    with pytest.raises(OutputError, match=f"^writing {tmp_path}/gone/run.h5: No such file or directory$"):
        FieldWriter(str(tmp_path / "gone" / "run.h5"), cfg, init_global_grid(cfg), ATTRS)


def test_a_file_that_cannot_be_closed_is_kept_alive(tmp_path, monkeypatch):
    monkeypatch.setattr(output, "_unclosed", [])
    cfg = make()
    writer = FieldWriter(str(tmp_path / "run.h5"), cfg, init_global_grid(cfg), ATTRS)
    real = writer.file

    class Stuck:
        def close(self):
            raise RuntimeError("HDF5 cannot flush")
    writer.file = Stuck()
    writer.discard()
    assert not output.closed_cleanly() and output._unclosed == [writer]
    real.close()


def test_close_says_what_happened_to_the_partial(tmp_path):
    cfg = make()
    path = str(tmp_path / "run.h5")
    writer = FieldWriter(path, cfg, init_global_grid(cfg), ATTRS)
    os.remove(path + ".partial")            # h5py keeps its descriptor: the writes go on into the deleted file
    with pytest.raises(OutputError, match=r"its unfinished file .*run.h5.partial was removed during the run"):
        writer.close({})
    sub = tmp_path / "sub"
    sub.mkdir()
    writer = FieldWriter(str(sub / "run.h5"), cfg, init_global_grid(cfg), ATTRS)
    os.remove(sub / "run.h5.partial")
    sub.rmdir()
    with pytest.raises(OutputError, match=f"the directory {sub} vanished during the run"):
        writer.close({})
    (tmp_path / "taken.h5").mkdir()
    (tmp_path / "taken.h5" / "x").write_text("")
    writer = FieldWriter(str(tmp_path / "taken.h5"), cfg, init_global_grid(cfg), ATTRS)
    with pytest.raises(OutputError, match=r"^writing .*taken.h5: (Is a directory|Directory not empty)$"):
        writer.close({})


def test_a_sidecar_that_cannot_be_written_is_a_warning(tmp_path, capsys):
    (tmp_path / "run.xdmf").mkdir()
    write_run(tmp_path / "run.h5", make())
    assert open_complete(tmp_path / "run.h5").attrs["complete"] == 1
    err = capsys.readouterr().err
    assert err == f"warning: could not write the XDMF sidecar of {tmp_path}/run.h5: Is a directory\n"


# --- failures as one line, and the readers' refusals -------------------------------------------------------

def test_reason_is_one_line_of_the_operating_systems_words():
    assert reason(OSError(errno.ENOSPC, "whatever HDF5 said")) == "No space left on device"
    assert reason(OSError(0, "zero errno")) == "[Errno 0] zero errno"
    hdf5 = RuntimeError("Can't write data (file write failed: time = x, error message = 'Disk quota exceeded', "
                        "buf = 0x1)\n  more stack")
    assert reason(hdf5) == "Disk quota exceeded"
    assert reason(RuntimeError("\n  first line\nsecond line")) == "first line"
    assert reason(RuntimeError("")) == "RuntimeError"


def test_writing_turns_io_failures_into_one_output_error():
    with pytest.raises(OutputError, match="^flushing out.h5: No space left on device$"):
        with writing("out.h5", "flushing"):
            raise OSError(errno.ENOSPC, "no")
    with pytest.raises(OutputError, match="^writing out.h5: broken$"):
        with writing("out.h5"):
            raise RuntimeError("broken")
    with pytest.raises(OutputError, match="^already said$"):
        with writing("out.h5"):
            raise OutputError("already said")
    with pytest.raises(ValueError):
        with writing("out.h5"):
            raise ValueError("a bug, not the disk")


def test_write_part_writes_a_part_and_skips_an_empty_one(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        data = f.create_dataset("C", shape=(4, 5), dtype="f8", fillvalue=-1.0)
        write_part(data, (slice(1, 3), slice(0, 2)), np.ones((2, 2)), collective=False)
        write_part(data, (slice(0, 0), slice(0, 0)), np.ones((0, 0)), collective=False)
        assert data[...].sum() == 4 - 16


def test_open_hdf5_on_one_rank_is_a_plain_file(tmp_path):
    with open_hdf5(str(tmp_path / "a.h5"), "w", SERIAL) as f:
        assert f.driver != "mpio"


def test_readers_refuse_what_is_not_a_finished_output(tmp_path):
    def refused(path, pattern):
        with pytest.raises(ConfigError, match=pattern):
            open_complete(path)
    refused(tmp_path / "run.h5.partial", r"an unfinished output .*; read .*/run.h5 once a run has finished it")
    refused(tmp_path / "run.h5", r"run.h5: no such file$")
    (tmp_path / "run.h5.partial").write_text("")
    refused(tmp_path / "run.h5", r"run.h5: no such file \(.*run.h5.partial exists: that run did not finish")
    refused(tmp_path, "not a regular file")
    (tmp_path / "notes.h5").write_text("notes")
    refused(tmp_path / "notes.h5", r"cannot open it as HDF5 \(.*\); is it a solver output\?")
    with h5py.File(tmp_path / "half.h5", "w") as f:
        f.attrs["complete"] = 0
    refused(tmp_path / "half.h5", "its 'complete' attribute is not set")
    with h5py.File(tmp_path / "none.h5", "w"):
        pass
    refused(tmp_path / "none.h5", "its 'complete' attribute is not set")
    write_run(tmp_path / "done.h5", make())
    with open_complete(tmp_path / "done.h5") as f:
        assert f["C"].shape == (3, 9, 13)


# --- the MPI paths, taken on one process ------------------------------------------------------------------

def test_mpi_paths_as_rank_0_or_1_of_two():
    """The writer's MPI paths (tests/output_mpi_paths.py), in a process of its own: MPI started in pytest's
    would leave its PMIx variables to every later subprocess (see test_halo.py)."""
    result = subprocess.run([PYTHON, str(REPO / "tests" / "output_mpi_paths.py")], env=solver_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.splitlines()[-1:] == ["ok"], result.stdout + result.stderr
