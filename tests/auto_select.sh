# method = auto (adapter.h): triplets chosen by |u_i^T G v_i| of the base gradient
#  - the run file records every candidate's score; the selection is the r best
#    (numpy), and the initial adapters are PiSSA's formulas on that selection (1e-12)
#  - the selection is identical at 1 rank, dp = 2 and tp = 2; the scores agree to
#    float32 summation order (1e-4 of the largest score)
#  - a run preempted and resumed on another layout keeps the selection it started
#    with (the residual must not change) and, on the same layout, equals the
#    uninterrupted run bit for bit
#  - `ailora init --method auto` is one error line (it needs training data)
. "${top_srcdir:-.}/tests/lib.sh"
R="$top_srcdir/tests/reference"
PY=/usr/bin/python3
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/svd.h5" --quiet
BASE="model=$R/train_llama svd_cache=$WORK/svd.h5 train_data=$R/train_data.h5 method=auto auto_batches=2"
BASE="$BASE rank=4 lr=5e-3 steps=8 batch_size=8 log_every=8 diagnostics=false"
# shellcheck disable=SC2086
check "$AILORA" train $BASE out="$WORK/np1.h5"
for layout in "dp=2" "tp=2"; do
    # shellcheck disable=SC2086
    check run_np 2 "$AILORA" train $BASE $layout out="$WORK/${layout%=*}.h5"
done
CHECKS=$((CHECKS + 1))
$PY - "$WORK" <<'PYEOF' || fail "auto selection, scores or initial adapters"
import sys
import h5py
import numpy as np
w = sys.argv[1]
runs = {name: h5py.File(f"{w}/{name}.h5", "r") for name in ("np1", "dp", "tp")}
svd = h5py.File(f"{w}/svd.h5", "r")
ref = runs["np1"]
r, s = int(ref.attrs["rank"]), float(ref.attrs["alpha"]) / int(ref.attrs["rank"])
bad = 0
for mod in ref["adapters"]:
    sc = ref[f"adapters/{mod}/auto_scores"][()]
    cand = ref[f"adapters/{mod}/auto_candidates"][()]
    sel = ref[f"adapters/{mod}/selected"][()]
    S, U, Vt = (svd[f"modules/{mod}/{x}"][()] for x in ("S", "U", "Vt"))
    if not np.array_equal(cand, np.arange(S.size)):
        print("FAIL candidates", mod); bad += 1
    want = np.sort(cand[np.argsort(-sc, kind="stable")[:r]])
    if not np.array_equal(sel, want):
        print("FAIL selection", mod, sel, want); bad += 1
    B0 = U[:, sel] * np.sqrt(S[sel] / s)
    A0 = np.sqrt(S[sel] / s)[:, None] * Vt[sel, :]
    for name, x in (("lora_A", A0), ("lora_B", B0)):
        if np.abs(ref[f"init/{mod}/{name}"][()] - x).max() > 1e-12 * max(1.0, np.abs(x).max()):
            print("FAIL init", mod, name); bad += 1
    for other in ("dp", "tp"):
        o = runs[other]
        if not np.array_equal(o[f"adapters/{mod}/selected"][()], sel):
            print("FAIL selection differs", other, mod, o[f"adapters/{mod}/selected"][()], sel); bad += 1
        d = np.abs(o[f"adapters/{mod}/auto_scores"][()] - sc).max()
        if d > 1e-4 * sc.max():
            print("FAIL scores", other, mod, d, sc.max()); bad += 1
print("auto: checked", len(ref["adapters"]), "modules,", bad, "failures")
sys.exit(1 if bad else 0)
PYEOF

# resume: preempted at step 4; on tp = 2 the selection is the one started with;
# on one rank the whole run equals the uninterrupted one bit for bit
for how in np1 tp2; do
    CHECKS=$((CHECKS + 1))
    rc=0
    # shellcheck disable=SC2086
    "$AILORA" train $BASE out="$WORK/part_$how.h5" preempt_at_step=4 > "$WORK/pre.out" 2>&1 || rc=$?
    [ "$rc" -eq 75 ] || fail "preempted run exited $rc, expected 75"
done
# shellcheck disable=SC2086
check "$AILORA" train $BASE out="$WORK/part_np1.h5" resume=true
check "$H5COMPARE" "$WORK/np1.h5" "$WORK/part_np1.h5" --tol 0 --only /adapters/
check "$H5COMPARE" "$WORK/np1.h5" "$WORK/part_np1.h5" --tol 0 --only /init/
check "$H5COMPARE" "$WORK/np1.h5" "$WORK/part_np1.h5" --tol 0 --only /train/loss
# shellcheck disable=SC2086
check run_np 2 "$AILORA" train $BASE tp=2 out="$WORK/part_tp2.h5" resume=true
check "$H5COMPARE" "$WORK/np1.h5" "$WORK/part_tp2.h5" --tol 0 --only /init/
check "$H5COMPARE" "$WORK/np1.h5" "$WORK/part_tp2.h5" --tol 1e-5 --only /train/loss

expect_error "method auto chooses triplets from gradients" "$WORK/init.h5" \
    "$AILORA" init --model "$R/train_llama" --svd "$WORK/svd.h5" --method auto --rank 4 --out "$WORK/init.h5"
finish
