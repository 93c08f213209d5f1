# slurm_cluster.sh start|stop DIR - a private single-node Slurm on localhost for tests:
# munged with its own socket, slurmctld and slurmd from DIR/slurm.conf, state in DIR.
# `start` prints the SLURM_CONF to export; exits 1 if the daemons do not come up.
set -u
action=$1
D=$2
case $action in
start)
    mkdir -p "$D/state" "$D/spool" "$D/log" "$D/munge"
    chmod 700 "$D/munge"
    cp /etc/munge/munge.key "$D/munge/munge.key" 2> /dev/null || dd if=/dev/urandom of="$D/munge/munge.key" bs=1k count=1 2> /dev/null
    chmod 600 "$D/munge/munge.key"
    munged --key-file="$D/munge/munge.key" --socket="$D/munge/munge.socket" --pid-file="$D/munge/munged.pid" \
        --log-file="$D/log/munged.log" --seed-file="$D/munge/seed" --force || exit 1
    cpus=$(getconf _NPROCESSORS_ONLN)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    cat > "$D/slurm.conf" <<CONF
ClusterName=ailoratest
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
SlurmctldPort=16817
SlurmdPort=16818
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
        sinfo -h -o %T 2> /dev/null | grep -qE "idle|mix|alloc" && { echo "$D/slurm.conf"; exit 0; }
        sleep 0.5
    done
    echo "slurm did not come up: $(tail -3 "$D/log/slurmctld.log" "$D/log/slurmd.log" 2>&1 | tr '\n' ' ')" >&2
    exit 1
    ;;
stop)
    for pid in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2> /dev/null
    done
    sleep 1
    for pid in "$D/slurmd.pid" "$D/slurmctld.pid" "$D/munge/munged.pid"; do
        [ -f "$pid" ] && kill -9 "$(cat "$pid")" 2> /dev/null
    done
    exit 0
    ;;
esac
