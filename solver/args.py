"""Command-line pieces shared by the solver, the ensemble drivers and the analysis scripts: an argument parser
whose errors are one line (exit code 2), and member numbers and ranges (``17``, ``5-10``)."""
from __future__ import annotations

import argparse
import re

from .errors import EXIT_USAGE, UserError


class UsageError(UserError):
    """A bad member number, range or option."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (and exit code 2) instead of a usage block."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_member(text: str) -> int:
    """A member number is a whole number from 1 up; anything else is a usage error."""
    if not re.fullmatch(r"\s*[0-9]+\s*", text) or int(text) < 1:
        raise UsageError(f"member {text!r} is not a member number: use whole numbers from 1 up, "
                         "e.g. python solver/ensemble.py 17 or jot 1000 | parallel python solver/ensemble.py")
    return int(text)


def parse_range(text: str) -> tuple[int, int] | None:
    """``A-B`` as (A, B), in order; None for a single member number (``17``)."""
    first, sep, last = text.partition("-")
    if not (sep and first):
        return None
    a, b = parse_member(first), parse_member(last)
    if b < a:
        raise UsageError(f"member range {text!r} runs backwards; write it as {b}-{a}")
    return a, b
