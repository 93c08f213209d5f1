#!/usr/bin/env bash
# svd_bench.sh BUILD_DIR - time-to-spectra of `ailora svd` per backend and rank count,
# against plain sequential single-core LAPACK dgesdd over the same matrices, in
# the same run (these machines are shared: only ratios within one run mean much).
#
#   model A: 24 matrices of 1024 x 1024 (12 layers x q_proj, v_proj)
#   model B: one 4096 x 4096 matrix (q_proj)
#
# Every rank runs one BLIS/LAPACK thread, bound to its own core. Each ailora run
# is checked against the LAPACK result (S within 1e-12 smax, vectors within the
# gap bound). Set BENCH_SKIP_SLOW=1 to skip pdgesvd of the 4096 matrix on 1 rank
# (about 13 minutes). Results: stdout and experiments/bench/results/svd_<date>.txt.
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
AILORA="$B/ailora"; H5COMPARE="$B/tests/h5compare"; DGESDD="$B/experiments/bench/bench_dgesdd"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
WORK=${BENCH_WORK:-$(mktemp -d /tmp/ailora-bench-XXXXXX)}
mkdir -p "$WORK" "$B/experiments/bench/results"
OUT="$B/experiments/bench/results/svd_$(date +%Y%m%d_%H%M%S).txt"
exec > >(tee "$OUT") 2>&1
echo "# ailora SVD benchmark $(date -u +%FT%TZ) on $(getconf _NPROCESSORS_ONLN) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

[ -d "$WORK/A" ] || "$AILORA" synth --out "$WORK/A" --hidden 1024 --heads 16 --kv-heads 16 --layers 12 \
    --intermediate 256 --vocab 256 --decades 6 --seed 1 > /dev/null
[ -d "$WORK/B" ] || "$AILORA" synth --out "$WORK/B" --hidden 4096 --heads 32 --kv-heads 1 --layers 1 \
    --intermediate 64 --vocab 64 --decades 6 --seed 2 --structured q_proj > /dev/null

# flops of the thin SVD with both factors (Golub & Van Loan, R-SVD): 21 n^3 for n x n
gflop() { awk -v n="$1" -v c="$2" 'BEGIN { printf "%.1f", c * 21 * n * n * n / 1e9 }'; }

bench_model() {
    local name=$1 dir=$2 targets=$3 n=$4 count=$5
    local work; work=$(gflop "$n" "$count")
    echo
    echo "## model $name: $count x ($n x $n), $work GFLOP per full pass"
    local base
    base=$("$DGESDD" "$dir" "$targets" | tail -1 | awk '{print $5}')
    printf "%-10s %-4s %10s %9s %9s %s\n" backend np seconds GFLOP/s ratio accuracy
    printf "%-10s %-4s %10.2f %9.2f %9s %s\n" dgesdd 1 "$base" "$(awk -v w="$work" -v t="$base" 'BEGIN{print w/t}')" 1.00 "(baseline: sequential, single core, no I/O)"
    local ref="$WORK/${name}_ref.h5"
    for run in $6; do
        local backend=${run%:*} np=${run#*:}
        local out="$WORK/${name}_${backend}_np$np.h5"
        local t0 t1 wall
        t0=$(date +%s.%N)
        mpirun -np "$np" --bind-to core "$AILORA" svd --model "$dir" --targets "$targets" \
            --backend "$backend" --out "$out" --quiet
        t1=$(date +%s.%N)
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
        [ -f "$ref" ] || cp "$out" "$ref"
        local acc
        if "$H5COMPARE" "$ref" "$out" --svd --tol 1e-12 > "$WORK/cmp.txt"; then acc="ok vs first run"; else acc="MISMATCH: $(tail -1 "$WORK/cmp.txt")"; fi
        printf "%-10s %-4s %10.2f %9.2f %9.3f %s (mpirun wall %.1f s)\n" "$backend" "$np" \
            "$("$H5COMPARE" --attr "$out" / wall_time_s)" \
            "$(awk -v w="$work" -v t="$("$H5COMPARE" --attr "$out" / wall_time_s)" 'BEGIN{print w/t}')" \
            "$(awk -v b="$base" -v t="$("$H5COMPARE" --attr "$out" / wall_time_s)" 'BEGIN{print t/b}')" \
            "$acc" "$wall"
    done
}

bench_model A "$WORK/A" q_proj,v_proj 1024 24 "lapack:1 lapack:2 auto:1 auto:2 pdgesvd:2 pdgesvd:1"
slow="lapack:1 auto:2 pdgesvd:2"
[ "${BENCH_SKIP_SLOW:-0}" = 1 ] || slow="$slow pdgesvd:1"
bench_model B "$WORK/B" q_proj 4096 1 "$slow"
echo
echo "seconds: ailora's own wall time (root attribute wall_time_s: plan, reads, SVDs, HDF5 writes);"
echo "ratio: seconds / the dgesdd baseline of the same model in this run."
[ -n "${BENCH_WORK:-}" ] || rm -rf "$WORK"
