# Sourced by jobs/env.sh. `launch COMMAND...` runs the solver so that a job survives its time limit:
#
#   #SBATCH --signal=B:USR1@60   SLURM signals the batch shell 60 s before the limit (scancel --signal too)
#   #SBATCH --requeue            the job may be put back in the queue ...
#   #SBATCH --open-mode=append   ... and its log continues
#
# The signal reaches the batch shell, not the solver, so `launch` runs COMMAND in the background and forwards
# USR1, TERM and Ctrl-C to it, always as USR1: mpirun passes USR1 on to the ranks, while TERM makes Open MPI's
# kill them (it sends SIGCONT, TERM, KILL and exits 1, so the requeue status 3 would be lost); to the solver
# the two mean the same. The solver writes a checkpoint at the next step boundary and exits with status 3;
# inside a job `launch` then requeues the job, and the requeued job (run with --restart auto) resumes from
# the checkpoint. Outside SLURM 3 is passed on.
# A launcher may lose that status: MPICH's Hydra (mpiexec) reports 0 for every rank that exits after it
# forwarded a signal. So the solver also records the stop in the file SOLVER_STOP_FILE names (rank 0 writes
# it), and `launch` takes a written file as status 3 whatever the launcher says. The file lies in the
# repository ($repo of env.sh), which every node of a multi-node job sees (the ranks run the solver from it);
# where it cannot be written, the status alone counts.
# shellcheck shell=bash

SOLVER_EXIT_REQUEUE=3       # solver/storage/checkpoint.py EXIT_REQUEUE

launch() {
    local child status forwarded stop_file
    stop_file=$(mktemp "${repo:-$PWD}/.solver-stop.XXXXXX" 2>/dev/null) ||
        echo "launch: warning: cannot create a file in ${repo:-$PWD}: a launcher that loses the exit status" \
             "$SOLVER_EXIT_REQUEUE of a stop (MPICH's mpiexec after a signal) ends the job without a requeue" >&2
    SOLVER_STOP_FILE=$stop_file "$@" &
    child=$!
    trap 'forwarded=1; kill -USR1 "$child" 2>/dev/null || true' USR1 TERM INT   # see above: USR1 for all
    while :; do                         # a trapped signal ends `wait` early: wait again for the real status
        forwarded=0 status=0
        wait "$child" || status=$?
        ((forwarded)) || break
    done
    trap - USR1 TERM INT
    if [[ -s $stop_file ]] && ((status != SOLVER_EXIT_REQUEUE)); then
        echo "launch: the solver stopped with a checkpoint: status $SOLVER_EXIT_REQUEUE (launcher: $status)" >&2
        status=$SOLVER_EXIT_REQUEUE
    fi
    rm -f "$stop_file"
    if ((status == SOLVER_EXIT_REQUEUE)) && [[ -n ${SLURM_JOB_ID:-} ]]; then
        echo "launch: checkpoint written; requeueing job $SLURM_JOB_ID (restart count ${SLURM_RESTART_COUNT:-0})" >&2
        scontrol requeue "$SLURM_JOB_ID" ||
            { echo "error: scontrol requeue failed (job cancelled, or submitted without --requeue);" \
                   "submit the same command again to resume from the checkpoint" >&2; return 1; }
        return 0
    fi
    return "$status"
}
