"""Which nodes the output keeps: the snapshot selection (a window, every n-th node), the probes' nodes, the
steps of each record series and the trapezoid weights of the per-step totals.

All of it is a function of the config and global node numbers only, so every decomposition writes the same
nodes and the same records; the writer (solver/storage/records.py, output.py) and the readers
(analysis/common.py, ``--dry-run``) ask here instead of computing offsets themselves.
"""
from __future__ import annotations

import numpy as np

from .schema import Config

SNAP = 1e-9      # a window end or probe within this fraction of a spacing beyond the domain counts as inside


def selection(cfg: Config, axis: str) -> range:
    """Global node numbers along ``axis`` that snapshots keep: the nodes inside ``output.window`` (all, by
    default), every ``output.subsample``-th from the window's first node."""
    coords = cfg.axis(axis)
    step = cfg.output.subsample[0 if axis == "x" else 1]
    lo, hi = (float(end) for end in cfg.output.window.get(axis, (coords[0], coords[-1])))
    spacing = getattr(cfg, "d" + axis)
    inside = np.nonzero((coords >= lo - SNAP * spacing) & (coords <= hi + SNAP * spacing))[0]
    if inside.size == 0:
        return range(0)
    return range(int(inside[0]), int(inside[-1]) + 1, step)


def owned_part(chosen: range, start: int, stop: int) -> tuple[slice, slice]:
    """(positions in the selection, local slice of the owned nodes) of the selected nodes a rank owning global
    nodes ``[start, stop)`` holds; both empty when it holds none."""
    first = max(0, -(-(start - chosen.start) // chosen.step))          # ceil division
    last = min(len(chosen), -(-(stop - chosen.start) // chosen.step))
    if last <= first:
        return slice(0, 0), slice(0, 0)
    begin = chosen.start + first * chosen.step - start
    return slice(first, last), slice(begin, begin + (last - first - 1) * chosen.step + 1, chosen.step)


def snap(cfg: Config, axis: str, value: float) -> int | None:
    """The node nearest ``value`` along ``axis`` (the start again past the end of a periodic axis), or None
    when it lies outside the domain."""
    (lo, hi), n = getattr(cfg.grid, axis), getattr(cfg.grid, "n" + axis)
    spacing = getattr(cfg, "d" + axis)
    if not lo - SNAP * spacing <= value <= hi + SNAP * spacing:
        return None
    index = int(round((value - lo) / spacing))
    return index % n if cfg.boundary.periodic(axis) else min(index, n - 1)


def probe_nodes(cfg: Config) -> dict[str, tuple[int, int]]:
    """Probe name -> its node ``(i, j)`` (x and y node numbers); probes are checked inside the domain by
    validation, so every one snaps."""
    return {name: (snap(cfg, "x", float(x)), snap(cfg, "y", float(y)))
            for name, (x, y) in cfg.output.probes.items()}


def describe_probes(cfg: Config) -> list[str]:
    """One line per probe: where it was asked for and the node it reads (the run and --dry-run say them)."""
    x, y = cfg.axis("x"), cfg.axis("y")
    return [f"probe {name}: asked at ({float(cfg.output.probes[name][0]):g}, {float(cfg.output.probes[name][1]):g}), "
            f"reads node (i = {i}, j = {j}) at ({x[i]:g}, {y[j]:g})" for name, (i, j) in probe_nodes(cfg).items()]


def is_record_step(every: int, step: int, nsteps: int) -> bool:
    """Whether a series taken every ``every`` steps (0: never) has a record at ``step``: step 0, each multiple
    of ``every``, and the last step."""
    return bool(every) and (step % every == 0 or step == nsteps)


def records_until(every: int, step: int, nsteps: int) -> int:
    """How many records such a series holds up to and including ``step`` (a restart keeps exactly these)."""
    if not every:
        return 0
    return 1 + step // every + (step == nsteps and step % every != 0)


def trapezoid_weights(cfg: Config, axis: str, start: int, stop: int) -> np.ndarray:
    """The trapezoid rule's weights of global nodes ``[start, stop)`` along ``axis``, spacing included: half a
    spacing on the two end nodes of a bounded axis, a whole one elsewhere and on a periodic axis."""
    n, spacing = getattr(cfg.grid, "n" + axis), getattr(cfg, "d" + axis)
    w = np.full(stop - start, spacing)
    if not cfg.boundary.periodic(axis):
        w[np.isin(np.arange(start, stop), (0, n - 1))] *= 0.5
    return w
