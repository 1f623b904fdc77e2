"""Test hooks, so tests synchronise on events instead of on a run lasting "long enough".

``SOLVER_FAIL_AT=RANK:STEP`` makes rank RANK raise an exception once the run has passed step STEP, as a real
failure on one rank would; ``SOLVER_HOLD_AT=RANK:STEP`` makes rank RANK stop at the first step boundary at or
after STEP (unless it resumed from a checkpoint at or past STEP), print ``rank RANK held at step N`` and wait
there until a signal arrives: SIGCONT lets it go on as if nothing happened, SIGTERM or SIGUSR1 checkpoint as
usual, SIGINT ends the run, SIGKILL kills it mid-run.
"""
from __future__ import annotations

import os
import signal
import time

from ..comm import is_digits
from ..errors import EnvironmentSettingError
from ..storage.checkpoint import SignalFlag

FAULT_VARIABLE = "SOLVER_FAIL_AT"
HOLD_VARIABLE = "SOLVER_HOLD_AT"


def test_hook(variable: str, rank: int) -> int | None:
    """The step of a ``RANK:STEP`` test hook for this rank; None when unset or meant for another rank."""
    value = os.environ.get(variable, "")
    if not value:
        return None
    target, sep, step = value.partition(":")
    if not (sep and is_digits(target) and is_digits(step)):
        raise EnvironmentSettingError(f"{variable} = {value!r}: expected RANK:STEP, for example 1:50; "
                                      f"or unset {variable}")
    return int(step) if int(target) == rank else None


def hold(rank: int, step: int, signals: SignalFlag) -> None:
    """Wait at a step boundary until a signal arrives (the SOLVER_HOLD_AT test hook); SIGCONT releases."""
    released = []
    previous = signal.signal(signal.SIGCONT, lambda *_: released.append(True))
    try:
        print(f"rank {rank} held at step {step} ({HOLD_VARIABLE}): send SIGCONT to go on", flush=True)
        while not released and signals.received is None:
            time.sleep(0.005)
    finally:
        signal.signal(signal.SIGCONT, previous)


class InjectedFailure(RuntimeError):
    """The SOLVER_FAIL_AT failure: one line, as a failing write on one rank gives, not a bug's traceback."""


def fail(step: int) -> None:
    """The SOLVER_FAIL_AT hook: fail as a real failure on one rank would."""
    raise InjectedFailure(f"injected failure at step {step} ({FAULT_VARIABLE}={os.environ[FAULT_VARIABLE]})")
