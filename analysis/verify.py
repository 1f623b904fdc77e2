#!/usr/bin/env python
"""Verify a solver output against its model's exact solution: L2 and max error of every snapshot.

    python analysis/verify.py results/default.h5               # table on stdout, plot -> results/default-verify.png
    python analysis/verify.py results/default.h5 --csv errors.csv -o errors.png

L2 is the grid norm sqrt(sum (C - C_exact)^2 dx dy), the discrete form of the integral; "relative" divides by
the same norm of the exact field. The exact field is the model's (solver/models), for the config stored in
the file; a model without one is refused with one line. The built-in exact solutions live on the infinite
plane, so an error that grows as the solution reaches a fixed boundary is the boundary's doing, not the
scheme's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.common import (Output, Parser, add_field_argument, add_file_argument, check_outputs,  # noqa: E402
                             default_output, errors, open_output, png_metadata, run_main, write_csv)

COLUMNS = ("snapshot", "time", "l2", "l2_relative", "max", "max_relative")


def error_table(out: Output) -> list[dict]:
    """One row per snapshot: its time and its errors against the exact solution."""
    rows = []
    for index in range(out.snapshots):
        e = errors(out.snapshot(index), out.exact(index), out.dx, out.dy)
        rows.append({"snapshot": index, "time": float(out.time[index]), **e})
    return rows


def format_table(out: Output, rows: list[dict]) -> str:
    t = out.units["time"]
    grid = out.cfg.grid
    kept = "" if (out.x.size, out.y.size) == (grid.nx, grid.ny) else \
        f" kept (output.window, output.subsample) of the run's {grid.nx} x {grid.ny} (dx = {out.cfg.dx:.4g}), at"
    lines = [f"{out.path}: {out.x.size} x {out.y.size} nodes,{kept} dx = {out.dx:.4g}, dy = {out.dy:.4g}, "
             f"dt = {out.cfg.time.dt:g}",
             f"{'snapshot':>8}  {'t [' + t + ']':>10}  {'L2 error':>10}  {'L2 rel':>9}  {'max error':>10}  "
             f"{'max rel':>9}"]
    for r in rows:
        lines.append(f"{r['snapshot']:>8}  {r['time']:>10.4g}  {r['l2']:>10.3e}  {r['l2_relative']:>9.2e}  "
                     f"{r['max']:>10.3e}  {r['max_relative']:>9.2e}")
    return "\n".join(lines)


def plot(out: Output, rows: list[dict], path: str) -> str:
    """L2 and max error over time (log scale); the first snapshot is the exact initial condition (error 0)."""
    shown = [r for r in rows if r["max"] > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    if shown:
        times = [r["time"] for r in shown]
        c, length = out.units[out.field], out.units["x"]
        l2_units = length if c in ("", "1") else f"{c} {length}"     # sqrt(sum e^2 dx dy): C times a length
        ax.semilogy(times, [r["l2"] for r in shown], "o-", label=f"L2 error [{l2_units}]")
        ax.semilogy(times, [r["max"] for r in shown], "s--", label=f"max error [{out.units[out.field]}]")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "every snapshot equals the exact field", ha="center", transform=ax.transAxes)
    ax.set_xlabel(f"time t [{out.units['time']}]")
    ax.set_ylabel(f"error of {out.field} against the exact solution")
    ax.set_xlim(0, 1.04 * float(out.time[-1]) or 1.0)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{Path(out.path).name}: {out.x.size} x {out.y.size} nodes, dt = {out.cfg.time.dt:g} "
                 f"{out.units['time']}")
    fig.savefig(path, dpi=120, metadata=png_metadata())
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = Parser(prog="verify.py", description=__doc__.splitlines()[0],
                    epilog="\n".join(__doc__.splitlines()[2:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_file_argument(parser)
    parser.add_argument("-o", "--output", help="PNG of the errors over time (default: FILE-verify.png)")
    parser.add_argument("--csv", help="also write the table as CSV to this file")
    add_field_argument(parser)
    args = parser.parse_args(argv)
    png = args.output or default_output(args.file, '-verify.png')
    check_outputs([args.file], (png, "-o", (".png",)), (args.csv, "--csv", (".csv",)))
    out = open_output(args.file, args.field)
    out.require_exact("verify.py")
    rows = error_table(out)
    print(format_table(out, rows))
    print(f"wrote {plot(out, rows, png)}")
    if args.csv:
        print(f"wrote {write_csv(rows, args.csv, COLUMNS)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
