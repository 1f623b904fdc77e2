#!/usr/bin/env python
"""Plot snapshots of a solver output as PNGs with physical axes, a colour bar and the time in the title.

    python analysis/plot_field.py results/default.h5                  # final snapshot -> results/default.png
    python analysis/plot_field.py results/default.h5 --snapshot 0 -o first.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from solver.config import ConfigError  # noqa: E402
from solver.output import open_complete  # noqa: E402


def plot(path: str, snapshot: int, out: str) -> str:
    with open_complete(path) as f:
        field = f["C"]
        n = field.shape[0]
        if not -n <= snapshot < n:
            raise SystemExit(f"error: {path} has snapshots 0..{n - 1}; --snapshot {snapshot} is out of range")
        data, t = field[snapshot], f["time"][snapshot]
        x, y = f["x"][:], f["y"][:]
        units = {name: f[name].attrs.get("units", "") for name in ("x", "y", "time")}
        label = f"{field.attrs.get('long_name', 'C')} [{field.attrs.get('units', '')}]"
    fig, ax = plt.subplots(figsize=(8, 8 * (y[-1] - y[0]) / (x[-1] - x[0]) * 0.8 + 1.2), layout="constrained")
    image = ax.imshow(data, origin="lower", extent=(x[0], x[-1], y[0], y[-1]), cmap="viridis")
    ax.set_xlabel(f"x [{units['x']}]")
    ax.set_ylabel(f"y [{units['y']}]")
    ax.set_title(f"{Path(path).name}: t = {t:.4g} {units['time']}")
    fig.colorbar(image, ax=ax, label=label, shrink=0.9)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="HDF5 output of the solver")
    parser.add_argument("--snapshot", type=int, default=-1, help="snapshot index (default: the last)")
    parser.add_argument("-o", "--output", help="PNG to write (default: FILE with .png)")
    args = parser.parse_args(argv)
    out = args.output or str(Path(args.file).with_suffix(".png"))
    try:
        print(f"wrote {plot(args.file, args.snapshot, out)}")
    except ConfigError as err:          # missing, unfinished or not a solver output
        parser.exit(2, f"error: {err}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
