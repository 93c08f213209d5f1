#!/usr/bin/env bash
# launch_bench.sh BUILD_DIR - what starting an MPI job costs before any work, on 2
# ranks, median of REPS (default 7) runs each, in one run:
#   mpirun true            the launcher alone
#   MPI hello              MPI_Init + MPI_Finalize (a 3-line C program)
#   ... pml ob1 self,vader the same with Open MPI's shared-memory transports only
#   MPI hello + CUDA libs  the same program linked against cudart, cuBLAS, cuSOLVER,
#                          NCCL (what ailora linked before the CUDA plugin)
#   ailora --help          this build (CUDA backend in libailora-cuda.so, not loaded)
# The differences are the costs: the hello + CUDA libs row minus hello is what a
# CPU run saves by loading the CUDA backend only when a GPU call is made.
# Results: stdout and BUILD_DIR/experiments/bench/results/launch_<date>.txt.
set -euo pipefail
B=$(cd "${1:?BUILD_DIR}" && pwd)
REPS=${REPS:-7}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
WORK=$(mktemp -d /tmp/ailora-launch-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$B/experiments/bench/results"
OUT="$B/experiments/bench/results/launch_$(date +%Y%m%d_%H%M%S).txt"
exec > >(tee "$OUT") 2>&1
printf '#include <mpi.h>\nint main(int c, char **v) { MPI_Init(&c, &v); MPI_Finalize(); return 0; }\n' > "$WORK/hello.c"
mpicc -O2 "$WORK/hello.c" -o "$WORK/hello"
cuda=""
if [ -f "$CUDA_HOME/lib64/libcudart.so" ]; then
    nccl=$([ -f "$CUDA_HOME/lib64/libnccl.so" ] || ls /usr/lib/x86_64-linux-gnu/libnccl.so > /dev/null 2>&1 && echo -lnccl || true)
    mpicc -O2 "$WORK/hello.c" -o "$WORK/hello_cuda" -L"$CUDA_HOME/lib64" -Wl,-rpath,"$CUDA_HOME/lib64" \
        -Wl,--no-as-needed -lcudart -lcublas -lcusolver $nccl
    cuda=1
fi
echo "# launch cost, 2 ranks, median of $REPS $(date -u +%FT%TZ); $(getconf _NPROCESSORS_ONLN) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
run() {  # label command...
    local label=$1
    shift
    : > "$WORK/t"
    for _ in $(seq "$REPS"); do
        /usr/bin/time -f "%e" -a -o "$WORK/t" mpirun -np 2 --bind-to core "$@" > /dev/null
    done
    printf "%-28s %8.3f s\n" "$label" "$(median < "$WORK/t")"
}
run "mpirun true" true
run "MPI hello" "$WORK/hello"
# Open MPI's own start-up: the same hello with the shared-memory transports only (no
# UCX probing); a site setting, not used by the other rows
run "MPI hello, pml ob1 self,vader" --mca pml ob1 --mca btl self,vader --mca osc ^ucx --mca mtl ^ofi "$WORK/hello"
[ -n "$cuda" ] && run "MPI hello + CUDA libs" "$WORK/hello_cuda"
run "ailora --help" "$B/ailora" --help
ldd "$B/ailora" | grep -qE "libcudart|libcublas" && echo "# note: this ailora links CUDA libraries" || true
