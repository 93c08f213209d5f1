# analysis/ailora_analysis on a small real sweep: 4 methods x 2 seeds of `ailora
# train` on the reference tiny LLaMA; the loader, the summary statistics (checked
# against closed forms) and every figure. Skipped only when Debian's python3
# lacks the packages (scripts/install-deps.sh installs them).
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
$PY -c "import numpy, pandas, h5py, matplotlib, scipy" 2> /dev/null ||
    skip "/usr/bin/python3 lacks numpy/pandas/h5py/matplotlib/scipy (scripts/install-deps.sh)"
R="$top_srcdir/tests/reference"
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/svd.h5" --quiet
mkdir -p "$WORK/sweep"
for method in lora pissa milora ailora; do
    for seed in 0 1; do
        check "$AILORA" train model="$R/train_llama" svd_cache="$WORK/svd.h5" train_data="$R/train_data.h5" \
            eval_data="$R/train_data.h5" method=$method seed=$seed rank=4 steps=10 batch_size=4 lr=3e-3 \
            log_every=5 out="$WORK/sweep/${method}_s$seed.h5"
    done
done
check env PYTHONPATH="$top_srcdir/analysis" $PY -m ailora_analysis "$WORK/sweep" --out "$WORK/fig"
sed 's/^/    /' "$WORK/last.out"
for png in learning_curves spectra_layer0; do
    CHECKS=$((CHECKS + 1))
    [ -s "$WORK/fig/$png.png" ] || fail "figure $png.png missing"
done
check env PYTHONPATH="$top_srcdir/analysis" SWEEP="$WORK/sweep" FIG="$WORK/fig" $PY - <<'PY'
import math, os
import numpy as np
import pandas as pd
import ailora_analysis as aa

# mean_ci against the closed form: t(0.975, 2) = 4.302652729911275
mean, std, n, half = aa.mean_ci([1.0, 2.0, 3.0])
assert (mean, std, n) == (2.0, 1.0, 3) and abs(half - 4.302652729911275 / math.sqrt(3)) < 1e-12, half
assert math.isnan(aa.mean_ci([5.0])[3])
# paired on seed (tests/stats.sh checks the statistics): b - a is noise, c - a = 2 on every seed
df = pd.DataFrame({"method": list("aaabbbccc"), "seed": [0, 1, 2] * 3,
                   "x": [1.0, 1.1, 0.9, 1.05, 1.2, 0.8, 3.0, 3.1, 2.9]})
t = aa.summarize(df, by=["method"], metric="x").set_index("method")
assert not t.loc["b", "resolved"] and t.loc["c", "resolved"] and abs(t.loc["c", "diff"] - 2) < 1e-12, t
assert aa.steps_to_loss([1, 2, 3], [3.0, 2.0, 1.0], 2.5) == 2 and math.isnan(aa.steps_to_loss([1], [3.0], 1.0))

runs = aa.load_runs(os.environ["SWEEP"], target_loss=100.0)
assert len(runs) == 8 and set(runs["method"]) == {"lora", "pissa", "milora", "ailora"}, runs
assert runs["rank"].eq(4).all() and runs["steps_done"].eq(10).all()
assert np.isfinite(runs["eval_loss"]).all() and runs["steps_to_target"].eq(1).all()
table = aa.summarize(runs, by=["method"], metric="eval_loss")
assert len(table) == 4 and table["n"].eq(2).all() and runs["finished"].all(), table
assert table.attrs["excluded"] == {} and table["p_holm"].notna().sum() == 3, table
curves = aa.load_curves(runs)
assert len(curves) == 8 * 10 and {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(curves.columns)
spectra = aa.load_spectra(runs["path"].iloc[0])
assert any(m.endswith("v_proj") for m in spectra)
import matplotlib.pyplot as plt
# a filtered, reordered frame (as the report passes): every group keeps its 2 runs' curves
ax = aa.plot_learning_curves(runs[runs["method"] != "lora"].iloc[::-1])
labels = [t.get_text() for t in ax.get_legend().get_texts()]
assert len(labels) == 3 and all(l.endswith("(n=2)") for l in labels), labels
plt.close("all")
aa.plot_ratio_heatmap(runs)
aa.plot_convergence(runs)
plt.savefig(os.path.join(os.environ["FIG"], "extra.png"))
print("analysis checks passed")
PY
finish
