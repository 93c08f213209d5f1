#!/usr/bin/env bash
# train_bench.sh BUILD_DIR [THREADS] - tokens/s and peak memory of one LoRA
# fine-tuning step, ailora versus PyTorch + PEFT on the same ~30M LLaMA config,
# the same data, the same number of threads, in the same run. Needs a python3
# with torch, transformers, peft, h5py (PYTHON=...). Peak memory is the maximum
# resident set size of the whole process (/usr/bin/time), so PyTorch's includes
# its libraries' footprint, as a user would see it.
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
THREADS=${2:-$(getconf _NPROCESSORS_ONLN)}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${BENCH_WORK:-$(mktemp -d /tmp/ailora-trainbench-XXXXXX)}
STEPS=${STEPS:-10}
export OMP_NUM_THREADS=$THREADS BLIS_NUM_THREADS=$THREADS OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$WORK"
rm -f "$WORK/runs.txt"
[ -f "$WORK/data.h5" ] || "$PYTHON" "$HERE/torch_lora_step.py" setup "$WORK"
echo "# training benchmark $(date -u +%FT%TZ), $THREADS thread(s), $STEPS timed steps"

REPEATS=${REPEATS:-3}
# alternate the two REPEATS times: the machine is shared, so each pair is compared
# within the same stretch of time and the median ratio is reported
for rep in $(seq "$REPEATS"); do
    /usr/bin/time -f "%M" -o "$WORK/torch.mem" "$PYTHON" "$HERE/torch_lora_step.py" run "$WORK" "$STEPS" > "$WORK/torch.out"
    torch_tps=$(awk '/pytorch tokens/ {print $3}' "$WORK/torch.out")
    rm -f "$WORK/run.h5" "$WORK/run.h5.ckpt.h5"
    /usr/bin/time -f "%M" -o "$WORK/ailora.mem" "$B/ailora" train model="$WORK/model" train_data="$WORK/data.h5" \
        out="$WORK/run.h5" method=lora rank=16 steps=$((STEPS + 2)) batch_size=8 lr=1e-4 log_every=1000 > "$WORK/ailora.out"
    # median tokens/s of the timed steps (the first two are warm-up, as for PyTorch)
    ailora_tps=$("$PYTHON" -c "import h5py, numpy as np; t = h5py.File('$WORK/run.h5')['train/tokens_per_s'][2:]; print(f'{np.median(t):.1f}')")
    tm=$(cat "$WORK/torch.mem"); am=$(cat "$WORK/ailora.mem")
    printf "run %d: tokens/s ailora %s, pytorch %s, ratio %.2f | peak RSS ailora %.0f MiB, pytorch %.0f MiB, ratio %.2f\n" \
        "$rep" "$ailora_tps" "$torch_tps" "$(awk -v a="$ailora_tps" -v t="$torch_tps" 'BEGIN{print a/t}')" \
        "$(awk -v m="$am" 'BEGIN{print m/1024}')" "$(awk -v m="$tm" 'BEGIN{print m/1024}')" \
        "$(awk -v a="$am" -v t="$tm" 'BEGIN{print a/t}')" | tee -a "$WORK/runs.txt"
done
awk '{split($0, a, "ratio "); split(a[2], b, " "); split(a[3], c, " "); print b[1], c[1]}' "$WORK/runs.txt" | sort -n |
    awk '{r[NR] = $1; m[NR] = $2} END {printf "median tokens/s ratio ailora/pytorch %.2f (bar >= 2); peak memory ratio %.2f (bar <= 1)\n", r[int((NR + 1) / 2)], m[int((NR + 1) / 2)]}'
[ -n "${BENCH_WORK:-}" ] || rm -rf "$WORK"
