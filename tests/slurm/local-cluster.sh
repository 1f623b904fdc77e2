#!/usr/bin/env bash
# A private single-node SLURM cluster on this machine, for the tests and for trying the job scripts.
#
#   bash tests/slurm/local-cluster.sh start    # install slurm-wlm/munge if missing, start, wait for idle
#   eval "$(bash tests/slurm/local-cluster.sh env)"   # point sbatch, squeue, ... at it
#   bash tests/slurm/local-cluster.sh status
#   bash tests/slurm/local-cluster.sh stop     # stops exactly the daemons 'start' started
#
# Everything (config, munge socket and key, state, spool, logs, pid files) lives in one directory,
# SLURM_LOCAL_DIR (default /tmp/hpc-slurm-<hash of this checkout>), and the daemons listen on ports derived
# from it, so it never touches a system SLURM or another checkout's cluster. Needs root (slurmd runs jobs
# as any user; munged runs as the munge user). No systemd needed. The node is reached at 127.0.0.1, so the
# host name need not resolve.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${SLURM_LOCAL_DIR:-/tmp/hpc-slurm-$(printf '%s' "$repo" | cksum | cut -d' ' -f1)}
conf=$dir/slurm.conf
socket=$dir/munge/munge.socket
timeout=${SLURM_LOCAL_TIMEOUT:-60}
say() { printf 'local-cluster: %s\n' "$*" >&2; }
die() { printf 'local-cluster: error: %s\n' "$*" >&2; exit 1; }

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return
    [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null ||
        die "slurmctld/slurmd/munged not found: install slurm-wlm and munge (Debian: apt-get install slurm-wlm munge)"
    say "installing slurm-wlm munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

write_config() {
    local host cpus memory port
    host=$(hostname -s)
    cpus=$(nproc --all)
    memory=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 8 / 10))    # MiB, 80 % of the machine
    port=$((20000 + $(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 10000 * 2))
    cat >"$conf" <<EOF
# Written by tests/slurm/local-cluster.sh: one node, everything under $dir
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=10
MinJobAge=300
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

# pid of a daemon if its pid file names a live process
pid_of() {
    local file=$dir/$1.pid pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}

node_state() { SLURM_CONF=$conf sinfo -h -N -o '%T' 2>/dev/null | head -n1; }

show_logs() {
    local log
    for log in "$dir"/daemons.out "$dir"/munge/munged.log "$dir"/slurmctld.log "$dir"/slurmd.log; do
        [[ -f $log ]] && { printf -- '--- %s (last 30 lines)\n' "$log" >&2; tail -n 30 "$log" >&2; }
    done
    return 0
}

# The daemons outlive this script: they must not inherit its open files beyond stdin/out/err, such as
# the lock of `flock LOCK local-cluster.sh start`, which they would otherwise hold until they stop.
close_inherited_files() {
    local fd
    for fd in /proc/$$/fd/*; do
        fd=${fd##*/}
        ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
    done
    return 0
}

start() {
    [[ $(id -u) == 0 ]] || die "needs root (slurmd starts jobs as their users); run it with sudo"
    install_packages
    if pid_of slurmctld >/dev/null && [[ $(node_state) == idle* || $(node_state) == mixed* ]]; then
        say "already running in $dir"
        print_env
        return
    fi
    stop_daemons quiet
    close_inherited_files
    mkdir -p "$dir/state" "$dir/spool/$(hostname -s)" "$dir/munge"
    chmod 755 "$dir"
    write_config

    # munged refuses a key others can read, or a socket directory others cannot enter.
    chown munge:munge "$dir/munge"
    chmod 755 "$dir/munge"
    if [[ ! -f $dir/munge/munge.key ]]; then      # a key of its own: only this cluster's daemons use it
        (umask 077; head -c 1024 /dev/urandom >"$dir/munge/munge.key")
    fi
    chown munge:munge "$dir/munge/munge.key"
    chmod 400 "$dir/munge/munge.key"
    runuser -u munge -- munged --socket="$socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
        --seed-file="$dir/munge/munged.seed" </dev/null >>"$dir/daemons.out" 2>&1 ||
        { show_logs; die "munged did not start"; }
    ln -sf munge/munged.pid "$dir/munged.pid"
    munge -S "$socket" -n | unmunge -S "$socket" >/dev/null || { show_logs; die "munge does not answer on $socket"; }

    # -c: no jobs left over from an earlier start. stdout/stderr to a file: a daemon holding the caller's
    # pipe would keep the caller waiting.
    slurmctld -c -f "$conf" </dev/null >>"$dir/daemons.out" 2>&1 || { show_logs; die "slurmctld did not start"; }
    slurmd -f "$conf" </dev/null >>"$dir/daemons.out" 2>&1 || { show_logs; die "slurmd did not start"; }

    local waited=0 state=""
    while ((waited < timeout)); do
        state=$(node_state || true)
        [[ $state == idle* ]] && break
        sleep 1
        waited=$((waited + 1))
    done
    if [[ $state != idle* ]]; then
        show_logs
        stop_daemons quiet
        die "the node did not become idle within ${timeout} s (state: ${state:-no answer}); logs above"
    fi
    say "node $(hostname -s) idle after ${waited} s; state in $dir"
    print_env
}

print_env() { printf 'export SLURM_CONF=%s\n' "$conf"; }

# Stop the daemons whose pid files are in $dir, newest first; SIGKILL after 15 s.
stop_daemons() {
    local name pid waited
    for name in slurmd slurmctld munged; do
        pid=$(pid_of "$name") || continue
        [[ ${1:-} == quiet ]] || say "stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        waited=0
        while kill -0 "$pid" 2>/dev/null && ((waited < 150)); do sleep 0.1; waited=$((waited + 1)); done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    done
    return 0
}

status() {
    local name pid up=0
    for name in munged slurmctld slurmd; do
        if pid=$(pid_of "$name"); then echo "$name running (pid $pid)"; else echo "$name not running"; up=1; fi
    done
    ((up == 0)) && SLURM_CONF=$conf sinfo
    return $up
}

case ${1:-} in
    start) start ;;
    stop) stop_daemons ;;
    status) status ;;
    env) print_env ;;
    *) echo "usage: $0 start|stop|status|env   (state directory: $dir)" >&2; exit 2 ;;
esac
