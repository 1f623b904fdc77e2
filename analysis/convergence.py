#!/usr/bin/env python
"""Grid refinement study: run the solver on grids halved step by step and measure the order of accuracy.

    python analysis/convergence.py                          # configs/convergence.yaml, 4 levels
    python analysis/convergence.py --levels 5 --stability 0.5 -o order.png
    python analysis/convergence.py --config configs/advection.yaml --set time.t_end=0.5

Level k has (nx - 1) 2^k + 1 nodes along each axis (nx 2^k on a periodic one), so dx and dy halve from
level to level, and dt is the fraction --stability of the model's largest stable dt on that grid (rounded
down to a whole number of steps of t_end). For diffusion dt ~ dx^2, so the forward-time centred-space
error O(dt) + O(dx^2) falls as dx^2 and the observed order log2(e_(k-1) / e_k) tends to 2; the upwind
advection of advection_diffusion is first order. Errors are taken at t_end against the model's exact
solution (a model without one is refused); the problem must keep the solution away from fixed boundaries
(see configs/convergence.yaml). Each level runs in this process (solver.run.run), its output in --workdir.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.common import (REPO, InputError, Parser, check_outputs, errors, open_output,  # noqa: E402
                             png_metadata, run_main, write_csv)
from solver.core import config as config_module  # noqa: E402
from solver.core.config import Config  # noqa: E402

DEFAULT_CONFIG = REPO / "configs" / "convergence.yaml"


def refined(base: Config, axis: str, level: int) -> tuple[int, float]:
    """Nodes and spacing along ``axis`` at refinement ``level``: the spacing halves from level to level."""
    n, (lo, hi) = getattr(base.grid, "n" + axis), getattr(base.grid, axis)
    if base.boundary.periodic(axis):
        return n * 2 ** level, (hi - lo) / (n * 2 ** level)
    n = (n - 1) * 2 ** level + 1
    return n, (hi - lo) / (n - 1)


def level_config(base: Config, level: int, stability: float) -> Config:
    """The config of refinement level ``level``: grid spacing / 2^level, dt the fraction ``stability`` of the
    model's largest stable dt there."""
    (nx, dx), (ny, dy) = refined(base, "x", level), refined(base, "y", level)
    dt_stable = stability * base.model_impl.max_stable_dt(base.physics, dx, dy)
    steps = math.ceil(base.time.t_end / dt_stable * (1 - 1e-12))
    return config_module.with_values(base, {"grid.nx": nx, "grid.ny": ny, "time.dt": base.time.t_end / steps,
                                            "output.every": 0})


def observed_orders(spacing: list[float], error: list[float]) -> list[float]:
    """log(e_(k-1) / e_k) / log(h_(k-1) / h_k) for each successive pair of levels."""
    return [math.log(error[k - 1] / error[k]) / math.log(spacing[k - 1] / spacing[k])
            for k in range(1, len(error))]


def study(base: Config, levels: int, stability: float, workdir: str) -> tuple[list[dict], dict]:
    """Run every level; returns one row per level (grid, dt, errors at t_end) and the outputs' units."""
    from solver.storage.checkpoint import path_for
    from solver.storage.files import check_run_paths
    from solver.run import run
    configs = [level_config(base, level, stability) for level in range(levels)]
    paths = [os.path.join(workdir, f"level-{level}.h5") for level in range(levels)]
    for cfg, path in zip(configs, paths):       # a study replaces only its own (earlier) level outputs
        check_run_paths(path, path_for(cfg, path), base.source, overwrite=True)
    os.makedirs(workdir, exist_ok=True)
    rows = []
    for level, cfg, path in zip(range(levels), configs, paths):
        started = time.perf_counter()
        run(cfg, path, say=lambda message, error=False: None)
        out = open_output(path)
        e = errors(out.snapshot(-1), out.exact(-1), out.dx, out.dy)
        rows.append({"level": level, "nx": cfg.grid.nx, "ny": cfg.grid.ny, "dx": cfg.dx, "dy": cfg.dy,
                     "dt": cfg.time.dt, "steps": cfg.nsteps, "stability": cfg.stability, "file": path,
                     "l2": e["l2"], "max": e["max"]})
        print(f"  level {level}: {cfg.grid.nx} x {cfg.grid.ny} nodes, {cfg.nsteps} steps of dt = {cfg.time.dt:.4g}: "
              f"L2 error {e['l2']:.3e}, max error {e['max']:.3e} ({time.perf_counter() - started:.1f} s)", flush=True)
    spacing = [r["dx"] for r in rows]
    for norm in ("l2", "max"):
        orders = observed_orders(spacing, [r[norm] for r in rows])
        for row, order in zip(rows, [math.nan] + orders):
            row[f"order_{norm}"] = order
    return rows, out.units


def fitted_order(rows: list[dict], norm: str) -> float:
    """Slope of log(error) against log(dx) over all levels (least squares)."""
    return float(np.polyfit(np.log([r["dx"] for r in rows]), np.log([r[norm] for r in rows]), 1)[0])


def format_table(rows: list[dict], t_end: float) -> str:
    lines = [f"errors at t_end = {t_end:g} against the exact solution "
             f"(dt = {rows[0]['stability']:.4g} of the largest stable dt on every level)",
             f"{'level':>5}  {'nx x ny':>11}  {'dx':>9}  {'dt':>9}  {'steps':>6}  {'L2 error':>10}  {'order':>6}  "
             f"{'max error':>10}  {'order':>6}"]
    for r in rows:
        lines.append(f"{r['level']:>5}  {r['nx']:>5} x {r['ny']:<3}  {r['dx']:>9.3e}  {r['dt']:>9.3e}  {r['steps']:>6}  "
                     f"{r['l2']:>10.3e}  {_order(r['order_l2'])}  {r['max']:>10.3e}  {_order(r['order_max'])}")
    if len(rows) > 1:
        lines.append(f"observed order (finest pair): L2 {rows[-1]['order_l2']:.3f}, max {rows[-1]['order_max']:.3f}; "
                     f"least-squares fit: L2 {fitted_order(rows, 'l2'):.3f}, max {fitted_order(rows, 'max'):.3f} "
                     "(FTCS diffusion: 2; upwind advection: 1)")
    return "\n".join(lines)


def _order(value: float) -> str:
    return f"{'-':>6}" if math.isnan(value) else f"{value:>6.3f}"


def plot(rows: list[dict], units: dict, t_end: float, path: str) -> str:
    """Errors against dx on log-log axes, with a slope-2 reference line through the finest L2 error."""
    dx = np.array([r["dx"] for r in rows])
    field = [name for name in units if name not in ("x", "y", "time")][0]
    c, length = units[field], units["x"]
    l2_units = length if c in ("", "1") else f"{c} {length}"     # sqrt(sum e^2 dx dy): C times a length
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    ax.loglog(dx, [r["l2"] for r in rows], "o-", label=f"L2 error [{l2_units}] (finest order {rows[-1]['order_l2']:.2f})")
    ax.loglog(dx, [r["max"] for r in rows], "s-", label=f"max error [{c}] (finest order {rows[-1]['order_max']:.2f})")
    reference = rows[-1]["l2"] * (dx / dx[-1]) ** 2
    ax.loglog(dx, reference, "k:", label="slope 2 (second order)")
    ax.set_xlabel(f"grid spacing dx [{length}] (dy halves with it)")
    ax.set_ylabel(f"error at t = {t_end:g} {units['time']}")
    ax.set_title(f"Refinement study, stability number {rows[0]['stability']:.3g}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120, metadata=png_metadata())
    plt.close(fig)
    return path


def main(argv=None) -> int:
    parser = Parser(prog="convergence.py", description=__doc__.splitlines()[0],
                    epilog="\n".join(__doc__.splitlines()[2:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="config of the coarsest level (default: configs/convergence.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (repeatable), e.g. initial.sigma=0.05")
    parser.add_argument("--levels", type=int, default=4, help="number of grids, each with half the spacing (default: 4)")
    parser.add_argument("--stability", type=float, default=0.8,
                        help="dt as a fraction of the model's largest stable dt on every level, at most 1 "
                        "(default: 0.8)")
    parser.add_argument("--workdir", default="results/convergence", help="where the level outputs go")
    parser.add_argument("-o", "--output", help="log-log PNG (default: WORKDIR/convergence.png)")
    parser.add_argument("--csv", help="also write the table as CSV to this file")
    args = parser.parse_args(argv)
    if args.levels < 2:
        parser.error(f"--levels {args.levels}: an order needs at least 2 levels")
    if not 0 < args.stability <= 1:
        parser.error(f"--stability {args.stability}: must be in (0, 1], a fraction of the largest stable dt")
    base = config_module.load(args.config, args.overrides)
    if not base.model_impl.has_exact:
        raise InputError(f"{args.config}: the {base.model_impl.name} model has no exact solution to measure the "
                         "order against; add an exact() to the model (docs/models.md) or pick another config")
    if os.path.lexists(args.workdir) and not os.path.isdir(args.workdir):
        raise InputError(f"--workdir {args.workdir} exists and is not a directory; name a directory for the "
                         "level outputs, such as results/convergence")
    png = args.output or os.path.join(args.workdir, 'convergence.png')
    check_outputs([args.config], (png, "-o", (".png",)), (args.csv, "--csv", (".csv",)))
    finest = refined(base, "x", args.levels - 1)[0], refined(base, "y", args.levels - 1)[0]
    if finest[0] * finest[1] > 2 ** 26:
        raise InputError(f"--levels {args.levels} makes the finest grid {finest[0]} x {finest[1]}; "
                         "use fewer levels or a coarser grid.nx, grid.ny")
    print(f"refinement study of {args.config} ({base.model_impl.name}): {args.levels} levels, dt = "
          f"{args.stability:g} of the largest stable dt", flush=True)
    rows, units = study(base, args.levels, args.stability, args.workdir)
    print(format_table(rows, base.time.t_end))
    print(f"wrote {plot(rows, units, base.time.t_end, png)}")
    if args.csv:
        print(f"wrote {write_csv(rows, args.csv)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
