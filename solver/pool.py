"""``python -m solver.pool``: ensemble members through a Python process pool, for machines without GNU parallel.

The same members as ``solver/ensemble.py`` (same draws, same files, same bits): each worker process runs
:func:`solver.ensemble.run_member` for one member at a time, so the interpreter, numba and h5py start once per
worker rather than once per member. Workers are spawned (not forked) with NUMBA_NUM_THREADS already set.
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import lru_cache

from solver import ensemble
from solver.args import Parser, UsageError
from solver.core.config import load
from solver.errors import EXIT_FAILED, EXIT_USAGE, UserError
from solver.machine import available_cores


@lru_cache(maxsize=None)
def _config(path: str):
    return load(path)


def _work(config_path: str, member: int, force: bool) -> ensemble.Outcome:
    return ensemble.run_member(_config(config_path), member, force, config_path=config_path)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m solver.pool",
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
        members = ensemble.parse_members(args.members, cfg)
        for member in members:
            ensemble.check_member(cfg, member)
        ensemble.check_setup(cfg)
        if args.jobs < 0:
            raise UsageError(f"--jobs {args.jobs}: give a positive number of workers, or 0 for auto")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    threads = ensemble.member_threads(cfg).parallel.threads     # also sets NUMBA_NUM_THREADS for workers
    jobs = args.jobs or max(1, available_cores() // threads)
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
