"""Sides that change with time: a fixed side following boundary_values(physics, side, coordinates, t) and a
flux side whose ghost nodes give the outward normal derivative of boundary_gradient(physics, side,
coordinates, t). A user's model file with both runs with the same bits on every kernel, thread count, rank
count, process grid and halo width, and from a checkpoint of 2 ranks resumed on 3; the total's rate of
change equals the flux prescribed through the sides, to round-off; mistakes are refused in one line."""
from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from conftest import REPO, run_solver, write_config
from solver import models
from test_models import MPI_CASES, assert_same_bits

GROUND = '''\
"""Heat in a slab: a seasonal surface (north), a prescribed heat flux through the other sides."""
import math
from dataclasses import dataclass

import numpy as np

FIELDS = {"T": ("K", "temperature")}
SCALE = {"west": 1.0, "east": -0.6, "south": 0.8, "north": -0.3}     # flux into the domain, times q(t)


@dataclass(frozen=True)
class Physics:
    diffusivity: float = 0.002                 # D
    mean: float = 10.0                         # of the surface temperature
    swing: float = 8.0                         # its seasonal amplitude
    frequency: float = 6.0                     # w
    heat: float = 0.05                         # q0: the flux into the domain is SCALE q0 (1 + sin(w t)) (1 + s / 2)


@dataclass(frozen=True)
class Initial:
    value: float = 10.0
    bump: float = 3.0


def coefficients(physics, dx, dy, dt):
    return physics.diffusivity * dt / dx ** 2, physics.diffusivity * dt / dy ** 2


def update(c, w, e, s, n, k):
    cx, cy = k
    return c + cx * (w + e - 2.0 * c) + cy * (s + n - 2.0 * c)


def max_stable_dt(physics, dx, dy):
    return 0.5 / (physics.diffusivity * (dx ** -2 + dy ** -2))


def initial(physics, initial, x, y, uniform):
    r2 = (x[np.newaxis, :] - 0.7) ** 2 + (y[:, np.newaxis] - 0.4) ** 2
    return initial.value + initial.bump * np.exp(-r2 / 0.05)


def boundary_values(physics, side, coordinates, t):
    if side == "north":
        return physics.mean + physics.swing * math.sin(physics.frequency * t) * (1.0 + np.sin(coordinates))
    return None                                # other fixed sides keep their initial values


def flux_in(physics, side, coordinates, t):
    return SCALE[side] * physics.heat * (1.0 + math.sin(physics.frequency * t)) * (1.0 + 0.5 * coordinates)


def boundary_gradient(physics, side, coordinates, t):
    return flux_in(physics, side, coordinates, t) / physics.diffusivity
'''
GRID = {"nx": 41, "ny": 35, "x": [0.0, 2.0], "y": [0.0, 1.0]}
SEASONAL = {"west": "flux", "east": "flux", "south": "fixed", "north": "fixed"}
ALL_FLUX = dict.fromkeys(("west", "east", "south", "north"), "flux")
COMMON = {"output": {"path": "out.h5", "every": 10}, "parallel": {"threads": 1}}


def ground(directory, boundary, name="ground.yaml", **sections):
    (directory / "ground.py").write_text(GROUND)
    return write_config(directory, name, base={"model": "ground.py", "grid": GRID, "boundary": boundary,
                                               "time": {"dt": 0.02, "t_end": 1.0}, **COMMON}, **sections)


@pytest.fixture(scope="module")
def seasonal(tmp_path_factory):
    """The seasonal model with two flux sides, and its numpy run on one process: the reference bits."""
    directory = tmp_path_factory.mktemp("seasonal")
    config = ground(directory, SEASONAL)
    run_solver("run", config, "-o", directory / "numpy.h5", "--set", "numerics.kernel=numpy", cwd=directory)
    return directory, config, directory / "numpy.h5"


def test_a_seasonal_side_follows_its_values_on_every_kernel_and_thread_count(seasonal, tmp_path):
    directory, config, numpy_out = seasonal
    with h5py.File(numpy_out) as f:
        t, temperature = f["time"][...], f["T"][...]
        x = f["x"][...]
    for snapshot, time in zip(temperature, t):        # the north row holds each snapshot's own time's values
        want = 10.0 + 8.0 * math.sin(6.0 * time) * (1.0 + np.sin(x))
        assert np.array_equal(snapshot[-1], want), time
    assert np.array_equal(temperature[-1][0, 1:-1], temperature[0][0, 1:-1])     # south: fixed, unchanged
    assert np.abs(temperature[-1][1:-1, 0] - temperature[0][1:-1, 0]).max() > 1e-2   # west: flux, moved
    for kernel, threads in (("numba", 1), ("numba", 2), ("tiled", 1), ("tiled", 2)):
        out = tmp_path / f"{kernel}{threads}.h5"
        run_solver("run", config, "-o", out, "--set", f"numerics.kernel={kernel}",
                   "--set", f"parallel.threads={threads}", cwd=directory)
        assert_same_bits(out, numpy_out, f"seasonal sides, {kernel} kernel, {threads} thread(s)")


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_every_rank_count_grid_halo_and_thread_count_gives_the_same_bits(seasonal, ranks, tmp_path):
    directory, config, numpy_out = seasonal
    run_solver(REPO / "tests" / "mpi_cases.py", config, tmp_path, *MPI_CASES[ranks], ranks=ranks, script=True,
               cwd=directory)
    for case in MPI_CASES[ranks]:
        assert_same_bits(tmp_path / f"{case}.h5", numpy_out, f"seasonal sides, {ranks} rank(s), {case}")


@pytest.mark.mpi
def test_a_checkpoint_of_2_ranks_resumes_on_3_with_the_same_bits(seasonal, tmp_path):
    directory, config, numpy_out = seasonal
    resumed = tmp_path / "resumed.h5"
    stopped = run_solver("run", config, "-o", resumed, "--max-steps", "23", "--set", "numerics.kernel=tiled",
                         "--set", "parallel.halo=3", ranks=2, cwd=directory, check=False)
    assert stopped.returncode == 3, stopped.stderr
    run_solver("run", config, "-o", resumed, "--restart", "require", ranks=3, cwd=directory)
    assert_same_bits(resumed, numpy_out, "seasonal sides, checkpoint of 2 ranks resumed on 3")


def trapezoid_total(c, dx, dy):
    w = np.ones(c.shape)
    w[[0, -1], :] *= 0.5
    w[:, [0, -1]] *= 0.5
    return dx * dy * np.sum(w * c)


def side_integral(values, spacing):
    """The trapezoid rule along a side."""
    return spacing * (np.sum(values) - 0.5 * (values[0] + values[-1]))


@pytest.mark.parametrize("kernel", ["numpy", "tiled"])
def test_the_total_changes_by_the_flux_through_the_sides(kernel, tmp_path):
    """Four flux sides of different, time-dependent fluxes: the trapezoid-weighted total changes each step by
    dt times the flux in at the step's start (summed along each side by the trapezoid rule), to round-off.
    A ghost offset of h g instead of 2 h g (or a wrong sign) misses by half the flux (or all of it)."""
    config = ground(tmp_path, ALL_FLUX, output={"every": 1}, time={"dt": 0.02, "t_end": 0.6})
    out = tmp_path / "out.h5"
    run_solver("run", config, "-o", out, "--set", f"numerics.kernel={kernel}", "--set", "parallel.halo=2",
               cwd=tmp_path)
    with h5py.File(out) as f:
        t, c, x, y = f["time"][...], f["T"][...], f["x"][...], f["y"][...]
    dx, dy, dt = x[1] - x[0], y[1] - y[0], 0.02
    physics = models.load(str(tmp_path / "ground.py")).Physics()
    q = models.load(str(tmp_path / "ground.py")).flux_in
    total = np.array([trapezoid_total(snapshot, dx, dy) for snapshot in c])
    flux = np.array([sum(side_integral(q(physics, side, y if side in ("west", "east") else x, time),
                                       dy if side in ("west", "east") else dx)
                         for side in ("west", "east", "south", "north")) for time in t[:-1]])
    change = np.diff(total)
    assert np.abs(flux).min() > 1e-3 and len(change) == 30
    assert np.max(np.abs(change - dt * flux)) < 1e-12 * total.max(), (change, dt * flux)
    assert np.abs(c[-1][:, 0] - c[0][:, 0]).max() > 1e-2                # the sides' nodes moved


# --- mistakes: one line ---------------------------------------------------------------------------------------
MISTAKES = {
    "boundary_values raises": ("        return physics.mean + physics.swing",
                               "        return physics.mean + undefined_name + physics.swing",
                               ["boundary_values() raised NameError", "{line}"]),
    "boundary_gradient wrong shape": ("    return flux_in(physics, side, coordinates, t) / physics.diffusivity",
                                      "    return np.zeros(3)", ["boundary_gradient(physics, 'west'",
                                                                 "returned shape (3,) for T", "len(coordinates)"]),
    "boundary_values a string": ("    return None                                # other",
                                 "    return 'cold'                              # other",
                                 ["boundary_values(physics, 'south'", "returned str for T"]),
    "boundary_gradient None": ("    return flux_in(physics, side, coordinates, t) / physics.diffusivity",
                               "    return None", ["boundary_gradient(physics, 'west'", "returned None"]),
    "boundary_gradient two values for one field": (
        "    return flux_in(physics, side, coordinates, t) / physics.diffusivity", "    return 1.0, 2.0",
        ["returned 2 value(s) for the 1 field(s) T"]),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_broken_side_hook_is_one_line_naming_file_and_hook_and_nothing_is_written(mistake, tmp_path):
    old, new, words = MISTAKES[mistake]
    assert old in GROUND
    config = ground(tmp_path, SEASONAL)
    path = tmp_path / "ground.py"
    path.write_text(GROUND.replace(old, new))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if new in text)
    for command in (("validate", config), ("run", config, "-o", tmp_path / "out.h5")):
        result = run_solver(*command, check=False, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and str(path) in lines[0], result.stderr
        for word in words:
            assert (f"{path}, line {line}:" if word == "{line}" else word) in lines[0], lines[0]
    assert not list(tmp_path.glob("out*")), "a refused run wrote something"


def test_a_flux_side_without_the_models_hook_is_refused_in_one_line(tmp_path):
    config = write_config(tmp_path, "flux.yaml", boundary={"east": "flux"})
    for command in (("validate", config), ("run", config, "-o", tmp_path / "out.h5")):
        result = run_solver(*command, check=False, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "boundary.east = flux" in lines[0] and "boundary_gradient(physics, side, coordinates, t)" in lines[0]
    assert not list(tmp_path.glob("out*"))


def test_models_without_side_hooks_step_as_before():
    """No built-in model defines a side hook: none is stepped per step for them (their speed is kept)."""
    for name in models.BUILT_IN:
        model = models.load(name)
        kinds = dict(west="fixed", east="fixed", south="zero_flux", north="periodic")
        assert models.side_hooks(model, model.Physics(), kinds, np.zeros(3), np.zeros(3)) == {}


TWO_FIELDS = '''\
from dataclasses import dataclass

FIELDS = {"u": ("1", "one"), "v": ("1", "two")}


@dataclass(frozen=True)
class Physics:
    rate: float = 1.0


@dataclass(frozen=True)
class Initial:
    pass


def coefficients(physics, dx, dy, dt):
    return (0.1,)


def update(c, w, e, s, n, k):
    return c[0] + k[0] * (w[0] + e[0] - 2.0 * c[0]), c[1]


def max_stable_dt(physics, dx, dy):
    return 1.0


def initial(physics, initial, x, y, uniform):
    return 0.0 * x + 0.0 * y[:, None], 1.0 + 0.0 * x


def boundary_gradient(physics, side, coordinates, t):
    return physics.rate * t, 2.0 * coordinates          # a number for u, an array for v
'''


def test_a_two_field_model_gives_one_row_per_field_and_a_flux_side_plans_a_halo_of_one(tmp_path):
    from solver.core import config as config_module
    from solver.run.planning import plan
    (tmp_path / "two.py").write_text(TWO_FIELDS)
    model = models.load(str(tmp_path / "two.py"))
    coordinates = np.linspace(0.0, 1.0, 5)
    got = models.side_values(model, "boundary_gradient", model.Physics(), "east", coordinates, 0.5)
    assert got.shape == (2, 5) and np.array_equal(got, [np.full(5, 0.5), 2.0 * coordinates])
    (tmp_path / "two.yaml").write_text("model: two.py\ngrid: {nx: 41, ny: 31}\nboundary: {east: flux}\n"
                                       "parallel: {threads: 1}\n")
    assert plan(config_module.load(tmp_path / "two.yaml"), (1, 1), 1).halo == 1
    (tmp_path / "periodic.yaml").write_text("grid: {nx: 41, ny: 31}\nboundary: {west: periodic, east: periodic}\n")
    assert plan(config_module.load(tmp_path / "periodic.yaml"), (1, 1), 1).halo > 1      # others: as before
