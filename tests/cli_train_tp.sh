# Tensor parallelism in `ailora train` (Megatron layout, see include/ailora/llama.h):
#  - tp = 2 and tp = 2 x dp = 2 (4 ranks) reproduce the single-rank loss curve within
#    1e-5 of its scale over 20 steps, for LoRA and AILoRA inits, with adapters on all
#    seven modules (column- and row-parallel), on LLaMA and on Qwen2 (q/k/v biases,
#    tied embeddings), eval loss and greedy exact match included
#  - checkpoints hold whole modules: a run preempted on tp=2 x dp=1 resumes on
#    tp=1 x dp=2 and on tp=2 x dp=2 and ends on the uninterrupted curve within 1e-5
#  - layouts that do not divide the model, and full-parameter training under tp, are
#    one-line errors
# Tolerance: the layouts differ only in the order of float32 sums (all-reduces of
# partial products), ~1e-7 relative per operation; 1e-5 on the loss leaves two
# orders of magnitude. Adapters are compared at 1e-3: Adam divides by sqrt(v), so
# entries whose gradient is near zero (B of plain LoRA starts at 0) amplify
# rounding differences, as between any two summation orders.
. "${top_srcdir:-.}/tests/lib.sh"
R="$top_srcdir/tests/reference"
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
for model in train_llama train_qwen2; do
    check "$AILORA" svd --model "$R/$model" --out "$WORK/svd_$model.h5" --targets $ALL --quiet
    BASE="model=$R/$model svd_cache=$WORK/svd_$model.h5 train_data=$R/train_data.h5 eval_data=$R/train_data.h5"
    BASE="$BASE targets=$ALL rank=4 lr=2e-3 log_every=5 steps=20 batch_size=8 eval_every=10 max_new_tokens=5"
    for method in lora ailora; do
        out="$WORK/${model}_$method"
        # shellcheck disable=SC2086
        check "$AILORA" train $BASE method=$method out="${out}_tp1.h5"
        # shellcheck disable=SC2086
        check run_np 2 "$AILORA" train $BASE method=$method tp=2 out="${out}_tp2.h5"
        # shellcheck disable=SC2086
        check run_np 4 "$AILORA" train $BASE method=$method tp=2 out="${out}_tp2dp2.h5"
        for other in tp2 tp2dp2; do
            for d in /train/loss /train/grad_norm /eval/loss /eval/exact_match; do
                check "$H5COMPARE" "${out}_tp1.h5" "${out}_$other.h5" --only $d --tol 1e-5
            done
            check "$H5COMPARE" "${out}_tp1.h5" "${out}_$other.h5" --only /adapters/ --tol 1e-3
        done
    done
done

# resume across layouts: whole-module checkpoints
BASE="model=$R/train_llama svd_cache=$WORK/svd_train_llama.h5 train_data=$R/train_data.h5 targets=$ALL"
BASE="$BASE method=ailora rank=4 lr=2e-3 log_every=5 steps=12 batch_size=8 schedule=linear warmup_steps=3"
# shellcheck disable=SC2086
check "$AILORA" train $BASE out="$WORK/whole.h5"
for layout in "1 tp=1" "2 tp=1" "4 tp=2"; do
    set -- $layout
    part="$WORK/part_$1_$2.h5"
    rc=0
    # shellcheck disable=SC2086
    run_np 2 "$AILORA" train $BASE tp=2 out="$part" preempt_at_step=5 > "$WORK/pre.out" 2>&1 || rc=$?
    CHECKS=$((CHECKS + 1))
    [ "$rc" -eq 75 ] || fail "preempted tp=2 run exited $rc, expected 75"
    # shellcheck disable=SC2086
    check run_np "$1" "$AILORA" train $BASE "$2" out="$part" resume=true
    grep -q "continues equal up to float rounding" "$WORK/last.out" || [ "$1 $2" = "2 tp=2" ] ||
        fail "resume on $1 ranks, $2 did not say the layout changed"
    check "$H5COMPARE" "$WORK/whole.h5" "$part" --only /train/loss --tol 1e-5
    check "$H5COMPARE" "$WORK/whole.h5" "$part" --only /adapters/ --tol 1e-3
done

# layouts and modes that cannot work are refused with one line
BASE="model=$R/train_llama svd_cache=$WORK/svd_train_llama.h5 train_data=$R/train_data.h5 rank=4 steps=2 batch_size=4"
expect_error "tp = 4 must divide" "$WORK/bad.h5" run_np 4 "$AILORA" train $BASE tp=4 out="$WORK/bad.h5"
expect_error "tp (2) x dp (1) must equal" "$WORK/bad.h5" run_np 4 "$AILORA" train $BASE tp=2 dp=1 out="$WORK/bad.h5"
expect_error "tp must be >= 1, got 0" "$WORK/bad.h5" run_np 1 "$AILORA" train $BASE tp=0 dp=0 out="$WORK/bad.h5"
expect_error "train_base = true supports tp = 1 only" "$WORK/bad.h5" \
    run_np 2 "$AILORA" train $BASE tp=2 train_base=true out_model="$WORK/m" out="$WORK/bad.h5"
finish
