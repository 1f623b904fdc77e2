"""Checkpoints: the state of a run at a step boundary, so a job can stop (time limit, signal) and resume.

A checkpoint is one HDF5 file holding the owned nodes of every rank in the global layout, one dataset per
field of the model (``C(y, x)``, ...), written collectively under MPI, so a restart may use another number
of ranks. Its attributes hold the step, the number of snapshots already in the output, a hash of the
settings that determine the result (the model's source included) and a checksum of the fields. It is written as ``PATH.partial``, synced and renamed, so a file under the
final name is whole; before it is trusted everything is checked, and a damaged or foreign checkpoint is
refused with one line (a :class:`CheckpointError`, exit code 2).

Signals (SIGUSR1 from ``#SBATCH --signal``, SIGTERM from ``scancel`` or the time limit) only set a flag.
The run loop asks :meth:`SignalFlag.agreed` at step boundaries (every rank learns whether any rank got
one), writes a checkpoint and stops with :class:`Stopped`; the command line turns that into exit status
:data:`EXIT_REQUEUE`, which the job scripts turn into ``scontrol requeue``. A launcher need not pass that
status on (MPICH's Hydra reports 0 for ranks that exit after it forwarded a signal to them), so rank 0
also records the stop in the file that ``jobs/launch.sh`` names in $SOLVER_STOP_FILE (:func:`record_stop`).
"""
from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading

import numpy as np
import yaml

from ..comm import any_true, on_root
from ..core import yamlfile
from ..core.config import Config
from ..core.schema import plain
from ..core.grid import Decomposition
from ..errors import EXIT_REQUEUE, CheckpointError, ConfigError, EnvironmentSettingError
from .files import CHECKPOINT, CHECKPOINT_FORMAT as FORMAT, kind
from .output import attribute, open_hdf5, reason, writing

__all__ = ["EXIT_REQUEUE", "CheckpointError", "Stopped", "SignalFlag", "path_for", "write", "load", "remove"]
STOP_FILE_VARIABLE = "SOLVER_STOP_FILE"   # set by jobs/launch.sh: a file to record a Stopped in
SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
RESULT_KEYS = ("grid", "physics", "initial", "boundary", "time")   # plus output.every and the model's source;
                                                                 # ranks, threads, kernel may change


class Stopped(Exception):
    """The run wrote a checkpoint and stopped before its end (a signal, or --max-steps)."""

    def __init__(self, step: int, path: str, reason: str):
        super().__init__(f"{STOP_RECORD}{step} ({reason}); checkpoint {path}")
        self.step, self.path, self.reason = step, path, reason


def record_stop(stop: Stopped) -> None:
    """Write the stop to the file named by $SOLVER_STOP_FILE, if set (rank 0): jobs/launch.sh reads it when
    the launcher's exit status lost the ranks' EXIT_REQUEUE. Failing to write costs only that fallback."""
    path = os.environ.get(STOP_FILE_VARIABLE)
    if not path:
        return
    problem = stop_file_problem(path)
    if problem:
        print(f"warning: not recording the stop in {STOP_FILE_VARIABLE}={path}: {problem}; the job script learns "
              f"of it from the exit status {EXIT_REQUEUE} alone", file=sys.stderr, flush=True)
        return
    try:
        with open(path, "w") as stream:
            stream.write(f"{stop}\n")
    except OSError as err:
        print(f"warning: cannot record the stop in {STOP_FILE_VARIABLE}={path} ({err.strerror}); the job "
              f"script learns of it from the exit status {EXIT_REQUEUE} alone", file=sys.stderr, flush=True)


STOP_RECORD = "stopped at step "      # how a record of a Stopped begins


def stop_file_problem(path: str) -> str | None:
    """Why $SOLVER_STOP_FILE may not be written, or None: it must be missing, empty (jobs/launch.sh creates
    it with mktemp) or hold an earlier stop record; any other file is not the stop's to overwrite."""
    import stat
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        return f"it cannot be read ({err.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if info.st_size == 0:
        return None
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(STOP_RECORD))
    except OSError as err:
        return f"it cannot be read ({err.strerror})"
    if head != STOP_RECORD.encode():
        return "it is an existing file that does not hold a stop record (not created for it)"
    return None


def check_stop_file(environ=os.environ) -> None:
    """Refuse, before any work, a $SOLVER_STOP_FILE the stop record may not be written to (stop_file_problem)."""
    path = environ.get(STOP_FILE_VARIABLE)
    problem = stop_file_problem(path) if path else None
    if problem:
        raise EnvironmentSettingError(f"environment: {STOP_FILE_VARIABLE}={path}: {problem}; the solver would write "
                                      "its stop record there: name a new file (jobs/launch.sh makes one) or unset it")


def path_for(cfg: Config, output: str) -> str:
    """checkpoint.path, else the output path with ``.ckpt.h5`` (follows ``-o``)."""
    if cfg.checkpoint.path:
        return cfg.checkpoint.path
    return os.path.splitext(output)[0] + ".ckpt.h5"


def result_settings(cfg: Config) -> str:
    """The settings that decide the field and the snapshots, not how the run is parallelised, as YAML."""
    settings = {key: cfg.to_dict()[key] for key in RESULT_KEYS}
    settings["output.every"] = cfg.output.every
    layout = {key: value for key, value in cfg.to_dict()["output"].items()
              if key not in ("path", "every") and value != plain(type(cfg.output)())[key]}
    if layout:          # what the output stores (absent for the defaults: older checkpoints stay valid)
        settings["output.layout"] = layout
    settings["model"] = cfg.model_impl.source_hash           # where the file lies does not matter
    return yaml.safe_dump(settings, sort_keys=True)


def result_hash(cfg: Config) -> str:
    """Hash of :func:`result_settings`: a checkpoint resumes only a run whose hash it holds."""
    return hashlib.sha256(result_settings(cfg).encode()).hexdigest()[:16]


def settings_that_differ(recorded, cfg: Config) -> str:
    """Which settings (dotted keys) a checkpoint's recorded :func:`result_settings` and cfg's differ in, as text
    for a message; the list of what could, where the checkpoint recorded none (an older one)."""
    def flat(tree, prefix=""):
        out = {}
        for key, value in tree.items():
            name = prefix + str(key)
            if isinstance(value, dict):
                out.update(flat(value, name + "."))
            else:
                out[SETTING_NAMES.get(name, name.replace("output.layout.", "output."))] = value
        return out
    try:
        before = yamlfile.safe_load(recorded, "the checkpoint's settings") if isinstance(recorded, str) else None
    except ConfigError:        # not what the solver writes: a damaged or foreign file
        before = None
    keys = []
    if isinstance(before, dict):
        before, now = flat(before), flat(yaml.safe_load(result_settings(cfg)))
        keys = sorted(key for key in {*before, *now} if before.get(key) != now.get(key))
    if not keys:            # none recorded, or a record that does not tell (not one the solver wrote)
        return "the model or its source, grid, physics, initial, boundary, time or output settings differ"
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
    return f"{shown} differ{'s' if len(keys) == 1 else ''}"


SETTING_NAMES = {"model": "the model's source"}


def checksum(block: np.ndarray, decomp: Decomposition) -> str:
    """Position-weighted sum of the bit patterns of the owned nodes, modulo 2**64, over all ranks.

    Integer sums wrap and commute, so the value does not depend on the decomposition; every weight is odd,
    so any single changed value changes the sum. Collective under MPI.
    """
    fields = np.arange(block.shape[0], dtype=np.uint64)[:, np.newaxis, np.newaxis]
    rows = np.arange(*decomp.y_range, dtype=np.uint64)[:, np.newaxis]
    cols = np.arange(*decomp.x_range, dtype=np.uint64)[np.newaxis, :]
    weights = ((fields * np.uint64(decomp.ny) + rows) * np.uint64(decomp.nx) + cols) * np.uint64(2) + np.uint64(1)
    bits = np.ascontiguousarray(block, dtype=np.float64).view(np.uint64)
    total = decomp.comm.allreduce(int(np.sum(bits * weights, dtype=np.uint64)))    # the sum over the ranks
    return f"{total % 2 ** 64:016x}"


class SignalFlag:
    """Within ``with``: SIGUSR1 and SIGTERM set a flag instead of ending the process."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self) -> "SignalFlag":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        self.received = signum

    def agreed(self, comm) -> bool:
        """True on every rank if any rank got a signal (collective under MPI)."""
        return any_true(comm, self.received is not None)


def write(path: str, cfg: Config, decomp: Decomposition, block: np.ndarray, step: int, snapshots: int) -> None:
    """Write the owned ``block`` of every rank at ``step`` to ``path`` atomically (collective)."""
    comm = decomp.comm
    parallel = comm.Get_size() > 1
    total = checksum(block, decomp)
    tmp = path + ".partial"
    if decomp.rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    comm.Barrier()
    try:
        with writing(path, "writing the checkpoint"):
            f = open_hdf5(tmp, "w", comm)
            try:
                rows, cols = slice(*decomp.y_range), slice(*decomp.x_range)
                for index, name in enumerate(cfg.model_impl.fields):
                    field = f.create_dataset(name, shape=(decomp.ny, decomp.nx), dtype="f8")
                    if parallel:
                        with field.collective:
                            field[rows, cols] = block[index]
                    else:
                        field[rows, cols] = block[index]
                f.attrs.update(format=FORMAT, step=step, time=step * cfg.time.dt, snapshots=snapshots,
                               result_hash=result_hash(cfg), result_settings=result_settings(cfg), checksum=total,
                               nx=decomp.nx, ny=decomp.ny, ranks=decomp.size)
            except BaseException:
                _abandon(f, tmp, parallel)
                raise
            f.close()
            if decomp.rank == 0:
                with open(tmp, "rb") as stream:
                    os.fsync(stream.fileno())
                os.replace(tmp, path)
    except BaseException:
        if decomp.rank == 0:        # nothing half-written is left (a full disk, say); the last checkpoint stays
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
    comm.Barrier()


def _abandon(f, tmp: str, parallel: bool) -> None:
    """Close a checkpoint whose writing failed. On a full disk HDF5's closing flush needs room, and a failed
    close leaves objects that crash the interpreter when freed (storage/output.py closed_cleanly): empty the file
    first, and keep the objects of a close that fails anyway. Under MPI closing is collective: left open
    for the abort that follows."""
    from . import output
    if parallel:
        return
    try:
        os.truncate(tmp, 0)
    except OSError:
        pass
    try:
        f.close()
    except Exception:
        output._unclosed.append(f)


def load(path: str, cfg: Config, decomp: Decomposition, output_partial: str) -> tuple[np.ndarray, int, int]:
    """This rank's owned block, the step and the output's snapshot count from a checked checkpoint.

    Rank 0 checks the attributes and the unfinished output first and shares the verdict, so every rank
    raises the same CheckpointError; the checksum is then verified over the blocks all ranks read.
    """
    comm = decomp.comm
    meta = comm.bcast(on_root(comm, lambda: inspect(path, cfg, output_partial)), root=0)
    with open_hdf5(path, "r", comm) as f:
        rows, cols = slice(*decomp.y_range), slice(*decomp.x_range)
        block = np.stack([f[name][rows, cols] for name in cfg.model_impl.fields])
    if checksum(block, decomp) != meta["checksum"]:
        raise CheckpointError(f"checkpoint {path} is damaged (its field does not match the checksum); "
                              "delete it to run from the start")
    return block, meta["step"], meta["snapshots"]


def inspect(path: str, cfg: Config, output_partial: str) -> dict:
    """The checkpoint's attributes, after checking they fit cfg and the unfinished output."""
    import h5py
    refuse = f"checkpoint {path}"
    restart = "delete it (and the output's .partial) to run from the start"
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint {path} to resume from; run without --restart require, or set "
                              "checkpoint.path to where it is")
    try:
        with h5py.File(path, "r") as f:
            attrs = {key: attribute(f.attrs.get(key)) for key in ("format", "step", "snapshots", "result_hash",
                                                                  "checksum")}
            recorded = attribute(f.attrs.get("result_settings"))
            shapes = {f[name].shape if isinstance(f.get(name), h5py.Dataset) else None
                      for name in cfg.model_impl.fields}
            shape = shapes.pop() if len(shapes) == 1 else None
    except Exception as err:        # OSError, or an attribute h5py cannot convert
        raise CheckpointError(f"{refuse} cannot be read ({reason(err)}): it is damaged or not a "
                              f"checkpoint; {restart}") from None
    whole = ("step", "snapshots")
    if (attrs["format"] != FORMAT or None in attrs.values() or shape is None
            or any(isinstance(attrs[k], bool) or not isinstance(attrs[k], int) for k in whole)
            or not all(isinstance(attrs[k], str) for k in ("result_hash", "checksum"))):
        raise CheckpointError(f"{refuse} is not a complete {FORMAT} file; {restart}")
    if str(attribute(attrs["result_hash"])) != result_hash(cfg):
        raise CheckpointError(f"{refuse} was written for another config ({settings_that_differ(recorded, cfg)}); "
                              f"run with the same config, or {restart}")
    step, snapshots = int(attrs["step"]), int(attrs["snapshots"])
    if shape != (cfg.grid.ny, cfg.grid.nx) or not 0 <= step <= cfg.nsteps or not 1 <= snapshots <= step + 1:
        raise CheckpointError(f"{refuse} does not fit the grid or the step range of the config; {restart}")
    try:
        with h5py.File(output_partial, "r") as f:
            written = min(*(f[name].shape[0] for name in cfg.model_impl.fields), f["time"].shape[0])
    except Exception as err:        # OSError, KeyError, a group where a dataset belongs
        raise CheckpointError(f"{refuse} needs the unfinished output {output_partial} to continue, which "
                              f"cannot be read ({reason(err)}); {restart}") from None
    if written < snapshots:
        raise CheckpointError(f"{refuse} expects {snapshots} snapshots in {output_partial}, which holds "
                              f"{written}; {restart}")
    return {"step": step, "snapshots": snapshots, "checksum": str(attribute(attrs["checksum"]))}


def check_owner(path: str, cfg: Config) -> None:
    """Refuse a checkpoint at ``path`` that another config's run wrote (its result hash differs): a run
    would overwrite it, then delete it when it completes, and the other run could no longer resume. A file
    that cannot be read is left to the restart's checks (storage/files.py, :func:`inspect`)."""
    if not os.path.isfile(path):
        return
    import h5py
    try:
        with h5py.File(path, "r") as f:
            if attribute(f.attrs.get("format")) != FORMAT:
                return
            recorded, settings = attribute(f.attrs.get("result_hash")), attribute(f.attrs.get("result_settings"))
    except Exception:
        return
    if recorded != result_hash(cfg):
        raise CheckpointError(f"checkpoint {path} belongs to the run of another config "
                              f"({settings_that_differ(settings, cfg)}); set checkpoint.path to another file, or "
                              "remove it if that run is yours to lose")


def remove(path: str, decomp: Decomposition) -> None:
    """Delete a checkpoint once the run it belongs to is complete (only a checkpoint: see storage/files.py)."""
    if decomp.rank == 0 and kind(path) == CHECKPOINT:
        os.remove(path)
