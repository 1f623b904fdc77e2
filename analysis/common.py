"""What every analysis script shares: open a solver output safely, rebuild its config, compare with the
analytic Gaussian, and turn bad input into one line and exit code 2.

The analytic field comes from the solver itself (``solver.run.analytic`` over ``solver.kernels.gaussian``)
with the config stored in the file's ``config`` attribute, so the scripts never restate a formula.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:          # the scripts run as files: use this checkout's solver package
    sys.path.insert(0, str(REPO))

from solver import cli  # noqa: E402
from solver.config import Config, ConfigError, from_dict, parse_yaml  # noqa: E402
from solver.output import FIELD, attribute, open_complete  # noqa: E402
from solver.safety import reading  # noqa: E402

EXIT_USAGE = cli.EXIT_USAGE
Parser = cli.Parser      # argparse with one-line errors and exit code 2, as the solver's command line


class InputError(Exception):
    """Bad input to an analysis script; the message is one line for the user."""


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call main, turning InputError/ConfigError into ``error: ...`` on stderr and exit code 2."""
    try:
        return main(argv)
    except (InputError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE


@dataclass
class Output:
    """A finished solver output: axes, snapshot times, config and attributes; fields read on demand."""

    path: str
    x: np.ndarray
    y: np.ndarray
    time: np.ndarray
    cfg: Config
    attrs: dict
    units: dict            # 'x', 'y', 'time', 'C' -> units string
    field_label: str       # e.g. "concentration [1]"

    @property
    def snapshots(self) -> int:
        return self.time.size

    def snapshot(self, index: int) -> np.ndarray:
        """The field at snapshot ``index`` (negative counts from the end), shape (ny, nx)."""
        import h5py
        with reading(self.path), h5py.File(self.path, "r") as f:
            return np.asarray(f[FIELD][index], dtype=np.float64)

    def exact(self, index: int) -> np.ndarray:
        """The analytic Gaussian at the time of snapshot ``index`` (infinite plane, no boundary)."""
        from solver.run import analytic          # imports numba: only when an analytic field is wanted
        return analytic(self.cfg, self.x, self.y, float(self.time[index]))

    def check_index(self, index: int) -> int:
        n = self.snapshots
        if not -n <= index < n:
            raise InputError(f"{self.path} has snapshots 0..{n - 1} (or -{n}..-1); {index} is out of range")
        return index % n


def _text(value) -> str:
    return str(attribute(value))


def open_output(path: str) -> Output:
    """Read the axes, times, config and attributes of a finished solver output, or raise InputError."""
    with reading(path):     # anything odd inside (types, a group for a dataset, damage): one line
        return _open_output(path)


def _open_output(path: str) -> Output:
    f = open_complete(path)            # missing, .partial, unfinished or not HDF5: one ConfigError line
    with f:
        missing = [name for name in (FIELD, "x", "y", "time") if name not in f]
        if missing or "config" not in f.attrs:
            what = f"datasets {', '.join(missing)}" if missing else "the 'config' attribute"
            raise InputError(f"{path}: not a solver output (no {what}); pass an output of 'python -m solver run'")
        x, y, time = f["x"][:], f["y"][:], f["time"][:]
        if f[FIELD].shape != (time.size, y.size, x.size) or time.size == 0:
            raise InputError(f"{path}: {FIELD} has shape {f[FIELD].shape}, expected "
                             f"({time.size}, {y.size}, {x.size}); the file is damaged")
        units = {name: _text(f[name].attrs.get("units", "")) for name in ("x", "y", "time", FIELD)}
        label = f"{_text(f[FIELD].attrs.get('long_name', FIELD))} [{units[FIELD]}]"
        attrs = {k: attribute(v) for k, v in f.attrs.items()}
    if not isinstance(attrs["config"], str):
        raise InputError(f"{path}: its 'config' attribute is not text; pass an output of 'python -m solver run'")
    try:
        cfg = from_dict(parse_yaml(attrs["config"], f"{path}:config"), f"{path}:config")
    except ConfigError as err:
        raise InputError(f"the config stored in the file does not load: {err}") from None
    return Output(path, x, y, time, cfg, attrs, units, label)


def errors(numerical: np.ndarray, exact: np.ndarray, dx: float, dy: float) -> dict:
    """Discrete L2 (sqrt of sum err^2 dx dy, the grid's approximation of the integral) and max errors,
    absolute and relative to the analytic field's own norms."""
    diff = numerical - exact
    l2 = float(np.sqrt(np.sum(diff ** 2) * dx * dy))
    l2_exact = float(np.sqrt(np.sum(exact ** 2) * dx * dy))
    max_abs = float(np.max(np.abs(diff)))
    return {"l2": l2, "max": max_abs, "l2_relative": l2 / l2_exact, "max_relative": max_abs / float(np.max(np.abs(exact)))}


def write_csv(rows: list[dict], path: str, columns: list[str] | None = None) -> str:
    """The table ``rows`` (dicts with the same keys) as CSV; ``columns`` picks and orders the keys."""
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def check_outputs(inputs: list[str], *outputs: tuple[str | None, str, tuple[str, ...]]) -> None:
    """Refuse, before any work, outputs (path, option, extensions) that are directories, have another
    extension, are inputs or would replace a file of another kind (solver.files.check_analysis_output)."""
    from solver.files import check_analysis_output
    for path, option, extensions in outputs:
        if path is not None:
            check_analysis_output(path, [str(name) for name in inputs], extensions, option)


def default_output(path: str, suffix: str) -> str:
    """FILE.h5 -> FILE<suffix> next to it, e.g. results/default-verify.png."""
    p = Path(path)
    return str(p.with_name(p.stem + suffix))


def add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="an HDF5 output of 'python -m solver run' (not a .partial)")
