"""Output: snapshots of the field in one HDF5 file that xarray, netCDF tools and ParaView read.

Layout (netCDF-4 compatible): dimension scales ``time`` (unlimited), ``y`` and ``x``, one dataset per field
of the model, named by the field (``C(time, y, x)`` for the single-field models), with CF
``units``/``long_name`` from the model, and provenance as root attributes, all in
classic-model types (see :func:`set_netcdf_attrs`). The config's ``output`` section decides how they are
stored (:func:`storage`: float64 or float32, gzip or not) and which nodes (``y`` and ``x`` are the kept nodes'
coordinates: solver/core/sampling.py); probes and per-step series go along their own time axes
(solver/storage/records.py). Rank 0 writes an XDMF sidecar (``PATH`` with ``.xdmf``)
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

from ..core import sampling
from ..core.grid import Decomposition
from ..errors import ConfigError, OutputError
from .netcdf import attribute, set_netcdf_attrs  # noqa: F401  (readers import attribute from here)
from .records import Records
from .xdmf import write_xdmf

CHUNK_EDGE = 512       # chunk at most 512 x 512 nodes (2 MiB) per snapshot
DTYPES = {"float64": np.float64, "float32": np.float32}
FILTERS_IN_PARALLEL = (1, 10, 2)     # the first HDF5 whose collective writes take filtered (compressed) datasets


def chunk_edge(n: int) -> int:
    """A chunk's extent along an axis of ``n`` stored nodes: at most CHUNK_EDGE, and as even as the chunks can
    be, so that the last one is not nearly empty. HDF5 allocates whole chunks, so 513 nodes in chunks of 512
    would store 1024 (an uncompressed file twice its data, and twice --dry-run's size); in chunks of 257, 514."""
    return -(-n // -(-n // CHUNK_EDGE))


def storage(cfg) -> dict:
    """How the snapshot datasets are stored (``h5py.create_dataset`` options besides shape and chunks)."""
    out = cfg.output
    options = {"dtype": DTYPES[out.precision]}
    if out.compression == "gzip":
        options.update(compression="gzip", compression_opts=out.compression_level, shuffle=out.shuffle)
    return options


def check_storage(cfg, parallel: bool) -> None:
    """Refuse, before anything is written, a compression the HDF5 in use cannot write (never silently
    uncompressed): gzip needs the deflate filter, and under MPI an HDF5 of at least 1.10.2."""
    import h5py
    if cfg.output.compression == "none":
        return
    version = h5py.version.hdf5_version_tuple
    if not h5py.h5z.filter_avail(h5py.h5z.FILTER_DEFLATE):
        raise ConfigError(f"{cfg.source}: output.compression = gzip, but the HDF5 in use "
                          f"({h5py.version.hdf5_version}) has no deflate filter; set output.compression: none or "
                          "use an HDF5 built with zlib")
    if parallel and tuple(version[:3]) < FILTERS_IN_PARALLEL:
        raise ConfigError(f"{cfg.source}: output.compression = gzip under MPI needs parallel HDF5 >= 1.10.2 "
                          f"(this is {h5py.version.hdf5_version}); set output.compression: none, run on one "
                          "process, or build h5py on a newer HDF5 (jobs/setup.sh)")


def describe_storage(cfg) -> dict:
    """The output's storage choices as provenance attributes."""
    out = cfg.output
    compression = "none" if out.compression == "none" else \
        f"gzip level {out.compression_level}" + (" with shuffle" if out.shuffle else "")
    ix, iy = sampling.selection(cfg, "x"), sampling.selection(cfg, "y")
    return {"output_precision": out.precision, "output_compression": compression,
            "output_nodes": f"x: nodes {ix[0]}..{ix[-1]} step {ix.step}, y: nodes {iy[0]}..{iy[-1]} "
                            f"step {iy.step} (of {cfg.grid.nx} x {cfg.grid.ny})",
            "output_probes": ", ".join(f"{name} ({i}, {j})" for name, (i, j) in sampling.probe_nodes(cfg).items()),
            "output_probe_every": out.probe_every if out.probes else 0, "output_series_every": out.series_every}


def write_part(dataset, index: tuple, data: np.ndarray, collective: bool) -> None:
    """``dataset[index] = data``; under MPI collectively, a rank whose part is empty joining the call too (a
    window or a subsampling may leave a rank without any node to write)."""
    if not collective:
        if data.size:
            dataset[index] = data
        return
    with dataset.collective:
        if data.size:
            dataset[index] = data
            return
        import h5py
        space = dataset.id.get_space()
        space.select_none()
        memory = h5py.h5s.create_simple((1,))
        memory.select_none()
        dataset.id.write(memory, space, np.zeros(1, dataset.dtype), dxpl=dataset._dxpl)


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
                 resume_at: int | None = None, resume_step: int | None = None):
        """Start ``PATH.partial``; with ``resume_at`` reopen it and keep only its first resume_at snapshots
        and the records up to ``resume_step`` (a restart from a checkpoint taken then), so the finished file
        equals an uninterrupted run's."""
        check_storage(cfg, decomp.comm.Get_size() > 1)
        self.path, self.decomp = path, decomp
        self.storage = storage(cfg)
        self.selected = sampling.selection(cfg, "x"), sampling.selection(cfg, "y")
        (cols, self.local_cols), (rows, self.local_rows) = (sampling.owned_part(self.selected[0], *decomp.x_range),
                                                            sampling.owned_part(self.selected[1], *decomp.y_range))
        self.part = rows, cols          # this rank's place in the stored (subsampled) grid
        self.fields = cfg.model_impl.fields           # name -> (units, long name)
        self.coefficients = cfg.model_impl.coefficient_names     # fields that do not evolve: written once
        self.comm = decomp.comm
        self.tmp = partial_path(path)
        self.parallel = self.comm.Get_size() > 1
        try:
            with writing(self.path):
                self._create(cfg, attrs, resume_at, resume_step)
        except BaseException:
            self.discard(keep=resume_at is not None)
            raise

    def _create(self, cfg, attrs: dict[str, Any], resume_at: int | None, resume_step: int | None) -> None:
        decomp = self.decomp
        mode = "w" if resume_at is None else "r+"
        # No chunk cache: every snapshot goes to disk inside append(), so a full disk fails there (with
        # errno) and not later in a cache flush at close, after which HDF5 can crash the interpreter.
        self.file = open_hdf5(self.tmp, mode, self.comm, rdcc_nbytes=0)
        nx, ny = len(self.selected[0]), len(self.selected[1])
        self.shape = ny, nx
        self.axes = cfg.axis("x")[self.selected[0]], cfg.axis("y")[self.selected[1]]
        if resume_at is not None:
            self.file["time"].resize((resume_at,))
            for name in self.fields:
                self.file[name].resize((resume_at, ny, nx))
            self.records = Records(self.file, cfg, decomp, resume_step)
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
        chunks = (1, chunk_edge(ny), chunk_edge(nx))
        stored = {} if cfg.output.precision == "float64" else \
            {"comment": f"stored as {cfg.output.precision}: the float64 result rounded once to nearest"}
        for name, (units, long_name) in self.fields.items():
            field = f.create_dataset(name, shape=(0, ny, nx), maxshape=(None, ny, nx), chunks=chunks, **self.storage)
            set_netcdf_attrs(field.attrs, {"units": units, "long_name": long_name, **stored})
            for dim, scale in zip(field.dims, (time, y, x)):
                dim.attach_scale(scale)
        for name, (units, long_name) in self.coefficients.items():
            field = f.create_dataset(name, shape=(ny, nx), chunks=chunks[1:], **self.storage)
            set_netcdf_attrs(field.attrs, {"units": units, "long_name": long_name, **stored})
            for dim, scale in zip(field.dims, (y, x)):
                dim.attach_scale(scale)
        set_netcdf_attrs(f.attrs, {"Conventions": "CF-1.8", "complete": 0, **describe_storage(cfg)})
        self.records = Records(f, cfg, decomp, None)
        self.set_attrs(attrs)
        self.count = 0
        self.times = []                 # snapshot times, for the XDMF sidecar

    def set_attrs(self, attrs: dict[str, Any]) -> None:
        """Root attributes (every rank must pass the same values: this is a collective call)."""
        set_netcdf_attrs(self.file.attrs, attrs)

    def write_coefficients(self, block: np.ndarray) -> None:
        """Write the coefficient fields once; ``block`` is this rank's owned nodes, shape (coefficient
        fields, ny_own, nx_own). Collective."""
        with writing(self.path):
            for index, name in enumerate(self.coefficients):
                write_part(self.file[name], self.part, self._stored(block[index]), self.parallel)

    def append(self, t: float, block: np.ndarray) -> None:
        """Add one snapshot at time t; ``block`` is this rank's owned nodes, shape (fields, ny_own, nx_own)."""
        with writing(self.path):
            self._append(t, block)

    def _append(self, t: float, block: np.ndarray) -> None:
        f, d = self.file, self.decomp
        n = self.count + 1
        f["time"].resize((n,))
        if not self.parallel or d.rank == 0:
            f["time"][n - 1] = t
        for index, name in enumerate(self.fields):
            f[name].resize((n, *self.shape))
            write_part(f[name], (n - 1, *self.part), self._stored(block[index]), self.parallel)
        self.count = n
        self.times.append(t)

    def _stored(self, field: np.ndarray) -> np.ndarray:
        """This rank's selected nodes of one owned field, in the stored type (float32: rounded once, here)."""
        return np.ascontiguousarray(field[self.local_rows, self.local_cols], dtype=self.storage["dtype"])

    def record(self, step: int, block: np.ndarray) -> None:
        """Take the probe and series records due at ``step`` (see solver/storage/records.py); collective."""
        with writing(self.path):
            self.records.sample(step, block)

    def take(self, first: int, recording) -> None:
        """Keep the records the kernels took during an advance from step ``first`` (solver/run/stepper.py
        ``Recording``; see solver/storage/records.py); collective."""
        with writing(self.path):
            self.records.take(first, recording.want, recording.stats, recording.probes)

    def flush(self) -> None:
        """Push the snapshots and records so far to the file (before a checkpoint refers to them); collective."""
        with writing(self.path):
            self.records.flush()
            self.file.flush()

    def close(self, attrs: dict[str, Any]) -> None:
        """Write the final attributes, mark the file complete and move it to its final name."""
        with writing(self.path):
            self.records.flush()
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
                write_xdmf(self.path, list(self.fields), *self.axes, self.times, static=list(self.coefficients),
                           precision=np.dtype(self.storage["dtype"]).itemsize)
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
