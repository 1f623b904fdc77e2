#!/usr/bin/env bash
# Threaded run of one config on this machine (numba threads, no MPI).
#   jobs/run.sh [CONFIG] [--set KEY=VALUE ...] [-o OUTPUT] [--overwrite]
# Threads: parallel.threads in the config, else all cores (NUMBA_NUM_THREADS caps them).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

config=${1:-configs/default.yaml}
python -m solver run "$config" "${@:2}"
