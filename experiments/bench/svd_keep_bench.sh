#!/usr/bin/env bash
# svd_keep_bench.sh BUILD_DIR - `ailora svd --keep 64` (a partial cache: S whole,
# U and Vt for [0, 64) and [k-64, k)) against plain sequential single-core LAPACK
# dgesdd of the same matrices, and its cache size against today's whole cache,
# all in the same run (these machines are shared: only ratios within one run mean much).
#
#   model A: 24 matrices of 1024 x 1024 (12 layers x q_proj, v_proj), as svd_bench.sh
#
# One BLIS/LAPACK thread per rank, each rank bound to its own core; ailora and the
# baseline select the same BLIS kernels (cpu_tune_blis, BLIS_ARCH_TYPE). The partial
# caches are checked against dgesdd's (lapack --keep 64: S within 1e-12 smax, kept
# vectors within the gap bound). Also prints the per-core rates table (bench_select_rates)
# that `auto` plans with (svd_rates.c). Bars (issue 11): time ratio <= 0.40, size <= 1/10.
# Results: stdout and BUILD_DIR/experiments/bench/results/svd_keep_<date>.txt.
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
AILORA="$B/ailora"; H5COMPARE="$B/tests/h5compare"; DGESDD="$B/experiments/bench/bench_dgesdd"
RATES="$B/experiments/bench/bench_select_rates"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
WORK=${BENCH_WORK:-$(mktemp -d /tmp/ailora-bench-XXXXXX)}
mkdir -p "$WORK" "$B/experiments/bench/results"
OUT="$B/experiments/bench/results/svd_keep_$(date +%Y%m%d_%H%M%S).txt"
exec > >(tee "$OUT") 2>&1
echo "# ailora svd --keep benchmark $(date -u +%FT%TZ) on $(getconf _NPROCESSORS_ONLN) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -d "$WORK/A" ] || "$AILORA" synth --out "$WORK/A" --hidden 1024 --heads 16 --kv-heads 16 --layers 12 \
    --intermediate 256 --vocab 256 --decades 6 --seed 1 > /dev/null

attr() { "$H5COMPARE" --attr "$1" / wall_time_s; }
size() { stat -c %s "$1"; }
run() {  # run NAME NP ARGS...: one ailora svd, its own wall time
    local name=$1 np=$2
    shift 2
    mpirun -np "$np" --bind-to core "$AILORA" svd --model "$WORK/A" --out "$WORK/$name.h5" --quiet "$@"
}

base=$("$DGESDD" "$WORK/A" q_proj,v_proj | tail -1 | awk '{print $5}')
run full_np2 2 --backend lapack                   # today's cache (dgesdd, all vectors)
run ref_k64_np2 2 --backend lapack --keep 64      # dgesdd, kept vectors: the accuracy reference
run auto_k64_np2 2 --keep 64                      # auto: the route per matrix from the rates
run select_k64_np1 1 --backend select --keep 64   # the selected-vector route on one rank
run auto_k64_f32_np2 2 --keep 64 --vectors float32  # the same, U and Vt stored as float32
check() {
    if "$H5COMPARE" "$WORK/ref_k64_np2.h5" "$WORK/$1.h5" --svd --tol 1e-12 > "$WORK/cmp.txt"; then echo "ok vs dgesdd"
    else echo "MISMATCH: $(tail -1 "$WORK/cmp.txt")"; fi
}
check_f32() {  # float32 vectors: S equal, U and Vt the float64 route's rounded once (auto_k64_np2)
    if /usr/bin/python3 - "$WORK/auto_k64_np2.h5" "$WORK/$1.h5" > "$WORK/cmp.txt" 2>&1 <<'PYEOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
for name, g in a["modules"].items():
    h = b["modules"][name]
    assert np.array_equal(g["S"][()], h["S"][()])
    for v in ("U", "Vt"):
        assert h[v].dtype == np.float32 and np.array_equal(g[v][()].astype(np.float32), h[v][()])
PYEOF
    then echo "= auto's float64 rounded"; else echo "MISMATCH: $(tail -1 "$WORK/cmp.txt")"; fi
}
echo
printf "%-34s %4s %9s %9s %12s %9s  %s\n" run np seconds ratio "cache bytes" "size" accuracy
printf "%-34s %4s %9.2f %9.3f %12s %9s  %s\n" "dgesdd (baseline)" 1 "$base" 1.000 - - "sequential, single core, no I/O"
full=$(size "$WORK/full_np2.h5")
for r in full_np2:2:"lapack (today, all vectors)" ref_k64_np2:2:"lapack --keep 64" \
         auto_k64_np2:2:"auto --keep 64" select_k64_np1:1:"select --keep 64" \
         auto_k64_f32_np2:2:"auto --keep 64 --vectors float32"; do
    IFS=: read -r name np label <<< "$r"
    t=$(attr "$WORK/$name.h5")
    acc=$([ "$name" = full_np2 ] && echo "-" || check "$name")
    [ "$name" = auto_k64_f32_np2 ] && acc=$(check_f32 "$name")
    [ "$name" = ref_k64_np2 ] && acc="(reference)"
    printf "%-34s %4s %9.2f %9.3f %12s %9.4f  %s\n" "$label" "$np" "$t" \
        "$(awk -v t="$t" -v b="$base" 'BEGIN{print t/b}')" "$(size "$WORK/$name.h5")" \
        "$(awk -v s="$(size "$WORK/$name.h5")" -v f="$full" 'BEGIN{print s/f}')" "$acc"
done
echo
echo "routes auto chose: $(/usr/bin/python3 -c "
import h5py, collections
f = h5py.File('$WORK/auto_k64_np2.h5', 'r')
print(dict(collections.Counter(g.attrs['backend'].decode() if isinstance(g.attrs['backend'], bytes) else g.attrs['backend'] for g in f['modules'].values())))")"
echo
echo "# per-core rates (bench_select_rates 1024; the table auto plans with, svd_rates.c):"
"$RATES" 1024
echo
echo "seconds: ailora's own wall time (root attribute wall_time_s: plan, reads, SVDs, HDF5 writes);"
echo "ratio: seconds / the dgesdd baseline of this run; size: cache bytes / today's whole cache."
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "${BENCH_WORK:-}" ] || rm -rf "$WORK"
