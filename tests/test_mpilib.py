"""solver/parallel/mpilib.py: the one-MPI check of jobs/setup.sh and the MPI library that provenance records.

A mixed build is made for real, small: a fake ``h5py`` package whose compiled module links a library named
like an MPI's (compiled here), beside the real mpi4py; the check must refuse it with the fix.
"""
from __future__ import annotations

import subprocess

import h5py
import pytest

from conftest import PYTHON, REPO, require, run_solver, solver_env
from solver.parallel import mpilib

OPEN_MPI = "/usr/lib/x86_64-linux-gnu/libmpi.so.40.30.4"
MPICH = "/usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2"


@pytest.mark.parametrize("name, is_mpi", [
    ("libmpi.so.40", True), ("libmpich.so.12.2.2", True), ("libmpi_cray.so.12", True), ("libmpi.so.12", True),
    ("libmpi_mpifh.so.40", False), ("libmpichfort.so.12", False), ("libmpicxx.so.12", False),
    ("libmpi_usempif08.so.40", False), ("libhdf5_openmpi.so.103", False), ("libmpfr.so.6", False),
])
def test_mpi_library_names(name, is_mpi):
    assert mpilib.is_mpi_library(f"/usr/lib/{name}") is is_mpi


def test_check_accepts_one_library_and_refuses_a_mix_with_the_fix():
    assert mpilib.check([MPICH], [MPICH]) == MPICH
    for h5py_libs, mpi4py_libs, problem in (([OPEN_MPI], [MPICH], "mixed MPI build: h5py links " + OPEN_MPI),
                                            ([OPEN_MPI, MPICH], [MPICH], "mixed MPI build"),
                                            ([], [MPICH], "h5py links no MPI library"),
                                            ([MPICH], [], "mpi4py loads no MPI library")):
        with pytest.raises(mpilib.MixedMPI) as error:
            mpilib.check(h5py_libs, mpi4py_libs)
        assert problem in str(error.value)
        assert "HDF5_PKGCONFIG_NAME" in str(error.value) and "rerun 'bash jobs/setup.sh'" in str(error.value)


def check(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "solver.parallel.mpilib", "check"], env=env, capture_output=True, text=True,
                          timeout=60)


def test_check_of_this_environment_names_the_library_provenance_records(tmp_path, small_config):
    result = check(solver_env())
    assert result.returncode == 0, result.stderr
    line, = result.stdout.splitlines()
    assert line.startswith("MPI: ") and line.endswith(", used by mpi4py and h5py")
    library = line.rpartition(" (")[2].partition(")")[0]
    assert mpilib.is_mpi_library(library)
    run_solver("run", small_config, cwd=tmp_path)             # serial: mpi4py is never imported
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f.attrs["mpi_library"].decode() == library
        assert line.startswith(f"MPI: {f.attrs['mpi_library_version'].decode()} (")
        assert f.attrs["mpi4py_version"].decode() not in ("", "none")


@pytest.mark.parametrize("rpath", [True, False])
def test_check_refuses_an_h5py_that_links_another_mpi(tmp_path, rpath):
    gcc = require("gcc")
    (tmp_path / "empty.c").write_text("int placeholder;\n")
    libs, package = tmp_path / "libs", tmp_path / "site" / "h5py"
    libs.mkdir()
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    subprocess.run([gcc, "-shared", "-fPIC", "-o", libs / "libmpi.so.99", "-Wl,-soname,libmpi.so.99",
                    tmp_path / "empty.c"], check=True)
    link = [f"-L{libs}", "-l:libmpi.so.99", *([f"-Wl,-rpath,{libs}"] if rpath else [])]
    subprocess.run([gcc, "-shared", "-fPIC", "-o", package / "defs.cpython-fake.so", tmp_path / "empty.c",
                    "-Wl,--no-as-needed", *link], check=True)
    result = check(solver_env(PYTHONPATH=f"{package.parent}:{REPO}"))
    assert result.returncode == 1 and result.stdout == ""
    message, = result.stderr.splitlines()
    linked = f"{libs}/libmpi.so.99" if rpath else "libmpi.so.99 (not found)"
    assert message.startswith(f"error: mixed MPI build: h5py links {linked} (through HDF5) but mpi4py uses /")
    assert message.endswith("then rerun 'bash jobs/setup.sh' (it rebuilds mpi4py and h5py)")
