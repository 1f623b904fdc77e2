"""One reading of the machine: cores, caches, CPUs per task, the memory this process may use.

Everything that sizes or chooses something from the machine asks here, so each figure has one home. Cache
sizes come from Linux sysfs and are only what the system reports (a virtual machine may report its host's
shared cache): use them as hints, never as the only basis of a choice.
"""
from __future__ import annotations

import os
from pathlib import Path

from .comm import MPI_LAUNCHER_VARIABLES, is_digits
from .errors import ConfigError, EnvironmentSettingError

# Environment variables the solver (or numba underneath it) reads as counts: name -> (least value, fix).
COUNT_VARIABLES = {
    "SLURM_CPUS_PER_TASK": (1, "fix the job's --cpus-per-task or unset it"),
    "NUMBA_NUM_THREADS": (1, "set it to the threads per rank, e.g. NUMBA_NUM_THREADS=2, or unset it"),
    **{name: (0 if name.endswith("RANK") else 1,
              "it is set by mpirun/srun; unset it when starting the solver without a launcher")
       for name in MPI_LAUNCHER_VARIABLES},
}
NUMBA_THREADING_LAYERS = ("default", "safe", "threadsafe", "forksafe", "tbb", "omp", "workqueue")


def check_environment(environ=os.environ) -> None:
    """Refuse environment variables that would crash numba or the launcher detection, with one line."""
    for name, (least, fix) in COUNT_VARIABLES.items():
        value = environ.get(name)
        if value is not None and not (is_digits(value.strip()) and int(value) >= least):
            kind = "a positive" if least else "a non-negative"
            raise EnvironmentSettingError(f"environment: {name}={value!r} is not {kind} whole number; {fix}")
    layer = environ.get("NUMBA_THREADING_LAYER")
    if layer is not None and layer not in NUMBA_THREADING_LAYERS:
        raise EnvironmentSettingError(f"environment: NUMBA_THREADING_LAYER={layer!r} is not a numba threading "
                                      f"layer; use one of {', '.join(NUMBA_THREADING_LAYERS)} or unset it")


def cpus_per_task() -> int | None:
    """SLURM_CPUS_PER_TASK (the cores SLURM gave each task), None outside such a job; a bad value is refused."""
    value = os.environ.get("SLURM_CPUS_PER_TASK")
    if value is None:
        return None
    if not is_digits(value.strip()) or int(value) < 1:
        raise EnvironmentSettingError(f"SLURM_CPUS_PER_TASK = {value!r} is not a positive whole number; "
                                      "fix the job's --cpus-per-task or unset it")
    return int(value)


def cpu_count() -> int:
    """Cores of the machine (logical CPUs)."""
    return os.cpu_count() or 1


def cpu_model() -> str:
    """The processor's name as Linux reports it (/proc/cpuinfo), else the platform's; with cpu_count() it names
    the kind of machine a measurement holds for (nodes of one kind share it, as they share a kernel cache)."""
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith(("model name", "Processor", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine() or "unknown"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity: what a launcher or SLURM bound it to)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # macOS
        return cpu_count()


def data_caches() -> dict[str, int]:
    """The data caches of the first CPU from Linux sysfs, level name -> bytes, e.g. {'L1': 32768, ...}."""
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = (index / "level").read_text().strip()
            text = (index / "size").read_text().strip()
        except OSError:
            continue
        unit = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1:], 1)
        if is_digits(text.rstrip("KMG")):
            caches[f"L{level}"] = int(text.rstrip("KMG")) * unit
    return caches


def last_level_cache() -> int:
    """Bytes of the largest data cache the system reports; 8 MiB where it does not say."""
    return max(data_caches().values(), default=8 * 1024 ** 2)


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
        if is_digits(text) and int(text) < 2 ** 60:      # v1 writes a huge number for "unlimited"
            return int(text)
        if text == "max" or is_digits(text):
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
        if not is_digits(forced):
            raise EnvironmentSettingError(f"environment: SOLVER_MEMORY_LIMIT={forced!r} is not a number of bytes; unset it")
        return int(forced), "SOLVER_MEMORY_LIMIT"
    found = [(v, where) for v, where in ((_cgroup_limit(root), "the job's memory limit (cgroup)"),
                                          (_available(root), "the memory available")) if v is not None]
    return min(found) if found else (None, "")


def check_memory(needed: int, ranks_here: int = 1, warn=None) -> None:
    """Refuse (or, with ``warn``, warn about) ``needed`` bytes per rank that cannot fit in memory_limit()."""
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
