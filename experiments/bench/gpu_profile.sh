#!/bin/bash
# gpu_profile.sh [B T ...] - where the time of a GPU training step goes: builds
# gpu_bench (plain nvcc, as gpu.sh) and runs it with AILORA_GPU_PROFILE=1, which
# records CUDA events at phase boundaries (no syncs inside the step) and prints
# the time per phase summed over the steps. Output: ${OUT:-/tmp/gpu-out}/profile.log
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
BIN=$(mktemp -d /tmp/ailora-prof.XXXXXX)
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
F="-O3 -gencode arch=compute_90,code=sm_90 -std=c++17 -DAILORA_NO_MPI -Iinclude"
LOG=$OUT/profile.log
{
    "$NVCC" $F -c src/cuda/gpu_kernels.cu -o "$BIN/k.o" &&
    "$NVCC" $F -c src/cuda/gpu_model.cu -o "$BIN/m.o" &&
    "$NVCC" -O2 -DAILORA_NO_MPI -Iinclude -c src/base/error.c -o "$BIN/e.o" &&
    "$NVCC" -gencode arch=compute_90,code=sm_90 -O2 -DAILORA_NO_MPI -Iinclude experiments/bench/gpu_bench.c \
        "$BIN/m.o" "$BIN/k.o" "$BIN/e.o" -lcublas -o "$BIN/gpu_bench" &&
    "$NVCC" -gencode arch=compute_90,code=sm_90 -O2 -DAILORA_NO_MPI -Iinclude tests/gpu/test_gpu_train.c \
        "$BIN/m.o" "$BIN/k.o" "$BIN/e.o" -lcublas -o "$BIN/test_gpu_train" || echo "BUILD FAILED"
    for keep in 1 0; do
        echo "=== test_gpu_train, AILORA_GPU_STORE_P=$keep (the kernels still match the CPU engine)"
        AILORA_GPU_STORE_P=$keep timeout 60 "$BIN/test_gpu_train" tests/reference/gpu_tiny.bin 2>&1 | grep -E "^(PASS|FAIL|SKIP)"
    done
    for cfg in "${@:-8 1024}"; do
        set -- $cfg
        echo "=== gpu_bench $1 x $2, profiled"
        AILORA_GPU_PROFILE=1 timeout 120 "$BIN/gpu_bench" "$1" "$2" 6 2 16 bf16 qv 2>&1 | grep -v "^step"
        echo "=== gpu_bench $1 x $2, not profiled"
        timeout 120 "$BIN/gpu_bench" "$1" "$2" 6 2 16 bf16 qv 2>&1 | grep RESULT
        echo "=== gpu_bench $1 x $2, not profiled, probabilities recomputed in the backward (AILORA_GPU_STORE_P=0)"
        AILORA_GPU_STORE_P=0 timeout 120 "$BIN/gpu_bench" "$1" "$2" 6 2 16 bf16 qv 2>&1 | grep RESULT
    done
} > "$LOG" 2>&1
cat "$LOG"
rm -rf "$BIN"
