"""Mutation testing as a habit, not a gate (it is not part of .ci/run): cosmic-ray changes one core module at a
time, one small edit per mutant (an operator, a comparison, a number, a condition negated, a loop never run,
a decorator removed), and runs only that module's fast tests against each, stopping at the first failure.
A mutant the tests do not notice is a survivor: kill it with a test that fails on it, or say in
docs/mutation.md why it changes nothing observable.

    .venv/bin/python .ci/mutate.py [MODULE ...]    # default: the modules with fast tests, most valuable first
    make mutate [MODULES="grid halo"]              # the same under nice -n 19
    .venv/bin/python .ci/mutate.py --report        # the figures of the sessions so far, survivors as diffs
    .venv/bin/python .ci/mutate.py --survivors files   # run a session's survivors again (after new tests)

Each module runs in a scratch copy of the checkout (its tracked and new, not ignored files), so a run that is
killed never leaves a mutated file in your tree. Sessions go to mutation/NAME.sqlite (git-ignored): run the
same command again and it resumes where it stopped; --fresh starts over. The tests of each module are the ones
that run in seconds and exercise it directly: no MPI launcher, no SLURM (those are the whole suite's job).
Excluded operators (see EXCLUDED) are cosmic-ray's replacements of an arithmetic operator by a bitwise, shift,
power, modulo or floor-division one and of ``==`` by ``is``: they multiply the count by three and die with
the +, -, *, / and comparison mutants that stay; what remains is close to mutmut's set.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = ROOT / "mutation"

# name -> (module, tests, seconds per mutant at most), in the order of their value: a survivor in the grid, the
# halo or the kernels is a wrong answer, in the checkpoint a wrong resume, in the output a wrong file, in the
# config a wrong run, in the ensemble a wrong member, in files a file replaced that was not the run's. Each has
# in-process tests that take seconds (a mutant that hangs, an exchange waiting for a message sent with the
# wrong tag, say, is killed by the time limit). The kernels' limit leaves room for numba to compile a mutated
# kernel module afresh (a minute or two of the two shared cores); unchanged ones load from its cache.
MODULES = {
    "grid": ("solver/core/grid.py", ["tests/test_grid.py"], 30),
    "halo": ("solver/parallel/halo.py", ["tests/test_halo.py"], 20),
    "checkpoint": ("solver/storage/checkpoint.py", ["tests/test_checkpoint_unit.py"], 30),
    "config": ("solver/core/config.py", ["tests/test_config.py"], 90),
    "ensemble": ("solver/ensemble.py", ["tests/test_ensemble_unit.py"], 30),
    "files": ("solver/storage/files.py", ["tests/test_files_unit.py"], 20),
    "kernels": ("solver/core/kernels.py", ["tests/test_kernels_unit.py"], 400),
    "output": ("solver/storage/output.py", ["tests/test_output_unit.py"], 30),
}
DEFAULT = ["grid", "halo", "kernels", "checkpoint", "output", "config", "ensemble", "files"]

EXCLUDED = [
    r"core/ReplaceBinaryOperator_\w+_(Pow|RShift|LShift|BitOr|BitAnd|BitXor|Mod|FloorDiv)$",
    r"core/ReplaceBinaryOperator_(BitOr|BitAnd|BitXor|RShift|LShift|Pow)_\w+$",   # mostly `X | None` annotations
    r"core/ReplaceComparisonOperator_\w+_(Is|IsNot)$",
    r"core/ReplaceComparisonOperator_(Is|IsNot)_\w+$",
    r"core/ReplaceUnaryOperator_\w+_(Invert|Not)$",
]


def bin_path(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def scratch_copy() -> Path:
    """The checkout's tracked and new (not ignored) files, copied to a fresh directory."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    target = Path(tempfile.mkdtemp(prefix="mutate-"))
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def config_text(module: str, tests: list[str], timeout: int) -> str:
    # -p no:cacheprovider: nothing written beside the tests; no bytecode either (PYTHONDONTWRITEBYTECODE): a
    # mutant's .pyc must never be taken for the restored source's, whose size and mtime second it may share.
    command = (f"env PYTHONDONTWRITEBYTECODE=1 {sys.executable} -m pytest -x -q -p no:cacheprovider "
               f"-o addopts= {' '.join(tests)}")
    excluded = ", ".join(f"'{e}'" for e in EXCLUDED)
    return (f"[cosmic-ray]\nmodule-path = \"{module}\"\ntimeout = {float(timeout)}\nexcluded-modules = []\n"
            f"test-command = \"{command}\"\n\n[cosmic-ray.distributor]\nname = \"local\"\n\n"
            f"[cosmic-ray.filters.operators-filter]\nexclude-operators = [{excluded}]\n")


def forget_survivors(session: Path) -> int:
    """Drop the results of a session's survivors, so that resuming it runs them again (against tests added
    since: an added test only adds kills; after changing or removing tests, start over with --fresh); how many."""
    import sqlite3
    with sqlite3.connect(session) as db:
        return db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'").rowcount


def run_module(name: str, fresh: bool, survivors: bool = False) -> None:
    module, tests, timeout = MODULES[name]
    SESSIONS.mkdir(exist_ok=True)
    session = SESSIONS / f"{name}.sqlite"
    work = scratch_copy()
    try:
        cfg = work / "mutate.toml"
        cfg.write_text(config_text(module, tests, timeout))
        if fresh or not session.exists():
            session.unlink(missing_ok=True)
            subprocess.run([bin_path("cosmic-ray"), "init", str(cfg), str(session)], cwd=work, check=True)
            subprocess.run([bin_path("cr-filter-operators"), str(session), str(cfg)], cwd=work, check=True)
            base = subprocess.run([bin_path("cosmic-ray"), "baseline", str(cfg)], cwd=work)
            if base.returncode != 0:
                session.unlink()
                sys.exit(f"mutate: {name}: the tests fail without any mutant ({' '.join(tests)}); fix them first")
        elif survivors:
            print(f"mutate: {name}: running its {forget_survivors(session)} survivors again", flush=True)
        print(f"mutate: {name}: {module} against {' '.join(tests)}", flush=True)
        subprocess.run([bin_path("cosmic-ray"), "exec", str(cfg), str(session)], cwd=work, check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def figures(name: str, survivors: bool) -> str:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    counts = {"mutants": 0, "killed": 0, "survived": 0, "incompetent": 0, "pending": 0}
    diffs = []
    with use_db(str(SESSIONS / f"{name}.sqlite"), WorkDB.Mode.open) as db:
        done = dict((item.job_id, result) for item, result in db.completed_work_items)
        for item in db.work_items:
            result = done.get(item.job_id)
            if result is not None and result.worker_outcome == WorkerOutcome.SKIPPED:
                continue                                    # an excluded operator
            counts["mutants"] += 1
            if result is None:
                counts["pending"] += 1
            elif result.worker_outcome == WorkerOutcome.ABNORMAL or result.test_outcome == TestOutcome.KILLED:
                counts["killed"] += 1                       # a timeout counts as killed
            elif result.test_outcome == TestOutcome.SURVIVED:
                counts["survived"] += 1
                diffs.append(result.diff)
            else:
                counts["incompetent"] += 1                  # the mutant does not import: killed by Python
    run = counts["killed"] + counts["survived"] + counts["incompetent"]
    rate = f"{100 * (run - counts['survived']) / run:.1f} %" if run else "-"
    line = (f"| {name} | {MODULES[name][0]} | {counts['mutants']} | {counts['killed']} + {counts['incompetent']} "
            f"| {counts['survived']} | {rate} | {counts['pending']} |")
    if survivors and diffs:
        line += "\n\n" + "\n".join(f"```diff\n{d.strip()}\n```" for d in diffs)
    return line


def report(names: list[str], survivors: bool = True) -> str:
    head = ("| module | file | mutants | killed + incompetent | survived | kill rate | not run |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    rows = [figures(n, survivors) for n in names if (SESSIONS / f"{n}.sqlite").exists()]
    return "\n".join([head, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"any of {', '.join(MODULES)} (default: {' '.join(DEFAULT)})")
    parser.add_argument("--fresh", action="store_true", help="start the sessions over")
    parser.add_argument("--survivors", action="store_true",
                        help="run the sessions' survivors again (after adding tests for them)")
    parser.add_argument("--report", action="store_true", help="only print the figures of the sessions so far")
    args = parser.parse_args()
    names = args.modules or DEFAULT
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]}: choose among {', '.join(MODULES)}")
    if not args.report:
        for name in names:
            run_module(name, args.fresh, args.survivors)
    text = report(names)
    if not args.report:
        (SESSIONS / "report.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
