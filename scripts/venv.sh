#!/usr/bin/env bash
# venv.sh - the project-local Python environment .venv (called by install-deps.sh).
# /usr/bin/python3 with its Debian packages (numpy, pandas, h5py, jinja2) plus what
# only PyPI has, pinned: tokenizers (the model's own tokenizer, for
# experiments/data/prepare.py) and pyarrow (Parquet input). Installed with --no-deps:
# tokenizers needs huggingface_hub only to download from the Hub, which prepare.py never
# does, and pyarrow's only dependency, numpy, comes from Debian.
# Idempotent: returns at once when .venv already has these versions.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${AILORA_VENV:-.venv}
pins=(tokenizers==0.21.1 pyarrow==17.0.0)
check='import tokenizers, pyarrow, numpy, pandas, h5py, jinja2
assert tokenizers.__version__ == "0.21.1" and pyarrow.__version__ == "17.0.0"'
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2> /dev/null; then
    echo "venv: $venv ready (${pins[*]})"
    exit 0
fi
/usr/bin/python3 -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "${pins[@]}"
"$venv/bin/python" -c "$check"
echo "venv: $venv created (${pins[*]})"
