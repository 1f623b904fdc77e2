#!/usr/bin/env bash
# Threaded run of one config on this machine (numba threads, no MPI).
#   jobs/run.sh [CONFIG] [--set KEY=VALUE ...] [-o OUTPUT] [--overwrite]
# Threads: parallel.threads in the config, else all cores (NUMBA_NUM_THREADS caps them).
# Ctrl-C, SIGUSR1 or SIGTERM make it checkpoint and stop (exit 3); the same command again resumes it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

config=${1:-configs/default.yaml}
launch python -m solver run "$config" "${@:2}" --restart auto
