# A real single-node Slurm (munge, slurmctld, slurmd from Debian) on localhost: a
# 2 x 2 sweep submitted as a job array through slurm/sweep.py, each run on 2 MPI
# ranks via srun --mpi=pmix, every run preempted once at step 3 (preempt_at_step:
# exit 75 -> the array task requeues itself -> resumes from its checkpoint), all
# run files complete, and a second submission has nothing left to do.
# Skipped (exit 77, with the reason) where the daemons cannot start.
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
# the job script asks for one GPU per rank when the runs use device = cuda (no
# daemons needed: --dry-run only writes the script)
for dev in cpu cuda; do
    printf '[sweep]\nname = %s\nout_dir = %s\nranks = 4\n[base]\nmodel = m\ntrain_data = d.h5\ndevice = %s\ntp = 2\n[grid]\nseed = 0,1\n' \
        "$dev" "$WORK/dry" "$dev" > "$WORK/dry_$dev.ini"
    check $PY "$top_srcdir/slurm/sweep.py" submit "$WORK/dry_$dev.ini" --dry-run --ailora "$AILORA"
done
CHECKS=$((CHECKS + 1))
grep -q -- "--gpus-per-task=1" "$WORK/dry/cuda/array.sbatch" && ! grep -q -- "--gpus" "$WORK/dry/cpu/array.sbatch" ||
    fail "gpus-per-task: $(grep -h gpus "$WORK"/dry/*/array.sbatch)"
for tool in slurmctld slurmd munged sbatch; do
    command -v $tool > /dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
$PY -c "import h5py" 2> /dev/null || { echo "SKIP: /usr/bin/python3 lacks h5py"; exit 77; }
SL="$WORK/slurm"
trap 'bash "$top_srcdir/tests/slurm_cluster.sh" stop "$SL"; rm -rf "$WORK"' EXIT
if ! conf=$(bash "$top_srcdir/tests/slurm_cluster.sh" start "$SL" 2> "$WORK/slurm.err"); then
    echo "SKIP: local Slurm did not start: $(cat "$WORK/slurm.err")"
    exit 77
fi
export SLURM_CONF="$conf"
R=$(cd "$top_srcdir/tests/reference" && pwd)
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/svd.h5" --quiet
cat > "$WORK/spec.ini" <<SPEC
[sweep]
name = tiny
out_dir = $WORK/sweeps
ranks = 2
throttle = 2
time = 00:05:00
mpi = pmix
[base]
model = $R/train_llama
svd_cache = $WORK/svd.h5
train_data = $R/train_data.h5
eval_data = $R/train_data.h5
rank = 4
steps = 6
batch_size = 4
log_every = 2
preempt_at_step = 3
[grid]
method = lora,ailora
seed = 0,1
SPEC
check $PY "$top_srcdir/slurm/sweep.py" submit "$WORK/spec.ini" --ailora "$AILORA"
# wait until every run file is complete and the queue is empty (a requeued task can
# be briefly out of squeue). A requeued task starts again once its old job
# credential expires: cred_expire=10 in the test cluster (Slurm's default is 120 s;
# releasing it earlier by hand gets it killed with "Job credential revoked").
done_runs() {
    n=0
    for f in "$WORK"/sweeps/tiny/runs/*_seed-?.h5; do
        [ -f "$f" ] && [ "$("$H5COMPARE" --attr "$f" / steps_done 2> /dev/null)" = 6 ] && n=$((n + 1))
    done
    echo $n
}
for _ in $(seq 360); do
    [ "$(done_runs)" -eq 4 ] && [ "$(squeue -h | wc -l)" -eq 0 ] && break
    sleep 0.5
done
CHECKS=$((CHECKS + 1))
if [ "$(squeue -h | wc -l)" -ne 0 ] || [ "$(done_runs)" -ne 4 ]; then
    fail "the job array did not finish within 3 minutes: $(squeue -h)"
    tail -n 5 "$WORK"/sweeps/tiny/logs/*.out
    grep -vE "MailProg|state file|backup state" "$SL/log/slurmctld.log" | tail -40
fi
for f in "$WORK"/sweeps/tiny/runs/*_seed-?.h5; do
    CHECKS=$((CHECKS + 1))
    [ "$("$H5COMPARE" --attr "$f" / steps_done)" = 6 ] || fail "$f does not hold 6 steps"
done
CHECKS=$((CHECKS + 1))
[ "$(ls "$WORK"/sweeps/tiny/runs/*_seed-?.h5 | wc -l)" -eq 4 ] || fail "expected 4 run files"
CHECKS=$((CHECKS + 1))
grep -q "preempted: checkpointed, requeueing" "$WORK"/sweeps/tiny/logs/*.out || fail "no run was requeued"
check $PY "$top_srcdir/slurm/sweep.py" submit "$WORK/spec.ini" --ailora "$AILORA"
CHECKS=$((CHECKS + 1))
grep -q "nothing to submit" "$WORK/last.out" || fail "a second submission resubmitted finished runs"
finish
