"""The run loop: set up, initial condition, loop of (exchange, step, maybe write), report.

One path for every case and every model (the physics is the model's, see solver/models): a single process
is a decomposition with one block and no neighbours, so with fixed boundaries it skips the exchange and
advances many steps per compiled call; otherwise each cycle of ``halo`` steps starts the exchange, updates
the interior, completes the exchange, fills the periodic and zero-flux halos, updates the rim and then runs
the remaining steps of the cycle on the shrinking, still valid, part of the halo.

Test hooks, so tests synchronise on events instead of on a run lasting "long enough":
``SOLVER_FAIL_AT=RANK:STEP`` makes rank RANK raise an exception once the run has passed step STEP, as a
real failure on one rank would; ``SOLVER_HOLD_AT=RANK:STEP`` makes rank RANK stop at the first step
boundary at or after STEP (unless it resumed from a checkpoint at or past STEP), print ``rank RANK held at step N`` and wait there until a signal arrives:
SIGCONT lets it go on as if nothing happened, SIGTERM or SIGUSR1 checkpoint as usual, SIGINT ends the run,
SIGKILL kills it mid-run.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import checkpoint, kernels, provenance
from .config import Config, ConfigError
from .grid import Decomposition, available_cores, init_global_grid, last_level_cache, process_dims
from .output import FieldWriter, partial_path

PROGRESS_EVERY = 0.1     # fraction of the run between progress lines
SIGNAL_POLL_STEPS = 2 * kernels.DEPTH   # steps between looks at the signal flag (a collective under MPI):
                                        # whole tiled chunks, rounded up to whole halo cycles under MPI
FAULT_VARIABLE = "SOLVER_FAIL_AT"
HOLD_VARIABLE = "SOLVER_HOLD_AT"


class RunError(RuntimeError):
    """The run cannot go on (a blown-up field, say); the message is one line for the user."""


@dataclass
class Timer:
    """Seconds spent per phase of the run loop."""
    seconds: dict = field(default_factory=lambda: {"compute": 0.0, "halo": 0.0, "io": 0.0})

    def add(self, phase: str, since: float) -> float:
        t = time.perf_counter()
        self.seconds[phase] += t - since
        return t


AUTO_HALO = 15   # steps between exchanges in cache: an exchange's latency a fifteenth as often, and few
                 # recomputed halo layers (out of cache: one whole tiled chunk, kernels.depth_for)


@dataclass(frozen=True)
class Plan:
    """The kernel and halo width a run uses, and why (for the log, --dry-run and the provenance)."""
    kernel: str
    halo: int
    reason: str


def plan(cfg: Config, dims: tuple[int, int], local_ranks: int) -> Plan:
    """Resolve ``numerics.kernel`` and ``parallel.halo`` when they are ``auto``, from global sizes only, so
    every rank decides alike (any choice gives the same bits):

    - halo: none to speak of (1) on one process with fixed boundaries, 1 when zero-flux boundaries are
      refilled every step anyway, else 15 steps between exchanges (or periodic wraps), or one whole tiled
      chunk (31 steps for one field) with the tiled kernel, at most half the smallest block: exchanges then
      cost a fifteenth as many latencies or fewer;
    - kernel: tiled (temporal blocking) when the field buffers of this node's ranks outgrow the last-level
      cache (then it moves about a chunk's-th of the memory per update) and there are several steps between
      exchanges; else the plain numba kernel, which in cache is the faster of the two (it recomputes no
      overlap and copies no rows: 2 ranks x 1 thread on the reference problem ran at 0.94 of 1 rank x 2
      threads with the tiled kernel, 1.00 with the plain one, both with an exchange every 15 steps).
    """
    px, py = dims
    size, nx, ny = px * py, cfg.grid.nx, cfg.grid.ny
    exchanges = size > 1 or any(getattr(cfg.boundary, side) != "fixed" for side in ("west", "east", "south", "north"))
    fields = len(cfg.model_impl.fields)
    smallest = min(nx // px, ny // py)
    mirrored = "zero_flux" in (cfg.boundary.west, cfg.boundary.east, cfg.boundary.south, cfg.boundary.north)
    deep = max(1, min(AUTO_HALO, smallest // 2)) if exchanges and not mirrored else 1
    field_bytes = 2 * 8 * fields * (ny + 2 * deep * py) * (nx + 2 * deep * px)      # all ranks, halos included
    outgrown = local_ranks * field_bytes / size > last_level_cache()
    tiled = cfg.numerics.kernel == "tiled" or cfg.numerics.kernel == "auto" and outgrown
    if cfg.parallel.halo != "auto":
        halo, why_halo = cfg.parallel.halo, "as configured"
    elif not exchanges:
        halo, why_halo = 1, "one process, fixed boundaries: nothing to exchange"
    elif mirrored:
        halo, why_halo = 1, "zero-flux boundaries are refilled every step"
    else:
        halo = max(1, min(kernels.depth_for(fields), smallest // 2)) if tiled else deep
        why_halo = f"{'an exchange' if size > 1 else 'a periodic wrap'} every {halo} steps"
    if cfg.numerics.kernel != "auto":
        kernel, why_kernel = cfg.numerics.kernel, "as configured"
    elif not outgrown:
        kernel, why_kernel = "numba", "the fields fit in the last-level cache"
    elif exchanges and halo < 3:
        kernel, why_kernel = "numba", "too few steps per exchange to tile"
    else:
        kernel, why_kernel = "tiled", "the fields outgrow the last-level cache"
    return Plan(kernel, halo, f"kernel {kernel} ({why_kernel}), halo {halo} ({why_halo})")


def choose_threads(cfg: Config, local_ranks: int) -> int:
    """Threads per rank: the config, else SLURM_CPUS_PER_TASK, else the cores shared by the node's ranks."""
    if cfg.parallel.threads != "auto":
        return cfg.parallel.threads
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm is not None:
        if not slurm.isdigit() or int(slurm) < 1:
            raise ConfigError(f"SLURM_CPUS_PER_TASK = {slurm!r} is not a positive whole number; "
                              "fix the job's --cpus-per-task or unset it")
        return int(slurm)
    return max(1, min(available_cores(), (os.cpu_count() or 1) // local_ranks))


def ranks_on_node(comm) -> int:
    """How many ranks share this node (a collective under MPI: call it once)."""
    if comm is None:
        return 1
    from mpi4py import MPI
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    count = node.Get_size()
    node.Free()
    return count


def set_threads(threads: int, local_ranks: int, say) -> None:
    import numba
    limit = numba.config.NUMBA_NUM_THREADS
    if threads > limit:
        raise ConfigError(f"parallel.threads = {threads} exceeds NUMBA_NUM_THREADS = {limit}; "
                          f"export NUMBA_NUM_THREADS={threads} or ask for fewer threads")
    total = threads * local_ranks
    if total > (os.cpu_count() or 1):
        # Waiting OpenMP threads spin; with more threads than cores they spin on the cores the others
        # need (measured here: 100x slower at 4 ranks x 2 threads on 2 cores). Read when numba starts them.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        say(f"warning: {total} threads (ranks x threads on this node) exceed the "
            f"{os.cpu_count()} cores: expect a large slowdown; set parallel.threads or NUMBA_NUM_THREADS",
            error=True)
    if threads > available_cores():
        say(f"warning: {threads} threads per rank but this rank may run on {available_cores()} core(s) only "
            f"(CPU affinity): launch with 'mpirun --bind-to none' or 'srun --cpus-per-task={threads}'",
            error=True)
    numba.set_num_threads(threads)


def test_hook(variable: str, rank: int) -> int | None:
    """The step of a ``RANK:STEP`` test hook for this rank (see the module docstring); None when unset."""
    value = os.environ.get(variable, "")
    if not value:
        return None
    target, sep, step = value.partition(":")
    if not (sep and target.isdigit() and step.isdigit()):
        raise ConfigError(f"{variable} = {value!r}: expected RANK:STEP, for example 1:50; "
                          f"or unset {variable}")
    return int(step) if int(target) == rank else None


def hold(rank: int, step: int, signals: checkpoint.SignalFlag) -> None:
    """Wait at a step boundary until a signal arrives (the SOLVER_HOLD_AT test hook); SIGCONT releases."""
    released = []
    previous = signal.signal(signal.SIGCONT, lambda *_: released.append(True))
    try:
        print(f"rank {rank} held at step {step} ({HOLD_VARIABLE}): send SIGCONT to go on", flush=True)
        while not released and signals.received is None:
            time.sleep(0.005)
    finally:
        signal.signal(signal.SIGCONT, previous)


def initial_field(cfg: Config, decomp: Decomposition, u: np.ndarray) -> np.ndarray:
    """Fill u, ``(fields, y, x)`` over the stored subdomain, with the model's fields at t = 0; halo cells are
    NaN until an exchange or a boundary condition fills them (a NaN that reaches a result shows a missed
    fill)."""
    model = cfg.model_impl
    u[...] = np.nan
    x, y = owned_coordinates(cfg, decomp)
    u[owned_index(decomp)] = _stack(model.initial(cfg.physics, cfg.initial, x, y, GridRandom(decomp)), x, y)
    return u


def exact_field(cfg: Config, decomp: Decomposition, t: float) -> np.ndarray | None:
    """The model's exact solution at time t on the owned nodes, ``(fields, y, x)``; None without one."""
    model = cfg.model_impl
    if not model.has_exact:
        return None
    x, y = owned_coordinates(cfg, decomp)
    return _stack(model.exact(cfg.physics, cfg.initial, x, y, t), x, y)


def owned_index(decomp: Decomposition) -> tuple[slice, slice, slice]:
    """Index of the owned nodes of every field in a stored ``(fields, y, x)`` array."""
    return (slice(None), *decomp.owned)


def owned_coordinates(cfg: Config, decomp: Decomposition) -> tuple[np.ndarray, np.ndarray]:
    x, y = cfg.axis("x"), cfg.axis("y")
    return x[slice(*decomp.x_range)], y[slice(*decomp.y_range)]


def _stack(values, x, y) -> np.ndarray:
    """A model's field (or tuple of fields) as one ``(fields, len(y), len(x))`` array."""
    values = values if isinstance(values, tuple) else (values,)
    return np.stack([np.broadcast_to(np.asarray(v, dtype=np.float64), (y.size, x.size)) for v in values])


class GridRandom:
    """``uniform(seed, low, high)`` for a model's initial condition: one seeded stream per global row, cut
    to this rank's columns, so every decomposition draws the same number at the same node."""

    def __init__(self, decomp: Decomposition):
        self.decomp = decomp

    def __call__(self, seed: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
        d = self.decomp
        rows = [np.random.default_rng([int(seed), j]).uniform(low, high, d.nx)[slice(*d.x_range)]
                for j in range(*d.y_range)]
        return np.array(rows).reshape(d.ny_own, d.nx_own)


class Stepper:
    """Advances the pair of buffers by any number of steps, exchanging halos as the decomposition needs."""

    def __init__(self, cfg: Config, decomp: Decomposition, timer: Timer, kernel: str):
        self.decomp, self.timer = decomp, timer
        model = cfg.model_impl
        self.kernel = kernels.get(model, kernel)
        self.k = cfg.coefficients()
        # A mirrored halo stays valid for one step only (the model's update need not be symmetric), so
        # zero-flux boundaries are filled every step; neighbours and periodic wraps every ``halo`` steps.
        self.cycle = 1 if "zero_flux" in decomp.boundary.values() else decomp.halo
        self.exchange = None
        if any(decomp.has(side) for side in ("west", "east", "south", "north")):   # ranks, or one across a
            from .halo import HaloExchange                                             # periodic axis
            self.exchange = HaloExchange(decomp, len(model.fields))

    def advance(self, u: np.ndarray, v: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
        d = self.decomp
        if not d.needs_halo:
            t = time.perf_counter()
            u, v = self.kernel(u, v, steps, self.k, d.update_region(), d.shrink)
            self.timer.add("compute", t)
            return u, v
        while steps > 0:
            k = min(self.cycle, steps)
            u, v = self._overlapped(u, v) if k == 1 and self.exchange else self._cycle(u, v, k)
            steps -= k
        return u, v

    def _cycle(self, u, v, k):
        """Fill the whole halo (exchange, periodic wraps, mirrors), then k steps in one kernel call: with a
        deep halo the exchange is rare, and the tiled kernel runs all k steps as one chunk."""
        d = self.decomp
        t = time.perf_counter()
        self.fill(u)
        t = self.timer.add("halo", t)
        u, v = self.kernel(u, v, k, self.k, d.update_region(k - 1), d.shrink)
        self.timer.add("compute", t)
        return u, v

    def _overlapped(self, u, v):
        """One step with an exchange before it: the interior is computed while the messages travel."""
        from .halo import fill_boundaries
        d, step = self.decomp, self.kernel
        t = time.perf_counter()
        self.exchange.start(u)
        t = self.timer.add("halo", t)
        full, inner = d.update_region(0), d.update_region(-1)
        inner = _clip(inner, full)
        step(u, v, 1, self.k, inner)
        t = self.timer.add("compute", t)
        self.exchange.finish()
        fill_boundaries(u, d)
        t = self.timer.add("halo", t)
        for box in _rim(full, inner):
            step(u, v, 1, self.k, box)
        self.timer.add("compute", t)
        return v, u

    def fill(self, u: np.ndarray) -> None:
        """Fill the whole halo of u: from the neighbours (a collective under MPI) and the boundaries."""
        from .halo import fill_boundaries
        if self.exchange is not None:
            self.exchange.update(u)
        fill_boundaries(u, self.decomp)

    def close(self) -> None:
        """Free the exchange's MPI datatypes."""
        if self.exchange is not None:
            self.exchange.free()
            self.exchange = None


def _clip(inner, full):
    j0, j1, i0, i1 = inner
    a, b, c, e = full
    j0 = min(max(j0, a), b)
    i0 = min(max(i0, c), e)
    return j0, min(max(j1, j0), b), i0, min(max(i1, i0), e)


def _rim(full, inner):
    """The boxes of ``full`` outside ``inner`` (south, north, west, east strips)."""
    a, b, c, e = full
    j0, j1, i0, i1 = inner
    boxes = [(a, j0, c, e), (j1, b, c, e), (j0, j1, c, i0), (j0, j1, i1, e)]
    return [box for box in boxes if box[0] < box[1] and box[2] < box[3]]


def run(cfg: Config, path: str, comm=None, say=None, restart: str = "never", max_steps: int = 0,
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
    chosen = plan(cfg, process_dims(cfg, 1 if comm is None else comm.Get_size()), local_ranks)
    decomp = init_global_grid(cfg, comm, chosen.halo)
    threads = choose_threads(cfg, local_ranks)
    model = cfg.model_impl
    kernel = chosen.kernel
    if kernel != "numpy":       # the numpy kernel never imports numba (a small ensemble member's start-up)
        set_threads(threads, local_ranks, say)
    kernels.warm_up(model, kernel)
    stepper = Stepper(cfg, decomp, timer, kernel)
    fail_at = test_hook(FAULT_VARIABLE, decomp.rank)
    hold_at = test_hook(HOLD_VARIABLE, decomp.rank)
    attrs = {**provenance.collect(cfg.to_yaml(), decomp.size, threads, decomp.dims, decomp.comm, local_ranks),
             "kernel": kernel, "auto_choice": chosen.reason,
             "model": model.name, "model_file": model.file, "model_source_sha256": model.source_hash,
             **(attrs or {})}
    if comm is not None:
        attrs = comm.bcast(attrs, root=0)     # identical attributes on every rank (collective writes)

    # Initial condition, or the state of a checkpoint
    u, v = kernels.buffer_pair((len(model.fields), *decomp.local_shape))
    initial_field(cfg, decomp, u)
    owned = owned_index(decomp)
    checkpoint_path = checkpoint.path_for(cfg, path)
    first, snapshots = 0, None
    if restart == "require" or restart == "auto" and _exists(checkpoint_path, comm):
        u[owned], first, snapshots = checkpoint.load(checkpoint_path, cfg, decomp, partial_path(path))
        attrs["restarted_from_step"] = first
        if hold_at is not None and first >= hold_at:
            hold_at = None
        say(f"resuming from {checkpoint_path} at step {first}")
    stepper.fill(u)        # the fixed boundary's nodes in the halo too: v keeps them, steps read them
    v[...] = u

    t0 = time.perf_counter()
    writer = FieldWriter(path, cfg, decomp, attrs, resume_at=snapshots)
    try:
        if snapshots is None:
            writer.append(0.0, u[owned])
        timer.add("io", t0)

        # Time loop
        nsteps, every, dt = cfg.nsteps, cfg.output.every, cfg.time.dt
        checkpoint_every = cfg.checkpoint.every
        last = min(nsteps, first + max_steps) if max_steps > 0 else nsteps
        report_every = max(1, int(nsteps * PROGRESS_EVERY))
        poll_steps = _next_multiple(SIGNAL_POLL_STEPS - 1, decomp.halo)
        loop_start = time.perf_counter()
        step = first
        say(f"running {cfg.grid.nx} x {cfg.grid.ny} nodes, {nsteps} steps, {decomp.size} rank(s) "
            f"({decomp.dims[0]} x {decomp.dims[1]}) x {threads} thread(s), {chosen.reason}")
        with checkpoint.SignalFlag() as signals:
            while step < nsteps:
                stop = min(last, _next_multiple(step, report_every), step + poll_steps)
                for period in (every, checkpoint_every):
                    if period:
                        stop = min(stop, _next_multiple(step, period))
                u, v = stepper.advance(u, v, stop - step)
                step = stop
                if fail_at is not None and step >= fail_at:
                    raise RuntimeError(f"injected failure at step {step} "
                                       f"({FAULT_VARIABLE}={os.environ[FAULT_VARIABLE]})")
                if every and step % every == 0 or step == nsteps:
                    t = time.perf_counter()
                    writer.append(step * dt, u[owned])
                    timer.add("io", t)
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
        seconds = timer.seconds
        if comm is not None:
            seconds = {k: comm.allreduce(s, op=_max()) for k, s in seconds.items()}
        memory = provenance.peak_memory_mib()
        if comm is not None:
            memory = comm.allreduce(memory, op=_max())
        steps_run = nsteps - first            # fewer than nsteps after a restart
        mlups = cfg.grid.nx * cfg.grid.ny * steps_run / max(seconds["compute"] + seconds["halo"], 1e-12) / 1e6
        summary = {
            "grid": f"{cfg.grid.nx} x {cfg.grid.ny}", "steps": nsteps, "snapshots": writer.count,
            "ranks": decomp.size, "threads_per_rank": threads,
            "wall_seconds": time.perf_counter() - wall_start, "loop_seconds": loop_seconds,
            "compute_seconds": seconds["compute"], "halo_seconds": seconds["halo"], "io_seconds": seconds["io"],
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
    exact = exact_field(cfg, decomp, t)
    if exact is None:
        return {}
    error = float(np.max(np.abs(u[owned_index(decomp)] - exact)))
    peak = float(np.max(np.abs(exact)))
    if decomp.comm is not None:
        error = decomp.comm.allreduce(error, op=_max())
        peak = decomp.comm.allreduce(peak, op=_max())
    return {"max_error": error, "relative_error": error / peak if peak > 0 else math.inf}


def check_finite(block: np.ndarray, step: int, cfg: Config, comm) -> None:
    ok = bool(np.isfinite(block).all())
    if comm is not None:
        ok = comm.allreduce(ok, op=_land())
    if not ok:
        raise RunError(f"the field is not finite at step {step}: the run blew up; "
                       f"reduce time.dt (largest stable: {cfg.max_stable_dt:.4g})")


def _exists(path: str, comm) -> bool:
    """Whether path exists, as rank 0 sees it (every rank takes the same branch)."""
    found = os.path.exists(path) if comm is None or comm.Get_rank() == 0 else None
    return found if comm is None else comm.bcast(found, root=0)


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every


def _max():
    from mpi4py import MPI
    return MPI.MAX


def _land():
    from mpi4py import MPI
    return MPI.LAND


def _printer(comm):
    rank = 0 if comm is None else comm.Get_rank()

    def say(message: str, error: bool = False) -> None:
        if rank == 0:
            print(message, file=sys.stderr if error else sys.stdout, flush=True)
    return say
