"""Running a simulation: planning (kernel, halo, threads), the stepper (kernel steps and halo fills), the time
loop with its checkpoints and report, and the tests' hooks. ``run(cfg, path, comm)`` is the entry point."""
from .loop import run

__all__ = ["run"]
