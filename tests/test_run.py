"""The threaded run end to end: accuracy, invariance to threads and kernels, output layout, provenance."""
from __future__ import annotations

import subprocess

import h5py
import numpy as np
import pytest
import xarray as xr

from solver.core import config
from solver.models.diffusion import exact as gaussian_exact
from solver.storage.output import attribute

from conftest import REPO, require, run_solver


def final_field(path):
    with h5py.File(path, "r") as f:
        return f["C"][-1]


def test_small_run_matches_the_analytic_gaussian(tmp_path, small_config):
    result = run_solver("run", small_config, cwd=tmp_path)
    assert "MLUPS" in result.stdout and "max error" in result.stdout
    cfg = config.load(small_config)
    with h5py.File(tmp_path / "out.h5", "r") as f:
        c, t, x, y = f["C"][:], f["time"][:], f["x"][:], f["y"][:]
        assert f.attrs["complete"] == 1
    assert c.shape == (5, cfg.grid.ny, cfg.grid.nx)            # t = 0, 0.25, 0.5, 0.75, 1.0
    assert np.allclose(t, [0.0, 0.25, 0.5, 0.75, 1.0])
    exact = gaussian_exact(cfg.physics, cfg.initial, x, y, t[-1])
    assert np.abs(c[-1] - exact).max() < 5e-3 * exact.max()    # coarse grid: 3 nodes per sigma
    # Dirichlet: boundary nodes keep their initial values
    for edge in (np.s_[:, 0], np.s_[:, -1], np.s_[0, :], np.s_[-1, :]):
        assert np.array_equal(c[-1][edge], c[0][edge])
    # a wrong answer is detectable: the initial field is far from the final one
    assert np.abs(c[0] - exact).max() > 0.1


@pytest.mark.slow
def test_reference_problem_error_below_2e3_of_the_peak(tmp_path):
    run_solver("run", REPO / "configs/default.yaml", "-o", tmp_path / "ref.h5", "--set", "output.every=0",
               cwd=tmp_path, timeout=600)
    with h5py.File(tmp_path / "ref.h5", "r") as f:
        assert f.attrs["relative_error"] < 2e-3
        cfg = config.load(REPO / "configs/default.yaml")
        exact = gaussian_exact(cfg.physics, cfg.initial, f["x"][:], f["y"][:], 5.0)
        assert np.abs(f["C"][-1] - exact).max() < 2e-3 * exact.max()


def test_threads_and_kernels_agree(tmp_path, small_config):
    outputs = {}
    for name, sets in {"numba1": ["parallel.threads=1"], "numba2": ["parallel.threads=2"],
                       "numpy": ["numerics.kernel=numpy"]}.items():
        args = [a for s in sets for a in ("--set", s)]
        run_solver("run", small_config, *args, "-o", tmp_path / f"{name}.h5", cwd=tmp_path)
        outputs[name] = final_field(tmp_path / f"{name}.h5")
    assert np.array_equal(outputs["numba1"], outputs["numba2"])       # identical bits
    assert np.abs(outputs["numba1"] - outputs["numpy"]).max() < 1e-13


def test_output_layout_reads_in_xarray_and_h5dump(tmp_path, small_config):
    run_solver("run", small_config, cwd=tmp_path)
    path = tmp_path / "out.h5"
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds["C"].dims == ("time", "y", "x")
        assert ds["C"].attrs["units"] == "1" and ds["x"].attrs["units"] == "m"
        assert ds["time"].attrs["units"] == "s"
        assert ds.sizes == {"time": 5, "y": 45, "x": 61}
        assert float(ds["C"].isel(time=0).max()) == pytest.approx(1.0, abs=1e-3)
    with h5py.File(path, "r") as f:
        assert f["time"].maxshape == (None,)                  # unlimited
        assert f["x"].is_scale and f["y"].is_scale and f["time"].is_scale
    dump = subprocess.run([require("h5dump"), "-H", str(path)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0 and 'DATASET "C"' in dump.stdout and "H5S_UNLIMITED" in dump.stdout


def test_provenance_in_every_output(tmp_path, small_config):
    run_solver("run", small_config, cwd=tmp_path)
    with h5py.File(tmp_path / "out.h5", "r") as f:
        attrs = dict(f.attrs)
    stored = config.parse_yaml(attrs["config"], "attrs")
    assert config.from_dict(stored) == config.load(small_config)
    for key in ("python_version", "numpy_version", "numba_version", "h5py_version", "hdf5_version",
                "git_commit", "git_dirty", "host", "ranks", "threads_per_rank", "start_time", "end_time",
                "compute_seconds", "io_seconds", "mlups", "slurm_job_id", "peak_memory_mib_per_rank"):
        assert key in attrs, key
    assert attrs["ranks"] == 1 and attrs["threads_per_rank"] == 1
    assert attribute(attrs["kernel"]) in ("numba", "tiled")   # the kernel numerics.kernel: auto chose
    assert len(attrs["git_commit"]) == 40 or attrs["git_commit"] == "unknown"
    info = run_solver("info", tmp_path / "out.h5", cwd=tmp_path)
    assert "git_commit" in info.stdout and "nx: 61" in info.stdout and "kernel" in info.stdout


def test_installed_version_reads_the_install_without_importing():
    """mpi4py's version in the provenance comes from its .dist-info directory: what importlib.metadata says,
    without the imports importlib.metadata costs an ensemble member."""
    import importlib.metadata

    from solver.storage.provenance import installed_version
    for package in ("mpi4py", "numpy", "h5py"):
        assert installed_version(package) == importlib.metadata.version(package), package
    assert installed_version("no_such_package_here") == "none"


def test_existing_output_replaced_only_with_overwrite(tmp_path, small_config):
    run_solver("run", small_config, cwd=tmp_path)
    again = run_solver("run", small_config, cwd=tmp_path, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    run_solver("run", small_config, "--overwrite", "--set", "time.t_end=0.5", cwd=tmp_path)
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f["time"][-1] == pytest.approx(0.5)
    assert not list(tmp_path.glob("*.partial"))


def test_dry_run_predicts_and_writes_nothing(tmp_path, small_config):
    result = run_solver("run", small_config, "--dry-run", "--ranks", "4", "--set", "numerics.kernel=tiled",
                        cwd=tmp_path)
    text = result.stdout
    for word in ("dx = 0.0333333", "dy = 0.0227273", "stability", "memory per rank", "output size",
                 "4 rank(s) as", "ring buffers per thread"):
        assert word in text, text
    assert not (tmp_path / "out.h5").exists()


class TwoRanks:
    """A communicator of two ranks, this one rank 0, whose allgather answers with rank 1's ``other``."""

    def __init__(self, other):
        self.other = other

    def Get_size(self):
        return 2

    def Get_rank(self):
        return 0

    def allgather(self, mine):
        return [mine, self.other(mine)]


def test_agree_says_a_refusal_found_before_mpi_started_on_every_rank_or_names_its_rank(small_config):
    """cli.agree: a config refused while loading on every rank is said as it is; on one rank only, with that
    rank's number, ahead of what the ranks that loaded it found (here: too little memory)."""
    from solver.cli import agree
    from solver.errors import ConfigError
    cfg = config.load(small_config)
    refused = ConfigError("x.yaml: grid.nx = 0 must be at least 3")
    with pytest.raises(ConfigError, match=r"^x.yaml: grid.nx = 0 must be at least 3$"):
        agree(None, TwoRanks(lambda mine: mine), found=refused)              # both ranks refused it
    with pytest.raises(ConfigError, match=r"^rank 1: x.yaml: grid.nx = 0 must be at least 3$"):
        agree(cfg, TwoRanks(lambda mine: (None, str(refused))))             # only rank 1 did
    with pytest.raises(ConfigError, match=r"^rank 0: x.yaml"):
        agree(None, TwoRanks(lambda mine: ({"config": "?"}, "too little memory")), found=refused)
    agree(cfg, TwoRanks(lambda mine: mine))                                 # nothing refused: nothing raised


def test_a_hook_failing_on_one_ranks_nodes_is_raised_on_every_rank_named_by_that_rank():
    """comm.on_every_rank: a model hook failing on some ranks' own nodes only (initial, coefficient_fields,
    exact, the kernel check) is raised on every rank, so that none waits in the next collective."""
    from solver.comm import on_every_rank
    from solver.errors import ModelError

    def failing():
        raise ModelError("model file m.py: initial() raised ZeroDivisionError")
    with pytest.raises(ModelError, match=r"^rank 1: model file m.py: initial\(\) raised"):     # rank 1's nodes only
        on_every_rank(TwoRanks(lambda mine: ModelError("model file m.py: initial() raised ZeroDivisionError")),
                      lambda: 7)
    with pytest.raises(ModelError, match=r"^model file m.py"):                                 # every rank's
        on_every_rank(TwoRanks(lambda mine: mine), failing)
    with pytest.raises(ModelError, match=r"^rank 0: model file m.py"):                         # rank 0's only
        on_every_rank(TwoRanks(lambda mine: None), failing)
    assert on_every_rank(TwoRanks(lambda mine: None), lambda: 7) == 7                          # no refusal
