# Provenance of SVD caches, INIT and run files (fingerprint.h, svdcache_verify):
#  - models A and B of identical shapes (synth seeds 11, 12): A's cache is refused
#    for B by `init --svd`, by `train svd_cache=` and by train's reuse of a default
#    <out>.svd.h5, on 1 and 2 ranks: one error line naming the module, no output
#  - a cache whose S was edited (sum S^2 no longer ||W||_F^2) and a cache without
#    fingerprints (older ailora) are refused
#  - fingerprints recorded in the cache, INIT and run files agree, and equal an
#    independent recomputation in Python (python3-xxhash) from the safetensors bytes
#  - the SVD cache is an SVD of the source weights: ||W - U S Vt||_F / ||W||_F
#    below 1e-12 from W read from the model directory (float64 SVD: ~1e-15)
#  - residual_dtype = model | fp32 on a BF16 model: recorded; the rounded error of
#    milora equals INIT's (same rounding) and exceeds the float64 one; fp32 keeps
#    ~2^-24; the choice reaches the engine (step-1 loss differs for milora, not for lora)
#  - a checkpoint is not resumed under another residual_dtype or for another model
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
R="$top_srcdir/tests/reference"
SHAPE="--hidden 64 --heads 4 --kv-heads 2 --layers 2 --vocab 128 --decades 3"
A="$WORK/A"
B="$WORK/B"
# shellcheck disable=SC2086
check "$AILORA" synth --out "$A" $SHAPE --seed 11
# shellcheck disable=SC2086
check "$AILORA" synth --out "$B" $SHAPE --seed 12
check run_np 2 "$AILORA" svd --model "$A" --out "$WORK/svdA.h5" --quiet
TRAIN="train_data=$R/train_data.h5 rank=4 steps=1 batch_size=2 log_every=1"
Q=model.layers.0.self_attn.q_proj
WANT="SVD cache $WORK/svdA.h5 was computed from a different $Q (fingerprint"

for np in 1 2; do
    expect_error "$WANT" "$WORK/initB.h5" \
        run_np $np "$AILORA" init --model "$B" --method pissa --rank 4 --svd "$WORK/svdA.h5" --out "$WORK/initB.h5" --quiet
    # shellcheck disable=SC2086
    expect_error "$WANT" "$WORK/runB.h5" \
        run_np $np "$AILORA" train model="$B" svd_cache="$WORK/svdA.h5" $TRAIN out="$WORK/runB.h5"
    # a default cache left next to the run by another model
    cp "$WORK/svdA.h5" "$WORK/runB.h5.svd.h5"
    # shellcheck disable=SC2086
    expect_error "SVD cache $WORK/runB.h5.svd.h5 was computed from a different $Q" "$WORK/runB.h5" \
        run_np $np "$AILORA" train model="$B" $TRAIN out="$WORK/runB.h5"
    rm -f "$WORK/runB.h5.svd.h5"
    CHECKS=$((CHECKS + 1))
    [ -e "$WORK/runB.h5.ckpt.h5" ] && fail "refused run wrote a checkpoint"
done

# a corrupt spectrum and an old cache without fingerprints
cp "$WORK/svdA.h5" "$WORK/badS.h5"
cp "$WORK/svdA.h5" "$WORK/old.h5"
check "$PY" - "$WORK/badS.h5" "$WORK/old.h5" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:   # S[0] up by 1e-6 relative: sum S^2 moves ~1e-6
    S = f["/modules/model.layers.1.self_attn.v_proj/S"]
    s = S[...]; s[0] *= 1 + 1e-6; S[...] = s
with h5py.File(sys.argv[2], "r+") as f:
    for name in f["/modules"]:
        del f["/modules"][name].attrs["fingerprint"]
EOF
for np in 1 2; do
    expect_error "the singular values of model.layers.1.self_attn.v_proj do not match its weights" "$WORK/bad.h5" \
        run_np $np "$AILORA" init --model "$A" --method milora --rank 4 --svd "$WORK/badS.h5" --out "$WORK/bad.h5" --quiet
    # shellcheck disable=SC2086
    expect_error "do not match its weights" "$WORK/bad.h5" \
        run_np $np "$AILORA" train model="$A" svd_cache="$WORK/badS.h5" $TRAIN out="$WORK/bad.h5"
    expect_error "has no source fingerprints (written by an older ailora): recompute it" "$WORK/bad.h5" \
        run_np $np "$AILORA" init --model "$A" --method pissa --rank 4 --svd "$WORK/old.h5" --out "$WORK/bad.h5" --quiet
done

# the same cache with its own model: fingerprints recorded and consistent
check run_np 2 "$AILORA" init --model "$A" --method pissa --rank 4 --svd "$WORK/svdA.h5" --out "$WORK/initA.h5" --quiet
# shellcheck disable=SC2086
check run_np 2 "$AILORA" train model="$A" svd_cache="$WORK/svdA.h5" $TRAIN method=pissa out="$WORK/runA.h5"
check "$PY" - "$A" "$WORK/svdA.h5" "$WORK/initA.h5" "$WORK/runA.h5" <<'EOF'
import json, os, struct, sys
import h5py, numpy as np, xxhash
model, svd, init, run = sys.argv[1:]

def shard(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    return raw, n, head

# fingerprint.h's definition, recomputed from the file bytes
raw, n, head = shard(os.path.join(model, "model.safetensors"))
def tensor_fp(name):
    t = head[name]
    h = xxhash.xxh3_128()
    h.update(name.encode() + b"\0" + t["dtype"].encode() + b"\0")
    h.update(struct.pack("<q", len(t["shape"])) + b"".join(struct.pack("<q", d) for d in t["shape"]))
    b, e = t["data_offsets"]
    h.update(raw[8 + n + b:8 + n + e])
    return h.hexdigest()
m = xxhash.xxh3_128()
m.update(open(os.path.join(model, "config.json"), "rb").read())
m.update(b"model.safetensors\0" + raw[:8 + n])
for name in sorted(head):
    m.update(bytes.fromhex(tensor_fp(name)))
model_fp = m.hexdigest()

bad = 0
files = {"svd": h5py.File(svd), "init": h5py.File(init), "run": h5py.File(run)}
for kind, f in files.items():
    got = f.attrs["model_fingerprint"]
    got = got.decode() if isinstance(got, bytes) else got
    if got != model_fp or f.attrs["fingerprint_algorithm"] not in ("xxh3-128", b"xxh3-128"):
        print(f"{kind}: model_fingerprint {got} != {model_fp}"); bad += 1
for mod in files["svd"]["/modules"]:
    want = tensor_fp(mod + ".weight")
    for kind, f in files.items():
        g = f[("/modules/" if kind == "svd" else "/adapters/") + mod]
        got = g.attrs["fingerprint"]
        got = got.decode() if isinstance(got, bytes) else got
        if got != want:
            print(f"{kind} {mod}: fingerprint {got} != {want}"); bad += 1
    for kind in ("init", "run"):
        e64 = files[kind]["/adapters/" + mod].attrs["recon_err_f64"]
        if not e64 < 1e-14:
            print(f"{kind} {mod}: recon_err_f64 {e64:.3e}"); bad += 1
print(f"fingerprints checked against {model}: {bad} problems")
sys.exit(1 if bad else 0)
EOF
cat "$WORK/last.out"
# the cache is an SVD of the source weights (not only of itself)
check "$PY" "$top_srcdir/tests/svd_source_check.py" "$A" "$WORK/svdA.h5" 1e-12

# residual_dtype on a BF16 model
M="$WORK/bf16"
# shellcheck disable=SC2086
check "$AILORA" synth --out "$M" $SHAPE --dtype BF16 --seed 5
check "$AILORA" svd --model "$M" --out "$WORK/svd_bf16.h5" --quiet
check "$PY" "$top_srcdir/tests/svd_source_check.py" "$M" "$WORK/svd_bf16.h5" 1e-12
check "$AILORA" init --model "$M" --method milora --rank 4 --svd "$WORK/svd_bf16.h5" --out "$WORK/init_bf16.h5" --quiet
V=/adapters/model.layers.1.self_attn.v_proj
BASE="model=$M svd_cache=$WORK/svd_bf16.h5 train_data=$R/train_data.h5 rank=4 steps=2 batch_size=2 log_every=1 lr=1e-6"
for method in milora lora; do
    for rd in model fp32; do
        # shellcheck disable=SC2086
        check run_np 2 "$AILORA" train $BASE method=$method residual_dtype=$rd out="$WORK/${method}_$rd.h5"
    done
done
check "$PY" - "$WORK" <<'EOF'
import sys, h5py
w = sys.argv[1]
bad = 0
def attr(f, obj, name):
    v = f[obj].attrs[name] if obj != "/" else f.attrs[name]
    return v.decode() if isinstance(v, bytes) else v
init = h5py.File(f"{w}/init_bf16.h5")
for rd in ("model", "fp32"):
    f = h5py.File(f"{w}/milora_{rd}.h5")
    if attr(f, "/", "residual_dtype") != rd:
        print(f"residual_dtype {attr(f, '/', 'residual_dtype')} != {rd}"); bad += 1
    for mod in f["/adapters"]:
        g = "/adapters/" + mod
        e64, er = attr(f, g, "recon_err_f64"), attr(f, g, "recon_err_rounded")
        want_dtype = "BF16" if rd == "model" else "F32"
        if attr(f, g, "residual_dtype") != want_dtype:
            print(f"{rd} {mod}: residual_dtype {attr(f, g, 'residual_dtype')}"); bad += 1
        if not e64 < 1e-14:
            print(f"{rd} {mod}: recon_err_f64 {e64:.3e}"); bad += 1
        if rd == "model":
            # the same single rounding as `ailora init` (same adapters, same W_res): equal
            ei = attr(init, g, "recon_err_rounded")
            if not (abs(er - ei) <= 1e-12 * ei and er > 1e3 * e64 and 1e-4 < er < 1e-2):
                print(f"model {mod}: rounded {er:.6e} vs init {ei:.6e}, f64 {e64:.3e}"); bad += 1
        elif not (1e-9 < er < 1e-7):   # float32: ~2^-24 / sqrt(3) relative
            print(f"fp32 {mod}: rounded {er:.3e} not ~2^-24"); bad += 1
    if rd == "model":
        print(f"milora v_proj: recon_err_f64 {attr(f, '/adapters/model.layers.1.self_attn.v_proj', 'recon_err_f64'):.3e}, "
              f"BF16 residual {attr(f, '/adapters/model.layers.1.self_attn.v_proj', 'recon_err_rounded'):.3e}")
loss = {k: h5py.File(f"{w}/{k}.h5")["/train/loss"][0] for k in ("milora_model", "milora_fp32", "lora_model", "lora_fp32")}
print("step-1 losses:", loss)
if loss["milora_model"] == loss["milora_fp32"]:
    print("milora: residual_dtype does not reach the engine"); bad += 1
if loss["lora_model"] != loss["lora_fp32"]:   # W_res = W: bf16 values exact in float32 either way
    print("lora: residual_dtype changed an exact residual"); bad += 1
sys.exit(1 if bad else 0)
EOF
cat "$WORK/last.out"

# resume under another residual_dtype is refused
# shellcheck disable=SC2086
check "$AILORA" train $BASE method=milora residual_dtype=fp32 out="$WORK/pre.h5"
# shellcheck disable=SC2086
expect_error "residual_dtype fp32 -> model" "" \
    "$AILORA" train $BASE method=milora residual_dtype=model steps=4 resume=true out="$WORK/pre.h5"
# nor for another model (model fingerprint), even with a valid cache of that model:
# the config text is the same (same paths), the files behind the paths changed
check "$AILORA" svd --model "$B" --out "$WORK/svdB.h5" --quiet
cp -r "$A" "$WORK/swap" && cp "$WORK/svdA.h5" "$WORK/svd_swap.h5"
# shellcheck disable=SC2086
check "$AILORA" train model="$WORK/swap" svd_cache="$WORK/svd_swap.h5" $TRAIN out="$WORK/runA1.h5"
rm -rf "$WORK/swap" && cp -r "$B" "$WORK/swap" && cp "$WORK/svdB.h5" "$WORK/svd_swap.h5"
# shellcheck disable=SC2086
expect_error "runA1.h5.ckpt.h5 was written for a different model (fingerprint" "" \
    "$AILORA" train model="$WORK/swap" svd_cache="$WORK/svd_swap.h5" $TRAIN steps=2 resume=true out="$WORK/runA1.h5"
# shellcheck disable=SC2086
expect_error "residual_dtype must be model or fp32" "$WORK/x.h5" "$AILORA" train $BASE residual_dtype=bf16 out="$WORK/x.h5"
# shellcheck disable=SC2086
expect_error "residual_dtype = fp32 needs an fp32 engine" "$WORK/x.h5" \
    "$AILORA" train $BASE residual_dtype=fp32 device=cuda out="$WORK/x.h5"
finish
