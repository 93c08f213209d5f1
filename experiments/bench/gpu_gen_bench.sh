#!/usr/bin/env bash
# gpu_gen_bench.sh OUTDIR [BUNDLE.tar.xz] - greedy generation tokens/s of the GPU
# decoder (gpu_generate_greedy: what a device=cuda run's evaluation uses since
# issue 12 item 3) against the host decoder (llama_generate_greedy, every core),
# same model, prompts, batch and adapters, in one process (gpu_gen_bench.c).
# Issue 12's bar: GPU >= 5x host tokens/s. First tests/gpu/test_gpu_decode (the GPU
# decoder against the host one, token for token in fp32) on the device.
#
# With BUNDLE (on the GPU machine, from experiments/bench/gpu.sh): the programs of
# the bundle that scripts/device_bundle.sh packs (ailora, gpu_gen_bench; one rank in
# Open MPI's isolated singleton mode). Without: $BUILD_DIR (default .), a CUDA build
# with `make experiments/bench/gpu_gen_bench` done.
# Models (ailora synth, random weights): SmolLM2-135M's shape (hidden 576,
# intermediate 1536, 30 layers, 9/3 heads, vocabulary 49152, tied) always; with
# GEN_BENCH_1B=1 also Llama-3.2-1B's shape (hidden 2048, intermediate 8192, 16
# layers, 32/8 heads, vocabulary 128256, tied; the host run takes minutes).
# Batches of ROWS ("8 32": 8 is the batch a run's evaluation decodes, GEN_ROWS in
# src/train/train.c) x P (128) prompt slots, prompts of 1..P tokens left-padded, NEW
# (64) new tokens, no EOS; REPS (2) timed runs after a warm-up, the best counts.
# Small batches of a small model are bound by kernel launches on the GPU and by
# weight reads on the host: the ratio grows with the batch and the model.
# Log: OUTDIR/gpu_gen_bench.log, copied to experiments/bench/results/gpu_gen_bench-DATE.log
# when it holds a measurement (commit it: the figures cite it).
set -uo pipefail
OUTDIR=$1
BUNDLE=${2:-}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
ROWS=${ROWS:-8 32} P=${P:-128} NEW=${NEW:-64} REPS=${REPS:-2}
mkdir -p "$OUTDIR" "$HERE/experiments/bench/results"
LOG="$OUTDIR/gpu_gen_bench.log"
W=$(mktemp -d /tmp/ailora-genb-XXXXXX)
trap 'rm -rf "$W"' EXIT
if [ -n "$BUNDLE" ]; then
    tar -C "$W" -xJf "$BUNDLE"
    NCCL_LIB=$(python3 -c "import nvidia.nccl, os; print(os.path.join(os.path.dirname(nvidia.nccl.__file__), 'lib'))" 2>/dev/null || true)
    CUDA_WHEEL_LIBS=$(python3 -c "import nvidia, os, glob; print(':'.join(glob.glob(os.path.join(list(nvidia.__path__)[0], '*', 'lib'))))" 2>/dev/null || true)
    export LD_LIBRARY_PATH="$W/bundle/lib:/usr/local/cuda/lib64:${NCCL_LIB}:${CUDA_WHEEL_LIBS}:${LD_LIBRARY_PATH:-}"
    export OMPI_MCA_mca_base_component_path="$W/bundle/mca" OMPI_MCA_ess_singleton_isolated=1
    export OPAL_PKGDATADIR="$W/bundle/share-openmpi" OMPI_MCA_btl=self,vader
    AILORA="$W/bundle/bin/ailora" BENCH="$W/bundle/bin/gpu_gen_bench" TEST="$W/bundle/bin/test_gpu_decode"
else
    B_DIR=$(cd "${BUILD_DIR:-.}" && pwd)
    AILORA="$B_DIR/ailora" BENCH="$B_DIR/experiments/bench/gpu_gen_bench" TEST="$B_DIR/tests/gpu/test_gpu_decode"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
THREADS=$(getconf _NPROCESSORS_ONLN)
export OMP_NUM_THREADS=$THREADS BLIS_NUM_THREADS=$THREADS
{
    echo "# gpu_gen_bench $(date -u +%FT%TZ) $(git -C "$HERE" log --oneline -1 2>/dev/null)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"
    echo "host: $THREADS threads, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
} > "$LOG"
failed=0
# first the decoder's correctness on the device: tests/gpu/test_gpu_decode.c
if [ -x "$TEST" ]; then
    echo "## test_gpu_decode" >> "$LOG"
    timeout 120 "$TEST" "$HERE" >> "$LOG" 2>&1
    rc=$?
    case $rc in
    0) ;;
    77) echo "SKIP test_gpu_decode: no GPU" | tee -a "$LOG" ;;
    *) echo "FAIL test_gpu_decode (exit $rc)" | tee -a "$LOG"; failed=$((failed + 1)) ;;
    esac
else
    echo "SKIP test_gpu_decode: not built" | tee -a "$LOG"
fi
[ -x "$BENCH" ] || { echo "FAIL gpu_gen_bench: $BENCH not built" | tee -a "$LOG"; exit 1; }
bench() {  # name, then ailora synth arguments
    local name=$1
    shift
    "$AILORA" synth --out "$W/$name" "$@" > /dev/null 2>>"$LOG" || { echo "FAIL synth $name" | tee -a "$LOG"; failed=$((failed + 1)); return; }
    local rows rc
    for rows in $ROWS; do
        echo "## $name, batch $rows" >> "$LOG"
        timeout 600 "$BENCH" "$W/$name" "$rows" "$P" "$NEW" "$REPS" >> "$LOG" 2>&1
        rc=$?
        case $rc in
        0) ;;
        77) echo "SKIP gpu_gen_bench $name: no GPU" | tee -a "$LOG" ;;
        *) echo "FAIL gpu_gen_bench $name batch $rows (exit $rc)" | tee -a "$LOG"; failed=$((failed + 1)) ;;
        esac
    done
    rm -rf "${W:?}/$name"
}
bench smollm2-135m-shape --hidden 576 --intermediate 1536 --layers 30 --heads 9 --kv-heads 3 --vocab 49152 --tie
if [ "${GEN_BENCH_1B:-0}" = 1 ]; then
    bench llama-1b-shape --hidden 2048 --intermediate 8192 --layers 16 --heads 32 --kv-heads 8 --vocab 128256 --tie
fi
grep -E "^(RESULT|PASS|FAIL|SKIP)" "$LOG"
# a measurement goes to the committed results (not a run that skipped everything)
if grep -q "^RESULT" "$LOG"; then cp "$LOG" "$HERE/experiments/bench/results/gpu_gen_bench-$(date -u +%F).log"; fi
exit "$failed"
