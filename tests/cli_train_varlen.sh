# Variable-length rows (dataset v2 /attention_mask; include/ailora/llama.h,
# llama_acts_set_mask) in `ailora train`, data from tests/reference/make_varlen_data.py:
#  - padded.h5 (rows left- and right-padded, mask) trains on exactly the curve of
#    same.h5 (the same real tokens unpadded, no mask): train and eval loss, grad
#    norm within 1e-5 relative, on LLaMA and on Qwen2 (biases, tied embeddings)
#  - an all-ones mask (stored as uint16) gives the unmasked run bit for bit
#  - padded.h5 on tp = 2, dp = 2 and tp = 2 x dp = 2 gives the one-rank curve
#    within 1e-5 (the layouts differ only in the order of float32 sums, as in
#    cli_train_tp.sh); adapters within 1e-3 (Adam amplifies rounding near zero)
#  - bad masks are one-line errors naming the file and the row
# Tolerance padded vs unpadded: the same tokens see the same keys at the same
# positions; only GEMM sums over the zero rows of padding differ, ~1e-7 relative.
. "${top_srcdir:-.}/tests/lib.sh"
R="$top_srcdir/tests/reference"
D="$R/varlen"
TARGETS=q_proj,v_proj,o_proj,down_proj
for model in train_llama train_qwen2; do
    check "$AILORA" svd --model "$R/$model" --out "$WORK/svd_$model.h5" --targets $TARGETS --quiet
    BASE="model=$R/$model svd_cache=$WORK/svd_$model.h5 targets=$TARGETS method=ailora rank=4 lr=2e-3"
    BASE="$BASE log_every=2 steps=8 batch_size=4 eval_every=4"
    for data in padded same ones; do
        # shellcheck disable=SC2086
        check "$AILORA" train $BASE train_data="$D/$data.h5" eval_data="$D/$data.h5" out="$WORK/${model}_$data.h5"
    done
    for d in /train/loss /train/grad_norm /eval/loss; do
        check "$H5COMPARE" "$WORK/${model}_same.h5" "$WORK/${model}_padded.h5" --only $d --tol 1e-5
        check "$H5COMPARE" "$WORK/${model}_same.h5" "$WORK/${model}_ones.h5" --only $d --tol 0
    done
done

# tensor and data parallelism on padded rows (llama, adapters column- and row-parallel)
BASE="model=$R/train_llama svd_cache=$WORK/svd_train_llama.h5 targets=$TARGETS method=ailora rank=4 lr=2e-3"
BASE="$BASE log_every=2 steps=8 batch_size=4 eval_every=4 train_data=$D/padded.h5 eval_data=$D/padded.h5"
for layout in "2 tp=2" "2 dp=2" "4 tp=2"; do
    set -- $layout
    # shellcheck disable=SC2086
    check run_np "$1" "$AILORA" train $BASE "$2" out="$WORK/np$1_$2.h5"
    for d in /train/loss /train/grad_norm /eval/loss; do
        check "$H5COMPARE" "$WORK/train_llama_padded.h5" "$WORK/np$1_$2.h5" --only $d --tol 1e-5
    done
    check "$H5COMPARE" "$WORK/train_llama_padded.h5" "$WORK/np$1_$2.h5" --only /adapters/ --tol 1e-3
done

# bad masks: one line naming the file and the row, nothing written
BASE="model=$R/train_llama svd_cache=$WORK/svd_train_llama.h5 rank=4 steps=2 batch_size=4"
expect_error "bad_value.h5: /attention_mask value 2 at sequence 3 (0 or 1 expected)" "$WORK/bad.h5" \
    "$AILORA" train $BASE train_data="$D/bad_value.h5" out="$WORK/bad.h5"
expect_error "bad_label.h5: sequence 0 has a scored label at padded position 0" "$WORK/bad.h5" \
    "$AILORA" train $BASE train_data="$D/bad_label.h5" out="$WORK/bad.h5"
expect_error "bad_empty.h5: sequence 5 has no real token (all padding)" "$WORK/bad.h5" \
    "$AILORA" train $BASE train_data="$D/bad_empty.h5" out="$WORK/bad.h5"
expect_error "bad_shape.h5: /attention_mask and /input_ids differ in shape" "$WORK/bad.h5" \
    "$AILORA" train $BASE train_data="$D/bad_shape.h5" out="$WORK/bad.h5"
finish
