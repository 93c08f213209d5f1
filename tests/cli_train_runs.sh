# Runs are never clobbered or mixed (`ailora train`, at 1 and 2 ranks):
#  - a fresh run onto an existing run file, or onto its checkpoint alone, is one
#    error line, exit 1, both files byte for byte untouched; overwrite=true replaces
#    the run (no trace of the old one); resume=true with overwrite=true is refused
#  - resume=true with a changed lr, seed, alpha and batch_size is refused with one
#    line naming all four keys and both values, nothing touched
#  - resume=true with more steps (constant schedule) continues: bit for bit the run a
#    fresh start with those steps gives, the stored config text unchanged, the resume
#    recorded in resume_steps / resumes; more steps under a cosine schedule refused
#  - resume=true without a checkpoint starts from scratch (equal to a fresh run), and
#    refuses a run file of another config
#  - checkpoint_minutes: a run killed by SIGKILL has a checkpoint from before the
#    kill when checkpoint_minutes is short, none when it is 0 (off)
#  - train_base: out_model is refused unless overwrite=true, which replaces it (a
#    directory holding more than model files is refused), and a resume of a finished
#    run writes a missing out_model
. "${top_srcdir:-.}/tests/lib.sh"
command -v setsid > /dev/null || { echo "SKIP: setsid not installed"; exit 77; }
R="$top_srcdir/tests/reference"
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/svd.h5" --quiet
BASE="model=$R/train_llama svd_cache=$WORK/svd.h5 train_data=$R/train_data.h5 eval_data=$R/train_data.h5"
BASE="$BASE method=pissa rank=4 lr=2e-3 batch_size=4 log_every=2 checkpoint_every=3 eval_batches=1"

# untouched FILE...: the files still have the checksums saved by `sums`
sums() { md5sum "$@" > "$WORK/sums"; }
untouched() {
    CHECKS=$((CHECKS + 1))
    md5sum --quiet -c "$WORK/sums" > /dev/null 2>&1 || fail "a refused run changed $(md5sum -c "$WORK/sums" 2>&1 | grep -v OK)"
}
config_of() { h5dump -a config "$1" | sed 1d; }  # the config attribute (without the file name line)
attr_text() { h5dump -a "$2" "$1" | grep -A2 'DATA {' | tail -n +2; }

for np in 1 2; do
    T="run_np $np $AILORA train $BASE"
    a="$WORK/a_np$np.h5"
    # shellcheck disable=SC2086
    check $T steps=6 out="$a"
    sums "$a" "$a.ckpt.h5"
    cp "$a" "$WORK/six_np$np.h5"
    config_of "$a" > "$WORK/config_a"
    # shellcheck disable=SC2086
    expect_error "out $a already exists: a fresh run never replaces a run" "" $T steps=6 out="$a"
    untouched
    mv "$a" "$WORK/aside.h5"
    # shellcheck disable=SC2086
    expect_error "checkpoint $a.ckpt.h5 already exists" "$a" $T steps=6 out="$a"
    mv "$WORK/aside.h5" "$a"
    untouched
    # shellcheck disable=SC2086
    expect_error "resume = true and overwrite = true contradict" "" $T steps=6 out="$a" resume=true overwrite=true
    untouched

    # resume under another config: refused, every differing key named with both values
    # shellcheck disable=SC2086
    expect_error "resume=true: $a.ckpt.h5 holds a run of another config:" "" \
        $T steps=6 out="$a" resume=true lr=1e-3 seed=3 alpha=2 batch_size=8
    for want in "lr 0.002 -> 0.001" "seed 0 -> 3" "alpha 0 -> 2" "batch_size 4 -> 8"; do
        CHECKS=$((CHECKS + 1))
        grep -qF -- "$want" "$WORK/err.txt" || fail "the refusal does not name \"$want\": $(cat "$WORK/err.txt")"
    done
    untouched

    # more steps: allowed (constant schedule), bit for bit a fresh 10-step run, config kept
    # shellcheck disable=SC2086
    check $T steps=10 out="$a" resume=true
    # shellcheck disable=SC2086
    check $T steps=10 out="$WORK/ten_np$np.h5"
    for d in /train/step /train/loss /train/lr /train/grad_norm /adapters/; do
        check "$H5COMPARE" "$WORK/ten_np$np.h5" "$a" --tol 0 --only $d
    done
    # the extended run keeps its final evaluation of step 6 and adds step 10's
    CHECKS=$((CHECKS + 1))
    [ "$("$H5COMPARE" --value "$a" /eval/step 0) $("$H5COMPARE" --value "$a" /eval/step -1)" = "6 10" ] &&
        [ "$("$H5COMPARE" --value "$a" /eval/loss -1)" = "$("$H5COMPARE" --value "$WORK/ten_np$np.h5" /eval/loss -1)" ] ||
        fail "the extended run's evaluations are not those of steps 6 and 10"
    CHECKS=$((CHECKS + 1))
    config_of "$a" | cmp -s - "$WORK/config_a" || fail "resume rewrote the stored config: $(config_of "$a" | diff - "$WORK/config_a")"
    CHECKS=$((CHECKS + 1))
    [ "$("$H5COMPARE" --attr "$a" / resume_steps)" = 6 ] && attr_text "$a" resumes | grep -qF "step 6: steps 6 -> 10" ||
        fail "resume not recorded: $(attr_text "$a" resumes)"
    # more steps under a cosine schedule: every later lr would change
    # shellcheck disable=SC2086
    check $T steps=4 schedule=cosine out="$WORK/cos_np$np.h5"
    sums "$WORK/cos_np$np.h5" "$WORK/cos_np$np.h5.ckpt.h5"
    # shellcheck disable=SC2086
    expect_error "steps 4 -> 6 (the cosine schedule depends on it)" "" \
        $T steps=6 schedule=cosine out="$WORK/cos_np$np.h5" resume=true
    untouched

    # overwrite=true: the old run is deleted, the new one written
    # shellcheck disable=SC2086
    check $T steps=6 seed=3 out="$a" overwrite=true
    CHECKS=$((CHECKS + 1))
    config_of "$a" | grep -q '^ *"*seed = 3$' && ! h5dump -a resumes "$a" > /dev/null 2>&1 &&
        [ "$("$H5COMPARE" --attr "$a.ckpt.h5" / steps_done)" = 6 ] || fail "overwrite=true did not replace the run"

    # resume=true without a checkpoint: starts from scratch, equal to a fresh run
    n="$WORK/n_np$np.h5"
    # shellcheck disable=SC2086
    check $T steps=6 out="$n" resume=true
    grep -q "starting from scratch" "$WORK/last.out" || fail "resume=true without a checkpoint did not say so"
    # --nan-equal: exact match is off, /eval/exact_match is NaN in both at the same steps
    for d in /train/loss /eval/ /adapters/; do check "$H5COMPARE" "$WORK/six_np$np.h5" "$n" --tol 0 --nan-equal --only $d; done
    # ... and refuses a finished run file of another config
    rm "$n.ckpt.h5"
    sums "$n"
    # shellcheck disable=SC2086
    expect_error "resume=true: $n holds a run of another config: seed 0 -> 5" "" $T steps=6 seed=5 out="$n" resume=true
    untouched
    # ... but restarts one of the same config (a job requeued before its first checkpoint)
    # shellcheck disable=SC2086
    check $T steps=6 out="$n" resume=true
    for d in /train/loss /adapters/; do check "$H5COMPARE" "$WORK/six_np$np.h5" "$n" --tol 0 --only $d; done

    # checkpoint_minutes: SIGKILL once the run file shows 3 steps
    for minutes in 0.0001 0; do
        k="$WORK/k_np${np}_$minutes.h5"
        if [ "$np" -eq 1 ]; then
            # shellcheck disable=SC2086
            setsid "$AILORA" train $BASE steps=100000 log_every=1 checkpoint_every=0 checkpoint_minutes=$minutes \
                out="$k" > "$WORK/k.out" 2>&1 &
        else
            # shellcheck disable=SC2086
            setsid "$MPIEXEC" -np 2 --oversubscribe --bind-to none "$AILORA" train $BASE steps=100000 log_every=1 \
                checkpoint_every=0 checkpoint_minutes=$minutes out="$k" > "$WORK/k.out" 2>&1 &
        fi
        pid=$!
        for _ in $(seq 100); do [ "$(session_of $pid)" = $pid ] && break; sleep 0.01; done  # setsid ran
        for _ in $(seq 600); do
            [ "$("$H5COMPARE" --attr "$k" / steps_done 2> /dev/null || echo 0)" -ge 3 ] && break
            kill -0 $pid 2> /dev/null || break
            sleep 0.05
        done
        kill_session $pid
        CHECKS=$((CHECKS + 1))
        if [ "$minutes" = 0 ]; then
            [ ! -e "$k.ckpt.h5" ] || fail "checkpoint_minutes=0 wrote a checkpoint"
        else
            [ "$("$H5COMPARE" --attr "$k.ckpt.h5" / steps_done 2> /dev/null || echo 0)" -ge 1 ] ||
                fail "checkpoint_minutes=$minutes: no checkpoint before the kill ($(tail -2 "$WORK/k.out"))"
        fi
    done
done

# train_base: out_model is part of the run
FULL="model=$R/train_llama train_data=$R/train_data.h5 rank=4 train_base=true steps=2 batch_size=4 lr=3e-3"
# shellcheck disable=SC2086
check "$AILORA" train $FULL out="$WORK/base.h5" out_model="$WORK/model"
sums "$WORK/model/model.safetensors"
# shellcheck disable=SC2086
expect_error "out_model $WORK/model already exists" "" "$AILORA" train $FULL out="$WORK/base2.h5" out_model="$WORK/model"
untouched
# overwrite=true deletes only what llama_save writes: a directory with more is refused whole
mkdir "$WORK/model/mine"
sums "$WORK/base.h5" "$WORK/base.h5.ckpt.h5" "$WORK/model/model.safetensors" "$WORK/model/config.json"
# shellcheck disable=SC2086
expect_error "holds mine, not only model files" "" "$AILORA" train $FULL seed=1 out="$WORK/base.h5" \
    out_model="$WORK/model" overwrite=true
untouched
rmdir "$WORK/model/mine"
# shellcheck disable=SC2086
check "$AILORA" train $FULL seed=1 out="$WORK/base.h5" out_model="$WORK/model" overwrite=true
CHECKS=$((CHECKS + 1))
! md5sum --quiet -c "$WORK/sums" > /dev/null 2>&1 && [ -f "$WORK/model/config.json" ] ||
    fail "overwrite=true did not replace out_model"
# a kill between the final checkpoint and out_model: resume writes the model
rm -r "$WORK/model"
# shellcheck disable=SC2086
check "$AILORA" train $FULL seed=1 out="$WORK/base.h5" out_model="$WORK/model" resume=true
CHECKS=$((CHECKS + 1))
[ -f "$WORK/model/model.safetensors" ] || fail "resume of a finished run did not write the missing out_model"
finish
