#!/usr/bin/env bash
# A private SLURM cluster on this machine, for the tests and for trying the job scripts: one node, or two
# nodes in network namespaces to try multi-node jobs on a laptop.
#
#   bash tests/slurm/local-cluster.sh start [--nodes 2]   # install slurm-wlm/munge if missing, start, wait for idle
#   eval "$(bash tests/slurm/local-cluster.sh env)"       # point sbatch, squeue, ... at it
#   bash tests/slurm/local-cluster.sh exec CMD ...        # or run one client command (sbatch, srun, ...) there
#   bash tests/slurm/local-cluster.sh status
#   bash tests/slurm/local-cluster.sh stop                # stops exactly what 'start' started
#
# Everything (config, munge socket and key, state, spool, logs, pid files) lives in one directory,
# SLURM_LOCAL_DIR (default /tmp/hpc-slurm-<hash of this checkout>), and the daemons listen on ports derived
# from it, so it never touches a system SLURM or another checkout's cluster. Needs root (slurmd runs jobs
# as any user; munged runs as the munge user). No systemd needed.
#
# One node (the default): slurmctld and slurmd on this host, reached at 127.0.0.1.
# Two nodes (--nodes 2): slurmctld in a network namespace "ctl" holding a bridge, and a slurmd in each of the
# namespaces "n1" and "n2" (with its own UTS namespace: hostname n1, n2), joined to the bridge by veth pairs
# made inside the namespaces, on a private /24 that exists only there: no address, route or NAT in the host's
# namespace, so jobs reach each other and the controller and nothing else. As on a real cluster the node
# names resolve on the nodes (MPICH's Hydra looks them up): each daemon has a mount namespace of its own in
# which $dir/hosts (ctl, n1, n2 and their addresses) is bind-mounted over /etc/hosts; the host's /etc/hosts
# is never touched. Apart from that file the nodes see the host's mounts (propagation from the host), so
# the repository, the outputs and $dir are their shared file system; munged stays on the host (its socket
# is a path). Each node has a node-local temporary directory $dir/tmp/NODE
# (SLURM's TmpFS; jobs get it as TMPDIR), which PMIx needs: two step daemons on one /tmp collide.
# Client commands must run where the controller is reachable: `env` puts wrappers first on PATH that enter
# the "ctl" namespace unless they already run inside the cluster (a job's `scontrol requeue`, `srun`).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${SLURM_LOCAL_DIR:-/tmp/hpc-slurm-$(printf '%s' "$repo" | cksum | cut -d' ' -f1)}
conf=$dir/slurm.conf
socket=$dir/munge/munge.socket
timeout=${SLURM_LOCAL_TIMEOUT:-60}
key=$(printf '%s' "$dir" | cksum | cut -d' ' -f1)
netns_prefix=hpc$((key % 100000))-          # this cluster's namespaces: hpcNNNNN-ctl, -n1, -n2
subnet=10.251.0                              # exists only inside those namespaces
clients=(sbatch srun salloc squeue scontrol scancel sinfo sacct sattach sbcast)
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

nodes_started() { cat "$dir/nodes" 2>/dev/null || echo 0; }     # node count of the cluster in $dir
ns() { printf '%s%s' "$netns_prefix" "$1"; }                     # namespace of node (or ctl) $1
node_names() { if (($1 == 1)); then hostname -s; else seq -f 'n%g' 1 "$1"; fi; }

write_config() {
    local nodes=$1 host cpus memory port ctl_host ctl_addr node addr i=0
    host=$(hostname -s)
    cpus=$(nproc --all)
    memory=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 / nodes))  # MiB: 80 % in all
    port=$((20000 + key % 10000 * 2))
    if ((nodes == 1)); then
        ctl_host=$host ctl_addr=127.0.0.1
    else        # the nodes share the machine's cores; each offers at least 4, so 3-4 ranks fit on one
        ctl_host=ctl ctl_addr=$subnet.1 cpus=$((cpus > 4 ? cpus : 4))
    fi
    cat >"$conf" <<EOF
# Written by tests/slurm/local-cluster.sh: $nodes node(s), everything under $dir
ClusterName=local
SlurmctldHost=$ctl_host($ctl_addr)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.%n.log
TmpFS=$dir/tmp/%n
TaskProlog=$dir/task-prolog.sh
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
SlurmdParameters=config_overrides
EOF
    for node in $(node_names "$nodes"); do
        i=$((i + 1))
        if ((nodes == 1)); then addr=127.0.0.1; else addr=$subnet.$((10 + i)); fi
        echo "NodeName=$node NodeAddr=$addr CPUs=$cpus RealMemory=$memory State=UNKNOWN" >>"$conf"
        mkdir -p "$dir/spool/$node" "$dir/tmp/$node"
    done
    echo "PartitionName=local Nodes=$(node_names "$nodes" | paste -sd,) Default=YES MaxTime=INFINITE State=UP" >>"$conf"
    # Every task's TMPDIR is its node's own directory, as on a cluster with node-local disks.
    printf '#!/bin/sh\necho "export TMPDIR=%s/tmp/$SLURMD_NODENAME"\n' "$dir" >"$dir/task-prolog.sh"
    chmod 755 "$dir/task-prolog.sh"
}

# The network of a two-node cluster: a bridge in "ctl" and one veth pair per node, both ends created inside
# the namespaces (never in the host's). Each name goes to $dir/netns before it is made, so that `stop`
# removes it even when this function fails half-way.
make_network() {
    local nodes=$1 name i=0
    command -v ip >/dev/null && command -v nsenter >/dev/null && command -v unshare >/dev/null ||
        die "--nodes $nodes needs ip (iproute2), nsenter and unshare (util-linux)"
    for name in ctl $(node_names "$nodes"); do
        ns "$name" >>"$dir/netns" && echo >>"$dir/netns"
        ip netns add "$(ns "$name")" 2>"$dir/netns.err" ||
            die "cannot create network namespace $(ns "$name"): $(head -n1 "$dir/netns.err")" \
                "(--nodes 2 needs root with CAP_SYS_ADMIN; in a container run it --privileged)"
        ip -n "$(ns "$name")" link set lo up
    done
    unshare --uts --mount true 2>"$dir/netns.err" ||
        die "cannot create UTS and mount namespaces (each node's hostname and /etc/hosts):" \
            "$(head -n1 "$dir/netns.err")"
    ip -n "$(ns ctl)" link add br0 type bridge
    ip -n "$(ns ctl)" addr add "$subnet.1/24" dev br0
    ip -n "$(ns ctl)" link set br0 up
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n%s.1 ctl\n' "$subnet" >"$dir/hosts"
    for name in $(node_names "$nodes"); do
        i=$((i + 1))
        ip -n "$(ns ctl)" link add "veth-$name" type veth peer name eth0 netns "$(ns "$name")" 2>"$dir/netns.err" ||
            die "cannot create a veth pair for node $name: $(head -n1 "$dir/netns.err") (needs the veth module)"
        ip -n "$(ns ctl)" link set "veth-$name" master br0 up
        ip -n "$(ns "$name")" addr add "$subnet.$((10 + i))/24" dev eth0
        echo "$subnet.$((10 + i)) $name" >>"$dir/hosts"
        ip -n "$(ns "$name")" link set eth0 up
    done
}

# Client wrappers in $dir/bin: enter the "ctl" namespace, unless already inside this cluster (in a job).
write_clients() {
    local name real
    mkdir -p "$dir/bin"
    for name in "${clients[@]}"; do
        real=$(command -v "$name") || continue
        cat >"$dir/bin/$name" <<EOF
#!/bin/sh
# $name of the two-node cluster in $dir (written by tests/slurm/local-cluster.sh)
case "\$(ip netns identify \$\$ 2>/dev/null)" in
    $netns_prefix*) exec env SLURM_CONF=$conf $real "\$@" ;;
esac
exec nsenter --net=/run/netns/$(ns ctl) env SLURM_CONF=$conf $real "\$@"
EOF
        chmod 755 "$dir/bin/$name"
    done
}

# in_node NAME COMMAND...: run COMMAND as node NAME (its network namespace, hostname and /etc/hosts); "" =
# this host. nsenter, not `ip netns exec`: that remounts /sys, which hides the cgroup file system slurmd
# looks for. --propagation slave: mounts made on the host later still reach the node, none go back.
in_node() {
    local name=$1
    shift
    if [[ -z $name ]]; then
        "$@"
    else
        nsenter --net="/run/netns/$(ns "$name")" unshare --uts --mount --propagation slave \
            sh -c 'hostname "$0" && mount --bind "$1" /etc/hosts && shift && exec "$@"' "$name" "$dir/hosts" "$@"
    fi
}

# pid of a daemon if its pid file names a live process
pid_of() {
    local file=$dir/$1.pid pid
    [[ -f $file ]] || return 1
    pid=$(<"$file")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}

slurmd_names() { (cd "$dir" 2>/dev/null && ls slurmd.*.pid 2>/dev/null | sed 's/\.pid$//'); }
# client COMMAND...: run COMMAND where the controller answers (two nodes: in the "ctl" namespace)
client() {
    if [[ -x $dir/bin/sinfo ]]; then
        nsenter --net="/run/netns/$(ns ctl)" env SLURM_CONF="$conf" PATH="$dir/bin:$PATH" "$@"
    else
        SLURM_CONF=$conf "$@"
    fi
}
idle_nodes() { client sinfo -h -N -t idle,mixed,allocated -o '%N' 2>/dev/null | sort -u | wc -l; }

show_logs() {
    local log
    for log in "$dir"/daemons.out "$dir"/munge/munged.log "$dir"/slurmctld.log "$dir"/slurmd*.log; do
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
    local nodes=1
    while (($#)); do
        case $1 in
            --nodes) nodes=${2:-}; shift; shift || true ;;
            --nodes=*) nodes=${1#--nodes=}; shift ;;
            *) die "start: unknown option '$1' (use: start [--nodes 1|2])" ;;
        esac
    done
    [[ $nodes == 1 || $nodes == 2 ]] || die "start: --nodes '$nodes': use 1 or 2"
    [[ $(id -u) == 0 ]] || die "needs root (slurmd starts jobs as their users); run it with sudo"
    install_packages
    if (($(nodes_started) == nodes)) && pid_of slurmctld >/dev/null && (($(idle_nodes) == nodes)); then
        say "already running in $dir"
        print_env
        return
    fi
    stop_all quiet
    close_inherited_files
    trap 'stop_all quiet' EXIT          # a start that fails half-way leaves nothing running
    mkdir -p "$dir/state" "$dir/munge"
    chmod 755 "$dir"
    echo "$nodes" >"$dir/nodes"
    write_config "$nodes"

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

    local ctl="" node
    if ((nodes > 1)); then
        make_network "$nodes"
        write_clients
        ctl=ctl
    fi
    # -c: no jobs left over from an earlier start. stdout/stderr to a file: a daemon holding the caller's
    # pipe would keep the caller waiting.
    in_node "$ctl" slurmctld -c -f "$conf" </dev/null >>"$dir/daemons.out" 2>&1 ||
        { show_logs; die "slurmctld did not start"; }
    for node in $(node_names "$nodes"); do
        ((nodes == 1)) && node=""
        in_node "$node" slurmd -f "$conf" </dev/null >>"$dir/daemons.out" 2>&1 ||
            { show_logs; die "slurmd $node did not start"; }
    done

    local waited=0 idle=0
    while ((waited < timeout * 10)); do
        idle=$(idle_nodes || true)
        ((idle == nodes)) && break
        sleep 0.1
        waited=$((waited + 1))
    done
    if ((idle != nodes)); then
        show_logs
        die "$idle of $nodes node(s) idle after $timeout s; logs above"
    fi
    trap - EXIT
    say "$nodes node(s) idle after $((waited / 10)).$((waited % 10)) s ($(node_names "$nodes" | paste -sd' ')); state in $dir"
    print_env
}

print_env() {
    printf 'export SLURM_CONF=%s\n' "$conf"
    if [[ -x $dir/bin/sinfo ]]; then printf 'export PATH=%s:$PATH\n' "$dir/bin"; fi
}

# Stop the daemons whose pid files are in $dir, newest first; SIGKILL after 15 s.
stop_daemons() {
    local name pid waited
    for name in $(slurmd_names) slurmd slurmctld munged; do    # slurmd: a pid file of older versions
        pid=$(pid_of "$name") || continue
        [[ ${1:-} == quiet ]] || say "stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        waited=0
        while kill -0 "$pid" 2>/dev/null && ((waited < 150)); do sleep 0.1; waited=$((waited + 1)); done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    done
    return 0
}

# Remove the namespaces listed in $dir/netns (their links and the bridge go with them), after killing what
# still runs inside them: a job's processes left behind by a crashed slurmd or test run.
remove_network() {
    local name pids
    [[ -f $dir/netns ]] || return 0
    for name in $(sort -u "$dir/netns"); do
        [[ -e /run/netns/$name ]] || continue
        pids=$(ip netns pids "$name" 2>/dev/null | tr '\n' ' ')
        if [[ -n ${pids// /} ]]; then
            [[ ${1:-} == quiet ]] || say "killing what is left in $name: $pids"
            # shellcheck disable=SC2086
            kill -9 $pids 2>/dev/null || true
        fi
        ip netns del "$name" 2>/dev/null || say "warning: could not remove network namespace $name"
    done
    rm -f "$dir/netns"
}

stop_all() {
    stop_daemons "${1:-}"
    remove_network "${1:-}"
    rm -rf "$dir/bin" "$dir/nodes" "$dir/hosts"
}

status() {
    local name pid up=0 nodes
    nodes=$(nodes_started)
    echo "$nodes node(s) started in $dir"
    ((nodes > 0)) || up=1
    for name in munged slurmctld $(slurmd_names); do
        if pid=$(pid_of "$name"); then echo "$name running (pid $pid)"; else echo "$name not running"; up=1; fi
    done
    [[ -f $dir/netns ]] && echo "network namespaces: $(sort -u "$dir/netns" | paste -sd' ')"
    ((up == 0)) && client sinfo -N
    return $up
}

run_client() {
    (($#)) || die "exec: name a command, e.g. exec sinfo"
    [[ -f $dir/nodes ]] || die "no cluster started in $dir: run '$0 start' first"
    client "$@"
}

case ${1:-} in
    start) shift; start "$@" ;;
    stop) stop_all ;;
    status) status ;;
    env) print_env ;;
    exec) shift; run_client "$@" ;;
    *) echo "usage: $0 start [--nodes 2] | stop | status | env | exec CMD...   (state: $dir)" >&2; exit 2 ;;
esac
