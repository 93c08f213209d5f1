#!/bin/bash
# gpu.sh - the one prepared GPU run: build the standalone CUDA programs with nvcc,
# run the CPU-parity test, the 1B LoRA throughput benchmark and the PyTorch + PEFT
# baseline, the cuSOLVER check (gpu_svd.sh, if present) and a memcheck pass.
#
#   bash experiments/bench/gpu.sh          (from the repository root, on the GPU machine)
#
# Needs only nvcc, cuBLAS and python3 + torch/transformers/peft (no MPI, HDF5, BLIS,
# configure or make). Logs go to ${OUT:-/tmp/gpu-out}: build.log, tests.log,
# bench.log, summary.txt, e2e.log, gpu_gen_bench.log (+ whatever gpu_svd.sh writes). Every stage logs its own
# status and the script continues past failures; summary.txt lists every
# PASS/FAIL/SKIP line and the headline numbers. Designed to finish in ~7 minutes.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
top=$(pwd)
BIN=$(mktemp -d /tmp/ailora-gpu.XXXXXX)
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
ARCH=${ARCH:--gencode arch=compute_90,code=sm_90}
BLOG=$OUT/build.log TLOG=$OUT/tests.log PLOG=$OUT/bench.log SUM=$OUT/summary.txt
: >"$BLOG"; : >"$TLOG"; : >"$PLOG"; : >"$SUM"
start=$(date +%s)
stage() { echo "=== $* ($(($(date +%s) - start)) s)"; }
status() { echo "$1 $2" | tee -a "$SUM"; }

{
    stage environment
    date -u
    nvidia-smi || echo "nvidia-smi: not found"
    "$NVCC" --version || echo "nvcc: not found at $NVCC"
    for t in mpicc h5cc; do echo "$t: $(command -v $t || echo absent)"; done
    echo "libblis: $(ldconfig -p 2>/dev/null | grep -m1 libblis || echo absent)"
    python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'peft', peft.__version__)" 2>&1
    git -C "$top" log --oneline -1 2>/dev/null
} >>"$BLOG" 2>&1

# ---- build: each program on its own, so one compile error does not stop the rest
NCCL_DIR=$(python3 -c "import nvidia.nccl as n; print(list(n.__path__)[0])" 2>/dev/null || true)
[ -n "$NCCL_DIR" ] && [ -f "$NCCL_DIR/include/nccl.h" ] || NCCL_DIR=
FLAGS="-O3 $ARCH -std=c++17 -DAILORA_NO_MPI -I$top/include -Xcompiler -Wall,-Wextra"
build() {  # name, then the compile/link command
    local name=$1; shift
    echo "--- $name: $*" >>"$BLOG"
    if "$@" >>"$BLOG" 2>&1; then status PASS "build $name"; else status FAIL "build $name"; fi
}
{ stage build; } >>"$BLOG"
build kernels.o "$NVCC" $FLAGS -c src/cuda/gpu_kernels.cu -o "$BIN/gpu_kernels.o"
build model.o "$NVCC" $FLAGS -c src/cuda/gpu_model.cu -o "$BIN/gpu_model.o"
build error.o "$NVCC" -O2 -DAILORA_NO_MPI -I"$top/include" -c src/base/error.c -o "$BIN/error.o"
OBJS="$BIN/gpu_model.o $BIN/gpu_kernels.o $BIN/error.o"
build test_gpu_train "$NVCC" $ARCH -O2 -DAILORA_NO_MPI -I"$top/include" tests/gpu/test_gpu_train.c $OBJS \
    -lcublas -o "$BIN/test_gpu_train"
build gpu_bench "$NVCC" $ARCH -O2 -DAILORA_NO_MPI -I"$top/include" experiments/bench/gpu_bench.c $OBJS \
    -lcublas -o "$BIN/gpu_bench"
if [ -n "$NCCL_DIR" ]; then  # the NCCL build of the model (tensor/data parallel collectives): compile + link
    build model_nccl "$NVCC" $FLAGS -DAILORA_HAVE_NCCL -I"$NCCL_DIR/include" -c src/cuda/gpu_model.cu \
        -o "$BIN/gpu_model_nccl.o"
    build test_gpu_train_nccl "$NVCC" $ARCH -O2 -DAILORA_NO_MPI -I"$top/include" tests/gpu/test_gpu_train.c \
        "$BIN/gpu_model_nccl.o" "$BIN/gpu_kernels.o" "$BIN/error.o" -lcublas -L"$NCCL_DIR/lib" -l:libnccl.so.2 \
        -Xlinker -rpath -Xlinker "$NCCL_DIR/lib" -o "$BIN/test_gpu_train_nccl"
    build test_gpu_parallel "$NVCC" $ARCH -O2 -DAILORA_NO_MPI -I"$top/include" tests/gpu/test_gpu_parallel.c \
        "$BIN/gpu_model_nccl.o" "$BIN/gpu_kernels.o" "$BIN/error.o" -lcublas -L"$NCCL_DIR/lib" -l:libnccl.so.2 \
        -Xlinker -rpath -Xlinker "$NCCL_DIR/lib" -o "$BIN/test_gpu_parallel"
else
    echo "NCCL: no pip wheel nvidia-nccl found; trying /usr/local/cuda" >>"$BLOG"
    if [ -f /usr/local/cuda/include/nccl.h ]; then
        build model_nccl "$NVCC" $FLAGS -DAILORA_HAVE_NCCL -c src/cuda/gpu_model.cu -o "$BIN/gpu_model_nccl.o"
    else
        status SKIP "build model_nccl (no nccl.h)"
    fi
fi

# ---- tests
run() {  # log, seconds, name, command...
    local log=$1 secs=$2 name=$3; shift 3
    { stage "$name"; echo "\$ $*"; } >>"$log"
    timeout "$secs" "$@" >>"$log" 2>&1
    local rc=$?
    case $rc in
    0) status PASS "$name" ;;
    77) status SKIP "$name" ;;
    124) status FAIL "$name (timeout ${secs}s)" ;;
    *) status FAIL "$name (exit $rc)" ;;
    esac
    return $rc
}
if [ -x "$BIN/test_gpu_train" ]; then
    run "$TLOG" 120 test_gpu_train "$BIN/test_gpu_train" tests/reference/gpu_tiny.bin
    grep -E '^(PASS|FAIL|SKIP)' "$TLOG" | sed 's/^/  /' >>"$SUM"
fi
[ -x "$BIN/test_gpu_train_nccl" ] && run "$TLOG" 90 test_gpu_train_nccl "$BIN/test_gpu_train_nccl" tests/reference/gpu_tiny.bin
# tp / dp over NCCL: needs 2+ GPUs (SKIP on one; the CPU emulation covers it: tests/gpu/emu_check.sh)
[ -x "$BIN/test_gpu_parallel" ] && run "$TLOG" 90 test_gpu_parallel "$BIN/test_gpu_parallel" tests/reference/gpu_tiny.bin

# ---- `ailora train device=cuda` end to end, from a bundle built on the CPU machine
# (scripts/device_bundle.sh: ailora + the MPI/HDF5/BLIS libraries this machine lacks)
if [ -f .devbundle/ailora-bundle.tar.xz ]; then
    run "$TLOG" 240 "ailora train e2e" bash experiments/bench/gpu_train_e2e.sh "$OUT" .devbundle/ailora-bundle.tar.xz
    grep -E '^(PASS|FAIL)' "$OUT/e2e.log" | sed 's/^/  /' >>"$SUM"
else
    status SKIP "ailora train e2e (no .devbundle/ailora-bundle.tar.xz: run scripts/device_bundle.sh first)"
fi

# ---- greedy generation: the GPU decoder against the host one (issue 12: >= 5x), from the bundle
if [ -f .devbundle/ailora-bundle.tar.xz ]; then
    run "$PLOG" 300 "gpu_gen_bench" bash experiments/bench/gpu_gen_bench.sh "$OUT" .devbundle/ailora-bundle.tar.xz
    grep -E '^(RESULT|PASS|FAIL|SKIP)' "$OUT/gpu_gen_bench.log" | sed 's/^/  /' >>"$SUM"
fi

# ---- benchmark: ailora (bf16) and PyTorch + PEFT, same config and batch
if [ -x "$BIN/gpu_bench" ]; then
    run "$PLOG" 150 "gpu_bench 8x1024" "$BIN/gpu_bench" 8 1024 10 3 16 bf16 qv
fi
run "$PLOG" 180 "torch_gpu_lora 8x1024" python3 experiments/bench/torch_gpu_lora.py 8 1024 10 3 16
# ---- the cuSOLVER SVD check (another engineer's script), if present
if [ -f experiments/bench/gpu_svd.sh ]; then
    { stage gpu_svd; } >>"$PLOG"
    timeout 120 bash experiments/bench/gpu_svd.sh "$OUT" >>"$OUT/gpu_svd.log" 2>&1
    rc=$?
    [ $rc = 0 ] && status PASS gpu_svd.sh || status FAIL "gpu_svd.sh (exit $rc)"
fi

if [ $(($(date +%s) - start)) -lt 280 ]; then  # longer sequences: attention's T x T scores weigh more
    [ -x "$BIN/gpu_bench" ] && run "$PLOG" 120 "gpu_bench 4x2048" "$BIN/gpu_bench" 4 2048 8 2 16 bf16 qv
    run "$PLOG" 150 "torch_gpu_lora 4x2048" python3 experiments/bench/torch_gpu_lora.py 4 2048 8 2 16
fi

# ablation: attention without the block-causal chunks (full T x T GEMMs), time permitting
if [ -x "$BIN/gpu_bench" ] && [ $(($(date +%s) - start)) -lt 240 ]; then
    AILORA_GPU_ATTN_CHUNKS=1 run "$PLOG" 100 "gpu_bench 8x1024 chunks=1" "$BIN/gpu_bench" 8 1024 6 2 16 bf16 qv
fi

# where a step's time goes (CUDA events per phase, warm-up excluded), time permitting
if [ -x "$BIN/gpu_bench" ] && [ $(($(date +%s) - start)) -lt 300 ]; then
    AILORA_GPU_PROFILE=1 run "$PLOG" 60 "gpu_bench 8x1024 phase profile" "$BIN/gpu_bench" 8 1024 6 2 16 bf16 qv
fi

# ---- memcheck of the parity test (out-of-bounds / misaligned accesses), time permitting
SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$SAN" ] && [ -x "$BIN/test_gpu_train" ] && [ $(($(date +%s) - start)) -lt 280 ]; then
    run "$TLOG" 100 "memcheck test_gpu_train" "$SAN" --tool memcheck --error-exitcode 99 --print-limit 20 \
        "$BIN/test_gpu_train" tests/reference/gpu_tiny.bin
fi

# ---- headline numbers
result_of() {  # the RESULT line of one stage of bench.log (empty if it has none)
    awk -v s="=== $1 (" 'index($0, s) == 1 { on = 1; next } /^=== / { on = 0 } on && /^RESULT/ { print; exit }' "$PLOG"
}
{
    echo
    echo "headline (MFU = FLOPs / step time / 989 TFLOP/s, FLOPs per step as in include/ailora/gpu.h):"
    for st in "gpu_bench 8x1024" "torch_gpu_lora 8x1024" "gpu_bench 4x2048" "torch_gpu_lora 4x2048" \
        "gpu_bench 8x1024 chunks=1"; do
        echo "$st: $(result_of "$st")"
    done
    for cfg in 8x1024 4x2048; do
        ours=$(result_of "gpu_bench $cfg" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p')
        theirs=$(result_of "torch_gpu_lora $cfg" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p')
        if [ -n "$ours" ] && [ -n "$theirs" ]; then
            echo "tokens/s ratio ailora / PyTorch+PEFT ($cfg): $(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.3f", a / b }')"
        fi
    done
    echo "elapsed $(($(date +%s) - start)) s"
} >>"$SUM"
cat "$SUM"
rm -rf "$BIN"
