# slurm/sweep.py and its job script.
# Without Slurm (always run, before any skip):
#  - the job script asks for one GPU per rank when the runs use device = cuda, and
#    for USR1 signal_lead seconds before the time limit
#  - arguments survive intact: a sweep folder whose name holds a space, quotes, $
#    and a glob, and a value holding them too, reach srun as the same words (the
#    job script run with a stand-in srun, from another directory, relative paths
#    resolved against the folder sweep.py ran in), each task started with resume=true
#  - a run file that cannot be read (h5py shadowed by a module that raises
#    ImportError; a damaged file) is one error line and a non-zero exit, with
#    nothing submitted, run or rewritten (not "new", which would run it again)
# On a real single-node Slurm (munge, slurmctld, slurmd from Debian,
# tests/slurm_cluster.sh): a 2 x 2 sweep in that odd folder, submitted from
# another directory as a job array, each run on 2 MPI ranks via srun --mpi=pmix.
# Every run is preempted once the way Slurm does it: `scancel -b -s USR1` signals
# the batch script, its trap passes USR1 to srun, srun to every rank (a wrapper
# around ailora records each rank's signal), ailora checkpoints and exits 75, the
# task requeues itself and resumes. All run files complete; a second submission
# has nothing left to do. Skipped (exit 77, with the reason) where the daemons
# cannot start -- and never under CI=true (tests/ci_skips.sh).
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
SWEEP=$(cd "$top_srcdir/slurm" && pwd)/sweep.py
AIL=$(cd "$(dirname "$AILORA")" && pwd)/ailora
R=$(cd "$top_srcdir/tests/reference" && pwd)
for dev in cpu cuda; do
    printf '[sweep]\nname = %s\nout_dir = %s\nranks = 4\n[base]\nmodel = m\ntrain_data = d.h5\ndevice = %s\ntp = 2\n[grid]\nseed = 0,1\n' \
        "$dev" "$WORK/dry" "$dev" > "$WORK/dry_$dev.ini"
    check $PY "$SWEEP" submit "$WORK/dry_$dev.ini" --dry-run --ailora "$AIL"
done
CHECKS=$((CHECKS + 1))
grep -q -- "--gpus-per-task=1" "$WORK/dry/cuda/array.sbatch" && ! grep -q -- "--gpus" "$WORK/dry/cpu/array.sbatch" ||
    fail "gpus-per-task: $(grep -h gpus "$WORK"/dry/*/array.sbatch)"
CHECKS=$((CHECKS + 1))
grep -q -- "--signal=B:USR1@120$" "$WORK/dry/cpu/array.sbatch" || fail "default signal lead is not 120 s"
sed -i 's/^\[sweep\]$/[sweep]\nsignal_lead = 300/' "$WORK/dry_cpu.ini"
check $PY "$SWEEP" submit "$WORK/dry_cpu.ini" --dry-run --ailora "$AIL"
CHECKS=$((CHECKS + 1))
grep -q -- "--signal=B:USR1@300$" "$WORK/dry/cpu/array.sbatch" || fail "signal_lead = 300 not in the job script"
sed -i 's/^signal_lead = 300/signal_lead = 2 min/' "$WORK/dry_cpu.ini"
expect_error "[sweep] signal_lead = '2 min' is not valid" "" $PY "$SWEEP" submit "$WORK/dry_cpu.ini" --dry-run

# ---- arguments: one odd folder and value, the job script under a stand-in srun ----
ODD="$WORK/odd dir 'q' \"dq\" \$HOME *"
VALUE="it's \"x\" \$HOME * ?;b"
mkdir -p "$WORK/here" "$WORK/elsewhere" "$WORK/bin"
ln -s "$R" "$WORK/here/ref"   # relative paths: relative to where sweep.py runs
cat > "$WORK/bin/srun" <<'SH'
#!/bin/bash
# stand-in srun: its working directory and arguments, one per line
{ pwd; printf '%s\n' "$@"; } > "$SRUN_LOG"
SH
chmod +x "$WORK/bin/srun"
cat > "$WORK/odd.ini" <<SPEC
[sweep]
name = odd
out_dir = $ODD
[base]
model = ref/train_llama
task = $VALUE
[grid]
seed = 0,1
SPEC
(cd "$WORK/here" && $PY "$SWEEP" submit "$WORK/odd.ini" --dry-run --ailora "$AIL") > "$WORK/odd.out" 2>&1 ||
    fail "dry run in an odd folder: $(cat "$WORK/odd.out")"
run_job() {  # run_job TASK: the job script of the odd sweep, from another directory
    (cd "$WORK/elsewhere" && env PATH="$WORK/bin:$PATH" SRUN_LOG="$WORK/srun.txt" SLURM_ARRAY_TASK_ID=$1 \
        bash "$ODD/odd/array.sbatch") > "$WORK/job.out" 2>&1
}
OUT1="$ODD/odd/runs/seed-1.h5"
# every task starts with resume=true: it continues a checkpoint or starts without one
printf '%s\n' "$WORK/here" --mpi=pmix "$AIL" train model=ref/train_llama "task=$VALUE" seed=1 "out=$OUT1" \
    resume=true > "$WORK/srun.want"
CHECKS=$((CHECKS + 1))
run_job 1 && cmp -s "$WORK/srun.txt" "$WORK/srun.want" ||
    fail "job script arguments: $(cat "$WORK/job.out"; diff "$WORK/srun.want" "$WORK/srun.txt")"
CHECKS=$((CHECKS + 1))
[ "$(cut -f3 "$ODD/odd/manifest.tsv" | tr '\n' ' ')" = "status new new " ] ||
    fail "manifest: $(cat "$ODD/odd/manifest.tsv")"

# ---- a run file that cannot be read is an error, never "new" ----
cat > "$WORK/bin/sbatch" <<'SH'
#!/bin/sh
touch "$SBATCH_CALLED"; echo "Submitted batch job 1"
SH
chmod +x "$WORK/bin/sbatch"
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/svd.h5" --quiet
printf '[sweep]\nname = one\nout_dir = %s\n[base]\nmodel = %s\nsvd_cache = %s\ntrain_data = %s\nrank = 4\nsteps = 2\nbatch_size = 4\n[grid]\nseed = 0\n' \
    "$WORK/sw" "$R/train_llama" "$WORK/svd.h5" "$R/train_data.h5" > "$WORK/one.ini"
check $PY "$SWEEP" local "$WORK/one.ini" --ailora "$AIL"
RUN="$WORK/sw/one/runs/seed-0.h5"
submit_fake() { env PATH="$WORK/bin:$PATH" SBATCH_CALLED="$WORK/sbatch.called" "$@"; }
check submit_fake $PY "$SWEEP" submit "$WORK/one.ini" --ailora "$AIL"
CHECKS=$((CHECKS + 1))
grep -q "nothing to submit" "$WORK/last.out" && [ ! -e "$WORK/sbatch.called" ] || fail "a finished run was resubmitted"
mkdir -p "$WORK/noh5py/h5py"
echo 'raise ImportError("h5py shadowed for the test")' > "$WORK/noh5py/h5py/__init__.py"
cp "$RUN" "$WORK/run.copy"
cp "$WORK/sw/one/manifest.tsv" "$WORK/manifest.copy"
expect_error "cannot read run file $RUN: h5py does not import (h5py shadowed for the test)" "" \
    submit_fake env PYTHONPATH="$WORK/noh5py" $PY "$SWEEP" submit "$WORK/one.ini" --ailora "$AIL"
expect_error "cannot read run file $RUN" "" submit_fake env PYTHONPATH="$WORK/noh5py" $PY "$SWEEP" local "$WORK/one.ini" --ailora "$AIL"
head -c 600 "$WORK/run.copy" > "$RUN"   # damaged: the superblock, then nothing
expect_error "cannot read run file $RUN: OSError" "" submit_fake $PY "$SWEEP" submit "$WORK/one.ini" --ailora "$AIL"
expect_error "cannot read run file $RUN" "" $PY "$SWEEP" expand "$WORK/one.ini"
expect_error "cannot read run file $RUN" "" $PY "$SWEEP" local "$WORK/one.ini" --ailora "$AIL"
CHECKS=$((CHECKS + 1))
[ ! -e "$WORK/sbatch.called" ] || fail "sbatch was called for an unreadable run file"
CHECKS=$((CHECKS + 1))
cmp -s "$WORK/sw/one/manifest.tsv" "$WORK/manifest.copy" && [ ! -e "$WORK/sw/one/array.sbatch" ] ||
    fail "the manifest or job script was rewritten for an unreadable run file"
CHECKS=$((CHECKS + 1))
[ "$(head -c 600 "$WORK/run.copy" | cmp - "$RUN" && wc -c < "$RUN")" = 600 ] || fail "the damaged run file was touched"

# ---- a real Slurm ----
for tool in slurmctld slurmd munged sbatch scancel; do
    command -v $tool > /dev/null || skip "$tool not installed"
done
$PY -c "import h5py" 2> /dev/null || skip "/usr/bin/python3 lacks h5py"
SL="$WORK/slurm"
trap 'bash "$top_srcdir/tests/slurm_cluster.sh" stop "$SL"; rm -rf "$WORK"' EXIT
conf=$(bash "$top_srcdir/tests/slurm_cluster.sh" start "$SL" 2> "$WORK/slurm.err") ||
    skip "local Slurm did not start: $(cat "$WORK/slurm.err")"
export SLURM_CONF="$conf"
# each rank: a wrapper around ailora that records the USR1 it gets and passes it
# on. On a task's first attempt it holds ailora (SIGSTOP) once the run file exists,
# until the signal comes, so that the signal surely finds the run training however
# fast the machine is; a resumed attempt runs straight through.
RUNDIR="$WORK/run dir"
# (its file name has no space: Slurm's proctrack/linuxproc misreads /proc/PID/stat
# when a program's name holds one, and signals then never reach the batch script)
WRAP="$RUNDIR/bin dir/ailora-rank"
mkdir -p "$RUNDIR/bin dir"
cat > "$WRAP" <<'SH'
#!/bin/bash
me="task $SLURM_ARRAY_TASK_ID rank $SLURM_PROCID"
out=""
for arg in "$@"; do
    case $arg in out=*) out=${arg#out=} ;; esac
done
first=no
[ -f "$out.ckpt.h5" ] || first=yes  # the first start: no checkpoint yet
"$REAL_AILORA" "$@" &
child=$!
trap 'echo "$me got USR1" >> "$RANK_LOG"; kill -USR1 $child; kill -CONT $child' USR1
if [ $first = yes ]; then
    while kill -0 $child 2> /dev/null && [ ! -f "$out" ]; do sleep 0.05; done
    kill -STOP $child && echo "$me holding" >> "$RANK_LOG"
fi
wait $child; rc=$?
while kill -0 $child 2> /dev/null; do wait $child; rc=$?; done
exit $rc
SH
chmod +x "$WRAP"
export REAL_AILORA="$AIL" RANK_LOG="$WORK/ranks.log"
cat > "$WORK/spec.ini" <<SPEC
[sweep]
name = tiny
out_dir = $RUNDIR
ranks = 2
throttle = 4
time = 00:05:00
mpi = pmix
[base]
model = ref/train_llama
svd_cache = ../svd.h5
train_data = ref/train_data.h5
eval_data = ref/train_data.h5
task = $VALUE
rank = 4
steps = 30
batch_size = 4
log_every = 2
[grid]
method = lora,ailora
seed = 0,1
SPEC
# written from here/, submitted from elsewhere/
(cd "$WORK/here" && $PY "$SWEEP" submit "$WORK/spec.ini" --dry-run --ailora "$WRAP") > "$WORK/submit.out" 2>&1 ||
    fail "dry run: $(cat "$WORK/submit.out")"
job=$(cd "$WORK/elsewhere" && eval "$(tail -n 1 "$WORK/submit.out")" | awk '/Submitted batch job/ {print $4}')
CHECKS=$((CHECKS + 1))
[ -n "$job" ] || fail "sbatch did not submit: $(tail -n 1 "$WORK/submit.out")"
TINY="$RUNDIR/tiny"
done_runs() {
    n=0
    for f in "$TINY"/runs/*_seed-?.h5; do
        [ -f "$f" ] && [ "$("$H5COMPARE" --attr "$f" / steps_done 2> /dev/null)" = 30 ] && n=$((n + 1))
    done
    echo $n
}
# signal each array task once, the way Slurm's preemption does, when both its
# ranks are held. `scancel -b` signals the batch shell only (without -b Slurm
# signals the steps and skips the script's trap; --full signals both). Slurm 22.05
# refuses any signal to a task of a throttled array while some of its tasks have
# not started ("Job can not be altered now"): throttle = 4 starts all four at once.
# A requeued task starts again once its old job credential expires: cred_expire=10
# in the test cluster.
touch "$RANK_LOG"
signaled=""
for _ in $(seq 480); do
    [ "$(done_runs)" -eq 4 ] && [ "$(squeue -h | wc -l)" -eq 0 ] && break
    for i in 0 1 2 3; do
        case " $signaled " in *" $i "*) continue ;; esac
        if [ "$(grep -c "^task $i rank [01] holding" "$RANK_LOG")" -eq 2 ]; then
            timeout 20 scancel -b -s USR1 "${job}_$i" && signaled="$signaled $i"
        fi
    done
    sleep 0.5
done
CHECKS=$((CHECKS + 1))
if [ "$(squeue -h | wc -l)" -ne 0 ] || [ "$(done_runs)" -ne 4 ]; then
    fail "the job array did not finish within 4 minutes: $(squeue -h)"
    tail -n 30 "$TINY"/logs/*.out
    grep -vE "MailProg|state file|backup state" "$SL/log/slurmctld.log" | tail -40
fi
for f in "$TINY"/runs/*_seed-?.h5; do
    CHECKS=$((CHECKS + 1))
    [ "$("$H5COMPARE" --attr "$f" / steps_done)" = 30 ] || fail "$f does not hold 30 steps"
done
CHECKS=$((CHECKS + 1))
[ "$(ls "$TINY"/runs/*_seed-?.h5 | wc -l)" -eq 4 ] || fail "expected 4 run files"
for i in 0 1 2 3; do
    CHECKS=$((CHECKS + 1))
    grep -q "preempted: checkpointed, requeueing" "$TINY/logs/${job}_$i.out" ||
        fail "array task $i was not preempted and requeued (signaled:$signaled)"
    for rank in 0 1; do
        CHECKS=$((CHECKS + 1))
        grep -q "task $i rank $rank got USR1" "$WORK/ranks.log" || fail "USR1 did not reach rank $rank of task $i"
    done
done
# the odd value reached ailora as one argument
check $PY - "$TINY/runs/method-lora_seed-0.h5" "$VALUE" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    task = f.attrs["task"]
task = task.decode() if isinstance(task, bytes) else str(task)
assert task == sys.argv[2], (task, sys.argv[2])
PY
(cd "$WORK/here" && $PY "$SWEEP" submit "$WORK/spec.ini" --ailora "$WRAP") > "$WORK/again.out" 2>&1
CHECKS=$((CHECKS + 1))
grep -q "nothing to submit" "$WORK/again.out" || fail "a second submission resubmitted finished runs: $(cat "$WORK/again.out")"
finish
