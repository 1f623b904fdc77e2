"""Timing a kernel: calibrated step counts, the median of repeats, the process's peak memory."""
from __future__ import annotations

import resource
import time

import numpy as np

from ..core import kernels


def time_kernel(advance, shape: tuple, seconds: float, repeats: int, multiple: int) -> dict:
    """MLUPS of ``advance(u, v, steps, region)`` on arrays of ``shape`` (``(fields, ny, nx)``, or ``(ny, nx)``
    for the external libraries): warm-up, calibrate the step count, median of repeats."""
    u, v = kernels.buffer_pair(shape)                       # laid out as the solver lays out its fields
    u[...] = np.random.default_rng(0).random(shape)
    v[...] = u
    ny, nx = shape[-2:]
    region = (1, ny - 1, 1, nx - 1)
    u, v = advance(u, v, multiple, region)                  # compile (or load) and touch the pages
    trial = multiple
    while True:
        t = time.perf_counter()
        u, v = advance(u, v, trial, region)
        elapsed = time.perf_counter() - t
        if elapsed > 0.05 * seconds or trial * 2 * nx * ny > 4e9:
            break
        trial *= 2
    per_step = elapsed / trial
    steps = max(multiple, int(round(seconds / max(per_step, 1e-9) / multiple)) * multiple)
    samples, wall, cpu = [], 0.0, time.process_time()
    for _ in range(repeats):
        t = time.perf_counter()
        u, v = advance(u, v, steps, region)
        seconds_taken = time.perf_counter() - t
        wall += seconds_taken
        samples.append(nx * ny * steps / seconds_taken / 1e6)
    cpu = time.process_time() - cpu
    if not np.isfinite(u).all():
        raise RuntimeError("the benchmark field blew up; this is a bug in a kernel")
    return {"steps": steps, "repeats": repeats, "mlups": float(np.median(samples)),
            "mlups_samples": [round(s, 1) for s in samples], "cpu_seconds_per_wall_second": round(cpu / wall, 2)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
