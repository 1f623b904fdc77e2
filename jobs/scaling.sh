#!/usr/bin/env bash
# Strong and weak scaling sweep over MPI ranks x numba threads, then its plots.
#   jobs/scaling.sh [CONFIG] [--set KEY=VALUE ...]          default CONFIG: configs/scaling.yaml
# Settings (environment):
#   SCALING_RANKS="1 2"            rank counts            SCALING_THREADS="1 2"   threads per rank
#   SCALING_MODES="strong weak"    sweeps to run          SCALING_DIR=results/scaling
#   SCALING_MAX_WORKERS=<cores>    skip runs with more ranks x threads (jobs/scaling.slurm: the allocation)
# The launcher is jobs/mpi_launch.sh's (LAUNCHER, SRUN_MPI), given each run's ranks and threads.
# Outputs: SCALING_DIR/MODE-rR-tT.h5 per run, SCALING_DIR/MODE.png and MODE.csv per sweep.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
mpi_launch_per_run=yes
source jobs/mpi_launch.sh

config=${1:-configs/scaling.yaml}
overrides=("${@:2}")
ranks=${SCALING_RANKS:-1 2}
threads=${SCALING_THREADS:-1 2}
modes=${SCALING_MODES:-strong weak}
dir=${SCALING_DIR:-results/scaling}
max_workers=${SCALING_MAX_WORKERS:-$(nproc)}
mkdir -p "$dir"

for mode in $modes; do
    plan=$(python analysis/scaling.py plan --mode "$mode" --ranks "$ranks" --threads "$threads" \
           --max-workers "$max_workers" "$config" "${overrides[@]}")
    outputs=()
    while read -r name nranks nthreads run_overrides; do
        echo "scaling: $mode, $nranks rank(s) x $nthreads thread(s) -> $dir/$name.h5"
        mpi_command "$nranks" "$nthreads"
        # shellcheck disable=SC2086  # run_overrides is a list of --set KEY=VALUE without spaces
        NUMBA_NUM_THREADS=$nthreads "${mpi_launch[@]}" python -m solver run "$config" "${overrides[@]}" \
            $run_overrides --set parallel.threads="$nthreads" -o "$dir/$name.h5" --overwrite </dev/null
        outputs+=("$dir/$name.h5")
    done <<<"$plan"
    python analysis/scaling.py plot --mode "$mode" "${outputs[@]}" -o "$dir/$mode.png" --csv "$dir/$mode.csv"
done
