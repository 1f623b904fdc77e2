"""Output: snapshots of the field in one HDF5 file that xarray, netCDF tools and ParaView read.

Layout (netCDF-4 compatible): dimension scales ``time`` (unlimited), ``y`` and ``x``, the field
``C(time, y, x)`` float64 with CF ``units``/``long_name``, and provenance as root attributes. The file is
written as ``PATH.partial`` and renamed when complete, after its ``complete`` attribute is set, so a file
under the final name is always whole. Under MPI every rank writes its own block straight into the global
dataset with collective I/O; there is no gather, and every metadata call is made by every rank.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .grid import Decomposition

FIELD = "C"
CHUNK_EDGE = 512       # chunk at most 512 x 512 nodes (2 MiB) per snapshot


def partial_path(path: str) -> str:
    return path + ".partial"


def is_complete(path: str) -> bool:
    """True if path is a finished output (its ``complete`` attribute is set)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("complete", 0))
    except (OSError, KeyError):
        return False


class FieldWriter:
    """Appends snapshots of the owned blocks to ``PATH.partial``; :meth:`close` makes it ``PATH``."""

    def __init__(self, path: str, cfg, decomp: Decomposition, attrs: dict[str, Any]):
        import h5py
        self.path, self.decomp = path, decomp
        self.comm = decomp.comm
        self.tmp = partial_path(path)
        if self.comm is not None and self.comm.Get_size() > 1:
            self.file = h5py.File(self.tmp, "w", driver="mpio", comm=self.comm)
        else:
            self.file = h5py.File(self.tmp, "w")
        f = self.file
        nx, ny = decomp.nx, decomp.ny
        x = f.create_dataset("x", data=np.linspace(*cfg.grid.x, nx))
        y = f.create_dataset("y", data=np.linspace(*cfg.grid.y, ny))
        time = f.create_dataset("time", shape=(0,), maxshape=(None,), chunks=(256,), dtype="f8")
        for scale, (units, name, axis) in ((x, ("m", "x coordinate", "X")), (y, ("m", "y coordinate", "Y")),
                                            (time, ("s", "time", "T"))):
            scale.make_scale(scale.name.lstrip("/"))
            scale.attrs.update(units=units, long_name=name, axis=axis)
        chunks = (1, min(ny, CHUNK_EDGE), min(nx, CHUNK_EDGE))
        field = f.create_dataset(FIELD, shape=(0, ny, nx), maxshape=(None, ny, nx), chunks=chunks, dtype="f8")
        field.attrs.update(units="1", long_name="concentration")
        for dim, scale in zip(field.dims, (time, y, x)):
            dim.attach_scale(scale)
        f.attrs.update({"Conventions": "CF-1.8", "complete": 0})
        self.set_attrs(attrs)
        self.count = 0

    def set_attrs(self, attrs: dict[str, Any]) -> None:
        """Root attributes (every rank must pass the same values: this is a collective call)."""
        for key, value in attrs.items():
            self.file.attrs[key] = "" if value is None else value

    def append(self, t: float, block: np.ndarray) -> None:
        """Add one snapshot at time t; ``block`` is this rank's owned nodes, shape (ny_own, nx_own)."""
        f, d = self.file, self.decomp
        n = self.count + 1
        f["time"].resize((n,))
        f[FIELD].resize((n, d.ny, d.nx))
        rows, cols = slice(*d.y_range), slice(*d.x_range)
        if self.comm is not None and self.comm.Get_size() > 1:
            if d.rank == 0:
                f["time"][n - 1] = t
            with f[FIELD].collective:
                f[FIELD][n - 1, rows, cols] = block
        else:
            f["time"][n - 1] = t
            f[FIELD][n - 1, rows, cols] = block
        self.count = n

    def close(self, attrs: dict[str, Any]) -> None:
        """Write the final attributes, mark the file complete and move it to its final name."""
        self.set_attrs(attrs)
        self.file.attrs["complete"] = 1
        self.file.close()
        if self.decomp.rank == 0:
            os.replace(self.tmp, self.path)
        if self.comm is not None:
            self.comm.Barrier()

    def discard(self, everywhere: bool = False) -> None:
        """Leave the file ``.partial``. Closing is collective under MPI, so it is closed only when every
        rank discards together (``everywhere``); a failure on one rank leaves it open for ``comm.Abort``,
        which would otherwise never be reached while the other ranks wait in an exchange."""
        if self.comm is not None and self.comm.Get_size() > 1 and not everywhere:
            return
        try:
            self.file.close()
        except Exception:
            pass
