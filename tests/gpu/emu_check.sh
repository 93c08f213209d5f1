#!/bin/sh
# Runs test_gpu_train on the CPU through tests/gpu/cuda_emu.cpp (no GPU needed):
# checks gpu_model.cu's host orchestration against the CPU engine's fixture.
# Usage: tests/gpu/emu_check.sh [BUILD_DIR]
set -e
top=$(cd "$(dirname "$0")/../.." && pwd)
b=${1:-/tmp/ailora-emu}
mkdir -p "$b"
CUDA_INC=${CUDA_INC:-/usr/local/cuda/include}
g++ -O2 -Wall -Wextra -x c++ -DAILORA_NO_MPI -I"$top/include" -I"$CUDA_INC" -c "$top/src/cuda/gpu_model.cu" -o "$b/gpu_model.o"
g++ -O2 -Wall -Wextra -DAILORA_NO_MPI -I"$top/include" -I"$CUDA_INC" -c "$top/tests/gpu/cuda_emu.cpp" -o "$b/cuda_emu.o"
gcc -O2 -std=c11 -Wall -Wextra -DAILORA_NO_MPI -I"$top/include" "$top/tests/gpu/test_gpu_train.c" "$top/src/base/error.c" \
    "$b/gpu_model.o" "$b/cuda_emu.o" -lstdc++ -lm -o "$b/test_gpu_train_emu"
"$b/test_gpu_train_emu" "$top/tests/reference/gpu_tiny.bin"
# tensor / data parallel: the NCCL build, ranks as threads (fake NCCL in cuda_emu.cpp)
NCCL_INC=${NCCL_INC:-$CUDA_INC}
g++ -O2 -Wall -Wextra -x c++ -DAILORA_NO_MPI -DAILORA_HAVE_NCCL -I"$top/include" -I"$CUDA_INC" -I"$NCCL_INC" \
    -c "$top/src/cuda/gpu_model.cu" -o "$b/gpu_model_nccl.o"
g++ -O2 -Wall -Wextra -DAILORA_NO_MPI -DAILORA_HAVE_NCCL -I"$top/include" -I"$CUDA_INC" -I"$NCCL_INC" \
    -c "$top/tests/gpu/cuda_emu.cpp" -o "$b/cuda_emu_nccl.o"
gcc -O2 -std=c11 -Wall -Wextra -pthread -DAILORA_NO_MPI -I"$top/include" "$top/tests/gpu/test_gpu_parallel.c" \
    "$top/src/base/error.c" "$b/gpu_model_nccl.o" "$b/cuda_emu_nccl.o" -lstdc++ -lm -o "$b/test_gpu_parallel_emu"
AILORA_EMU_DEVICES=4 "$b/test_gpu_parallel_emu" "$top/tests/reference/gpu_tiny.bin"
# the benchmark's host path on a tiny shape (bf16, q/v adapters)
gcc -O2 -std=c11 -Wall -Wextra -DAILORA_NO_MPI -I"$top/include" -I"$CUDA_INC" "$top/experiments/bench/gpu_bench.c" \
    "$top/src/base/error.c" "$b/gpu_model.o" "$b/cuda_emu.o" -lstdc++ -lm -o "$b/gpu_bench_emu"
GPU_BENCH_GEMM=64 GPU_BENCH_SHAPE=64,128,256,2,4,2,16 "$b/gpu_bench_emu" 2 64 3 1 4 bf16 qv | grep -E '^(PASS|FAIL)'
