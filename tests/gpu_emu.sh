# The CUDA backend's host code without a GPU: src/cuda/gpu_model.cu compiled as
# C++ against tests/gpu/cuda_emu.cpp, a CPU stand-in for the CUDA runtime, cuBLAS,
# NCCL and the kernels (re-implemented on the CPU; the CUDA kernels themselves
# run only on a GPU: experiments/bench/gpu.sh). Checks
#  - tests/gpu/emu_check.sh: the GPU model against the CPU engine's fixture, and
#    tp / dp / tp x dp over emulated NCCL (ranks as threads) against one device
#  - tests/gpu/test_gpu_decode.c: greedy generation with the KV cache on the "GPU"
#    (gpu_generate_greedy) against the CPU decoder, fp32 token for token, bf16 up
#    to near ties, bad input
#  - the real ailora loading an emulated CUDA plugin (gpu_plugin.h; AILORA_CUDA_PLUGIN),
#    and the loader's errors for a missing or foreign plugin
#  - `ailora train device=cuda` end to end with that plugin
#    (experiments/bench/gpu_train_e2e.sh: fp32 = CPU run within 1e-4, bf16 within
#    5e-2, CPU checkpoint resumed on the "GPU", preempt + resume)
# Skipped in builds without CUDA (the headers are needed) or without g++.
. "${top_srcdir:-.}/tests/lib.sh"
grep -q "define AILORA_HAVE_CUDA 1" "$top_builddir/config.h" 2>/dev/null || skip "built without CUDA"
command -v g++ > /dev/null || skip "no g++"
CUDA_INC=${CUDA_CFLAGS#-I}
export CUDA_INC
# kept attention probabilities here (the e2e below recomputes them: the emulation reports no free memory)
check env AILORA_GPU_STORE_P=1 sh "$top_srcdir/tests/gpu/emu_check.sh" "$WORK/emu"
sed 's/^/    /' "$WORK/last.out" | tail -6

# ailora with emulated CUDA: the real ailora, loading an emulated CUDA plugin (the
# GPU model and cuSOLVER compiled against cuda_emu.cpp) through gpu_loader.c
E="$WORK/emu_plugin"
EMU_CFLAGS=${EMU_CFLAGS:-}
check sh "$top_srcdir/tests/gpu/emu_plugin.sh" "$E"
AILORA_CUDA_PLUGIN="$E/libailora-cuda-emu.so"
export AILORA_CUDA_PLUGIN
# the loader's own errors: a missing and a foreign plugin give one line each, no signal
"$top_builddir/ailora" synth --out "$WORK/lm" --hidden 32 --heads 2 --kv-heads 2 --layers 1 --intermediate 32 \
    --vocab 64 > /dev/null 2>&1 || fail "synth"
expect_error "cannot load the CUDA backend" "$WORK/lm.h5" env AILORA_CUDA_PLUGIN="$WORK/none.so" \
    "$AILORA" svd --model "$WORK/lm" --backend cusolver --out "$WORK/lm.h5" --quiet
# shellcheck disable=SC2086
check g++ -shared $EMU_CFLAGS -o "$E/foreign.so" "$E/svd_signs.o"
expect_error "is not a CUDA backend of this ailora" "$WORK/lm.h5" env AILORA_CUDA_PLUGIN="$E/foreign.so" \
    "$AILORA" svd --model "$WORK/lm" --backend cusolver --out "$WORK/lm.h5" --quiet
# greedy generation on the "GPU" (gpu_generate_greedy) against the CPU decoder
# llama_generate_greedy on the same models (tests/gpu/test_gpu_decode.c)
# shellcheck disable=SC2086
check mpicc -O2 -std=c11 $EMU_CFLAGS -I"$top_srcdir/include" -I"$top_builddir" "$top_srcdir/tests/gpu/test_gpu_decode.c" \
    "$top_builddir/libailora.a" $EMU_LIBS -o "$E/test_gpu_decode"
check "$E/test_gpu_decode" "$top_srcdir"
grep -E "^(PASS|FAIL)" "$WORK/last.out" | sed 's/^/    /'
mkdir -p "$WORK/e2e"
check env AILORA="$AILORA" H5COMPARE="$H5COMPARE" bash "$top_srcdir/experiments/bench/gpu_train_e2e.sh" "$WORK/e2e"
sed 's/^/    /' "$WORK/e2e/e2e.log" | grep -E "PASS|FAIL|e2e:"
finish
