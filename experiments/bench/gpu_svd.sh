#!/usr/bin/env bash
# gpu_svd.sh OUTDIR - accuracy and speed of ailora's cuSOLVER SVD on a GPU machine
# that has no MPI, HDF5 or BLAS: only nvcc, the CUDA libraries and python3
# (numpy, torch). Writes everything to OUTDIR/svd.log (copied to stdout at the
# end); about 2
# minutes on an H200. Exit status 0 only if every check passed.
#
#   1. builds tests/gpu/svd_check with plain nvcc/gcc lines: src/cuda/gpu_svd.cu,
#      src/base/error.c and src/svd/svd_signs.c with -DAILORA_NO_MPI (no MPI/HDF5/BLAS)
#   2. svd_check: prescribed spectra (10 decades, tiny clusters, exact zeros,
#      tall, wide, square) at 1e-12; a 4096 x 4096 float64 SVD timed as the
#      median of 3 after a warm-up, with sampled checks at 1e-11
#   3. experiments/bench/svd_baselines.py: numpy.linalg.svd (LAPACK, all cores)
#      and torch.linalg.svd (GPU, float64) on the same matrix; ratios and S agreement
# Environment: CUDA_HOME (default /usr/local/cuda), CC (default gcc), SVD_N (4096),
# PYTHON (default python3), BASELINE_BUDGET (seconds per baseline method, 15).
set -uo pipefail
OUT=${1:?usage: gpu_svd.sh OUTDIR}
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
NVCC=$(command -v nvcc || echo "$CUDA_HOME/bin/nvcc")
CC=${CC:-gcc}
command -v "$CC" > /dev/null || CC=cc
PYTHON=${PYTHON:-python3}
SVD_N=${SVD_N:-4096}
BUILD=$(mktemp -d "${TMPDIR:-/tmp}/ailora-gpu-svd-XXXXXX")
trap 'rm -rf "$BUILD"' EXIT
# everything goes to the log; it is copied to stdout at the end (no tee that
# could still be writing when the caller collects OUTDIR)
exec 3>&1 > "$OUT/svd.log" 2>&1
status=0
failed() { echo "FAIL $*"; status=1; }
T0=$(date +%s)

echo "# ailora gpu_svd.sh $(date -u +%FT%TZ) on $(cat /proc/sys/kernel/hostname 2> /dev/null), commit $(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo unknown)"
echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(getconf _NPROCESSORS_ONLN) cores"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | sed 's/^/# GPU: /'
"$NVCC" --version 2>&1 | tail -2 | sed 's/^/# nvcc: /'

echo "== build"
INC="-I$ROOT/include -I$CUDA_HOME/include -DAILORA_NO_MPI"
LIBDIRS="-L$CUDA_HOME/lib64 -L$CUDA_HOME/lib -Wl,-rpath,$CUDA_HOME/lib64"
built=1
timeout 300 "$NVCC" -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 \
    -gencode arch=compute_90,code=compute_90 -Xcompiler -fPIC,-Wall $INC \
    -c "$ROOT/src/cuda/gpu_svd.cu" -o "$BUILD/gpu_svd.o" || built=0
for src in tests/gpu/svd_check.c src/base/error.c src/svd/svd_signs.c; do
    [ "$built" -eq 1 ] || break
    "$CC" -O2 -std=c11 -Wall -Wextra -Wno-unused-parameter $INC -c "$ROOT/$src" \
        -o "$BUILD/$(basename "$src" .c).o" || built=0
done
[ "$built" -eq 1 ] && { "$CC" -o "$BUILD/svd_check" "$BUILD"/*.o $LIBDIRS -lcusolver -lcublas -lcudart \
    -lstdc++ -lm || built=0; }
if [ "$built" -eq 1 ]; then
    echo "PASS build ($(( $(date +%s) - T0 )) s)"
else
    failed "build of tests/gpu/svd_check"
fi

if [ "$built" -eq 1 ]; then
    echo "== svd_check (cuSOLVER gesvd via gpu_svd_f64)"
    rc=0
    timeout 240 "$BUILD/svd_check" --time-n "$SVD_N" --reps 3 --dump "$BUILD" || rc=$?
    [ "$rc" -eq 0 ] || failed "svd_check exit status $rc$([ "$rc" -eq 124 ] && echo ' (timed out)')"
    echo "== baselines on the same matrix"
    if [ ! -f "$BUILD/gpu.txt" ]; then
        failed "no timing from svd_check: baselines not run"
    elif ! command -v "$PYTHON" > /dev/null; then
        echo "SKIP baselines: no $PYTHON"
    else
        rc=0
        timeout 240 "$PYTHON" -u "$ROOT/experiments/bench/svd_baselines.py" "$BUILD" \
            --budget "${BASELINE_BUDGET:-15}" || rc=$?
        [ "$rc" -eq 0 ] || failed "svd_baselines.py exit status $rc$([ "$rc" -eq 124 ] && echo ' (timed out)')"
    fi
fi
echo "== gpu_svd.sh: $([ "$status" -eq 0 ] && echo PASS || echo FAIL) in $(( $(date +%s) - T0 )) s"
cat "$OUT/svd.log" >&3
exit "$status"
