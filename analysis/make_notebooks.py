#!/usr/bin/env python3
"""Writes analysis/notebooks/*.ipynb from the cell sources below (edit here, rerun:
/usr/bin/python3 analysis/make_notebooks.py). Every notebook reads the sweep folder
from $AILORA_SWEEP (default: the quick start's ablation) and runs headless."""
import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))

SETUP = """import os, sys
sys.path.insert(0, os.path.abspath(os.path.join(os.getcwd(), "..")))  # analysis/ on the path
import matplotlib
import matplotlib.pyplot as plt
import ailora_analysis as aa
SWEEP = os.environ.get("AILORA_SWEEP", "../../experiments/default/sweeps/default_ablation")
runs = aa.load_runs(SWEEP)
print(f"{len(runs)} runs in {SWEEP}")
runs.head()"""

NOTEBOOKS = {
    "spectra.ipynb": [
        new_markdown_cell("# Singular spectra of W^Q and W^V\n\nFor each layer: all singular values "
                          "(log scale) with the components each run's adapter took marked: principal ones "
                          "for PiSSA / AILoRA's W^Q, minor ones for MiLoRA / AILoRA's W^V."),
        new_code_cell(SETUP),
        new_code_cell("""path = runs["path"].iloc[0]
spectra = aa.load_spectra(path)
layers = sorted({int(m.split(".")[2]) for m in spectra})
fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 3.5), squeeze=False)
for ax, layer in zip(axes[0], layers):
    aa.plot_spectra(path, layer=layer, ax=ax)
fig.suptitle(f"{runs['method'].iloc[0]}: {os.path.basename(path)}")
plt.show()"""),
        new_code_cell("""# captured share of each module's spectrum, by method
import numpy as np
rows = []
for _, run in runs.drop_duplicates("method").iterrows():
    for module, (S, sel) in aa.load_spectra(run["path"]).items():
        rows.append({"method": run["method"], "module": module.split("self_attn.")[-1],
                     "layer": int(module.split(".")[2]),
                     "energy": float((S[sel] ** 2).sum() / (S ** 2).sum()) if len(sel) else 0.0})
import pandas as pd
pd.DataFrame(rows).pivot_table(index=["module", "layer"], columns="method", values="energy")"""),
    ],
    "rank_ratio_ablation.ipynb": [
        new_markdown_cell("# Rank-ratio ablation\n\nMean metric over seeds on the ratio_q x ratio_v grid "
                          "(principal fraction of W^Q and W^V), per rank, with the summary table."),
        new_code_cell(SETUP),
        new_code_cell("""metric = "eval_loss" if "eval_loss" in runs else "train_loss"
ranks = sorted(runs["rank"].unique())
fig, axes = plt.subplots(1, len(ranks), figsize=(5 * len(ranks), 4), squeeze=False)
for ax, r in zip(axes[0], ranks):
    aa.plot_ratio_heatmap(runs[runs["rank"] == r], metric=metric, ax=ax)
    ax.set_title(f"rank {r}")
plt.show()"""),
        new_code_cell("""table = aa.summarize(runs, by=["rank", "ratio_q", "ratio_v"], metric=metric)
print("\\n".join(aa.describe(table, metric)))
table"""),
    ],
    "method_comparison.ipynb": [
        new_markdown_cell("# LoRA, PiSSA, MiLoRA and AILoRA\n\nLearning curves with seed bands, the final "
                          "metrics with 95% intervals, paired differences to the best method (paired on seed, "
                          "and on eval examples where the run files have per-example scores), Holm-adjusted "
                          "p-values over all pairs and effect sizes (resolved: p_holm < 0.05), and convergence "
                          "speed. `python3 -m ailora_analysis.report SWEEP --out report.html` puts all of "
                          "it in one HTML file."),
        new_code_cell(SETUP),
        new_code_cell("""fig, ax = plt.subplots(figsize=(6, 4))
aa.plot_learning_curves(runs, by="method", ax=ax)
plt.show()"""),
        new_code_cell("""for metric in ("eval_loss", "exact_match"):
    if metric in runs and runs[metric].notna().any():
        table = aa.summarize(runs, by=["method"], metric=metric, lower_is_better=metric != "exact_match")
        print("\\n".join(aa.describe(table, metric)))
        display(table)"""),
        new_code_cell("""target = float(runs["train_loss"].median())
conv = aa.load_runs(SWEEP, target_loss=target)
fig, ax = plt.subplots(figsize=(5, 4))
aa.plot_convergence(conv, by="method", ax=ax)
ax.set_title(f"steps to train loss <= {target:.3f}")
plt.show()"""),
    ],
}


def main():
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                "language": "python"}})
        nbformat.write(nb, os.path.join(HERE, "notebooks", name))
        print("wrote", name)


if __name__ == "__main__":
    main()
