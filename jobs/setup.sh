#!/usr/bin/env bash
# Set up everything the solver and its tests need; safe to run again (skips what is there).
#
#   bash jobs/setup.sh            # Debian/Ubuntu as root: apt packages, then .venv
#   SETUP_SYSTEM=no bash jobs/setup.sh   # cluster: `module load` an MPI and a parallel HDF5 first
#
# On a cluster the MPI compiler wrapper (MPICC, default mpicc) and HDF5 (HDF5_DIR, or pkg-config
# name HDF5_PKGCONFIG_NAME) come from the loaded modules, and mpi4py is built against that MPI.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}
say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

debian_packages=(openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools pkg-config
                 parallel athena-jot netcdf-bin ffmpeg slurm-wlm munge strace)   # strace: the fault tests kill inside a write

if [[ -z ${SETUP_SYSTEM:-} ]]; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then SETUP_SYSTEM=yes; else SETUP_SYSTEM=no; fi
fi

# --- system packages (Debian/Ubuntu as root) -----------------------------------------------
if [[ $SETUP_SYSTEM == yes ]]; then
    missing=()
    for p in "${debian_packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        say "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    export HDF5_PKGCONFIG_NAME=${HDF5_PKGCONFIG_NAME:-hdf5-openmpi}
    mpi4py_from_source=no
else
    command -v "${MPICC:-mpicc}" >/dev/null ||
        die "no MPI compiler wrapper '${MPICC:-mpicc}': run 'module load <your MPI> <parallel HDF5>' first, or set MPICC"
    mpi4py_from_source=yes
fi
command -v mpirun >/dev/null || command -v srun >/dev/null || die "neither mpirun nor srun found: install or load an MPI"

# --- virtual environment --------------------------------------------------------------------
if [[ ! -x $venv/bin/python ]]; then
    say "creating $venv"
    "$python" -m venv "$venv"
fi
py=$venv/bin/python
pip() { "$py" -m pip --disable-pip-version-check -q "$@"; }

# Re-install only when the project's requirements changed since the last successful setup.
stamp=$venv/.setup-stamp
want=$(cat "$root/setup.cfg" "$root/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] &&
   "$py" -c 'import h5py, mpi4py, numba, solver; from importlib.util import find_spec as f
assert h5py.get_config().mpi and f("devito") and f("pystencils")' 2>/dev/null; then
    say "environment up to date ($venv)"
    exit 0
fi

say "installing build requirements"
pip install 'pip>=24' 'setuptools>=77' wheel 'numpy>=2,<3' 'Cython>=3,<4' 'pkgconfig>=1.5.5'
if [[ $mpi4py_from_source == yes ]]; then
    MPICC=${MPICC:-mpicc} pip install --no-cache-dir --no-binary=mpi4py mpi4py
else
    pip install mpi4py
fi

# h5py from source against parallel HDF5 (PyPI has no MPI wheel). Build isolation would build its
# own mpi4py (slow), the wheel cache could hand back a serial build: both are switched off.
if ! "$py" -c 'import h5py, sys; sys.exit(not h5py.get_config().mpi)' 2>/dev/null; then
    say "building h5py against parallel HDF5 (2-3 minutes)"
    pip uninstall -y h5py >/dev/null 2>&1 || true
    extra=$(mktemp); printf '[build_ext]\nparallel=%s\n' "$(nproc)" >"$extra"
    DIST_EXTRA_CONFIG=$extra HDF5_MPI=ON CC=${MPICC:-mpicc} \
        pip install --no-cache-dir --no-build-isolation --no-binary=h5py h5py
    rm -f "$extra"
    "$py" -c 'import h5py, sys; sys.exit(not h5py.get_config().mpi)' ||
        die "h5py was built without MPI: check that HDF5 is the parallel build (HDF5_DIR or HDF5_PKGCONFIG_NAME)"
fi

# bench: Devito and pystencils, the yardsticks `solver bench` times beside our kernels (about 150 MB, 40 s)
say "installing the project (editable, with test and bench extras)"
pip install -e "$root[test,bench]"
echo "$want" >"$stamp"
say "done: activate with 'source $venv/bin/activate'"
