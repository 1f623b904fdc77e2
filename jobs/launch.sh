# Sourced by jobs/env.sh. `launch COMMAND...` runs the solver so that a job survives its time limit:
#
#   #SBATCH --signal=B:USR1@60   SLURM signals the batch shell 60 s before the limit (scancel --signal too)
#   #SBATCH --requeue            the job may be put back in the queue ...
#   #SBATCH --open-mode=append   ... and its log continues
#
# The signal reaches the batch shell, not the solver, so `launch` runs COMMAND in the background and forwards
# USR1, TERM and Ctrl-C to it, always as USR1: mpirun passes USR1 on to the ranks, while TERM makes it kill
# them (it sends SIGCONT, TERM, KILL and exits 1, so the requeue status 3 would be lost); to the solver
# the two mean the same (checkpoint at the next step boundary). The solver writes a
# checkpoint at the next step boundary and exits with status 3; inside a job `launch` then requeues the job,
# and the requeued job (run with --restart auto) resumes from the checkpoint. Outside SLURM 3 is passed on.
# shellcheck shell=bash

SOLVER_EXIT_REQUEUE=3       # solver/checkpoint.py EXIT_REQUEUE

launch() {
    local child status forwarded
    "$@" &
    child=$!
    trap 'forwarded=1; kill -USR1 "$child" 2>/dev/null || true' USR1 TERM INT   # see above: USR1 for all
    while :; do                         # a trapped signal ends `wait` early: wait again for the real status
        forwarded=0 status=0
        wait "$child" || status=$?
        ((forwarded)) || break
    done
    trap - USR1 TERM INT
    if ((status == SOLVER_EXIT_REQUEUE)) && [[ -n ${SLURM_JOB_ID:-} ]]; then
        echo "launch: checkpoint written; requeueing job $SLURM_JOB_ID (restart count ${SLURM_RESTART_COUNT:-0})" >&2
        scontrol requeue "$SLURM_JOB_ID" ||
            { echo "error: scontrol requeue failed (job cancelled, or submitted without --requeue);" \
                   "submit the same command again to resume from the checkpoint" >&2; return 1; }
        return 0
    fi
    return "$status"
}
