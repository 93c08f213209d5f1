#!/usr/bin/env bash
# default.sh [BUILD_DIR] - the embedded default: everything made here, nothing downloaded.
#
#  1. procedural data (experiments/tasks/make_tasks.py): a pretraining corpus and
#     three tasks (add: exact match, majority: accuracy, lookup: in-context retrieval)
#  2. a tiny LLaMA (0.75M parameters, GQA) pretrained by ailora itself
#     (train_base=true) on the corpus, saved as an HF model directory
#  3. its SVD cache (ailora svd on the local ranks)
#  4. the default ablation: LoRA, PiSSA, MiLoRA, AILoRA, auto x 2 seeds on the majority
#     task (slurm/sweep.py local), summary table and learning-curve figure
#  5. pretrained versus random base: the same fine-tuning on all three tasks
#  6. the ablation's HTML report (experiments/default/report.html)
# Steps 1-3 are cached in experiments/default/ and rebuilt only when missing.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$SRC}" && pwd)
AILORA="$B/ailora"
D="$SRC/experiments/default"
PY=/usr/bin/python3
NP=${NP:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
MPIRUN=(mpirun -np "$NP" --oversubscribe --bind-to none)
mkdir -p "$D"

[ -f "$D/data/majority_val.h5" ] || $PY "$SRC/experiments/tasks/make_tasks.py" "$D/data"  # deterministic
if [ ! -f "$D/base/config.json" ]; then
    [ -f "$D/random/config.json" ] || "$AILORA" synth --out "$D/random" --hidden 128 --intermediate 352 \
        --layers 4 --heads 4 --kv-heads 2 --vocab 64 --structured none --seed 2026
    rm -rf "$D/base.partial" "$D/pretrain.h5"*
    echo "== pretraining the base model (about 2 minutes on 2 cores) =="
    "${MPIRUN[@]}" "$AILORA" train model="$D/random" train_data="$D/data/pretrain.h5" out="$D/pretrain.h5" \
        train_base=true out_model="$D/base" steps=600 batch_size=32 lr=3e-3 schedule=cosine \
        warmup_steps=30 log_every=100
fi
[ -f "$D/svd.h5" ] || "${MPIRUN[@]}" "$AILORA" svd --model "$D/base" --out "$D/svd.h5" --quiet

echo "== default ablation: majority task, 5 inits x 2 seeds =="
$PY "$SRC/slurm/sweep.py" local "$SRC/experiments/sweeps/default_ablation.ini" --ailora "$AILORA" -j 1
PYTHONPATH="$SRC/analysis" $PY -m ailora_analysis "$D/sweeps/default_ablation" --metric exact_match \
    --higher-is-better --out "$D/figures"
PYTHONPATH="$SRC/analysis" $PY -m ailora_analysis "$D/sweeps/default_ablation" --metric eval_loss

echo "== pretrained versus random base (LoRA r=8, 200 steps) =="
$PY "$SRC/slurm/sweep.py" local "$SRC/experiments/sweeps/base_vs_random.ini" --ailora "$AILORA" -j 1
PYTHONPATH="$SRC/analysis" $PY -m ailora_analysis "$D/sweeps/base_vs_random" --by task,model \
    --metric eval_loss
echo "figures: $D/figures/learning_curves.png, $D/figures/spectra_layer0.png"
# one HTML file: tables with intervals and paired comparisons, curves, spectra, provenance
PYTHONPATH="$SRC/analysis" $PY -m ailora_analysis.report "$D/sweeps/default_ablation" --out "$D/report.html"
