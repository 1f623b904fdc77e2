"""The model seam: coefficient fields and forcing reach the update the same way on every kernel; layered
conserves its total; manufactured converges with order 2; the neighbourhood form gives the classic form's
bits; warm-up never runs the update; every class of mistake in a model file is one ModelError line naming
the file (and the hook and line where Python knows them). No test looks at wall-clock time."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import run_solver, solver_env
from solver import models
from solver.core import kernels

# --- a small user model to break in every way -------------------------------------------------------------
BASE = '''\
"""Diffusion of one tracer with a source switched on at a time: a user's model for the checks."""
import math
from dataclasses import dataclass

import numpy as np

FIELDS = {"C": ("1", "tracer")}
COEFFICIENT_FIELDS = {"D": ("m2 s-1", "diffusivity"), "S": ("s-1", "source shape")}


@dataclass(frozen=True)
class Physics:
    diffusivity: float = 0.001
    switch_on: float = 0.5


@dataclass(frozen=True)
class Initial:
    sigma: float = 0.1


def check(physics, initial):
    return None if physics.diffusivity > 0 else "physics.diffusivity must be positive"


def coefficients(physics, dx, dy, dt):
    return dt / dx ** 2, dt / dy ** 2, dt


def coefficient_fields(physics, x, y, uniform):
    d = physics.diffusivity * (1.0 + 0.5 * x[np.newaxis, :] * y[:, np.newaxis])
    return d, np.exp(-x[np.newaxis, :] ** 2 - y[:, np.newaxis] ** 2)


def forcing(physics, t):
    return (1.0 if t >= physics.switch_on else 0.0,)


def update(u, a, k, f):
    rx, ry, dt = k
    d = a.c[0]
    west = 2.0 * d * a.w[0] / (d + a.w[0]) * (u.w - u.c)
    east = 2.0 * d * a.e[0] / (d + a.e[0]) * (u.e - u.c)
    south = 2.0 * d * a.s[0] / (d + a.s[0]) * (u.s - u.c)
    north = 2.0 * d * a.n[0] / (d + a.n[0]) * (u.n - u.c)
    return u.c + rx * (west + east) + ry * (south + north) + dt * a.c[1] * f[0]


def max_stable_dt(physics, dx, dy):
    return 0.5 / (1.5 * physics.diffusivity * (dx ** -2 + dy ** -2))


def initial(physics, initial, x, y, uniform):
    return np.exp(-(x[np.newaxis, :] ** 2 + y[:, np.newaxis] ** 2) / initial.sigma ** 2)


def exact(physics, initial, x, y, t):
    return 0.0 * x[np.newaxis, :] * y[:, np.newaxis]
'''


@pytest.fixture
def kernel_dir(tmp_path, monkeypatch):
    """Generated kernels of the test's own model files go to tmp_path, not into the package's cache."""
    monkeypatch.setenv(kernels.KERNEL_DIR_VARIABLE, str(tmp_path / "kernels"))


def model_file(tmp_path, *edits, name="mine.py"):
    """BASE with (old, new) text replacements (each must apply), written to tmp_path; its path."""
    source = BASE
    for old, new in edits:
        assert old in source, old
        source = source.replace(old, new)
    path = tmp_path / name
    path.write_text(source)
    return str(path)


def line_of(path, text) -> int:
    return next(n for n, line in enumerate(open(path).read().splitlines(), 1) if text in line)


# (edits to BASE, words the one line must hold); {file} is the model file's path, {line:TEXT} TEXT's line there
MISTAKES = {
    "empty FIELDS": ([('FIELDS = {"C": ("1", "tracer")}', "FIELDS = {}")], ["FIELDS is empty"]),
    "FIELDS not a dict": ([('FIELDS = {"C": ("1", "tracer")}', 'FIELDS = ["C"]')], ["FIELDS is a list"]),
    "field named time": ([('FIELDS = {"C"', 'FIELDS = {"time"')], ["'time'", "coordinate"]),
    "field named x": ([('FIELDS = {"C"', 'FIELDS = {"x"')], ["'x'", "coordinate"]),
    "field not an identifier": ([('FIELDS = {"C"', 'FIELDS = {"C 2"')], ["'C 2'", "identifiers"]),
    "field without long name": ([('("1", "tracer")', '"1"')], ["FIELDS['C']", "(units, long name)"]),
    "coefficient named like a field": ([('{"D": ("m2 s-1"', '{"C": ("m2 s-1"')],
                                       ["COEFFICIENT_FIELDS", "'C'", "already a name in FIELDS"]),
    "coefficient named y": ([('"S": ("s-1"', '"y": ("s-1"')], ["'y'", "coordinate"]),
    "Physics without default": ([("diffusivity: float = 0.001", "diffusivity: float")],
                                ["Physics.diffusivity has no default"]),
    "Initial not a dataclass": ([("@dataclass(frozen=True)\nclass Initial", "class Initial")],
                                ["Initial is not a dataclass"]),
    "update with five parameters": ([("def update(u, a, k, f)", "def update(u, a, k, f, g)")],
                                    ["update takes 5 parameters", "update(u, a, k, f)"]),
    "classic update with coefficient fields": ([("def update(u, a, k, f):", "def update(c, w, e, s, n, k):\n"
                                                 "    return c\n\n\ndef unused(u, a, k, f):")],
                                               ["update(c, w, e, s, n, k) cannot see coefficient fields"]),
    "coefficient fields without hook": ([("def coefficient_fields(", "def coefficient_fieldz(")],
                                        ["COEFFICIENT_FIELDS and coefficient_fields"]),
    "hook not a function": ([("def forcing(physics, t):\n    return (1.0 if t >= physics.switch_on else 0.0,)",
                              "forcing = (1.0,)")], ["forcing is a tuple, not a function"]),
    "check raises": ([("    return None if physics.diffusivity > 0", "    return physics.nope if physics.diffusivity > 0")],
                     ["check() raised AttributeError", "{line:physics.nope}"]),
    "check returns a number": ([("    return None if physics.diffusivity > 0", "    return 0 if physics.diffusivity > 0")],
                               ["check() returned int"]),
    "coefficients returns a float": ([("    return dt / dx ** 2, dt / dy ** 2, dt", "    return dt / dx ** 2")],
                                     ["coefficients() returned float", "tuple of numbers"]),
    "coefficients returns strings": ([("    return dt / dx ** 2, dt / dy ** 2, dt", "    return ('a',)")],
                                     ["coefficients() returned a tuple holding str"]),
    "max_stable_dt returns zero": ([("    return 0.5 / (1.5", "    return 0.0 * (1.5")],
                                   ["max_stable_dt() returned 0.0", "positive"]),
    "initial raises": ([("    return np.exp(-(x[np.newaxis, :] ** 2", "    return 1 / 0 + np.exp(-(x[np.newaxis, :] ** 2")],
                       ["initial() raised ZeroDivisionError", "{line:return 1 / 0}"]),
    "initial of a wrong shape": ([("    return np.exp(-(x[np.newaxis, :] ** 2 + y[:, np.newaxis] ** 2) / initial.sigma ** 2)",
                                   "    return np.zeros((3, 4, 5))")], ["initial() returned shape (3, 4, 5) for C"]),
    "initial with two fields for one": ([("    return np.exp(-(x[np.newaxis, :] ** 2 + y[:, np.newaxis] ** 2) / initial.sigma ** 2)",
                                          "    return x, y")], ["initial() returned 2 field(s) for the 1 of C"]),
    "exact raises": ([("    return 0.0 * x[np.newaxis, :] * y[:, np.newaxis]", "    return 0.0 * x[np.newaxis, :] * physics.y")],
                     ["exact() raised AttributeError", "{line:physics.y}"]),
    "coefficient_fields returns one for two": ([("    return d, np.exp(", "    return d + np.exp(")],
                                               ["coefficient_fields() returned 1 field(s) for the 2 of D, S"]),
    "coefficient_fields raises": ([("    d = physics.diffusivity * (", "    d = physics.diffusion * (")],
                                  ["coefficient_fields() raised AttributeError", "{line:physics.diffusion}"]),
    "forcing returns a float": ([("    return (1.0 if t >= physics.switch_on else 0.0,)",
                                  "    return 1.0 if t >= physics.switch_on else 0.0")], ["forcing() at t = 0 returned float"]),
    "update returns two for one field": ([("    return u.c + rx * (west + east)", "    return u.c, u.c + rx * (west + east)")],
                                         ["update() returned 2 values for the one field C"]),
    "update raises": ([("    rx, ry, dt = k\n    d = a.c[0]", "    rx, ry = k\n    d = a.c[0]")],
                      ["update() raised ValueError", "{line:rx, ry = k}"]),
    "math.exp in update": ([("    return u.c + rx * (west + east)", "    return math.exp(u.c) + rx * (west + east)")],
                           ["update() raised TypeError", "{line:math.exp(u.c)}", "no math.* functions"]),
    "branch on a field value": ([("    return u.c + rx * (west + east)", "    return (u.c if u.c > 0 else 0.0) + rx * (west + east)")],
                                ["update() raised ValueError", "no branches on field values"]),
    "update changes its argument": ([("    return u.c + rx * (west + east)",
                                      "    c = u.c\n    c *= 1.0\n    return c + rx * (west + east)")],
                                    ["update() raised ValueError", "{line:c *= 1.0}", "must not change its arguments"]),
    "coefficients NaN": ([("    return dt / dx ** 2, dt / dy ** 2, dt", "    return dt / dx ** 2, dt / dy ** 2, math.nan")],
                                ["coefficients() returned (", "nan)", "not NaN"]),
    "forcing NaN": ([("    return (1.0 if t >= physics.switch_on else 0.0,)", "    return (math.nan,)")],
                    ["forcing() at t = 0 returned (nan)", "not NaN"]),
    "coefficient field NaN": ([("    return d, np.exp(", "    return np.where(x[np.newaxis, :] > 0.5, np.nan, d), np.exp(")],
                                     ["coefficient_fields() gave NaN for D at x = 0.666667, y = 0 (at 15 node(s))"]),
    "initial unseeded": ([("    return np.exp(-(x[np.newaxis, :] ** 2 + y[:, np.newaxis] ** 2) / initial.sigma ** 2)",
                           "    return np.random.rand(len(y), len(x))")],
                         ["initial() gave other values on a second call", "uniform argument"]),
    "initial from the ends of x": ([("    return np.exp(-(x[np.newaxis, :] ** 2", "    return np.exp(-((x[np.newaxis, :] - x[0]) ** 2")],
                                   ["initial() gave other values on part of the nodes than on all of them"]),
    "exact from the length of y": ([("    return 0.0 * x[np.newaxis, :] * y[:, np.newaxis]",
                                     "    return len(y) * x[np.newaxis, :] * y[:, np.newaxis]")],
                                   ["exact() gave other values on part of the nodes"]),
    "coefficient field from the mean of x": ([("    d = physics.diffusivity * (1.0", "    d = physics.diffusivity * (x.mean()")],
                                             ["coefficient_fields() gave other values on part of the nodes"]),
    "update reads the forcing of a model without": (
        [("def forcing(physics, t):", "def forcingz(physics, t):")],
        ["update() raised IndexError", "f is empty: the model defines no forcing()"]),
    "update reads a without coefficient fields": (
        [('COEFFICIENT_FIELDS = {"D": ("m2 s-1", "diffusivity"), "S": ("s-1", "source shape")}\n', ""),
         ("def coefficient_fields(", "def coefficient_fieldz(")],
        ["update() raised AttributeError", "a is None: the model declares no COEFFICIENT_FIELDS"]),
    "initial transposed": ([("    return np.exp(-(x[np.newaxis, :] ** 2 + y[:, np.newaxis] ** 2)",
                             "    return np.exp(-(x[:, np.newaxis] ** 2 + y[np.newaxis, :] ** 2)")],
                           ["initial() returned shape (7, 5) for C on 7 x nodes by 5 y nodes"]),
}
TWO_FIELDS = {
    "two-field update returns one": ("    return new_u, new_v", "    return new_u", ["returned one value for the 2 fields u, v"]),
    "two-field update returns three": ("    return new_u, new_v", "    return new_u, new_v, new_v",
                                       ["returned 3 values for the 2 fields u, v"]),
}


def one_line(err: models.ModelError, path: str, words) -> None:
    text = str(err)
    assert "\n" not in text and path in text, text
    for word in words:
        if word.startswith("{line:"):
            word = f"{path}, line {line_of(path, word[6:-1])}:"
        assert word in text, text


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_every_mistake_in_a_model_file_is_one_line_naming_the_file(mistake, tmp_path):
    edits, words = MISTAKES[mistake]
    path = model_file(tmp_path, *edits)
    with pytest.raises(models.ModelError) as caught:
        models.check_model(models.load(path))
    one_line(caught.value, path, words)


@pytest.mark.parametrize("mistake", list(TWO_FIELDS))
def test_a_wrong_number_of_values_from_a_two_field_update_is_one_line(mistake, tmp_path):
    old, new, words = TWO_FIELDS[mistake]
    source = open(models.load("gray_scott").file).read()
    assert old in source
    path = tmp_path / "spots.py"
    path.write_text(source.replace(old, new))
    with pytest.raises(models.ModelError) as caught:
        models.check_model(models.load(str(path)))
    one_line(caught.value, str(path), words)


@pytest.mark.parametrize("mistake", ["field named time", "initial raises", "math.exp in update",
                                     "two-field update returns one"])
def test_validate_and_run_refuse_a_broken_model_in_one_line_writing_nothing(mistake, tmp_path):
    if mistake in MISTAKES:
        edits, words = MISTAKES[mistake]
        path = model_file(tmp_path, *edits)
    else:
        old, new, words = TWO_FIELDS[mistake]
        path = str(tmp_path / "spots.py")
        open(path, "w").write(open(models.load("gray_scott").file).read().replace(old, new))
    config = tmp_path / "broken.yaml"
    config.write_text(f"model: {path}\ngrid: {{nx: 41, ny: 31, x: [0.0, 40.0], y: [0.0, 30.0]}}\n"
                      "time: {dt: 0.5, t_end: 5.0}\noutput: {path: out.h5, every: 5}\nparallel: {threads: 1}\n")
    for command in (("validate", config), ("run", config, "-o", tmp_path / "out.h5")):
        result = run_solver(*command, check=False, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and path in lines[0], result.stderr
    assert not list(tmp_path.glob("out*")), "a refused run wrote something"


def test_a_constant_read_from_the_environment_never_runs_stale_from_numbas_cache(tmp_path):
    """numba freezes the value of every global update reads when it compiles, and its cache keeps it (the
    model file, all the cache looks at, is unchanged): a second run with another SCALE ran the first one's.
    Each run first steps its kernel and the numpy reference from the same sample values: refused, one line."""
    source = open(models.load("diffusion").file).read()
    source = source.replace("import math\n", "import math\nimport os\n\nSCALE = float(os.environ['SCALE'])\n", 1)
    update = "    return weight * c + cx * (w + e) + cy * (s + n)"
    assert update in source
    model = tmp_path / "scaled.py"
    model.write_text(source.replace(update, "    return SCALE * (weight * c + cx * (w + e) + cy * (s + n))"))
    config = tmp_path / "scaled.yaml"
    config.write_text(f"model: {model}\ngrid: {{nx: 21, ny: 17}}\ntime: {{dt: 0.0001, t_end: 0.001}}\n"
                      "numerics: {kernel: numba}\nparallel: {threads: 1}\n")
    env = solver_env(SOLVER_KERNEL_DIR=str(tmp_path / "kernels"))
    run_solver("run", config, "-o", tmp_path / "first.h5", env={**env, "SCALE": "1.0"})
    again = run_solver("run", config, "-o", tmp_path / "second.h5", env={**env, "SCALE": "0.5"}, check=False)
    assert again.returncode == 2 and "Traceback" not in again.stderr, again.stderr
    line, = again.stderr.strip().splitlines()
    assert str(model) in line and "keeps the values of the globals update reads" in line, line
    assert not list(tmp_path.glob("second*")), "a refused run wrote something"


def test_a_power_numba_and_numpy_compute_otherwise_is_a_warning_and_the_run_goes_on(tmp_path):
    """c ** 3: numba multiplies it out, numpy calls pow; they differ in the last bit on about a quarter of the
    sample. Rounding, not a stale constant: one warning naming the fix, and the run completes."""
    source = open(models.load("diffusion").file).read()
    update = "    return weight * c + cx * (w + e) + cy * (s + n)"
    model = tmp_path / "cubed.py"
    model.write_text(source.replace(update, "    return c ** 3 + 0.0 * (weight * c + cx * (w + e) + cy * (s + n))"))
    config = tmp_path / "cubed.yaml"
    config.write_text(f"model: {model}\ngrid: {{nx: 21, ny: 17}}\ntime: {{dt: 0.0001, t_end: 0.001}}\n"
                      "numerics: {kernel: numba}\nparallel: {threads: 1}\n")
    result = run_solver("run", config, "-o", tmp_path / "cubed.h5",
                        env=solver_env(SOLVER_KERNEL_DIR=str(tmp_path / "kernels")))
    warning, = [line for line in result.stderr.splitlines() if line.strip()]
    assert warning.startswith("warning: ") and str(model) in warning, warning
    assert "units in the last place" in warning and "c * c * c, not c ** 3" in warning, warning
    assert (tmp_path / "cubed.h5").exists()


# --- the new built-in models ----------------------------------------------------------------------------------
def mirror(x):
    """Zero-flux sides on a (fields, y, x) array with a halo of one: ghost node -1 holds node +1."""
    x[:, 0, :], x[:, -1, :] = x[:, 2, :], x[:, -3, :]
    x[:, :, 0], x[:, :, -1] = x[:, :, 2], x[:, :, -3]


def trapezoid_total(c):
    w = np.ones(c.shape)
    w[0, :] *= 0.5
    w[-1, :] *= 0.5
    w[:, 0] *= 0.5
    w[:, -1] *= 0.5
    return float(np.sum(w * c))


@pytest.mark.parametrize("kernel", kernels.KERNELS)
def test_layered_conserves_its_trapezoid_total_with_zero_flux_sides(kernel):
    """The layered model on 47 x 39 nodes with zero-flux sides (halo of one, refilled every step, D's once):
    300 steps change the trapezoid-weighted total by round-off only, while the field and D vary a lot."""
    model = models.load("layered")
    physics, initial = model.Physics(), model.Initial(center=(0.2, 0.45))
    nx, ny = 47, 39
    x, y = np.linspace(0, 1, nx), np.linspace(0, 1, ny)
    dx, dy = x[1], y[1]
    u = np.zeros((1, ny + 2, nx + 2))
    a = np.zeros((1, ny + 2, nx + 2))
    u[:, 1:-1, 1:-1] = model.initial(physics, initial, x, y, None)
    a[:, 1:-1, 1:-1] = models.coefficient_values(model, physics, x, y, None)
    mirror(a)
    assert a.min() == physics.layer_diffusivity and a.max() == physics.inclusion_diffusivity
    k = model.coefficients(physics, dx, dy, 0.9 * model.max_stable_dt(physics, dx, dy))
    advance = kernels.get_advance(model, kernel)
    values = models.time_values(model, physics, 1.0, 0, 1)
    v = u.copy()
    before = trapezoid_total(u[0, 1:-1, 1:-1])
    start = u[0, 1:-1, 1:-1].copy()
    for _ in range(300):
        mirror(u)
        u, v = advance(u, v, a, 1, k, values, (1, ny + 1, 1, nx + 1))
    after = trapezoid_total(u[0, 1:-1, 1:-1])
    assert np.abs(u[0, 1:-1, 1:-1] - start).max() > 0.1 * start.max()   # it did diffuse
    assert abs(after - before) < 1e-13 * before, (before, after)


def test_manufactured_converges_with_order_2_and_every_kernel_agrees():
    """The manufactured solution on 17^2, 33^2, 65^2 nodes to t = 0.25 (dt 0.8 of the limit, then a whole
    number of steps): the max error falls by about 4 per halving of dx, on the numba kernel, and the tiled and
    numpy kernels give its bits."""
    model = models.load("manufactured")
    physics = model.Physics()
    errors = []
    for n in (17, 33, 65):
        x = y = np.linspace(0.0, 1.0, n)
        dx = x[1]
        steps = int(np.ceil(0.25 / (0.8 * model.max_stable_dt(physics, dx, dx))))
        dt = 0.25 / steps
        u = np.stack([model.initial(physics, model.Initial(), x, y, None)])
        a = models.coefficient_values(model, physics, x, y, None)
        values = models.time_values(model, physics, dt, 0, steps)
        k = model.coefficients(physics, dx, dx, dt)
        out = {name: kernels.get_advance(model, name)(u.copy(), u.copy(), a, steps, k, values,
                                                       (1, n - 1, 1, n - 1))[0] for name in kernels.KERNELS}
        assert all(np.array_equal(out[name], out["numba"]) for name in kernels.KERNELS)
        errors.append(np.abs(out["numba"][0] - model.exact(physics, model.Initial(), x, y, steps * dt)).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 0.005 * 2.0 and np.all(orders > 1.8) and np.all(orders < 2.2), (errors, orders)   # peak 2


def test_the_new_configs_validate():
    from solver.core import config as config_module
    from conftest import REPO
    for name, model in (("layered.yaml", "layered"), ("manufactured.yaml", "manufactured")):
        cfg = config_module.load(REPO / "configs" / name)
        assert cfg.model_impl.name == model and cfg.stability <= 1


# --- the forms of the update, warm-up -------------------------------------------------------------------------
NEIGHBOURHOOD_DIFFUSION = '''\
from solver.models.diffusion import (FIELDS, Physics, Initial, coefficients, max_stable_dt, initial, exact)


def update(u, a, k, f):
    weight, cx, cy = k
    return weight * u.c + cx * (u.w + u.e) + cy * (u.s + u.n)
'''


@pytest.mark.parametrize("kernel", [*kernels.KERNELS, "prange"])
def test_the_neighbourhood_form_gives_the_classic_forms_bits(kernel, tmp_path, monkeypatch):
    """diffusion's update written as update(u, a, k, f) (no coefficient fields: a is None) against the
    built-in classic update(c, w, e, s, n, k)."""
    path = tmp_path / "diffusion_n.py"
    path.write_text(NEIGHBOURHOOD_DIFFUSION)
    classic = models.load("diffusion")
    want_kernel = kernels.get(classic, kernel)            # the built-in's kernels from the package's cache
    monkeypatch.setenv(kernels.KERNEL_DIR_VARIABLE, str(tmp_path / "kernels"))
    neighbourhood = models.load(str(path))
    assert (classic.form, neighbourhood.form) == (models.CLASSIC, models.NEIGHBOURHOOD)
    u = np.random.default_rng(5).random((1, 29, 41))
    k = classic.coefficients(classic.Physics(), 1.0, 0.8, 0.2)
    region = (1, 28, 1, 40)
    want = want_kernel(u.copy(), u.copy(), 11, k, region)[0]
    got = kernels.get(neighbourhood, kernel)(u.copy(), u.copy(), 11, k, region)[0]
    assert np.array_equal(got, want)


def test_the_unbroken_user_model_passes_every_check_warms_up_without_running_and_runs_on_every_kernel(
        monkeypatch, tmp_path, kernel_dir):
    """One test, so that the user model's kernels compile once: warm-up compiles every numba kernel of the
    model (whose update divides by a sum of coefficient values) without calling any kernel; then every kernel
    gives the numpy kernel's bits, with the forcing reaching the update; and on all-zero coefficient fields the
    compiled kernels give nan, as numpy does, instead of raising inside compiled code."""
    model = models.load(model_file(tmp_path))
    assert models.check_model(model) is None
    assert model.form == models.NEIGHBOURHOOD and list(model.coefficient_names) == ["D", "S"]
    compiled = kernels.compile_for(model)

    def refuse(*args, **kwargs):
        raise AssertionError("warm-up ran a kernel")
    monkeypatch.setattr(kernels, "get_advance", refuse)
    monkeypatch.setattr(kernels, "get", refuse)
    for name in ("numba", "tiled", "prange"):
        kernels.warm_up(model, name)
    assert compiled._advance_numba.signatures and compiled._advance_tiled.signatures
    assert compiled._prange_step.signatures
    monkeypatch.undo()

    ny, nx, steps = 19, 23, 9
    x, y = np.linspace(0, 1, nx), np.linspace(0, 1, ny)
    u = np.stack([model.initial(model.Physics(), model.Initial(), x, y, None)])
    a = models.coefficient_values(model, model.Physics(), x, y, None)
    values = models.time_values(model, model.Physics(), 0.1, 0, steps)
    assert values[:, 0].tolist() == [0.0] * 5 + [1.0] * 4             # switched on at t = 0.5, step 5
    k = model.coefficients(model.Physics(), x[1], y[1], 0.8 * model.max_stable_dt(model.Physics(), x[1], y[1]))
    out = {name: kernels.get_advance(model, name)(u.copy(), u.copy(), a, steps, k, values, (1, ny - 1, 1, nx - 1))[0]
           for name in kernels.KERNELS}
    assert all(np.array_equal(out[name], out["numpy"]) for name in kernels.KERNELS)
    without = kernels.get_advance(model, "numpy")(u.copy(), u.copy(), a, steps, k, 0 * values, (1, ny - 1, 1, nx - 1))[0]
    assert not np.array_equal(without, out["numpy"])                   # the forcing reached the update

    u = np.ones((1, 6, 7))
    a = np.zeros((2, 6, 7))
    values = np.ones((2, 1))
    for name in kernels.KERNELS:
        with np.errstate(all="ignore"):
            new, _ = kernels.get_advance(model, name)(u.copy(), u.copy(), a, 2, (0.1, 0.1, 0.01), values, (1, 5, 1, 6))
        assert np.isnan(new[0, 1:5, 1:6]).all(), name


def test_get_refuses_a_model_with_coefficient_fields_in_one_line():
    from solver.errors import ConfigError
    with pytest.raises(ConfigError) as caught:
        kernels.get(models.load("layered"), "numba")
    assert "\n" not in str(caught.value) and "get_advance" in str(caught.value)


def test_time_values_are_one_row_per_step_at_its_start_time():
    model = models.load("manufactured")
    physics = model.Physics()
    values = models.time_values(model, physics, 0.01, 7, 3)
    assert values.shape == (3, 2) and values.dtype == np.float64 and values.flags.c_contiguous
    for s in range(3):
        assert tuple(values[s]) == model.forcing(physics, (7 + s) * 0.01)
    assert models.time_values(models.load("diffusion"), models.load("diffusion").Physics(), 0.1, 0, 4).shape == (4, 0)


def test_coefficient_values_broadcast_and_stack():
    model = models.load("layered")
    x, y = np.linspace(0, 1, 9), np.linspace(0, 1, 5)
    a = models.coefficient_values(model, model.Physics(), x, y, None)
    assert a.shape == (1, 5, 9) and a.dtype == np.float64
    assert models.coefficient_values(models.load("diffusion"), None, x, y, None).shape == (0, 5, 9)
