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
    # Run as a file, sys.path[0] is solver/ (whose config.py, output.py ... would shadow top-level
    # modules); make it the repository root so ``solver`` is the package next to this file.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import re
import time
import zlib
from dataclasses import dataclass, replace
from typing import Any, Callable

from solver.config import Config, ConfigError, components, load, perturbed_width, with_values

DEFAULT_CONFIG = "configs/ensemble.yaml"
EXIT_USAGE, EXIT_FAILED = 2, 1


class UsageError(ValueError):
    """A bad member number or option; one line for the user, exit code 2."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one member: status is done, skipped or failed."""
    member: int
    status: str
    message: str
    seconds: float = 0.0


# --- members and their parameters -------------------------------------------------------------
def parse_member(text: str) -> int:
    """A member number is a whole number from 1 up; anything else is a usage error."""
    if not re.fullmatch(r"\s*[0-9]+\s*", text) or int(text) < 1:
        raise UsageError(f"member {text!r} is not a member number: use whole numbers from 1 up, "
                         "e.g. python solver/ensemble.py 17 or jot 1000 | parallel python solver/ensemble.py")
    return int(text)


def check_member(cfg: Config, member: int) -> None:
    members = cfg.ensemble.members
    if members and member > members:
        raise UsageError(f"member {member} is beyond ensemble.members = {members} in {cfg.source}; "
                         f"use 1..{members} or raise ensemble.members")


def draw(cfg: Config, member: int) -> dict[str, Any]:
    """The perturbed values of one member: {dotted key: value}, a list for a pair such as initial.center."""
    import numpy as np
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
        args = [components(spec[name], width) for name in _ARGUMENTS[spec["dist"]]]
        sample = getattr(rng, spec["dist"])(*args)
        values[key] = float(sample[0]) if width == 1 else [float(v) for v in sample]
    return values


_ARGUMENTS = {"uniform": ("low", "high"), "normal": ("mean", "std"), "lognormal": ("mean", "sigma")}


def member_config(cfg: Config, member: int) -> tuple[Config, dict[str, Any]]:
    """The config of one member and its drawn values; a ConfigError names the member and its draws."""
    values = draw(cfg, member)
    try:
        return with_values(cfg, values), values
    except ConfigError as err:
        drawn = ", ".join(f"{k} = {_short(v)}" for k, v in values.items())
        raise ConfigError(f"member {member} (drawn {drawn}): {err}") from None


def member_path(cfg: Config, member: int) -> str:
    return os.path.join(cfg.ensemble.output_dir, f"member-{member:04d}.h5")


def member_threads(cfg: Config) -> Config:
    """Pin parallel.threads: auto means SLURM_CPUS_PER_TASK under SLURM, else one thread per member
    (members run side by side; threading one small member only adds start-up)."""
    threads = cfg.parallel.threads
    if threads == "auto":
        slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
        threads = int(slurm) if slurm.isdigit() and int(slurm) > 0 else 1
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
    try:
        if os.path.isdir(path):
            raise ConfigError(f"{path} is a directory; remove it or choose another ensemble.output_dir")
        from solver.output import is_complete
        if not force and os.path.exists(path) and is_complete(path):
            return Outcome(member, "skipped", f"member {member}: skipped, {path} is complete (--force reruns it)")
        member_cfg, values = member_config(cfg, member)
        member_cfg = member_threads(member_cfg)
        os.makedirs(cfg.ensemble.output_dir, exist_ok=True)
        attrs = {"ensemble_member": member, "ensemble_seed": cfg.ensemble.seed,
                 "ensemble_config": config_path or cfg.source,
                 "ensemble_parameters": ",".join(values)}
        attrs.update({f"param.{key}": value for key, value in values.items()})
        from solver.run import run
        summary = run(member_cfg, path, say=say or _quiet, attrs=attrs)
    except ConfigError as err:
        message = str(err) if str(err).startswith("member") else f"member {member}: {err}"
        return Outcome(member, "failed", f"error: {message}", time.perf_counter() - start)
    except Exception as err:     # RunError, OSError ...: this member fails, the others go on
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return Outcome(member, "failed", f"error: member {member}: {first}", time.perf_counter() - start)
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
class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
            print(cfg.ensemble.output_dir, cfg.ensemble.members, member_threads(cfg).parallel.threads)
            return 0
        if not args.members:
            raise UsageError("no member numbers given; e.g. python solver/ensemble.py 1 2 3, "
                             "or jot 1000 | parallel python solver/ensemble.py")
        members = [parse_member(text) for text in args.members]
        for member in members:
            check_member(cfg, member)
    except (ConfigError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    failed = 0
    for member in members:
        outcome = run_member(cfg, member, args.force, _loud if args.verbose else None, args.config)
        report(outcome)
        failed += outcome.status == "failed"
    return EXIT_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
