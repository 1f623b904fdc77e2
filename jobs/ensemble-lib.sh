# Shared by jobs/ensemble.sh, jobs/ensemble.slurm and jobs/ensemble-array.slurm (source it after env.sh):
# the ensemble's settings and the one way members are launched, through GNU parallel, resumably.
#   ENSEMBLE_CONFIG   ensemble config (default configs/ensemble.yaml)
#   ENSEMBLE_HALT     GNU parallel --halt policy (default soon,fail=N with N a tenth of the processes, at least 2:
#                     that many failures mean something systematic is wrong, so start no more members and
#                     let the running ones finish; a percentage would halt on a failure among the first jobs)
#   ENSEMBLE_BATCH    members per process (default 1); more amortises the interpreter's start-up
# shellcheck shell=bash

ensemble_config=${ENSEMBLE_CONFIG:-configs/ensemble.yaml}
if ! ensemble_settings=$(python solver/ensemble.py --config "$ensemble_config" --print-settings); then
    exit 2          # the member script has printed what is wrong with the config
fi
# output directory, ensemble.members, threads per member (parallel.threads; auto = SLURM_CPUS_PER_TASK or 1)
read -r ensemble_dir ensemble_members ensemble_threads <<<"$ensemble_settings"

# member_sequence FIRST LAST: the member numbers, one a line (jot as in the talk where installed, else seq)
member_sequence() {
    if command -v jot >/dev/null; then
        jot $(($2 - $1 + 1)) "$1"
    else
        seq "$1" "$2"
    fi
}

# check_count WHAT VALUE: VALUE is a whole number from 1 up, written plainly: no sign, no leading zero (bash
# would read 08 as octal), at most 9 digits (bash arithmetic would wrap around), so arithmetic on it is safe
check_count() {
    if [[ ! $2 =~ ^[1-9][0-9]{0,8}$ ]]; then
        echo "error: $1 = '$2' is not a whole number from 1 to 999999999 (no sign, no leading zeros)" >&2
        exit 2
    fi
}

# check_range FIRST LAST: both whole numbers from 1 up, FIRST <= LAST
check_range() {
    check_count "the first member" "$1"
    check_count "the last member" "$2"
    if (($1 > $2 || (ensemble_members > 0 && $2 > ensemble_members))); then
        echo "error: member range '$1' .. '$2' is not FIRST LAST with 1 <= FIRST <= LAST <= ensemble.members" \
             "= $ensemble_members ($ensemble_config)" >&2
        exit 2
    fi
}

# run_members FIRST LAST JOBS [LAUNCHER...]: members FIRST..LAST, JOBS at a time, each command prefixed by
# LAUNCHER (srun under SLURM). The joblog is named after the range, so running the same range again
# resumes it: members that finished are not started again, failed ones are retried (--resume-failed).
run_members() {
    local first=$1 last=$2 jobs=$3
    shift 3
    check_range "$first" "$last"
    [[ $jobs != 0 ]] || jobs=1      # fewer cores than threads per member: one at a time
    check_count ENSEMBLE_JOBS "$jobs"
    local batch=${ENSEMBLE_BATCH:-1}
    check_count ENSEMBLE_BATCH "$batch"
    local count=$(((last - first + batch) / batch))          # processes: batch members each
    local halt=${ENSEMBLE_HALT:-soon,fail=$((count >= 20 ? (count + 9) / 10 : 2))}
    if [[ ! $halt =~ ^(never|(now|soon),(fail|success|done)=([1-9][0-9]{0,8}|[1-9][0-9]?%|100%))$ ]]; then
        echo "error: ENSEMBLE_HALT = '$halt' is not a GNU parallel --halt policy such as soon,fail=5," \
             "now,fail=10% or never" >&2
        exit 2
    fi
    mkdir -p "$ensemble_dir"
    local joblog
    joblog=$ensemble_dir/joblog-$(printf '%04d-%04d' "$first" "$last").tsv
    echo "members $first..$last of $ensemble_config: $jobs at a time, $batch per process," \
         "$ensemble_threads thread(s) each; joblog $joblog"
    if ! member_sequence "$first" "$last" |
        parallel --jobs "$jobs" --max-args "$batch" --joblog "$joblog" --resume-failed \
                 --halt "$halt" --line-buffer \
                 "$@" python solver/ensemble.py --config "$ensemble_config"; then
        echo "error: some members failed (nonzero Exitval in $joblog, messages above);" \
             "fix the cause and run the same command again: only the failed and unstarted members run" >&2
        return 1
    fi
}

# need_slurm VARIABLE...: fail with the fix when the script runs outside the SLURM job it expects
need_slurm() {
    local name
    for name in "$@"; do
        if [[ -z ${!name:-} ]]; then
            echo "error: $name is not set: submit this script with sbatch (see its header)," \
                 "or run jobs/ensemble.sh on a machine without SLURM" >&2
            exit 2
        fi
    done
}

# array_block FIRST LAST BLOCK: sets block_first, block_last to array task SLURM_ARRAY_TASK_ID's share of
# the members FIRST..LAST in blocks of BLOCK (index 0 from FIRST); block_first > block_last when none is left.
array_block() {
    check_range "$1" "$2"
    check_count ENSEMBLE_BLOCK "$3"
    block_first=$(($1 + SLURM_ARRAY_TASK_ID * $3))
    block_last=$((block_first + $3 - 1 < $2 ? block_first + $3 - 1 : $2))
    local covered=$(($1 + (SLURM_ARRAY_TASK_MAX + 1) * $3 - 1))
    if ((SLURM_ARRAY_TASK_ID == SLURM_ARRAY_TASK_MAX && covered < $2)); then
        echo "warning: --array up to $SLURM_ARRAY_TASK_MAX in blocks of $3 covers members $1..$covered only;" \
             "use --array=0-$(((($2 - $1 + 1) + $3 - 1) / $3 - 1)) for all up to $2" >&2
    fi
}
