#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the Slurm executor's tests and for trying
# `metricbench tune --executor slurm` without a real cluster.
#
#   scripts/slurm-local.sh up      install Slurm + munge (Debian packages) when missing, write the
#                                  config, start munged, slurmctld and slurmd, wait for the node
#   scripts/slurm-local.sh down    stop the three daemons
#   scripts/slurm-local.sh status  print whether it is up
#
# Idempotent: `up` on a running cluster only checks it, `down` on a stopped one does nothing.
# No systemd is needed (containers, CI machines): the daemons are started directly and tracked by
# their pid files under $METRICBENCH_SLURM_DIR (default /tmp/metricbench-slurm).
#
# The node offers every CPU of the machine, 90% of its memory and two *fake* GPUs (gres `gpu:fake:2`
# backed by /dev/null and /dev/zero), so `--gres=gpu:1` jobs are scheduled two at a time and get
# CUDA_VISIBLE_DEVICES=0 or 1 exactly as on a GPU node. Slurm counts a GPU without a `File=` as
# absent and marks the node invalid, hence the two device files. No accounting database (slurmdbd)
# is configured: `sacct` does not work here, `squeue` and `scontrol` do, and those are all
# metricbench uses.
set -euo pipefail

DIR="${METRICBENCH_SLURM_DIR:-/tmp/metricbench-slurm}"
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARK="# written by metricbench scripts/slurm-local.sh"
WAIT_S="${METRICBENCH_SLURM_WAIT:-60}"

say() { echo "[slurm-local] $*" >&2; }
die() { say "error: $*"; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts system daemons)"
}

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null || die "Slurm is not installed and apt-get is not available; install ${missing[*]} yourself"
    say "installing ${missing[*]} (apt-get)"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # The packages' post-install scripts try to start the services and fail without systemd;
    # that is harmless here since this script starts them itself.
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null ||
        command -v slurmd >/dev/null || die "apt-get could not install Slurm"
}

write_config() {
    local host cpus mem_mb
    host="$(hostname -s)"
    cpus="$(nproc)"
    mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    mkdir -p "$CONF_DIR" "$DIR/state" "$DIR/spool" "$DIR/log"
    if [ -f "$CONF" ] && ! head -n 1 "$CONF" | grep -qF "$MARK"; then
        die "$CONF exists and was not written by this script; refusing to replace a real cluster's configuration"
    fi
    local tmp="$CONF.tmp.$$"
    cat >"$tmp" <<EOF
$MARK (one-node test cluster; state in $DIR)
ClusterName=metricbench-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# No cgroups inside containers: plain process tracking, no task confinement, no accounting
# database. Memory is still enforced: slurmd samples each step's memory every second and kills a
# step over its --mem (the job ends OUT_OF_MEMORY), as cgroups would on a real cluster.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill
JobAcctGatherFrequency=task=1
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
# Finished jobs stay visible to scontrol for 5 minutes (the coordinator reads their exit code).
MinJobAge=300
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$mem_mb Gres=gpu:fake:2 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO DefMemPerCPU=256
EOF
    mv "$tmp" "$CONF"
    cat >"$CONF_DIR/gres.conf.tmp.$$" <<EOF
$MARK
NodeName=$host Name=gpu Type=fake File=/dev/null
NodeName=$host Name=gpu Type=fake File=/dev/zero
EOF
    mv "$CONF_DIR/gres.conf.tmp.$$" "$CONF_DIR/gres.conf"
}

alive() { # pid file
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

munge_alive() {
    [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1
}

node_state() {
    sinfo -h -N -o '%T' 2>/dev/null | head -n 1
}

logs() {
    for f in "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" /var/log/munge/munged.log; do
        [ -f "$f" ] && { echo "---- last lines of $f"; tail -n 15 "$f"; }
    done
}

up() {
    need_root
    install_packages
    write_config
    if ! munge_alive; then
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge
        chmod 0755 /run/munge
        if [ ! -f /etc/munge/munge.key ]; then
            say "creating the munge key"
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
            chown munge:munge /etc/munge/munge.key
            chmod 0400 /etc/munge/munge.key
        fi
        say "starting munged"
        su -s /bin/sh munge -c /usr/sbin/munged ||
            die "munged did not start"$'\n'"$(logs)"
        for _ in $(seq 1 50); do munge_alive && break; sleep 0.1; done
        munge_alive || die "munged is not answering"$'\n'"$(logs)"
    fi
    if ! alive "$DIR/slurmctld.pid"; then
        say "starting slurmctld"
        slurmctld -f "$CONF" || die "slurmctld did not start"$'\n'"$(logs)"
    fi
    if ! alive "$DIR/slurmd.pid"; then
        say "starting slurmd"
        slurmd -f "$CONF" || die "slurmd did not start"$'\n'"$(logs)"
    fi
    local state=""
    for _ in $(seq 1 $((WAIT_S * 2))); do
        state="$(node_state)"
        case "$state" in
            idle | mixed | allocated | completing) break ;;
            down* | drain* | inval*) scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    case "$state" in
        idle | mixed | allocated | completing) say "up: node $(hostname -s) is $state ($(nproc) CPUs, 2 fake GPUs)" ;;
        *) die "the node did not become idle within ${WAIT_S}s (state: ${state:-no answer from sinfo})"$'\n'"$(logs)" ;;
    esac
}

stop_daemon() { # name pidfile
    alive "$2" || return 0
    local pid
    pid="$(cat "$2")"
    say "stopping $1 (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

down() {
    need_root
    stop_daemon slurmd "$DIR/slurmd.pid"
    stop_daemon slurmctld "$DIR/slurmctld.pid"
    local munge_pid=/run/munge/munged.pid
    if [ -f "$munge_pid" ]; then
        stop_daemon munged "$munge_pid"
    fi
    say "down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status)
        if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
            echo "up: node $(node_state)"
        else
            echo "down"
            exit 1
        fi
        ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
