"""Command line: ``python -m solver run|validate|info ...``.

Mistakes in the config, the arguments or the environment end in one line on stderr naming the problem and
the fix, exit code 2 and no file written. Under MPI a failure on any rank prints that rank's error and
aborts the whole job (``comm.Abort``), so no rank is left waiting in a collective.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback

from . import config as config_module
from .config import ConfigError

EXIT_USAGE = 2
MPI_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (and exit code 2) instead of a usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def launched_by_mpi() -> bool:
    """True under mpirun/mpiexec/srun with an MPI plugin; a plain process never imports mpi4py."""
    return any(os.environ.get(v) for v in MPI_LAUNCHER_VARIABLES)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m solver", description="2D diffusion solver: numba threads, MPI "
                    "domain decomposition, parallel HDF5 output.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")

    def config_args(p):
        p.add_argument("config", help="YAML config file (see configs/)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one config key, value parsed as YAML (repeatable), e.g. time.t_end=0.5")

    p = sub.add_parser("run", help="run a simulation", description="Run the simulation a config describes. "
                       "Under mpirun/srun the grid is decomposed over the ranks.")
    config_args(p)
    p.add_argument("-o", "--output", help="output HDF5 file (default: output.path of the config)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config, stability, memory and output size; run nothing")
    p.add_argument("--ranks", type=int, default=None,
                   help="with --dry-run: predict for this many MPI ranks (default: the ranks launched, or 1)")
    p.add_argument("--restart", choices=("never", "auto", "require"), default="never",
                   help="resume from the checkpoint (checkpoint.path, default OUTPUT.ckpt.h5): auto = if one "
                   "exists (job scripts use this), require = fail without one; default never")
    p.add_argument("--max-steps", type=int, default=0, metavar="N",
                   help="stop after N steps with a checkpoint and exit status 3, as on SIGUSR1/SIGTERM; "
                   "resume with --restart auto")

    p = sub.add_parser("validate", help="check a config and print it resolved",
                       description="Check a config (and overrides); print the resolved YAML or one error line.")
    config_args(p)

    p = sub.add_parser("info", help="print the provenance of an output file",
                       description="Print what produced an output file: config, versions, git, SLURM, timings.")
    p.add_argument("file", help="an HDF5 file written by the solver")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "validate":
            cfg = config_module.load(args.config, args.overrides)
            print(cfg.to_yaml(), end="")
            print(f"# {args.config}: valid; {cfg.nsteps} steps, stability number {cfg.stability:.3f} (<= 0.5)")
            return 0
        if args.command == "info":
            from .info import describe
            print(describe(args.file))
            return 0
        return command_run(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE


def command_run(args) -> int:
    cfg = config_module.load(args.config, args.overrides)
    path = args.output or cfg.output.path
    if args.dry_run:
        print(dry_run(cfg, path, args.ranks))
        return 0
    check_output(path, args.overwrite)
    if args.max_steps < 0:
        raise ConfigError(f"--max-steps {args.max_steps}: must be a positive step count (0: no limit)")
    options = {"restart": args.restart, "max_steps": args.max_steps}
    if not launched_by_mpi():
        return run_guarded(cfg, path, comm=None, **options)
    from mpi4py import MPI
    return run_guarded(cfg, path, comm=MPI.COMM_WORLD, **options)


def check_output(path: str, overwrite: bool) -> None:
    """Refuse an existing output (unless overwrite) and an unwritable directory, before any work."""
    if os.path.isdir(path):
        raise ConfigError(f"output {path} is a directory; name a file such as {os.path.join(path, 'run.h5')}")
    if os.path.exists(path) and not overwrite:
        raise ConfigError(f"output {path} exists; pass --overwrite to replace it or choose another with -o")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the output directory {directory}: {err.strerror}; "
                          "choose a writable place with -o") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"output directory {directory} is not writable; choose another with -o")


def run_guarded(cfg, path: str, comm, **options) -> int:
    """Run, turning failures into one line and an exit code; under MPI a failing rank aborts all."""
    from .checkpoint import EXIT_REQUEUE, Stopped
    from .run import RunError, run
    rank = 0 if comm is None else comm.Get_rank()
    prefix = "" if comm is None or comm.Get_size() == 1 else f"rank {rank}: "
    try:
        summary = run(cfg, path, comm, **options)
    except Stopped as stop:             # collective: every rank stops at the same step
        if rank == 0:
            print(f"{stop}; run again with --restart auto to resume (exit status {EXIT_REQUEUE})",
                  file=sys.stderr, flush=True)
        return EXIT_REQUEUE
    except ConfigError as err:          # deterministic: every rank finds the same problem
        if rank == 0:
            print(f"error: {err}", file=sys.stderr, flush=True)
        return _fail(comm, EXIT_USAGE, collective=True)
    except KeyboardInterrupt:
        print(f"{prefix}interrupted", file=sys.stderr, flush=True)
        return _fail(comm, 130)
    except Exception as err:
        known = isinstance(err, (RunError, OSError))
        if not known:
            traceback.print_exc()
        print(f"{prefix}error: {err}", file=sys.stderr, flush=True)
        return _fail(comm, 1)
    if rank == 0:
        print(format_summary(summary, path))
    return 0


def _fail(comm, code: int, collective: bool = False) -> int:
    if comm is not None and comm.Get_size() > 1 and not collective:
        comm.Abort(code)
    return code


def format_summary(s: dict, path: str) -> str:
    return (f"done: {s['grid']} nodes, {s['steps']} steps on {s['ranks']} rank(s) x {s['threads_per_rank']} "
            f"thread(s) in {s['wall_seconds']:.2f} s (loop {s['loop_seconds']:.2f} s: compute "
            f"{s['compute_seconds']:.2f}, halo {s['halo_seconds']:.2f}, io {s['io_seconds']:.2f})\n"
            f"      {s['mlups']:.0f} MLUPS, max error vs analytic {s['max_error']:.3g} "
            f"({s['relative_error']:.2e} of the peak), peak memory {s['peak_memory_mib_per_rank']:.0f} MiB/rank\n"
            f"      wrote {path} ({s['snapshots']} snapshots)")


def dry_run(cfg, path: str, ranks: int | None) -> str:
    """What a run would do and need, without running it."""
    from .grid import process_grid, split
    if ranks is None:
        ranks = int(os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ.get("PMI_SIZE") or 1)
    if ranks < 1:
        raise ConfigError(f"--ranks {ranks}: needs at least 1 rank")
    px, py = process_grid(ranks, cfg.grid.nx, cfg.grid.ny) if cfg.parallel.ranks == "auto" else cfg.parallel.ranks
    if px * py != ranks:
        raise ConfigError(f"{cfg.source}: parallel.ranks = [{px}, {py}] needs {px * py} ranks, not {ranks}")
    h = cfg.parallel.halo
    bx = split(cfg.grid.nx, px, 0)[1] + 2 * h        # the largest block is the first
    by = split(cfg.grid.ny, py, 0)[1] + 2 * h
    every = cfg.output.every
    snapshots = 1 + (cfg.nsteps // every + (cfg.nsteps % every > 0) if every else 1)
    field_bytes = 2 * bx * by * 8                      # the two time levels, halo included
    output_bytes = snapshots * cfg.grid.nx * cfg.grid.ny * 8
    return "\n".join([
        cfg.to_yaml().rstrip(),
        f"# output           {path}",
        f"# grid spacing     dx = {cfg.dx:.6g}, dy = {cfg.dy:.6g}",
        f"# steps            {cfg.nsteps} of dt = {cfg.time.dt:g} to t_end = {cfg.time.t_end:g}",
        f"# stability        D dt (1/dx^2 + 1/dy^2) = {cfg.stability:.4f} (stable up to 0.5; "
        f"largest stable dt {cfg.max_stable_dt:.4g})",
        f"# decomposition    {ranks} rank(s) as {px} x {py}, largest block {bx - 2 * h} x {by - 2 * h} "
        f"+ halo {h}",
        f"# memory per rank  {_size(field_bytes)} for the two field buffers "
        f"(plus about 150 MiB for Python, numba and HDF5)",
        f"# output size      {_size(output_bytes)} ({snapshots} snapshots of {cfg.grid.nx} x {cfg.grid.ny} float64)",
    ])


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
