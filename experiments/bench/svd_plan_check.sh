#!/usr/bin/env bash
# svd_plan_check.sh BUILD_DIR [RATES] - `ailora svd --plan`'s predictions against
# measured runs of the same command at 1, 2 and 4 ranks: one SIZE x SIZE matrix
# (default 2048) with the distributed selected route, keep 64 and keep all.
# Measured: wall time, and CPU time per rank (user + sys of all ranks / ranks: the
# time with a core per rank, on a shared or oversubscribed machine). Error =
# predicted / measured - 1. Results: stdout and experiments/bench/results/.
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
RATES=${2:-}
N=${SIZE:-2048}
AILORA="$B/ailora"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
WORK=${BENCH_WORK:-$(mktemp -d /tmp/ailora-bench-XXXXXX)}
mkdir -p "$WORK" "$B/experiments/bench/results"
OUT="$B/experiments/bench/results/svd_plan_check_$(date +%Y%m%d_%H%M%S).txt"
exec > >(tee "$OUT") 2>&1
echo "# --plan vs measured, $N x $N, $(date -u +%FT%TZ), $(getconf _NPROCESSORS_ONLN) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
M="$WORK/m$N"
[ -d "$M" ] || "$AILORA" synth --out "$M" --hidden "$N" --heads 16 --kv-heads 16 --layers 1 \
    --intermediate 64 --vocab 64 --decades 6 --seed 2 --structured q_proj > /dev/null
rates=()
[ -n "$RATES" ] && rates=(--rates "$RATES")
printf "%-5s %3s %11s %9s %12s %11s %11s\n" keep np predicted_s wall_s cpu_per_rank err_wall err_cpu
for keep in 64 all; do
    for np in ${NPS:-1 2 4}; do
        pred=$("$AILORA" svd --model "$M" --targets q_proj --backend pdgebrd --keep "$keep" --plan --ranks "$np" \
            "${rates[@]}" | awk '/^total: predicted/ {print $3}')
        /usr/bin/time -f "%e %U %S" -o "$WORK/t" mpirun -np "$np" --oversubscribe --bind-to none "$AILORA" svd \
            --model "$M" --targets q_proj --backend pdgebrd --keep "$keep" --out "$WORK/o.h5" --quiet
        read -r w u s < "$WORK/t"
        awk -v k="$keep" -v np="$np" -v p="$pred" -v w="$w" -v c="$(awk -v u="$u" -v s="$s" -v n="$np" 'BEGIN{print (u+s)/n}')" \
            'BEGIN { printf "%-5s %3s %11.2f %9.2f %12.2f %10.0f%% %10.0f%%\n", k, np, p, w, c, 100 * (p / w - 1), 100 * (p / c - 1) }'
        rm -f "$WORK/o.h5"
    done
done
[ -n "${BENCH_WORK:-}" ] || rm -rf "$WORK"
