"""Output: snapshots of the field in one HDF5 file that xarray, netCDF tools and ParaView read.

Layout (netCDF-4 compatible): dimension scales ``time`` (unlimited), ``y`` and ``x``, the field
``C(time, y, x)`` float64 with CF ``units``/``long_name``, and provenance as root attributes, all in
classic-model types (see :func:`set_netcdf_attrs`). Rank 0 writes an XDMF sidecar (``PATH`` with ``.xdmf``)
for ParaView and VisIt when the file is complete. The file is
written as ``PATH.partial`` and renamed when complete, after its ``complete`` attribute is set, so a file
under the final name is always whole. Under MPI every rank writes its own block straight into the global
dataset with collective I/O; there is no gather, and every metadata call is made by every rank.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .grid import Decomposition
from .xdmf import write_xdmf

FIELD = "C"
CHUNK_EDGE = 512       # chunk at most 512 x 512 nodes (2 MiB) per snapshot


def set_netcdf_attrs(attrs, values: dict[str, Any]) -> None:
    """Store attributes in types of the netCDF classic data model: text as fixed-length UTF-8 (NC_CHAR, not
    h5py's variable-length NC_STRING), whole numbers as 32-bit NC_INT, floats as NC_DOUBLE, None as "".
    With NC_STRING and int64 the file is netCDF-4 only: ``nccopy -k nc7`` and classic-model tools refuse it.
    h5py reads such text back as bytes (solver.info.read_attrs decodes it)."""
    import h5py
    for key, value in values.items():
        if value is None:
            value = ""
        if isinstance(value, str):
            data = value.encode("utf-8")
            length = max(len(data), 1)          # HDF5 has no zero-length strings; NUL padding reads as ""
            attrs.create(key, np.array(data, dtype=f"S{length}"), dtype=h5py.string_dtype("utf-8", length))
            continue
        array = np.asarray(value)
        if array.dtype.kind in "biu" and np.all(np.abs(array.astype(np.int64)) < 2 ** 31):
            value = array.astype(np.int32)
        attrs[key] = value


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

    def __init__(self, path: str, cfg, decomp: Decomposition, attrs: dict[str, Any],
                 resume_at: int | None = None):
        """Start ``PATH.partial``; with ``resume_at`` reopen it and keep only its first resume_at snapshots
        (a restart from a checkpoint taken then), so the finished file equals an uninterrupted run's."""
        import h5py
        self.path, self.decomp = path, decomp
        self.comm = decomp.comm
        self.tmp = partial_path(path)
        mode = "w" if resume_at is None else "r+"
        if self.comm is not None and self.comm.Get_size() > 1:
            self.file = h5py.File(self.tmp, mode, driver="mpio", comm=self.comm)
        else:
            self.file = h5py.File(self.tmp, mode)
        nx, ny = decomp.nx, decomp.ny
        self.axes = np.linspace(*cfg.grid.x, nx), np.linspace(*cfg.grid.y, ny)
        if resume_at is not None:
            self.file["time"].resize((resume_at,))
            self.file[FIELD].resize((resume_at, ny, nx))
            self.set_attrs(attrs)
            self.count = resume_at
            self.times = list(self.file["time"][:])
            return
        f = self.file
        x = f.create_dataset("x", data=self.axes[0])
        y = f.create_dataset("y", data=self.axes[1])
        time = f.create_dataset("time", shape=(0,), maxshape=(None,), chunks=(256,), dtype="f8")
        for scale, (units, name, axis) in ((x, ("m", "x coordinate", "X")), (y, ("m", "y coordinate", "Y")),
                                            (time, ("s", "time", "T"))):
            scale.make_scale(scale.name.lstrip("/"))
            # netCDF numbers dimensions by _Netcdf4Dimid (else by name): give them C's order (time, y, x)
            set_netcdf_attrs(scale.attrs, {"units": units, "long_name": name, "axis": axis,
                                           "_Netcdf4Dimid": "TYX".index(axis)})
        chunks = (1, min(ny, CHUNK_EDGE), min(nx, CHUNK_EDGE))
        field = f.create_dataset(FIELD, shape=(0, ny, nx), maxshape=(None, ny, nx), chunks=chunks, dtype="f8")
        set_netcdf_attrs(field.attrs, {"units": "1", "long_name": "concentration"})
        for dim, scale in zip(field.dims, (time, y, x)):
            dim.attach_scale(scale)
        set_netcdf_attrs(f.attrs, {"Conventions": "CF-1.8", "complete": 0})
        self.set_attrs(attrs)
        self.count = 0
        self.times = []                 # snapshot times, for the XDMF sidecar

    def set_attrs(self, attrs: dict[str, Any]) -> None:
        """Root attributes (every rank must pass the same values: this is a collective call)."""
        set_netcdf_attrs(self.file.attrs, attrs)

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
        self.times.append(t)

    def flush(self) -> None:
        """Push the snapshots so far to the file (before a checkpoint refers to them); collective."""
        self.file.flush()

    def close(self, attrs: dict[str, Any]) -> None:
        """Write the final attributes, mark the file complete and move it to its final name."""
        self.set_attrs({**attrs, "complete": 1})
        self.file.close()
        if self.decomp.rank == 0:
            os.replace(self.tmp, self.path)
            write_xdmf(self.path, FIELD, *self.axes, self.times)
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
