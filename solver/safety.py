"""Guards that turn what would be a traceback, a hang or an OOM kill into one line, before any work.

- :func:`quiet_start`: Ctrl-C or SIGTERM while Python is still importing (before the run installs its own
  handlers) ends the process with one line, not a KeyboardInterrupt traceback.
- :func:`reading`: anything unexpected inside a file that is read (an attribute of the wrong type, a group
  where a dataset belongs, damaged bytes) becomes one ConfigError line naming the file.
- :func:`memory_limit` and :func:`check_memory`: the memory this process may use (a SLURM ``--mem`` cgroup,
  v2 or v1, or the machine's available memory), and a refusal of a run whose fields cannot fit in it.

This module imports only the standard library at the top, so the command line can import it first.
"""
from __future__ import annotations

import math
import os
import signal
import sys
from contextlib import contextmanager

EARLY_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _early_exit(signum, frame) -> None:
    name = signal.Signals(signum).name
    try:
        sys.stderr.write(f"interrupted by {name} while starting: nothing was written\n")
        sys.stderr.flush()
    finally:
        os._exit(128 + signum)


def quiet_start() -> None:
    """Until :func:`started`: SIGINT and SIGTERM end the process with one line (nothing is written yet)."""
    for signum in EARLY_SIGNALS:
        signal.signal(signum, _early_exit)


def started() -> None:
    """Hand SIGINT back to Python (KeyboardInterrupt) and SIGTERM to its default; the run takes over."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def reading(path: str, what: str = "a solver output"):
    """Turn any failure while reading ``path`` into one ConfigError line: a file that opens but holds
    the wrong things (types, shapes, groups for datasets, damaged chunks) is damaged or foreign."""
    from .config import ConfigError
    try:
        yield
    except ConfigError:
        raise
    except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError, RuntimeError,
            OverflowError, UnicodeError) as err:
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError(f"{path}: cannot be read as {what} ({type(err).__name__}: {detail}); it is damaged "
                          "or was not written by the solver") from None


def encodable(path: str, role: str) -> None:
    """HDF5 and the provenance store file names as UTF-8: refuse a name that is not."""
    from .config import ConfigError
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{role} {path!r} is not valid UTF-8 text (HDF5 needs UTF-8 file names); "
                          "rename it with plain characters") from None


# --- memory -----------------------------------------------------------------------------------
CGROUP_FILES = ("/sys/fs/cgroup/memory.max",                       # cgroup v2 (the process's own group
                "/sys/fs/cgroup/memory/memory.limit_in_bytes")      # when mounted as a namespace), v1


def _cgroup_limit(root: str = "/") -> int | None:
    """The memory limit of this process's cgroup (SLURM --mem), v2 or v1, in bytes; None if unlimited."""
    candidates = []
    try:
        with open(os.path.join(root, "proc/self/cgroup")) as stream:
            for line in stream:
                hierarchy, controllers, path = line.rstrip("\n").split(":", 2)
                if hierarchy == "0":
                    candidates.append(os.path.join(root, "sys/fs/cgroup", path.lstrip("/"), "memory.max"))
                elif "memory" in controllers.split(","):
                    candidates.append(os.path.join(root, "sys/fs/cgroup/memory", path.lstrip("/"),
                                                   "memory.limit_in_bytes"))
    except (OSError, ValueError):
        pass
    candidates += [os.path.join(root, name.lstrip("/")) for name in CGROUP_FILES]
    for name in candidates:
        try:
            with open(name) as stream:
                text = stream.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2 ** 60:      # v1 writes a huge number for "unlimited"
            return int(text)
        if text == "max" or text.isdigit():
            return None
    return None


def _available(root: str = "/") -> int | None:
    try:
        with open(os.path.join(root, "proc/meminfo")) as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_limit(root: str = "/") -> tuple[int | None, str]:
    """(bytes this process may still use, where the figure comes from): the smaller of the cgroup limit
    and the available memory. ``SOLVER_MEMORY_LIMIT`` (bytes) overrides both, for tests and odd sites."""
    forced = os.environ.get("SOLVER_MEMORY_LIMIT", "")
    if forced:
        from .config import ConfigError
        if not forced.isdigit():
            raise ConfigError(f"environment: SOLVER_MEMORY_LIMIT={forced!r} is not a number of bytes; unset it")
        return int(forced), "SOLVER_MEMORY_LIMIT"
    found = [(v, where) for v, where in ((_cgroup_limit(root), "the job's memory limit (cgroup)"),
                                          (_available(root), "the memory available")) if v is not None]
    return min(found) if found else (None, "")


def check_memory(needed: int, ranks_here: int = 1, warn=None) -> None:
    """Refuse (or, with ``warn``, warn about) ``needed`` bytes per rank that cannot fit in memory_limit()."""
    from .config import ConfigError
    limit, where = memory_limit()
    if limit is None or needed * ranks_here <= limit:
        return
    message = (f"the fields need {size_text(needed * ranks_here)} on this node but {where} is "
               f"{size_text(limit)}; use more ranks or nodes, a coarser grid, or a job with more memory (--mem)")
    if warn is not None:
        warn(f"warning: {message}")
        return
    raise ConfigError(message)


def size_text(n: float) -> str:
    """Bytes in the largest binary unit below 1024, e.g. '1.2 TiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
