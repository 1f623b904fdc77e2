#!/usr/bin/env python
"""Plot snapshots of a solver output as PNGs with physical axes, a colour bar and the time in the title.

    python analysis/plot_field.py results/default.h5                  # final snapshot -> results/default.png
    python analysis/plot_field.py results/default.h5 --snapshot 0 -o first.png
    python analysis/plot_field.py results/default.h5 --snapshot 0 --snapshot -1      # -> default-snap000.png, ...
    python analysis/plot_field.py results/default.h5 --compare        # numerical | exact | error side by side
    python analysis/plot_field.py results/default.h5 --animate results/default.mp4   # every snapshot (ffmpeg)
    python analysis/plot_field.py results/gray-scott.h5 --field v     # one field of a model with several

Every field of the model is a panel of its own, unless --field picks one. The exact field is the model's own
exact solution for the config stored in the file (a model without one cannot --compare). With several
snapshots, each PNG gets -snapNNN before the suffix of -o (or of FILE.png).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.common import (InputError, Output, Parser, add_field_argument, add_file_argument,  # noqa: E402
                             check_outputs, open_output, png_metadata, run_main, video_metadata)


def _figure_size(out: Output, panels: int) -> tuple[float, float]:
    """Width and height (inches) that fit ``panels`` plots of the domain side by side with colour bars."""
    aspect = (out.y[-1] - out.y[0]) / (out.x[-1] - out.x[0])
    width = 6.0 * panels + 0.5
    return width, max(3.0, min(12.0, 6.0 * aspect * 0.85 + 1.4))


def _panel(fig, ax, out: Output, data: np.ndarray, title: str, label: str, **style):
    image = ax.imshow(data, origin="lower", extent=(out.x[0], out.x[-1], out.y[0], out.y[-1]),
                      interpolation="nearest", **style)
    ax.set_xlabel(f"x [{out.units['x']}]")
    ax.set_ylabel(f"y [{out.units['y']}]")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=label, shrink=0.9)
    return image


def _time_text(out: Output, index: int) -> str:
    return f"t = {out.time[index]:.4g} {out.units['time']}"


def plot_snapshot(outs: list[Output], index: int, path: str) -> str:
    """One snapshot: each field (one Output per field) in a panel of its own."""
    out = outs[0]
    fig, axes = plt.subplots(1, len(outs), figsize=_figure_size(out, len(outs)), layout="constrained",
                             squeeze=False)
    for ax, field in zip(axes[0], outs):
        title = f"{field.field}" if len(outs) > 1 else f"{Path(out.path).name}: snapshot {index}, {_time_text(out, index)}"
        _panel(fig, ax, field, field.snapshot(index), title, field.field_label, cmap="viridis")
    if len(outs) > 1:
        fig.suptitle(f"{Path(out.path).name}: snapshot {index}, {_time_text(out, index)}")
    fig.savefig(path, dpi=120, metadata=png_metadata())
    plt.close(fig)
    return path


def plot_compare(outs: list[Output], index: int, path: str) -> str:
    """Numerical, exact and error (numerical - exact) side by side; the first two share a colour scale."""
    out = outs[0]
    numerical, exact = out.snapshot(index), out.exact(index)
    error = numerical - exact
    low, high = min(numerical.min(), exact.min()), max(numerical.max(), exact.max())
    bound = float(np.max(np.abs(error))) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=_figure_size(out, 3), layout="constrained")
    _panel(fig, axes[0], out, numerical, "numerical", out.field_label, cmap="viridis", vmin=low, vmax=high)
    _panel(fig, axes[1], out, exact, f"exact ({out.cfg.model_impl.name})", out.field_label, cmap="viridis",
           vmin=low, vmax=high)
    _panel(fig, axes[2], out, error, f"error (max |e| = {bound:.3g})", f"numerical - exact [{out.units[out.field]}]",
           cmap="RdBu_r", vmin=-bound, vmax=bound)
    fig.suptitle(f"{Path(out.path).name}: snapshot {index}, {_time_text(out, index)}")
    fig.savefig(path, dpi=110, metadata=png_metadata())
    plt.close(fig)
    return path


def animate(out: Output, path: str, fps: int) -> str:
    """Every snapshot as one frame of a video (needs ffmpeg), on one fixed colour scale."""
    from matplotlib import animation
    if shutil.which("ffmpeg") is None or not animation.writers.is_available("ffmpeg"):
        raise InputError("--animate needs ffmpeg on PATH: install it (Debian: apt-get install ffmpeg, "
                         "or run 'bash jobs/setup.sh') and retry")
    first = out.snapshot(0)
    low, high = float(first.min()), float(first.max())
    fig, ax = plt.subplots(figsize=_figure_size(out, 1), layout="constrained")
    image = _panel(fig, ax, out, first, "", out.field_label, cmap="viridis", vmin=low, vmax=high)

    def frame(index: int):
        image.set_data(out.snapshot(index))
        ax.set_title(f"{Path(out.path).name}: snapshot {index}, {_time_text(out, index)}")
        return (image,)

    movie = animation.FuncAnimation(fig, frame, frames=out.snapshots, blit=False)
    movie.save(path, writer=animation.FFMpegWriter(fps=fps, metadata=video_metadata()), dpi=100)
    plt.close(fig)
    return path


def check_ffmpeg() -> None:
    """Refuse --animate without ffmpeg before anything is written (not after the PNGs)."""
    import shutil
    program = plt.rcParams["animation.ffmpeg_path"]
    if not shutil.which(program):
        raise InputError(f"--animate needs ffmpeg, and {program} is not on PATH; install it (apt-get install ffmpeg, "
                         "or module load ffmpeg) or leave out --animate")


def output_names(out: Output, indices: list[int], name: str | None, compare: bool) -> list[str]:
    """Where each snapshot's PNG goes: -o (or FILE.png, FILE-compare.png) for one, -snapNNN added for several."""
    tag = "-compare" if compare else ""
    base = Path(name) if name else Path(out.path).with_suffix(".png")
    if len(indices) == 1:
        return [str(base) if name or not compare else str(base.with_name(base.stem + tag + ".png"))]
    width = len(str(out.snapshots - 1))
    return [str(base.with_name(f"{base.stem}{tag}-snap{i:0{width}d}{base.suffix or '.png'}")) for i in indices]


def main(argv=None) -> int:
    parser = Parser(prog="plot_field.py", description=__doc__.splitlines()[0],
                    epilog="\n".join(__doc__.splitlines()[2:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_file_argument(parser)
    parser.add_argument("--snapshot", type=int, action="append", metavar="N",
                        help="snapshot index, negative from the end (repeatable; default: the last)")
    parser.add_argument("--all", action="store_true", help="every snapshot of the file")
    parser.add_argument("--compare", action="store_true",
                        help="numerical, exact and error fields side by side instead of the field alone")
    add_field_argument(parser)
    parser.add_argument("--animate", metavar="VIDEO", help="also write every snapshot as a video (.mp4; needs ffmpeg)")
    parser.add_argument("--fps", type=int, default=4, help="frames per second of the video (default: 4)")
    parser.add_argument("-o", "--output", help="PNG to write (default: FILE with .png, or -compare.png)")
    args = parser.parse_args(argv)
    if args.fps < 1:
        parser.error(f"--fps {args.fps}: needs at least 1 frame per second")
    check_outputs([args.file], (args.output, "-o", (".png",)), (args.animate, "--animate", (".mp4",)))
    if args.animate:
        check_ffmpeg()
    out = open_output(args.file, args.field)
    names = [args.field] if args.field else list(out.cfg.model_impl.fields)
    outs = [out, *(open_output(args.file, name) for name in names[1:])]
    if args.compare:
        if len(outs) > 1:
            raise InputError(f"--compare shows one field; pick one of {', '.join(names)} with --field")
        out.require_exact("--compare")
    if args.all:
        indices = list(range(out.snapshots))
    else:
        indices = [out.check_index(i) for i in (args.snapshot or [-1])]
    plot = plot_compare if args.compare else plot_snapshot
    pngs = output_names(out, indices, args.output, args.compare)
    check_outputs([args.file], *((png, "-o", (".png",)) for png in pngs))
    for index, png in zip(indices, pngs):
        print(f"wrote {plot(outs, index, png)}")
    if args.animate:
        print(f"wrote {animate(out, args.animate, args.fps)} ({out.snapshots} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
