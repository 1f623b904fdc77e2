"""Review of issue 27's output options: what a user sizing a run's output found wrong (see each test)."""
from __future__ import annotations

import subprocess

import h5py
import numpy as np
import pytest

from conftest import REPO, SMALL, ensemble_of_two, one_error_line, require, run_solver, write_config


@pytest.mark.parametrize("nx, output", [(513, {}), (1025, {"precision": "float32", "subsample": [2, 1]})])
def test_uncompressed_snapshots_take_the_bytes_of_their_data(tmp_path, nx, output):
    """513 stored nodes along x (a 2^k + 1 grid, or 1025 every second node) in chunks of 512 made HDF5
    allocate two whole chunks, 1024 columns: the file twice its data and twice what --dry-run predicts."""
    config = write_config(tmp_path, grid={"nx": nx, "ny": 5}, time={"dt": 0.001, "t_end": 0.002},
                          output={"path": "out.h5", "every": 1, **output})
    run_solver("run", config, cwd=tmp_path)
    with h5py.File(tmp_path / "out.h5") as f:
        field = f["C"]
        assert field.shape == (3, 5, 513)
        data = field.size * field.dtype.itemsize
        assert data <= field.id.get_storage_size() <= 1.01 * data


def renamed_model(tmp_path, model: str, old: str, new: str):
    """A copy of solver/models/MODEL.py with the definition ``old`` replaced by ``new``."""
    source = (REPO / "solver" / "models" / f"{model}.py").read_text()
    assert old in source
    path = tmp_path / f"{model}_renamed.py"
    path.write_text(source.replace(old, new))
    return path


def test_a_series_named_like_a_coefficient_field_is_one_line(tmp_path):
    """A model with field C and a coefficient field C_max (a carrying capacity, say) and series_every: the
    series C_max took the coefficient field's name, and HDF5 refused it with a traceback once the run had
    started."""
    model = renamed_model(tmp_path, "layered", 'COEFFICIENT_FIELDS = {"D"', 'COEFFICIENT_FIELDS = {"C_max"')
    config = write_config(tmp_path, base={**SMALL, "model": str(model)}, output={"series_every": 10})
    result = run_solver("run", config, check=False, cwd=tmp_path)
    one_error_line(result, "output.series_every = 10", "C_max", "coefficient field C_max", "series_every: 0")
    # nothing written but Python's bytecode cache of the imported model file (where bytecode is written)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["layered_renamed.py",
                                                                                      "small.yaml"]


def test_two_probes_stored_under_one_name_are_one_line(tmp_path):
    """Fields u_v and v: probe a's u_v and probe a_u's v are both probe_a_u_v."""
    model = renamed_model(tmp_path, "gray_scott", 'FIELDS = {"u":', 'FIELDS = {"u_v":')
    base = {"model": str(model), "grid": {"nx": 16, "ny": 16, "x": [0.0, 16.0], "y": [0.0, 16.0]},
            "boundary": {side: "periodic" for side in ("west", "east", "south", "north")},
            "time": {"dt": 1.0, "t_end": 2.0}, "output": {"path": "out.h5", "every": 1}}
    config = write_config(tmp_path, base=base, output={"probes": {"a": [1.0, 1.0], "a_u": [2.0, 2.0]}})
    result = run_solver("run", config, check=False, cwd=tmp_path)
    one_error_line(result, "output.probes.a_u", "probe_a_u_v", "probe a's value of u_v", "rename the probe a_u")
    assert not list(tmp_path.glob("out*"))


NUMBA_AT_EXIT = """import atexit, runpy, sys
atexit.register(lambda: print("numba imported:", "numba" in sys.modules))
sys.argv = ["solver", *sys.argv[1:]]
runpy.run_module("solver", run_name="__main__", alter_sys=True)
"""


def test_series_of_a_numpy_kernel_run_need_no_numba(tmp_path):
    """The numpy kernel never imports numba (an ensemble member's start-up: configs/ensemble.yaml), but
    series_every made every member import it, load the compiled series pass and run it on numba's default
    thread pool (every core, beside members running side by side: parallel.threads was not applied)."""
    outputs = {}
    for kernel in ("numpy", "numba"):
        config = write_config(tmp_path, f"{kernel}.yaml", numerics={"kernel": kernel},
                              output={"path": f"{kernel}.h5", "series_every": 3})
        result = run_solver("-c", NUMBA_AT_EXIT, "run", config, cwd=tmp_path, script=True)
        assert f"numba imported: {kernel == 'numba'}" in result.stdout
        outputs[kernel] = tmp_path / f"{kernel}.h5"
    with h5py.File(outputs["numpy"]) as a, h5py.File(outputs["numba"]) as b:
        assert a["C_total"].shape == b["C_total"].shape == (35,)
        for stat in ("min", "max"):
            assert np.array_equal(a[f"C_{stat}"][()], b[f"C_{stat}"][()])
        for stat in ("total", "l2"):
            assert np.allclose(a[f"C_{stat}"][()], b[f"C_{stat}"][()], rtol=1e-14, atol=0)


def test_ensemble_total_mass_is_the_whole_domains_when_members_keep_a_window(tmp_path):
    """ensemble_stats.py's total_mass ("integral of the final field over the domain") summed the stored nodes:
    with a window, the window's part only (here half the Gaussian). The members' series hold the whole
    domain's integral at the last step."""
    out = ensemble_of_two(tmp_path, {"every": 0, "window": {"x": [0.0, 1.0]}, "series_every": 10})
    totals = []
    for member in (1, 2):
        with h5py.File(tmp_path / "members" / f"member-000{member}.h5") as m:
            totals.append(m["C_total"][-1])
    with h5py.File(out) as f:
        assert np.array_equal(f["total_mass"][()], totals)


def test_a_window_outside_the_domain_says_where_the_domain_is(tmp_path):
    """A window beside the domain was told to 'widen output.window.x', not where the nodes are."""
    config = write_config(tmp_path, output={"window": {"x": [2.5, 3.0]}})
    result = run_solver("run", config, check=False, cwd=tmp_path)
    one_error_line(result, "keep 0 node(s) along x", "widen output.window.x", "x in [0, 2]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.yaml"]


@pytest.mark.parametrize("kind", ["nc7", "classic"])
def test_nccopy_converts_a_file_with_probes_and_series_to_the_classic_model(tmp_path, kind):
    """README: 'nccopy -k classic results/default.h5 out.nc'. With probes or series the file had three
    unlimited dimensions (time, probe_time, series_time) and nccopy refused it: 'NC_UNLIMITED size already
    in use' (the classic model has one)."""
    import netCDF4
    config = write_config(tmp_path, output={"path": "out.h5", "probes": {"p": [1.0, 0.5]}, "probe_every": 3,
                                            "series_every": 7})
    run_solver("run", config, cwd=tmp_path)
    copy = tmp_path / f"copy-{kind}.nc"
    result = subprocess.run([require("nccopy"), "-k", kind, str(tmp_path / "out.h5"), str(copy)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with netCDF4.Dataset(copy) as ds, h5py.File(tmp_path / "out.h5") as f:
        assert ds.dimensions["time"].isunlimited() and len(ds.dimensions["time"]) == 5
        assert len(ds.dimensions["probe_time"]) == 35 and len(ds.dimensions["series_time"]) == 16
        for name in ("probe_time", "probe_p_C", "series_time", "C_total", "C_max"):
            assert np.array_equal(ds[name][:], f[name][()]), name


def test_probes_halfway_between_nodes_all_snap_the_same_way(tmp_path):
    """round() rounds halves to even: of probes each halfway between two nodes, 0.5 dx went to node 0 and
    1.5 dx to node 2, so equally placed probes read nodes on different sides."""
    config = write_config(tmp_path, grid={"nx": 65},            # dx = 1/32: halves are exact
                          output={"probes": {"a": [0.5 / 32, 0.5], "b": [1.5 / 32, 0.5], "c": [2.5 / 32, 0.5]}})
    out = run_solver("run", config, "--dry-run", cwd=tmp_path).stdout
    for name, node in (("a", 1), ("b", 2), ("c", 3)):
        assert f"# probe {name}: asked at" in out and f"reads node (i = {node}, j = 22)" in out.split(
            f"# probe {name}:")[1].splitlines()[0]


def test_info_groups_the_output_choices_and_the_records_time(tmp_path):
    """solver info listed output_precision, output_nodes, ... and records_seconds under 'other', sorted among
    whatever else, rather than with the timings and under a heading of their own."""
    config = write_config(tmp_path, output={"precision": "float32", "series_every": 10})
    run_solver("run", config, cwd=tmp_path)
    lines = run_solver("info", tmp_path / "out.h5", cwd=tmp_path).stdout.splitlines()
    section = {}
    for line in lines:
        if line.endswith(":") and not line.startswith(" "):
            heading = line[:-1]
        elif line.startswith("  ") and " " in line.strip():
            section[line.split()[0]] = heading
    assert section["records_seconds"] == "timings"
    assert {section[key] for key in ("output_precision", "output_compression", "output_nodes",
                                     "output_series_every")} == {"output"}


def test_a_run_stopped_before_the_record_axes_had_a_fixed_length_resumes(tmp_path):
    """A week-long run stopped (requeued) by code whose probe_time and series_time were unlimited, holding
    the records up to its checkpoint only, resumes under this code to the uninterrupted run's file."""
    output = {"probes": {"p": [1.0, 0.5]}, "probe_every": 3, "series_every": 7}
    config = write_config(tmp_path, output={"path": "out.h5", **output})
    stopped = run_solver("run", config, "--max-steps", 40, check=False, cwd=tmp_path)
    assert stopped.returncode == 3, stopped.stderr
    with h5py.File(tmp_path / "out.h5.partial", "r+") as f:      # as that code left it: records to step 40 only
        for axis, count, names in (("probe_time", 14, ["probe_p_C"]),
                                   ("series_time", 6, [f"C_{s}" for s in ("total", "min", "max", "l2")])):
            data = {name: f[name][:count] for name in (axis, *names)}
            for name in (axis, *names):
                del f[name]
            scale = f.create_dataset(axis, data=data[axis], maxshape=(None,), chunks=(1024,))
            scale.make_scale(axis)
            for name in names:
                f.create_dataset(name, data=data[name], maxshape=(None,), chunks=(1024,)).dims[0].attach_scale(scale)
    run_solver("run", config, "--restart", "auto", cwd=tmp_path)
    reference = write_config(tmp_path, "reference.yaml", output={"path": "reference.h5", **output})
    run_solver("run", reference, cwd=tmp_path)
    with h5py.File(tmp_path / "out.h5") as a, h5py.File(tmp_path / "reference.h5") as b:
        for name in ("probe_time", "probe_p_C", "series_time", "C_total", "C_min", "C_max", "C_l2"):
            assert np.array_equal(a[name][()], b[name][()]), name
