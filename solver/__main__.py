"""``python -m solver``: the command line (solver/cli.py) with the benchmark as one more command."""
import sys

from .safety import quiet_start

quiet_start()           # a signal while importing: one line, not a traceback (solver/safety.py)

from .bench import main as bench  # noqa: E402
from .cli import main  # noqa: E402

COMMANDS = {"bench": ("time the kernels against the memory-bandwidth bound",
                      "Measure the copy bound and every kernel's MLUPS at several sizes in one run; print a table, "
                      "optionally write JSON and a roofline-style PNG.", bench.add_arguments, bench.main)}

sys.exit(main(commands=COMMANDS))
