# ailora import: the tiny GGUF LLaMA of tests/reference/make_gguf_fixtures.py becomes an
# HF directory that `ailora svd` and `ailora train` run on (tensor values, config and
# tokenizer files: tests/test_gguf.c); bad inputs are one error line, a non-zero exit
# and nothing left behind (no DIR, no DIR.partial), on 1 and 2 ranks, also when an
# allocation or read fails inside the import.
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
G="$top_srcdir/tests/reference/gguf"
R="$top_srcdir/tests/reference"
M="$WORK/tiny"

check "$AILORA" import "$G/tiny.gguf" --out "$M" --quiet
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
    CHECKS=$((CHECKS + 1))
    [ -s "$M/$f" ] || fail "import wrote no $f"
done
CHECKS=$((CHECKS + 1))
[ -e "$M.partial" ] && fail "import left $M.partial"
# the same via --gguf on 2 ranks (rank 0 writes), BF16 by default: identical files
check run_np 2 "$AILORA" import --gguf "$G/tiny.gguf" --out "$WORK/tiny2" --quiet
check cmp "$M/model.safetensors" "$WORK/tiny2/model.safetensors"
check cmp "$M/tokenizer.json" "$WORK/tiny2/tokenizer.json"
check "$AILORA" import "$G/tiny_tied.gguf" --out "$WORK/tied" --dtype F32 --quiet
CHECKS=$((CHECKS + 1))
grep -q '"tie_word_embeddings":[[:space:]]*true' "$WORK/tied/config.json" || fail "tied import: tie_word_embeddings not true"

# the imported models run: SVD cache, and a few training steps from it (BF16 and tied F32)
check "$AILORA" svd --model "$M" --out "$WORK/svd.h5" --backend lapack --quiet
check "$AILORA" train model="$M" svd_cache="$WORK/svd.h5" train_data="$R/train_data.h5" out="$WORK/run.h5" \
    method=ailora rank=2 steps=3 batch_size=4 log_every=1
check "$AILORA" train model="$WORK/tied" train_data="$R/train_data.h5" out="$WORK/run_tied.h5" \
    method=pissa rank=2 steps=2 batch_size=4 log_every=1
$PY - "$WORK/run.h5" > "$WORK/loss.txt" <<'PYEOF' || fail "run file: $(cat "$WORK/loss.txt")"
import sys, h5py, numpy as np
loss = h5py.File(sys.argv[1])["train/loss"][()]
assert loss.shape == (3,) and np.isfinite(loss).all() and 0 < loss[0] < 20, loss
print(loss)
PYEOF
CHECKS=$((CHECKS + 1))

# ---- bad inputs --------------------------------------------------------------------
# patch(NAME, PYTHON): a copy of tiny.gguf changed by PYTHON (bytes in b)
patch() {
    $PY - "$G/tiny.gguf" "$WORK/$1.gguf" "$2" <<'PYEOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
exec(sys.argv[3])
open(sys.argv[2], "wb").write(b)
PYEOF
}
patch badmagic 'b[0:4] = b"GGUX"'
patch version 'b[4] = 1'
patch trunc 'del b[200:]'
patch eof 'del b[-1:]'
patch nokey 'i = b.find(b"llama.block_count"); b[i + 6] = ord("X")'
patch arch 'i = b.find(b"general.architecture") + 20 + 4 + 8; b[i:i + 5] = b"mamba"'
# output_norm.weight: F32 -> Q5_0 (fewer bytes, so the extent is still inside the file)
patch qtype 'i = b.find(b"output_norm.weight") + 18 + 4 + 8; assert b[i] == 0; b[i] = 6'
# blk.1.ffn_down.weight's offset far past the end
patch extent 'import struct; i = b.find(b"blk.1.ffn_down.weight") + 21 + 4 + 16 + 4; b[i:i + 8] = struct.pack("<Q", 1 << 30)'
O="$WORK/out"
while read -r name want; do
    expect_error "$want" "$O" "$AILORA" import "$WORK/$name.gguf" --out "$O"
done <<'EOF'
badmagic not a GGUF file (bad magic 0x58554747)
version GGUF version 1 is not supported (2 or 3)
trunc truncated:
eof tensor output.weight (17472 bytes at data offset
nokey missing metadata key llama.block_count
arch architecture "mamba" is not supported (only llama)
qtype tensor output_norm.weight has type Q5_0: only F32, F16, BF16, Q8_0, Q4_0 and Q4_1 are supported
extent tensor blk.1.ffn_down.weight (4096 bytes at data offset 1073741824) extends past the end of the file
EOF
expect_error "cannot open $WORK/none.gguf" "$O" "$AILORA" import "$WORK/none.gguf" --out "$O"
expect_error "missing required option --out" "$O" "$AILORA" import "$G/tiny.gguf"
expect_error "--dtype must be BF16, F16 or F32, got \"F64\"" "$O" "$AILORA" import "$G/tiny.gguf" --out "$O" --dtype F64
# an existing output is refused and left as it was
mkdir "$O" && echo keep > "$O/file"
expect_error "$O exists: refusing to overwrite it" "" "$AILORA" import "$G/tiny.gguf" --out "$O"
CHECKS=$((CHECKS + 1))
[ "$(cat "$O/file")" = keep ] && [ ! -e "$O.partial" ] || fail "the existing output was changed"
rm -rf "$O"
# an allocation or read failing at a sample of the import's fault points (AILORA_FAULT,
# error.h; SentencePiece vocabulary, so merge generation is among them): one line, exit 1,
# no DIR and no DIR.partial
total=$(AILORA_FAULT=count "$AILORA" import "$G/tiny_sp.gguf" --out "$WORK/count" --quiet 2>&1 | sed -n 's/.*rank 0: //p')
rm -rf "$WORK/count"
CHECKS=$((CHECKS + 1))
[ "${total:-0}" -gt 100 ] || fail "AILORA_FAULT=count reported ${total:-nothing} fault points"
for n in $(seq 1 23 "${total:-1}"); do
    expect_error "" "$O" env AILORA_FAULT="$n:0" "$AILORA" import "$G/tiny_sp.gguf" --out "$O" --quiet
done > "$WORK/faults.log"
grep -v '^ok:' "$WORK/faults.log" || true
# 2 ranks: one line, every rank leaves
expect_error "missing metadata key llama.block_count" "$O" run_np 2 "$AILORA" import "$WORK/nokey.gguf" --out "$O"
finish
