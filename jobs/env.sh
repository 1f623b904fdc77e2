# Sourced by every job script: the one place that knows how to reach the solver's environment.
# Cluster-specific part: load your site's modules here (or before submitting), for example
#   module load openmpi hdf5/parallel
# shellcheck shell=bash

# Under sbatch the script runs from a spool copy: the repository is where the job was submitted from.
repo=${SOLVER_REPO:-${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}}
cd "$repo"
if [[ ! -f solver/__main__.py ]]; then
    echo "error: $repo is not the solver repository; submit from the repository root or set SOLVER_REPO" >&2
    exit 2
fi
# The environment: an activated one, else VENV (as given to jobs/setup.sh, say one per MPI), else .venv.
if [[ -z ${VIRTUAL_ENV:-} ]]; then
    venv=${VENV:-.venv}
    if [[ ! -f $venv/bin/activate ]]; then
        echo "error: no environment at $venv; run 'VENV=$venv bash jobs/setup.sh' (or 'make setup') first" >&2
        exit 2
    fi
    # shellcheck disable=SC1090,SC1091
    source "$venv/bin/activate"
fi

# Open MPI refuses root unless told (other MPIs ignore the variables); containers and CI often run as root.
if [[ $(id -u) == 0 ]]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Threads per rank: SLURM's --cpus-per-task when set (the solver reads it too).
if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
    export NUMBA_NUM_THREADS=$SLURM_CPUS_PER_TASK
fi
export HDF5_USE_FILE_LOCKING=${HDF5_USE_FILE_LOCKING:-FALSE}   # network file systems
source jobs/launch.sh       # launch COMMAND...: checkpoint on USR1/TERM and requeue (see there)
