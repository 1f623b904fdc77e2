"""``numerics.kernel: auto`` decided by measurement, and the measurement kept ("wisdom", as FFTW keeps it).

The first run of a kind of problem on a kind of machine, the key (machine, threads, ranks on the node, model
and kernel sources, size class of a rank's block), times the candidate kernels, and under MPI (or periodic
sides) each with the halo widths worth trying (solver/run/planning.py's halo_candidates), for a fraction of a
second: whole steps as the run takes them (solver/run/stepper.py: exchanges, boundary fills, forcing) on
scratch buffers of the run's decomposition. The fastest is recorded in ``wisdom.json`` beside the generated
kernels (solver/core/kernels.py's kernel_dir). Later runs, ensemble members and every rank of a job reuse it:
rank 0 reads the file and decides, all ranks follow. Every candidate gives the same bits, and the run's own
fields are never touched, so the measurement cannot change a result, only the speed.

A heuristic (solver/run/planning.py) remains where nothing is measured: blocks too small for the choice to
matter (SMALL_NODES), a single candidate, or a kernel directory where the wisdom cannot be written (a
measurement every run would cost more than it saves). The file is replaced whole (a temporary file renamed
over it), so concurrent ensemble members never see half of it; a damaged or unreadable file counts as empty
and is measured again. A measurement during which other processes took the cores (the threads got less
than BUSY_SHARE of them) decides that run only: it is not recorded, the next run measures again.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from .. import machine
from ..comm import maximum
from ..core import kernels, tiling
from ..core.config import Config
from ..core.grid import init_global_grid, largest_block
from ..errors import EnvironmentSettingError
from .planning import Plan, can_tile, halo_candidates, plan
from .stepper import Stepper, Timer

WISDOM_FILE = "wisdom.json"
SMALL_NODES = 1 << 16        # a rank's block under this many nodes: the plain kernel, nothing measured
SAMPLE_SECONDS = 0.04        # least time of one timed sample; ROUNDS interleaved rounds of every candidate
ROUNDS = 3
CANDIDATES = ("numba", "rows", "tiled")
BUSY_SHARE = 0.7             # a measurement whose threads got less CPU than this share is used, not recorded
BUSY_VARIABLE = "SOLVER_WISDOM_BUSY_SHARE"     # another share (0: record whatever the load; tests)


@dataclass(frozen=True)
class Decision:
    """A run's plan and how its kernel was chosen: ``how`` is configured, measured (now), wisdom (an earlier
    measurement) or heuristic; ``record`` the measurement (MLUPS per candidate, when, key), if any."""
    plan: Plan
    how: str
    record: dict | None = None

    def attributes(self) -> dict:
        """The output's provenance attributes of the decision."""
        out = {"kernel_decision": self.how}
        if self.record:
            out["kernel_measurement"] = json.dumps(self.record, sort_keys=True)
        return out


def path() -> str:
    return os.path.join(kernels.kernel_dir(), WISDOM_FILE)


def candidates(cfg: Config, dims: tuple[int, int]) -> tuple[str, ...]:
    return tuple(name for name in CANDIDATES if name != "tiled" or can_tile(cfg, dims))


def ways(cfg: Config, dims: tuple[int, int]) -> dict[str, tuple[str, int | None]]:
    """What is timed: {label: (kernel, halo)}. The label is the kernel's name where only kernels are compared
    (the halo is then not the measurement's to choose: None), else ``kernel/halo N``."""
    halos = {name: halo_candidates(cfg, dims, name) for name in candidates(cfg, dims)}
    if all(len(widths) == 1 for widths in halos.values()):
        return {name: (name, None) for name in halos}
    return {f"{name}/halo {h}": (name, h) for name, widths in halos.items() for h in widths}


def block_shape(cfg: Config, dims: tuple[int, int]) -> tuple[int, int]:
    """(y, x) nodes of the largest rank's block with a halo of one node: what the candidates are timed on."""
    bx, by = largest_block(cfg, dims)
    return by + 2, bx + 2


def key(cfg: Config, dims: tuple[int, int], threads: int, local_ranks: int) -> str:
    """What a measurement holds for: the kind of machine, threads per rank and ranks on the node, the kernels'
    and the model's sources (the generated module's name hashes both), the candidates, and the size class of a
    rank's block (a power of two of its nodes: 1024 x 512 is 2^19, 4096 x 4096 2^24)."""
    by, bx = block_shape(cfg, dims)
    name, _ = kernels.generated(cfg.model_impl)
    size_class = round(math.log2(bx * by))
    return (f"{machine.cpu_model()} ({machine.cpu_count()} cpus) | {threads} thread(s) x {local_ranks} rank(s) "
            f"on the node | {name} | {', '.join(ways(cfg, dims))} | 2^{size_class} nodes per rank")


def read(file: str) -> dict:
    """The wisdom in ``file``: {key: record}; empty when absent, unreadable or damaged (measured again)."""
    try:
        with open(file, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: r for k, r in data.items() if isinstance(r, dict) and r.get("kernel") in CANDIDATES
            and (r.get("halo") is None or type(r["halo"]) is int and r["halo"] >= 1)}


def writable(directory: str, create: bool = True) -> bool:
    """Whether a wisdom file can be written into ``directory`` (created if absent; with ``create`` False, as
    for --dry-run, the nearest existing folder above it is asked instead)."""
    if create:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError:
            return False
    while not os.path.exists(directory) and os.path.dirname(directory) != directory:
        directory = os.path.dirname(directory)
    return os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)


def record(file: str, entry_key: str, entry: dict) -> bool:
    """Add ``entry`` under ``entry_key`` to ``file`` (read again just before, so that concurrent runs'
    entries survive), written aside and renamed over it; False if it cannot be written."""
    import tempfile
    directory = os.path.dirname(file)
    try:
        os.makedirs(directory, exist_ok=True)
        data = read(file)
        data[entry_key] = entry
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".wisdom-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=1, sort_keys=True)
                stream.write("\n")
            os.replace(tmp, file)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        return False
    return True


def measure(cfg: Config, dims: tuple[int, int], timed: dict[str, tuple[str, int | None]], comm
            ) -> tuple[dict[str, float], float]:
    """MLUPS of each way in ``timed`` ({label: (kernel, halo)}): whole steps through the run's stepper (its
    exchanges and boundary fills at that halo width, the forcing of each step) on scratch buffers of this
    rank's block, every rank at once under MPI (so that they share the node as in the run; the slowest
    rank's time counts); the best of ROUNDS interleaved samples of at least SAMPLE_SECONDS (whole halo
    cycles and tiled chunks). Also the CPU seconds per wall second of the timed rounds (the least rank's):
    well below the threads, other processes took the cores. Collective."""
    model = cfg.model_impl
    fields = len(model.fields)
    depth = tiling.depth_for(fields)
    setups, shared = {}, {}             # shared: {halo: (decomposition, coefficient fields)}
    for label, (name, halo) in timed.items():
        kernels.warm_up(model, name)                        # compile or load, without running
        halo = halo or halo_candidates(cfg, dims, name)[0]          # the one width the run would use
        decomp, coefficient_fields = shared.get(halo) or (init_global_grid(cfg, comm, halo), None)
        stepper = Stepper(cfg, decomp, Timer(), name, coefficient_fields)
        shared[halo] = decomp, stepper.coefficient_fields
        # a call: the tiled kernel a whole chunk, the plain ones a quarter of that (their rate is per step),
        # and whole halo cycles
        steps = max(halo, depth if name == "tiled" else max(2, depth // 4))
        setups[label] = decomp, stepper, steps
    shapes = [(fields, *decomp.local_shape) for decomp, _, _ in setups.values()]
    # one allocation, the largest pair, filled once: every candidate's buffers are cut from it and step what
    # the others left (values change no kernel's speed, as long as they stay finite)
    pool = 0.25 + 0.5 * np.random.default_rng(0).random(max(kernels.pair_size(shape) for shape in shapes))

    def sample(label: str, calls: int) -> float:
        decomp, stepper, steps = setups[label]
        u, v = kernels.buffer_pair((fields, *decomp.local_shape), pool)
        comm.Barrier()
        t = time.perf_counter()
        for _ in range(calls):
            u, v = stepper.advance(u, v, 0, steps)
        return maximum(comm, time.perf_counter() - t)
    try:
        first = {label: sample(label, 1) for label in timed}   # also the calibration (a little slow: first call)
        calls = {label: max(1, math.ceil(SAMPLE_SECONDS / max(first[label], 1e-9))) for label in timed}
        best = dict(first)
        wall, cpu = time.perf_counter(), time.process_time()
        # big blocks (a call of more than 0.1 s): two rounds besides the first call, so the measurement stays
        # a few per cent of a run that size, once
        for _ in range(ROUNDS if max(first.values()) < 0.1 else ROUNDS - 1):
            for label in timed:
                best[label] = min(best[label], sample(label, calls[label]) / calls[label])
        share = (time.process_time() - cpu) / max(time.perf_counter() - wall, 1e-9)
    finally:
        for _, stepper, _ in setups.values():
            stepper.close()
    share = -maximum(comm, -share)
    nodes = largest_block(cfg, dims)
    nodes = nodes[0] * nodes[1]
    return {label: round(nodes * setups[label][2] / best[label] / 1e6, 1) for label in timed}, round(share, 2)


def decide(cfg: Config, dims: tuple[int, int], local_ranks: int, threads: int, comm, measuring: bool = True,
           say=None) -> Decision:
    """The run's plan, its kernel measured or taken from the wisdom when ``numerics.kernel`` is auto.
    Collective under MPI: rank 0 reads (and writes) the wisdom and its decision is broadcast. ``measuring``
    False (--dry-run) only reads: without wisdom it says what the first run would do."""
    heuristic = plan(cfg, dims, local_ranks)
    if cfg.numerics.kernel != "auto":
        return Decision(heuristic, "configured")
    names = candidates(cfg, dims)
    timed = ways(cfg, dims)
    by, bx = block_shape(cfg, dims)
    if len(timed) < 2:
        return Decision(heuristic, "heuristic")
    if bx * by < SMALL_NODES:
        why = f"a block of {bx * by} nodes, under {SMALL_NODES}: too small to measure"
        return Decision(plan(cfg, dims, local_ranks, ("numba", why)), "heuristic")
    file, entry_key = path(), key(cfg, dims, threads, local_ranks)
    found = None
    if comm.Get_rank() == 0:
        entry = read(file).get(entry_key)
        found = ("wisdom", entry) if entry else ("measure", None) if writable(os.path.dirname(file), measuring) else \
            ("heuristic", None)
    how, entry = comm.bcast(found, root=0)
    if how == "wisdom":
        return Decision(plan(cfg, dims, local_ranks, (entry["kernel"], _why(entry, "measured " + entry["when"])),
                             entry.get("halo")), "wisdom", entry)
    what = _and(names) + ("" if len(timed) == len(names) else " (each with the halo widths worth trying)")
    if how == "heuristic" or not measuring:
        reason = (f"heuristic: {file} cannot be written" if how == "heuristic"
                  else "heuristic now; the first run measures " + what)
        chosen = heuristic
        return Decision(Plan(chosen.kernel, chosen.halo, f"{chosen.reason}; {reason}"), "heuristic")
    if say:
        say(f"measuring the {what} kernels on {bx} x {by} nodes per rank (once: recorded in {file})")
    started = time.perf_counter()
    mlups, share = measure(cfg, dims, timed, comm)
    winner = max(timed, key=lambda label: mlups[label])
    kernel, halo = timed[winner]
    entry = {"kernel": kernel, "mlups": mlups, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "key": entry_key, "cpu_per_wall": share, "threads": threads,
             "seconds": round(time.perf_counter() - started, 2)}
    if halo is not None:
        entry["halo"] = halo
    busy = share < busy_share() * threads
    written = not busy and comm.bcast(record(file, entry_key, entry) if comm.Get_rank() == 0 else None, root=0)
    note = "measured now" + ("" if written else
                             f"; not recorded: the cores were busy ({share} CPU seconds per second for {threads} "
                             "thread(s))" if busy else f"; not recorded: {file} cannot be written")
    return Decision(plan(cfg, dims, local_ranks, (kernel, _why(entry, note)), halo), "measured", entry)


def _and(names) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def busy_share() -> float:
    """BUSY_SHARE, or the share SOLVER_WISDOM_BUSY_SHARE gives (a number; anything else is refused)."""
    text = os.environ.get(BUSY_VARIABLE)
    if text is None:
        return BUSY_SHARE
    try:
        return float(text)
    except ValueError:
        raise EnvironmentSettingError(f"environment: {BUSY_VARIABLE}={text!r} is not a number; set it to a "
                                      f"share such as {BUSY_SHARE} (0 records every measurement) or unset it") from None


def _why(entry: dict, note: str) -> str:
    rates = ", ".join(f"{name} {rate:.0f}" for name, rate in sorted(entry["mlups"].items()))
    return f"fastest of {rates} MLUPS, {note}"
