"""numba's on-disk kernel cache from cold: several processes compiling at once (as ``mpirun -n 4`` or
``parallel -P8`` on a fresh clone do), in both kernel orders, all get the numpy reference's bits; and a kernel
file edited in place (same size, same modification time, as a checkout that keeps times can leave it) is
compiled again, never served from the stale cache (solver/core/kernels.py names each compiled copy of
solver/core/stencil.py after a hash of its text)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import PYTHON, REPO, solver_env

# Advance a small field with each kernel named in argv[1] (in that order) and the numpy reference; print
# whether each gives the reference's bits, and a fingerprint of the numba result.
SCRIPT = """
import sys, zlib
import numpy as np
from solver import models
from solver.core import kernels
model = models.load("diffusion")
ny, nx, steps = 37, 29, 7
j, i = np.mgrid[0:ny, 0:nx]
start = (np.sin(0.3 * j) * np.cos(0.2 * i) + 0.01 * j)[np.newaxis]
region, k = (1, ny - 1, 1, nx - 1), (0.4, 0.2, 0.1)
ref, _ = kernels.get(model, "numpy")(start.copy(), start.copy(), steps, k, region)
for name in sys.argv[1].split(","):
    out, _ = kernels.get(model, name)(start.copy(), start.copy(), steps, k, region)
    print(name, "same" if np.array_equal(out, ref) else "differs", zlib.crc32(out.tobytes()))
"""


def start(order: str, env: dict, cwd=REPO) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-c", SCRIPT, order], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def outcome(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode} (a crash in cached machine code?):\n{err[-3000:]}"
    return {name: (verdict, crc) for name, verdict, crc in (line.split() for line in out.splitlines())}


@pytest.mark.slow
def test_cold_cache_compiled_by_several_processes_at_once_in_both_orders(tmp_path):
    env = solver_env(NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE")
    procs = [start(order, env) for order in ("numba,tiled", "tiled,numba", "numba,tiled", "tiled,numba")]
    results = [outcome(proc) for proc in procs]
    for result in results:
        assert {name: verdict for name, (verdict, _) in result.items()} == {"numba": "same", "tiled": "same"}
    assert any(tmp_path.joinpath("cache").rglob("*.nbi")), "nothing was cached"
    warm = [outcome(start(order, env)) for order in ("tiled,numba", "numba,tiled")]     # from the cache now
    assert all(result == results[0] for result in warm)


@pytest.mark.slow
def test_kernels_cached_by_separate_runs_load_in_any_later_run(tmp_path):
    """One run caches the tiled kernel, a second the plain one beside it, a third loads the plain one alone
    (a big run, a benchmark, then a small run): it crashed when both kernels called one cached parallel
    function, whose machine code the plain kernel's cache entry then referred to wrongly."""
    env = solver_env(NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE")
    results = [outcome(start(order, env)) for order in ("tiled", "numba,tiled", "numba", "tiled")]
    for result in results:
        assert all(verdict == "same" for verdict, _ in result.values()), result


@pytest.mark.slow
def test_kernel_edited_in_place_is_compiled_again(tmp_path):
    package = tmp_path / "checkout"
    shutil.copytree(REPO / "solver", package / "solver", ignore=shutil.ignore_patterns("__pycache__"))
    env = solver_env(NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_NUM_THREADS="1")
    env["PYTHONPATH"] = str(package)
    before = outcome(start("numba", env, cwd=package))
    assert before["numba"][0] == "same"

    kernels = package / "solver" / "core" / "stencil.py"
    text, stat = kernels.read_text(), kernels.stat()
    # The plain kernel's time loop stops swapping its buffers: every step reads the initial field.
    loop = "        _sweep(u, v, a, _box(region, shrink, s), k, values[s], rec, s)\n        u, v = v, u\n"
    edited = text.replace(loop, loop.replace("u, v = v, u", "v, u = v, u"))
    assert edited != text and len(edited) == len(text), "the stencil lines changed: update this test's edit"
    kernels.write_text(edited)
    os.utime(kernels, ns=(stat.st_atime_ns, stat.st_mtime_ns))    # same size, same time: only the bytes differ
    after = outcome(start("numba", env, cwd=package))
    assert after["numba"][0] == "differs" and after["numba"][1] != before["numba"][1], \
        "the edited kernel ran the machine code cached for the old one"


# Compile the kernels' _box for one integer width with numba's cache save of it forced into the worst order
# against a second process (argv: this process's marker, the other's, the width): both read the index before
# either writes it ("a" and "b"), then b writes index and data between a's index and a's data. Unserialised,
# the index then names b's signature beside a's machine code. Each wait ends, too, when the other process is
# seen waiting on the kernels' lock (/proc/locks), which the serialised saves make it do.
RACE = """
import itertools, os, sys, time
import numpy as np
from numba.core import caching
from solver import models
from solver.core import kernels
me, other, width = sys.argv[1:]
module = kernels.compile_for(models.load("diffusion"))
lock = os.path.join(os.path.dirname(module.__file__), "__pycache__", os.path.basename(module.__file__)[:-3] + ".lock")

def waiting_on_lock():
    if not os.path.exists(lock):
        return False
    inode = os.stat(lock).st_ino
    with open("/proc/locks") as f:
        return any("->" in line and line.split()[-3].endswith(f":{inode}") for line in f)

def wait_for(marker):
    deadline = time.monotonic() + 120
    while not os.path.exists(marker) and not waiting_on_lock():
        assert time.monotonic() < deadline, f"neither {marker} nor a wait on the lock"
        time.sleep(0.01)        # a poll within the wait for an event

def mark(suffix):
    open(me + suffix, "w").close()

def save(self, key, data):      # numba's IndexDataCacheFile.save, with the waits
    overloads = self._load_index()
    mark("-read")
    wait_for(other + "-read")
    if key not in overloads:
        taken = set(overloads.values())
        overloads[key] = next(n for n in map(self._data_name, itertools.count(1)) if n not in taken)
        if me.endswith("b"):
            wait_for(other + "-indexed")
        self._save_index(overloads)
    mark("-indexed")
    if me.endswith("a"):
        wait_for(other + "-data")
    self._save_data(overloads[key], data)
    mark("-data")

caching.IndexDataCacheFile.save = save
t = getattr(np, "int" + width)
print(module._box(tuple(map(t, (1, 9, 1, 9))), tuple(map(t, (1, 0, 0, 0))), t(2)))
"""

# Every entry of _box's cache index: the signature it is filed under and the one its machine code is for.
ENTRIES = """
import glob, os, pickle
from solver import models
from solver.core import kernels
module = kernels.compile_for(models.load("diffusion"))
folder = os.path.join(os.path.dirname(module.__file__), "__pycache__")
index, = glob.glob(os.path.join(folder, "*._box-*.nbi"))
with open(index, "rb") as f:
    pickle.load(f)
    _, entries = pickle.loads(f.read())
for key, name in entries.items():
    with open(os.path.join(folder, name), "rb") as f:
        data = pickle.loads(f.read())
    print(key[0], "|", next(str(d).split(" ->")[0] for d in data if str(d).startswith("(UniTuple")))
"""


@pytest.mark.slow
def test_processes_saving_other_signatures_at_once_keep_the_cache_index_true(tmp_path):
    """Two processes filing different signatures of one kernel function at once (runs with and without probes
    starting together, the two halves of this suite): numba numbers a data file after the entries the index
    lists when it reads it, so both took number 1: one entry was lost, and the index could name one signature
    beside the other's machine code, which a later run would load and run. The saves are serialised
    (kernels._SerialisedCache): each signature keeps its own entry, its own machine code."""
    env = solver_env(SOLVER_KERNEL_DIR=str(tmp_path / "kernels"), NUMBA_NUM_THREADS="1")
    env.pop("NUMBA_CACHE_DIR", None)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    procs = [subprocess.Popen([PYTHON, "-c", RACE, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args in ((a, b, "64"), (b, a, "32"))]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and out.strip() == "(3, 9, 1, 9)", err[-3000:]
    entries = subprocess.run([PYTHON, "-c", ENTRIES], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=600, check=True).stdout.splitlines()
    filed = [tuple(part.strip() for part in line.split("|")) for line in entries]
    assert sorted(key for key, _ in filed) == ["(UniTuple(int32, 4), UniTuple(int32, 4), int32)",
                                                "(UniTuple(int64, 4), UniTuple(int64, 4), int64)"], entries
    assert all(key == code.replace(" x ", ", ") for key, code in filed), entries


@pytest.mark.slow
def test_a_kernel_compiled_beside_its_cached_parallel_sweep_loads_alone_in_a_later_run(tmp_path):
    """A process that finds the parallel sweep in the cache but not the plain kernel calling it (another
    process filed the sweep and is still compiling the kernel, as the two halves of this suite do) compiles
    and caches the kernel without numba's launch of its thread pool (numba/numba#4807); a later process that
    loaded that kernel first crashed in its first parallel loop (CI: a SIGSEGV in bench/records_cost.py).
    kernels.compile_for launches the pool itself."""
    env = solver_env(SOLVER_KERNEL_DIR=str(tmp_path / "kernels"), NUMBA_NUM_THREADS="2", OMP_WAIT_POLICY="PASSIVE")
    env.pop("NUMBA_CACHE_DIR", None)
    assert outcome(start("numba", env))["numba"][0] == "same"
    kernel = list((tmp_path / "kernels" / "__pycache__").glob("stencil_diffusion_*._advance_numba-*"))
    assert kernel, "the plain kernel was not cached"
    for path in kernel:
        path.unlink()                          # the sweep stays cached, the kernel calling it does not
    for _ in range(2):                         # compiles the kernel beside the cached sweep, then loads it
        assert outcome(start("numba", env))["numba"][0] == "same"
