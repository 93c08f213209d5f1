#!/usr/bin/env bash
# svd_dist_bench.sh BUILD_DIR - the distributed selected-vector route (backend
# pdgebrd, keep 64) on one 4096 x 4096 matrix at 2 ranks, against plain sequential
# single-core LAPACK dgesdd of the same matrix (bench_dgesdd, no MPI, no I/O), in
# the same run; with `ailora svd --plan`'s prediction of each run.
#
# These machines are shared: besides wall time, every run's CPU time (user + sys,
# all ranks, from /usr/bin/time) is recorded; CPU time / ranks is the time the run
# would take with a core of its own per rank (MPI waits spin, so they count).
# Results: stdout and experiments/bench/results/svd_dist_<date>.txt.
#   SIZES="4096" NPS="2" KEEP=64 experiments/bench/svd_dist_bench.sh .
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
AILORA="$B/ailora"; DGESDD="$B/experiments/bench/bench_dgesdd"; H5COMPARE="$B/tests/h5compare"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
WORK=${BENCH_WORK:-$(mktemp -d /tmp/ailora-bench-XXXXXX)}
mkdir -p "$WORK" "$B/experiments/bench/results"
OUT="$B/experiments/bench/results/svd_dist_$(date +%Y%m%d_%H%M%S).txt"
exec > >(tee "$OUT") 2>&1
KEEP=${KEEP:-64}
echo "# ailora distributed selected-vector SVD benchmark $(date -u +%FT%TZ), $(getconf _NPROCESSORS_ONLN) cores:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); load $(cut -d' ' -f1-3 /proc/loadavg)"
timed() {  # timed FILE CMD...: runs CMD, writes "wall user sys" to FILE
    local f=$1; shift
    /usr/bin/time -f "%e %U %S" -o "$f" "$@"
}
for n in ${SIZES:-4096}; do
    M="$WORK/m$n"
    [ -d "$M" ] || "$AILORA" synth --out "$M" --hidden "$n" --heads 32 --kv-heads 1 --layers 1 \
        --intermediate 64 --vocab 64 --decades 6 --seed 2 --structured q_proj > /dev/null
    echo
    echo "## one $n x $n matrix (q_proj), keep $KEEP"
    timed "$WORK/t_base" "$DGESDD" "$M" q_proj > "$WORK/base.out"
    read -r bw bu bs < "$WORK/t_base"
    base=$(awk '{print $5}' < <(tail -1 "$WORK/base.out"))  # seconds inside dgesdd
    bcpu=$(awk -v u="$bu" -v s="$bs" 'BEGIN{print u + s}')
    printf "%-28s %3s %9s %9s %9s %9s %9s\n" run np wall_s cpu_s own_core_s ratio_wall ratio_cpu
    printf "%-28s %3s %9.2f %9.2f %9.2f %9s %9s  (dgesdd alone: %.2f s wall)\n" "dgesdd (baseline)" 1 "$bw" "$bcpu" "$bcpu" 1 1 "$base"
    for np in ${NPS:-2}; do
        for backend in ${BACKENDS:-pdgebrd}; do
            out="$WORK/${backend}_${n}_np$np.h5"
            "$AILORA" svd --model "$M" --targets q_proj --backend "$backend" --keep "$KEEP" --plan --ranks "$np" \
                > "$WORK/plan.out"
            pred=$(awk '/^total: predicted/ {print $3}' "$WORK/plan.out")
            timed "$WORK/t_run" mpirun -np "$np" --bind-to none "$AILORA" svd --model "$M" --targets q_proj \
                --backend "$backend" --keep "$KEEP" --out "$out" > "$WORK/run.out"
            read -r w u s < "$WORK/t_run"
            inner=$("$H5COMPARE" --attr "$out" / wall_time_s)
            own=$(awk -v u="$u" -v s="$s" -v np="$np" 'BEGIN{print (u + s) / np}')
            printf "%-28s %3s %9.2f %9.2f %9.2f %9.3f %9.3f  (ailora wall_time_s %.2f; --plan predicted %s s)\n" \
                "ailora $backend keep $KEEP" "$np" "$w" "$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')" "$own" \
                "$(awk -v a="$w" -v b="$bw" 'BEGIN{print a/b}')" "$(awk -v a="$own" -v b="$bcpu" 'BEGIN{print a/b}')" \
                "$inner" "$pred"
            grep -E "^  svd " "$WORK/run.out" || true
        done
    done
done
echo
echo "wall_s: elapsed; cpu_s: user + sys of all ranks; own_core_s: cpu_s / ranks (a core per rank);"
echo "ratio_*: against the dgesdd baseline of the same run (bar: <= 0.50)."
[ -n "${BENCH_WORK:-}" ] || rm -rf "$WORK"
