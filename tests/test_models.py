"""Models: every built-in model gives the same bits through every kernel, thread count, rank count, process
grid and halo width; a user's model file outside the package runs the same way, checkpoints on 2 ranks and
resumes on 3, and an edit to it changes the result; periodic and zero-flux boundaries conserve mass; the
analysis scripts follow the model (or say clearly that it has no exact solution)."""
from __future__ import annotations

import textwrap

import h5py
import numpy as np
import pytest

from conftest import PYTHON, REPO, run_solver, solver_env, write_config
from solver.core import config as config_module
from solver import models

# Small versions of each built-in model's config: a few dozen steps on an odd-sized grid.
CONFIGS = {
    "diffusion": {"model": "diffusion", "grid": {"nx": 41, "ny": 35, "x": [0.0, 2.0], "y": [0.0, 1.0]},
                  "initial": {"center": [1.0, 0.5], "sigma": 0.1}, "time": {"dt": 0.02, "t_end": 0.8}},
    "advection_diffusion": {"model": "advection_diffusion", "grid": {"nx": 41, "ny": 35, "x": [0.0, 2.0],
                                                                     "y": [0.0, 1.0]},
                            "physics": {"velocity": [0.3, -0.2]}, "initial": {"center": [0.8, 0.5], "sigma": 0.1},
                            "time": {"dt": 0.05, "t_end": 2.0}},
    "fisher_kpp": {"model": "fisher_kpp", "grid": {"nx": 41, "ny": 35, "x": [0.0, 40.0], "y": [0.0, 35.0]},
                   "initial": {"front": 10.0}, "boundary": {"south": "periodic", "north": "periodic"},
                   "time": {"dt": 0.1, "t_end": 2.0}},
    "gray_scott": {"model": "gray_scott", "grid": {"nx": 42, "ny": 36, "x": [0.0, 42.0], "y": [0.0, 36.0]},
                   "initial": {"center": [21.0, 18.0], "half_width": 5.0},
                   "boundary": dict.fromkeys(("west", "east", "south", "north"), "periodic"),
                   "time": {"dt": 1.0, "t_end": 40.0}},
    # a coefficient field of diffusivity (layers and a disc), periodic in x (exchanges), mirrored in y
    "layered": {"model": "layered", "grid": {"nx": 43, "ny": 37, "x": [0.0, 1.0], "y": [0.0, 1.0]},
                "physics": {"layer_diffusivity": 0.0005, "inclusion_center": [0.5, 0.45]},
                "initial": {"center": [0.45, 0.5], "sigma": 0.12},
                "boundary": {"west": "periodic", "east": "periodic", "south": "zero_flux", "north": "zero_flux"},
                "time": {"dt": 0.01, "t_end": 0.8}},
    # three coefficient fields and two forcing values, each step its own
    "manufactured": {"model": "manufactured", "grid": {"nx": 41, "ny": 33, "x": [0.0, 1.0], "y": [0.0, 1.0]},
                     "physics": {"frequency": 9.0}, "time": {"dt": 0.004, "t_end": 0.4}},
}
COMMON = {"output": {"path": "out.h5", "every": 10}, "parallel": {"threads": 1}}
# Cases of tests/mpi_cases.py per rank count: process grid, halo width, threads per rank.
MPI_CASES = {1: ["1x1-h1-t2"], 2: ["1x2-h1-t1", "2x1-h3-t2"], 3: ["3x1-h1-t2", "1x3-h3-t1"],
             4: ["2x2-h1-t1", "2x2-h3-t2", "4x1-h3-t1"]}


def model_config(directory, name: str, **sections):
    base = {**CONFIGS[name], **COMMON}
    return write_config(directory, f"{name}.yaml", base=base, **sections)


def read_fields(path) -> dict[str, np.ndarray]:
    """Every dataset of the model's fields in an output (and its time axis)."""
    with h5py.File(path, "r") as f:
        assert f.attrs["complete"] == 1
        names = list(config_module.from_dict(config_module.parse_yaml(f.attrs["config"].decode(), "file"),
                                             "file").model_impl.fields)
        return {"time": f["time"][...], **{name: f[name][...] for name in names}}


def assert_same_bits(path, reference, what: str) -> None:
    got, want = read_fields(path), read_fields(reference)
    assert got.keys() == want.keys(), what
    for name in want:
        assert np.array_equal(got[name], want[name]), f"{what}: field {name} differs from the reference"


@pytest.fixture(scope="module", params=list(CONFIGS))
def reference(request, tmp_path_factory):
    """A model's small config and its run with the numpy kernel on one process: the reference bits."""
    directory = tmp_path_factory.mktemp(request.param)
    path = model_config(directory, request.param)
    run_solver("run", path, "-o", directory / "numpy.h5", "--set", "numerics.kernel=numpy")
    return request.param, path, directory / "numpy.h5"


def test_every_kernel_and_thread_count_gives_the_same_bits(reference, tmp_path):
    name, config, numpy_out = reference
    fields = read_fields(numpy_out)
    assert all(np.isfinite(v).all() for v in fields.values())
    assert not np.array_equal(fields[list(fields)[1]][0], fields[list(fields)[1]][-1]), "nothing happened"
    for kernel, threads in (("numba", 1), ("numba", 2), ("tiled", 1), ("tiled", 2)):
        out = tmp_path / f"{kernel}{threads}.h5"
        run_solver("run", config, "-o", out, "--set", f"numerics.kernel={kernel}",
                   "--set", f"parallel.threads={threads}")
        assert_same_bits(out, numpy_out, f"{name}, {kernel} kernel, {threads} thread(s)")


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_every_rank_count_grid_halo_and_thread_count_gives_the_same_bits(reference, ranks, tmp_path):
    name, config, numpy_out = reference
    run_solver(REPO / "tests" / "mpi_cases.py", config, tmp_path, *MPI_CASES[ranks], ranks=ranks, script=True)
    for case in MPI_CASES[ranks]:
        assert_same_bits(tmp_path / f"{case}.h5", numpy_out, f"{name}, {ranks} rank(s), {case}")


# --- a user's model, outside the package --------------------------------------------------------------------
DECAY = '''\
"""Diffusion with linear decay, dC/dt = D lap C - rate C: a user's model in a file of its own."""
import math
from dataclasses import dataclass

import numpy as np

FIELDS = {"C": ("1", "decaying tracer")}


@dataclass(frozen=True)
class Physics:
    diffusivity: float = 0.001
    rate: float = 0.5


@dataclass(frozen=True)
class Initial:
    center: tuple[float, float] = (1.0, 0.5)
    sigma: float = 0.1


def check(physics, initial):
    return None if physics.diffusivity > 0 else f"physics.diffusivity = {physics.diffusivity} must be positive"


def coefficients(physics, dx, dy, dt):
    cx, cy = physics.diffusivity * dt / dx ** 2, physics.diffusivity * dt / dy ** 2
    return 1.0 - 2.0 * cx - 2.0 * cy - physics.rate * dt, cx, cy


def update(c, w, e, s, n, k):
    weight, cx, cy = k
    return weight * c + cx * (w + e) + cy * (s + n)


def max_stable_dt(physics, dx, dy):
    return 1.0 / (2.0 * physics.diffusivity * (dx ** -2 + dy ** -2) + physics.rate)


def initial(physics, initial, x, y, uniform):
    return exact(physics, initial, x, y, 0.0)


def exact(physics, initial, x, y, t):
    variance = initial.sigma ** 2 + 2.0 * physics.diffusivity * t
    r2 = (x[np.newaxis, :] - initial.center[0]) ** 2 + (y[:, np.newaxis] - initial.center[1]) ** 2
    return initial.sigma ** 2 / variance * np.exp(-r2 / (2.0 * variance) - physics.rate * t)
'''


@pytest.fixture
def user_model(tmp_path):
    """A model file and its config in a folder outside the package; the config names it by relative path."""
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / "decay.py").write_text(DECAY)
    config = write_config(directory, "decay.yaml", base={
        "model": "decay.py", "grid": {"nx": 41, "ny": 35, "x": [0.0, 2.0], "y": [0.0, 1.0]},
        "time": {"dt": 0.02, "t_end": 1.0}, **COMMON})
    return directory, config


@pytest.mark.mpi
def test_a_user_model_runs_everywhere_checkpoints_on_2_ranks_resumes_on_3(user_model, tmp_path):
    directory, config = user_model
    env = solver_env(SOLVER_KERNEL_DIR=str(tmp_path / "kernels"), NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    validated = run_solver("validate", config, cwd=tmp_path, env=env)
    assert str(directory / "decay.py") in validated.stdout            # the file the run imports is named
    numpy_out = tmp_path / "numpy.h5"
    result = run_solver("run", config, "-o", numpy_out, "--set", "numerics.kernel=numpy", cwd=tmp_path, env=env)
    assert "max error vs exact" in result.stdout
    with h5py.File(numpy_out) as f:
        assert f.attrs["model"] == b"decay" and f.attrs["relative_error"] < 0.05
        assert f.attrs["model_file"].decode() == str(directory / "decay.py")
    for kernel in ("numba", "tiled"):
        run_solver("run", config, "-o", tmp_path / f"{kernel}.h5", "--set", f"numerics.kernel={kernel}",
                   "--set", "parallel.halo=3", ranks=2, cwd=tmp_path, env=env)
        assert_same_bits(tmp_path / f"{kernel}.h5", numpy_out, f"user model, {kernel} on 2 ranks")
    resumed = tmp_path / "resumed.h5"
    stopped = run_solver("run", config, "-o", resumed, "--max-steps", "23", ranks=2, cwd=tmp_path, env=env,
                         check=False)
    assert stopped.returncode == 3, stopped.stderr
    run_solver("run", config, "-o", resumed, "--restart", "require", ranks=3, cwd=tmp_path, env=env)
    assert_same_bits(resumed, numpy_out, "user model, checkpoint of 2 ranks resumed on 3")


def test_editing_a_user_model_changes_the_result_and_an_unchanged_one_compiles_nothing(user_model, tmp_path):
    directory, config = user_model
    env = solver_env(SOLVER_KERNEL_DIR=str(tmp_path / "kernels"), NUMBA_CACHE_DIR=str(tmp_path / "cache"),
                     NUMBA_DEBUG_CACHE="1")
    args = ("run", config, "--set", "numerics.kernel=numba", "--overwrite")
    first = run_solver(*args, "-o", tmp_path / "first.h5", cwd=tmp_path, env=env)
    again = run_solver(*args, "-o", tmp_path / "again.h5", cwd=tmp_path, env=env)
    assert "data saved" in first.stdout + first.stderr
    log = again.stdout + again.stderr
    assert "data loaded" in log and "data saved" not in log, log[-2000:]
    assert_same_bits(tmp_path / "again.h5", tmp_path / "first.h5", "the same model twice")
    # A stronger decay, written into the update itself: the cached kernel must not run the old one.
    source = (directory / "decay.py").read_text()
    (directory / "decay.py").write_text(source.replace("return weight * c + cx", "return 0.5 * weight * c + cx"))
    edited = run_solver(*args, "-o", tmp_path / "edited.h5", cwd=tmp_path, env=env)
    assert "data saved" in edited.stdout + edited.stderr           # compiled afresh
    with h5py.File(tmp_path / "first.h5") as a, h5py.File(tmp_path / "edited.h5") as b:
        assert b["C"][-1].max() < 0.5 * a["C"][-1].max(), "the edited update did not run"
        assert a.attrs["model_source_sha256"] != b.attrs["model_source_sha256"]
    reference = run_solver(*args, "-o", tmp_path / "edited-numpy.h5", "--set", "numerics.kernel=numpy",
                           cwd=tmp_path, env=env)
    assert reference.returncode == 0
    assert_same_bits(tmp_path / "edited.h5", tmp_path / "edited-numpy.h5", "edited model, numba against numpy")


# --- boundaries -----------------------------------------------------------------------------------------------
def totals(path, weights_for) -> np.ndarray:
    with h5py.File(path) as f:
        c = f["C"][...]
    return np.array([np.sum(weights_for(c.shape[1:]) * snapshot) for snapshot in c])


def trapezoid(shape, axes):
    """Node weights of the sum a zero-flux (mirror) boundary conserves: one half on those boundary lines."""
    w = np.ones(shape)
    if "y" in axes:
        w[[0, -1], :] *= 0.5
    if "x" in axes:
        w[:, [0, -1]] *= 0.5
    return w


@pytest.mark.parametrize("boundary, mirrored", [
    (dict.fromkeys(("west", "east", "south", "north"), "periodic"), ""),
    (dict.fromkeys(("west", "east", "south", "north"), "zero_flux"), "xy"),
    ({"west": "periodic", "east": "periodic", "south": "zero_flux", "north": "zero_flux"}, "y"),
])
def test_periodic_and_zero_flux_boundaries_conserve_the_total(tmp_path, boundary, mirrored):
    """A Gaussian that reaches every side: its total stays to round-off, and the field really changed there."""
    config = model_config(tmp_path, "diffusion", boundary=boundary, initial={"center": [0.3, 0.2], "sigma": 0.15},
                          time={"dt": 0.02, "t_end": 4.0}, physics={"diffusivity": 0.01})
    for kernel in ("numba", "tiled"):
        out = tmp_path / f"{kernel}.h5"
        run_solver("run", config, "-o", out, "--set", f"numerics.kernel={kernel}", "--set", "parallel.halo=4")
        total = totals(out, lambda shape: trapezoid(shape, mirrored))
        assert np.max(np.abs(total - total[0])) < 1e-12 * total[0], total
        with h5py.File(out) as f:
            assert np.abs(f["C"][-1][0, :] - f["C"][0][0, :]).max() > 1e-3   # the boundary nodes moved
    assert_same_bits(tmp_path / "tiled.h5", tmp_path / "numba.h5", "tiled against numba")


def test_a_heterogeneous_medium_conserves_the_total_and_writes_its_coefficient_field_once(tmp_path):
    """configs/layered.yaml as given (zero-flux sides, layers and an inclusion of other diffusivities): the
    trapezoid-weighted total stays to round-off on every kernel; D is one (y, x) dataset, in the XDMF too."""
    totals_by_kernel = {}
    for kernel in ("numpy", "numba", "tiled"):
        out = tmp_path / f"{kernel}.h5"
        run_solver("run", REPO / "configs" / "layered.yaml", "-o", out, "--set", f"numerics.kernel={kernel}",
                   "--set", "time.t_end=0.6")
        total = totals(out, lambda shape: trapezoid(shape, "xy"))
        assert np.max(np.abs(total - total[0])) < 1e-12 * total[0], total
        totals_by_kernel[kernel] = total
        with h5py.File(out) as f:
            d = f["D"]
            assert d.shape == (81, 81) and d.attrs["units"] == b"m2 s-1" and d.dims[0][0].name == "/y"
            assert {1e-3, 1e-4, 1e-2} <= set(np.unique(d[...]).round(12))
            assert np.abs(f["C"][-1] - f["C"][0]).max() > 1e-3                # it did diffuse
        assert 'Name="D"' in out.with_suffix(".xdmf").read_text()
    assert_same_bits(tmp_path / "tiled.h5", tmp_path / "numpy.h5", "layered: tiled against numpy")


def test_the_heat_source_example_closes_its_heat_budget_on_every_kernel(tmp_path):
    """configs/heat-source.yaml with its model file next to it (a coefficient field q, a switch-on forcing h):
    with zero-flux sides each step adds dt h(t) Q to the trapezoid total of T (Q: q's), to round-off; nothing
    before the switch-on; the same bits on every kernel."""
    heat_source = models.load(str(REPO / "configs" / "heat_source.py")).module
    physics, dt = heat_source.Physics(), 0.02
    for kernel in ("numpy", "numba", "tiled"):
        run_solver("run", REPO / "configs" / "heat-source.yaml", "-o", tmp_path / f"{kernel}.h5",
                   "--set", f"numerics.kernel={kernel}", "--set", "time.t_end=1.0")
    for other in ("numba", "tiled"):
        assert_same_bits(tmp_path / f"{other}.h5", tmp_path / "numpy.h5", f"heat source: {other} against numpy")
    with h5py.File(tmp_path / "numpy.h5") as f:
        weights = trapezoid(f["q"].shape, "xy")
        heating = np.sum(weights * f["q"][...])
        times, totals_now = f["time"][...], [np.sum(weights * snapshot) for snapshot in f["T"]]
    steps = np.arange(int(round(times[-1] / dt)))
    added = np.cumsum([dt * heat_source.forcing(physics, s * dt)[0] * heating for s in steps])
    expected = [0.0 if t == 0 else added[int(round(t / dt)) - 1] for t in times]
    assert np.allclose(totals_now, expected, rtol=1e-12, atol=1e-12), (totals_now, expected)
    assert totals_now[-1] > 0.5 * heating and heat_source.forcing(physics, 0.0) == (0.0,)


def test_fixed_boundaries_do_not_conserve_the_total(tmp_path):
    """The check above can fail: with fixed (Dirichlet) sides mass leaves through them."""
    config = model_config(tmp_path, "diffusion", initial={"center": [0.3, 0.2], "sigma": 0.15},
                          time={"dt": 0.02, "t_end": 4.0}, physics={"diffusivity": 0.01})
    run_solver("run", config, "-o", tmp_path / "fixed.h5")
    total = totals(tmp_path / "fixed.h5", lambda shape: np.ones(shape))
    assert abs(total[-1] - total[0]) > 1e-3 * total[0]


# --- configs, errors, ensembles ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["advection.yaml", "fisher-kpp.yaml", "gray-scott.yaml", "default.yaml",
                                  "layered.yaml", "manufactured.yaml"])
def test_the_built_in_configs_validate(name):
    cfg = config_module.load(REPO / "configs" / name)
    assert cfg.model_impl.name in models.BUILT_IN and cfg.stability <= 1


@pytest.mark.parametrize("text, words", [
    ("model: difusion\n", ["difusion", "built-in model", ".py"]),
    ("model: missing.py\n", ["missing.py", "does not exist"]),
    ("model: 3\n", ["model", "built-in model"]),
    ("boundary: {west: periodic}\n", ["boundary.west", "periodic", "both"]),
    ("boundary: {south: mirror}\n", ["boundary.south", "zero_flux"]),
    ("model: advection_diffusion\nphysics: {diffusivity: -1}\n", ["physics.diffusivity", "advection_diffusion"]),
    ("model: gray_scott\nphysics: {diffusivity: 1}\n", ["physics.diffusivity", "did you mean"]),
    ("model: fisher_kpp\ntime: {dt: 0.5, t_end: 1.0}\n", ["unstable", "fisher_kpp", "time.dt <="]),
])
def test_bad_model_settings_are_one_line(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = run_solver("validate", path, check=False, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_pure_advection_is_stable_and_allowed(tmp_path):
    config = model_config(tmp_path, "advection_diffusion", physics={"diffusivity": 0.0})
    run_solver("run", config, "-o", tmp_path / "pure.h5", "--set", "numerics.kernel=numpy")
    with h5py.File(tmp_path / "pure.h5") as f:
        c = f["C"][...]
    assert np.isfinite(c).all() and c.min() >= -1e-15 and c.max() <= 1.0 + 1e-15      # monotone scheme


def test_ensemble_perturbs_a_model_parameter_and_the_checkpoint_hash_covers_it(tmp_path):
    from solver import ensemble
    from solver.storage import checkpoint
    config = model_config(tmp_path, "gray_scott",
                          ensemble={"members": 4, "perturb": {"physics.feed": {"dist": "uniform", "low": 0.03,
                                                                               "high": 0.04}}})
    cfg = config_module.load(config)
    members = [ensemble.member_config(cfg, m)[0] for m in (1, 2)]
    assert members[0].physics.feed != members[1].physics.feed and 0.03 <= members[0].physics.feed <= 0.04
    assert checkpoint.result_hash(members[0]) != checkpoint.result_hash(members[1])


# --- analysis ---------------------------------------------------------------------------------------------------
def test_analysis_follows_the_model(tmp_path):
    fisher = model_config(tmp_path, "fisher_kpp")
    run_solver("run", fisher, "-o", tmp_path / "fisher.h5")
    with h5py.File(tmp_path / "fisher.h5") as f:           # the travelling wave, on a coarse grid (dx = 1)
        assert f.attrs["relative_error"] < 0.05 and np.abs(f["C"][-1] - f["C"][0]).max() > 0.2
    verify = run_solver(REPO / "analysis" / "verify.py", tmp_path / "fisher.h5", "--csv", tmp_path / "e.csv",
                        script=True)
    assert "L2 error" in verify.stdout and (tmp_path / "fisher-verify.png").stat().st_size > 1000
    run_solver(REPO / "analysis" / "plot_field.py", tmp_path / "fisher.h5", "--compare", "-o", tmp_path / "c.png",
               script=True)
    gray = model_config(tmp_path, "gray_scott")
    run_solver("run", gray, "-o", tmp_path / "gray.h5")
    with h5py.File(tmp_path / "gray.h5") as f:
        assert "max_error" not in f.attrs and {"u", "v"} <= set(f)       # nothing said about an error
    xdmf = (tmp_path / "gray.xdmf").read_text()
    assert 'Attribute Name="u"' in xdmf and 'Attribute Name="v"' in xdmf
    both = run_solver(REPO / "analysis" / "plot_field.py", tmp_path / "gray.h5", "-o", tmp_path / "g.png",
                      script=True)
    assert (tmp_path / "g.png").stat().st_size > 1000 and "wrote" in both.stdout
    for script, args in (("verify.py", []), ("plot_field.py", ["--compare", "--field", "v"]),
                         ("convergence.py", [])):
        target = ["--config", str(gray)] if script == "convergence.py" else [tmp_path / "gray.h5"]
        refused = run_solver(REPO / "analysis" / script, *target, *args, script=True, check=False, cwd=tmp_path)
        assert refused.returncode == 2 and "no exact solution" in refused.stderr, (script, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("config, nodes, t_end, orders", [
    ("advection.yaml", 41, 0.5, (0.7, 1.3)),       # upwind advection: first order
    # a diffusivity varying in x and y and a source in x, y and t with a known solution (dt ~ dx^2): second
    ("manufactured.yaml", 17, 0.25, (1.8, 2.2)),
])
def test_convergence_observes_the_order_of_the_scheme(tmp_path, config, nodes, t_end, orders):
    result = run_solver(REPO / "analysis" / "convergence.py", "--config", REPO / "configs" / config,
                        "--set", f"grid.nx={nodes}", "--set", f"grid.ny={nodes}", "--set", f"time.t_end={t_end}",
                        "--levels", "3", "--workdir", tmp_path, script=True, timeout=300)
    line = [l for l in result.stdout.splitlines() if l.startswith("observed order")][0]
    order = float(line.split("L2 ")[1].split(",")[0])
    assert orders[0] < order < orders[1], line


def attr(dataset, name: str) -> str:
    value = dataset.attrs[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def test_ensemble_of_a_two_field_model_and_its_statistics(tmp_path):
    """Members of gray_scott with a perturbed feed rate run through the pool; statistics of either field."""
    config = model_config(tmp_path, "gray_scott", numerics={"kernel": "numpy"},
                          ensemble={"members": 2, "output_dir": str(tmp_path / "members"),
                                    "perturb": {"physics.feed": {"dist": "uniform", "low": 0.03, "high": 0.04}}})
    run_solver("-m", "solver.pool", "1-2", "--config", config, "-j", "2", script=True, cwd=tmp_path)
    for field in ("u", "v"):
        out = tmp_path / f"stats-{field}.h5"
        run_solver(REPO / "analysis" / "ensemble_stats.py", "--config", config, "--field", field, "-o", out,
                   "--no-plots", script=True, cwd=tmp_path)
        with h5py.File(out) as f, h5py.File(tmp_path / "members" / "member-0001.h5") as m:
            assert f.attrs["field"] == field and f.attrs["members_used_count"] == 2
            assert f["mean"].shape == m[field].shape[1:]
            # names and units from the model's file: its field's long name, its parameters' UNITS
            assert attr(f["mean"], "long_name").startswith(f"mean of {attr(m[field], 'long_name')} {field} in the")
            assert attr(f["param_physics_feed"], "units") == "s-1"
    refused = run_solver(REPO / "analysis" / "ensemble_stats.py", "--config", config, "--field", "C",
                         script=True, check=False, cwd=tmp_path)
    assert refused.returncode == 2 and "gray_scott" in refused.stderr and "u, v" in refused.stderr
