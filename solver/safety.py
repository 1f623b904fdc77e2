"""Guards that turn what would be a traceback, a hang or an OOM kill into one line, before any work.

- :func:`quiet_start`: Ctrl-C or SIGTERM while Python is still importing (before the run installs its own
  handlers) ends the process with one line, not a KeyboardInterrupt traceback.
- :func:`reading`: anything unexpected inside a file that is read (an attribute of the wrong type, a group
  where a dataset belongs, damaged bytes) becomes one ConfigError line naming the file.

Standard library and solver.errors only, so the command line and an ensemble member can import it first.
"""
from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

from .errors import ConfigError

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
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{role} {path!r} is not valid UTF-8 text (HDF5 needs UTF-8 file names); "
                          "rename it with plain characters") from None
