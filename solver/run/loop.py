"""The run loop: set up, initial condition, loop of (exchange, step, maybe write), report.

One path for every case and every model (the physics is the model's, see solver/models): a single process is
a communicator of one rank and a decomposition with one block and no neighbours. The pieces live beside this
file: :mod:`.planning` (kernel, halo, threads), :mod:`.stepper` (kernel steps and halo fills),
:mod:`.hooks` (the tests' fault and hold hooks); the fields' initial and exact values in solver/core/fields.py.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from ..comm import SERIAL, all_true, maximum, on_every_rank, on_root, ranks_on_node
from ..core import kernels, tiling
from ..core.config import Config
from ..core.fields import exact_field, initial_field, owned_index
from ..core.grid import Decomposition, init_global_grid, process_dims
from ..errors import ModelError, RunError
from ..storage import checkpoint, provenance
from ..storage.output import FieldWriter, partial_path
from .hooks import FAULT_VARIABLE, HOLD_VARIABLE, fail, hold, test_hook
from .planning import choose_threads, set_threads
from .stepper import Stepper, Timer, check_kernel
from .wisdom import decide

PROGRESS_EVERY = 0.1     # fraction of the run between progress lines
SIGNAL_POLL_STEPS = 2 * tiling.DEPTH    # steps between looks at the signal flag (a collective under MPI):
                                        # whole tiled chunks, rounded up to whole halo cycles under MPI


def run(cfg: Config, path: str, comm=SERIAL, say=None, restart: str = "never", max_steps: int = 0,
        attrs: dict | None = None) -> dict:
    """Run the simulation of cfg, writing snapshots to ``path``; returns the summary (rank 0's view).

    restart: ``never`` starts at step 0; ``auto`` resumes from the checkpoint if there is one; ``require``
    insists on one. max_steps > 0 stops after that many steps with a checkpoint (raises Stopped), as a
    signal does. ``attrs`` are extra root attributes for the output (an ensemble member's drawn parameters).
    """
    say = say or _printer(comm)
    timer = Timer()
    wall_start = time.perf_counter()

    # Set-up: decomposition, threads, kernels
    local_ranks = ranks_on_node(comm)
    dims = process_dims(cfg, comm.Get_size())
    threads = choose_threads(cfg, local_ranks)
    if cfg.numerics.kernel != "numpy":   # the numpy kernel never imports numba (a small ensemble member's start-up)
        set_threads(threads, local_ranks, say)
    decision = decide(cfg, dims, local_ranks, threads, comm, say=say)   # auto: measured, or recorded
    chosen = decision.plan
    decomp = init_global_grid(cfg, comm, chosen.halo)
    model = cfg.model_impl
    kernel = chosen.kernel
    kernels.warm_up(model, kernel)
    check_kernel(cfg, kernel, comm, say)      # the compiled update against the numpy reference
    stepper = Stepper(cfg, decomp, timer, kernel)
    fail_at = test_hook(FAULT_VARIABLE, decomp.rank)
    hold_at = test_hook(HOLD_VARIABLE, decomp.rank)
    attrs = {**provenance.collect(cfg.to_yaml(), decomp.size, threads, decomp.dims, decomp.comm, local_ranks),
             "kernel": kernel, "auto_choice": chosen.reason, **decision.attributes(),
             "model": model.name, "model_file": model.file, "model_source_sha256": model.source_hash,
             **(attrs or {})}
    attrs = comm.bcast(attrs, root=0)         # identical attributes on every rank (collective writes)

    # Initial condition, or the state of a checkpoint
    u, v = kernels.buffer_pair((len(model.fields), *decomp.local_shape))
    on_every_rank(comm, lambda: initial_field(cfg, decomp, u))     # a hook failing on some ranks' nodes only
    owned = owned_index(decomp)
    check_initial(u[owned], cfg, comm)
    checkpoint_path = checkpoint.path_for(cfg, path)
    first, snapshots = 0, None
    if restart == "require" or restart == "auto" and _exists(checkpoint_path, comm):
        u[owned], first, snapshots = checkpoint.load(checkpoint_path, cfg, decomp, partial_path(path))
        attrs["restarted_from_step"] = first
        if hold_at is not None and first >= hold_at:
            hold_at = None
        say(f"resuming from {checkpoint_path} at step {first}")
    stepper.fill(u, first)  # the fixed boundary's nodes in the halo too: v keeps them, steps read them
    v[...] = u

    t0 = time.perf_counter()
    writer = FieldWriter(path, cfg, decomp, attrs, resume_at=snapshots, resume_step=first)
    try:
        if snapshots is None:
            writer.write_coefficients(stepper.coefficient_fields[owned])
            writer.append(0.0, u[owned])
            writer.record(0, u[owned])
        timer.add("io", t0)
        for line in writer.records.describe():
            say(line)

        # Time loop
        nsteps, every, dt = cfg.nsteps, cfg.output.every, cfg.time.dt
        checkpoint_every = cfg.checkpoint.every
        last = min(nsteps, first + max_steps) if max_steps > 0 else nsteps
        report_every = max(1, int(nsteps * PROGRESS_EVERY))
        poll_steps = _next_multiple(SIGNAL_POLL_STEPS - 1, decomp.halo)
        records = writer.records
        inside = stepper.records_inside and bool(records.stops())      # the kernels take the records
        loop_start = time.perf_counter()
        step = first
        say(f"running {cfg.grid.nx} x {cfg.grid.ny} nodes, {nsteps} steps, {decomp.size} rank(s) "
            f"({decomp.dims[0]} x {decomp.dims[1]}) x {threads} thread(s), {chosen.reason}")
        with checkpoint.SignalFlag() as signals:
            while step < nsteps:
                stop = min(last, _next_multiple(step, report_every), step + poll_steps)
                for period in (every, checkpoint_every, *(() if inside else records.stops())):
                    if period:
                        stop = min(stop, _next_multiple(step, period))
                want = records.wants(step, stop - step) if inside else None
                recording = stepper.recording(u, want, records.wx, records.wy, records.mine.values()) \
                    if inside and want.any() else None
                u, v = stepper.advance(u, v, step, stop - step, recording)
                if recording is not None:
                    t = time.perf_counter()
                    writer.take(step, recording)
                    timer.add("records", t)
                step = stop
                if fail_at is not None and step >= fail_at:
                    fail(step)
                if every and step % every == 0 or step == nsteps:
                    t = time.perf_counter()
                    writer.append(step * dt, u[owned])
                    timer.add("io", t)
                if not inside and records.due(step):
                    t = time.perf_counter()
                    writer.record(step, u[owned])
                    timer.add("records", t)
                if step % report_every == 0 or step == nsteps:
                    check_finite(u[owned], step, cfg, comm)
                    elapsed = time.perf_counter() - loop_start
                    say(f"  step {step:>{len(str(nsteps))}}/{nsteps} ({100 * step / nsteps:5.1f} %)  "
                        f"t = {step * dt:.6g}  elapsed {elapsed:.1f} s  "
                        f"eta {elapsed / (step - first) * (nsteps - step):.1f} s")
                if step == nsteps:
                    break
                if hold_at is not None and step >= hold_at:
                    hold(decomp.rank, step, signals)
                    hold_at = None
                reason = "signal" if signals.agreed(comm) else "--max-steps" if step == last else None
                if reason or checkpoint_every and step % checkpoint_every == 0:
                    t = time.perf_counter()
                    check_finite(u[owned], step, cfg, comm)
                    writer.flush()
                    checkpoint.write(checkpoint_path, cfg, decomp, u[owned], step, writer.count)
                    timer.add("io", t)
                    say(f"  checkpoint at step {step}: {checkpoint_path}")
                if reason:
                    raise checkpoint.Stopped(step, checkpoint_path, reason)
        loop_seconds = time.perf_counter() - loop_start

        # Report
        errors = max_error(cfg, decomp, u, nsteps * dt)
        seconds = {phase: maximum(comm, s) for phase, s in timer.seconds.items()}
        memory = maximum(comm, provenance.peak_memory_mib())
        steps_run = nsteps - first            # fewer than nsteps after a restart
        mlups = cfg.grid.nx * cfg.grid.ny * steps_run / max(seconds["compute"] + seconds["halo"], 1e-12) / 1e6
        summary = {
            "grid": f"{cfg.grid.nx} x {cfg.grid.ny}", "steps": nsteps, "snapshots": writer.count,
            "ranks": decomp.size, "threads_per_rank": threads,
            "wall_seconds": time.perf_counter() - wall_start, "loop_seconds": loop_seconds,
            "compute_seconds": seconds["compute"], "halo_seconds": seconds["halo"], "io_seconds": seconds["io"],
            "records_seconds": seconds["records"],
            "mlups": mlups, **errors, "peak_memory_mib_per_rank": memory,
        }
        stepper.close()
        writer.close({**summary, "end_time": provenance.now()})
        checkpoint.remove(checkpoint_path, decomp)
    except (RunError, checkpoint.Stopped):      # raised by every rank together
        stepper.close()
        writer.discard(keep=os.path.exists(checkpoint_path), everywhere=True)
        raise
    except BaseException:
        writer.discard(keep=os.path.exists(checkpoint_path))   # a checkpoint refers to the .partial
        raise
    return summary


def max_error(cfg: Config, decomp: Decomposition, u: np.ndarray, t: float) -> dict:
    """``max_error`` (max |numerical - exact| over every field and node at time t) and ``relative_error``
    (that over the largest |exact|); empty for a model without an exact solution."""
    exact = on_every_rank(decomp.comm, lambda: exact_field(cfg, decomp, t))
    if exact is None:
        return {}
    error = float(np.max(np.abs(u[owned_index(decomp)] - exact)))
    peak = float(np.max(np.abs(exact)))
    error, peak = maximum(decomp.comm, error), maximum(decomp.comm, peak)
    return {"max_error": error, "relative_error": error / peak if peak > 0 else math.inf}


def check_finite(block: np.ndarray, step: int, cfg: Config, comm) -> None:
    if not all_true(comm, np.isfinite(block).all()):
        raise RunError(f"the field is not finite at step {step}: the run blew up; "
                       f"reduce time.dt (largest stable: {cfg.max_stable_dt:.4g})")


def check_initial(block: np.ndarray, cfg: Config, comm) -> None:
    """Refuse an initial condition that is already NaN or Inf (collective): it is not a blow-up, and no
    time step would cure it."""
    bad = comm.allreduce(int(np.count_nonzero(~np.isfinite(block))))
    if bad:
        model = cfg.model_impl
        raise ModelError(f"{cfg.source}: the initial condition of the {model.name} model is not finite (NaN or Inf) "
                         f"at {bad} node(s); check the initial and physics sections, or the model's initial() in "
                         f"{model.file}")


def _exists(path: str, comm) -> bool:
    """Whether path exists, as rank 0 sees it (every rank takes the same branch)."""
    return comm.bcast(on_root(comm, lambda: os.path.exists(path)), root=0)


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def _printer(comm):
    rank = comm.Get_rank()

    def say(message: str, error: bool = False) -> None:
        if rank == 0:
            print(message, file=sys.stderr if error else sys.stdout, flush=True)
    return say
