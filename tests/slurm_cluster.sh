# slurm_cluster.sh start|stop DIR - a private single-node Slurm on localhost for tests:
# munged with its own socket, slurmctld and slurmd from DIR/slurm.conf, state in DIR.
# `start` prints the SLURM_CONF to export; exits 1 if the daemons do not come up.
# Several clusters can run side by side (parallel test runs on one machine): each
# gets its own cluster name, two free TCP ports and its own PMIx and tmp folders,
# and `start` checks that the controller answering is its own. `stop` also ends
# what its jobs left running (the processes whose SLURM_CONF is DIR/slurm.conf).
set -u
action=$1
D=$2
# port_free PORT: no socket uses PORT locally (IPv4 or IPv6, any state)
port_free() {
    ! awk -v p="$(printf ':%04X' "$1")" 'substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2> /dev/null
}
case $action in
start)
    mkdir -p "$D/state" "$D/spool" "$D/log" "$D/munge" "$D/tmp" "$D/pmix"
    chmod 700 "$D/munge"
    cp /etc/munge/munge.key "$D/munge/munge.key" 2> /dev/null || dd if=/dev/urandom of="$D/munge/munge.key" bs=1k count=1 2> /dev/null
    chmod 600 "$D/munge/munge.key"
    munged --key-file="$D/munge/munge.key" --socket="$D/munge/munge.socket" --pid-file="$D/munge/munged.pid" \
        --log-file="$D/log/munged.log" --seed-file="$D/munge/seed" --force || exit 1
    cpus=$(getconf _NPROCESSORS_ONLN)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    port=$((20000 + ($$ * 31 + RANDOM) % 12000))  # below the ephemeral ports (32768-)
    while ! port_free $port || ! port_free $((port + 1)); do port=$((port + 2)); done
    name="ailora$$"
    cat > "$D/mpi.conf" <<CONF
PMIxCliTmpDirBase=$D/pmix
CONF
    cat > "$D/slurm.conf" <<CONF
ClusterName=$name
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
AuthInfo=socket=$D/munge/munge.socket,cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldPort=$port
SlurmdPort=$((port + 1))
TmpFS=$D/tmp
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MaxArraySize=1000
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
    export SLURM_CONF="$D/slurm.conf"
    slurmctld -c -f "$D/slurm.conf" || exit 1
    slurmd -c -f "$D/slurm.conf" || exit 1
    for _ in $(seq 60); do
        if sinfo -h -o %T 2> /dev/null | grep -qE "idle|mix|alloc"; then
            # our controller, not another test's that had the port first
            scontrol show config 2> /dev/null | grep -qE "^ClusterName += $name\$" && { echo "$D/slurm.conf"; exit 0; }
            echo "another Slurm answers on port $port" >&2
            exit 1
        fi
        sleep 0.5
    done
    echo "slurm did not come up: $(tail -n 3 "$D/log/slurmctld.log" "$D/log/slurmd.log" 2>&1 | tr '\n' ' ')" >&2
    exit 1
    ;;
stop)
    export SLURM_CONF="$D/slurm.conf"
    [ -f "$D/slurmctld.pid" ] && timeout 10 scancel --full -s KILL -u "$(id -un)" 2> /dev/null
    for pid in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2> /dev/null
    done
    sleep 1
    for pid in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
        [ -f "$pid" ] && kill -9 "$(cat "$pid")" 2> /dev/null
    done
    # slurmstepd and job processes of this cluster outlive the daemons
    for env in /proc/[0-9]*/environ; do
        if tr '\0' '\n' 2> /dev/null < "$env" | grep -qxF "SLURM_CONF=$D/slurm.conf"; then
            pid=${env#/proc/}
            pid=${pid%/environ}
            [ "$pid" != $$ ] && kill -9 "$pid" 2> /dev/null
        fi
    done
    exit 0
    ;;
esac
