#!/usr/bin/env bash
# What the output options cost, in one set of runs on NP ranks (default 2) at N x N nodes (default 4096):
# file size and write time of float64 uncompressed, float32 + gzip/shuffle and a [4, 4] subsample; the cost per
# step of 10 probes and the per-step series, against the same run without them. Figures: docs/performance.md.
#
#   bash bench/output_options.sh [DIR]            # NP=2 N=4096 STEPS=400; DIR default results/output-bench
#   RUNS="plain probes-1" bash bench/output_options.sh     # some of the runs (names below), in this order
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source jobs/env.sh
dir=${1:-results/output-bench}
NP=${NP:-2} N=${N:-4096} STEPS=${STEPS:-400}
mkdir -p "$dir"
dt=$(python -c "print(0.8 * (1 / ($N - 1)) ** 2 / (4 * 0.001))")
common=(--set "grid.nx=$N" --set "grid.ny=$N" --set "time.dt=$dt" --set "time.t_end=$(python -c "print($STEPS * $dt)")"
        --set parallel.threads=1 --overwrite)
probes="{$(python -c "print(', '.join(f'p{k}: [{0.05 + 0.09 * k:.2f}, {0.95 - 0.09 * k:.2f}]' for k in range(10)))")}"
run() {   # NAME, then --set options
    local name=$1; shift
    mpirun -n "$NP" --bind-to none python -m solver run configs/mpi2d.yaml -o "$dir/$name.h5" "${common[@]}" "$@" \
        > "$dir/$name.log"
    python - "$dir/$name.h5" "$name" <<'EOF'
import os, sys
from solver.info import read_attrs
path, name = sys.argv[1:]
a = read_attrs(path)
steps = a["steps"]
stepping = a["loop_seconds"] - a["io_seconds"]       # the loop without the snapshots' writes
print(f"{name:<14} {os.path.getsize(path) / 2**20:9.1f} MiB  write {a['io_seconds']:6.2f} s  "
      f"step {1e3 * stepping / steps:6.2f} ms  of which records {1e3 * a['records_seconds'] / steps:6.3f} ms")
EOF
}
every=$((STEPS / 4))
for name in ${RUNS:-float64 float32-gzip subsample-4 plain probes-1 probes-series-1 probes-series-31}; do
    case $name in
        float64)          run $name --set "output.every=$every" ;;
        float32-gzip)     run $name --set "output.every=$every" --set output.precision=float32 \
                                    --set output.compression=gzip ;;
        subsample-4)      run $name --set "output.every=$every" --set "output.subsample=[4, 4]" ;;
        plain)            run $name --set output.every=0 ;;
        probes-1)         run $name --set output.every=0 --set "output.probes=$probes" ;;
        probes-series-1)  run $name --set output.every=0 --set "output.probes=$probes" --set output.series_every=1 ;;
        probes-series-31) run $name --set output.every=0 --set "output.probes=$probes" --set output.probe_every=31 \
                                    --set output.series_every=31 ;;
        *) echo "unknown run $name" >&2; exit 2 ;;
    esac
done
