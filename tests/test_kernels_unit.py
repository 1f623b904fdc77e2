"""solver/core/kernels.py in one process, on grids of a few nodes: the numpy kernel against a node-by-node
loop of the model's update, each compiled kernel against the numpy kernel, warm-up, and where the generated
kernel modules are written. tests/test_kernels.py covers larger grids, every model and thread counts; this
file is also what .ci/mutate.py runs against each mutant of the module.

Generated modules and numba's cache: the tests that write or import a generated module do it in a private
SOLVER_KERNEL_DIR (tmp_path) with the in-process cache emptied, so a mutant of the writing and importing code
always runs. The compiled-kernel tests load from the usual kernel directory: a generated module's name is a
hash of the exact text numba compiles, so a mutant that changes that text gets a new file and a fresh compile,
and one that does not would compile the same machine code; only those tests compile (seconds each, once)."""
from __future__ import annotations

import os
import re
import sys

import numba
import numpy as np
import pytest

from conftest import problem, space_and_time
from solver import models
from solver.core import kernels, tiling
from solver.errors import ConfigError, EnvironmentSettingError
from solver.models import CLASSIC, Neighbours

NY, NX = 9, 13
BOXES = [((1, 8, 1, 12), (0, 0, 0, 0), 3),      # (region, shrink, steps)
         ((2, 8, 1, 11), (1, 0, 0, 1), 3),
         ((1, 7, 2, 12), (0, 1, 1, 0), 2)]


def node_by_node(model, u, v, a, steps, k, values, region, shrink):
    """The model's update called node by node on plain numbers: the numpy kernel's reference."""
    u, v = u.copy(), v.copy()
    j0, j1, i0, i1 = region
    for s in range(steps):
        for j in range(j0 + s * shrink[0], j1 - s * shrink[1]):
            for i in range(i0 + s * shrink[2], i1 - s * shrink[3]):
                def at(x):
                    def one(dj, di):
                        values_here = tuple(float(x[f, j + dj, i + di]) for f in range(x.shape[0]))
                        return values_here[0] if len(values_here) == 1 else values_here
                    return Neighbours(one(0, 0), one(0, -1), one(0, 1), one(-1, 0), one(1, 0))
                if model.form == CLASSIC:
                    new = model.update(*at(u), k)
                else:
                    new = model.update(at(u), at(a) if a.shape[0] else None, k, values[s])
                v[:, j, i] = new
        u, v = v, u
    return u, v


def fields_and_values(name, steps, seed=0):
    model, u, v, k = problem(name, NY, NX, seed)
    a, values = space_and_time(model, NY, NX, steps)
    return model, u, v, a, k, values


# --- choosing a kernel, and its arguments -------------------------------------------------------------------

def test_an_unknown_kernel_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown kernel 'fast'; choose one of numba, rows, tiled, numpy or prange"):
        kernels.get_advance(models.load("diffusion"), "fast")


@pytest.mark.parametrize("name", ["layered", "manufactured"])
def test_the_short_form_refuses_models_with_coefficient_fields_or_forcing(name):
    with pytest.raises(ConfigError, match=f"model {name} has coefficient fields or forcing"):
        kernels.get(models.load(name), "numpy")


def test_forcing_values_must_cover_the_calls_steps():
    assert kernels._values([[1, 2], [3, 4], [5, 6]], 3).dtype == np.float64
    assert kernels._values(np.zeros((4, 0)), 3).shape == (4, 0)
    for bad in (np.zeros((2, 1)), np.zeros(3), np.zeros((3, 1, 1))):
        with pytest.raises(ValueError, match=re.escape(f"values has shape {bad.shape}; a kernel call of 3 steps "
                                                       "needs (3, n)")):
            kernels._values(bad, 3)
    assert kernels.no_coefficients().shape == (0, 1, 1)


def test_the_two_buffers_are_one_allocation_a_page_multiple_plus_the_offset_apart():
    u, v = kernels.buffer_pair((2, 5, 7))
    assert u.shape == v.shape == (2, 5, 7) and not np.shares_memory(u, v)
    assert v.ctypes.data - u.ctypes.data == 4096 + kernels.alias_free_offset(7 * 8)
    u, v = kernels.buffer_pair((1, 3, 128))                    # rows of 1 KiB: 1.5 KiB apart
    assert v.ctypes.data - u.ctypes.data == 4096 + 1536
    u, v = kernels.buffer_pair((1, 512, 512))                  # 2 MiB: whole pages, nothing to round
    assert v.ctypes.data - u.ctypes.data == 2 ** 21 + kernels.alias_free_offset(4096)


@pytest.mark.parametrize("row_bytes, offset", [(8, 2048), (72, 2048), (832, 2048), (840, 1280), (872, 448),
                                               (1024, 1536), (1088, 576), (2048, 1024), (4096, 2048)])
def test_alias_free_offset_keeps_the_rows_furthest_from_a_page_multiple(row_bytes, offset):
    """The offset keeping rows -2 .. 2 furthest from a page multiple, the one nearest half a page among ties."""
    assert kernels.alias_free_offset(row_bytes) == offset


# --- the numpy kernel, the reference ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["diffusion", "gray_scott", "layered", "manufactured"])
@pytest.mark.parametrize("region, shrink, steps", BOXES)
def test_numpy_kernel_is_the_models_update_node_by_node(name, region, shrink, steps):
    model, u, v, a, k, values = fields_and_values(name, steps)
    expected_new, expected_old = node_by_node(model, u, v, a, steps, k, values, region, shrink)
    by_default = () if shrink == (0, 0, 0, 0) else (shrink,)       # no shrink by default
    new, old = kernels.get_advance(model, "numpy")(u.copy(), v.copy(), a, steps, k, values, region, *by_default)
    assert np.allclose(new, expected_new, rtol=1e-14, atol=0)
    assert np.allclose(old, expected_old, rtol=1e-14, atol=0)


def test_short_form_numpy_kernel_takes_no_coefficient_fields():
    model, u, v, k = problem("diffusion", NY, NX)
    new, _ = kernels.get(model, "numpy")(u.copy(), v.copy(), 2, k, (1, 8, 1, 12))
    expected, _ = node_by_node(model, u, v, kernels.no_coefficients(), 2, k, np.zeros((2, 0)), (1, 8, 1, 12),
                               (0, 0, 0, 0))
    assert np.allclose(new, expected, rtol=1e-14, atol=0)
    direct, _ = kernels.advance_numpy(model.update, u.copy(), v.copy(), kernels.no_coefficients(), 2, k,
                                      np.zeros((2, 0)), (1, 8, 1, 12))
    assert np.array_equal(direct, new)


NEIGHBOURHOOD_MODEL = """
from dataclasses import dataclass
FIELDS = {"C": ("1", "concentration")}

@dataclass(frozen=True)
class Physics:
    rate: float = 0.1

@dataclass(frozen=True)
class Initial:
    level: float = 1.0

def coefficients(physics, dx, dy, dt):
    return (physics.rate,)

def update(u, a, k, f):
    return u.c + k[0] * (u.w + u.e + u.s + u.n - 4.0 * u.c) + (0.0 if a is None else 1.0)

def max_stable_dt(physics, dx, dy):
    return 1.0

def initial(physics, initial, x, y, uniform):
    return initial.level + 0.0 * x[None, :] * y[:, None]
"""


def test_an_update_in_neighbourhood_form_without_coefficient_fields_gets_none(tmp_path):
    (tmp_path / "plain.py").write_text(NEIGHBOURHOOD_MODEL)
    model = models.load(str(tmp_path / "plain.py"))
    u = np.random.default_rng(3).random((1, NY, NX))
    new, _ = kernels.get(model, "numpy")(u.copy(), u.copy(), 2, (0.1,), (1, 8, 1, 12))
    expected, _ = node_by_node(model, u, u, kernels.no_coefficients(), 2, (0.1,), np.zeros((2, 0)), (1, 8, 1, 12),
                               (0, 0, 0, 0))
    assert np.allclose(new, expected, rtol=1e-14, atol=0)
    assert "return update(Neighbours(c, w, e, s, n), None, k, f)\n" in kernels.binding(model)


# --- where generated kernel modules go ------------------------------------------------------------------------

def test_kernel_dir_is_the_setting_else_beside_the_package_else_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("SOLVER_KERNEL_DIR", str(tmp_path / "mine"))
    assert kernels.kernel_dir() == str(tmp_path / "mine")
    monkeypatch.setenv("SOLVER_KERNEL_DIR", "")
    package = os.path.dirname(kernels.__file__)
    assert kernels.kernel_dir() == os.path.join(package, "__pycache__", "kernels")
    asked = []
    monkeypatch.setattr(os, "access", lambda path, mode: asked.append(path) and False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kernels.kernel_dir() == str(tmp_path / ".cache" / "hpc-stencil-kernels") and asked == [package]


@pytest.fixture
def private_kernels(monkeypatch, tmp_path):
    """A fresh SOLVER_KERNEL_DIR and an empty in-process module cache (both restored afterwards)."""
    monkeypatch.setenv("SOLVER_KERNEL_DIR", str(tmp_path / "kernels" / "deep"))
    monkeypatch.setattr(kernels, "_compiled", {})
    for name in ("diffusion", "gray_scott"):
        monkeypatch.setitem(sys.modules, kernels.generated(models.load(name))[0], None)
    return tmp_path / "kernels" / "deep"


def test_a_generated_module_is_written_once_and_imported_once(private_kernels, monkeypatch):
    model = models.load("diffusion")
    name, text = kernels.generated(model)
    module = kernels.compile_for(model)
    path = private_kernels / f"{name}.py"
    assert module.__file__ == str(path) and sys.modules[name] is module and kernels.compile_for(model) is module
    assert path.read_text().startswith("# Generated by solver/core/kernels.py") and path.read_text().endswith(text)
    assert [f for f in os.listdir(private_kernels) if f.endswith(".py") or f.endswith(".tmp")] == [f"{name}.py"]
    before = os.stat(path)
    monkeypatch.setattr(kernels, "_compiled", {})                         # another process, later
    assert kernels.compile_for(model) is not module and os.stat(path).st_mtime_ns == before.st_mtime_ns


def test_the_first_writer_of_a_generated_module_wins(private_kernels):
    path = str(private_kernels / "stencil_x.py")
    model = models.load("diffusion")
    kernels._write_kernel(str(private_kernels), path, model, "first = 1\n")
    kernels._write_kernel(str(private_kernels), path, model, "second = 2\n")
    assert open(path).read().endswith("first = 1\n") and os.listdir(private_kernels) == ["stencil_x.py"]  # no .tmp


def test_an_unwritable_kernel_directory_is_one_line_with_the_fix(private_kernels, monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("SOLVER_KERNEL_DIR", str(tmp_path / "file"))
    with pytest.raises(EnvironmentSettingError, match=rf"^environment: SOLVER_KERNEL_DIR={tmp_path}/file: cannot "
                                                      r"write .* \(it is not a directory\); point SOLVER_KERNEL_DIR"):
        kernels.compile_for(models.load("diffusion"))
    monkeypatch.delenv("SOLVER_KERNEL_DIR")
    monkeypatch.setattr(kernels, "kernel_dir", lambda: str(tmp_path / "file" / "below"))
    with pytest.raises(EnvironmentSettingError, match=rf"^environment: the kernel directory {tmp_path}/file/below: "
                                                      r"cannot write .*; set SOLVER_KERNEL_DIR to a writable"):
        kernels.compile_for(models.load("diffusion"))


def test_a_generated_module_is_named_after_its_sources(monkeypatch, tmp_path):
    model = models.load("diffusion")
    name, text = kernels.generated(model)
    assert name.startswith("stencil_diffusion_") and len(name) == len("stencil_diffusion_") + 16
    assert text.startswith(open(kernels.STENCIL).read()) and text.endswith(kernels.binding(model))
    assert kernels.generated(models.load("gray_scott"))[0] != name
    for source in ("TILING", "STENCIL"):
        copy = tmp_path / f"{source}.py"
        copy.write_text(open(getattr(kernels, source)).read() + "# edited\n")
        with monkeypatch.context() as patch:
            patch.setattr(kernels, source, str(copy))
            assert kernels.generated(model)[0] != name


@pytest.mark.parametrize("name, coefficients, forcing, call", [
    ("diffusion", 0, 0, "update(c, w, e, s, n, k)"),
    ("gray_scott", 0, 0, "update(c, w, e, s, n, k)"),
    ("layered", 1, 0, "update(Neighbours(c, w, e, s, n), Neighbours(ac, aw, ae, a_s, an), k, f)"),
    ("manufactured", 3, 1, "update(Neighbours(c, w, e, s, n), Neighbours(ac, aw, ae, a_s, an), k, f)")])
def test_binding_calls_the_update_in_its_form(name, coefficients, forcing, call):
    text = kernels.binding(models.load(name))
    assert f"\nCOEFFICIENTS = {coefficients}\nFORCING = {forcing}\n" in text and f"return {call}\n" in text


# --- warm-up ----------------------------------------------------------------------------------------------

class Refusing:
    """A dispatcher whose compile raises ``error``."""

    def __init__(self, error):
        self.error = error

    def compile(self, signature):
        raise self.error


def test_an_update_numba_cannot_compile_is_one_line_naming_the_model_file(monkeypatch):
    model = models.load("diffusion")
    typing = numba.core.errors.TypingError("\x1b[1mFailed in nopython mode pipeline\nDuring: typing\n\n"
                                           "\x1b[1mUntyped global name 'helper'\x1b[0m\n")
    fake = type("Generated", (), {"_advance_numba": Refusing(typing), "_advance_rows": Refusing(typing),
                                  "_prange_step": Refusing(typing), "_advance_tiled": Refusing(typing)})
    monkeypatch.setattr(kernels, "compile_for", lambda _: fake)
    for name in ("numba", "rows", "prange", "tiled"):
        with pytest.raises(ConfigError) as err:
            kernels.warm_up(model, name)
        assert str(err.value) == (f"model diffusion ({model.file}): numba cannot compile its update for the {name} "
                                  "kernel: Untyped global name 'helper'; call only @njit functions and module "
                                  "constants (numbers, tuples, numpy arrays; no dicts) from update (docs/models.md)")
    indexed = numba.core.errors.TypingError("Failed in nopython mode pipeline\nNo implementation of function "
                                            "Function(<built-in function getitem>) found for signature:\n \n"
                                            " >>> getitem(float64, Literal[int](0))\n")
    fake._advance_numba = Refusing(indexed)
    with pytest.raises(ConfigError, match=r"found for signature: getitem\(float64, Literal\[int\]\(0\)\); update gets a field's value at one node, a "
                                          r"number: index only the tuples of a model's several fields or "
                                          r"coefficient fields \(docs/models.md\)$"):
        kernels.warm_up(model, "numba")
    long = numba.core.errors.TypingError("Failed in nopython mode\n" + "x" * 300)
    fake._advance_numba = Refusing(long)
    with pytest.raises(ConfigError, match=f"numba kernel: {'x' * 200}; call only @njit"):
        kernels.warm_up(model, "numba")
    fake._advance_numba = Refusing(KeyError("a bug of ours"))
    with pytest.raises(KeyError):
        kernels.warm_up(model, "numba")
    kernels.warm_up(model, "numpy")                                   # nothing to compile


class Recording:
    """A dispatcher that notes the types it is asked to compile."""

    def __init__(self):
        self.signatures = []

    def compile(self, signature):
        self.signatures.append(signature)


@pytest.mark.parametrize("name, dispatcher", [("numba", "_advance_numba"), ("rows", "_advance_rows"),
                                              ("prange", "_prange_step"), ("tiled", "_advance_tiled")])
def test_warm_up_compiles_the_chosen_kernel_only(monkeypatch, name, dispatcher):
    fake = type("Generated", (), {})()
    for each in ("_advance_numba", "_advance_rows", "_prange_step", "_advance_tiled"):
        setattr(fake, each, Recording())
    monkeypatch.setattr(kernels, "compile_for", lambda _: fake)
    kernels.warm_up(models.load("manufactured"), name)
    compiled = {each: len(getattr(fake, each).signatures) for each in vars(fake)}
    assert compiled == {each: int(each == dispatcher) for each in compiled}


def test_forcing_count_is_the_number_of_values_forcing_returns():
    assert kernels._forcing_count(models.load("manufactured")) == 2
    assert kernels._forcing_count(models.load("diffusion")) == 0


# --- the compiled kernels give the numpy kernel's bits ----------------------------------------------------------

@pytest.mark.parametrize("name, kernel", [("diffusion", "numba"), ("diffusion", "rows"), ("diffusion", "prange"),
                                          ("gray_scott", "numba"), ("layered", "numba"), ("manufactured", "numba"),
                                          ("gray_scott", "tiled")])
@pytest.mark.parametrize("region, shrink, steps", BOXES)
def test_compiled_kernel_gives_the_numpy_kernels_bits(name, kernel, region, shrink, steps, monkeypatch):
    monkeypatch.setattr(tiling, "STRIP", 5)             # several strips and chunks even on 13 x 9 nodes
    monkeypatch.setattr(tiling, "DEPTH", 4)
    model, u, v, a, k, values = fields_and_values(name, steps)
    ref_new, ref_old = kernels.get_advance(model, "numpy")(u.copy(), v.copy(), a, steps, k, values, region, shrink)
    kernels.warm_up(model, kernel)
    by_default = () if shrink == (0, 0, 0, 0) else (shrink,)
    new, old = kernels.get_advance(model, kernel)(u.copy(), v.copy(), a, steps, k, values, list(region), *by_default)
    if kernel == "tiled":               # temporal blocking keeps the intermediate steps to itself: the last box
        j0, j1, i0, i1 = region
        last = steps - 1
        box = slice(j0 + last * shrink[0], j1 - last * shrink[1]), slice(i0 + last * shrink[2], i1 - last * shrink[3])
        assert np.array_equal(new[:, box[0], box[1]], ref_new[:, box[0], box[1]])
    else:
        assert np.array_equal(new, ref_new) and np.array_equal(old, ref_old)


@pytest.mark.parametrize("kernel, dispatcher", [("numba", "_advance_numba"), ("rows", "_advance_rows"),
                                                ("tiled", "_advance_tiled")])
def test_warm_up_compiles_exactly_what_a_run_then_calls(kernel, dispatcher):
    model, u, v, a, k, values = fields_and_values("gray_scott", 2)
    kernels.warm_up(model, kernel)
    compiled = getattr(kernels.compile_for(model), dispatcher)
    signatures = list(compiled.signatures)
    assert signatures
    kernels.get_advance(model, kernel)(u, v, a, 2, [0] * len(k), values, (1, 8, 1, 12))    # whole numbers too
    assert list(compiled.signatures) == signatures


def test_compiled_kernels_never_fall_back_to_the_numpy_reference(monkeypatch):
    model, u, v, a, k, values = fields_and_values("gray_scott", 2)

    def refuse(*_):
        raise AssertionError("the numpy reference ran")
    monkeypatch.setattr(kernels, "advance_numpy", refuse)
    for name in ("numba", "rows", "prange", "tiled"):
        kernels.get_advance(model, name)(u.copy(), v.copy(), a, 2, k, values, (1, 8, 1, 12))
    with pytest.raises(AssertionError, match="the numpy reference ran"):
        kernels.get_advance(model, "numpy")(u.copy(), v.copy(), a, 2, k, values, (1, 8, 1, 12))
