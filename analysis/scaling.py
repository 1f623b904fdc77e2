#!/usr/bin/env python
"""Strong and weak scaling over ranks x threads: plan the runs of a sweep, then plot their timings.

    python analysis/scaling.py plan --mode strong --ranks 1,2,4 --threads 1,2 --max-workers 4 configs/scaling.yaml
    python analysis/scaling.py plot --mode strong results/scaling/strong-*.h5 -o results/scaling/strong.png

jobs/scaling.sh (and jobs/scaling.slurm inside an allocation) run the plan under mpirun and call plot.
``plan`` prints one line per run: NAME RANKS THREADS and the --set overrides of that run. Strong scaling keeps
the grid; weak scaling gives every worker (rank x thread) the same number of nodes by widening the domain
along x at the same grid spacing, so dt stays stable. ``plot`` reads the timing provenance every output
carries (mlups, compute_seconds, halo_seconds, io_seconds, ranks, threads_per_rank) and draws speed-up and
parallel efficiency against the ideal, MLUPS per run, and the compute / halo / I/O shares of the loop time.
Speed-up is MLUPS relative to the run with the fewest workers: for strong scaling that is the ratio of the
times, for weak scaling the scaled speed-up; ideal is the number of workers in both.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.common import (InputError, Parser, check_outputs, open_output, png_metadata, run_main,  # noqa: E402
                             write_csv)
from solver.core import config as config_module  # noqa: E402

TIMINGS = ("mlups", "compute_seconds", "halo_seconds", "io_seconds", "wall_seconds", "ranks", "threads_per_rank")
SHARES = (("compute_seconds", "compute", "tab:blue"), ("halo_seconds", "halo exchange", "tab:orange"),
          ("io_seconds", "I/O", "tab:green"))


# --- plan ---------------------------------------------------------------------------------------
def plan(cfg, mode: str, ranks: list[int], threads: list[int], max_workers: int | None) -> list[str]:
    """One line per run: ``NAME RANKS THREADS [--set KEY=VALUE ...]`` (values without spaces)."""
    lines = []
    for r in ranks:
        for t in threads:
            workers = r * t
            if max_workers and workers > max_workers:
                continue
            overrides = []
            if mode == "weak":
                nx = (cfg.grid.nx - 1) * workers + 1            # same dx: workers times the nodes along x
                x0, x1 = cfg.grid.x
                overrides = [f"grid.nx={nx}", f"grid.x=[{x0!r},{x0 + (x1 - x0) * workers!r}]"]
            lines.append(" ".join([f"{mode}-r{r}-t{t}", str(r), str(t), *(f"--set {o}" for o in overrides)]))
    if not lines:
        raise InputError(f"no run fits: every ranks x threads exceeds --max-workers {max_workers}")
    return lines


# --- read and reduce ----------------------------------------------------------------------------
def read_runs(paths: list[str]) -> list[dict]:
    """Timing provenance of each output, one dict per file."""
    runs = []
    for path in paths:
        out = open_output(path)
        missing = [k for k in TIMINGS if k not in out.attrs]
        if missing:
            raise InputError(f"{path}: no timing provenance ({', '.join(missing)}); was it written by this solver?")
        a = out.attrs
        runs.append({"file": path, "nx": out.x.size, "ny": out.y.size, "steps": int(a.get("steps", 0)),
                     **{k: float(a[k]) for k in TIMINGS}})
    return runs


def combine(runs: list[dict], mode: str) -> list[dict]:
    """One row per (ranks, threads), the median of repeated runs, with speed-up and efficiency."""
    if mode == "strong":
        grids = sorted({(r["nx"], r["ny"]) for r in runs})
        if len(grids) > 1:
            raise InputError(f"strong scaling needs one grid, these files have {len(grids)}: "
                             f"{', '.join(f'{a} x {b}' for a, b in grids)}; pass one sweep's files or --mode weak")
    else:
        per_worker = [r["nx"] * r["ny"] / (r["ranks"] * r["threads_per_rank"]) for r in runs]
        if max(per_worker) > 1.05 * min(per_worker):
            raise InputError(f"weak scaling needs the same nodes per worker, these files have "
                             f"{min(per_worker):.0f} to {max(per_worker):.0f}; use the files of one weak sweep")
    groups: dict[tuple[int, int], list[dict]] = {}
    for r in runs:
        groups.setdefault((int(r["ranks"]), int(r["threads_per_rank"])), []).append(r)
    rows = []
    for (ranks, threads), members in sorted(groups.items(), key=lambda kv: (kv[0][0] * kv[0][1], kv[0])):
        row = {"ranks": ranks, "threads": threads, "workers": ranks * threads, "repeats": len(members),
               "nx": members[0]["nx"], "ny": members[0]["ny"]}
        for key in ("mlups", "compute_seconds", "halo_seconds", "io_seconds", "wall_seconds"):
            row[key] = statistics.median(m[key] for m in members)
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["speedup"] = row["mlups"] / base["mlups"] * base["workers"]
        row["efficiency"] = row["speedup"] / row["workers"]
        loop = row["compute_seconds"] + row["halo_seconds"] + row["io_seconds"]
        for key, name, _ in SHARES:
            row[f"{name} share"] = row[key] / loop if loop > 0 else 0.0
    return rows


def format_table(rows: list[dict], mode: str) -> str:
    lines = [f"{mode} scaling, speed-up relative to {rows[0]['ranks']} rank(s) x {rows[0]['threads']} thread(s)",
             f"{'ranks':>5} {'threads':>7} {'grid':>13} {'MLUPS':>9} {'speed-up':>8} {'effic.':>7} "
             f"{'compute s':>10} {'halo s':>8} {'io s':>8} {'wall s':>8}"]
    for r in rows:
        lines.append(f"{r['ranks']:>5} {r['threads']:>7} {r['nx']:>6} x {r['ny']:<5}{r['mlups']:>9.1f} "
                     f"{r['speedup']:>8.2f} {100 * r['efficiency']:>6.1f}% {r['compute_seconds']:>10.3f} "
                     f"{r['halo_seconds']:>8.3f} {r['io_seconds']:>8.3f} {r['wall_seconds']:>8.2f}")
    return "\n".join(lines)


# --- plot ---------------------------------------------------------------------------------------
def plot(rows: list[dict], mode: str, path: str) -> str:
    """Four panels: speed-up and efficiency against workers (ideal dashed), MLUPS and time shares per run."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), layout="constrained")
    workers = np.array([r["workers"] for r in rows])
    ideal = np.array(sorted(set(workers)))
    labels = [f"{r['ranks']}x{r['threads']}" for r in rows]
    by_threads = sorted({r["threads"] for r in rows})
    markers = "osD^v<>"
    (ax_s, ax_e), (ax_m, ax_t) = axes
    for i, t in enumerate(by_threads):
        sel = [r for r in rows if r["threads"] == t]
        ax_s.plot([r["workers"] for r in sel], [r["speedup"] for r in sel], marker=markers[i % 7], ls="-",
                  label=f"{t} thread(s) per rank")
        ax_e.plot([r["workers"] for r in sel], [100 * r["efficiency"] for r in sel], marker=markers[i % 7],
                  ls="-", label=f"{t} thread(s) per rank")
    ax_s.plot(ideal, ideal / ideal[0] * rows[0]["speedup"], "k--", label="ideal")
    ax_e.axhline(100, color="k", ls="--", label="ideal")
    for ax in (ax_s, ax_e):
        ax.set_xlabel("workers = ranks x threads per rank")
        ax.set_xticks(ideal)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    ax_s.set_ylabel("scaled speed-up (MLUPS ratio)" if mode == "weak" else "speed-up (time ratio)")
    ax_s.set_title(f"{mode} scaling: speed-up")
    ax_e.set_ylabel("parallel efficiency [%]")
    ax_e.set_ylim(0, max(110, 10 + 100 * max(r["efficiency"] for r in rows)))
    ax_e.set_title(f"{mode} scaling: efficiency")

    position = np.arange(len(rows))
    ax_m.bar(position, [r["mlups"] for r in rows], color="tab:purple")
    ax_m.set_ylabel("MLUPS [million node updates / s]")
    ax_m.set_title("throughput (compute + halo time)")
    bottom = np.zeros(len(rows))
    for key, name, colour in SHARES:
        share = np.array([100 * r[f"{name} share"] for r in rows])
        ax_t.bar(position, share, bottom=bottom, color=colour, label=name)
        bottom += share
    ax_t.set_ylabel("share of the loop time [%]")
    ax_t.set_ylim(0, 118)
    ax_t.set_yticks(range(0, 101, 20))
    ax_t.set_title("where the loop time goes")
    ax_t.legend(ncol=3, fontsize="small", loc="upper center")
    for ax in (ax_m, ax_t):
        ax.set_xticks(position, labels)
        ax.set_xlabel("ranks x threads per rank")
        ax.grid(True, axis="y", alpha=0.3)
    grids = sorted({f"{r['nx']} x {r['ny']}" for r in rows}, key=lambda g: int(g.split(" x ")[0]))
    fig.suptitle(f"{mode} scaling, grid {' to '.join([grids[0], grids[-1]][:len(grids)])} nodes")
    fig.savefig(path, dpi=110, metadata=png_metadata())
    plt.close(fig)
    return path


# --- command line ---------------------------------------------------------------------------------
def counts(text: str) -> list[int]:
    """'1,2,4' (or '1 2 4') -> [1, 2, 4]; every item a positive whole number."""
    items = [item for item in text.replace(",", " ").split()]
    if not items or not all(item.isdigit() and int(item) >= 1 for item in items):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of positive whole numbers like 1,2,4")
    return [int(item) for item in items]


def main(argv=None) -> int:
    parser = Parser(prog="scaling.py", description=__doc__.splitlines()[0],
                    epilog="\n".join(__doc__.splitlines()[2:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    p = sub.add_parser("plan", help="print the runs of a sweep (used by jobs/scaling.sh)")
    p.add_argument("config", help="YAML config of the run with one worker")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable)")
    p.add_argument("--mode", choices=("strong", "weak"), required=True)
    p.add_argument("--ranks", type=counts, default=[1, 2], help="MPI rank counts, e.g. 1,2,4 (default: 1,2)")
    p.add_argument("--threads", type=counts, default=[1], help="threads per rank, e.g. 1,2 (default: 1)")
    p.add_argument("--max-workers", type=int, help="skip runs with more ranks x threads than this")
    p = sub.add_parser("plot", help="plot speed-up, efficiency, MLUPS and time shares of a sweep's outputs")
    p.add_argument("files", nargs="+", help="outputs of one sweep (repeats of a ranks x threads are combined)")
    p.add_argument("--mode", choices=("strong", "weak"), required=True)
    p.add_argument("-o", "--output", help="PNG to write (default: MODE-scaling.png next to the first file)")
    p.add_argument("--csv", help="also write the table as CSV to this file")
    args = parser.parse_args(argv)
    if args.command == "plan":
        cfg = config_module.load(args.config, args.overrides)
        print("\n".join(plan(cfg, args.mode, args.ranks, args.threads, args.max_workers)))
        return 0
    out = args.output or str(Path(args.files[0]).with_name(f"{args.mode}-scaling.png"))
    check_outputs(args.files, (out, "-o", (".png",)), (args.csv, "--csv", (".csv",)))
    rows = combine(read_runs(args.files), args.mode)
    print(format_table(rows, args.mode))
    print(f"wrote {plot(rows, args.mode, out)}")
    if args.csv:
        print(f"wrote {write_csv(rows, args.csv)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
