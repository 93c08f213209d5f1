# The CUDA backend's host code without a GPU: src/cuda/gpu_model.cu compiled as
# C++ against tests/gpu/cuda_emu.cpp, a CPU stand-in for the CUDA runtime, cuBLAS,
# NCCL and the kernels (re-implemented on the CPU; the CUDA kernels themselves
# run only on a GPU: experiments/bench/gpu.sh). Checks
#  - tests/gpu/emu_check.sh: the GPU model against the CPU engine's fixture, and
#    tp / dp / tp x dp over emulated NCCL (ranks as threads) against one device
#  - tests/gpu/test_gpu_decode.c: greedy generation with the KV cache on the "GPU"
#    (gpu_generate_greedy) against the CPU decoder, fp32 token for token, bf16 up
#    to near ties, bad input
#  - an ailora linked with the emulation: `ailora train device=cuda` end to end
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

# ailora with emulated CUDA: the library's C objects, the emulated GPU model, no cuSOLVER
E="$WORK/ailora_emu"
LIB="$(cd "$top_builddir" && pwd)/libailora.a"
mkdir -p "$E" && (cd "$E" && ar x "$LIB" && rm -f gpu_kernels.o gpu_model.o gpu_svd.o)
MPI_INC=$(mpicc --showme:compile)
# the library's own CFLAGS too: in a sanitizer build (scripts/sanitize-check.sh) its
# objects need the sanitizer runtimes at link time, and the emulation is checked with them
EMU_CFLAGS=${EMU_CFLAGS:-}
# shellcheck disable=SC2086
check g++ -O2 $EMU_CFLAGS -x c++ -I"$top_srcdir/include" -I"$top_builddir" -I"$CUDA_INC" $MPI_INC -DOMPI_SKIP_MPICXX=1 \
    -c "$top_srcdir/src/cuda/gpu_model.cu" -o "$E/gpu_model.o"
# shellcheck disable=SC2086
check g++ -O2 $EMU_CFLAGS -DAILORA_NO_MPI -I"$top_srcdir/include" -I"$CUDA_INC" -c "$top_srcdir/tests/gpu/cuda_emu.cpp" -o "$E/cuda_emu.o"
# shellcheck disable=SC2086
check mpicc -O2 $EMU_CFLAGS -I"$top_srcdir/include" -I"$top_builddir" -c "$top_srcdir/src/cuda/gpu_svd_none.c" -o "$E/gpu_svd_none.o"
# shellcheck disable=SC2086
check mpicc $EMU_CFLAGS -o "$E/ailora" "$top_builddir"/src/cli/*.o "$E"/*.o $EMU_LIBS
# greedy generation on the "GPU" (gpu_generate_greedy) against the CPU decoder
# llama_generate_greedy on the same models (tests/gpu/test_gpu_decode.c)
# shellcheck disable=SC2086
check mpicc -O2 -std=c11 $EMU_CFLAGS -I"$top_srcdir/include" -I"$top_builddir" "$top_srcdir/tests/gpu/test_gpu_decode.c" \
    "$E"/*.o $EMU_LIBS -o "$E/test_gpu_decode"
check "$E/test_gpu_decode" "$top_srcdir"
grep -E "^(PASS|FAIL)" "$WORK/last.out" | sed 's/^/    /'
mkdir -p "$WORK/e2e"
check env AILORA="$E/ailora" H5COMPARE="$H5COMPARE" bash "$top_srcdir/experiments/bench/gpu_train_e2e.sh" "$WORK/e2e"
sed 's/^/    /' "$WORK/e2e/e2e.log" | grep -E "PASS|FAIL|e2e:"
finish
