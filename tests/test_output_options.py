"""Output sized by its user (output.precision, compression, subsample, window, probes, series_every): what is
stored equals the float64 run's values at the kept nodes, every series decodes in xarray and netCDF, a restart
continues every series, any decomposition writes the same probes, bad values are one line, the analysis
scripts read such files, --dry-run sizes them."""
from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

import h5py
import matplotlib.image
import numpy as np
import pytest
import xarray as xr

from conftest import (PYTHON, REPO, SMALL, ensemble_of_two, one_error_line, require, run_solver, solver_env,
                      write_config)

PROBES = {"centre": [1.0, 0.5], "corner": [0.0, 0.0], "off_node": [0.31, 0.77], "east": [2.0, 0.4]}
SIZED = {"precision": "float32", "compression": "gzip", "compression_level": 6, "shuffle": True,
         "subsample": [2, 3], "window": {"x": [0.4, 1.75]}, "probes": PROBES, "probe_every": 5,
         "series_every": 4}
ROWS, COLS = slice(0, 45, 3), slice(12, 53, 2)      # the kept nodes of SIZED on SMALL's 61 x 45 grid
STATISTICS = ("total", "min", "max", "l2")
REQUEUE = 3


def datasets(path) -> dict:
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in f if isinstance(f[name], h5py.Dataset)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The small problem as float64 with every node (the reference) and with SIZED, serially."""
    directory = tmp_path_factory.mktemp("sized")
    reference = write_config(directory, "reference.yaml", output={"path": "reference.h5", "every": 20})
    run_solver("run", reference, cwd=directory)
    sized = write_config(directory, "sized.yaml", output={"path": "sized.h5", "every": 20, **SIZED})
    result = run_solver("run", sized, cwd=directory)
    return directory / "reference.h5", directory / "sized.h5", result.stdout


def test_float32_is_the_float64_result_rounded_once_at_the_kept_nodes(runs):
    reference, sized, _ = runs
    with h5py.File(reference) as r, h5py.File(sized) as s:
        c = s["C"]
        assert c.dtype == np.float32 and c.compression == "gzip" and c.compression_opts == 6 and c.shuffle
        assert c.shape == (6, 15, 21)
        assert np.array_equal(c[()], r["C"][:, ROWS, COLS].astype(np.float32))   # rounded once, to nearest
        assert np.array_equal(s["x"][()], r["x"][COLS]) and np.array_equal(s["y"][()], r["y"][ROWS])
        assert "float32" in s["C"].attrs["comment"].decode()
        assert s.attrs["output_precision"] == b"float32"
        assert s.attrs["output_compression"] == b"gzip level 6 with shuffle"
        assert b"x: nodes 12..52 step 2, y: nodes 0..42 step 3" in s.attrs["output_nodes"]


def test_xdmf_sidecar_describes_the_kept_nodes_in_float32(runs):
    _, sized, _ = runs
    root = ET.parse(sized.with_suffix(".xdmf")).getroot()
    grid = root.find("Domain/Grid/Grid")
    assert grid.find("Topology").get("Dimensions") == "15 21"
    origin, spacing = ([float(v) for v in item.text.split()] for item in grid.find("Geometry").findall("DataItem"))
    with h5py.File(sized) as f:
        assert origin == [f["y"][0], f["x"][0]]
        assert spacing == pytest.approx([f["y"][1] - f["y"][0], f["x"][1] - f["x"][0]], rel=1e-12)
    slab = grid.find("Attribute/DataItem")
    assert slab.get("Precision") == "4" and slab.findall("DataItem")[1].get("Precision") == "4"


def test_probes_read_their_nodes_every_probe_every_steps_and_say_where(runs):
    reference, sized, stdout = runs
    ref, out = datasets(reference), datasets(sized)
    assert "probe off_node: asked at (0.31, 0.77), reads node (i = 9, j = 34) at (0.3, 0.772727)" in stdout
    x, y = ref["x"], ref["y"]
    assert np.array_equal(out["probe_time"], np.arange(0, 101, 5) * 0.01)
    for name, (px, py) in PROBES.items():
        i, j = int(np.argmin(np.abs(x - px))), int(np.argmin(np.abs(y - py)))
        series = out[f"probe_{name}_C"]
        assert series.dtype == np.float64 and series.shape == (21,)
        # the snapshots every 20 steps are records 0, 4, 8, ... of a probe taken every 5 steps: the same bits
        assert np.array_equal(series[::4], ref["C"][:, j, i]), name
    with h5py.File(sized) as f:
        a = f["probe_off_node_C"].attrs
        assert (a["node_i"], a["node_j"], a["x_requested"], a["y_requested"]) == (9, 34, 0.31, 0.77)


def trapezoid(c, dx, dy):
    w = np.ones(c.shape[-2:])
    w[[0, -1], :] *= 0.5
    w[:, [0, -1]] *= 0.5
    return w * dx * dy


def test_series_are_the_whole_fields_total_min_max_and_l2(runs):
    reference, sized, _ = runs
    ref, out = datasets(reference), datasets(sized)
    assert np.array_equal(out["series_time"], np.arange(0, 101, 4) * 0.01)
    dx, dy = ref["x"][1] - ref["x"][0], ref["y"][1] - ref["y"][0]
    w = trapezoid(ref["C"], dx, dy)
    common = [k for k, t in enumerate(out["series_time"]) if np.any(np.isclose(ref["time"], t, atol=1e-12))]
    assert len(common) == 6            # steps 0, 20, ..., 100: the whole (not the subsampled) field
    for snapshot, record in zip(ref["C"], common):
        assert out["C_min"][record] == snapshot.min() and out["C_max"][record] == snapshot.max()
        assert out["C_total"][record] == pytest.approx(np.sum(w * snapshot), rel=1e-13)
        assert out["C_l2"][record] == pytest.approx(np.sqrt(np.sum(w * snapshot ** 2)), rel=1e-13)
    assert np.all(np.diff(out["C_total"]) < 0)     # fixed sides (zero at the boundary): the total leaks out


def test_xarray_and_netcdf_decode_every_series(runs):
    import netCDF4
    _, sized, _ = runs
    raw = datasets(sized)
    with xr.open_dataset(sized, engine="h5netcdf") as ds:
        assert ds["C"].dims == ("time", "y", "x") and ds["C"].dtype == np.float32
        for name in PROBES:
            assert ds[f"probe_{name}_C"].dims == ("probe_time",)
        for stat in STATISTICS:
            assert ds[f"C_{stat}"].dims == ("series_time",)
        assert ds["C_total"].attrs["units"] == "m2" and ds["probe_time"].attrs["units"] == "s"
        for name, values in raw.items():
            assert np.array_equal(ds[name].values, values), name
    with netCDF4.Dataset(sized) as nc:           # the netCDF C library reads the same
        # fixed lengths, the run's record counts: the classic model (nccopy -k classic) has one unlimited dimension
        assert not nc.dimensions["probe_time"].isunlimited() and not nc.dimensions["series_time"].isunlimited()
        assert nc.dimensions["time"].isunlimited()
        for name, values in raw.items():
            assert np.array_equal(nc[name][:], values), name
    header = subprocess.run([require("ncdump"), "-h", str(sized)], capture_output=True, text=True, timeout=60)
    assert header.returncode == 0 and "double C_total(series_time) ;" in header.stdout, header.stderr
    assert "float C(time, y, x) ;" in header.stdout


def test_restart_continues_every_series_without_a_gap_or_a_duplicate(tmp_path):
    """Stopped at steps 37 and 71 (neither a record step of any series), resumed: every dataset equals the
    uninterrupted run's, records included."""
    config = write_config(tmp_path, output={"path": "out.h5", "every": 20, **SIZED}, checkpoint={"every": 30})
    run_solver("run", config, "-o", tmp_path / "reference.h5", cwd=tmp_path)
    out = tmp_path / "out.h5"
    for steps in (37, 34):
        stopped = run_solver("run", config, "-o", out, "--restart", "auto", "--max-steps", steps, check=False,
                             cwd=tmp_path)
        assert stopped.returncode == REQUEUE, stopped.stderr
    run_solver("run", config, "-o", out, "--restart", "auto", cwd=tmp_path)
    ref, resumed = datasets(tmp_path / "reference.h5"), datasets(out)
    assert ref.keys() == resumed.keys()
    for name in ref:
        assert np.array_equal(ref[name], resumed[name]), name
    assert len(resumed["series_time"]) == 26 and len(resumed["probe_time"]) == 21


def test_resuming_with_other_output_settings_is_refused(tmp_path):
    config = write_config(tmp_path, output={"path": "out.h5", "every": 20, **SIZED})
    stopped = run_solver("run", config, "--max-steps", 40, check=False, cwd=tmp_path)
    assert stopped.returncode == REQUEUE, stopped.stderr
    with h5py.File(tmp_path / "out.ckpt.h5") as f:           # checkpoints stay float64 and whole
        assert f["C"].dtype == np.float64 and f["C"].shape == (45, 61)
    refused = run_solver("run", config, "--restart", "auto", "--set", "output.precision=float64", check=False,
                         cwd=tmp_path)
    one_error_line(refused, "another config (output.precision differs)")


@pytest.mark.parametrize("key, value, fragments", [
    ("precision", "float16", ("output.precision = 'float16'", "float64, float32")),
    ("compression", "zlib", ("output.compression = 'zlib'", "none, gzip")),
    ("compression_level", 10, ("output.compression_level = 10", "1 (fast) to 9")),
    ("subsample", [0, 2], ("output.subsample = [0, 2]", "at least 1")),
    ("subsample", 2, ("output.subsample = 2", "pair of whole numbers")),
    ("window", {"x": [2.5, 3.0]}, ("keep 0 node(s) along x", "widen output.window.x")),
    ("window", {"z": [0.0, 1.0]}, ("output.window has a key 'z'",)),
    ("window", {"x": [1.0, 0.5]}, ("output.window.x = [1.0, 0.5]", "upper end")),
    ("probes", {"a": [2.5, 0.5]}, ("output.probes.a = [2.5, 0.5] lies outside the domain", "x in [0, 2]")),
    ("probes", {"a": [2.0000000001, 0.5]}, ("output.probes.a = [2.0000000001, 0.5] lies outside",)),
    ("probes", {"a": [0.5]}, ("output.probes.a = [0.5]", "a point [x, y]")),
    ("probes", {"9a": [0.5, 0.5]}, ("the name '9a'", "start with a letter")),
    ("probe_every", 0, ("output.probe_every = 0", "at least 1")),
    ("series_every", -1, ("output.series_every = -1",)),
    ("series_every", 2 ** 64, (f"output.series_every = {2 ** 64} is too large", "64 bits")),
    ("probe_every", 2 ** 63, (f"output.probe_every = {2 ** 63} is too large", "64 bits")),
])
def test_bad_values_are_one_line_and_write_nothing(tmp_path, key, value, fragments):
    config = write_config(tmp_path, output={"path": "out.h5", key: value})
    result = run_solver("run", config, check=False, cwd=tmp_path)
    one_error_line(result, "small.yaml", *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.yaml"]


@pytest.mark.parametrize("version, parallel, refused", [((1, 10, 1), True, True), ((1, 10, 1), False, False),
                                                         ((1, 10, 2), True, False)])
def test_compression_is_refused_where_the_hdf5_in_use_cannot(monkeypatch, version, parallel, refused):
    """Never silently uncompressed: an HDF5 before 1.10.2 cannot write filtered datasets collectively."""
    from solver.core.config import from_dict
    from solver.errors import ConfigError
    from solver.storage.output import check_storage
    cfg = from_dict({**SMALL, "output": {"compression": "gzip"}}, "c.yaml")
    monkeypatch.setattr(h5py.version, "hdf5_version_tuple", (*version, None))
    monkeypatch.setattr(h5py.version, "hdf5_version", ".".join(map(str, version)))
    if refused:
        with pytest.raises(ConfigError, match=r"c.yaml: output.compression = gzip under MPI needs parallel HDF5 "
                                              r">= 1.10.2 \(this is 1.10.1\)"):
            check_storage(cfg, parallel)
    else:
        check_storage(cfg, parallel)
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda _: False)
    with pytest.raises(ConfigError, match="no deflate filter"):
        check_storage(cfg, False)


def test_dry_run_sizes_the_output_as_stored(tmp_path):
    def predicted(*sets):
        out = run_solver("run", write_config(tmp_path), "--dry-run", *sets, cwd=tmp_path).stdout
        line = next(l for l in out.splitlines() if l.startswith("# output size"))
        number, unit = line.split()[3:5]
        return float(number) * {"B": 1, "KiB": 1024, "MiB": 2 ** 20}[unit], line
    full, _ = predicted()
    small, line = predicted("--set", "output.precision=float32", "--set", "output.subsample=[2, 3]")
    assert full == pytest.approx(5 * 61 * 45 * 8, rel=0.01)
    assert small == pytest.approx(5 * 31 * 15 * 4, rel=0.01)
    assert "31 x 15 (of 61 x 45) float32" in line
    _, line = predicted("--set", "output.compression=gzip", "--set", "output.series_every=1")
    assert "101 series records" in line and "before gzip" in line
    out = run_solver("run", write_config(tmp_path), "--dry-run", "--set", "output.probes={p: [0.31, 0.77]}",
                     cwd=tmp_path).stdout
    assert "# probe p: asked at (0.31, 0.77), reads node (i = 9, j = 34) at (0.3, 0.772727)" in out
    assert not list(tmp_path.glob("*.h5*"))


def script(name: str, *args, cwd) -> subprocess.CompletedProcess:
    result = subprocess.run([PYTHON, str(REPO / "analysis" / name), *map(str, args)], cwd=cwd, env=solver_env(),
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
    return result


def test_analysis_scripts_read_float32_and_subsampled_files(runs, tmp_path):
    reference, sized, _ = runs
    plotted = script("plot_field.py", sized, "--compare", "-o", tmp_path / "compare.png", cwd=tmp_path)
    assert "wrote" in plotted.stdout
    image = matplotlib.image.imread(tmp_path / "compare.png")
    assert image.shape[0] > 200 and image[..., :3].std() > 0.05
    verified = script("verify.py", sized, "--csv", tmp_path / "sized.csv", "-o", tmp_path / "sized.png", cwd=tmp_path)
    assert "nodes, kept (output.window, output.subsample) of the run's" in verified.stdout
    script("verify.py", reference, "--csv", tmp_path / "reference.csv", "-o", tmp_path / "reference.png",
           cwd=tmp_path)
    sized_rows = np.genfromtxt(tmp_path / "sized.csv", delimiter=",", names=True)
    reference_rows = np.genfromtxt(tmp_path / "reference.csv", delimiter=",", names=True)
    # the max error at the kept nodes: at most the whole grid's, plus float32's rounding
    assert np.all(sized_rows["max"] <= reference_rows["max"] + 1e-7)
    assert sized_rows["max"][-1] > 0.3 * reference_rows["max"][-1]      # the exact field at the kept nodes
    assert np.all(np.isfinite(sized_rows["l2"]))


def test_ensemble_statistics_read_float32_subsampled_members(tmp_path):
    out = ensemble_of_two(tmp_path, {"every": 0, "precision": "float32", "subsample": [2, 2]})
    with h5py.File(out) as f, h5py.File(tmp_path / "members" / "member-0001.h5") as m, \
            h5py.File(tmp_path / "members" / "member-0002.h5") as n:
        assert m["C"].dtype == np.float32 and f["mean"].shape == (23, 31) == m["C"].shape[1:]
        expected = (m["C"][-1].astype(np.float64) + n["C"][-1].astype(np.float64)) / 2
        assert f["mean"].dtype == np.float64 and np.allclose(f["mean"][()], expected, rtol=0, atol=1e-15)


@pytest.mark.mpi
def test_probes_are_the_same_bits_on_1_to_4_ranks(tmp_path):
    """Probes on rank corners and edges, a window that leaves some ranks without a kept node, gzip: the probe
    series and the snapshots are the same bits for 1, 2, 3 and 4 ranks; min and max too, totals to rounding."""
    probes = {**PROBES, "seam": [1.0, 0.0], "middle": [0.9667, 0.5]}
    config = write_config(tmp_path, output={"path": "out.h5", "every": 25, **SIZED, "probes": probes,
                                            "window": {"x": [1.2, 2.0], "y": [0.6, 1.0]}, "probe_every": 1,
                                            "series_every": 1},
                          parallel={"threads": 1, "halo": 2})
    results = {}
    for ranks in (1, 2, 3, 4):
        out = tmp_path / f"out{ranks}.h5"
        run_solver("run", config, "-o", out, ranks=None if ranks == 1 else ranks, cwd=tmp_path)
        results[ranks] = datasets(out)
    one = results[1]
    # y nodes 27..42 step 3 (6 rows): the southern ranks keep none and still join the collective writes
    assert len(one["probe_time"]) == 101 and one["C"].shape[1:] == (6, 13)
    for ranks in (2, 3, 4):
        other = results[ranks]
        assert_same_records(other, one, ranks)


def assert_same_records(got: dict, expected: dict, label) -> None:
    """The same datasets, bit for bit but for the sums (totals, L2 norms), equal to 1e-13: their order of
    addition follows the decomposition and the kernel."""
    assert got.keys() == expected.keys()
    for name in expected:
        if name.endswith(("_total", "_l2")):
            assert np.allclose(got[name], expected[name], rtol=1e-13, atol=0), (label, name)
        else:
            assert np.array_equal(got[name], expected[name]), (label, name)


def test_the_example_config_runs_and_holds_what_it_promises(tmp_path):
    run_solver("run", REPO / "configs" / "output.yaml", "-o", tmp_path / "example.h5", "--set", "time.t_end=0.1",
               cwd=tmp_path)
    with xr.open_dataset(tmp_path / "example.h5", engine="h5netcdf") as ds:
        assert ds["C"].dtype == np.float32 and ds.sizes["x"] == 129 and ds.sizes["y"] == 129
        assert float(ds["x"][0]) == 0.5 and float(ds["x"][-1]) == 1.5
        assert ds.sizes["probe_time"] == 51 and ds.sizes["series_time"] == 6
        assert {f"probe_{name}_C" for name in ("centre", "east", "north", "far", "corner")} <= set(ds.data_vars)
        assert ds["probe_corner_C"].values.max() < ds["probe_centre_C"].values.min()


def test_records_written_in_many_blocks_equal_those_written_at_the_end(runs, tmp_path, monkeypatch):
    """A block of records is written whenever the buffers fill (every rank at the same record): with blocks
    of 3 records the file is the same as with one block at the end."""
    from solver.core.config import load
    from solver.run.loop import run
    from solver.storage import records
    _, sized, _ = runs
    monkeypatch.setattr(records, "BLOCK", 3)
    monkeypatch.chdir(tmp_path)
    run(load(sized.with_name("sized.yaml")), str(tmp_path / "blocks.h5"), say=lambda *a, **k: None)
    reference, blocks = datasets(sized), datasets(tmp_path / "blocks.h5")
    assert reference.keys() == blocks.keys()
    for name in reference:
        assert np.array_equal(reference[name], blocks[name]), name


@pytest.mark.mpi
def test_records_of_a_run_stopped_on_2_ranks_and_resumed_on_3_continue_the_serial_ones(runs, tmp_path):
    _, sized, _ = runs
    config = write_config(tmp_path, output={"path": "out.h5", "every": 20, **SIZED},
                          parallel={"threads": 1, "halo": 2})
    out = tmp_path / "out.h5"
    stopped = run_solver("run", config, "-o", out, "--max-steps", 43, ranks=2, check=False, cwd=tmp_path)
    assert stopped.returncode == REQUEUE, stopped.stderr
    run_solver("run", config, "-o", out, "--restart", "require", ranks=3, cwd=tmp_path)
    serial, resumed = datasets(sized), datasets(out)
    assert serial.keys() == resumed.keys()
    for name in serial:
        if name.endswith(("_total", "_l2")):
            assert np.allclose(resumed[name], serial[name], rtol=1e-13, atol=0), name
        else:
            assert np.array_equal(resumed[name], serial[name]), name


@pytest.mark.parametrize("boundary, halo", [({}, 1), ({"south": "periodic", "north": "periodic"}, 3)],
                         ids=["fixed", "periodic-halo3"])
def test_records_taken_inside_every_kernel_equal_the_numpy_kernels(boundary, halo, tmp_path, monkeypatch):
    """Series and probes every step, taken inside the numba, rows and tiled kernels' sweeps (with fixed sides,
    whose nodes no kernel writes, and with a periodic axis, whose halo cycles of 3 steps cut the calls),
    equal those taken between the numpy kernel's calls: probes, min and max the same bits, totals and L2 to
    rounding."""
    from solver.core import tiling
    from solver.core.config import load
    from solver.run.loop import run
    monkeypatch.setattr(tiling, "DEPTH", 5)
    monkeypatch.setattr(tiling, "STRIP", 8)
    monkeypatch.chdir(tmp_path)
    results = {}
    for kernel in ("numpy", "numba", "rows", "tiled"):
        config = write_config(tmp_path, f"{kernel}.yaml", output={"path": f"{kernel}.h5", "every": 50,
                                                                   "probes": PROBES, "probe_every": 1,
                                                                   "series_every": 1},
                              numerics={"kernel": kernel}, boundary=boundary, parallel={"threads": 1, "halo": halo})
        run(load(config), str(tmp_path / f"{kernel}.h5"), say=lambda *a, **k: None)
        results[kernel] = datasets(tmp_path / f"{kernel}.h5")
    reference = results.pop("numpy")
    assert len(reference["series_time"]) == 101 and len(reference["probe_time"]) == 101
    for kernel, out in results.items():
        assert_same_records(out, reference, kernel)


def test_compression_settings_without_compression_are_a_warning(tmp_path):
    """Valid (a run stopped with them resumes: they are in its result hash), but named: they change nothing."""
    config = write_config(tmp_path, output={"compression_level": 9, "shuffle": False})
    result = run_solver("validate", config, cwd=tmp_path)
    assert result.stderr.splitlines() == [
        f"warning: {config}: output.compression_level = 9 has no effect with output.compression = none (set "
        "output.compression: gzip to compress)",
        f"warning: {config}: output.shuffle = false has no effect with output.compression = none (set "
        "output.compression: gzip to compress)"], result.stderr


@pytest.mark.parametrize("dry", [False, True])
def test_compression_the_hdf5_cannot_write_is_refused_before_any_directory(tmp_path, monkeypatch, capsys, dry):
    """The run refuses it before it makes the output's directories, and --dry-run refuses it too."""
    from solver import cli
    config = write_config(tmp_path, output={"compression": "gzip"})
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda _: False)
    out = tmp_path / "new" / "sub" / "out.h5"
    code = cli.main(["run", str(config), "-o", str(out), *(["--dry-run"] if dry else [])])
    assert code == 2
    error, = capsys.readouterr().err.strip().splitlines()
    assert "output.compression = gzip, but the HDF5 in use" in error and "no deflate filter" in error
    assert not (tmp_path / "new").exists()
