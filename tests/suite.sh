#!/usr/bin/env bash
# The test suite as `make test` runs it. With no arguments: two pytest processes side by side, the files that
# mostly compile kernels (HEAVY) beside all the others, since the suite keeps about one core of two busy (numba
# compiles one kernel at a time, the tests wait for their subprocesses); the heavy half's report follows the
# other's. With arguments (a selection, markers, options): one `pytest "$@"`, as before.
#   bash tests/suite.sh [PYTEST_ARGS...]          PYTHON: the interpreter (default .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
(($#)) && exec "$python" -m pytest "$@"

# Nearly half the suite's time, nothing of MPI's that the other half's SLURM tests could meet (each half
# starts its own processes; kernels compiled by both land in the same cache, written whole by either)
heavy=(tests/test_kernels.py tests/test_kernels_unit.py tests/test_models.py tests/test_numba_cache.py
       tests/test_model_seam.py)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$python" -m pytest "${heavy[@]}" >"$log" 2>&1 &
half=$!
"$python" -m pytest "${heavy[@]/#/--ignore=}"
rest=$?
wait "$half"
heavy_status=$?
echo "=== ${heavy[*]}: run beside the rest ==="
cat "$log"
echo "=== suite: the rest exited $rest, the heavy files $heavy_status ==="
exit $((rest != 0 ? rest : heavy_status))
