"""Command line: ``python -m solver run|validate|info|bench ...``.

Mistakes in the config, the arguments or the environment end in one line on stderr naming the problem and
the fix, exit code 2 and no file written. Under MPI a failure on one rank prints that rank's error and
aborts the whole job (``comm.abort``), so no rank is left waiting in a collective; a failure every rank finds
together (a bad config, a blown-up field, a stop) is said once, by rank 0, and every rank ends with its code
(``comm.end_together``). Either way that line is all the job prints: no notice of the MPI library's. A rank
whose launcher is gone (mpirun killed) ends too (``comm.watch_launcher``). A run holds a lock on its output,
so a second run pointed at the same file is refused; SIGTERM (what ``scancel`` and a batch
system's time limit send) ends a run like Ctrl-C: one line, and a serial run removes its ``.partial``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import traceback

from . import machine, safety
from .args import Parser
from .comm import (SERIAL, abort, end_together, first_refusal, launched_by_mpi, launcher_rank, launcher_size,
                   on_root, watch_launcher, world)
from .core import config as config_module
from .core import sampling, tiling
from .core.validation import without_effect
from .errors import EXIT_FAILED, EXIT_REQUEUE, EXIT_USAGE, ConfigError, OutputError, RunError, UserError
from .info import describe
from .run import run
from .run import wisdom
from .run.hooks import InjectedFailure
from .run.planning import check_fits, choose_threads, footprint, output_size
from .storage import output
from .storage.checkpoint import Stopped, check_owner, check_stop_file, path_for, record_stop
from .storage.files import check_run_paths
from .storage.lock import OutputLock
from .storage.output import partial_path


class Terminated(BaseException):
    """SIGTERM arrived (scancel, a time limit): unwinds the run like KeyboardInterrupt does for SIGINT."""


def build_parser(commands: dict | None = None) -> argparse.ArgumentParser:
    """The parser of ``run``, ``validate``, ``info`` and of the extra ``commands`` (name -> (help,
    description, add_arguments)): the benchmark's, which the package's entry point adds (solver/__main__.py)."""
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

    for name, (help_text, description, add_arguments) in (commands or {}).items():
        add_arguments(sub.add_parser(name, help=help_text, description=description))
    return parser


_kept: list = []   # an exception whose HDF5 objects must never be freed (see output.closed_cleanly)


def main(argv: list[str] | None = None, commands: dict | None = None) -> int:
    """The command line; ``commands``: extra subcommands, name -> (help, description, add_arguments, run)."""
    code = _main(argv, commands or {})
    if _kept:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _main(argv: list[str] | None, commands: dict) -> int:
    args = build_parser({name: entry[:3] for name, entry in commands.items()}).parse_args(argv)
    try:
        if args.command == "validate":
            cfg = config_module.load(args.config, args.overrides)
            _warn(cfg, SERIAL)
            print(cfg.to_yaml(), end="")
            print(f"# {args.config}: valid; model {describe_model(cfg)}; {cfg.nsteps} steps, dt = "
                  f"{cfg.stability:.3f} of the largest stable dt")
            return 0
        if args.command in commands:
            safety.started()
            return commands[args.command][3](args)
        if args.command == "info":
            print(describe(args.file))
            return 0
        return command_run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE


def command_run(args) -> int:
    if launched_by_mpi():       # from the start: a rank may hang before MPI starts, reading a config, say
        watch_launcher(launcher_rank())
    machine.check_environment()       # first, and on every rank: MPI's and numba's start-up read these
    cfg, path, found = None, None, None
    try:
        check_stop_file()
        cfg = config_module.load(args.config, args.overrides)
        path = cfg.output.path if args.output is None else args.output
        if args.max_steps < 0 and not args.dry_run:
            raise ConfigError(f"--max-steps {args.max_steps}: must be a positive step count (0: no limit)")
    except UserError as err:
        if not launched_by_mpi():
            raise
        found = err                      # every rank loads the same files: rank 0 says it once (agree)
    if args.dry_run:
        return command_dry_run(cfg, path, args.ranks, found)
    options = {"restart": args.restart, "max_steps": args.max_steps}
    comm = world()
    try:
        agree(cfg, comm, {"output path": os.path.abspath(path) if path else None, "--restart": args.restart,
                          "--max-steps": args.max_steps, "--overwrite": args.overwrite}, found)
    except UserError as err:             # every rank found the same problem: rank 0 says it, once
        return end_together(comm, _refused(err, comm))
    _warn(cfg, comm)
    safety.started()            # from here a signal is the run's to handle (a checkpoint, a clean-up)
    previous = signal.signal(signal.SIGTERM, _terminate)
    lock = None
    try:
        lock = claim_output(path, args.overwrite, comm, resuming=args.restart != "never",
                            checkpoint=path_for(cfg, path), config=args.config, cfg=cfg)
        code = run_guarded(cfg, path, comm, **options)
    except UserError as err:             # claim_output: raised on every rank
        code = _refused(err, comm)
    except (KeyboardInterrupt, Terminated) as err:      # before the run began: nothing to clean up
        code = _interrupted(_signal_behind(err), path, "", comm)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if lock is not None:
            lock.release()
    return end_together(comm, code)


def command_dry_run(cfg, path: str | None, ranks: int | None, found: UserError | None = None) -> int:
    """Print what the run would do and need (:func:`dry_run`). Under a launcher (a job script's dry run) every
    rank predicts on its own and rank 0 prints the prediction, or the refusal, once (one allgather: a refusal
    that only some ranks met is named by the first such rank); otherwise it is the plain serial call."""
    launched = launched_by_mpi()
    text, problem = None, (None if found is None else str(found))
    if found is None:
        quiet = launched and launcher_rank() != 0         # the warnings, too, from rank 0 alone
        if not quiet:
            _warn(cfg, SERIAL)
        try:
            text = dry_run(cfg, path, ranks, quiet=quiet)
        except UserError as err:
            if not launched:
                raise
            problem = str(err)
    if not launched:
        print(text)
        return 0
    comm = world()
    problem = first_refusal(comm.allgather(problem))
    if problem is not None:
        return end_together(comm, _refused(ConfigError(problem), comm))
    if comm.Get_rank() == 0:
        print(text, flush=True)
    return 0


def _warn(cfg, comm) -> None:
    """Rank 0 names the settings given that change nothing (validation.without_effect), a line each."""
    if comm.Get_rank() == 0:
        for line in without_effect(cfg):
            print(f"warning: {line}", file=sys.stderr, flush=True)


def _refused(err: UserError, comm) -> int:
    """A problem every rank found: rank 0 says it."""
    if comm.Get_rank() == 0:
        print(f"error: {err}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def _terminate(signum, frame):
    raise Terminated(signum)


def claim_output(path: str, overwrite: bool, comm, checkpoint: str, resuming: bool = False,
                 config: str | None = None, cfg=None):
    """Check the output may be written and lock it for this run; rank 0 does it and tells the others.
    Every file the run may replace or delete must be missing or its own (storage/files.py check_run_paths; an
    existing checkpoint must be this config's, storage/checkpoint.py check_owner)."""

    def claim():
        check_output(path, overwrite, create=False)
        check_run_paths(path, checkpoint, config, overwrite)
        if cfg is not None and not resuming:    # resuming, the restart's own checks say more
            check_owner(checkpoint, cfg)
        check_output(path, overwrite)       # only now create the output's directory
        lock = OutputLock(path)
        lock.acquire()
        try:
            check_output(path, overwrite)   # again: a run that held the lock may just have finished
        except UserError:
            lock.release()
            raise
        if os.path.exists(partial_path(path)) and not resuming:
            print(f"note: replacing {partial_path(path)} left by an earlier run that did not finish",
                  file=sys.stderr, flush=True)
        return lock

    def claim_or_say():
        try:
            return claim()
        except OSError as err:              # whatever it is, the other ranks must hear of it
            raise ConfigError(str(err)) from None
    return on_root(comm, claim_or_say)


def check_output(path: str, overwrite: bool, create: bool = True) -> None:
    """Refuse an existing output (unless overwrite) and an unwritable directory, before any work."""
    if not path:
        raise ConfigError("the output name is empty; name a file such as -o results/run.h5")
    if os.path.isdir(path) or path.endswith(os.sep):
        raise ConfigError(f"output {path} is a directory; name a file such as {os.path.join(path, 'run.h5')}")
    if os.path.exists(path) and not overwrite:
        raise ConfigError(f"output {path} exists; pass --overwrite to replace it or choose another with -o")
    if not create:
        return
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the output directory {directory}: {err.strerror}; "
                          "choose a writable place with -o") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"output directory {directory} is not writable; choose another with -o")


def run_guarded(cfg, path: str, comm, **options) -> int:
    """Run, turning failures into one line and an exit code; under MPI a failing rank aborts all."""
    rank = comm.Get_rank()
    prefix = "" if comm.Get_size() == 1 else f"rank {rank}: "
    try:
        summary = run(cfg, path, comm, **options)
    except Stopped as stop:             # collective: every rank stops at the same step
        if rank == 0:
            record_stop(stop)
            print(f"{stop}; run again with --restart auto to resume (exit status {EXIT_REQUEUE})",
                  file=sys.stderr, flush=True)
        return EXIT_REQUEUE
    except (KeyboardInterrupt, Terminated) as err:
        return _interrupted(_signal_behind(err), path, prefix, comm)
    except UserError as err:            # deterministic: every rank finds the same problem
        return _refused(err, comm)
    except RunError as err:             # raised by every rank together (a blown-up field)
        if rank == 0:
            print(f"error: {err}", file=sys.stderr, flush=True)
        if not output.closed_cleanly():
            _kept.append(err)
        return EXIT_FAILED
    except Exception as err:
        signum = _signal_behind(err)
        if signum is not None:      # the signal landed inside numba's dispatcher, which wrapped it
            return _interrupted(signum, path, prefix, comm)
        known = isinstance(err, (OutputError, OSError, MemoryError, InjectedFailure))
        if not known:
            traceback.print_exc()
        if isinstance(err, MemoryError):
            err = f"out of memory ({err}); use more ranks or fewer nodes (--dry-run shows the memory per rank)"
        print(f"{prefix}error: {err}", file=sys.stderr, flush=True)
        if not output.closed_cleanly():
            _kept.append(err)     # its frames hold HDF5 objects that crash when freed; main() leaves at once
        return _fail(comm, EXIT_FAILED)
    if rank == 0:
        print(format_summary(summary, path))
    return 0


def _signal_behind(err: BaseException | None) -> int | None:
    """The signal number if err is, or was caused by, SIGINT (KeyboardInterrupt) or SIGTERM (Terminated)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return signal.SIGINT
        if isinstance(err, Terminated):
            return err.args[0]
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _interrupted(signum: int, path: str, prefix: str, comm) -> int:
    name = signal.Signals(signum).name
    outcome = "" if os.path.exists(path) else f": {path} was not written"
    print(f"{prefix}interrupted by {name}{outcome}", file=sys.stderr, flush=True)
    return _fail(comm, 128 + signum)


def _fail(comm, code: int) -> int:
    """End a run that failed on this rank: under MPI it aborts every rank (no other rank is waited for)."""
    if comm.Get_size() > 1:
        abort(comm, code)
    return code


def format_summary(s: dict, path: str) -> str:
    error = (f"max error vs exact {s['max_error']:.3g} ({s['relative_error']:.2e} of the peak), "
             if "max_error" in s else "")
    return (f"done: {s['grid']} nodes, {s['steps']} steps on {s['ranks']} rank(s) x {s['threads_per_rank']} "
            f"thread(s) in {s['wall_seconds']:.2f} s (loop {s['loop_seconds']:.2f} s: compute "
            f"{s['compute_seconds']:.2f}, halo {s['halo_seconds']:.2f}, io {s['io_seconds']:.2f}"
            + (f", probes and series {s['records_seconds']:.2f}" if s.get("records_seconds") else "") + ")\n"
            f"      {s['mlups']:.0f} MLUPS, {error}peak memory {s['peak_memory_mib_per_rank']:.0f} MiB/rank\n"
            f"      wrote {path} ({s['snapshots']} snapshots)")


def describe_model(cfg) -> str:
    """The model and the file the run imports: a model file in a config is code that runs."""
    model = cfg.model_impl
    return f"{model.name} from {model.file} (fields {', '.join(model.fields)})"


def agree(cfg, comm, run: dict | None = None, found: UserError | None = None) -> None:
    """Before anything is allocated or written: the run fits in memory on every rank, and every rank
    resolved the same config and model source and was given the same output and options (``run``: name ->
    value); a file edited while the job started, or an MPMD launch, would otherwise hang the ranks in
    mismatched collectives or mix two models in one output; the HDF5 in use can write what the output
    asks. ``found``: what this rank's config or arguments were refused with before MPI started (cfg is then
    None, or not to be used). Collective under MPI: every rank raises the same ConfigError."""
    problem = str(found) if found is not None else None
    if found is None:
        try:
            check_fits(cfg, comm.Get_size())
            output.check_storage(cfg, comm.Get_size() > 1)      # before claim_output makes any directory
        except UserError as err:
            problem = str(err)
    if comm.Get_size() == 1:
        if problem is not None:
            raise ConfigError(problem)
        return
    decisive = None
    if found is None:
        digest = hashlib.sha256(cfg.to_yaml().encode()).hexdigest()[:16]
        decisive = {"config": digest, "model source": cfg.model_impl.source_hash, **(run or {})}
    answers = comm.allgather((decisive, problem))
    refusal = first_refusal([problem if other is None else None for other, problem in answers])
    if refusal is not None:
        raise ConfigError(refusal)
    for rank, (other, _) in enumerate(answers):
        differs = [name for name in answers[0][0] if other.get(name) != answers[0][0][name]]
        if differs and differs[0] == "config":
            raise ConfigError(f"the ranks resolved different configs (rank {rank}'s differs from rank 0's: "
                              "the file changed while the job started, or ranks got other arguments); start "
                              "every rank with the same config and overrides")
        if differs and differs[0] == "model source":
            raise ConfigError(f"the ranks imported different sources of the model {cfg.model_impl.file} (rank "
                              f"{rank}'s differs from rank 0's: the file changed while the job started); "
                              "leave the model file alone while a job starts, and run it again")
        if differs:
            name = differs[0]
            raise ConfigError(f"the ranks were started with different arguments ({name} {other.get(name)!r} on "
                              f"rank {rank}, {answers[0][0][name]!r} on rank 0); start every rank with the "
                              "same command line")
    problem = next((p for _, p in answers if p), None)
    if problem:
        raise ConfigError(problem)


def dry_run(cfg, path: str, ranks: int | None, quiet: bool = False) -> str:
    """What a run would do and need, without running it; ``quiet``: no warning on stderr (rank 0 says them)."""
    if ranks is None:
        ranks = launcher_size() or 1
    need = footprint(cfg, ranks)         # checks the rank count first
    output.check_storage(cfg, ranks > 1)
    decision = wisdom.decide(cfg, need.dims, ranks, choose_threads(cfg, ranks), SERIAL, measuring=False)
    need = footprint(cfg, ranks, decision.plan)
    (px, py), (bx, by), field_bytes, chosen = need.dims, need.block, need.field_bytes, need.plan
    h = chosen.halo
    check_fits(cfg, ranks, warn=lambda message: quiet or print(message, file=sys.stderr, flush=True))
    fields = len(cfg.model_impl.fields)
    scratch = ""
    if chosen.kernel == "tiled":
        scratch = f", plus {_size(tiling.scratch_bytes_per_thread(fields, by))} of ring buffers per thread (tiled kernel)"
    static = len(cfg.model_impl.coefficient_names)
    output_bytes, output_text = output_size(cfg)
    buffers = "the two field buffers" + (f" and {static} coefficient field(s)" if static else "")
    return "\n".join([
        cfg.to_yaml().rstrip(),
        f"# model            {describe_model(cfg)}",
        f"# output           {path}",
        f"# grid spacing     dx = {cfg.dx:.6g}, dy = {cfg.dy:.6g}",
        f"# steps            {cfg.nsteps} of dt = {cfg.time.dt:g} to t_end = {cfg.time.t_end:g}",
        f"# stability        dt is {cfg.stability:.4f} of the largest stable dt, {cfg.max_stable_dt:.4g}",
        f"# decomposition    {ranks} rank(s) as {px} x {py}, largest block {bx - 2 * h} x {by - 2 * h} "
        f"+ halo {h}",
        f"# kernel and halo  {chosen.reason}" + (" (ranks taken to share one node)" if ranks > 1 else ""),
        f"# kernel decision  {decision.how}" + (f" ({wisdom.path()})" if decision.how != "configured" else ""),
        f"# memory per rank  {_size(field_bytes)} for {buffers}{scratch} "
        f"(and about 150 MiB for Python, numba and HDF5)",
        f"# output size      {_size(output_bytes)} ({output_text})",
        *(f"# {line}" for line in sampling.describe_probes(cfg)),
    ])


_size = machine.size_text
