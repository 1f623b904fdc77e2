#!/usr/bin/env bash
# Set up everything the solver and its tests need; safe to run again (skips what is there).
#
#   bash jobs/setup.sh            # Debian/Ubuntu as root: apt packages, then .venv
#   SETUP_SYSTEM=no bash jobs/setup.sh   # cluster: `module load` an MPI and a parallel HDF5 first
#
# On a cluster the MPI compiler wrapper (MPICC, default mpicc) and HDF5 (HDF5_DIR, or pkg-config
# name HDF5_PKGCONFIG_NAME) come from the loaded modules, and mpi4py is built against that MPI.
# VENV: where the environment goes (default .venv; relative to the repository), e.g. one per MPI.
# SETUP_EXTRAS: the project's extras to install (default test,bench; bench adds Devito and pystencils).
# SETUP_WHEELS: where the wheels it compiles (h5py; mpi4py on a cluster) are kept for the next set-up, in one
# folder per Python, MPI, HDF5 and CFLAGS (default ~/.cache/hpc-stencil-wheels; "no": compile every time).
#
# It ends by checking that mpi4py and h5py use one and the same MPI library, and says which. A changed
# MPI (another module loaded) rebuilds mpi4py and h5py, a changed HDF5 h5py: never "up to date".
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-.venv}
[[ $venv == /* ]] || venv=$root/$venv
extras=${SETUP_EXTRAS:-test,bench}
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

# The MPI and the HDF5 this build compiles against: the wrapper and what it links; the HDF5 location.
mpicc=${MPICC:-mpicc}
wrapper=$(command -v "$mpicc" || true)
mpi_build="MPI $(realpath "${wrapper:-$mpicc}"): $("$mpicc" -show 2>/dev/null || "$mpicc" --showme 2>/dev/null || true)"
if [[ -n ${HDF5_DIR:-} ]]; then
    hdf5_build="HDF5 HDF5_DIR=$HDF5_DIR"
else
    pc=${HDF5_PKGCONFIG_NAME:-hdf5}     # h5py's own default
    hdf5_build="HDF5 pkg-config $pc $(pkg-config --modversion "$pc" 2>/dev/null) $(pkg-config --libs "$pc" 2>/dev/null)"
fi
mpi_build=${mpi_build//$'\n'/ } hdf5_build=${hdf5_build//$'\n'/ }     # one stamp line each

# --- virtual environment --------------------------------------------------------------------
if [[ ! -x $venv/bin/python ]]; then
    say "creating $venv"
    "$python" -m venv "$venv"
fi
py=$venv/bin/python
pip() { "$py" -m pip --disable-pip-version-check -q "$@"; }

# Which MPI library mpi4py and h5py use: one line, or the problem and its fix (solver/parallel/mpilib.py).
mpi_check() { PYTHONPATH=$root "$py" -m solver.parallel.mpilib check | sed 's/^/setup: /'; }

# Re-install only when the requirements, the extras, the MPI or the HDF5 changed since the last successful
# setup. The stamp holds a hash of all of them, then the MPI and the HDF5 lines compiled against.
stamp=$venv/.setup-stamp
want=$(cat "$root/setup.cfg" "$root/pyproject.toml" "${BASH_SOURCE[0]}" <(echo "$extras $mpi_build $hdf5_build") |
       sha256sum | cut -d' ' -f1)
stamped=$(sed -n 1p "$stamp" 2>/dev/null || true)
stamped_mpi=$(sed -n 2p "$stamp" 2>/dev/null || true)
stamped_hdf5=$(sed -n 3p "$stamp" 2>/dev/null || true)
modules=(h5py mpi4py numba solver)
[[ ,$extras, == *,bench,* ]] && modules+=(devito pystencils)
if [[ $stamped == "$want" ]] && "$py" -c 'import sys; from importlib.util import find_spec as f
import h5py; assert h5py.get_config().mpi and all(map(f, sys.argv[1:]))' "${modules[@]}" 2>/dev/null &&
   mpi_check 2>/dev/null; then
    say "environment up to date ($venv)"
    exit 0
fi
# Another MPI than the last build's (modules switched), or a build that mixes two: compile both again;
# another HDF5 alone: h5py.
rebuild_mpi4py=no rebuild_h5py=no
if [[ -n $stamped_mpi && $stamped_mpi != "$mpi_build" ]] ||
   { "$py" -c 'import h5py' 2>/dev/null && ! mpi_check >/dev/null 2>&1; }; then
    rebuild_mpi4py=yes rebuild_h5py=yes
    say "rebuilding mpi4py and h5py for $mpi_build; $hdf5_build"
elif [[ -n $stamped_hdf5 && $stamped_hdf5 != "$hdf5_build" ]]; then
    rebuild_h5py=yes
    say "rebuilding h5py for $hdf5_build"
fi

# The wheels compiled below are kept for the next set-up (a fresh clone, another VENV, CI) in a folder of this
# Python, MPI, HDF5 and CFLAGS: pip's own wheel cache keys on name and version only and could hand back a
# build for another MPI or a serial h5py, so it stays off. A kept wheel is checked like a fresh build.
if [[ ${SETUP_WHEELS:-} != no ]]; then
    wheels=${SETUP_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/hpc-stencil-wheels}/$(
        printf '%s\n' "$("$py" -c 'import sys; print(sys.version)')" "$mpi_build" "$hdf5_build" "${CFLAGS:-}" |
        sha256sum | cut -c1-16)
else
    wheels=
fi
# compiled NAME PIP_OPTIONS...: install NAME compiled from source with these options, from the kept wheel if
# there is one, else compiled into the folder of kept wheels first (or straight into the environment).
compiled() {
    local name=$1; shift
    local kept=()
    [[ -z $wheels ]] || kept=("$wheels"/"$name"-*.whl)
    if [[ -n $wheels && ! -e ${kept[0]} ]]; then
        local scratch
        say "compiling $name (its wheel kept in $wheels)"
        mkdir -p "$wheels" && scratch=$(mktemp -d "$wheels/.build.XXXXXX")
        pip wheel --no-deps --no-cache-dir --no-binary="$name" -w "$scratch" "$@" "$name" &&
            mv "$scratch"/"$name"-*.whl "$wheels"/ || { rm -rf "$scratch"; return 1; }
        rm -rf "$scratch"
        kept=("$wheels"/"$name"-*.whl)
    elif [[ -n $wheels ]]; then
        say "using the kept $name wheel ${kept[-1]##*/} ($wheels)"
    fi
    if [[ -n $wheels ]]; then
        pip install --no-deps --force-reinstall "${kept[-1]}"
    else
        pip install --no-cache-dir --no-binary="$name" --force-reinstall --no-deps "$@" "$name"
    fi
}

say "installing build requirements"
pip install 'pip>=24' 'setuptools>=77' wheel 'numpy>=2,<3' 'Cython>=3,<4' 'pkgconfig>=1.5.5'
if [[ $mpi4py_from_source == yes ]]; then
    if [[ $rebuild_mpi4py == yes ]] || ! "$py" -c 'import mpi4py' 2>/dev/null; then
        MPICC=$mpicc compiled mpi4py
    fi
else
    pip install mpi4py
fi

# h5py from source against parallel HDF5 (PyPI has no MPI wheel). Build isolation would build its
# own mpi4py (slow), the wheel cache could hand back a serial build: both are switched off.
if [[ $rebuild_h5py == yes ]] || ! "$py" -c 'import h5py, sys; sys.exit(not h5py.get_config().mpi)' 2>/dev/null; then
    say "h5py against parallel HDF5 (compiling it takes 2-3 minutes)"
    pip uninstall -y h5py >/dev/null 2>&1 || true
    extra=$(mktemp); printf '[build_ext]\nparallel=%s\n' "$(nproc)" >"$extra"
    DIST_EXTRA_CONFIG=$extra HDF5_MPI=ON CC=$mpicc compiled h5py --no-build-isolation
    rm -f "$extra"
    if ! "$py" -c 'import h5py, sys; sys.exit(not h5py.get_config().mpi)'; then
        [[ -z $wheels ]] || rm -f "$wheels"/h5py-*.whl
        die "h5py was built without MPI: check that HDF5 is the parallel build (HDF5_DIR or HDF5_PKGCONFIG_NAME)"
    fi
fi
if ! mpi_check; then          # the one line above says what is mixed and what to do
    [[ -z $wheels ]] || rm -f "$wheels"/h5py-*.whl "$wheels"/mpi4py-*.whl
    exit 1
fi

# bench: Devito and pystencils, the yardsticks `solver bench` times beside our kernels (about 150 MB, 40 s)
say "installing the project (editable, with the extras $extras)"
pip install -e "$root[$extras]"
printf '%s\n%s\n%s\n' "$want" "$mpi_build" "$hdf5_build" >"$stamp"
say "done: activate with 'source $venv/bin/activate'"
