"""Ensemble members: ``python solver/ensemble.py [--config C] [--force] MEMBER...``.

Member k runs the base problem of the config with the keys of ``ensemble.perturb`` drawn from their
distributions. The draws depend only on the seed, k and the key's name (``SeedSequence([seed, k])`` with a
spawn key per perturbed key), so any order, concurrency or rerun gives the same bits, and adding a key
leaves the other keys' draws alone. Each member writes ``member-NNNN.h5`` in ``ensemble.output_dir``
atomically (``.partial``, then renamed) with its drawn parameters as ``param.KEY`` attributes; a member
whose complete file exists is skipped, so rerunning a whole pipe resumes it.

Start-up cost matters when each member is its own process (``jot 1000 | parallel python solver/ensemble.py``):
this path imports neither mpi4py nor anything heavy before it is needed, pins numba to the member's
threads before numba starts, and relies on numba's on-disk kernel cache.
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:
    # Run as a file, sys.path[0] is solver/ (whose modules and folders would shadow top-level ones);
    # make it the repository root so ``solver`` is the package next to this file.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    from solver.safety import quiet_start
    quiet_start()       # Ctrl-C or SIGTERM while importing: one line (solver/safety.py)

import argparse
import time
import zlib
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from solver import safety
from solver.args import Parser, UsageError, parse_member, parse_range
from solver.core.config import Config, load, with_values
from solver.core.perturbations import DISTRIBUTIONS, components, perturbed_width
from solver.errors import EXIT_FAILED, EXIT_USAGE, ConfigError, OutputBusy, UserError
from solver.machine import check_environment, cpus_per_task
from solver.run import run
from solver.run.planning import check_fits
from solver.storage import files
from solver.storage.checkpoint import check_stop_file, path_for, result_hash
from solver.storage.lock import OutputLock

DEFAULT_CONFIG = "configs/ensemble.yaml"
@dataclass(frozen=True)
class Outcome:
    """What happened to one member: status is done, skipped or failed."""
    member: int
    status: str
    message: str
    seconds: float = 0.0


# --- members and their parameters -------------------------------------------------------------
def check_member(cfg: Config, member: int) -> None:
    members = cfg.ensemble.members
    if members and member > members:
        raise UsageError(f"member {member} is beyond ensemble.members = {members} in {cfg.source}; "
                         f"use 1..{members} or raise ensemble.members")


MAX_RANGE = 10 ** 6     # members in one range A-B: a list of them is built before any runs


def check_range(cfg: Config, first: int, last: int, text: str) -> None:
    """Refuse a range A-B beyond ensemble.members or too long to list, before it is listed."""
    check_member(cfg, last)
    if last - first + 1 > MAX_RANGE:
        raise UsageError(f"member range {text!r} holds {last - first + 1} members, more than {MAX_RANGE} "
                         "at once; split it into smaller ranges or set ensemble.members")


def parse_members(items: list[str], cfg: Config) -> list[int]:
    """Member numbers and ranges ``A-B``, each once, in the order given; none means 1..ensemble.members."""
    members = cfg.ensemble.members
    if not items:
        if not members:
            raise UsageError("no members given and ensemble.members is 0; "
                             "name members (1 2 5-10) or set ensemble.members")
        return list(range(1, members + 1))
    out = []
    for item in items:
        bounds = parse_range(item)
        if bounds is None:
            out.append(parse_member(item))
            continue
        check_range(cfg, *bounds, item)
        out.extend(range(bounds[0], bounds[1] + 1))
    return list(dict.fromkeys(out))


def check_setup(cfg: Config) -> None:
    """Refuse, once and up front, what would fail every member the same way: the environment, an
    output_dir that cannot hold the members, a shared checkpoint.path, a key the distribution cannot draw."""
    check_environment()
    check_stop_file()
    src = cfg.source
    if cfg.checkpoint.path:
        raise ConfigError(f"{src}: checkpoint.path = {cfg.checkpoint.path!r} would be shared by every member; "
                          "leave it empty (member-NNNN.h5 checkpoints to member-NNNN.ckpt.h5)")
    directory = cfg.ensemble.output_dir
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise ConfigError(f"{src}: ensemble.output_dir = {directory} is a file, not a directory; "
                          "remove it or choose another directory")
    existing = directory
    while not os.path.lexists(existing):        # the members create the rest
        existing = os.path.dirname(os.path.abspath(existing))
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{src}: ensemble.output_dir = {directory} cannot be created or written ({existing} "
                          "is not a writable directory); choose another directory")
    for key, spec in cfg.ensemble.perturb.items():
        section, name = key.split(".")
        base = getattr(getattr(cfg, section), name)
        if spec["dist"] != "choice" and isinstance(base, int) and not isinstance(base, bool):
            raise ConfigError(f"{src}: ensemble.perturb.{key}: {key} is a whole number, which {spec['dist']} "
                              "does not draw; use dist: choice with a list of values")


def draw(cfg: Config, member: int) -> dict[str, Any]:
    """The perturbed values of one member: {dotted key: value}, a list for a pair such as initial.center."""
    values = {}
    for key, spec in cfg.ensemble.perturb.items():
        # One stream per key, keyed by the key's name: reordering or adding keys changes no other draw.
        seeds = np.random.SeedSequence([cfg.ensemble.seed, member], spawn_key=(zlib.crc32(key.encode()),))
        rng = np.random.default_rng(seeds)
        width = perturbed_width(cfg, key)
        if spec["dist"] == "choice":
            choices = spec["values"]
            values[key] = choices[int(rng.integers(len(choices)))]
            continue
        args = [components(spec[name], width) for name in DISTRIBUTIONS[spec["dist"]]]
        sample = getattr(rng, spec["dist"])(*args)
        values[key] = float(sample[0]) if width == 1 else [float(v) for v in sample]
    return values


def member_config(cfg: Config, member: int) -> tuple[Config, dict[str, Any]]:
    """The config of one member and its drawn values; a ConfigError names the member and its draws."""
    values = draw(cfg, member)
    try:
        return with_values(cfg, values), values
    except ConfigError as err:
        drawn = ", ".join(f"{k} = {_short(v)}" for k, v in values.items())
        raise ConfigError(f"member {member} (drawn {drawn}): {err}") from None


MEMBER_HASH = "ensemble_member_hash"     # attribute: what decided the member's result (member_hash)


def member_hash(member_cfg: Config) -> str:
    """The identity of a member's result: the settings that decide it (its drawn values included) and the
    model's source, as a checkpoint's (solver.storage.checkpoint.result_hash). A member file counts as complete only
    for the config that gives the same hash: another seed, other perturbations, another base problem or an
    edited model file make it another member."""
    return result_hash(member_cfg)


def recorded_hash(path: str) -> str | None:
    """The MEMBER_HASH a member file records, or None (none recorded, or unreadable)."""
    import h5py
    from solver.storage.output import attribute
    try:
        with h5py.File(path, "r") as f:
            value = attribute(f.attrs.get(MEMBER_HASH))
    except Exception:
        return None
    return value if isinstance(value, str) and value else None


def check_same_member(path: str, member: int, identity: str) -> None:
    """Refuse (one ConfigError line) a complete member file that another config or model source produced."""
    recorded = recorded_hash(path)
    if recorded != identity:
        why = "records no config hash" if recorded is None else "was computed for another config"
        raise ConfigError(f"member {member}: {path} {why} (the seed, the perturbations, the base problem or "
                          "the model's source differ from this config's); rerun it with --force, or set "
                          "ensemble.output_dir to another directory")


def member_path(cfg: Config, member: int) -> str:
    return os.path.join(cfg.ensemble.output_dir, f"member-{member:04d}.h5")


def member_threads(cfg: Config) -> Config:
    """Pin parallel.threads: auto means SLURM_CPUS_PER_TASK under SLURM, else one thread per member
    (members run side by side; threading one small member only adds start-up)."""
    threads = cfg.parallel.threads
    if threads == "auto":
        threads = cpus_per_task() or 1
        cfg = replace(cfg, parallel=replace(cfg.parallel, threads=threads))
    if "numba" not in sys.modules:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)   # numba starts only the threads we use
    return cfg


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


# --- running ----------------------------------------------------------------------------------
def run_member(cfg: Config, member: int, force: bool = False, say: Callable | None = None,
               config_path: str = "") -> Outcome:
    """Run (or skip) one member; a failure of this member is returned, not raised."""
    start = time.perf_counter()
    path = member_path(cfg, member)
    lock = None
    try:
        skipped = Outcome(member, "skipped", f"member {member}: skipped, {path} is complete (--force reruns it)")
        member_cfg, values = member_config(cfg, member)
        identity = member_hash(member_cfg)
        if not force and files.kind(path) == files.OUTPUT:
            check_same_member(path, member, identity)
            return skipped
        member_cfg = member_threads(member_cfg)
        check_fits(member_cfg, 1)
        os.makedirs(cfg.ensemble.output_dir, exist_ok=True)
        # Only the member's own files are replaced, and one process at a time computes a member
        files.check_run_paths(path, path_for(member_cfg, path), config_path or cfg.source, overwrite=True)
        lock = OutputLock(path)
        try:
            lock.acquire()
        except OutputBusy as err:
            lock = None
            return Outcome(member, "skipped", f"member {member}: skipped, {err.holder} is computing it")
        if not force and files.kind(path) == files.OUTPUT:      # finished while we waited for the lock
            check_same_member(path, member, identity)
            return skipped
        attrs = {"ensemble_member": member, "ensemble_seed": cfg.ensemble.seed, MEMBER_HASH: identity,
                 "ensemble_config": config_path or cfg.source,
                 "ensemble_parameters": ",".join(values)}
        attrs.update({f"param.{key}": value for key, value in values.items()})
        summary = run(member_cfg, path, say=say or _quiet, attrs=attrs)
    except UserError as err:
        message = str(err) if str(err).startswith("member") else f"member {member}: {err}"
        return Outcome(member, "failed", f"error: {message}", time.perf_counter() - start)
    except Exception as err:     # RunError, OSError ...: this member fails, the others go on
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return Outcome(member, "failed", f"error: member {member}: {first}", time.perf_counter() - start)
    finally:
        if lock is not None:
            lock.release()
    seconds = time.perf_counter() - start
    drawn = ", ".join(f"{k} = {_short(v)}" for k, v in values.items())
    return Outcome(member, "done", f"member {member}: done in {seconds:.2f} s "
                   f"({summary['steps']} steps; {drawn}) -> {path}", seconds)


def _quiet(message: str, error: bool = False) -> None:
    if error:       # warnings still reach the user
        print(message, file=sys.stderr, flush=True)


def _loud(message: str, error: bool = False) -> None:
    print(message, file=sys.stderr if error else sys.stdout, flush=True)


def report(outcome: Outcome) -> None:
    print(outcome.message, file=sys.stderr if outcome.status == "failed" else sys.stdout, flush=True)


# --- command line -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python solver/ensemble.py",
                    description="Run ensemble members, one after another: member k perturbs the config's "
                    "base problem with draws that depend only on ensemble.seed and k, and writes "
                    "ensemble.output_dir/member-NNNN.h5. A member whose complete file exists is skipped. "
                    "In parallel: jot 1000 | parallel python solver/ensemble.py (or jobs/ensemble.sh).",
                    epilog="Exit status: 0 all done or skipped, 1 a member failed (the others still run), "
                    "2 bad arguments or config.")
    parser.add_argument("members", nargs="*", metavar="MEMBER", help="member numbers, 1 up")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"ensemble config (default {DEFAULT_CONFIG})")
    parser.add_argument("--force", action="store_true", help="recompute members whose output exists")
    parser.add_argument("-v", "--verbose", action="store_true", help="show each member's progress lines")
    parser.add_argument("--print-settings", action="store_true",
                        help="print ensemble.output_dir, ensemble.members and the threads per member, then exit "
                        "(for the job scripts)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load(args.config)
        if args.print_settings:
            check_setup(cfg)
            print(cfg.ensemble.output_dir, cfg.ensemble.members, member_threads(cfg).parallel.threads)
            return 0
        if not args.members:
            raise UsageError("no member numbers given; e.g. python solver/ensemble.py 1 2 3, "
                             "or jot 1000 | parallel python solver/ensemble.py")
        members = [parse_member(text) for text in args.members]
        for member in members:
            check_member(cfg, member)
        check_setup(cfg)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    safety.started()
    failed, done = 0, 0
    try:
        for member in members:
            outcome = run_member(cfg, member, args.force, _loud if args.verbose else None, args.config)
            report(outcome)
            failed += outcome.status == "failed"
            done += 1
    except KeyboardInterrupt:           # the member's own files are cleaned up by its run
        print(f"interrupted by SIGINT after {done} of {len(members)} member(s); run the same command again "
              "to resume", file=sys.stderr, flush=True)
        return 130
    return EXIT_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
