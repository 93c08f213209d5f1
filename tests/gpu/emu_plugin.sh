#!/bin/sh
# emu_plugin.sh OUT_DIR: builds OUT_DIR/libailora-cuda-emu.so, the CUDA plugin of
# include/ailora/gpu_plugin.h with the GPU compiled against tests/gpu/cuda_emu.cpp:
# src/cuda/gpu_model.cu (training, decoding) and src/cuda/gpu_svd.cu (cuSOLVER,
# -DAILORA_EMU_CUSOLVER: gesvd by LAPACK dgesvd) as C++ on the CPU. The real ailora
# runs it with AILORA_CUDA_PLUGIN=OUT_DIR/libailora-cuda-emu.so: the loader, the
# plugin entry and the host code of both GPU paths, without a GPU.
# Environment (as Makefile.am's AM_TESTS_ENVIRONMENT sets it): top_srcdir,
# top_builddir, CUDA_CFLAGS (-I of the CUDA headers), EMU_CFLAGS (the library's
# CFLAGS: sanitizer builds need them here too), EMU_LIBS (LAPACK among them).
set -eu
out=$1
src=${top_srcdir:-.}
bld=${top_builddir:-.}
cuda_inc=${CUDA_CFLAGS#-I}
flags="-O2 -fPIC ${EMU_CFLAGS:-}"
mkdir -p "$out"
mpi_inc=$(mpicc --showme:compile)
# shellcheck disable=SC2086
g++ $flags -x c++ -I"$src/include" -I"$bld" -I"$cuda_inc" $mpi_inc -DOMPI_SKIP_MPICXX=1 \
    -c "$src/src/cuda/gpu_model.cu" -o "$out/gpu_model.o"
# shellcheck disable=SC2086
g++ $flags -Wall -Wextra -x c++ -I"$src/include" -I"$bld" -I"$cuda_inc" -c "$src/src/cuda/gpu_svd.cu" -o "$out/gpu_svd.o"
# shellcheck disable=SC2086
g++ $flags -DAILORA_NO_MPI -DAILORA_EMU_CUSOLVER -I"$src/include" -I"$cuda_inc" \
    -c "$src/tests/gpu/cuda_emu.cpp" -o "$out/cuda_emu.o"
for c in src/cuda/gpu_plugin.c src/svd/svd_signs.c; do
    # shellcheck disable=SC2086
    mpicc $flags -std=c11 -I"$src/include" -I"$bld" -c "$src/$c" -o "$out/$(basename "$c" .c).o"
done
# shellcheck disable=SC2086
g++ -shared ${EMU_CFLAGS:-} -Wl,--no-undefined -Wl,--version-script="$src/src/cuda/gpu_plugin.map" -o "$out/libailora-cuda-emu.so" \
    "$out/gpu_model.o" "$out/gpu_svd.o" "$out/cuda_emu.o" "$out/gpu_plugin.o" "$out/svd_signs.o" ${EMU_LIBS:-} -lm
