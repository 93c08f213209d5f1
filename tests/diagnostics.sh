# Spectral diagnostics of the update (updatediag.h, diaglog.h) in `ailora train`:
#  - the last evaluation's diagnostics equal a direct float64 numpy computation
#    from the stored factors and the SVD cache (tests/check_diagnostics.py), for an
#    SVD init (pissa: B0 != 0, K = rank) and for lora (B0 = 0, diagnostics_k = 2)
#  - tp = 2 and dp = 2 agree with one
#    rank to float rounding of the adapters: other all-reduce orders change the
#    float32 adapters by ulps that 12 AdamW steps carry along; measured up to 2e-6
#    in the principal-angle cosines (O(1) values), so 1e-5 absolute
#  - a preempted and resumed run has bit-identical diagnostics; diagnostics=false
#    writes none; diagnostics_k beyond min(m, n) is one error line
. "${top_srcdir:-.}/tests/lib.sh"
R="$top_srcdir/tests/reference"
PY=/usr/bin/python3
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/svd.h5" --quiet
BASE="model=$R/train_llama svd_cache=$WORK/svd.h5 train_data=$R/train_data.h5 eval_data=$R/train_data.h5"
BASE="$BASE rank=4 lr=5e-3 steps=12 batch_size=8 eval_every=4 eval_batches=1 log_every=12"
# shellcheck disable=SC2086
check "$AILORA" train $BASE method=pissa out="$WORK/pissa.h5"
check $PY "$top_srcdir/tests/check_diagnostics.py" "$WORK/pissa.h5" "$WORK/svd.h5"
# shellcheck disable=SC2086
check "$AILORA" train $BASE method=lora diagnostics_k=2 out="$WORK/lora.h5"
check $PY "$top_srcdir/tests/check_diagnostics.py" "$WORK/lora.h5" "$WORK/svd.h5"
CHECKS=$((CHECKS + 1))
[ "$(h5dump -d /diagnostics/step "$WORK/pissa.h5" | grep -c '(0): 4, 8, 12')" = 1 ] ||
    fail "diagnostics not recorded at steps 4, 8, 12"

for layout in "tp=2" "dp=2"; do
    # shellcheck disable=SC2086
    check run_np 2 "$AILORA" train $BASE method=pissa $layout out="$WORK/np2_${layout%=*}.h5"
    check "$H5COMPARE" "$WORK/pissa.h5" "$WORK/np2_${layout%=*}.h5" --only /diagnostics/ --tol 1e-5 --nan-equal
done

# resume: preempted at step 6, resumed: bit for bit
# shellcheck disable=SC2086
CHECKS=$((CHECKS + 1))
rc=0
"$AILORA" train $BASE method=pissa out="$WORK/part.h5" preempt_at_step=6 > "$WORK/pre.out" 2>&1 || rc=$?
[ "$rc" -eq 75 ] || fail "preempted run exited $rc, expected 75"
# shellcheck disable=SC2086
check "$AILORA" train $BASE method=pissa out="$WORK/part.h5" resume=true
check "$H5COMPARE" "$WORK/pissa.h5" "$WORK/part.h5" --only /diagnostics/ --tol 0 --nan-equal

# shellcheck disable=SC2086
check "$AILORA" train $BASE method=pissa diagnostics=false out="$WORK/off.h5"
CHECKS=$((CHECKS + 1))
h5ls "$WORK/off.h5" | grep -q diagnostics && fail "diagnostics=false wrote /diagnostics"
# shellcheck disable=SC2086
expect_error "diagnostics_k = 99 exceeds min(m, n)" "$WORK/bad.h5" "$AILORA" train $BASE diagnostics_k=99 out="$WORK/bad.h5"

# the analysis loader: one row per (run, module, evaluation); the figure draws
CHECKS=$((CHECKS + 1))
PYTHONPATH="$top_srcdir/analysis" $PY - "$WORK" <<'PYEOF' || fail "ailora_analysis.load_diagnostics"
import sys
import matplotlib
matplotlib.use("Agg")
from ailora_analysis import load_runs, load_diagnostics, plot_update_energy
runs = load_runs(sys.argv[1])
runs = runs[runs["path"].str.endswith(("/pissa.h5", "/lora.h5"))]
diag = load_diagnostics(runs)
assert len(runs) == 2 and len(diag) == 2 * 4 * 3, (len(runs), len(diag))
assert set(diag["step"]) == {4, 8, 12} and diag["energy_u_top"].between(0, 1).all()
plot_update_energy(diag).figure.savefig(sys.argv[1] + "/energy.png")
PYEOF
finish
