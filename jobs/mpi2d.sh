#!/usr/bin/env bash
# MPI run of one config on this machine: NP ranks (default: the cores), numba threads per rank chosen by
# the solver (cores / ranks unless parallel.threads says otherwise).
#   jobs/mpi2d.sh [CONFIG] [--set KEY=VALUE ...] [-o OUTPUT] [--overwrite]
#   NP=4 jobs/mpi2d.sh configs/mpi2d.yaml --set parallel.halo=2 --overwrite
# Default CONFIG: configs/mpi2d.yaml. Launcher settings (NP, LAUNCHER): jobs/mpi_launch.sh.
# Ctrl-C, SIGUSR1 or SIGTERM make it checkpoint and stop (exit 3); the same command again resumes it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
source jobs/mpi_launch.sh

[[ $# -gt 0 && $1 != -* ]] || set -- configs/mpi2d.yaml "$@"
launch "${mpi_launch[@]}" python -m solver run "$@" --restart auto
