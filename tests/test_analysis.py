"""The analysis scripts on real solver output: each writes its files, rejects bad input with exit code 2, and
the refinement study measures second order."""
from __future__ import annotations

import csv
import os
import subprocess

import h5py
import matplotlib.image
import numpy as np
import pytest

from conftest import PYTHON, REPO, require, run_solver, solver_env, write_config

SCRIPTS = ("plot_field.py", "verify.py", "convergence.py", "scaling.py")


def script(name: str, *args, cwd, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
    result = subprocess.run([PYTHON, str(REPO / "analysis" / name), *map(str, args)], cwd=cwd, env=solver_env(),
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{name} {' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def assert_png(path, min_pixels: int = 200):
    """A readable PNG of a sensible size (a blank or tiny figure would mean nothing was drawn)."""
    assert path.is_file(), path
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= min_pixels and image.shape[1] >= min_pixels, image.shape
    assert image[..., :3].std() > 0.05, f"{path} looks blank"


@pytest.fixture(scope="module")
def output(tmp_path_factory):
    """A finished serial run of the small problem with 5 snapshots."""
    directory = tmp_path_factory.mktemp("analysis")
    run_solver("run", write_config(directory), cwd=directory)
    return directory / "out.h5"


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_has_help(name, tmp_path):
    result = script(name, "--help", cwd=tmp_path)
    assert "usage:" in result.stdout and len(result.stdout.splitlines()) > 5


def test_plot_field_snapshots_compare_and_animation(output, tmp_path):
    require("ffmpeg")
    result = script("plot_field.py", output, "--snapshot", "0", "--snapshot", "-1", "-o", tmp_path / "field.png",
                    cwd=tmp_path)
    assert result.stdout.count("wrote") == 2
    for name in ("field-snap0.png", "field-snap4.png"):
        assert_png(tmp_path / name)
    script("plot_field.py", output, "--compare", "-o", tmp_path / "compare.png", "--animate", tmp_path / "movie.mp4",
           cwd=tmp_path)
    assert_png(tmp_path / "compare.png")
    probe = subprocess.run([require("ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v:0",
                            "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(tmp_path / "movie.mp4")],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and int(probe.stdout.strip()) == 5, probe


def test_plot_field_default_name_is_next_to_the_output(output):
    script("plot_field.py", output, cwd=output.parent)
    assert_png(output.with_suffix(".png"))


def test_verify_table_matches_the_solver_own_error(output, tmp_path):
    result = script("verify.py", output, "--csv", tmp_path / "errors.csv", "-o", tmp_path / "errors.png", cwd=tmp_path)
    assert "L2 error" in result.stdout
    rows = list(csv.DictReader(open(tmp_path / "errors.csv")))
    assert [int(r["snapshot"]) for r in rows] == [0, 1, 2, 3, 4]
    assert float(rows[0]["max"]) == 0.0                          # the initial state is the analytic field
    with h5py.File(output, "r") as f:
        solver_error, times = float(f.attrs["max_error"]), f["time"][:]
    # run.max_error computed this in the solver, on the field in memory: the same number from the file
    assert float(rows[-1]["max"]) == pytest.approx(solver_error, rel=1e-12)
    assert np.allclose([float(r["time"]) for r in rows], times)
    errors = [float(r["l2"]) for r in rows[1:]]
    assert all(0 < e < 1e-3 for e in errors) and errors == sorted(errors)
    assert_png(tmp_path / "errors.png")


def test_convergence_observed_order_is_two(tmp_path):
    result = script("convergence.py", "--levels", "3", "--workdir", tmp_path / "levels", "--csv",
                    tmp_path / "order.csv", "-o", tmp_path / "order.png", cwd=tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "order.csv")))
    assert [int(r["nx"]) for r in rows] == [41, 81, 161]
    stability = {round(float(r["stability"]), 12) for r in rows}
    assert len(stability) == 1                                   # dt scaled with dx^2
    for norm in ("l2", "max"):
        order = float(rows[-1][f"order_{norm}"])
        assert abs(order - 2) < 0.1, (norm, order, result.stdout)
    assert "observed order" in result.stdout
    assert_png(tmp_path / "order.png")
    assert all((tmp_path / "levels" / f"level-{k}.h5").is_file() for k in range(3))


@pytest.mark.mpi
def test_scaling_sweep_with_one_and_two_ranks(tmp_path):
    require("mpirun")
    env = solver_env(SCALING_RANKS="1 2", SCALING_THREADS="1", SCALING_MODES="strong weak",
                     SCALING_DIR=str(tmp_path), SCALING_MAX_WORKERS="2")
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(["bash", str(REPO / "jobs" / "scaling.sh"), "configs/scaling.yaml", "--set", "grid.nx=64",
                             "--set", "grid.ny=48"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for mode, grids in (("strong", {1: 64, 2: 64}), ("weak", {1: 64, 2: 127})):
        for ranks, nx in grids.items():
            with h5py.File(tmp_path / f"{mode}-r{ranks}-t1.h5", "r") as f:
                assert int(f.attrs["ranks"]) == ranks and int(f.attrs["threads_per_rank"]) == 1
                assert f["C"].shape[1:] == (48, nx)
        rows = list(csv.DictReader(open(tmp_path / f"{mode}.csv")))
        assert [(int(r["ranks"]), int(r["threads"])) for r in rows] == [(1, 1), (2, 1)]
        assert float(rows[0]["speedup"]) == 1.0 and all(float(r["mlups"]) > 0 for r in rows)
        shares = [float(rows[1][k]) for k in ("compute share", "halo exchange share", "I/O share")]
        assert sum(shares) == pytest.approx(1.0) and shares[1] > 0   # two ranks exchange halos
        assert_png(tmp_path / f"{mode}.png")


def test_scaling_plot_refuses_mixed_grids_for_strong_scaling(output, tmp_path):
    other = tmp_path / "other.h5"
    run_solver("run", write_config(tmp_path, grid={"nx": 31}), "-o", other, cwd=tmp_path)
    result = script("scaling.py", "plot", "--mode", "strong", output, other, cwd=tmp_path, check=False)
    assert result.returncode == 2 and "one grid" in result.stderr and "Traceback" not in result.stderr


def bad_inputs(directory, output):
    """A .partial left by a killed run, a config file, a missing file, an HDF5 file of another program."""
    partial = directory / "killed.h5.partial"
    partial.write_bytes(output.read_bytes())
    foreign = directory / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.zeros(3)
    config = write_config(directory, "run.yaml")
    return {"partial": partial, "config": config, "missing": directory / "missing.h5", "foreign": foreign}


@pytest.mark.parametrize("command", [("plot_field.py",), ("plot_field.py", "--compare"), ("verify.py",),
                                     ("scaling.py", "plot", "--mode", "strong")])
def test_scripts_refuse_bad_input_in_one_line(command, output, tmp_path):
    for kind, path in bad_inputs(tmp_path, output).items():
        before = set(os.listdir(tmp_path))
        result = script(command[0], *command[1:], path, cwd=tmp_path, check=False)
        assert result.returncode == 2, (kind, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and path.name in lines[0], (kind, lines)
        assert set(os.listdir(tmp_path)) == before, kind            # nothing written


def test_info_prints_the_provenance(output, tmp_path):
    info = run_solver("info", output, cwd=tmp_path).stdout
    for text in ("git_commit", "numpy_version", "compute_seconds", "mlups", "nx: 61", "complete"):
        assert text in info, text
    for kind, path in bad_inputs(tmp_path, output).items():
        if kind == "partial":
            continue
        result = run_solver("info", path, cwd=tmp_path, check=False)
        assert result.returncode == 2 and result.stderr.startswith("error:"), (kind, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_info_marks_an_unfinished_run(output, tmp_path):
    partial = tmp_path / "killed.h5.partial"
    partial.write_bytes(output.read_bytes())
    with h5py.File(partial, "r+") as f:
        f.attrs["complete"] = 0
    info = run_solver("info", partial, cwd=tmp_path).stdout
    assert info.splitlines()[0].endswith("INCOMPLETE: the run did not finish; timings are missing")
