#!/usr/bin/env bash
# gpu_train_e2e.sh OUTDIR [BUNDLE.tar.xz] - `ailora train device=cuda` end to end.
# With BUNDLE: on a GPU machine without MPI / HDF5 / BLIS packages, from the bundle
# that scripts/device_bundle.sh packs (one rank: Open MPI's isolated singleton
# mode). Without: the programs named by $AILORA and $H5COMPARE (tests/gpu_emu.sh
# runs it on an ailora whose CUDA calls are emulated on the CPU).
# Checks, on the reference tiny LLaMA with adapters on all seven modules:
#   - fp32 on the GPU reproduces the CPU run's loss / grad-norm / eval curves within
#     1e-4 relative (different summation orders in float32 only)
#   - bf16 stays within 5e-2 relative of the CPU loss: bf16 keeps 8 mantissa bits
#     (3.9e-3 relative per rounding) and the residual stream is rounded at every
#     layer, so per-token log-probabilities move by ~1e-2; 20 steps of AdamW at
#     lr 2e-3 must not amplify that beyond 5e-2
#   - a CPU checkpoint resumes on the GPU (fp32) and ends on the CPU curve (1e-4)
#   - a GPU run preempted at step 7 and resumed equals the uninterrupted GPU run
#     (1e-6: the same kernels on the same data)
#   - a LLaMA with attention_bias and mlp_bias (all seven biases) in fp32 equals the CPU run (1e-4)
#   - padded rows (tests/reference/varlen/padded.h5: attention mask, left and right
#     padding): fp32 on the GPU = the CPU run (1e-4), bf16 within 5e-2, and the GPU
#     run on padded rows = the GPU run on the same tokens unpadded (same.h5, 1e-4)
#   - evaluation by generation (tests/reference/gen_eval.h5, ROUGE, EOS): decoded
#     on the GPU, fp32 gives the CPU run's predictions (as strings), per-example
#     scores and curves (1e-4); bf16's eval loss within 5e-2
# Writes OUTDIR/e2e.log; exit status = number of failed checks.
set -uo pipefail
OUTDIR=$1
BUNDLE=${2:-}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
LOG="$OUTDIR/e2e.log"
W=$(mktemp -d /tmp/ailora-e2e-XXXXXX)
if [ -n "$BUNDLE" ]; then
    tar -C "$W" -xJf "$BUNDLE"
    NCCL_LIB=$(python3 -c "import nvidia.nccl, os; print(os.path.join(os.path.dirname(nvidia.nccl.__file__), 'lib'))" 2>/dev/null || true)
    CUDA_WHEEL_LIBS=$(python3 -c "import nvidia, os, glob; print(':'.join(glob.glob(os.path.join(list(nvidia.__path__)[0], '*', 'lib'))))" 2>/dev/null || true)
    export LD_LIBRARY_PATH="$W/bundle/lib:/usr/local/cuda/lib64:${NCCL_LIB}:${CUDA_WHEEL_LIBS}:${LD_LIBRARY_PATH:-}"
    export OMPI_MCA_mca_base_component_path="$W/bundle/mca" OMPI_MCA_ess_singleton_isolated=1
    export OPAL_PKGDATADIR="$W/bundle/share-openmpi" OMPI_MCA_btl=self,vader
    AILORA="$W/bundle/bin/ailora"
    H5C="$W/bundle/bin/h5compare"
else
    H5C=$H5COMPARE
fi
R="$HERE/tests/reference"
failed=0
say() { echo "$*" | tee -a "$LOG"; }
run() {  # name, then ailora train arguments
    local name=$1
    shift
    if timeout 120 "$AILORA" train "$@" > "$W/$name.out" 2>&1; then say "ran $name"; else
        say "FAIL run $name (exit $?)"; tail -5 "$W/$name.out" | tee -a "$LOG"; failed=$((failed + 1)); fi
}
cmp() {  # label, a, b, dataset, tolerance
    if "$H5C" "$W/$2.h5" "$W/$3.h5" --only "$4" --tol "$5" > "$W/cmp.out" 2>&1; then say "PASS $1 ($4 within $5)"; else
        say "FAIL $1 ($4 within $5)"; head -5 "$W/cmp.out" | tee -a "$LOG"; failed=$((failed + 1)); fi
}
: > "$LOG"
ldd "$AILORA" | grep "not found" | tee -a "$LOG" || true
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
timeout 120 "$AILORA" svd --model "$R/train_llama" --out "$W/svd.h5" --targets $ALL --quiet >> "$LOG" 2>&1 || say "FAIL svd"
BASE="model=$R/train_llama svd_cache=$W/svd.h5 train_data=$R/train_data.h5 eval_data=$R/train_data.h5 targets=$ALL"
BASE="$BASE rank=4 lr=2e-3 log_every=5 eval_every=10 steps=20 batch_size=8"
for m in ailora lora; do
    run "cpu_$m" $BASE method=$m out="$W/cpu_$m.h5"
    run "fp32_$m" $BASE method=$m device=cuda precision=fp32 out="$W/fp32_$m.h5"
    run "bf16_$m" $BASE method=$m device=cuda precision=bf16 out="$W/bf16_$m.h5"
    for d in /train/loss /train/grad_norm /eval/loss; do cmp "gpu fp32 = cpu, $m" "cpu_$m" "fp32_$m" $d 1e-4; done
    cmp "gpu bf16 ~ cpu, $m" "cpu_$m" "bf16_$m" /train/loss 5e-2
    grep -h "^step 20/20" "$W/cpu_$m.out" "$W/fp32_$m.out" "$W/bf16_$m.out" | tee -a "$LOG"
done
# CPU checkpoint -> GPU resume
rc=0; timeout 120 "$AILORA" train $BASE method=ailora out="$W/x_cpu.h5" preempt_at_step=7 > "$W/x.out" 2>&1 || rc=$?
[ "$rc" = 75 ] || { say "FAIL cpu preempt exit $rc"; failed=$((failed + 1)); }
run "x_gpu_resume" $BASE method=ailora device=cuda precision=fp32 out="$W/x_cpu.h5" resume=true
cmp "cpu checkpoint resumed on gpu" cpu_ailora x_cpu /train/loss 1e-4
# GPU preempt + resume
rc=0; timeout 120 "$AILORA" train $BASE method=ailora device=cuda precision=bf16 out="$W/g_part.h5" preempt_at_step=7 > "$W/g.out" 2>&1 || rc=$?
[ "$rc" = 75 ] || { say "FAIL gpu preempt exit $rc"; tail -3 "$W/g.out" | tee -a "$LOG"; failed=$((failed + 1)); }
run "g_resume" $BASE method=ailora device=cuda precision=bf16 out="$W/g_part.h5" resume=true
cmp "gpu preempted + resumed = uninterrupted" bf16_ailora g_part /train/loss 1e-6
# LLaMA with attention_bias and mlp_bias (biases on all seven linears:
# tests/reference/bias_llama): the GPU adds them as the CPU does
BIAS="model=$R/bias_llama train_data=$R/train_data.h5 targets=$ALL method=lora rank=4 lr=5e-3 log_every=5"
BIAS="$BIAS steps=10 batch_size=8"
run "cpu_bias" $BIAS out="$W/cpu_bias.h5"
run "fp32_bias" $BIAS device=cuda precision=fp32 out="$W/fp32_bias.h5"
for d in /train/loss /train/grad_norm; do cmp "gpu fp32 = cpu, attention_bias" cpu_bias fp32_bias $d 1e-4; done
# padded rows (dataset v2 /attention_mask)
VL="model=$R/train_llama svd_cache=$W/svd.h5 targets=$ALL method=ailora rank=4 lr=2e-3 log_every=2"
VL="$VL steps=8 batch_size=4 eval_every=4"
PD="train_data=$R/varlen/padded.h5 eval_data=$R/varlen/padded.h5"
run "cpu_pad" $VL $PD out="$W/cpu_pad.h5"
run "fp32_pad" $VL $PD device=cuda precision=fp32 out="$W/fp32_pad.h5"
run "bf16_pad" $VL $PD device=cuda precision=bf16 out="$W/bf16_pad.h5"
run "fp32_same" $VL train_data="$R/varlen/same.h5" eval_data="$R/varlen/same.h5" device=cuda precision=fp32 \
    out="$W/fp32_same.h5"
for d in /train/loss /train/grad_norm /eval/loss; do cmp "gpu fp32 = cpu, padded rows" cpu_pad fp32_pad $d 1e-4; done
cmp "gpu bf16 ~ cpu, padded rows" cpu_pad bf16_pad /train/loss 5e-2
for d in /train/loss /eval/loss; do cmp "gpu fp32 padded = unpadded" fp32_same fp32_pad $d 1e-4; done
# evaluation by generation (tests/reference/gen_eval.h5: metric rouge, left-padded
# prompts of 1 to 12 tokens in batches of 8 and 4, EOS ids that stop some rows
# early): a GPU run decodes on the GPU (gpu_generate_greedy), the CPU run on the
# host (llama_generate_greedy). fp32: the same predictions (the detokenized text
# of every row, compared as strings), per-example scores and ROUGE curves (1e-4:
# the scores are ratios of token counts, equal when the tokens are); bf16: the
# loss within 5e-2 (its greedy tokens may part from the CPU's at near ties)
GEN="model=$R/train_llama svd_cache=$W/svd.h5 train_data=$R/train_data.h5 eval_data=$R/gen_eval.h5 targets=$ALL"
GEN="$GEN rank=4 lr=2e-3 log_every=5 eval_every=10 steps=20 batch_size=8"
for m in ailora lora; do
    run "cpu_gen_$m" $GEN method=$m out="$W/cpu_gen_$m.h5"
    run "fp32_gen_$m" $GEN method=$m device=cuda precision=fp32 out="$W/fp32_gen_$m.h5"
    run "bf16_gen_$m" $GEN method=$m device=cuda precision=bf16 out="$W/bf16_gen_$m.h5"
    for d in /eval/examples /eval/rouge1 /eval/rouge2 /eval/rougeL /eval/scored; do
        cmp "gpu fp32 = cpu, generation, $m" "cpu_gen_$m" "fp32_gen_$m" $d 1e-4
    done
    cmp "gpu bf16 ~ cpu, generation, $m" "cpu_gen_$m" "bf16_gen_$m" /eval/loss 5e-2
    grep -h "^eval step 20" "$W/cpu_gen_$m.out" "$W/fp32_gen_$m.out" "$W/bf16_gen_$m.out" | tee -a "$LOG"
done
say "e2e: $failed failed"
rm -rf "$W"
exit "$failed"
