# Sourced by the MPI job scripts (mpi2d.sh, mpi2d.slurm, scaling.sh) after env.sh: picks the launcher and
# sets `mpi_launch`, the command that starts the ranks, so the workstation and the cluster launch the same way.
#
#   NP        ranks (default: SLURM_NTASKS inside an allocation, else the cores of this machine)
#   LAUNCHER  srun | mpirun. Default: mpirun outside an allocation. Inside one, srun when SRUN_MPI is set, or
#             when `mpirun` is Open MPI and `srun --mpi=list` offers pmix, or when there is no mpirun at all
#             (Cray: srun is the launcher); else mpirun, which starts any MPI in any allocation (MPICH's,
#             Intel MPI's and MVAPICH's Hydra ask SLURM for the nodes).
#   SRUN_MPI  the plugin for `srun --mpi=`, one that `srun --mpi=list` shows and your MPI was built for.
#             Default: pmix for Open MPI; else cray_shasta on a Cray without mpirun, else pmi2 (MPICH and its
#             kin speak PMI-1/PMI-2), else SLURM's own default (MpiDefault).
#
# With mpi_launch_per_run=yes set before sourcing it only picks the launcher; `mpi_command RANKS [CPUS_PER_RANK]`
# then sets `mpi_launch` for each run (scaling.sh). Either way the launch line is printed to stderr.
# Threads per rank are the solver's business (parallel.threads, else SLURM_CPUS_PER_TASK, else the cores
# shared by the node's ranks), so no rank is pinned to one core: mpirun runs with --bind-to none (its
# default binds each rank to a core or socket, which squeezes every numba thread of a rank onto it).
# shellcheck shell=bash

mpi_launch_fail() { echo "error: $*" >&2; exit 2; }

# The MPI behind `mpirun`: open-mpi, other (Hydra: MPICH, Intel MPI, MVAPICH) or none (no mpirun).
mpi_family=none
if command -v mpirun >/dev/null; then
    case $(mpirun --version 2>&1) in
        *"Open MPI"* | *OpenRTE*) mpi_family=open-mpi ;;
        *) mpi_family=other ;;
    esac
fi

launcher=${LAUNCHER:-}
srun_mpi=${SRUN_MPI:-}
srun_plugins=""                 # what `srun --mpi=list` offers, asked only where srun may launch
if command -v srun >/dev/null && [[ -n ${SLURM_JOB_ID:-} || $launcher == srun || -n $srun_mpi ]]; then
    srun_plugins=$(srun --mpi=list 2>&1 | sed 's/^srun: //') || srun_plugins=""
fi
offers() { grep -qw -- "$1" <<<"$srun_plugins"; }

if [[ -z $launcher ]]; then
    launcher=mpirun
    if [[ -n ${SLURM_JOB_ID:-} && -n $srun_plugins ]]; then
        if [[ -n $srun_mpi || $mpi_family == none ]] || { [[ $mpi_family == open-mpi ]] && offers pmix; }; then
            launcher=srun
        fi
    fi
fi

case $launcher in
    srun)
        command -v srun >/dev/null || mpi_launch_fail "LAUNCHER=srun but srun is not found; use LAUNCHER=mpirun"
        if [[ -z $srun_mpi ]]; then
            if [[ $mpi_family == open-mpi ]]; then
                if offers pmix; then srun_mpi=pmix; fi
            elif [[ $mpi_family == none ]] && offers cray_shasta; then
                srun_mpi=cray_shasta
            elif offers pmi2; then
                srun_mpi=pmi2
            fi
        elif [[ -n $srun_plugins ]] && ! offers "$srun_mpi"; then
            names=$(sed -n 's/^[[:space:]]*\([a-z0-9_]*\)[[:space:]]*$/\1/p' <<<"$srun_plugins" | tr '\n' ' ')
            mpi_launch_fail "SRUN_MPI = '$srun_mpi' is not a plugin of this SLURM (srun --mpi=list: ${names% });" \
                            "pick one your MPI was built for"
        fi
        ;;
    mpirun)
        command -v mpirun >/dev/null ||
            mpi_launch_fail "mpirun not found; run 'bash jobs/setup.sh' or load your site's MPI module"
        # Open MPI: a workstation may start more ranks than cores (slow but useful for testing); an allocation
        # may not. Other MPIs ignore the variable.
        [[ -n ${SLURM_JOB_ID:-} ]] || export OMPI_MCA_rmaps_base_oversubscribe=1
        ;;
    *)
        mpi_launch_fail "LAUNCHER = '$launcher'; use LAUNCHER=srun or LAUNCHER=mpirun"
        ;;
esac

# mpi_command RANKS [CPUS_PER_RANK]: set mpi_launch, the launch of RANKS ranks, and print it.
mpi_command() {
    if [[ $launcher == srun ]]; then
        # srun no longer inherits sbatch's --cpus-per-task (SLURM 22.05): pass it on. --kill-on-bad-exit: a
        # rank that dies (its node failed, say) ends the step, instead of leaving the others waiting for it
        # in an exchange until the time limit (SLURM's default lets the other tasks run on).
        mpi_launch=(srun ${srun_mpi:+--mpi="$srun_mpi"} --kill-on-bad-exit=1 -n "$1" ${2:+--cpus-per-task="$2"})
    else
        mpi_launch=(mpirun -n "$1" --bind-to none)
    fi
    echo "launch: ${mpi_launch[*]}" >&2
}

if [[ ${mpi_launch_per_run:-no} != yes ]]; then
    np=${NP:-${SLURM_NTASKS:-$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)}}
    [[ $np =~ ^[1-9][0-9]*$ ]] ||
        mpi_launch_fail "NP = '$np' is not a positive number of ranks; set NP (or sbatch --ntasks)"
    mpi_command "$np" "${SLURM_CPUS_PER_TASK:-}"
fi
