"""Which files a process may replace or delete: the ones it created, and nothing else.

The rule, for the solver, the ensemble drivers and the analysis scripts alike: a process deletes or
replaces only files it created itself, or outputs it was explicitly told to overwrite that are recognisably
the solver's own (:func:`kind`). Everything else is refused up front, before any work, with one
:class:`~solver.errors.ConfigError` line naming the file, what it is and the fix.

- :func:`check_run_paths`: every path a run will create, replace or delete (output, its ``.partial``,
  ``.lock`` and XDMF sidecar, the checkpoint and its ``.partial``) is distinct from the others and from
  the config, and whatever already exists there is of the kind the run would put there.
- :func:`check_analysis_output`: an analysis script's output is a file name with a known extension, not a
  directory, not one of its inputs and, if it exists, a file of that kind (a PNG over a PNG).
- :func:`kind`: what a path holds, read from the file itself (never from its name), without blocking on a
  FIFO or a device and without following a symlink.
"""
from __future__ import annotations

import os
import stat

from ..errors import ConfigError
from ..safety import encodable
from .lock import lock_path
from .output import partial_path
from .xdmf import escape, sidecar_path

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHECKPOINT_FORMAT = "diffusion2d-checkpoint/1"     # what a checkpoint's format attribute says

# What kind() answers for the solver's own files
OUTPUT, CHECKPOINT, STATISTICS, PARTIAL, LOCK, XDMF = (
    "a solver output", "a solver checkpoint", "an ensemble statistics file", "an unfinished solver file",
    "a solver lock file", "an XDMF sidecar")
# ... and for the analysis scripts' pictures, videos and tables, recognised by what they hold (a mark in a
# PNG's tEXt chunk or an MP4's comment, a CSV's exact header line), never by their name
ANALYSIS_PNG, ANALYSIS_MP4, ANALYSIS_CSV = "an analysis plot", "an analysis video", "an analysis table"
ANALYSIS_MARK = "diffusion2d analysis script"     # the PNG's Software text, the MP4's comment
ANALYSIS_CSV_HEADERS = (    # how the header lines of analysis/common.py write_csv begin (verify, convergence, scaling)
    "snapshot,time,l2,l2_relative,max,max_relative",
    "level,nx,ny,dx,dy,dt,steps,stability,file,l2,max,",
    "ranks,threads,workers,repeats,nx,ny,mlups,",
)
MAX_MARK_SCAN = 256 * 2 ** 20      # bytes of an MP4 searched for the mark (it sits in the trailing moov box)


def png_metadata() -> dict:
    """``metadata=`` for matplotlib's savefig: marks the PNG as an analysis script's (see kind)."""
    return {"Software": ANALYSIS_MARK}


def video_metadata() -> dict:
    """``metadata=`` for matplotlib's FFMpegWriter: marks the MP4 as an analysis script's (see kind)."""
    return {"comment": ANALYSIS_MARK}


def _holds_mark(path: str) -> bool:
    mark, seen, tail = ANALYSIS_MARK.encode(), 0, b""
    try:
        with open(path, "rb") as stream:
            while seen < MAX_MARK_SCAN:
                block = stream.read(2 ** 20)
                if not block:
                    return False
                if mark in tail + block:
                    return True
                tail, seen = block[-len(mark):], seen + len(block)
    except OSError:
        return False
    return False
# ... and for what a run never touches
MISSING, DIRECTORY, SYMLINK, SPECIAL, EMPTY = "missing", "a directory", "a symbolic link", "not a regular file", \
    "an empty file"


def kind(path: str) -> str:
    """What ``path`` holds, by its content: one of the constants above, or a short description."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):     # nothing there (a file stands in for a directory)
        return MISSING
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return SYMLINK
    if stat.S_ISDIR(info.st_mode):
        return DIRECTORY
    if not stat.S_ISREG(info.st_mode):      # a FIFO, a device, a socket: never opened (it could block)
        return "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) \
            else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else SPECIAL
    if info.st_size == 0:
        return EMPTY
    try:
        with open(path, "rb") as stream:
            head = stream.read(512)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if head.startswith(HDF5_SIGNATURE):
        return _hdf5_kind(path)
    if head.startswith(PNG_SIGNATURE):
        return ANALYSIS_PNG if b"tEXtSoftware\0" + ANALYSIS_MARK.encode() in head else "a PNG image"
    if head[4:8] == b"ftyp":
        return ANALYSIS_MP4 if _holds_mark(path) else "an MP4 video"
    if b"\0" in head:
        return "a binary file"
    if head.lstrip().startswith(b"<?xml") and b"<Xdmf" in head:
        return XDMF
    if head.startswith(b"pid ") and b" since " in head and info.st_size < 512:
        return LOCK
    if head.partition(b"\n")[0].rstrip(b"\r").decode(errors="replace").startswith(ANALYSIS_CSV_HEADERS):
        return ANALYSIS_CSV
    return "a text file"


def _hdf5_kind(path: str) -> str:
    try:
        import h5py
        with h5py.File(path, "r", locking=False) as f:
            attrs = f.attrs
            if _text(attrs.get("format")) == CHECKPOINT_FORMAT:
                return CHECKPOINT
            if "statistics_method" in attrs:
                return STATISTICS
            if "config" in attrs and "complete" in attrs:
                return OUTPUT if _flag(attrs.get("complete")) else PARTIAL
            return "an HDF5 file the solver did not write"
    except Exception:       # damaged (a killed writer), or anything h5py cannot open
        return "a damaged HDF5 file"


def _text(value) -> str:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _flag(value) -> bool:
    try:
        return bool(int(value))
    except (TypeError, ValueError):
        return False


def same(a: str, b: str) -> bool:
    """Whether two paths name the same file (after symlinks and ``..``), existing or not."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def refuse_unless(path: str, role: str, allowed: tuple[str, ...], fix: str) -> None:
    """Refuse ``path`` (playing ``role`` in the run) if it exists and holds anything but ``allowed``."""
    found = kind(path)
    if found == MISSING or found in allowed:
        return
    what = f"{found}, not {allowed[0]}" if allowed else found
    raise ConfigError(f"{role} {path} exists and is {what}; the solver replaces only its own files: {fix}")


def check_run_paths(output: str, checkpoint: str, config: str | None, overwrite: bool) -> None:
    """Before a run: every file it may create, replace or delete is distinct and either missing or its own.

    ``overwrite``: an existing complete output may be replaced (``--overwrite``, or an ensemble member run
    again with ``--force``); it must still be a solver output, never a config, a FIFO, a link or a device.
    """
    for role, path in (("output", output), ("checkpoint", checkpoint), ("config", config or "")):
        encodable(path, role)
    roles = {"output": output, "the output's unfinished file": partial_path(output),
             "the output's lock": lock_path(output), "the output's XDMF sidecar": sidecar_path(output),
             "checkpoint": checkpoint, "the checkpoint's unfinished file": partial_path(checkpoint)}
    names = list(roles.items())
    if config:
        names.append(("the config", config))
    for i, (role, path) in enumerate(names):
        for other_role, other in names[i + 1:]:
            if same(path, other):
                raise ConfigError(f"{role} and {other_role} are the same file ({path}); set checkpoint.path "
                                  "or -o so that the run's files and the config are all different")
    ckpt_fix = "set checkpoint.path to another file, or remove it if it is yours to lose"
    out_fix = "choose another output with -o, or remove it if it is yours to lose"
    refuse_unless(output, "output", (OUTPUT,) if overwrite else (), out_fix)
    refuse_unless(partial_path(output), "the output's unfinished file", (PARTIAL, OUTPUT, EMPTY,
                                                                          "a damaged HDF5 file"), out_fix)
    refuse_unless(lock_path(output), "the output's lock", (LOCK, EMPTY), out_fix)
    refuse_unless(sidecar_path(output), "the output's XDMF sidecar", (XDMF,), out_fix)
    check_sidecar(output)
    refuse_unless(checkpoint, "checkpoint", (CHECKPOINT, "a damaged HDF5 file"), ckpt_fix)  # a restart says more
    refuse_unless(partial_path(checkpoint), "the checkpoint's unfinished file", (CHECKPOINT, EMPTY,
                                                                                  "a damaged HDF5 file"), ckpt_fix)


# What an analysis output may be, by extension: the kinds an existing file there may hold
ANALYSIS_KINDS = {".png": (ANALYSIS_PNG,), ".csv": (ANALYSIS_CSV,), ".mp4": (ANALYSIS_MP4,), ".h5": (STATISTICS,)}


def check_analysis_output(path: str, inputs: list[str], extensions: tuple[str, ...], option: str) -> None:
    """Refuse an analysis output that is a directory, has another extension, is one of the inputs or is
    an existing file of another kind (a solver output, a config, a FIFO ...); one line naming the fix."""
    path = str(path)
    encodable(path, option)
    example = f"results/plot{extensions[0]}"
    if not path:
        raise ConfigError(f"{option}: the name is empty; name a file such as {example}")
    if path.endswith(os.sep) or kind(path) == DIRECTORY:
        raise ConfigError(f"{option} {path} is a directory; name a file in it, such as "
                          f"{os.path.join(path, 'plot' + extensions[0])}")
    extension = os.path.splitext(path)[1].lower()
    if extension not in extensions:
        raise ConfigError(f"{option} {path}: unknown extension {extension or '(none)'!r}; "
                          f"use {' or '.join(extensions)}, e.g. {example}")
    for name in inputs:
        if same(path, str(name)):
            raise ConfigError(f"{option} {path} is an input of this script; write the result elsewhere")
    refuse_unless(path, option, ANALYSIS_KINDS.get(extension, ()),
                  f"choose another name for {option}, or remove it if it is yours to lose")


def check_sidecar(output: str) -> None:
    """An existing XDMF file where the output's sidecar goes is the sidecar of that output (it names the
    output's file), else it is someone else's and is refused rather than replaced."""
    sidecar = sidecar_path(output)
    if kind(sidecar) != XDMF:
        return
    target = os.path.relpath(os.path.abspath(output), os.path.dirname(os.path.abspath(sidecar)))
    try:
        with open(sidecar, "rb") as stream:
            text = stream.read(MAX_MARK_SCAN)
    except OSError:
        text = b""
    if f">{escape(target)}:/".encode() not in text:
        raise ConfigError(f"the output's XDMF sidecar {sidecar} exists and describes another file, not {target}; "
                          "the solver replaces only its own files: choose another output with -o, or remove it "
                          "if it is yours to lose")
