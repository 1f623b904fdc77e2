"""Kernels give the reference's bits (odd sizes, regions, deep-halo shrink, any thread count), follow the
analytic Gaussian, and the benchmark command runs end to end. No test looks at wall-clock time."""
from __future__ import annotations

import contextlib

import json
import subprocess

import numpy as np
import pytest

from conftest import PYTHON, REPO, problem, require, run_solver, solver_env, space_and_time, write_config
from solver import models
from solver.core import kernels, series, tiling
from solver.models import diffusion

MODELS = list(models.BUILT_IN)
CASES = [  # (ny, nx, steps, region, shrink)
    (37, 53, 1, (1, 36, 1, 52), (0, 0, 0, 0)),
    (37, 53, 16, (1, 36, 1, 52), (0, 0, 0, 0)),
    (45, 61, 33, (1, 44, 1, 60), (0, 0, 0, 0)),
    (45, 61, 7, (3, 42, 2, 57), (1, 1, 1, 1)),
    (71, 39, 12, (4, 70, 1, 35), (1, 0, 0, 1)),
    (29, 83, 9, (1, 25, 5, 82), (0, 1, 1, 0)),
    (9, 13, 5, (1, 2, 1, 12), (0, 0, 0, 0)),         # a single row: the unpaired row on its own
    (9, 13, 4, (1, 3, 1, 12), (0, 0, 0, 0)),         # one pair
    (12, 17, 3, (2, 5, 1, 16), (1, 0, 1, 0)),        # three rows shrinking to one
]


def advance(model, name, u, v, steps, k, region, shrink=(0, 0, 0, 0), first=0):
    """The kernel ``name`` through the full entry point, with :func:`space_and_time`'s fields and values."""
    a, values = space_and_time(model, *u.shape[1:], steps, first)
    return kernels.get_advance(model, name)(u, v, a, steps, k, values, region, shrink)


def reference(model, u, v, steps, k, region, shrink=(0, 0, 0, 0)):
    return advance(model, "numpy", u, v, steps, k, region, shrink)


def last_box(region, shrink, steps):
    j0, j1, i0, i1 = region
    s = steps - 1
    return (slice(None), slice(j0 + s * shrink[0], j1 - s * shrink[1]),
            slice(i0 + s * shrink[2], i1 - s * shrink[3]))


TILE_SHAPES = [(tiling.STRIP, tiling.DEPTH), (8, 3), (11, 7), (5, 5), (3, 9)]
# The tiled kernel's cases: every pair of (model, case), each with a tile shape chosen so that every model also
# meets every tile shape and every case every tile shape (shape = (case + model) mod 5: 9 cases, 6 models >= 5
# shapes). The three factors meet in pairs; none of the three full products is run, only this covering set.
TILED = [(model_name, *case, TILE_SHAPES[(c + m) % len(TILE_SHAPES)])
         for m, model_name in enumerate(MODELS) for c, case in enumerate(CASES)]


def tiled_id(value):
    return "strip{}d{}".format(*value) if isinstance(value, tuple) and len(value) == 2 else None


@pytest.fixture
def tile_shape(request, monkeypatch):
    """A strip width and depth, small ones so that tiny grids still cut into many strips."""
    for name, value in zip(("STRIP", "DEPTH"), request.param):
        monkeypatch.setattr(tiling, name, value)
    return request.param


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("ny, nx, steps, region, shrink", CASES)
def test_numba_kernels_give_reference_bits(model_name, ny, nx, steps, region, shrink):
    """The plain kernels (pairs of rows, single rows) and the benchmark's prange yardstick, for every built-in
    model and every field."""
    model, u, v, k = problem(model_name, ny, nx)
    ref_new, ref_old = reference(model, u.copy(), v.copy(), steps, k, region, shrink)
    for name in ("numba", "rows", "prange"):
        new, old = advance(model, name, u.copy(), v.copy(), steps, k, region, shrink)
        assert np.array_equal(new, ref_new) and np.array_equal(old, ref_old), name


@pytest.mark.parametrize("model_name, ny, nx, steps, region, shrink, tile_shape", TILED, ids=tiled_id,
                         indirect=["tile_shape"])
def test_tiled_kernel_gives_reference_bits(model_name, ny, nx, steps, region, shrink, tile_shape):
    model, u, v, k = problem(model_name, ny, nx)
    ref_new, _ = reference(model, u.copy(), v.copy(), steps, k, region, shrink)
    new, old = advance(model, "tiled", u.copy(), v.copy(), steps, k, region, shrink)
    box = last_box(region, shrink, steps)
    assert np.array_equal(new[box], ref_new[box])
    # Outside the region nothing is written, in either buffer; they come back in the reference's order.
    outside = np.ones(u.shape, bool)
    outside[:, region[0]:region[1], region[2]:region[3]] = False
    first, second = (u, v) if steps % 2 == 0 else (v, u)
    assert np.array_equal(new[outside], first[outside]) and np.array_equal(old[outside], second[outside])


RECORDED = [CASES[2], CASES[3], CASES[4], CASES[8]]      # fixed region; shrinking on all, on two, on two sides


@pytest.mark.parametrize("model_name", ["diffusion", "gray_scott"])
@pytest.mark.parametrize("ny, nx, steps, region, shrink", RECORDED)
@pytest.mark.parametrize("kernel", ["numba", "rows", "tiled"])
def test_kernels_record_series_and_probes_of_every_step_they_take(kernel, model_name, ny, nx, steps, region,
                                                                    shrink, monkeypatch):
    """Records taken inside a call (the owned box within the last step's box, steps with series, probes, both
    or neither): per step, min and max are those of the reference's state, the weighted total and sum of
    squares equal them to rounding, the probes are its bits; the fields keep the call's bits without records."""
    monkeypatch.setattr(tiling, "DEPTH", 3)
    monkeypatch.setattr(tiling, "STRIP", 6)
    model, u, v, k = problem(model_name, ny, nx)
    box = last_box(region, shrink, steps)
    own = (box[1].start, box[1].stop - 1 if shrink[1] else box[1].stop, box[2].start + shrink[2], box[2].stop)
    rng = np.random.default_rng(5)
    wx, wy = rng.uniform(0.5, 1.5, own[3] - own[2]), rng.uniform(0.5, 1.5, own[1] - own[0])
    want = np.arange(steps) % 4                        # neither, series, probes, both
    nodes = [(own[0], own[2]), (own[1] - 1, own[3] - 1), ((own[0] + own[1]) // 2, (own[2] + own[3]) // 2),
             (own[0], own[3] - 1)]                 # not in row order, two on a row
    slots = ny + nx
    stats = np.empty((steps, slots, len(model.fields), 4))
    stats[...] = kernels.NEUTRAL
    probes = np.full((steps, len(nodes), len(model.fields)), -1.0)
    records = kernels.records_for(own, wx, wy, want, stats, probes, nodes)
    a, values = space_and_time(model, ny, nx, steps)
    new, old = kernels.get_advance(model, kernel)(u.copy(), v.copy(), a, steps, k, values, region, shrink, records)
    plain_new, plain_old = advance(model, kernel, u.copy(), v.copy(), steps, k, region, shrink)
    assert np.array_equal(new, plain_new) and np.array_equal(old, plain_old)
    w = wy[:, None] * wx[None, :]
    for s in range(steps):
        state, _ = reference(model, u.copy(), v.copy(), s + 1, k, region, shrink)
        block = state[:, own[0]:own[1], own[2]:own[3]]
        if want[s] & 1:
            assert np.allclose(stats[s, :, :, 0].sum(axis=0), np.sum(w * block, axis=(1, 2)), rtol=1e-13, atol=0)
            assert np.allclose(stats[s, :, :, 1].sum(axis=0), np.sum(w * block ** 2, axis=(1, 2)), rtol=1e-13,
                               atol=0)
            assert np.array_equal(stats[s, :, :, 2].min(axis=0), block.min(axis=(1, 2)))
            assert np.array_equal(stats[s, :, :, 3].max(axis=0), block.max(axis=(1, 2)))
        else:
            assert np.all(stats[s] == kernels.NEUTRAL), s
        if want[s] & 2:
            assert np.array_equal(probes[s], np.array([state[:, j, i] for j, i in nodes])), s
        else:
            assert np.all(probes[s] == -1.0), s


@contextlib.contextmanager
def numba_threads(count):
    """numba's thread count set to ``count`` (at most its pool's) inside the block."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("kernel", ["numba", "rows", "tiled"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("ny, nx, strip", [(12, 40, 6), (9, 13, 512), (30, 7, 3)])
def test_record_slots_bound_the_slots_each_kernel_writes(kernel, threads, ny, nx, strip, monkeypatch):
    """kernels.record_slots, the size of the runs' records, holds every slot a call writes (the compiled code
    checks no bounds), and a call given fewer slots, or records for other steps, is refused before it runs."""
    monkeypatch.setattr(tiling, "DEPTH", 3)
    monkeypatch.setattr(tiling, "STRIP", strip)
    model, u, v, k = problem("diffusion", ny, nx)
    steps, region = 4, (1, ny - 1, 1, nx - 1)
    a, values = space_and_time(model, ny, nx, steps)
    advance = kernels.get_advance(model, kernel)

    def records(count, slots):
        stats = np.empty((count, slots, 1, 4))
        stats[...] = kernels.NEUTRAL
        return kernels.records_for(region, np.ones(nx - 2), np.ones(ny - 2), np.ones(count, np.int64), stats,
                                   np.empty((count, 0, 1)), ())
    with numba_threads(threads):
        slots = kernels.record_slots(kernel, u.shape)
        roomy = records(steps, ny + nx + 64)
        advance(u.copy(), v.copy(), a, steps, k, values, region, (0, 0, 0, 0), roomy)
        written = np.nonzero(np.any(roomy.stats[:, :, 0, 0] != 0.0, axis=0))[0]
        assert written.size and written.max() < slots, (written, slots)
        with pytest.raises(ValueError, match=f"records with {slots - 1} slots given to a kernel call that "
                                             f"writes up to {slots}"):
            advance(u.copy(), v.copy(), a, steps, k, values, region, (0, 0, 0, 0), records(steps, slots - 1))
        with pytest.raises(ValueError, match=f"records for {steps - 1} steps given to a kernel call of {steps}"):
            advance(u.copy(), v.copy(), a, steps, k, values, region, (0, 0, 0, 0), records(steps - 1, slots))


def record_every_step(kernel, model, u, v, k, steps, region, want, nodes=()):
    """The records of a call on ``region`` (owned) with weights 1 and ``want`` every step: (stats, probes)."""
    fields, ny, nx = u.shape
    stats = np.empty((steps, ny + nx, fields, 4))
    stats[...] = kernels.NEUTRAL
    probes = np.full((steps, len(nodes), fields), -1.0)
    records = kernels.records_for(region, np.ones(region[3] - region[2]), np.ones(region[1] - region[0]),
                                  np.full(steps, want), stats, probes, nodes)
    a, values = space_and_time(model, ny, nx, steps)
    kernels.get_advance(model, kernel)(u.copy(), v.copy(), a, steps, k, values, region, (0, 0, 0, 0), records)
    return stats, probes


@pytest.mark.parametrize("kernel", ["numba", "rows", "tiled"])
def test_kernels_record_a_nan_node_as_nan_statistics(kernel, monkeypatch):
    """A NaN node makes its slot's total, min and max NaN, never a min or max that skips it (the extremes are
    compared as if no node were NaN, so the slot takes NaN from the sum of squares); a slot without one (a row;
    the tiled kernel's first strip, far from it) keeps its own."""
    monkeypatch.setattr(tiling, "DEPTH", 3)
    monkeypatch.setattr(tiling, "STRIP", 6)
    ny, nx, steps, region = 29, 41, 3, (1, 28, 1, 40)
    model, u, v, k = problem("gray_scott", ny, nx)
    u[0, 14, 20] = np.nan
    stats, _ = record_every_step(kernel, model, u, v, k, steps, region, 1)
    import numba
    strips = -(-(region[3] - region[2]) // tiling.STRIP)
    strips = -(-strips // numba.get_num_threads()) * numba.get_num_threads()
    rows, columns, slot = ((slice(2, 3), slice(1, 40), 2 - region[0]) if kernel != "tiled" else
                           (slice(1, 28), slice(1, 1 + (region[3] - region[2]) // strips), 0))
    for s in range(steps):
        assert np.isnan(stats[s, :, :, :3].sum(axis=0)).all(), s          # totals, sums of squares, every min
        assert np.isnan(stats[s, :, :, 3]).any(axis=0).all(), s
        state, _ = reference(model, u.copy(), v.copy(), s + 1, k, region)
        assert np.array_equal(stats[s, slot, :, 2], state[:, rows, columns].min(axis=(1, 2))), s
        assert np.array_equal(stats[s, slot, :, 3], state[:, rows, columns].max(axis=(1, 2))), s


@pytest.mark.parametrize("kernel", ["numba", "tiled"])
def test_kernels_record_infinite_nodes_as_their_min_and_max(kernel, monkeypatch):
    """+inf and -inf nodes (no NaN) make the total NaN but keep min -inf and max +inf, as numpy's min and max
    and the numpy kernel's records (solver/core/series.py) have them."""
    monkeypatch.setattr(tiling, "DEPTH", 3)
    monkeypatch.setattr(tiling, "STRIP", 6)
    ny, nx, steps, region = 29, 41, 1, (1, 28, 1, 40)
    model, u, v, k = problem("diffusion", ny, nx)
    u[0, 5, 5], u[0, 5, 30] = np.inf, -np.inf          # one row, far apart: inf and -inf, never inf - inf
    stats, _ = record_every_step(kernel, model, u, v, k, steps, region, 1)
    state, _ = reference(model, u.copy(), v.copy(), 1, k, region)
    block = state[:, 1:28, 1:40]
    with np.errstate(invalid="ignore"):                # inf - inf in the totals (a slot's or numpy's)
        assert np.isnan(stats[0, :, 0, 0].sum()) and stats[0, :, 0, 1].sum() == np.inf
        assert np.array_equal(series.block_partials(block, np.ones(39), np.ones(27))[0, 2:], [-np.inf, np.inf])
        assert np.array_equal(series.local_partials(block, np.ones(39), np.ones(27))[1], [[np.inf, np.inf]])
    assert stats[0, :, 0, 2].min() == block.min() == -np.inf and stats[0, :, 0, 3].max() == block.max() == np.inf


@pytest.mark.parametrize("kernel", ["numba", "rows", "tiled"])
@pytest.mark.parametrize("nodes", [[(2, 3), (2, 30)], []], ids=["probes-on-row-2", "no-probes"])
def test_kernels_record_rows_past_the_last_probe_row(kernel, nodes, monkeypatch):
    """Probes only near the bottom (every later owned row past the kernels' probe index), or none at all (a
    rank that owns no probe, still asked for probes): the series of every step and the probes' values."""
    monkeypatch.setattr(tiling, "DEPTH", 3)
    monkeypatch.setattr(tiling, "STRIP", 6)
    ny, nx, steps, region = 29, 41, 3, (1, 28, 1, 40)
    model, u, v, k = problem("diffusion", ny, nx)
    stats, probes = record_every_step(kernel, model, u, v, k, steps, region, 3, nodes)
    for s in range(steps):
        state, _ = reference(model, u.copy(), v.copy(), s + 1, k, region)
        block = state[:, 1:28, 1:40]
        assert np.allclose(stats[s, :, 0, 0].sum(), block.sum(), rtol=1e-13, atol=0)
        assert stats[s, :, 0, 2].min() == block.min() and stats[s, :, 0, 3].max() == block.max()
        assert np.array_equal(probes[s], np.array([state[:, j, i] for j, i in nodes]).reshape(len(nodes), 1))


@pytest.mark.parametrize("model_name", ["gray_scott", "manufactured"])
@pytest.mark.parametrize("kernel", ["numba", "tiled"])
def test_deep_halo_decomposition_gives_the_serial_bits(kernel, model_name, monkeypatch):
    """Two subdomains side by side with a halo of width k, exchanged every k steps, each advancing k steps
    with its inner side shrinking (the MPI pattern, done here with copies) equal the undivided grid; each
    block holds its columns of the coefficient fields (halo included, filled once) and every call gets the
    forcing values of its own steps."""
    monkeypatch.setattr(tiling, "DEPTH", 3)
    monkeypatch.setattr(tiling, "STRIP", 6)
    ny, nx, k, cycles = 31, 41, 5, 4
    model, u, _, coefficients = problem(model_name, ny, nx, seed=3)
    step = kernels.get_advance(model, kernel)
    a, values = space_and_time(model, ny, nx, k * cycles)
    ref, _ = kernels.get_advance(model, "numpy")(u.copy(), u.copy(), a, k * cycles, coefficients, values,
                                                 (1, ny - 1, 1, nx - 1))

    cut = 19                                          # west block owns columns [0, cut), east [cut, nx)
    west = {"u": u[:, :, :cut + k].copy(), "a": a[:, :, :cut + k].copy(), "shrink": (0, 0, 0, 1)}
    east = {"u": u[:, :, cut - k:].copy(), "a": a[:, :, cut - k:].copy(), "shrink": (0, 0, 1, 0)}
    for block in (west, east):
        block["v"] = block["u"].copy()
    for cycle in range(cycles):
        west["u"][:, :, cut:] = east["u"][:, :, k:2 * k]      # halo exchange
        east["u"][:, :, :k] = west["u"][:, :, cut - k:cut]
        for block, (i0, i1) in ((west, (1, cut + k - 1)), (east, (1, nx - cut + k - 1))):
            block["u"], block["v"] = step(block["u"], block["v"], block["a"], k, coefficients,
                                          values[cycle * k:(cycle + 1) * k], (1, ny - 1, i0, i1), block["shrink"])
    joined = np.concatenate([west["u"][:, :, :cut], east["u"][:, :, k:]], axis=2)
    assert np.array_equal(joined, ref)


THREADS_SCRIPT = """
import sys, numba, numpy as np
from solver import models
from solver.core import kernels
rng = np.random.default_rng(7)
out = {}
for model_name in ("diffusion", "gray_scott", "layered", "manufactured"):
    model = models.load(model_name)
    u = rng.random((len(model.fields), 67, 301))
    a = models.coefficient_values(model, model.Physics(), np.linspace(0, 1, 301), np.linspace(0, 1, 67), None)
    a = np.ascontiguousarray(a * rng.uniform(0.95, 1.05, a.shape))
    values = models.time_values(model, model.Physics(), 0.01, 0, 40)
    k = model.coefficients(model.Physics(), 1.0, 1.0, 0.5 * model.max_stable_dt(model.Physics(), 1.0, 1.0))
    for threads in (1, 2, 3):
        numba.set_num_threads(threads)
        for name in ("numba", "tiled"):
            new, _ = kernels.get_advance(model, name)(u.copy(), u.copy(), a, 40, k, values, (1, 66, 1, 300))
            out[f"{model_name}:{name}:{threads}"] = new
np.savez(sys.argv[1], **out)
"""


@pytest.mark.parametrize("shape", [(1, 514, 1026), (2, 300, 512), (1, 64, 256), (3, 17, 129)])
def test_buffer_pair_keeps_the_two_buffers_apart_from_4k_aliasing(shape):
    """The solver's two field buffers start alias_free_offset bytes apart modulo 4 KiB (not where two
    allocations happen to land), do not overlap, and that offset keeps every pair of rows a step loads and
    stores at least 384 B from a page multiple, whatever the row length (five rows cannot all be further:
    410 B at best)."""
    u, v = kernels.buffer_pair(shape)
    assert u.shape == v.shape == shape and u.dtype == v.dtype == np.float64
    assert u.flags.c_contiguous and v.flags.c_contiguous and not np.shares_memory(u, v)
    row = shape[-1] * 8
    assert (v.ctypes.data - u.ctypes.data) % 4096 == kernels.alias_free_offset(row)
    for row in range(8, 40000, 8):
        offset = kernels.alias_free_offset(row)
        assert min(min((offset + m * row) % 4096, -(offset + m * row) % 4096) for m in range(-2, 3)) >= 384, row


def test_thread_count_does_not_change_the_bits(tmp_path):
    path = tmp_path / "threads.npz"
    subprocess.run([PYTHON, "-c", THREADS_SCRIPT, str(path)], check=True, timeout=300, cwd=REPO,
                   env=solver_env(NUMBA_NUM_THREADS="3"))
    out = np.load(path)
    for name in out.files:
        assert np.array_equal(out[name], out[name.split(":")[0] + ":numba:1"]), name


@pytest.mark.parametrize("kernel", [*kernels.KERNELS, "prange"])
def test_kernels_follow_the_analytic_gaussian(kernel):
    n, sigma = 81, 0.08
    physics, initial = diffusion.Physics(diffusivity=1e-3), diffusion.Initial(center=(0.5, 0.5), sigma=sigma)
    x = y = np.linspace(0.0, 1.0, n)
    dx = x[1] - x[0]
    dt = 0.4 * diffusion.max_stable_dt(physics, dx, dx)
    steps = 60
    u = diffusion.exact(physics, initial, x, y, 0.0)[np.newaxis]
    k = diffusion.coefficients(physics, dx, dx, dt)
    new, _ = kernels.get(models.load("diffusion"), kernel)(u.copy(), u.copy(), steps, k, (1, n - 1, 1, n - 1))
    exact = diffusion.exact(physics, initial, x, y, steps * dt)
    assert np.max(np.abs(new[0] - exact)) < 2e-3 * exact.max()
    assert np.max(np.abs(u[0] - exact)) > 10 * np.max(np.abs(new[0] - exact))   # it did diffuse


def test_auto_plans_kernel_and_halo_from_the_launch_and_the_cache(monkeypatch, tmp_path):
    from solver import machine
    from solver.core import config
    from solver.run import planning as run
    assert machine.last_level_cache() >= 256 * 1024      # read from sysfs here: some real cache size
    monkeypatch.setattr(machine, "last_level_cache", lambda: 64 * 1024)
    cfg = config.load(str(write_config(tmp_path)))       # 61 x 45, fixed boundaries: 46 KiB for two buffers
    one = run.plan(cfg, (1, 1), 1)
    assert (one.kernel, one.halo) == ("numba", 1) and "fit in the last-level cache" in one.reason
    assert run.plan(cfg, (1, 1), 2).kernel == "tiled"    # two ranks on the node share the cache
    two = run.plan(cfg, (2, 1), 2)                       # blocks of 30 x 45: an exchange every 15 steps
    assert (two.kernel, two.halo) == ("tiled", 15) and "exchange every 15 steps" in two.reason
    wide = config.load(str(write_config(tmp_path, grid={"nx": 301, "ny": 201}, time={"dt": 1e-4, "t_end": 1e-3})))
    assert run.plan(wide, (2, 1), 2).halo == tiling.depth_for(1) == 31     # one whole tiled chunk per exchange
    small = run.plan(cfg, (15, 1), 15)                   # blocks of 4 columns: halo 2, too short to tile
    assert (small.kernel, small.halo) == ("numba", 2) and "too few steps" in small.reason
    monkeypatch.setattr(machine, "last_level_cache", lambda: 64 * 1024 * 1024)
    cached = run.plan(cfg, (2, 1), 2)                    # in cache the plain kernel, still a deep halo
    assert (cached.kernel, cached.halo) == ("numba", 15) and "fit in the last-level cache" in cached.reason
    periodic = config.load(str(write_config(tmp_path, boundary={"west": "periodic", "east": "periodic"})))
    assert run.plan(periodic, (1, 1), 1).halo == 15      # one process wraps every 15 steps
    mirror = config.load(str(write_config(tmp_path, boundary={"south": "zero_flux"})))
    assert run.plan(mirror, (2, 1), 2).halo == 1
    fixed = config.load(str(write_config(tmp_path)), ["parallel.halo=3", "numerics.kernel=numpy"])
    assert run.plan(fixed, (2, 1), 2) == run.Plan("numpy", 3, "kernel numpy (as configured), halo 3 (as configured)")


def test_ensemble_overhead_prints_every_command_against_the_imports():
    result = run_solver(REPO / "bench" / "ensemble_overhead.py", "--rounds", "1", script=True, timeout=300)
    for name in ("python -c pass", "import numpy, h5py", "import numba, numpy", "member, numba kernel",
                 "member, numpy kernel"):
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(name))
        assert "x import numpy, h5py" in line and "x import numba, numpy" in line, line
