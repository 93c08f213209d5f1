# `ailora svd --keep K`: partial SVD caches (S whole, U and Vt for [0, K) and
# [k-K, k)) at 1, 2 and 4 ranks with every CPU backend against LAPACK dgesdd of the
# same matrices (S within 1e-12 smax, kept vectors within the gap bound, the kept
# index set exact); --keep K with 2K >= k is the whole cache bit for bit; init from
# a partial cache equals init from a whole one bit for bit (the same dgesdd
# vectors; only the selected ones are read); init and train refuse a rank / ratio
# whose vectors the cache lacks, with one line naming the module and the indices;
# method = auto chooses among the kept triplets;
# the selected-vector route's dgesdd fallback is recorded.
. "${top_srcdir:-.}/tests/lib.sh"
M="$WORK/model"
PY=/usr/bin/python3
# q_proj 96 x 96 (k 96), v_proj 48 x 96 (wide, k 48); a cluster of tiny values at the minor end
check "$AILORA" synth --out "$M" --hidden 96 --heads 4 --kv-heads 2 --layers 2 --spectrum cluster \
    --decades 9 --seed 3
check "$AILORA" svd --model "$M" --backend lapack --out "$WORK/full.h5" --quiet
check "$AILORA" svd --model "$M" --backend lapack --keep 8 --out "$WORK/k8.h5" --quiet
for np in 1 2 4; do
    for backend in select auto pdgesvd; do
        out="$WORK/k8_${backend}_np$np.h5"
        check run_np "$np" "$AILORA" svd --model "$M" --backend "$backend" --keep 8 --block 16 --out "$out" --quiet
        check "$H5COMPARE" "$WORK/k8.h5" "$out" --svd --tol 1e-12
    done
done
# the layout: kept = [0, 8) and [k-8, k), U [m, 16], Vt [16, n]; S whole; keep 24 of v_proj's 48 = all
check "$AILORA" svd --model "$M" --backend lapack --keep 24 --out "$WORK/k24.h5" --quiet
check $PY - "$WORK/k8.h5" "$WORK/k24.h5" "$WORK/full.h5" <<'PYEOF'
import sys, h5py, numpy as np, os
k8, k24, full = (h5py.File(p, "r") for p in sys.argv[1:4])
q, v = "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"
for name, k, m, n in ((q, 96, 96, 96), (v, 48, 48, 96)):
    g = k8["modules"][name]
    kept = g["kept"][()]
    assert list(kept) == list(range(8)) + list(range(k - 8, k)), kept
    assert g["S"].shape == (k,) and g["U"].shape == (m, 16) and g["Vt"].shape == (16, n)
    f = full["modules"][name]
    assert np.array_equal(g["U"][()], f["U"][()][:, kept]) and np.array_equal(g["Vt"][()], f["Vt"][()][kept])
assert "kept" not in k24["modules"][v] and k24["modules"][v]["U"].shape == (48, 48)
assert list(k24["modules"][q]["kept"][()]) == list(range(24)) + list(range(72, 96))
assert k8.attrs["keep"] == 8 and full.attrs["keep"] == 0
print("cache sizes: full %d bytes, --keep 8 %d bytes" % (os.path.getsize(sys.argv[3]), os.path.getsize(sys.argv[1])))
PYEOF
sed 's/^/    /' "$WORK/last.out"
check "$AILORA" svd --model "$M" --backend lapack --keep 48 --out "$WORK/k48.h5" --quiet
check "$H5COMPARE" "$WORK/full.h5" "$WORK/k48.h5" --tol 0

# init: partial = whole cache bit for bit, for every SVD method at ranks within K
for method in pissa milora ailora ratio; do
    extra=""
    [ "$method" = ratio ] && extra="--ratio-q 0.75 --ratio-v 0.25"
    rs=8
    [ "$method" = ailora ] && rs="4 8"
    for r in $rs; do
        # shellcheck disable=SC2086
        check "$AILORA" init --model "$M" --method "$method" --rank $r --seed 7 $extra \
            --svd "$WORK/full.h5" --out "$WORK/${method}_${r}_full.h5" --quiet
        # shellcheck disable=SC2086
        check run_np 2 "$AILORA" init --model "$M" --method "$method" --rank $r --seed 7 $extra \
            --svd "$WORK/k8.h5" --out "$WORK/${method}_${r}_k8.h5" --quiet
        check "$H5COMPARE" "$WORK/${method}_${r}_full.h5" "$WORK/${method}_${r}_k8.h5" --tol 0
    done
done
# from the selected-vector route's cache: the same within 1e-10 (as tests/cli_init.sh) where
# the vectors are unique (principal, geometric); the minor ones lie in a cluster, whose basis
# is not (the cache comparisons above check their span)
check "$AILORA" init --model "$M" --method pissa --rank 8 --seed 7 --svd "$WORK/k8_select_np2.h5" \
    --out "$WORK/pissa_sel.h5" --quiet
check "$H5COMPARE" "$WORK/pissa_8_full.h5" "$WORK/pissa_sel.h5" --tol 1e-10 --only /adapters/

# refusals: one line naming the cache, the module, what it keeps and what is missing
Q=model.layers.0.self_attn.q_proj
expect_error "$WORK/k8.h5: $Q keeps indices 0-7 and 88-95; milora rank 12 needs 84-95 (missing 84-87)" \
    "$WORK/bad.h5" "$AILORA" init --model "$M" --method milora --rank 12 --svd "$WORK/k8.h5" --out "$WORK/bad.h5"
expect_error "$Q keeps indices 0-7 and 88-95; pissa rank 10 needs 0-9 (missing 8-9)" \
    "$WORK/bad.h5" run_np 2 "$AILORA" init --model "$M" --method pissa --rank 10 --svd "$WORK/k8.h5" --out "$WORK/bad.h5"
expect_error "needs 0-8 and 93-95 (missing 8)" "$WORK/bad.h5" "$AILORA" init --model "$M" --method ratio \
    --ratio-q 0.75 --ratio-v 0.75 --rank 12 --svd "$WORK/k8.h5" --out "$WORK/bad.h5"
expect_error "keep \"0\": expected all or a count" "$WORK/bad.h5" "$AILORA" svd --model "$M" --keep 0 --out "$WORK/bad.h5"
expect_error "keep \"8x\": expected all or a count" "$WORK/bad.h5" "$AILORA" svd --model "$M" --keep 8x --out "$WORK/bad.h5"

# train: its own computed cache partial (svd_keep), and a refusal from a partial cache
R="$top_srcdir/tests/reference"
TB="model=$R/train_llama train_data=$R/train_data.h5 steps=2 batch_size=4 log_every=1"
check "$AILORA" svd --model "$R/train_llama" --backend lapack --out "$WORK/tfull.h5" --quiet
check "$AILORA" train $TB method=ailora rank=4 svd_cache="$WORK/tfull.h5" out="$WORK/t_full.h5"
check run_np 2 "$AILORA" train $TB method=ailora rank=4 svd_keep=4 out="$WORK/t_keep.h5"
check "$H5COMPARE" "$WORK/t_full.h5" "$WORK/t_keep.h5" --tol 1e-10 --only /init/
check "$AILORA" svd --model "$R/train_llama" --keep 2 --out "$WORK/tk2.h5" --quiet
expect_error "keeps indices 0-1 and" "$WORK/t_bad.h5" \
    "$AILORA" train $TB method=pissa rank=4 svd_cache="$WORK/tk2.h5" out="$WORK/t_bad.h5"
# method = auto scores the triplets a partial cache holds and selects among them
check "$AILORA" svd --model "$R/train_llama" --keep 4 --out "$WORK/tk4.h5" --quiet
check "$AILORA" train $TB method=auto auto_batches=1 rank=4 svd_cache="$WORK/tk4.h5" out="$WORK/t_auto.h5"
check $PY - "$WORK/t_auto.h5" "$WORK/tk4.h5" <<'PYEOF'
import sys, h5py
run, svd = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
found = []
run.visititems(lambda name, obj: found.append(name) if name.endswith("/selected") else None)
assert found, "no selection in the run file"
for name in found:
    module = name.split("/")[-2]
    kept = set(svd["modules"][module]["kept"][()].tolist())
    sel = set(run[name][()].tolist())
    assert sel <= kept, (name, sorted(sel - kept))
print("auto selections within the kept sets:", len(found))
PYEOF

# --vectors float32: U and Vt the float64 results rounded once (bit for bit against
# the same route's float64 cache), S float64 and equal; the cache ~half; init from it
# still reconstructs W exactly in float64 (W_res comes from the same rounded vectors)
# and its adapters are those of the float64 cache within float32 rounding (1e-6 max|x|)
for backend in select pdgebrd; do
    check run_np 2 "$AILORA" svd --model "$M" --backend "$backend" --keep 8 --block 16 --out "$WORK/k8_${backend}_f64.h5" --quiet
    check run_np 2 "$AILORA" svd --model "$M" --backend "$backend" --keep 8 --block 16 --vectors float32 \
        --out "$WORK/k8_${backend}_f32.h5" --quiet
    check $PY - "$WORK/k8_${backend}_f64.h5" "$WORK/k8_${backend}_f32.h5" <<'PYEOF'
import sys, os, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
text = lambda x: x.decode() if isinstance(x, bytes) else str(x)
assert text(a.attrs["vectors_dtype"]) == "float64" and text(b.attrs["vectors_dtype"]) == "float32"
for name, g in a["modules"].items():
    h = b["modules"][name]
    assert h["U"].dtype == np.float32 and h["Vt"].dtype == np.float32 and h["S"].dtype == np.float64
    assert np.array_equal(g["S"][()], h["S"][()]) and np.array_equal(g["kept"][()], h["kept"][()])
    for v in ("U", "Vt"):
        assert np.array_equal(g[v][()].astype(np.float32), h[v][()]), (name, v)
ratio = os.path.getsize(sys.argv[2]) / os.path.getsize(sys.argv[1])
assert ratio < 0.75, ratio
print("float32 vectors: rounded float64 ones bit for bit; cache %.3f of float64" % ratio)
PYEOF
    sed 's/^/    /' "$WORK/last.out"
done
check "$AILORA" init --model "$M" --method ailora --rank 8 --svd "$WORK/k8_select_f64.h5" --out "$WORK/init_f64.h5" --quiet
check "$AILORA" init --model "$M" --method ailora --rank 8 --svd "$WORK/k8_select_f32.h5" --out "$WORK/init_f32.h5" --quiet
check "$H5COMPARE" "$WORK/init_f64.h5" "$WORK/init_f32.h5" --tol 1e-6 --only adapters
for mod in q_proj v_proj; do
    e64=$("$H5COMPARE" --attr "$WORK/init_f32.h5" "/adapters/model.layers.1.self_attn.$mod" recon_err_f64)
    CHECKS=$((CHECKS + 1))
    awk -v e="$e64" 'BEGIN { exit !(e < 1e-14) }' || fail "float32-vector init: $mod reconstruction error $e64 >= 1e-14"
done
# the second tier: inverse iteration at the dqds values made to fail on rank 0:
# dbdsvdx (bisection first) computes that range, the same cache within the contract
AILORA_FAULT=dstein:0 check run_np 2 "$AILORA" svd --model "$M" --backend select --keep 8 --out "$WORK/tier2.h5"
CHECKS=$((CHECKS + 1))
grep -q "dbdsvdx computed them" "$WORK/last.out" || fail "no dbdsvdx tier reported"
check "$H5COMPARE" "$WORK/k8.h5" "$WORK/tier2.h5" --svd --tol 1e-12
# the fallback: B's vectors made to fail on rank 0: dgesdd computes the matrix, the cache says why
AILORA_FAULT=bidiag:0 check run_np 2 "$AILORA" svd --model "$M" --backend select --keep 8 --out "$WORK/fb.h5"
CHECKS=$((CHECKS + 1))
grep -q "dgesdd computed it" "$WORK/last.out" || fail "no fallback reported"
check "$H5COMPARE" "$WORK/k8.h5" "$WORK/fb.h5" --svd --tol 1e-12
check $PY -c "
import sys, h5py
f = h5py.File('$WORK/fb.h5', 'r')
why = [g.attrs['fallback'] for g in f['modules'].values() if 'fallback' in g.attrs]
assert len(why) == 1 and 'injected fault' in str(why[0]), why
print('fallback recorded:', why[0])"
sed 's/^/    /' "$WORK/last.out"
ls "$WORK"/*.partial > /dev/null 2>&1 && fail "partial files left behind"
finish
