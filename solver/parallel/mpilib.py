"""Which MPI library a process, mpi4py and h5py use, found without starting MPI.

mpi4py and h5py (through parallel HDF5) each link an MPI library; one process cannot use two. A build against
one MPI's compiler wrapper and another MPI's HDF5 installs fine and crashes at the first parallel write, so
``jobs/setup.sh`` runs ``python -m solver.parallel.mpilib check`` after building and refuses such a mix. Provenance
records the library in use (``in_use``), also in a serial run, which loads it through h5py.

Standard library only: setup runs this before the project is installed.
"""
from __future__ import annotations

import ctypes
import glob
import os
import re
import subprocess
import sys

# libmpi.so.40 (Open MPI), libmpich.so.12 and libmpi.so.12 (MPICH, MVAPICH, Intel MPI), libmpi_cray.so.12;
# not the Fortran and C++ bindings next to them.
_MPI_FILE = re.compile(r"^lib(mpi|mpich)(_[A-Za-z0-9]+)*\.so")
_BINDINGS = re.compile(r"fort|f08|f77|f90|mpifh|cxx|usempi")


class MixedMPI(Exception):
    """mpi4py and h5py use different MPI libraries (or one of them none)."""


def is_mpi_library(path: str) -> bool:
    name = os.path.basename(path)
    return bool(_MPI_FILE.match(name)) and not _BINDINGS.search(name)


def loaded() -> list[str]:
    """The MPI libraries mapped into this process (real paths, sorted); empty where /proc is missing."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps if ".so" in line}
    except OSError:
        return []
    return sorted(os.path.realpath(p) for p in paths if p.startswith("/") and is_mpi_library(p))


def linked(extension: str) -> list[str]:
    """The MPI libraries a shared object needs, directly or through others (``ldd``); an unresolved one
    is given as ``NAME (not found)``."""
    out = subprocess.run(["ldd", extension], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        name, _, target = line.strip().partition(" => ")
        if is_mpi_library(name):
            target = target.split(" (")[0].strip()
            found.add(os.path.realpath(target) if target.startswith("/") else f"{name} (not found)")
    return sorted(found)


def version(library: str = "") -> str:
    """First line of ``MPI_Get_library_version``: mpi4py's once imported, else that of a loaded library
    (callable before MPI_Init)."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None:
        text = mpi.Get_library_version()
    else:
        buffer, length = ctypes.create_string_buffer(8192), ctypes.c_int(0)
        ctypes.CDLL(library).MPI_Get_library_version(buffer, ctypes.byref(length))
        text = buffer.value.decode(errors="replace")
    lines = text.replace("\0", "").strip().splitlines()
    return " ".join(lines[0].split()) if lines else "unknown"     # MPICH's has a tab


def in_use() -> dict[str, str]:
    """``mpi_library`` (its file) and ``mpi_library_version`` of the MPI library in this process; 'none'
    when no MPI library is loaded (a serial HDF5), 'unknown' when it cannot be told."""
    libraries = loaded()
    if not libraries:
        return {"mpi_library": "none", "mpi_library_version": "none"}
    try:
        text = version(libraries[0])
    except (OSError, AttributeError):
        text = "unknown"
    return {"mpi_library": " ".join(libraries), "mpi_library_version": text}


def check(h5py_libraries: list[str], mpi4py_libraries: list[str]) -> str:
    """The one MPI library both use; MixedMPI (with the fix) when they differ or one links none."""
    fix = ("load one MPI and the parallel HDF5 built with it (module load ...), point HDF5_DIR or "
           "HDF5_PKGCONFIG_NAME at that HDF5, then rerun 'bash jobs/setup.sh' (it rebuilds mpi4py and h5py)")
    if not mpi4py_libraries:
        raise MixedMPI(f"mpi4py loads no MPI library; {fix}")
    if not h5py_libraries:
        raise MixedMPI(f"h5py links no MPI library (a serial HDF5); {fix}")
    if set(h5py_libraries) != set(mpi4py_libraries) or len(h5py_libraries) > 1:
        raise MixedMPI(f"mixed MPI build: h5py links {' and '.join(h5py_libraries)} (through HDF5) but mpi4py "
                       f"uses {' and '.join(mpi4py_libraries)}; {fix}")
    return h5py_libraries[0]


def h5py_libraries() -> list[str]:
    """What h5py's compiled modules link, read from the files (importing h5py is not needed)."""
    import importlib.util
    package = os.path.dirname(importlib.util.find_spec("h5py").origin)
    found = set()
    for extension in glob.glob(os.path.join(package, "*.so")):
        found.update(linked(extension))
    return sorted(found)


def main(argv: list[str]) -> int:
    """``check``: print 'MPI: VERSION (FILE), used by mpi4py and h5py' or the problem and the fix (exit 1)."""
    if argv != ["check"]:
        print("usage: python -m solver.parallel.mpilib check", file=sys.stderr)
        return 2
    import mpi4py
    mpi4py.rc.initialize = False           # load the library, start nothing
    from mpi4py import MPI  # noqa: F401
    mpi4py_libraries = loaded()            # before h5py: h5py is read from its files, never imported
    try:
        library = check(h5py_libraries(), mpi4py_libraries)
    except MixedMPI as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"MPI: {version(library)} ({library}), used by mpi4py and h5py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
