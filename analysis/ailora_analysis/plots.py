"""Figures of a sweep: learning curves with seed bands, spectra, ratio heatmaps."""
import sys

import matplotlib

if "ipykernel" not in sys.modules:  # scripts and clusters: no display; notebooks keep inline
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .runs import load_curves, load_spectra  # noqa: E402


def plot_learning_curves(runs, by="method", metric="loss", group="train", ax=None):
    """mean curve per group with a band of +- one std over its runs (seeds)"""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    curves = load_curves(runs, group)
    for name, members in runs.groupby(by):
        sub = curves[curves["path"].isin(members["path"])]  # by path: runs may be a filtered frame
        table = sub.pivot_table(index="step", columns="path", values=metric)
        mean, std = table.mean(axis=1), table.std(axis=1).fillna(0.0)
        ax.plot(mean.index, mean.values, label=f"{name} (n={table.shape[1]})")
        ax.fill_between(mean.index, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{group} {metric}")
    ax.legend()
    return ax


def plot_spectra(path, layer=0, ax=None):
    """singular values of W^Q and W^V of one layer, log scale, selected components marked"""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for module, (S, selected) in load_spectra(path).items():
        if f"layers.{layer}." not in module:
            continue
        name = module.rsplit(".", 1)[-1]
        line, = ax.semilogy(np.arange(len(S)), np.maximum(S, 1e-300), label=name)
        if len(selected):
            ax.semilogy(selected, np.maximum(S[selected], 1e-300), "o", color=line.get_color(),
                        label=f"{name} selected")
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.set_title(f"layer {layer}")
    ax.legend()
    return ax


def plot_ratio_heatmap(runs, metric="eval_loss", ax=None):
    """mean metric over seeds on the ratio_q x ratio_v grid"""
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    grid = runs.pivot_table(index="ratio_q", columns="ratio_v", values=metric, aggfunc="mean")
    im = ax.imshow(grid.values, origin="lower", cmap="viridis")
    ax.set_xticks(range(len(grid.columns)), [f"{v:g}" for v in grid.columns])
    ax.set_yticks(range(len(grid.index)), [f"{v:g}" for v in grid.index])
    ax.set_xlabel("ratio_v (principal fraction of W^V)")
    ax.set_ylabel("ratio_q (principal fraction of W^Q)")
    plt.colorbar(im, ax=ax, label=metric)
    return ax


def plot_convergence(runs, by="method", ax=None):
    """steps to the target loss per group (needs load_runs(..., target_loss=...))"""
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    groups = runs.groupby(by)["steps_to_target"]
    names = [str(k) for k in groups.groups]
    ax.bar(names, groups.mean().values, yerr=groups.std().fillna(0).values, capsize=4)
    ax.set_ylabel("steps to target loss")
    return ax
