#!/usr/bin/env bash
# svd_vs_torch.sh BUILD_DIR [PYTHON] - time per matrix of PEFT's PiSSA init (one
# float32 torch.linalg.svd per matrix, 2 threads, torch_svd_time.py) side by side
# with ailora's routes on the same matrices, in one run:
#   lapack   dgesdd, float64, every vector, 1 rank
#   select   all of S, kept vectors only (keep 64), float64, 1 rank
#   pdgebrd  the distributed selected route, keep 64, float64, 2 ranks
# Matrices: SmolLM2-135M's 576 x 576 (q_proj) and 192 x 576 (v_proj), and square
# 1024, 2048 (and 4096 with SIZES="1024 2048 4096"). Shared machine: the table has
# wall time and CPU time per core (user + sys / threads or ranks); ailora's wall is
# its whole run (reading, fingerprints, HDF5 writes included).
# PYTHON defaults to /work/venv-ref/bin/python (torch + safetensors).
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
PY=${2:-/work/venv-ref/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
AILORA="$B/ailora"; H5COMPARE="$B/tests/h5compare"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
WORK=${BENCH_WORK:-$(mktemp -d /tmp/ailora-bench-XXXXXX)}
mkdir -p "$WORK" "$B/experiments/bench/results"
OUT="$B/experiments/bench/results/svd_vs_torch_$(date +%Y%m%d_%H%M%S).txt"
exec > >(tee "$OUT") 2>&1
echo "# torch.linalg.svd (fp32, PEFT PiSSA init) vs ailora $(date -u +%FT%TZ), $(getconf _NPROCESSORS_ONLN) cores:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); load $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" -c "import torch; print('# torch', torch.__version__)"
printf "%-10s %-11s %-22s %3s %9s %11s\n" matrix shape route np wall_s cpu_per_core
row() { printf "%-10s %-11s %-22s %3s %9.2f %11.2f\n" "$@"; }
bench() {  # bench MODEL TENSOR_SUFFIX LABEL
    local M=$1 t=$2 label=$3 line shape
    line=$(OMP_NUM_THREADS=2 "$PY" "$HERE/torch_svd_time.py" "$M" "model.layers.0.self_attn.$t.weight" 2)
    shape=$(echo "$line" | awk '{print $2 "x" $3}')
    row "$label" "$shape" "torch fp32 (2 threads)" 1 "$(echo "$line" | awk '{print $4}')" \
        "$(echo "$line" | awk '{print $5 / 2}')"
    for run in lapack:1:all select:1:64 pdgebrd:2:64; do
        IFS=: read -r backend np keep <<< "$run"
        out="$WORK/${label}_$backend.h5"
        /usr/bin/time -f "%e %U %S" -o "$WORK/t" mpirun -np "$np" --bind-to none "$AILORA" svd --model "$M" \
            --targets "$t" --backend "$backend" --keep "$keep" --out "$out" --quiet
        read -r w u s < "$WORK/t"
        row "$label" "$shape" "ailora $backend keep $keep" "$np" "$w" "$(awk -v u="$u" -v s="$s" -v n="$np" 'BEGIN{print (u+s)/n}')"
    done
}
S="$WORK/smol"
[ -d "$S" ] || "$AILORA" synth --out "$S" --hidden 576 --heads 9 --kv-heads 3 --layers 1 --intermediate 64 \
    --vocab 64 --decades 6 --seed 5 --structured q_proj,v_proj > /dev/null
bench "$S" q_proj smol_q
bench "$S" v_proj smol_v
for n in ${SIZES:-1024 2048}; do
    M="$WORK/sq$n"
    [ -d "$M" ] || "$AILORA" synth --out "$M" --hidden "$n" --heads 16 --kv-heads 16 --layers 1 \
        --intermediate 64 --vocab 64 --decades 6 --seed 2 --structured q_proj > /dev/null
    bench "$M" q_proj "sq$n"
done
echo "cpu_per_core: (user + sys) / threads (torch) or / ranks (ailora): the time with a core of its own."
[ -n "${BENCH_WORK:-}" ] || rm -rf "$WORK"
