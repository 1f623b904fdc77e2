#!/usr/bin/env python
"""Ensemble statistics of the final field, and per-member scalars against the drawn parameters.

    python analysis/ensemble_stats.py                                  # configs/ensemble.yaml, all members
    python analysis/ensemble_stats.py --config my.yaml --members 1-200 --quantiles 0.1 0.5 0.9

Streams through the member files, never holding all of them: pass 1 reads one member at a time and keeps a
running mean and variance (Welford), the minimum and maximum and a few scalars per member (peak, total mass,
spread); pass 2 computes exact quantiles one block of rows at a time, reading those rows of every member
(the block is sized to --memory-mib). Writes one netCDF-compatible HDF5 file and two PNGs. Missing members
(no file) and failed ones (a .partial file left behind, incomplete, unreadable or another grid) are listed,
not fatal.
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the repository root

import argparse
import re
import time
from dataclasses import dataclass, field

import numpy as np

from solver.args import Parser, UsageError
from solver.core.config import load
from solver.ensemble import member_config, member_hash, member_path, parse_members, recorded_hash
from solver.errors import UserError
from solver.storage.files import check_analysis_output, png_metadata
from solver.storage.output import attribute, partial_path

SCALARS = {   # name: (long name, units)
    "peak": ("peak value of the final field", "1"),
    "total_mass": ("integral of the final field over the domain", "m2"),
    "spread": ("root-mean-square distance from the centroid, weighted by the field", "m"),
    "centroid_x": ("x of the centroid of the final field", "m"),
    "centroid_y": ("y of the centroid of the final field", "m"),
}
CONFIG_UNITS = {"time.dt": "s", "time.t_end": "s"}   # and the model's own (its UNITS)


@dataclass
class Welford:
    """Running mean, variance, minimum and maximum of equally shaped arrays, one array at a time."""
    count: int = 0
    mean: np.ndarray | None = None
    m2: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        self.count += 1
        if self.count == 1:
            self.mean, self.m2 = x.astype(np.float64), np.zeros_like(x, dtype=np.float64)
            self.low, self.high = x.copy(), x.copy()
            return
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)
        np.minimum(self.low, x, out=self.low)
        np.maximum(self.high, x, out=self.high)

    @property
    def std(self) -> np.ndarray:
        """Sample standard deviation (n - 1 in the denominator); zero for a single member."""
        return np.sqrt(self.m2 / max(self.count - 1, 1))


@dataclass
class Members:
    """What pass 1 found: usable members with their scalars and parameters, and the ones left out."""
    used: list = field(default_factory=list)
    paths: list = field(default_factory=list)
    scalars: dict = field(default_factory=lambda: {name: [] for name in SCALARS})
    parameters: dict = field(default_factory=dict)      # label -> list of values (numeric only)
    missing: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)          # member -> reason
    foreign: list = field(default_factory=list)         # members computed for another config (or model)
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    time: float = 0.0
    quantity: tuple = ()                                 # the field's name, units and long name
    units: dict = field(default_factory=dict)           # parameter key -> units

    def parameter_units(self, label: str) -> str:
        return self.units.get(label.split("[")[0], "1")


# --- what the drivers recorded ----------------------------------------------------------------
def joblog_failures(directory: str) -> dict[int, str]:
    """member -> 'exit status N (joblog file)' for members of failed jobs in GNU parallel's joblogs there."""
    import glob
    failures = {}
    for log in sorted(glob.glob(os.path.join(directory, "joblog-*.tsv"))):
        with open(log, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                cols = line.rstrip("\n").split("\t")
                if len(cols) < 9 or not cols[6].isdigit():
                    continue                       # the header, or a line being written
                words, members = cols[8].split(), []
                while words and words[-1].isdigit():        # the member numbers end the command
                    members.append(int(words.pop()))
                for member in members:
                    if cols[6] != "0" or cols[7] != "0":
                        failures[member] = f"exit status {cols[6]}, signal {cols[7]} ({os.path.basename(log)})"
                    else:
                        failures.pop(member, None)      # a later successful retry
    return failures


# --- pass 1: one member at a time -------------------------------------------------------------
def read_member(path: str, field: str):
    """(final state of ``field``, x, y, time, parameters) of a complete member file; raises ValueError saying
    why not."""
    import h5py
    if not os.path.isfile(path):
        raise ValueError("not a regular file")
    try:
        with h5py.File(path, "r") as f:
            if not f.attrs.get("complete", 0):
                raise ValueError("file not marked complete")
            final = np.asarray(f[field][-1], dtype=np.float64)        # float32 storage too
            x, y, t = f["x"][:], f["y"][:], float(f["time"][-1])
            keys = [k for k in str(attribute(f.attrs.get("ensemble_parameters", ""))).split(",") if k]
            parameters = {key: f.attrs[f"param.{key}"] for key in keys}
    except Exception as err:        # damaged, foreign or odd types: this member is listed as failed
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ValueError(f"unreadable ({type(err).__name__}: {detail})") from None
    return final, x, y, t, parameters


def from_this_config(cfg, member: int, path: str) -> bool:
    """Whether the member file records the hash this config gives the member (solver.ensemble.member_hash):
    the same seed, perturbations, base problem and model source. Statistics over members of mixed configs
    would be silently wrong."""
    try:
        expected = member_hash(member_config(cfg, member)[0])
    except UserError:               # this config's draws for the member are invalid: no file can be its own
        return False
    return recorded_hash(path) == expected


def scalars_of(final: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    dx, dy = x[1] - x[0], y[1] - y[0]
    total = float(final.sum())
    xc = float((final.sum(axis=0) * x).sum() / total)
    yc = float((final.sum(axis=1) * y).sum() / total)
    r2 = (x[np.newaxis, :] - xc) ** 2 + (y[:, np.newaxis] - yc) ** 2
    return {"peak": float(final.max()), "total_mass": total * dx * dy,
            "spread": float(np.sqrt((final * r2).sum() / total)), "centroid_x": xc, "centroid_y": yc}


def parameter_columns(parameters: dict) -> dict[str, float]:
    """Numeric drawn values by label; a pair such as initial.center gives initial.center[0] and [1]."""
    out = {}
    for key, value in parameters.items():
        value = np.atleast_1d(value)
        if not np.issubdtype(value.dtype, np.number):
            continue
        if value.size == 1:
            out[key] = float(value[0])
        else:
            out.update({f"{key}[{i}]": float(v) for i, v in enumerate(value)})
    return out


def first_pass(cfg, numbers: list[int], say, field: str) -> tuple[Members, Welford]:
    model = cfg.model_impl
    found = Members(quantity=(field, *model.fields[field]), units={**CONFIG_UNITS, **model.parameter_units})
    stats = Welford()
    recorded = joblog_failures(cfg.ensemble.output_dir)
    report_every = max(1, len(numbers) // 10)
    for i, member in enumerate(numbers, 1):
        path = member_path(cfg, member)
        if not os.path.exists(path):
            if os.path.exists(partial_path(path)):
                found.failed[member] = "only a .partial file (the run did not finish)"
            elif member in recorded:
                found.failed[member] = f"no file; its job failed: {recorded[member]}"
            else:
                found.missing.append(member)
            continue
        if not from_this_config(cfg, member, path):
            found.foreign.append(member)
            continue
        try:
            final, x, y, t, parameters = read_member(path, field)
            if found.x is not None and (final.shape != stats.mean.shape or not np.array_equal(x, found.x)
                                        or not np.array_equal(y, found.y)):
                raise ValueError(f"grid {final.shape[1]} x {final.shape[0]} differs from the first member's")
            if not np.isfinite(final).all():
                raise ValueError("the final field is not finite")
        except ValueError as err:
            found.failed[member] = str(err)
            continue
        if found.x is None:
            found.x, found.y, found.time = x, y, t
        stats.add(final)
        found.used.append(member)
        found.paths.append(path)
        for name, value in scalars_of(final, x, y).items():
            found.scalars[name].append(value)
        for label, value in parameter_columns(parameters).items():
            found.parameters.setdefault(label, [np.nan] * (len(found.used) - 1)).append(value)
        for column in found.parameters.values():      # a label this member lacks
            if len(column) < len(found.used):
                column.append(np.nan)
        if i % report_every == 0:
            say(f"  read {i}/{len(numbers)} members")
    return found, stats


# --- pass 2: quantiles, one block of rows across all members -----------------------------------
def quantiles_by_rows(paths: list[str], shape: tuple[int, int], quantiles: list[float],
                      memory_mib: float, field: str) -> np.ndarray:
    """Exact quantiles over members of every node, reading ``rows`` rows of each member at a time."""
    import h5py
    ny, nx = shape
    rows = int(max(1, min(ny, memory_mib * 2 ** 20 // (8 * len(paths) * nx))))
    out = np.empty((len(quantiles), ny, nx))
    block = np.empty((len(paths), rows, nx))
    for j0 in range(0, ny, rows):
        j1 = min(ny, j0 + rows)
        for i, path in enumerate(paths):
            with h5py.File(path, "r") as f:
                block[i, :j1 - j0] = f[field][-1, j0:j1, :]
        out[:, j0:j1] = np.quantile(block[:, :j1 - j0], quantiles, axis=0)
    return out


# --- output -----------------------------------------------------------------------------------
def variable_name(label: str) -> str:
    return "param_" + re.sub(r"[^A-Za-z0-9_]+", "_", label).strip("_")


def write_stats(out: str, found: Members, stats: Welford, quantiles: list[float], qfields, attrs: dict) -> None:
    """One netCDF-4 compatible file: dimension scales x, y, quantile, member; fields and per-member scalars."""
    import h5py
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".partial"
    with h5py.File(tmp, "w") as f:
        scales = {}
        for name, values, units, long_name in (
                ("x", found.x, "m", "x coordinate"), ("y", found.y, "m", "y coordinate"),
                ("quantile", np.asarray(quantiles, dtype=np.float64), "1", "quantile over members"),
                ("member", np.asarray(found.used, dtype=np.int32), "1", "ensemble member number")):
            scales[name] = f.create_dataset(name, data=values)
            scales[name].make_scale(name)
            scales[name].attrs.update(units=units, long_name=long_name)

        def variable(name, data, dims, units, long_name):
            dataset = f.create_dataset(name, data=data)
            dataset.attrs.update(units=units, long_name=long_name)
            for axis, dim in zip(dataset.dims, dims):
                axis.attach_scale(scales[dim])

        name, units, long_name = found.quantity
        t = f"of {long_name} {name} in the final field (t = {found.time:.6g} s) over members"
        variable("mean", stats.mean, ("y", "x"), units, f"mean {t}")
        variable("std", stats.std, ("y", "x"), units, f"sample standard deviation {t}")
        variable("min", stats.low, ("y", "x"), units, f"minimum {t}")
        variable("max", stats.high, ("y", "x"), units, f"maximum {t}")
        if quantiles:
            variable("quantiles", qfields, ("quantile", "y", "x"), units, f"quantiles {t}")
        for name, (long_name, units) in SCALARS.items():
            variable(name, np.asarray(found.scalars[name]), ("member",), units, long_name)
        for label, column in found.parameters.items():
            variable(variable_name(label), np.asarray(column), ("member",), found.parameter_units(label),
                     f"drawn {label}")
        f.attrs.update({"Conventions": "CF-1.8", **attrs})
    os.replace(tmp, out)


def plot(out_prefix: str, found: Members, stats: Welford, quantiles: list[float], qfields) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x, y = found.x, found.y
    extent = (x[0], x[-1], y[0], y[-1])
    name, units, long_name = found.quantity
    field_label = f"{long_name} {name} [{units}]"
    panels = [("mean", stats.mean), ("standard deviation", stats.std)]
    if len(quantiles) >= 2:
        panels += [(f"{quantiles[0]:g} quantile", qfields[0]), (f"{quantiles[-1]:g} quantile", qfields[-1])]
    else:
        panels += [("minimum", stats.low), ("maximum", stats.high)]
    aspect = (y[-1] - y[0]) / (x[-1] - x[0])
    fig, axes = plt.subplots(2, 2, figsize=(11, 11 * aspect * 0.85 + 1.3), layout="constrained")
    for ax, (title, data) in zip(axes.flat, panels):
        image = ax.imshow(data, origin="lower", extent=extent, cmap="viridis")
        ax.set_xlabel("x [m]")
        ax.set_ylabel("y [m]")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, label=field_label, shrink=0.85)
    fig.suptitle(f"Final field over {len(found.used)} members, t = {found.time:.4g} s")
    fields_png = f"{out_prefix}-fields.png"
    fig.savefig(fields_png, dpi=110, metadata=png_metadata())
    plt.close(fig)

    labels = list(found.parameters)
    shown = ["peak", "total_mass", "spread"]
    columns = max(1, len(labels))
    fig, axes = plt.subplots(len(shown), columns, figsize=(3.4 * columns + 0.8, 3.0 * len(shown)),
                             layout="constrained", squeeze=False)
    for r, name in enumerate(shown):
        long_name, units = SCALARS[name]
        for c in range(columns):
            ax = axes[r][c]
            if not labels:
                ax.text(0.5, 0.5, "no perturbed parameters", ha="center", transform=ax.transAxes)
                continue
            label = labels[c]
            ax.scatter(found.parameters[label], found.scalars[name], s=8, alpha=0.7)
            ax.set_xlabel(f"{label} [{found.parameter_units(label)}]")
            ax.set_ylabel(f"{name.replace('_', ' ')} [{units}]")
            ax.ticklabel_format(axis="both", style="sci", scilimits=(-3, 4))
    fig.suptitle(f"Per-member scalars of the final field against the drawn parameters ({len(found.used)} members)")
    scalars_png = f"{out_prefix}-scalars.png"
    fig.savefig(scalars_png, dpi=110, metadata=png_metadata())
    plt.close(fig)
    return [fields_png, scalars_png]


# --- command line -----------------------------------------------------------------------------
def parse_range(text: str, cfg) -> list[int]:
    members = cfg.ensemble.members
    if text is None:
        if not members:
            raise UsageError("ensemble.members is 0: give the members with --members FIRST-LAST")
        return list(range(1, members + 1))
    return parse_members([text], cfg)


def compress(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python analysis/ensemble_stats.py",
                    description="Mean, standard deviation, min, max and quantiles of the final field over the "
                    "ensemble's members, and per-member scalars (peak, total mass, spread) against the drawn "
                    "parameters: one netCDF-compatible HDF5 file and two PNGs. Missing or failed members are "
                    "listed and left out.")
    parser.add_argument("--config", default="configs/ensemble.yaml", help="ensemble config (default %(default)s)")
    parser.add_argument("--members", help="range FIRST-LAST (default 1..ensemble.members)")
    parser.add_argument("--field", help="which field of the model (default: its first, e.g. C; gray_scott: u, v)")
    parser.add_argument("--quantiles", type=float, nargs="*", default=[0.05, 0.5, 0.95],
                        help="quantiles to compute (default %(default)s); none: skip pass 2")
    parser.add_argument("-o", "--output", help="statistics file (default OUTPUT_DIR/stats.h5)")
    parser.add_argument("--no-plots", action="store_true", help="write the file only")
    parser.add_argument("--memory-mib", type=float, default=256,
                        help="memory for the quantile pass's block of rows (default %(default)s MiB)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load(args.config)
        numbers = parse_range(args.members, cfg)
        names = list(cfg.model_impl.fields)
        field = args.field or names[0]
        if field not in names:
            raise UsageError(f"--field {field}: the {cfg.model_impl.name} model has {', '.join(names)}")
        if any(not 0 <= q <= 1 for q in args.quantiles):
            raise UsageError(f"--quantiles {args.quantiles}: each must lie in [0, 1]")
        if args.memory_mib <= 0:
            raise UsageError("--memory-mib must be positive")
        out = args.output or os.path.join(cfg.ensemble.output_dir, "stats.h5")
        pngs = [] if args.no_plots else [f"{os.path.splitext(out)[0]}-{name}.png" for name in ("fields", "scalars")]
        check_analysis_output(out, [args.config], (".h5",), "-o")
        for png in pngs:
            check_analysis_output(png, [args.config], (".png",), "-o (its plots)")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    quantiles = sorted(set(args.quantiles))

    def say(message):
        print(message, flush=True)

    start = time.perf_counter()
    say(f"reading members {numbers[0]}..{numbers[-1]} from {cfg.ensemble.output_dir}")
    found, stats = first_pass(cfg, numbers, say, field)
    if found.foreign:
        print(f"error: member(s) {compress(found.foreign)} in {cfg.ensemble.output_dir} were computed for another "
              f"config than {args.config} (seed, perturbations, base problem or model source differ): statistics "
              f"over mixed configs would be wrong; rerun them with python solver/ensemble.py --config "
              f"{args.config} --force, or pass the --config that produced them", file=sys.stderr)
        return 2
    if found.missing:
        say(f"missing ({len(found.missing)}, no file): {compress(found.missing)}")
    for member, reason in sorted(found.failed.items()):
        say(f"failed: member {member}: {reason}")
    if not found.used:
        print(f"error: none of members {numbers[0]}..{numbers[-1]} has a complete file in "
              f"{cfg.ensemble.output_dir}; run the ensemble first (jobs/ensemble.sh)", file=sys.stderr)
        return 2
    qfields = quantiles_by_rows(found.paths, stats.mean.shape, quantiles, args.memory_mib, field) \
        if quantiles else None
    attrs = {"ensemble_config": args.config, "field": field, "members_requested": compress(numbers),
             "members_used_count": len(found.used),
             "members_missing": compress(found.missing) or "none",
             "members_failed": compress(sorted(found.failed)) or "none",
             "final_time": found.time,
             "statistics_method": "mean, std (n - 1), min, max: Welford, one member at a time; quantiles: "
                                  "exact (numpy linear), one block of rows across all members at a time"}
    write_stats(out, found, stats, quantiles, qfields, attrs)
    say(f"{len(found.used)} of {len(numbers)} members -> {out}")
    if not args.no_plots:
        for png in plot(os.path.splitext(out)[0], found, stats, quantiles, qfields):
            say(f"plot -> {png}")
    say(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
