#!/usr/bin/env bash
# gen_bench.sh BUILD_DIR [THREADS] - greedy generation tokens/s, in one run, on one
# model, batch and thread count:
#   ailora KV cache   llama_generate_greedy (llama_decode.h): batched, left-padded
#   ailora no cache   eval_generate_greedy, the path evaluation used before: one
#                     forward over the whole sequence per new token, one row at a time
#   HF generate       transformers' greedy generate (KV cache, same batch and padding)
# The model: MODEL_DIR if given (e.g. a real SmolLM2-135M directory), else a synthetic
# model of SmolLM2-135M's shape (ailora synth: hidden 576, intermediate 1536, 30
# layers, 9 heads, 3 KV heads, vocabulary 49152, tied embeddings; random weights).
# Prompts: B (default 8) random prompts of 16..P tokens (P default 64), left-padded;
# NEW (default 32) new tokens per row, no EOS. The no-cache path decodes NOCACHE_ROWS
# (default 2) rows only: it is that slow; tokens/s compares per generated token.
# HF needs torch + transformers: PYTHON (default /work/venv-ref/bin/python when it
# exists) -- torch is never part of ailora's install; without it that line is skipped.
# Not a test: numbers depend on the machine (and its load: the ratios are what counts).
set -euo pipefail
B_DIR=$(cd "${1:-.}" && pwd)
THREADS=${2:-$(getconf _NPROCESSORS_ONLN)}
HERE=$(cd "$(dirname "$0")" && pwd)
ROWS=${ROWS:-8}
P=${P:-64}
NEW=${NEW:-32}
NOCACHE_ROWS=${NOCACHE_ROWS:-2}
if [ -z "${PYTHON:-}" ]; then
    if [ -x /work/venv-ref/bin/python ]; then PYTHON=/work/venv-ref/bin/python; else PYTHON=python3; fi
fi
WORK=$(mktemp -d /tmp/ailora-genbench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export OMP_NUM_THREADS=$THREADS BLIS_NUM_THREADS=$THREADS OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x "$B_DIR/experiments/bench/gen_bench" ] || make -C "$B_DIR" experiments/bench/gen_bench > /dev/null
MODEL=${MODEL_DIR:-$WORK/model}
if [ -z "${MODEL_DIR:-}" ]; then
    "$B_DIR/ailora" synth --out "$MODEL" --hidden 576 --intermediate 1536 --layers 30 --heads 9 --kv-heads 3 \
        --vocab 49152 --tie > /dev/null
    echo "model: synthetic, SmolLM2-135M's shape (random weights)"
else
    echo "model: $MODEL"
fi
V=$(sed -n 's/.*"vocab_size":[[:space:]]*\([0-9]*\).*/\1/p' "$MODEL/config.json")
awk -v b="$ROWS" -v p="$P" -v v="$V" 'BEGIN { srand(7); print b, p
    for (i = 0; i < b; i++) { n = 16 + int(rand() * (p - 15)); if (n > p) n = p; line = ""
        for (s = 0; s < p; s++) line = line (s ? " " : "") (s < p - n ? -1 : int(rand() * v))
        print line } }' > "$WORK/prompts.txt"
echo "# generation benchmark $(date -u +%FT%TZ): $ROWS rows, prompts 16..$P tokens (left-padded), $NEW new tokens, $THREADS thread(s)"
"$B_DIR/experiments/bench/gen_bench" "$MODEL" "$WORK/prompts.txt" "$NEW" "$NOCACHE_ROWS" | tee "$WORK/ailora.out"
if "$PYTHON" -c "import torch, transformers" 2> /dev/null; then
    echo "HF: $PYTHON ($("$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
    "$PYTHON" "$HERE/gen_bench_hf.py" "$MODEL" "$WORK/prompts.txt" "$NEW" "$THREADS" | tee "$WORK/hf.out"
    kv=$(awk '/kv-cache:/ {print $(NF-1)}' "$WORK/ailora.out")
    nc=$(awk '/no-cache:/ {print $(NF-1)}' "$WORK/ailora.out")
    hf=$(awk '/hf generate:/ {print $(NF-1)}' "$WORK/hf.out")
    awk -v k="$kv" -v n="$nc" -v h="$hf" 'BEGIN { printf "ratios: kv-cache / no-cache %.1f, kv-cache / HF generate %.2f, no-cache / HF %.3f\n", k / n, k / h, n / h }'
else
    echo "HF generate skipped: $PYTHON has no torch/transformers (set PYTHON=...)"
fi
