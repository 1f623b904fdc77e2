"""``python -m solver info FILE``: the provenance of an output in a readable form."""
from __future__ import annotations

from .config import ConfigError
from .output import open_complete

ORDER = ("complete", "solver_command", "start_time", "end_time", "git_commit", "git_dirty", "host",
         "ranks", "threads_per_rank", "process_grid", "grid", "steps", "snapshots", "wall_seconds",
         "loop_seconds", "compute_seconds", "halo_seconds", "io_seconds", "mlups", "max_error",
         "relative_error", "peak_memory_mib_per_rank")


def read_attrs(path: str) -> dict:
    """The root attributes of a finished output; anything else is refused with one line."""
    with open_complete(path) as f:
        return {k: _plain(v) for k, v in f.attrs.items()}


def _plain(value):
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value.decode() if isinstance(value, bytes) else value


def describe(path: str) -> str:
    attrs = read_attrs(path)
    if "config" not in attrs:
        raise ConfigError(f"{path}: has no solver provenance (no 'config' attribute)")
    keys = [k for k in ORDER if k in attrs] + sorted(k for k in attrs if k not in ORDER and k != "config")
    width = max(len(k) for k in keys)
    lines = [f"{path}"] + [f"  {k:<{width}}  {_fmt(attrs[k])}" for k in keys if attrs[k] not in ("", None)]
    lines += ["  config:"] + [f"    {line}" for line in str(attrs["config"]).splitlines()]
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
