"""``python -m solver.pool``: ensemble members through a Python process pool, for machines without GNU parallel.

The same members as ``solver/ensemble.py`` (same draws, same files, same bits): each worker process runs
:func:`solver.ensemble.run_member` for one member at a time, so the interpreter, numba and h5py start once per
worker rather than once per member. Workers are spawned (not forked) with NUMBA_NUM_THREADS already set.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache

from solver import ensemble
from solver.config import ConfigError, load

EXIT_USAGE, EXIT_FAILED = 2, 1


def parse_members(items: list[str], cfg) -> list[int]:
    """Member numbers and ranges ``A-B``; none means 1..ensemble.members."""
    members = cfg.ensemble.members
    if not items:
        if not members:
            raise ensemble.UsageError("no members given and ensemble.members is 0; "
                                      "name members (1 2 5-10) or set ensemble.members")
        return list(range(1, members + 1))
    out = []
    for item in items:
        first, sep, last = item.partition("-")
        if sep and first:
            a, b = ensemble.parse_member(first), ensemble.parse_member(last)
            if b < a:
                raise ensemble.UsageError(f"member range {item!r} runs backwards; write it as {b}-{a}")
            ensemble.check_range(cfg, a, b, item)
            out.extend(range(a, b + 1))
        else:
            out.append(ensemble.parse_member(item))
    return list(dict.fromkeys(out))      # each member once, in the order given


@lru_cache(maxsize=None)
def _config(path: str):
    return load(path)


def _work(config_path: str, member: int, force: bool) -> ensemble.Outcome:
    return ensemble.run_member(_config(config_path), member, force, config_path=config_path)


def build_parser() -> argparse.ArgumentParser:
    parser = ensemble.Parser(prog="python -m solver.pool",
                             description="Run ensemble members in a pool of worker processes "
                             "(concurrent.futures): the same files and bits as "
                             "'parallel python solver/ensemble.py', without GNU parallel.",
                             epilog="Exit status: 0 all done or skipped, 1 a member failed, 2 bad arguments.")
    parser.add_argument("members", nargs="*", metavar="MEMBER",
                        help="member numbers or ranges like 1-100 (default: 1..ensemble.members)")
    parser.add_argument("--config", default=ensemble.DEFAULT_CONFIG,
                        help=f"ensemble config (default {ensemble.DEFAULT_CONFIG})")
    parser.add_argument("-j", "--jobs", type=int, default=0,
                        help="worker processes (default: the cores available divided by parallel.threads)")
    parser.add_argument("--force", action="store_true", help="recompute members whose output exists")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load(args.config)
        members = parse_members(args.members, cfg)
        for member in members:
            ensemble.check_member(cfg, member)
        ensemble.check_setup(cfg)
        if args.jobs < 0:
            raise ensemble.UsageError(f"--jobs {args.jobs}: give a positive number of workers, or 0 for auto")
    except (ConfigError, ensemble.UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    threads = ensemble.member_threads(cfg).parallel.threads     # also sets NUMBA_NUM_THREADS for workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    jobs = args.jobs or max(1, cores // threads)
    print(f"running {len(members)} member(s) of {args.config} on {jobs} worker(s)", flush=True)

    import multiprocessing
    start, failed = time.perf_counter(), []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_work, args.config, member, args.force): member for member in members}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as err:      # a worker died (killed, out of memory): that member failed
                member = futures[future]
                outcome = ensemble.Outcome(member, "failed", f"error: member {member}: worker died: {err}")
            ensemble.report(outcome)
            if outcome.status == "failed":
                failed.append(outcome.member)
    print(f"{len(members) - len(failed)} of {len(members)} member(s) done or skipped in "
          f"{time.perf_counter() - start:.1f} s" + (f"; failed: {' '.join(map(str, sorted(failed)))}"
                                                     if failed else ""), flush=True)
    return EXIT_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
