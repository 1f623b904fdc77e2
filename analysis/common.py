"""What every analysis script shares: open a solver output safely, rebuild its config, pick a field of its
model, compare with the model's exact solution, and turn bad input into one line and exit code 2.

The exact field comes from the model itself (its ``exact`` hook, through ``solver.core.fields.exact_field``) with the
config stored in the file's ``config`` attribute, so the scripts never restate a formula and know no model.
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

from solver.args import Parser  # noqa: E402,F401  (argparse with one-line errors, as the solver's)
from solver.core.config import Config, from_dict  # noqa: E402
from solver.core.yamlfile import parse_yaml  # noqa: E402
from solver.errors import EXIT_USAGE, UserError  # noqa: E402
from solver.storage.files import png_metadata, video_metadata  # noqa: E402,F401  (the scripts mark their outputs)
from solver.safety import reading  # noqa: E402
from solver.storage.output import attribute, open_complete  # noqa: E402


class InputError(Exception):
    """Bad input to an analysis script; the message is one line for the user."""


def run_main(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Call main, turning InputError/UserError into ``error: ...`` on stderr and exit code 2."""
    try:
        return main(argv)
    except (InputError, UserError) as err:
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
    units: dict            # 'x', 'y', 'time' and the field's name -> units string
    field_label: str       # e.g. "concentration [1]"
    field: str             # the field the script looks at (the model's first unless --field)
    _warned: bool = False  # said once that the model file changed since the run

    @property
    def snapshots(self) -> int:
        return self.time.size

    @property
    def dx(self) -> float:
        """The spacing of the stored nodes along x (a subsampled output's own, not the run's)."""
        return float(self.x[1] - self.x[0])

    @property
    def dy(self) -> float:
        return float(self.y[1] - self.y[0])

    def snapshot(self, index: int) -> np.ndarray:
        """The field at snapshot ``index`` (negative counts from the end), shape (ny, nx) of the stored nodes,
        as float64 whatever the stored precision."""
        import h5py
        with reading(self.path), h5py.File(self.path, "r") as f:
            return np.asarray(f[self.field][index], dtype=np.float64)

    @property
    def has_exact(self) -> bool:
        return self.cfg.model_impl.has_exact

    def require_exact(self, what: str) -> None:
        """Refuse, in one line, a comparison the model cannot make."""
        if not self.has_exact:
            model = self.cfg.model_impl
            raise InputError(f"{self.path}: the {model.name} model ({model.file}) has no exact solution, so "
                             f"{what} has nothing to compare with; add an exact() to the model (docs/models.md)")

    def exact(self, index: int) -> np.ndarray:
        """The model's exact solution of this field at the time of snapshot ``index``, on the stored nodes (a
        window or subsampling of the grid: solver/core/sampling.py, from the config stored in the file)."""
        from solver.core import sampling
        from solver.core.fields import exact_field
        from solver.core.grid import init_global_grid
        self.require_exact("this comparison")
        recorded, model = self.attrs.get("model_source_sha256"), self.cfg.model_impl
        if recorded and recorded != model.source_hash and not self._warned:
            print(f"warning: {self.path} was written by another version of {model.file} (source "
                  f"{recorded}, now {model.source_hash}): the exact field is today's", file=sys.stderr)
            self._warned = True
        fields = exact_field(self.cfg, init_global_grid(self.cfg), float(self.time[index]))
        rows, cols = sampling.selection(self.cfg, "y"), sampling.selection(self.cfg, "x")
        return fields[list(self.cfg.model_impl.fields).index(self.field)][rows.start:rows.stop:rows.step,
                                                                          cols.start:cols.stop:cols.step]

    def check_index(self, index: int) -> int:
        n = self.snapshots
        if not -n <= index < n:
            raise InputError(f"{self.path} has snapshots 0..{n - 1} (or -{n}..-1); {index} is out of range")
        return index % n


def _text(value) -> str:
    return str(attribute(value))


def open_output(path: str, field: str | None = None) -> Output:
    """Read the axes, times, config and attributes of a finished solver output, or raise InputError.
    ``field`` picks one of the model's fields (default: the first)."""
    with reading(path):     # anything odd inside (types, a group for a dataset, damage): one line
        return _open_output(path, field)


def _open_output(path: str, field: str | None) -> Output:
    f = open_complete(path)            # missing, .partial, unfinished or not HDF5: one ConfigError line
    with f:
        if "config" not in f.attrs:
            raise InputError(f"{path}: not a solver output (no 'config' attribute); pass an output of "
                             "'python -m solver run'")
        attrs = {k: attribute(v) for k, v in f.attrs.items()}
        if not isinstance(attrs["config"], str):
            raise InputError(f"{path}: its 'config' attribute is not text; pass an output of 'python -m solver run'")
        try:
            cfg = from_dict(parse_yaml(attrs["config"], f"{path}:config"), f"{path}:config")
        except UserError as err:
            raise InputError(f"the config stored in the file does not load: {err}") from None
        names = list(cfg.model_impl.fields)
        field = names[0] if field is None else field
        if field not in names:
            raise InputError(f"{path}: no field {field!r}; the {cfg.model_impl.name} model has "
                             f"{', '.join(names)}: pick one with --field")
        missing = [name for name in (field, "x", "y", "time") if name not in f]
        if missing:
            raise InputError(f"{path}: not a solver output (no datasets {', '.join(missing)}); pass an output "
                             "of 'python -m solver run'")
        x, y, time = f["x"][:], f["y"][:], f["time"][:]
        if f[field].shape != (time.size, y.size, x.size) or time.size == 0:
            raise InputError(f"{path}: {field} has shape {f[field].shape}, expected "
                             f"({time.size}, {y.size}, {x.size}); the file is damaged")
        units = {name: _text(f[name].attrs.get("units", "")) for name in ("x", "y", "time", field)}
        label = f"{_text(f[field].attrs.get('long_name', field))} [{units[field]}]"
    return Output(path, x, y, time, cfg, attrs, units, label, field)


def add_field_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--field", help="which field of the model (default: its first, e.g. C; gray_scott: u, v)")


def errors(numerical: np.ndarray, exact: np.ndarray, dx: float, dy: float) -> dict:
    """Discrete L2 (sqrt of sum err^2 dx dy, the grid's approximation of the integral) and max errors,
    absolute and relative to the exact field's own norms."""
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
    extension, are inputs or would replace a file of another kind (solver/storage/files.py check_analysis_output)."""
    from solver.storage.files import check_analysis_output
    for path, option, extensions in outputs:
        if path is not None:
            check_analysis_output(path, [str(name) for name in inputs], extensions, option)


def default_output(path: str, suffix: str) -> str:
    """FILE.h5 -> FILE<suffix> next to it, e.g. results/default-verify.png."""
    p = Path(path)
    return str(p.with_name(p.stem + suffix))


def add_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="an HDF5 output of 'python -m solver run' (not a .partial)")
