#!/bin/sh
# Regenerates tests/reference/gpu_tiny.bin with ailora's CPU engine.
# Usage: tests/gpu/make_gpu_fixture.sh BUILD_DIR   (a configured VPATH build with libailora.a made)
set -e
build=${1:-/tmp/gpubuild}
top=$(cd "$(dirname "$0")/../.." && pwd)
make -C "$build" libailora.a >/dev/null
libs=$(sed -n 's/^\(HDF5_LIBS\|CJSON_LIBS\|INIH_LIBS\|SCALAPACK_LIBS\|LAPACK_LIBS\|BLIS_LIBS\) = //p' "$build/Makefile" | tr '\n' ' ')
cflags=$(sed -n 's/^HDF5_CFLAGS = //p' "$build/Makefile")
mpicc -O2 -std=c11 -fopenmp -I"$top/include" -I"$build" $cflags "$top/tests/gpu/make_gpu_fixture.c" \
    "$build/libailora.a" $libs -lgfortran -lm -o "$build/make_gpu_fixture"
OMP_NUM_THREADS=1 "$build/make_gpu_fixture" "$top/tests/reference/tiny_llama" "$top/tests/reference/gpu_tiny.bin"
