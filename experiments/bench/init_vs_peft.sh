#!/usr/bin/env bash
# init_vs_peft.sh BUILD_DIR MODEL_DIR [PYTHON] - issue 11's bar on a real model:
# `ailora init --method pissa` computing its own SVDs (float64, keep r: the selected-
# vector route), whole process on 2 ranks, against PEFT's PiSSA init (float32
# torch.linalg.svd inside get_peft_model, 2 threads; model loading not counted), on
# the same 2 cores, for q_proj,v_proj and for all seven module types. Median of
# REPS (default 3) fresh processes each. MODEL_DIR: an HF directory, e.g.
# experiments/smollm2/model from experiments/smollm2_study.sh (SmolLM2-135M).
# PYTHON: a venv with torch, transformers, peft (default /work/venv-ref/bin/python).
# Results: stdout and BUILD_DIR/experiments/bench/results/init_vs_peft_<date>.txt.
set -euo pipefail
B=$(cd "${1:?BUILD_DIR}" && pwd)
MODEL=$(cd "${2:?MODEL_DIR}" && pwd)
PY=${3:-/work/venv-ref/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
AILORA="$B/ailora"
REPS=${REPS:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
WORK=${BENCH_WORK:-$(mktemp -d /tmp/ailora-bench-XXXXXX)}
mkdir -p "$WORK" "$B/experiments/bench/results"
OUT="$B/experiments/bench/results/init_vs_peft_$(date +%Y%m%d_%H%M%S).txt"
exec > >(tee "$OUT") 2>&1
echo "# ailora init (pissa, SVDs included) vs PEFT get_peft_model(init_lora_weights=\"pissa\") $(date -u +%FT%TZ)"
echo "# $(getconf _NPROCESSORS_ONLN) cores:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); load $(cut -d' ' -f1-3 /proc/loadavg); model $MODEL"
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# the fixed cost of a launch: the same command on a 64 x 64 model (mpirun, MPI_Init, HDF5)
"$AILORA" synth --out "$WORK/tiny" --hidden 64 --heads 4 --kv-heads 4 --layers 1 --intermediate 64 --vocab 64 > /dev/null
: > "$WORK/launch"
for rep in $(seq "$REPS"); do
    /usr/bin/time -f "%e" -o "$WORK/t" mpirun -np 2 --bind-to core "$AILORA" init --model "$WORK/tiny" --method pissa \
        --rank 8 --out "$WORK/tiny.h5" --quiet
    cat "$WORK/t" >> "$WORK/launch"; rm -f "$WORK/tiny.h5"
done
launch=$(median < "$WORK/launch")
echo "# launch cost (mpirun -np 2 ailora init of a 64 x 64 model): median $launch s"
printf "%-12s %-30s %9s %9s %9s\n" targets run median_s min_s ratio
for targets in q_proj,v_proj q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj; do
    : > "$WORK/peft"; : > "$WORK/ail"; : > "$WORK/peftall"
    for rep in $(seq "$REPS"); do
        OMP_NUM_THREADS=2 /usr/bin/time -f "%e" -o "$WORK/tp" "$PY" "$HERE/peft_pissa_time.py" "$MODEL" "$targets" 2 8 \
            > "$WORK/peft.out" 2> "$WORK/peft.err" || { cat "$WORK/peft.err" >&2; exit 1; }
        awk '{print $3}' "$WORK/peft.out" >> "$WORK/peft"
        cat "$WORK/tp" >> "$WORK/peftall"
        /usr/bin/time -f "%e" -o "$WORK/t" mpirun -np 2 --bind-to core "$AILORA" init --model "$MODEL" \
            --method pissa --rank 8 --targets "$targets" --out "$WORK/init.h5" --quiet
        cat "$WORK/t" >> "$WORK/ail"
        rm -f "$WORK/init.h5"
    done
    pm=$(median < "$WORK/peft"); am=$(median < "$WORK/ail"); pa=$(median < "$WORK/peftall")
    label=$([ "$targets" = q_proj,v_proj ] && echo "q,v" || echo "all 7")
    ratio() { awk -v a="$1" -v p="$pm" 'BEGIN{printf "%.3f", a / p}'; }
    printf "%-12s %-30s %9.2f %9.2f %9s\n" "$label" "PEFT get_peft_model (2 thr.)" "$pm" "$(sort -g "$WORK/peft" | head -1)" 1.000
    printf "%-12s %-30s %9.2f %9.2f %9s\n" "$label" "PEFT whole script" "$pa" "$(sort -g "$WORK/peftall" | head -1)" "$(ratio "$pa")"
    printf "%-12s %-30s %9.2f %9.2f %9s\n" "$label" "ailora init, 2 ranks, whole" "$am" "$(sort -g "$WORK/ail" | head -1)" "$(ratio "$am")"
    printf "%-12s %-30s %9.2f %9s %9s\n" "$label" "ailora init minus launch" "$(awk -v a="$am" -v l="$launch" 'BEGIN{print a - l}')" - \
        "$(ratio "$(awk -v a="$am" -v l="$launch" 'BEGIN{print a - l}')")"
    echo "#   $(cat "$WORK/peft.out")"
done
echo
echo "PEFT get_peft_model: the call alone (model loaded first, float32); PEFT whole script: python start,"
echo "imports, model load and the call. ailora whole: the process (mpirun, MPI start-up, reading,"
echo "fingerprints, SVDs, HDF5 writes), float64; minus launch: less the launch cost above."
echo "ratio: against PEFT get_peft_model of the same targets."
[ -n "${BENCH_WORK:-}" ] || rm -rf "$WORK"
