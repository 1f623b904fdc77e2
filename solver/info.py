"""``python -m solver info FILE``: the provenance of an output in a readable form."""
from __future__ import annotations

from .errors import ConfigError
from .safety import reading
from .storage.output import attribute, open_complete

SECTIONS = {
    "run": ("solver_command", "start_time", "end_time", "host", "git_commit", "git_dirty"),
    "parallel": ("ranks", "threads_per_rank", "process_grid", "kernel", "hosts"),
    "problem": ("grid", "steps", "snapshots", "max_error", "relative_error"),
    "timings": ("wall_seconds", "loop_seconds", "compute_seconds", "halo_seconds", "io_seconds", "records_seconds",
                "mlups", "peak_memory_mib_per_rank"),
    "output": ("output_precision", "output_compression", "output_nodes", "output_probes", "output_probe_every",
               "output_series_every"),
    "versions": ("python_version", "numpy_version", "numba_version", "h5py_version", "hdf5_version",
                 "mpi4py_version", "mpi_library_version", "mpi_library"),
}
HIDDEN = ("config", "complete", "Conventions", "ranks_on_node", "rank_threads")    # the last two: see hosts


def read_attrs(path: str) -> dict:
    """The root attributes of a finished output; anything else is refused with one line."""
    with reading(path), open_complete(path) as f:
        return {k: attribute(v) for k, v in f.attrs.items()}


def describe(path: str) -> str:
    """The attributes grouped under headings (run, parallel, problem, timings, output, versions, SLURM, other),
    empty ones left out, then the config. Only finished outputs get here (see read_attrs)."""
    with reading(path):
        return _describe(path, read_attrs(path))


def _describe(path: str, attrs: dict) -> str:
    if not isinstance(attrs.get("config"), str):
        raise ConfigError(f"{path}: has no solver provenance (no 'config' text attribute); pass an output "
                          "of 'python -m solver run'")
    lines = [f"{path}: complete"]
    sections = dict(SECTIONS)
    sections["SLURM"] = tuple(k for k in attrs if k.startswith("slurm_"))
    listed = {k for keys in sections.values() for k in keys}
    sections["other"] = tuple(sorted(k for k in attrs if k not in listed and k not in HIDDEN))
    shown = [(name, [k for k in keys if k in attrs and attrs[k] not in ("", None)]) for name, keys in sections.items()]
    width = max((len(k) for _, keys in shown for k in keys), default=0)
    for name, keys in shown:
        if keys:
            lines.append(f"{name}:")
            lines += [f"  {k:<{width}}  {_placement(attrs) if k == 'hosts' else _fmt(k, attrs[k])}" for k in keys]
    lines += ["config:"] + [f"  {line}" for line in str(attrs["config"]).splitlines()]
    return "\n".join(lines)


def _fmt(key: str, value) -> str:
    if key.endswith("_seconds"):
        return f"{value:.4g} s"
    if key == "git_dirty":
        return "yes (uncommitted changes)" if value else "no"
    if key == "peak_memory_mib_per_rank":
        return f"{value:.0f} MiB"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return " x ".join(map(str, value)) if key == "process_grid" else str(value)
    return str(value)


def _placement(attrs: dict) -> str:
    """Each host with its ranks, the ranks it counted on the node and their threads: 'n1: ranks 0-1 (2 on
    the node x 1 thread), n2: ranks 2-3 (2 on the node x 1 thread)'."""
    hosts = str(attrs["hosts"]).split()
    on_node = _as_list(attrs.get("ranks_on_node"), len(hosts))
    threads = _as_list(attrs.get("rank_threads"), len(hosts))
    groups: dict[str, list[int]] = {}
    for rank, host in enumerate(hosts):
        groups.setdefault(host, []).append(rank)
    parts = []
    for host, ranks in groups.items():
        listed = f"{ranks[0]}-{ranks[-1]}" if ranks == list(range(ranks[0], ranks[-1] + 1)) and len(ranks) > 1 \
            else ",".join(map(str, ranks))
        counted = sorted({on_node[r] for r in ranks})
        per_rank = sorted({threads[r] for r in ranks})
        parts.append(f"{host}: rank{'s' if len(ranks) > 1 else ''} {listed} "
                     f"({'/'.join(map(str, counted))} on the node x {'/'.join(map(str, per_rank))} thread(s))")
    return ", ".join(parts)


def _as_list(value, length: int) -> list:
    """A per-rank attribute as a list (HDF5 gives one rank's as a scalar); '?' where it is missing."""
    if value is None or value == "":
        return ["?"] * length
    return value if isinstance(value, list) else [value]
