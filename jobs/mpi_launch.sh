# Sourced by the MPI job scripts (mpi2d.sh, mpi2d.slurm) after env.sh: sets `mpi_launch`, the command
# that starts the ranks, so the workstation and the cluster scripts launch the same way.
#
#   NP        ranks (default: SLURM_NTASKS inside an allocation, else the cores of this machine)
#   LAUNCHER  srun | mpirun (default: srun inside an allocation when `srun --mpi=list` offers pmix and
#             mpirun is Open MPI, which speaks PMIx; else mpirun). On another MPI (MPICH, Intel MPI) check
#             `srun --mpi=list` and your site's documentation, then set LAUNCHER=srun SRUN_MPI=pmi2, say.
#   SRUN_MPI  the plugin for `srun --mpi=` (default pmix)
# Threads per rank are the solver's business (parallel.threads, else SLURM_CPUS_PER_TASK, else the cores
# shared by the node's ranks), so no rank is pinned to one core: mpirun runs with --bind-to none (its
# default binds each rank to a core or socket, which squeezes every numba thread of a rank onto it).
# shellcheck shell=bash

np=${NP:-${SLURM_NTASKS:-$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)}}
if [[ ! $np =~ ^[1-9][0-9]*$ ]]; then
    echo "error: NP = '$np' is not a positive number of ranks; set NP (or sbatch --ntasks)" >&2
    exit 2
fi

launcher=${LAUNCHER:-}
if [[ -z $launcher ]]; then
    launcher=mpirun
    if [[ -n ${SLURM_JOB_ID:-} ]] && command -v srun >/dev/null &&
       srun --mpi=list 2>&1 | grep -qw pmix && mpirun --version 2>&1 | grep -q "Open MPI"; then
        launcher=srun
    fi
fi

case $launcher in
    srun)
        # srun no longer inherits sbatch's --cpus-per-task (SLURM 22.05): pass it on. --kill-on-bad-exit: a
        # rank that dies (its node failed, say) ends the step, instead of leaving the others waiting for it
        # in an exchange until the time limit (SLURM's default lets the other tasks run on).
        mpi_launch=(srun --mpi="${SRUN_MPI:-pmix}" --kill-on-bad-exit=1 -n "$np"
                    ${SLURM_CPUS_PER_TASK:+--cpus-per-task="$SLURM_CPUS_PER_TASK"})
        ;;
    mpirun)
        if ! command -v mpirun >/dev/null; then
            echo "error: mpirun not found; run 'bash jobs/setup.sh' or load your site's MPI module" >&2
            exit 2
        fi
        # A workstation may start more ranks than cores (slow but useful for testing); an allocation may not.
        [[ -n ${SLURM_JOB_ID:-} ]] || export OMPI_MCA_rmaps_base_oversubscribe=1
        mpi_launch=(mpirun -n "$np" --bind-to none)
        ;;
    *)
        echo "error: LAUNCHER = '$launcher'; use LAUNCHER=srun or LAUNCHER=mpirun" >&2
        exit 2
        ;;
esac
echo "launch: ${mpi_launch[*]}" >&2
