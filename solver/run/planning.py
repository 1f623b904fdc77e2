"""Planning a run: which kernel, how deep a halo and how many threads, from global sizes and the machine.

Every rank decides alike (from the config, the launch and the node), and any choice gives the same bits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .. import machine, models
from ..comm import local_launcher_size
from ..core import sampling, tiling
from ..core.config import SIDES, Config
from ..core.grid import check_halo, largest_block, process_dims
from ..errors import ConfigError, EnvironmentSettingError


AUTO_HALO = 15   # steps between exchanges in cache: an exchange's latency a fifteenth as often, and few
                 # recomputed halo layers (out of cache: one whole tiled chunk, tiling.depth_for)


@dataclass(frozen=True)
class Plan:
    """The kernel and halo width a run uses, and why (for the log, --dry-run and the provenance)."""
    kernel: str
    halo: int
    reason: str


HEURISTIC_CACHE_CAP = 32 * 1024 ** 2     # bytes: a virtual machine may report its host's whole L3 (480 MiB)


def plan(cfg: Config, dims: tuple[int, int], local_ranks: int, choice: tuple[str, str] | None = None,
         halo: int | None = None) -> Plan:
    """Resolve ``numerics.kernel`` and ``parallel.halo`` when they are ``auto``, from global sizes only, so
    every rank decides alike (any choice gives the same bits):

    - kernel: ``choice`` = (kernel, why) when given (measured: solver/run/wisdom.py), else the heuristic used
      where nothing can be measured: tiled (temporal blocking) when the field buffers of this node's ranks
      outgrow the last-level cache as reported (at most HEURISTIC_CACHE_CAP) and there are several steps
      between exchanges; else the plain numba kernel;
    - halo: ``halo`` when given (measured with the kernel), else none to speak of (1) on one process with
      fixed boundaries, 1 when zero-flux boundaries (or flux sides, or fixed sides changing with time) are
      refilled every step anyway, else 15 steps between exchanges (or periodic wraps), or one whole tiled
      chunk (31 steps for one field) with the tiled kernel, at most half the smallest block: exchanges then
      cost a fifteenth as many latencies or fewer.
    """
    px, py = dims
    size, nx, ny = px * py, cfg.grid.nx, cfg.grid.ny
    exchanges, mirrored = _exchanges(cfg, size), _mirrored(cfg)
    fields = len(cfg.model_impl.fields)
    stored = 2 * fields + len(cfg.model_impl.coefficient_names)     # two buffers a field, one a coefficient field
    deep = _deep(cfg, dims, "numba") if exchanges and not mirrored else 1
    field_bytes = 8 * stored * (ny + 2 * deep * py) * (nx + 2 * deep * px)     # all ranks, halos included
    cache = min(machine.last_level_cache(), HEURISTIC_CACHE_CAP)
    outgrown = local_ranks * field_bytes / size > cache
    auto = cfg.numerics.kernel == "auto"
    if not auto:
        kernel, why_kernel = cfg.numerics.kernel, "as configured"
    elif choice is not None:
        kernel, why_kernel = choice
    elif not outgrown:
        kernel, why_kernel = "numba", "the fields fit in the last-level cache"
    elif not can_tile(cfg, dims):
        kernel, why_kernel = "numba", "too few steps per exchange to tile"
    else:
        kernel, why_kernel = "tiled", "the fields outgrow the last-level cache"
    every = f"{'an exchange' if size > 1 else 'a periodic wrap'} every"
    if cfg.parallel.halo != "auto":
        halo, why_halo = cfg.parallel.halo, "as configured"
    elif halo is not None:
        why_halo = f"{every} {halo} step(s), measured with the kernel"
    elif not exchanges:
        halo, why_halo = 1, "one process, fixed boundaries: nothing to exchange"
    elif mirrored:
        halo, why_halo = 1, "zero-flux, flux or time-dependent sides are refilled every step"
    else:
        halo = _deep(cfg, dims, kernel)
        why_halo = f"{every} {halo} steps"
    return Plan(kernel, halo, f"kernel {kernel} ({why_kernel}), halo {halo} ({why_halo})")


def halo_candidates(cfg: Config, dims: tuple[int, int], kernel: str) -> tuple[int, ...]:
    """The halo widths worth timing with ``kernel`` (solver/run/wisdom.py): every step's exchange overlapped
    with the interior (1) against a deep halo (one exchange every 15 steps, or every tiled chunk), where halos
    are exchanged and nothing refills them every step; else the one width the run would use."""
    px, py = dims
    if cfg.parallel.halo != "auto" or not _exchanges(cfg, px * py) or _mirrored(cfg):
        return (plan(cfg, dims, 1, (kernel, "")).halo,)
    deep = _deep(cfg, dims, kernel)
    return (deep,) if kernel == "tiled" or deep == 1 else (1, deep)


def _exchanges(cfg: Config, size: int) -> bool:
    """Whether halos are filled between steps: several ranks, or a side that is not fixed."""
    return size > 1 or any(getattr(cfg.boundary, side) != "fixed" for side in SIDES)


def _mirrored(cfg: Config) -> bool:
    """Whether some side is refilled every step: zero-flux, a flux side or a fixed side changing with time."""
    kinds = {side: getattr(cfg.boundary, side) for side in SIDES}
    return "zero_flux" in kinds.values() or bool(models.side_hooks(cfg.model_impl, cfg.physics, kinds,
                                                                    cfg.axis("x"), cfg.axis("y")))


def _deep(cfg: Config, dims: tuple[int, int], kernel: str) -> int:
    """The deep halo: AUTO_HALO steps, or one tiled chunk for the tiled kernel; at most half the smallest block."""
    px, py = dims
    smallest = min(cfg.grid.nx // px, cfg.grid.ny // py)
    steps = tiling.depth_for(len(cfg.model_impl.fields)) if kernel == "tiled" else AUTO_HALO
    return max(1, min(steps, smallest // 2))


def can_tile(cfg: Config, dims: tuple[int, int]) -> bool:
    """Whether the tiled kernel may run: on one process with fixed boundaries always, else only with at least
    3 steps between exchanges (the halo the tiled kernel would get: configured, or one chunk, at most half
    the smallest block; 1 where mirrored sides are refilled every step)."""
    px, py = dims
    if not _exchanges(cfg, px * py):
        return True
    if cfg.parallel.halo != "auto":
        return cfg.parallel.halo >= 3
    return not _mirrored(cfg) and _deep(cfg, dims, "tiled") >= 3


def choose_threads(cfg: Config, local_ranks: int) -> int:
    """Threads per rank: the config, else SLURM_CPUS_PER_TASK, else the cores shared by the node's ranks."""
    if cfg.parallel.threads != "auto":
        return cfg.parallel.threads
    slurm = machine.cpus_per_task()
    if slurm is not None:
        return slurm
    return max(1, min(machine.available_cores(), machine.cpu_count() // local_ranks))


def passive_waiting() -> None:
    """Make waiting OpenMP threads sleep instead of spin (``OMP_WAIT_POLICY=PASSIVE``, unless set): called
    before numba starts its threads, which read it once. A spinning thread whose peer has been descheduled
    (another process on the core: a shared login node, ensemble members, a compiler) burns the core the peer
    needs; a 201 x 101 run with 2 threads on 2 cores, one of them busy, took 0.5-2.5 ms a step spinning
    against 0.02-0.03 ms passive (docs/performance.md). ``OMP_WAIT_POLICY=ACTIVE`` spins, for a dedicated node."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_threads(threads: int, local_ranks: int, say) -> None:
    passive_waiting()
    import numba
    limit = numba.config.NUMBA_NUM_THREADS
    if threads > limit:
        raise EnvironmentSettingError(f"parallel.threads = {threads} exceeds NUMBA_NUM_THREADS = {limit}; "
                                      f"export NUMBA_NUM_THREADS={threads} or ask for fewer threads")
    total = threads * local_ranks
    if total > machine.cpu_count():
        say(f"warning: {total} threads (ranks x threads on this node) exceed the "
            f"{machine.cpu_count()} cores: expect a large slowdown; set parallel.threads or NUMBA_NUM_THREADS",
            error=True)
    if threads > machine.available_cores():
        say(f"warning: {threads} threads per rank but this rank may run on {machine.available_cores()} core(s) only "
            f"(CPU affinity): launch with 'mpirun --bind-to none' or 'srun --cpus-per-task={threads}'",
            error=True)
    numba.set_num_threads(threads)


MAX_RANKS = 2 ** 22      # more MPI ranks than any machine runs; also bounds the process-grid search


@dataclass(frozen=True)
class Footprint:
    """What a run on ``ranks`` ranks needs: its process grid, the largest stored block and its memory."""
    dims: tuple[int, int]        # process grid (px, py)
    block: tuple[int, int]       # the largest stored block, halo included: (x, y) nodes
    field_bytes: int             # the two buffers of every field of that block, one of each coefficient field
    plan: Plan


def footprint(cfg: Config, ranks: int, chosen: Plan | None = None) -> Footprint:
    """The process grid, the largest block and the bytes of its field buffers for ``ranks`` ranks (taken to
    share one node), and the run's plan (``chosen``, else the heuristic's). Refuses rank counts and halo widths the grid cannot hold, before any
    allocation or any long search."""
    nx, ny = cfg.grid.nx, cfg.grid.ny
    if ranks < 1:
        raise ConfigError(f"--ranks {ranks}: needs at least 1 rank")
    if ranks > min(MAX_RANKS, nx * ny):
        raise ConfigError(f"{ranks} ranks: more than the {min(MAX_RANKS, nx * ny)} this grid (or any machine) "
                          "can use; use fewer ranks")
    dims = process_dims(cfg, ranks)
    chosen = chosen or plan(cfg, dims, ranks)
    check_halo(cfg, dims, chosen.halo)
    bx, by = (n + 2 * chosen.halo for n in largest_block(cfg, dims))
    model = cfg.model_impl
    stored = 2 * len(model.fields) + len(model.coefficient_names)
    return Footprint(dims, (bx, by), stored * bx * by * 8, chosen)


def check_fits(cfg: Config, ranks: int, warn=None) -> None:
    """Refuse (or warn, for --dry-run) a run whose per-rank fields cannot fit in the memory it may use:
    the two buffers plus the initial condition's temporaries, about twice the buffers."""
    machine.check_memory(2 * footprint(cfg, ranks).field_bytes, local_launcher_size(), warn)


def output_size(cfg: Config) -> tuple[int, str]:
    """The bytes of the output's data (before any compression) and what they are, for --dry-run: the snapshots
    of the stored nodes (output.window, output.subsample) in the stored precision, the coefficient fields once,
    and the probe and series records (float64)."""
    every, nsteps, model = cfg.output.every, cfg.nsteps, cfg.model_impl
    snapshots = 1 + (nsteps // every + (nsteps % every > 0) if every else 1)
    fields, static = len(model.fields), len(model.coefficient_names)
    nx, ny = len(sampling.selection(cfg, "x")), len(sampling.selection(cfg, "y"))
    itemsize = 4 if cfg.output.precision == "float32" else 8
    probes = len(cfg.output.probes)
    probe_records = sampling.records_until(cfg.output.probe_every if probes else 0, nsteps, nsteps)
    series_records = sampling.records_until(cfg.output.series_every, nsteps, nsteps)
    records = 8 * (probe_records * (probes * fields + 1) + series_records * (4 * fields + 1))
    total = (snapshots * fields + static) * nx * ny * itemsize + records
    kept = "" if (nx, ny) == (cfg.grid.nx, cfg.grid.ny) else f" (of {cfg.grid.nx} x {cfg.grid.ny})"
    text = (f"{snapshots} snapshots of {fields} field(s) of {nx} x {ny}{kept} {cfg.output.precision}"
            + (f", {static} coefficient field(s) once" if static else "")
            + (f", {probe_records} records of {probes} probe(s)" if probe_records else "")
            + (f", {series_records} series records" if series_records else "")
            + ("; before gzip, which makes it smaller by a factor that depends on the field"
               if cfg.output.compression != "none" else ""))
    return total, text
