#!/usr/bin/env bash
# parallel_bench.sh BUILD_DIR - tokens/s of LoRA fine-tuning under tensor and data
# parallelism on this machine's cores, each layout against baselines measured in
# the same run: the issue's ~30M LLaMA config (hidden 512, 8 layers, 8 heads, 4 KV
# heads, intermediate 1376, vocab 8192, sequence 256, batch 8, LoRA r = 16 on
# q_proj, v_proj), a synthetic model (ailora synth) and random tokens.
#   tp1 x1   one rank, one thread      tp1 xC   one rank, C threads (C = cores)
#   tp2      2 ranks x C/2 threads      dp2     2 ranks x C/2 threads
# Runs alternate REPEATS times (the machine is shared); medians are reported.
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
PYTHON=${PYTHON:-python3}
C=${CORES:-$(getconf _NPROCESSORS_ONLN)}
HALF=$(( C / 2 > 0 ? C / 2 : 1 ))
STEPS=${STEPS:-8}
REPEATS=${REPEATS:-3}
WORK=$(mktemp -d /tmp/ailora-parbench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$B/ailora" synth --out "$WORK/model" --hidden 512 --intermediate 1376 --layers 8 --heads 8 --kv-heads 4 \
    --vocab 8192 > /dev/null
"$PYTHON" - "$WORK/data.h5" <<'PY'
import sys, h5py, numpy as np
ids = np.random.default_rng(0).integers(0, 8192, size=(64, 256), dtype=np.int32)
with h5py.File(sys.argv[1], "w") as f:
    f["input_ids"] = ids
    f["labels"] = ids
PY
"$B/ailora" svd --model "$WORK/model" --out "$WORK/svd.h5" --quiet
COMMON="model=$WORK/model svd_cache=$WORK/svd.h5 train_data=$WORK/data.h5 method=ailora rank=16 batch_size=8"
COMMON="$COMMON steps=$((STEPS + 2)) lr=1e-4 log_every=1000"

# layout name, ranks, threads per rank, extra keys
run() {
    local name=$1 np=$2 threads=$3
    shift 3
    rm -f "$WORK/run.h5" "$WORK/run.h5.ckpt.h5"
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=$threads BLIS_NUM_THREADS=$threads mpirun -np "$np" --oversubscribe --bind-to none \
        -x OMP_NUM_THREADS -x BLIS_NUM_THREADS "$B/ailora" train $COMMON out="$WORK/run.h5" "$@" > "$WORK/$name.out"
    # median tokens/s of the timed steps (the first two are warm-up)
    "$PYTHON" -c "import h5py, numpy as np; t = h5py.File('$WORK/run.h5')['train/tokens_per_s'][2:]; print(f'{np.median(t):.1f}')"
}

echo "# parallel training benchmark $(date -u +%FT%TZ), $C core(s), $STEPS timed steps, $REPEATS repeats"
for rep in $(seq "$REPEATS"); do
    a=$(run tp1x1 1 1)
    b=$(run tp1xC 1 "$C")
    t=$(run tp2 2 "$HALF" tp=2)
    d=$(run dp2 2 "$HALF" dp=2)
    printf "run %d: tokens/s  tp1x1 %s  tp1x%d %s  tp2 %s  dp2 %s\n" "$rep" "$a" "$C" "$b" "$t" "$d" | tee -a "$WORK/runs.txt"
done
"$PYTHON" - "$WORK/runs.txt" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
col = lambda k: [float(r[k]) for r in rows]
a, b, t, d = col(4), col(6), col(8), col(10)
med = lambda xs: st.median(xs)
print(f"median tokens/s: 1 rank x 1 thread {med(a):.0f}, 1 rank x all cores {med(b):.0f}, tp=2 {med(t):.0f}, dp=2 {med(d):.0f}")
print(f"tp=2 / tp=1 (same cores) {med([x / y for x, y in zip(t, b)]):.2f}; "
      f"dp=2 / dp=1 (same cores) {med([x / y for x, y in zip(d, b)]):.2f}; "
      f"tp=2 / one thread {med([x / y for x, y in zip(t, a)]):.2f}; dp=2 / one thread {med([x / y for x, y in zip(d, a)]):.2f}")
PY
