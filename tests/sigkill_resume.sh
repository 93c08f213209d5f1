# A run killed by SIGKILL (a node loss: no signal handler runs) at random moments,
# then resumed with resume=true until done, at 1 and 2 ranks:
#  - every kill hits every process of the run at once (its own session), some at a
#    seeded random delay, some while a checkpoint is being written and some while the
#    run file is (AILORA_TEST_COMMIT_PAUSE_MS widens those windows; the kill then
#    falls between the checkpoint's commit and the run file's, or before either)
#  - after every kill, the run file and checkpoint present are whole HDF5 files
#    (h5dump reads every object) holding the same config
#  - the resumed run equals the uninterrupted one bit for bit: /train (all but
#    tokens_per_s, a timing), /eval, /adapters, /init, /spectra at tolerance 0
#  - a run file left behind by a kill between the final two commits (an older copy)
#    and a deleted run file are rewritten from the finished checkpoint by resume=true
. "${top_srcdir:-.}/tests/lib.sh"
command -v h5dump > /dev/null || { echo "SKIP: h5dump not installed"; exit 77; }
command -v setsid > /dev/null || { echo "SKIP: setsid not installed"; exit 77; }
R="$top_srcdir/tests/reference"
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/svd.h5" --quiet
BASE="model=$R/train_llama svd_cache=$WORK/svd.h5 train_data=$R/train_data.h5 eval_data=$R/train_data.h5"
BASE="$BASE method=pissa rank=4 lr=2e-3 batch_size=4 steps=16 schedule=cosine warmup_steps=2 log_every=1"
BASE="$BASE checkpoint_every=2 eval_every=4 eval_batches=1"
RANDOM=2026  # the kill schedule is seeded: the same moments every run (up to machine speed)
KILLS=6

# launch NP OUT: `ailora train ... resume=true` in a session of its own; sets PID
launch() {
    local np=$1 out=$2
    if [ "$np" -eq 1 ]; then
        # shellcheck disable=SC2086
        AILORA_TEST_COMMIT_PAUSE_MS=40 setsid "$AILORA" train $BASE out="$out" resume=true > "$WORK/run.out" 2>&1 &
    else
        # shellcheck disable=SC2086
        AILORA_TEST_COMMIT_PAUSE_MS=40 setsid "$MPIEXEC" -np "$np" --oversubscribe --bind-to none \
            -x AILORA_TEST_COMMIT_PAUSE_MS "$AILORA" train $BASE out="$out" resume=true > "$WORK/run.out" 2>&1 &
    fi
    PID=$!
}

# wait_for FILE MAXSEC: until FILE exists or the run has ended
wait_for() {
    local n=$(($2 * 100))
    for _ in $(seq "$n"); do
        [ -e "$1" ] && return 0
        kill -0 "$PID" 2> /dev/null || return 1
        sleep 0.01
    done
    return 1
}

# readable FILE: a whole HDF5 file (h5dump reads every object and attribute)
readable() {
    CHECKS=$((CHECKS + 1))
    h5dump "$1" > /dev/null 2>&1 || fail "$1 is not readable after a kill"
}

for np in 1 2; do
    ref="$WORK/ref_np$np.h5" out="$WORK/kill_np$np.h5"
    # shellcheck disable=SC2086
    check run_np "$np" "$AILORA" train $BASE out="$ref" resume=true
    in_ckpt=0 in_run=0 other=0 kills=0
    for i in $(seq $KILLS); do
        # a kill leaves .partial files; the runs waiting for a fresh one start without
        # them, the others start beside them
        [ $((i % 3)) -eq 0 ] || rm -f "$out.partial" "$out.ckpt.h5.partial"
        launch "$np" "$out"
        for _ in $(seq 100); do [ "$(session_of "$PID")" = "$PID" ] && break; sleep 0.01; done  # setsid ran
        [ "$(session_of "$PID")" = "$PID" ] || fail "setsid did not start a session of its own"
        case $((i % 3)) in
        0) sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + 1.0 * r / 32768 }')" ;;
        1) wait_for "$out.ckpt.h5.partial" 20 && sleep "0.0$((RANDOM % 4))" ;;  # a checkpoint being written
        2) wait_for "$out.partial" 20 ;;  # the run file being written: its checkpoint committed just before
        esac
        if ! kill -0 "$PID" 2> /dev/null; then  # finished before the kill
            wait "$PID" 2> /dev/null
            break
        fi
        if [ -e "$out.ckpt.h5.partial" ]; then in_ckpt=$((in_ckpt + 1))
        elif [ -e "$out.partial" ]; then in_run=$((in_run + 1))
        else other=$((other + 1)); fi
        kill_session "$PID"
        kills=$((kills + 1))
        for f in "$out" "$out.ckpt.h5"; do [ -e "$f" ] && readable "$f"; done
        if [ -e "$out" ] && [ -e "$out.ckpt.h5" ]; then
            CHECKS=$((CHECKS + 1))
            [ "$(h5dump -a config "$out")" = "$(h5dump -a config "$out.ckpt.h5" | sed "s|$out.ckpt.h5|$out|")" ] ||
                fail "after kill $i the run file and the checkpoint hold different configs"
        fi
        [ -e "$out" ] && [ ! -e "$WORK/old_np$np.h5" ] && cp "$out" "$WORK/old_np$np.h5"
        echo "np $np kill $i: run file at step $("$H5COMPARE" --attr "$out" / steps_done 2> /dev/null || echo -),"\
             "checkpoint at step $("$H5COMPARE" --attr "$out.ckpt.h5" / steps_done 2> /dev/null || echo -)"
    done
    echo "np $np: $kills kills: $in_ckpt while a checkpoint was written, $in_run while the run file was, $other elsewhere"
    CHECKS=$((CHECKS + 1))
    [ "$kills" -ge 2 ] && [ $((in_ckpt + in_run)) -ge 1 ] || fail "np $np: the kills did not land as planned"
    # shellcheck disable=SC2086
    check run_np "$np" "$AILORA" train $BASE out="$out" resume=true
    same() {  # the run in $out equals the uninterrupted one
        for d in /train/step /train/loss /train/lr /train/grad_norm /eval/ /adapters/ /init/ /spectra/; do
            # exact match is off here: /eval/exact_match is NaN in both, at the same steps
            check "$H5COMPARE" "$ref" "$out" --tol 0 --nan-equal --only $d
        done
        CHECKS=$((CHECKS + 1))
        [ "$("$H5COMPARE" --attr "$out" / steps_done)" = 16 ] || fail "$out does not hold 16 steps"
    }
    same
    # a kill between the final commits leaves an older run file: resume rewrites it
    if [ -e "$WORK/old_np$np.h5" ]; then
        cp "$WORK/old_np$np.h5" "$out"
        # shellcheck disable=SC2086
        check run_np "$np" "$AILORA" train $BASE out="$out" resume=true
        grep -q "nothing to do" "$WORK/last.out" && grep -q "rewrote" "$WORK/last.out" || fail "older run file not rewritten"
        same
    fi
    rm "$out"
    # shellcheck disable=SC2086
    check run_np "$np" "$AILORA" train $BASE out="$out" resume=true
    same
done
finish
