#!/usr/bin/env bash
# svd_threads_bench.sh BUILD_DIR - threads inside a rank (`ailora svd --threads`)
# against ranks, for one big matrix, all in ONE run (ratios within a run only):
#
#   baseline       plain sequential dgesdd, one core, no I/O (bench_dgesdd)
#   select 1 x 1   --backend select --keep 64, 1 rank, --threads 1, bound to a core
#   select 1 x 2   the same, --threads 2, `mpirun --map-by slot:PE=2` (2 cores)
#   pdgebrd 2 x 1  --backend pdgebrd --keep 64, 2 ranks bound to a core each
#
# for 2048^2 and 4096^2 (q_proj of a one-layer synthetic model). It also measures
# the 2-thread efficiencies of the rates table (svd.h SVD_RATE_*_EFF2): t(1) / (2
# t(2)) of --threads 1 and 2 on one rank: select at both sizes (the rows above),
# dgesdd (--backend lapack) at 2048^2 only (4096^2 dgesdd twice more would break
# the 4-minute budget), from each matrix's own wall_time_s (SVD + its writes). Every threaded cache is checked
# against the one-thread one (h5compare --svd --tol 1e-12). The load average at
# start and end is printed: on a shared machine the numbers are provisional.
# Output: stdout and BUILD_DIR/experiments/bench/results/svd_threads_<date>.txt.
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
AILORA="$B/ailora"; H5COMPARE="$B/tests/h5compare"; DGESDD="$B/experiments/bench/bench_dgesdd"
# the single-thread runs and the baseline: one thread; --threads N overrides this
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
WORK=${BENCH_WORK:-$(mktemp -d /tmp/ailora-bench-XXXXXX)}
mkdir -p "$WORK" "$B/experiments/bench/results"
OUT="$B/experiments/bench/results/svd_threads_$(date +%Y%m%d_%H%M%S).txt"
exec > >(tee "$OUT") 2>&1
echo "# ailora svd --threads benchmark $(date -u +%FT%TZ) on $(getconf _NPROCESSORS_ONLN) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# BLAS: $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

wall() { "$H5COMPARE" --attr "$1" "/modules/model.layers.0.self_attn.q_proj" wall_time_s; }
svd() {  # svd NAME MODEL MPIRUN_ARGS... -- AILORA_ARGS...
    local name=$1 model=$2 margs=()
    shift 2
    while [ "$1" != -- ]; do margs+=("$1"); shift; done
    shift
    mpirun "${margs[@]}" "$AILORA" svd --model "$model" --targets q_proj --out "$WORK/$name.h5" --quiet "$@"
}
same() {
    if "$H5COMPARE" "$WORK/$1.h5" "$WORK/$2.h5" --svd --tol 1e-12 > "$WORK/cmp.txt"; then echo "= $1 (1e-12)"
    else echo "MISMATCH: $(tail -1 "$WORK/cmp.txt")"; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

eff() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / (2 * b) }'; }
for N in 2048 4096; do
    M="$WORK/m$N"
    [ -d "$M" ] || "$AILORA" synth --out "$M" --hidden "$N" --heads 16 --kv-heads 16 --layers 1 \
        --intermediate 256 --vocab 256 --decades 6 --seed 1 > /dev/null
    base=$("$DGESDD" "$M" q_proj | tail -1 | awk '{print $5}')
    svd sel1_$N "$M" -np 1 --bind-to core -- --backend select --keep 64 --threads 1
    svd sel2_$N "$M" -np 1 --map-by slot:PE=2 --bind-to core -- --backend select --keep 64 --threads 2
    svd pd2_$N "$M" -np 2 --bind-to core -- --backend pdgebrd --keep 64
    if [ "$N" = 2048 ]; then  # dgesdd's efficiency (4096^2 twice more would break the budget)
        svd lap1_$N "$M" -np 1 --bind-to core -- --backend lapack --threads 1
        svd lap2_$N "$M" -np 1 --map-by slot:PE=2 --bind-to core -- --backend lapack --threads 2
    fi
    echo
    echo "## ${N}x${N}, keep 64 (load $(cut -d' ' -f1-3 /proc/loadavg))"
    printf "%-28s %9s %9s  %s\n" run seconds ratio check
    printf "%-28s %9.2f %9.3f  %s\n" "dgesdd 1 core (baseline)" "$base" 1 "sequential, no I/O"
    for name in sel1_$N sel2_$N pd2_$N lap1_$N lap2_$N; do
        [ -e "$WORK/$name.h5" ] || continue
        case $name in
            sel1_*) label="select 1 rank x 1 thread" ;;
            sel2_*) label="select 1 rank x 2 threads" ;;
            pd2_*) label="pdgebrd 2 ranks x 1 thread" ;;
            lap1_*) label="dgesdd 1 rank x 1 thread" ;;
            *) label="dgesdd 1 rank x 2 threads" ;;
        esac
        t=$(wall "$WORK/$name.h5")
        case $name in
            sel1_*) chk="(reference)" ;;
            lap1_*) chk="(reference, all vectors)" ;;
            lap2_*) chk=$(same "lap1_$N" "$name") ;;
            *) chk=$(same "sel1_$N" "$name") ;;
        esac
        printf "%-28s %9.2f %9.3f  %s\n" "$label" "$t" "$(ratio "$t" "$base")" "$chk"
    done
    s1=$(wall "$WORK/sel1_$N.h5"); s2=$(wall "$WORK/sel2_$N.h5")
    echo "select at 2 threads: speedup $(ratio "$s1" "$s2"), efficiency $(eff "$s1" "$s2")"
    if [ "$N" = 2048 ]; then
        l1=$(wall "$WORK/lap1_$N.h5"); l2=$(wall "$WORK/lap2_$N.h5")
        echo "dgesdd at 2 threads: speedup $(ratio "$l1" "$l2"), efficiency $(eff "$l1" "$l2")"
        echo "rates file lines (AILORA_SVD_RATES / --rates; the range is [0.5, 1]):"
        awk -v a="$l1" -v b="$l2" -v c="$s1" -v d="$s2" 'function c01(x) { return x < 0.5 ? 0.5 : x > 1 ? 1 : x }
            BEGIN { printf "gesdd_eff2  %.3f\nselect_eff2 %.3f\n", c01(a / (2 * b)), c01(c / (2 * d)) }'
    fi
    rm -f "$WORK"/*_"$N".h5
done
echo
echo "seconds: the matrix's own wall_time_s (its SVD and writes; the baseline: dgesdd alone);"
echo "ratio: seconds / the dgesdd baseline of this run. Efficiency: t(1) / (2 t(2)); the"
echo "select 1 x 1 run is bound to one core, the 2-thread runs to two (mpirun --map-by slot:PE=2)."
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "${BENCH_WORK:-}" ] || rm -rf "$WORK"
