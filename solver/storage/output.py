"""Output: snapshots of the field in one HDF5 file that xarray, netCDF tools and ParaView read.

Layout (netCDF-4 compatible): dimension scales ``time`` (unlimited), ``y`` and ``x``, one dataset per field
of the model, named by the field (``C(time, y, x)`` for the single-field models), float64 with CF
``units``/``long_name`` from the model, and provenance as root attributes, all in
classic-model types (see :func:`set_netcdf_attrs`). Rank 0 writes an XDMF sidecar (``PATH`` with ``.xdmf``)
for ParaView and VisIt when the file is complete. The file is
written as ``PATH.partial`` and renamed when complete, after its ``complete`` attribute is set, so a file
under the final name is always whole. Under MPI every rank writes its own block straight into the global
dataset with collective I/O; there is no gather, and every metadata call is made by every rank.

Failures while writing (a full disk, a vanished directory) become one :class:`OutputError` line; a serial
run then removes its ``.partial`` (nothing half-written is left behind), while under MPI the failing rank
aborts the job and the ``.partial`` stays. solver/storage/lock.py keeps two runs from writing the same output.
"""
from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..core.grid import Decomposition
from ..errors import ConfigError, OutputError
from .xdmf import write_xdmf

CHUNK_EDGE = 512       # chunk at most 512 x 512 nodes (2 MiB) per snapshot


def set_netcdf_attrs(attrs, values: dict[str, Any]) -> None:
    """Store attributes in types of the netCDF classic data model: text as fixed-length UTF-8 (NC_CHAR, not
    h5py's variable-length NC_STRING), whole numbers as 32-bit NC_INT, floats as NC_DOUBLE, None as "".
    With NC_STRING and int64 the file is netCDF-4 only: ``nccopy -k nc7`` and classic-model tools refuse it.
    h5py reads such text back as bytes (:func:`attribute` decodes it)."""
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


def attribute(value: Any) -> Any:
    """An attribute as plain Python: text (stored as fixed-length bytes, see :func:`set_netcdf_attrs`)
    decoded, numpy scalars and arrays as numbers and lists. Every reader of provenance goes through here."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value.decode() if isinstance(value, bytes) else value


def partial_path(path: str) -> str:
    return path + ".partial"


def reason(err: BaseException) -> str:
    """The operating system's words for an I/O failure, without HDF5's multi-line error stack."""
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno)
    found = re.search(r"error message = '([^']*)'", str(err))   # HDF5 quotes the C library's message
    if found:
        return found.group(1)
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


@contextmanager
def writing(path: str, what: str = "writing"):
    """Turn an I/O failure inside the block into one OutputError line naming the file."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        if isinstance(err, OutputError):
            raise
        raise OutputError(f"{what} {path}: {reason(err)}") from None


def open_hdf5(path: str, mode: str, comm, **options):
    """h5py.File on one rank, or opened by every rank of comm together (the mpio driver) on several."""
    import h5py
    if comm.Get_size() > 1:
        return h5py.File(path, mode, driver="mpio", comm=comm, **options)
    return h5py.File(path, mode, **options)


def open_complete(path: str):
    """Open a finished output read-only; a missing, unfinished or foreign file is one ConfigError line.

    Readers (``solver info``, the analysis scripts) go through here, so none of them ever reads a file
    that a killed or still running solver left behind.
    """
    import h5py
    path = str(path)
    if path.endswith(".partial"):
        raise ConfigError(f"{path}: an unfinished output (its run was stopped, or is still running); "
                          f"read {path[:-len('.partial')]} once a run has finished it")
    if not os.path.exists(path):
        partial = partial_path(path)
        hint = f" ({partial} exists: that run did not finish, or is still running)" if os.path.exists(partial) else ""
        raise ConfigError(f"{path}: no such file{hint}")
    if not os.path.isfile(path):     # a directory, a FIFO (opening it would wait for a writer), a device
        raise ConfigError(f"{path}: not a regular file; pass an output of 'python -m solver run'")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ConfigError(f"{path}: cannot open it as HDF5 ({reason(err)}); is it a solver output?") from None
    if not f.attrs.get("complete", 0):
        f.close()
        raise ConfigError(f"{path}: an unfinished output (its 'complete' attribute is not set): the run that "
                          "wrote it did not finish; rerun it")
    return f


_unclosed: list = []      # writers whose HDF5 file could not be closed after a failure


def closed_cleanly() -> bool:
    """False once a failed write left an HDF5 file that cannot be closed: freeing its Python objects
    would then crash the interpreter, so the caller should keep them and leave with ``os._exit``."""
    return not _unclosed


class FieldWriter:
    """Appends snapshots of the owned blocks to ``PATH.partial``; :meth:`close` makes it ``PATH``."""

    def __init__(self, path: str, cfg, decomp: Decomposition, attrs: dict[str, Any],
                 resume_at: int | None = None):
        """Start ``PATH.partial``; with ``resume_at`` reopen it and keep only its first resume_at snapshots
        (a restart from a checkpoint taken then), so the finished file equals an uninterrupted run's."""
        self.path, self.decomp = path, decomp
        self.fields = cfg.model_impl.fields           # name -> (units, long name)
        self.coefficients = cfg.model_impl.coefficient_names     # fields that do not evolve: written once
        self.comm = decomp.comm
        self.tmp = partial_path(path)
        self.parallel = self.comm.Get_size() > 1
        try:
            with writing(self.path):
                self._create(cfg, attrs, resume_at)
        except BaseException:
            self.discard(keep=resume_at is not None)
            raise

    def _create(self, cfg, attrs: dict[str, Any], resume_at: int | None) -> None:
        decomp = self.decomp
        mode = "w" if resume_at is None else "r+"
        # No chunk cache: every snapshot goes to disk inside append(), so a full disk fails there (with
        # errno) and not later in a cache flush at close, after which HDF5 can crash the interpreter.
        self.file = open_hdf5(self.tmp, mode, self.comm, rdcc_nbytes=0)
        nx, ny = decomp.nx, decomp.ny
        self.axes = cfg.axis("x"), cfg.axis("y")
        if resume_at is not None:
            self.file["time"].resize((resume_at,))
            for name in self.fields:
                self.file[name].resize((resume_at, ny, nx))
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
        for name, (units, long_name) in self.fields.items():
            field = f.create_dataset(name, shape=(0, ny, nx), maxshape=(None, ny, nx), chunks=chunks, dtype="f8")
            set_netcdf_attrs(field.attrs, {"units": units, "long_name": long_name})
            for dim, scale in zip(field.dims, (time, y, x)):
                dim.attach_scale(scale)
        for name, (units, long_name) in self.coefficients.items():
            field = f.create_dataset(name, shape=(ny, nx), chunks=chunks[1:], dtype="f8")
            set_netcdf_attrs(field.attrs, {"units": units, "long_name": long_name})
            for dim, scale in zip(field.dims, (y, x)):
                dim.attach_scale(scale)
        set_netcdf_attrs(f.attrs, {"Conventions": "CF-1.8", "complete": 0})
        self.set_attrs(attrs)
        self.count = 0
        self.times = []                 # snapshot times, for the XDMF sidecar

    def set_attrs(self, attrs: dict[str, Any]) -> None:
        """Root attributes (every rank must pass the same values: this is a collective call)."""
        set_netcdf_attrs(self.file.attrs, attrs)

    def write_coefficients(self, block: np.ndarray) -> None:
        """Write the coefficient fields once; ``block`` is this rank's owned nodes, shape (coefficient
        fields, ny_own, nx_own). Collective."""
        d = self.decomp
        rows, cols = slice(*d.y_range), slice(*d.x_range)
        with writing(self.path):
            for index, name in enumerate(self.coefficients):
                if self.parallel:
                    with self.file[name].collective:
                        self.file[name][rows, cols] = block[index]
                else:
                    self.file[name][rows, cols] = block[index]

    def append(self, t: float, block: np.ndarray) -> None:
        """Add one snapshot at time t; ``block`` is this rank's owned nodes, shape (fields, ny_own, nx_own)."""
        with writing(self.path):
            self._append(t, block)

    def _append(self, t: float, block: np.ndarray) -> None:
        f, d = self.file, self.decomp
        n = self.count + 1
        f["time"].resize((n,))
        rows, cols = slice(*d.y_range), slice(*d.x_range)
        if not self.parallel or d.rank == 0:
            f["time"][n - 1] = t
        for index, name in enumerate(self.fields):
            f[name].resize((n, d.ny, d.nx))
            if self.parallel:
                with f[name].collective:
                    f[name][n - 1, rows, cols] = block[index]
            else:
                f[name][n - 1, rows, cols] = block[index]
        self.count = n
        self.times.append(t)

    def flush(self) -> None:
        """Push the snapshots so far to the file (before a checkpoint refers to them); collective."""
        self.file.flush()

    def close(self, attrs: dict[str, Any]) -> None:
        """Write the final attributes, mark the file complete and move it to its final name."""
        with writing(self.path):
            self.set_attrs({**attrs, "complete": 1})
            self.file.flush()
            self.file.close()
        if self.decomp.rank == 0:
            try:
                os.replace(self.tmp, self.path)
            except FileNotFoundError:
                directory = os.path.dirname(os.path.abspath(self.path))
                if os.path.isdir(directory):
                    raise OutputError(f"writing {self.path}: its unfinished file {self.tmp} was removed during "
                                      "the run (by a clean-up or another job?), so nothing was saved; keep such "
                                      "clean-ups away from .partial files while a run writes, and run again") from None
                raise OutputError(f"writing {self.path}: the directory {directory} vanished during the run; "
                                  "nothing was saved") from None
            except OSError as err:
                raise OutputError(f"writing {self.path}: {reason(err)}") from None
            try:
                write_xdmf(self.path, list(self.fields), *self.axes, self.times, static=list(self.coefficients))
            except OSError as err:      # the HDF5 file is complete; only the ParaView sidecar is missing
                print(f"warning: could not write the XDMF sidecar of {self.path}: {reason(err)}",
                      file=sys.stderr, flush=True)
        self.comm.Barrier()

    def discard(self, keep: bool = False, everywhere: bool = False) -> None:
        """Give up the output after a failure: a serial run closes and removes its ``.partial``, unless
        ``keep`` (a checkpoint refers to it, so a restart can resume it).

        Under MPI the ``.partial`` always stays (never renamed). Closing is collective, so the file is closed
        only when every rank discards together (``everywhere``); a failure on one rank leaves it open for
        ``comm.Abort``, which would otherwise never be reached while the other ranks wait in a collective.
        """
        if self.parallel:
            if everywhere:
                self._close_after_failure()
            return
        if not keep:
            try:
                # Empty the file first: on a full disk HDF5's closing flush needs room, and a failed close
                # leaves HDF5 objects that crash the interpreter when Python frees them.
                os.truncate(self.tmp, 0)
            except OSError:
                pass
        self._close_after_failure()
        if keep:
            return
        try:
            os.unlink(self.tmp)
        except OSError:
            pass

    def _close_after_failure(self) -> None:
        try:
            self.file.close()
        except AttributeError:  # never opened
            pass
        except Exception:       # already failing: keep the objects alive (see closed_cleanly)
            _unclosed.append(self)
