"""The errors a user can fix, and the exit codes a run ends with. The bottom layer: imports nothing of ours.

Every message is one line saying what is wrong and what to do; the command line prints it after ``error:``
and exits with the error's ``exit_code``. A :class:`UserError` is found before any work (a bad config, a
busy output, a foreign checkpoint, a bad environment variable, a broken model file): exit code 2, nothing
written. A :class:`RunError` ends a run that had started (a field blew up, a file could not be written):
exit code 1.
"""
from __future__ import annotations

EXIT_FAILED = 1          # the run started and failed
EXIT_USAGE = 2           # bad input: nothing was run, nothing written
EXIT_REQUEUE = 3         # checkpointed before the end: run again with --restart auto (job scripts requeue)


def one_line(message: object) -> str:
    """A message with its line breaks shown as ``\\n``: keys and values quoted in it may hold them."""
    return str(message).replace("\r", "\\r").replace("\n", "\\n")


class UserError(ValueError):
    """Anything the user must fix before a run can start; the message is one line."""
    exit_code = EXIT_USAGE

    def __init__(self, message: object):
        super().__init__(one_line(message))


class ConfigError(UserError):
    """A bad config value, command-line option or override."""


class EnvironmentSettingError(UserError):
    """An environment variable the solver, numba or the launcher detection reads holds a bad value."""


class ModelError(UserError):
    """A model that cannot be found, is incomplete, or whose hook fails."""


class OutputBusy(UserError):
    """Another live run holds the lock of the output (solver.storage.lock.OutputLock); ``holder`` names it."""

    def __init__(self, message: object, holder: str = "another run"):
        super().__init__(message)
        self.holder = holder


class CheckpointError(UserError):
    """A checkpoint that cannot be trusted (damaged, another config, no matching output)."""


class RunError(RuntimeError):
    """The run cannot go on (a blown-up field, say); the message is one line for the user."""
    exit_code = EXIT_FAILED


class OutputError(RuntimeError):
    """Writing the output failed (a full disk, a vanished directory); the message is one line."""
    exit_code = EXIT_FAILED
