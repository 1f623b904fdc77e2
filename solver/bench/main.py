"""``python -m solver bench``: the kernels against the memory-bandwidth bound, side by side, in one run.

A double-buffered step reads one array and writes another, so once the grid is larger than the caches it
moves at least 16 bytes per update: ``bound = copy bandwidth / 16 B``, measured here by a threaded copy
over arrays far larger than the caches. The copy rate drifts from minute to minute on shared machines, so
it is measured several times, interleaved with the kernels, and the median is reported. A plain ``prange``
double-buffer kernel timed in the same run is the steadier yardstick: every kernel is shown as MLUPS
(million lattice-node updates per second, nx * ny * steps / seconds), as a percentage of the bound and as
a ratio to that yardstick (written as one writes it first: the textbook form of the update, six additions, so
the ratio includes our kernels' cheaper form). The in-cache ceiling, the plain kernel's best rate over a
sweep of growing grids (measured where it stops falling, not sized from the reported cache), is the arithmetic rate with memory out of the way: the most a temporally
blocked kernel can reach. ``--mpi`` also times the solver itself, one rank x all threads against
``mpirun -n 2`` x one thread. With the bench extra, Devito and pystencils solve the same problem in the same
table (solver/bench/external.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import REPO, models
from ..comm import is_digits
from .. import machine as this_machine
from ..core import config as config_module
from ..core import kernels, tiling
from ..errors import ConfigError
from ..run import planning
from . import external as bench_external
from .timing import peak_rss_mib, time_kernel

DEFAULT_SIZES = "1024x512,2048x2048,4096x4096"
DEFAULT_KERNELS = "prange,numba,rows,tiled,numpy"
COPY_MIB = 256             # each of the two copy arrays: far beyond any L3 of today's CPUs
SERIAL_ONLY = ("numpy",)   # not threaded: timed once, with one thread

_compiled: dict = {}


def _jit():
    """The yardstick kernels, compiled on first use (so ``python -m solver --help`` stays quick)."""
    if not _compiled:
        from numba import njit, prange

        @njit(parallel=True, nogil=True)
        def copy(src, dst):
            for k in prange(src.size):
                dst[k] = src[k]

        @njit(parallel=True, nogil=True)
        def store_copy(src, dst):
            for k in prange(src.size):
                dst[k] = src[k] + 0.0     # not a memcpy: ordinary stores, so each line is read first

        _compiled.update(copy=copy, store_copy=store_copy)
    return _compiled


KERNEL_NAMES = ("prange", *kernels.KERNELS)     # prange: the yardstick (solver/core/stencil.py)


def unit_coefficients(model) -> tuple:
    """The model's coefficients for a unit grid at 80 % of its largest stable dt (at most 1): what the
    benchmark's kernels run with (the update's cost does not depend on the values)."""
    physics = model.Physics()
    return model.coefficients(physics, 1.0, 1.0, 0.8 * min(1.0, model.max_stable_dt(physics, 1.0, 1.0)))


def model_kernel(model, name: str):
    """``advance(u, v, steps, region)`` of our kernel ``name`` on ``model``, with :func:`unit_coefficients`,
    the model's coefficient fields on the unit square (made on the first call, for that grid) and its forcing
    values (every step's, at dt = 0.001)."""
    k = unit_coefficients(model)
    advance = kernels.get_advance(model, name)
    physics = model.Physics()
    fields = {}
    done = [0]

    def run(u, v, steps, region):
        shape = u.shape[-2:]
        if shape not in fields:
            ny, nx = shape
            uniform = lambda seed, low=0.0, high=1.0: np.random.default_rng(seed).uniform(low, high, shape)
            a = models.coefficient_values(model, physics, np.linspace(0.0, 1.0, nx), np.linspace(0.0, 1.0, ny),
                                          uniform)
            fields[shape] = np.ascontiguousarray(a) if len(a) else kernels.no_coefficients()
        values = models.time_values(model, physics, 1e-3, done[0], steps)
        done[0] += steps
        return advance(u, v, fields[shape], steps, k, values, region)
    return run


# --- measurements -----------------------------------------------------------------------------------
def copy_rate(src: np.ndarray, dst: np.ndarray, repeats: int = 5, kind: str = "copy") -> float:
    """Elements copied per second (median of repeats): the bound in updates per second.

    ``copy`` becomes a memcpy, which streams past the caches (16 B per element); ``store_copy`` uses
    ordinary stores like a stencil kernel, so the CPU reads each destination line before writing it."""
    copy = _jit()[kind]
    copy(src, dst)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        copy(src, dst)
        times.append(time.perf_counter() - t)
    return src.size / float(np.median(times))


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", item)
        if not m or min(int(m[1]), int(m[2])) < 3:
            raise ConfigError(f"--sizes {text!r}: expected NXxNY items of at least 3, like 1024x512,2048x2048")
        sizes.append((int(m[1]), int(m[2])))
    return sizes


def parse_list(text: str, option: str, valid) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    for item in items:
        if item not in valid:
            raise ConfigError(f"{option} {item!r} is unknown; choose from {', '.join(valid)}")
    if not items:
        raise ConfigError(f"{option} is empty; give a comma-separated list from {', '.join(valid)}")
    return items


def parse_models(text: str) -> list[str]:
    """--models: built-in model names and model files (paths ending in .py, from the current directory)."""
    specs = []
    for item in (s.strip() for s in text.split(",")):
        if item.endswith(".py") or os.sep in item:
            if not os.path.isfile(item):
                raise ConfigError(f"--models {item!r}: no such model file; give the path of a model file (.py)")
            specs.append(models.resolve(item))
        elif item in models.BUILT_IN:
            specs.append(item)
        elif item:
            raise ConfigError(f"--models {item!r} is neither a built-in model ({', '.join(models.BUILT_IN)}) "
                              "nor a model file (a path ending in .py)")
    if not specs:
        raise ConfigError(f"--models is empty; give built-in models ({', '.join(models.BUILT_IN)}) or model files")
    return specs


def parse_threads(text: str, limit: int) -> list[int]:
    out = []
    for item in text.split(","):
        item = item.strip()
        n = limit if item == "all" else int(item) if is_digits(item) else 0
        if not 1 <= n <= limit:
            raise ConfigError(f"--threads {text!r}: each entry must be 'all' or 1..{limit} "
                              f"(NUMBA_NUM_THREADS = {limit}); e.g. --threads 1,all")
        if n not in out:
            out.append(n)
    return out


def machine() -> dict:
    info = {"hostname": platform.node(), "cpu": platform.processor() or platform.machine(),
            "cores": this_machine.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["caches_per_cpu0"] = {level: f"{size // 1024}K" for level, size in this_machine.data_caches().items()}
    return info


def run_benchmark(sizes, kernel_names, thread_counts, seconds, repeats, copy_mib, say,
                  model_specs=("diffusion",)) -> dict:
    import numba
    chosen = [models.load(spec) for spec in model_specs]
    n = copy_mib * 1024 * 1024 // 8
    src, dst = np.ones(n), np.zeros(n)
    # the bound and the ceiling for every thread count a row uses: serial kernels run with one thread
    serial = any(name in SERIAL_ONLY for name in kernel_names)
    reference_threads = sorted(set(thread_counts) | ({1} if serial else set()))
    bound_samples = {t: [] for t in reference_threads}

    def sample_bound(threads):
        numba.set_num_threads(threads)
        rate = copy_rate(src, dst) / 1e6
        bound_samples[threads].append(rate)
        return rate

    for t in reference_threads:
        rate = sample_bound(t)
        say(f"copy bound, {t} thread(s): {rate:.0f} MLUPS-equivalent ({rate * 16 / 1000:.1f} GB/s)")
    rows = []
    for model in chosen:
        fields = len(model.fields)
        for nx, ny in sizes:
            for threads in thread_counts:
                for name in kernel_names:
                    if name in SERIAL_ONLY and threads != thread_counts[0]:
                        continue
                    external = name in bench_external.LIBRARIES
                    if external and model.name != "diffusion":      # they know the diffusion update only
                        continue
                    used = 1 if name in SERIAL_ONLY else threads
                    sample_bound(used)                    # interleaved with the kernels
                    numba.set_num_threads(used)
                    if external:       # own process: OpenMP's thread count is set at load
                        result = bench_external.measure(name, ny, nx, threads, seconds, repeats)
                    else:
                        multiple = 2 * tiling.depth_for(fields) if name == "tiled" else 1   # whole chunks
                        result = time_kernel(model_kernel(model, name), (fields, ny, nx), seconds, repeats,
                                             multiple)
                    row = {"model": model.name, "kernel": name, "nx": nx, "ny": ny, "threads": used,
                           "peak_rss_mib": round(peak_rss_mib(), 1), **result}
                    rows.append(row)
                    say(f"  {model.name:<20} {nx:>5} x {ny:<5} {name:<10} {row['threads']} thr  "
                        f"{row['mlups']:8.0f} MLUPS ({row['steps']} steps)")
    ceiling = {}
    for model in chosen:
        for t in reference_threads:
            numba.set_num_threads(t)
            tries = in_cache_sweep(model, seconds, repeats)
            best = max(tries, key=lambda c: c["mlups"])
            ceiling[f"{model.name} {t}"] = {**best, "sweep": tries}
            say(f"in-cache ceiling, {model.name}, {t} thread(s): numba kernel on growing grids: "
                + ", ".join(f"{c['nx']} x {c['ny']} {c['mlups']:.0f}" for c in tries)
                + f" MLUPS: ceiling {best['mlups']:.0f} on {best['nx']} x {best['ny']}")
    for t in reference_threads:
        sample_bound(t)
    store = {}
    for t in reference_threads:
        numba.set_num_threads(t)
        store[str(t)] = float(np.median([copy_rate(src, dst, kind="store_copy") / 1e6 for _ in range(3)]))
    bound = {str(t): {"median": float(np.median(s)), "min": float(min(s)), "max": float(max(s)),
                      "samples": [round(x, 1) for x in s]} for t, s in bound_samples.items()}
    for row in rows:
        ref = bound[str(row["threads"])]["median"]
        row["percent_of_bound"] = 100.0 * row["mlups"] / ref
        yard = [r for r in rows if r["kernel"] == "prange" and r["nx"] == row["nx"] and r["ny"] == row["ny"]
                and r["threads"] == row["threads"] and r["model"] == row["model"]]
        row["ratio_to_prange"] = row["mlups"] / yard[0]["mlups"] if yard else None
        row["percent_of_in_cache"] = 100.0 * row["mlups"] / ceiling[f"{row['model']} {row['threads']}"]["mlups"]
    for key, c in ceiling.items():
        c["percent_of_bound"] = 100.0 * c["mlups"] / bound[key.split()[-1]]["median"]
    tiles = {"strip": tiling.STRIP, "depth": tiling.DEPTH}
    return {"bound": bound, "store_copy": store, "in_cache": ceiling, "results": rows, "tiled": tiles}


SWEEP_KIB = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)   # both buffers of the ceiling's grids
SWEEP_FALL = 0.6        # the sweep stops once the rate falls below this fraction of its best: out of cache
SWEEP_LEAST = 5         # grids timed at least (up to 4 MiB): the smallest are dominated by the sweep's overhead


def in_cache_grids(fields: int = 1) -> list[tuple[int, int]]:
    """(ny, nx) of the in-cache sweep: 1000 columns (a power-of-two row length would make rows collide in the
    cache sets) and as many rows as make the two buffers of every field SWEEP_KIB KiB, smallest first."""
    return [(max(16, kib * 1024 // (2 * 8 * 1000 * fields)), 1000) for kib in SWEEP_KIB]


def in_cache_sweep(model, seconds: float, repeats: int) -> list[dict]:
    """The plain kernel on growing grids (:func:`in_cache_grids`) with the threads set now, until its rate
    falls below SWEEP_FALL of the best so far: the in-cache ceiling is that best, the rate where it stops
    falling measured on this machine rather than sized from the cache the system reports (a virtual machine
    may report its host's whole L3: 480 MiB here, where a grid of that size ran at the memory bound). Each
    grid is timed for a quarter of ``seconds``: the sweep is a few seconds."""
    fields = len(model.fields)
    out = []
    for ny, nx in in_cache_grids(fields):
        result = {"nx": nx, "ny": ny, "kib": 2 * 8 * fields * nx * ny // 1024,
                  **time_kernel(model_kernel(model, "numba"), (fields, ny, nx), seconds / 4, repeats, 1)}
        out.append(result)
        best = max(c["mlups"] for c in out)
        if len(out) >= SWEEP_LEAST and all(c["mlups"] < SWEEP_FALL * best for c in out[-2:]):
            break               # two grids in a row well below the best: out of cache, not a hiccup
    return out


def _solver_figures(command, env, output: str) -> tuple[float, float]:
    """Run the solver once; its MLUPS and the halo exchange's share of the step time, in percent, as the run
    recorded them in its output's attributes."""
    import h5py
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    with h5py.File(output, "r") as f:
        compute, halo, mlups = (float(f.attrs[key]) for key in ("compute_seconds", "halo_seconds", "mlups"))
    return mlups, 100.0 * halo / max(compute + halo, 1e-12)


MPI_STEPS, MPI_UPDATES = 1000, 8e9     # --mpi runs: the least steps and node updates (about a second)


def mpi_steps(nx: int, ny: int) -> int:
    """Steps of one --mpi run by default: 1000, more on grids under 8 million nodes, so that every run lasts
    about a second (1000 steps of 1024 x 512 are a loop of 60 ms, which measured 0.9x and 1.1x of one rank
    in two runs of the same code)."""
    return max(MPI_STEPS, int(MPI_UPDATES / (nx * ny)) // 30 * 30)


def run_mpi(sizes, kernel_names, fixed_steps, threads, repeats, say) -> list[dict]:
    """The solver itself: 1 rank x ``threads`` threads against ``mpirun -n 2`` x 1 thread each, the median of
    ``repeats`` runs (a run of a second or less is short enough for one hiccup of the machine to show), of
    ``fixed_steps`` steps, or :func:`mpi_steps` when None."""
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise ConfigError("--mpi needs mpirun on PATH: install or load an MPI (bash jobs/setup.sh) or drop --mpi")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    out = []
    with tempfile.TemporaryDirectory(prefix="solver-bench-") as tmp:
        for nx, ny in sizes:
            steps = fixed_steps or mpi_steps(nx, ny)
            # a tiny dt only to pass validation; the runs use 0.9 of the largest stable one
            base = config_module.load(str(REPO / "configs" / "default.yaml"),
                                      [f"grid.nx={nx}", f"grid.ny={ny}", "time.dt=1.0e-12", "time.t_end=1.0e-12"])
            dt = float(f"{0.9 * base.max_stable_dt:.3g}")
            # auto: what a user gets by default (the kernel and halo planned by solver/run/planning.py)
            for name in ["auto", *(k for k in kernel_names if k in kernels.KERNELS and k != "numpy")]:
                launches = {}
                for ranks, per_rank in ((1, threads), (2, 1)):
                    overrides = [f"grid.nx={nx}", f"grid.ny={ny}", f"time.dt={dt:.6e}",
                                 f"time.t_end={steps * dt:.6e}", "output.every=0", f"parallel.threads={per_rank}",
                                 f"numerics.kernel={name}", "parallel.halo=auto"]
                    command = [sys.executable, "-m", "solver", "run", str(REPO / "configs" / "default.yaml"),
                               "-o", os.path.join(tmp, "bench.h5"), "--overwrite"]
                    for o in overrides:
                        command += ["--set", o]
                    if ranks > 1:
                        command = [mpirun, "-n", str(ranks), "--bind-to", "none", *command]
                    launches[ranks, per_rank] = command
                # interleaved, so that the machine's drift from minute to minute hits both launches alike
                samples = {launch: [] for launch in launches}
                for _ in range(repeats):
                    for launch, command in launches.items():
                        samples[launch].append(_solver_figures(command, env, os.path.join(tmp, "bench.h5")))
                for (ranks, per_rank), figures in samples.items():
                    mlups = float(np.median([m for m, _ in figures]))
                    row = {"kernel": name, "nx": nx, "ny": ny, "ranks": ranks, "threads_per_rank": per_rank,
                           "halo": "auto", "steps": steps, "repeats": repeats, "mlups": mlups,
                           "mlups_samples": [round(m) for m, _ in figures],
                           "halo_percent_of_step": float(np.median([h for _, h in figures]))}
                    out.append(row)
                    say(f"  solver {nx:>5} x {ny:<5} {name:<6} {ranks} rank(s) x {per_rank} thr, halo auto: "
                        f"{mlups:8.0f} MLUPS, halo {row['halo_percent_of_step']:.1f} % of step time")
    for row in out:
        one = [r for r in out if r["ranks"] == 1 and r["kernel"] == row["kernel"]
               and (r["nx"], r["ny"]) == (row["nx"], row["ny"])]
        row["ratio_to_one_rank"] = row["mlups"] / one[0]["mlups"] if one else None
    return out


# --- report -------------------------------------------------------------------------------------------
def thread_scaling(report: dict) -> list[str]:
    """Speed-up from one thread to the most threads, of the in-cache ceiling and of every kernel timed with
    both: a kernel that scales like the ceiling loses nothing to its threaded schedule."""
    counts = sorted({r["threads"] for r in report["results"]})
    if len(counts) < 2 or counts[0] != 1:
        return []
    top = counts[-1]
    out = []
    for key, c in report.get("in_cache", {}).items():
        model, t = key.rsplit(" ", 1)
        if t == str(top) and f"{model} 1" in report["in_cache"]:
            out.append(f"in-cache ceiling ({model}) x{c['mlups'] / report['in_cache'][f'{model} 1']['mlups']:.2f}")
    one = {(r.get("model", "diffusion"), r["kernel"], r["nx"], r["ny"]): r["mlups"]
           for r in report["results"] if r["threads"] == 1}
    for r in report["results"]:
        key = (r.get("model", "diffusion"), r["kernel"], r["nx"], r["ny"])
        if r["threads"] == top and key in one:
            out.append(f"{key[1]} {key[2]}x{key[3]} x{r['mlups'] / one[key]:.2f}")
    return out


def format_table(report: dict) -> str:
    lines = []
    for t, b in report["bound"].items():
        lines.append(f"bound, {t} thread(s): {b['median']:.0f} MLUPS-equivalent = {b['median'] * 16 / 1000:.1f} GB/s "
                     f"copy (median of {len(b['samples'])}, range {b['min']:.0f}-{b['max']:.0f}); "
                     f"copy with ordinary stores {report['store_copy'][t]:.0f}")
    for key, c in report.get("in_cache", {}).items():
        model, t = key.rsplit(" ", 1) if " " in key else ("diffusion", key)
        lines.append(f"in-cache ceiling, {model}, {t} thread(s): {c['mlups']:.0f} MLUPS = {c['percent_of_bound']:.0f} "
                     f"% of the bound (numba kernel on {c['nx']} x {c['ny']}, the fastest of a sweep of growing grids)")
    lines.append("cpu/wall: CPU seconds of this process per wall second while timing; below the thread count "
                 "means other processes took cores")
    lines.append("")
    lines.append(f"{'model':<20} {'grid':>11} {'kernel':<10} {'thr':>3} {'MLUPS':>8} {'% bound':>8} {'x prange':>8} "
                 f"{'% in-cache':>10} {'steps':>6} {'cpu/wall':>8} {'peak RSS MiB':>12}")
    for r in report["results"]:
        ratio = f"{r['ratio_to_prange']:.2f}" if r["ratio_to_prange"] is not None else "-"
        in_cache = r.get("percent_of_in_cache", float("nan"))
        lines.append(f"{r.get('model', 'diffusion'):<20} {r['nx']:>5}x{r['ny']:<5} {r['kernel']:<10} {r['threads']:>3} "
                     f"{r['mlups']:>8.0f} "
                     f"{r['percent_of_bound']:>7.0f}% {ratio:>8} {in_cache:>9.0f}% {r['steps']:>6} "
                     f"{r['cpu_seconds_per_wall_second']:>8.2f} {r['peak_rss_mib']:>12.0f}")
    scaling = thread_scaling(report)
    if scaling:
        lines.append("")
        lines.append("from one thread to all: " + ", ".join(scaling))
    if report.get("mpi"):
        lines.append("")
        lines.append(f"{'solver run':>11} {'kernel':<8} {'ranks x thr':>11} {'halo':>4} {'MLUPS':>8} "
                     f"{'vs 1 rank':>9} {'halo % of step':>14}")
        for r in report["mpi"]:
            lines.append(f"{r['nx']:>5}x{r['ny']:<5} {r['kernel']:<8} {r['ranks']:>5} x {r['threads_per_rank']:<3}"
                         f"  {r['halo']:>4} {r['mlups']:>8.0f} {r['ratio_to_one_rank']:>9.2f} "
                         f"{r['halo_percent_of_step']:>13.1f}%")
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    """Roofline-style chart: MLUPS against the bytes the two buffers occupy, with the bound and the caches."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(10, 5.5))
    rows = [r for r in report["results"] if r.get("model", "diffusion") == "diffusion"]   # the external yardsticks' problem
    styles = {1: "--", None: "-"}
    colours = {}
    top = max(t for t in (r["threads"] for r in rows))
    for name in dict.fromkeys(r["kernel"] for r in rows):
        for threads in sorted({r["threads"] for r in rows if r["kernel"] == name}):
            pts = sorted((2 * 8 * r["nx"] * r["ny"], r["mlups"]) for r in rows
                         if r["kernel"] == name and r["threads"] == threads)
            x, y = zip(*pts)
            line, = ax.plot(x, y, styles.get(threads if threads == 1 and top > 1 else None, "-"), marker="o",
                            color=colours.get(name), label=f"{name}, {threads} thr")
            colours[name] = line.get_color()
    for i, (t, b) in enumerate(sorted(report["bound"].items(), key=lambda kv: int(kv[0]))):
        ax.axhline(b["median"], color="black", linestyle=":" if int(t) == 1 else "-", linewidth=1.2)
        ax.annotate(f"copy bound, {t} thr: {b['median']:.0f}", (0.01, b["median"]), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=8)
    top_threads = max(report.get("store_copy", {}), key=int, default=None)
    if top_threads is not None:
        rate = report["store_copy"][top_threads]
        ax.axhline(rate, color="grey", linestyle="--", linewidth=1)
        ax.annotate(f"copy with ordinary stores (reads each line first), {top_threads} thr: {rate:.0f}",
                    (0.01, rate), xycoords=("axes fraction", "data"), va="bottom", fontsize=8, color="grey")
    if f"diffusion {top_threads}" in report.get("in_cache", {}):
        ceiling = report["in_cache"][f"diffusion {top_threads}"]["mlups"]
        ax.axhline(ceiling, color="tab:red", linestyle="-.", linewidth=1)
        ax.annotate(f"in-cache ceiling (numba kernel, arithmetic only), {top_threads} thr: {ceiling:.0f}",
                    (0.01, ceiling), xycoords=("axes fraction", "data"), va="bottom", fontsize=8, color="tab:red")
        sweep = report["in_cache"][f"diffusion {top_threads}"].get("sweep", [])
        if sweep:       # the measured curve the ceiling comes from: where the rate falls, the cache ends
            ax.plot([1024 * c["kib"] for c in sweep], [c["mlups"] for c in sweep], ":", marker=".",
                    color="tab:red", label=f"ceiling sweep (numba), {top_threads} thr")
    for level, size in report["machine"].get("caches_per_cpu0", {}).items():
        m = re.fullmatch(r"(\d+)K", size)
        if m and level in ("L2", "L3"):
            ax.axvline(int(m[1]) * 1024, color="grey", linewidth=0.8)
            ax.annotate(f"{level} {size}", (int(m[1]) * 1024, 0.02), xycoords=("data", "axes fraction"),
                        rotation=90, fontsize=8, color="grey", ha="right")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_bytes_label))
    ax.set_yscale("log")
    ax.set_xlabel("working set: two float64 buffers (bytes)")
    ax.set_ylabel("MLUPS (million node updates per second)")
    ax.set_title(f"2D diffusion kernels vs the memory bound\n{report['machine']['cpu']}, "
                 f"{report['machine']['cores']} cores", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _bytes_label(value, _position) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:g} {unit}"
        value /= 1024
    return ""


# --- command line ---------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default=DEFAULT_SIZES, help=f"grids NXxNY, comma-separated (default {DEFAULT_SIZES})")
    p.add_argument("--kernels", help=f"kernels to time, comma-separated (default {DEFAULT_KERNELS}, and "
                   f"{','.join(bench_external.LIBRARIES)} when installed: {bench_external.INSTALL}; "
                   "prange is the yardstick)")
    p.add_argument("--models", default="diffusion", help="models whose update the kernels apply, comma-separated: "
                   "built-in names or model files (path ending in .py), or all (the built-ins; default diffusion)")
    p.add_argument("--threads", default="1,all", help="thread counts, comma-separated; 'all' = NUMBA_NUM_THREADS "
                   "(default 1,all)")
    p.add_argument("--seconds", type=float, default=0.5,
                   help="target time of one timed repeat; sets the step count (default 0.5)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per kernel, median reported (default 3)")
    p.add_argument("--copy-mib", type=int, default=COPY_MIB,
                   help=f"size of each array of the copy that measures the bound, MiB (default {COPY_MIB})")
    p.add_argument("--mpi", action="store_true",
                   help="also time the solver: 1 rank x all threads against mpirun -n 2 x 1 thread")
    p.add_argument("--mpi-sizes", default="1024x512,2048x2048", help="grids for --mpi (default 1024x512,2048x2048)")
    p.add_argument("--mpi-steps", type=int, help=f"steps of each --mpi solver run (default {MPI_STEPS}, more on "
                   f"grids under {MPI_UPDATES / MPI_STEPS / 1e6:.0f} million nodes: {MPI_UPDATES:.0e} node updates)")
    p.add_argument("--mpi-repeats", type=int, default=5,
                   help="runs of each --mpi configuration, median reported (default 5: single runs of a second "
                        "scatter by several per cent on a shared machine)")
    p.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    p.add_argument("--plot", metavar="PNG", help="write a roofline-style chart to this PNG file")


def main(args: argparse.Namespace) -> int:
    planning.passive_waiting()          # the solver's runs' wait policy, read when numba starts its threads
    import numba
    limit = numba.config.NUMBA_NUM_THREADS
    sizes = parse_sizes(args.sizes)
    default = ",".join([DEFAULT_KERNELS, *filter(bench_external.available, bench_external.LIBRARIES)])
    names = parse_list(args.kernels or default, "--kernels", [*KERNEL_NAMES, *bench_external.LIBRARIES])
    model_specs = models.BUILT_IN if args.models == "all" else parse_models(args.models)
    bench_external.check_installed(names)
    threads = parse_threads(args.threads, limit)
    if args.seconds <= 0 or min(args.repeats, args.copy_mib, 1 if args.mpi_steps is None else args.mpi_steps,
                                    args.mpi_repeats) < 1:
        raise ConfigError("--seconds, --repeats, --copy-mib, --mpi-steps and --mpi-repeats must be positive")
    for path in (args.json, args.plot):
        if path:
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
                raise ConfigError(f"cannot write {path}: {directory} is not a writable directory")

    def say(message):
        print(message, flush=True)

    report = {"command": " ".join(["python -m solver bench", *sys.argv[2:]]), "load_average_before": os.getloadavg(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
              "numba_version": numba.__version__, "numpy_version": np.__version__,
              "threading_layer": None, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    report.update(run_benchmark(sizes, names, threads, args.seconds, args.repeats, args.copy_mib, say, model_specs))
    report["threading_layer"] = numba.threading_layer()
    report["thread_scaling"] = thread_scaling(report)
    if args.mpi:
        report["mpi"] = run_mpi(parse_sizes(args.mpi_sizes), names, args.mpi_steps, max(threads), args.mpi_repeats,
                                say)
    report["peak_rss_mib"] = peak_rss_mib()
    report["load_average_after"] = os.getloadavg()
    print()
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        plot(report, args.plot)
        print(f"wrote {args.plot}")
    return 0
