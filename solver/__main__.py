"""``python -m solver``: see :mod:`solver.cli`."""
import sys

from .safety import quiet_start

quiet_start()           # a signal while importing: one line, not a traceback (solver.safety)

from .cli import main  # noqa: E402

sys.exit(main())
