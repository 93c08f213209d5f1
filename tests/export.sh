# `ailora export` (include/ailora/export.h):
#  - PEFT reference (tests/reference/make_export_fixtures.py): a run file holding PEFT's
#    PiSSA init and set "trained" adapters of tiny_llama, exported, equals PEFT's own
#    outputs: the trained adapter and PEFT's PiSSA-to-LoRA conversion exactly (names,
#    float32 values, adapter_config keys incl. r and lora_alpha doubled), the residual
#    and merged weights within 2e-7 of PEFT's float32 arithmetic and within half a
#    float32 ulp of the float64 formulas; float64 algebra: merged = original +
#    s (BA - B0A0) up to two roundings, s' B'A' = s (BA - B0A0) to 1e-14
#  - end to end: `ailora train` (pissa, 4 steps) then export, checked against the run
#    file in float64 (tests/export_check.py run); 2 and 4 ranks write the same bytes as 1
#  - a BF16 model trained with residual_dtype = fp32: residual/ is F32 (the residual
#    the run held, exactly), merged/ BF16 (one rounding); --dtype fp32; method lora:
#    residual = the original weights, lora_for_original = the trained adapter
#  - bad inputs, one error line and nothing left behind: missing run file, a run
#    without trained adapters (no /adapters; steps_done = 0), the model directory
#    moved (then --model finds it) or changed (fingerprint), an existing DIR, and
#    --overwrite of a directory that is not an export; --overwrite of an export works;
#    injected faults (allocations, reads) at every 7th fault point, and on rank 1 of 2
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
CHK="$top_srcdir/tests/export_check.py"
R="$top_srcdir/tests/reference"
$PY -c "import h5py, numpy" 2> /dev/null || { echo "SKIP: $PY lacks h5py / numpy"; exit 77; }
fingerprint() { $PY -c "import h5py, sys; print(h5py.File(sys.argv[1], 'r').attrs['$2'].decode())" "$1"; }

# ---- against PEFT -----------------------------------------------------------------------
M="$WORK/tiny"
cp -r "$R/tiny_llama" "$M"
check "$AILORA" svd --model "$M" --out "$WORK/tiny_svd.h5" --quiet
check $PY "$CHK" make-run "$R/export_fixtures.safetensors" "$M" "$(fingerprint "$WORK/tiny_svd.h5" model_fingerprint)" \
    "$WORK/peft_run.h5"
check "$AILORA" export "$WORK/peft_run.h5" --out "$WORK/peft_out"
check $PY "$CHK" fixture "$R/export_fixtures.safetensors" "$WORK/peft_out" "$M"
cat "$WORK/last.out"

# ---- end to end: train, export, compare with the run file --------------------------------
T="$WORK/train_llama"
cp -r "$R/train_llama" "$T"
printf '{"bos_token": "<s>"}\n' > "$T/special_tokens_map.json"  # copied along with generation_config.json
TRAIN="train_data=$R/train_data.h5 rank=4 alpha=8 steps=4 batch_size=4 lr=1e-2 log_every=4"
# shellcheck disable=SC2086
check "$AILORA" train model="$T" method=pissa $TRAIN out="$WORK/run.h5"
check "$AILORA" export "$WORK/run.h5" --out "$WORK/e1" --quiet
check $PY "$CHK" run "$WORK/run.h5" "$WORK/e1" "$T"
cat "$WORK/last.out"
# 2 and 4 ranks (the fingerprint shared, rank 0 writes): the same bytes, paths included
mv "$WORK/e1" "$WORK/e1_np1"
check run_np 2 "$AILORA" export "$WORK/run.h5" --out "$WORK/e1" --quiet
check diff -r "$WORK/e1_np1" "$WORK/e1"
rm -rf "$WORK/e1"
check run_np 4 "$AILORA" export "$WORK/run.h5" --out "$WORK/e1" --quiet
check diff -r "$WORK/e1_np1" "$WORK/e1"

# a BF16 model, residual held in fp32; then --dtype fp32; then method lora
B="$WORK/bf16"
check "$AILORA" synth --out "$B" --hidden 64 --heads 4 --kv-heads 2 --layers 2 --vocab 128 --dtype BF16
# shellcheck disable=SC2086
check "$AILORA" train model="$B" method=milora residual_dtype=fp32 $TRAIN out="$WORK/bf.h5"
check "$AILORA" export "$WORK/bf.h5" --out "$WORK/bf_out"
check $PY "$CHK" run "$WORK/bf.h5" "$WORK/bf_out" "$B"
cat "$WORK/last.out"
CHECKS=$((CHECKS + 1))
grep -q '"residual_model_dtype":.*"F32"' "$WORK/bf_out/export.json" &&
    grep -q '"merged_model_dtype":.*"BF16"' "$WORK/bf_out/export.json" || fail "bf16 export dtypes: $(cat "$WORK/bf_out/export.json")"
check "$AILORA" export "$WORK/bf.h5" --out "$WORK/bf_f32/" --dtype fp32   # DIR/ is DIR
check $PY "$CHK" run "$WORK/bf.h5" "$WORK/bf_f32" "$B"
# shellcheck disable=SC2086
check "$AILORA" train model="$B" method=lora $TRAIN out="$WORK/lora.h5"
check "$AILORA" export "$WORK/lora.h5" --out "$WORK/lora_out"
check $PY "$CHK" run "$WORK/lora.h5" "$WORK/lora_out" "$B"
check cmp "$WORK/lora_out/adapter/adapter_model.safetensors" "$WORK/lora_out/lora_for_original/adapter_model.safetensors"
check cmp "$WORK/lora_out/residual/model.safetensors" "$B/model.safetensors"

# ---- bad inputs ---------------------------------------------------------------------------
O="$WORK/bad"
expect_error "run file $WORK/none.h5 does not exist" "$O" "$AILORA" export "$WORK/none.h5" --out "$O"
cp "$WORK/run.h5" "$WORK/noad.h5"
$PY -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); del f['/adapters']" "$WORK/noad.h5"
expect_error "has no trained adapters (no /adapters" "$O" "$AILORA" export "$WORK/noad.h5" --out "$O"
cp "$WORK/run.h5" "$WORK/step0.h5"
$PY -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); f.attrs['steps_done'] = 0" "$WORK/step0.h5"
expect_error "has no trained adapters (steps_done = 0)" "$O" "$AILORA" export "$WORK/step0.h5" --out "$O"
expect_error "is not an ailora run file" "$O" "$AILORA" export --run "$WORK/tiny_svd.h5" --out "$O"
mv "$T" "$WORK/moved"
expect_error "model directory $T of $WORK/run.h5 is missing" "$O" "$AILORA" export "$WORK/run.h5" --out "$O"
expect_error "is missing" "$O" run_np 2 "$AILORA" export "$WORK/run.h5" --out "$O"
check "$AILORA" export "$WORK/run.h5" --out "$WORK/e3" --model "$WORK/moved" --quiet
check cmp "$WORK/e1/merged/model.safetensors" "$WORK/e3/merged/model.safetensors"
printf ' ' >> "$WORK/moved/config.json"  # same weights, another config: another model
expect_error "is not the model $WORK/run.h5 was trained on (fingerprint" "$O" \
    "$AILORA" export "$WORK/run.h5" --out "$O" --model "$WORK/moved"
expect_error "is not the model" "$O" run_np 2 "$AILORA" export "$WORK/run.h5" --out "$O" --model "$WORK/moved"
# an existing DIR: refused, untouched; --overwrite only replaces an earlier export
check cp -r "$WORK/e1" "$WORK/keep"
expect_error "$WORK/e1 exists already (--overwrite" "" "$AILORA" export "$WORK/run.h5" --out "$WORK/e1" --model "$WORK/moved"
check diff -r "$WORK/e1" "$WORK/keep"
mkdir "$WORK/mine" && echo data > "$WORK/mine/notes.txt"
expect_error "$WORK/mine exists and is not an ailora export (no export.json): not replaced" "" \
    "$AILORA" export "$WORK/run.h5" --out "$WORK/mine" --overwrite --model "$WORK/moved"
CHECKS=$((CHECKS + 1))
[ "$(cat "$WORK/mine/notes.txt")" = data ] && [ ! -e "$WORK/mine.partial" ] || fail "--overwrite touched a foreign directory"
check "$AILORA" export "$WORK/bf.h5" --out "$WORK/e1" --overwrite --quiet
check cmp "$WORK/e1/merged/model.safetensors" "$WORK/bf_out/merged/model.safetensors"
CHECKS=$((CHECKS + 1))
[ ! -e "$WORK/e1.partial" ] || fail "--overwrite left $WORK/e1.partial"
# a stale DIR.partial of an interrupted export is cleared; a foreign one refused
mkdir -p "$WORK/e4.partial/residual"
check "$AILORA" export "$WORK/bf.h5" --out "$WORK/e4" --quiet
mkdir -p "$WORK/e5.partial" && echo x > "$WORK/e5.partial/other"
expect_error "$WORK/e5.partial exists and is not an unfinished ailora export" "" \
    "$AILORA" export "$WORK/bf.h5" --out "$WORK/e5"
CHECKS=$((CHECKS + 1))
[ ! -e "$WORK/e5" ] && [ -f "$WORK/e5.partial/other" ] || fail "a foreign DIR.partial was touched"
expect_error "--dtype must be model, bf16, fp16 or fp32, got \"int8\"" "$O" "$AILORA" export "$WORK/bf.h5" --out "$O" --dtype int8
expect_error "missing required option --out" "" "$AILORA" export "$WORK/bf.h5"

# a failure anywhere (an allocation refused, a read failing: AILORA_FAULT, every 7th fault
# point of one rank, and two on rank 1 of 2): one line, nothing left behind
npts=$(AILORA_FAULT=count "$AILORA" export "$WORK/bf.h5" --out "$WORK/fault_count" --quiet 2>&1 | sed -n 's/.*rank 0: //p')
CHECKS=$((CHECKS + 1))
[ "${npts:-0}" -gt 50 ] || fail "AILORA_FAULT=count gave \"$npts\" fault points"
for i in $(seq 1 7 "${npts:-0}"); do
    expect_error "" "$O" env AILORA_FAULT="$i:0" "$AILORA" export "$WORK/bf.h5" --out "$O" --quiet > /dev/null
done
for i in 3 40; do
    expect_error "rank 1:" "$O" run_np 2 env AILORA_FAULT="$i:1" "$AILORA" export "$WORK/bf.h5" --out "$O" --quiet
done
finish
