#!/usr/bin/env bash
# Ensemble on this machine through GNU parallel, one member per core (divided by parallel.threads).
#   jobs/ensemble.sh [FIRST [LAST]]        default 1 .. ensemble.members of $ENSEMBLE_CONFIG
# Run it again to resume: finished members are skipped, failed ones retried. Knobs (see jobs/ensemble-lib.sh):
# ENSEMBLE_CONFIG, ENSEMBLE_JOBS (members at once, default the cores), ENSEMBLE_BATCH (members per process,
# default 1; 10 cuts the start-up cost per member about 4x), ENSEMBLE_HALT.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
source jobs/ensemble-lib.sh

if (($# > 2)); then
    echo "error: jobs/ensemble.sh takes at most FIRST and LAST, got $# arguments" >&2
    exit 2
fi
cores=$(($(nproc) / ensemble_threads))
run_members "${1:-1}" "${2:-$ensemble_members}" "${ENSEMBLE_JOBS:-$((cores > 0 ? cores : 1))}"
