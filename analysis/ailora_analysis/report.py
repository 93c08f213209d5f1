"""python3 -m ailora_analysis.report SWEEP_DIR --out report.html

One self-contained HTML file (inline CSS, figures as base64 PNG) from a sweep
folder: run counts (unfinished runs counted and listed), a table per metric with
intervals, paired differences to the best group, Holm-adjusted p-values and
effect sizes (stats.py), all pairwise comparisons, learning curves, singular
spectra with the selected components marked, /diagnostics when the run files
have it, and provenance (each run's config, model fingerprint and per-module
source fingerprints). Deterministic for a given sweep and --seed."""
import argparse
import base64
import html
import io
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .diagnostics import load_diagnostics, plot_update_energy  # noqa: E402
from .plots import plot_learning_curves, plot_spectra  # noqa: E402
from .runs import _text, load_curves, load_runs, load_spectra  # noqa: E402
from .stats import compare, describe, summarize  # noqa: E402

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
tr.resolved td { background: #eef7ee; }
p.note { color: #555; font-size: .9em; margin: .2em 0; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: .8em; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; }
details { margin: .3em 0; } code { font-size: .9em; }
"""

# config keys that name files or outputs, not experimental factors
NOT_FACTORS = {"out", "path", "seed", "config", "svd_cache", "resume", "overwrite", "out_model",
               "log_every", "eval_every", "checkpoint_every", "checkpoint_minutes", "steps_done"}


def _esc(value):
    return html.escape(str(value))


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _fmt(v):
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else ""
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return ""
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    return _esc(v)


_L = ' class="l"'


def html_table(df, cls="", left=(), row_class=None):
    """a DataFrame as an HTML table; columns in `left` left-aligned"""
    out = [f'<table class="{cls}"><thead><tr>' if cls else "<table><thead><tr>"]
    out += [f'<th{_L if c in left else ""}>{_esc(c)}</th>' for c in df.columns]
    out.append("</tr></thead><tbody>")
    for i, (_, row) in enumerate(df.iterrows()):
        rc = row_class(row) if row_class else ""
        out.append(f'<tr class="{rc}">' if rc else "<tr>")
        out += [f'<td{_L if c in left else ""}>{_fmt(row[c])}</td>' for c in df.columns]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def factors(runs):
    """config keys that vary between finished runs (the sweep's grid, less seed)"""
    out = []
    metrics = set(runs["example_metric"].dropna()) if "example_metric" in runs else set()
    for col in runs.columns:
        if col in metrics:
            continue
        if col in NOT_FACTORS or col in ("finished", "unfinished", "has_examples", "train_loss", "eval_loss",
                                         "eval_ppl", "exact_match", "steps_to_target", "example_metric", "score"):
            continue
        values = runs[col].dropna().astype(str).unique()
        if 1 < len(values) < len(runs) or (col == "method" and len(values) > 1):
            out.append(col)
    if "method" in out:  # method first: the comparison the sweeps are made for
        out.remove("method")
        out.insert(0, "method")
    return out


def section_tables(runs, by, level, seed, B):
    parts = []
    names = ["exact_match"]
    if "example_metric" in runs:  # the task metrics of per-example scores (accuracy, squad, ...)
        names += [m for m in runs["example_metric"].dropna().unique() if m not in names]
    metrics = [(m, m.endswith(("loss", "ppl"))) for m in names + ["eval_loss", "train_loss"]
               if m in runs and pd.to_numeric(runs[m], errors="coerce").notna().any()]
    for metric, lower in metrics:
        table = summarize(runs, by=by, metric=metric, lower_is_better=lower, level=level, B=B, seed=seed)
        parts.append(f'<h3 id="table-{metric}">{_esc(metric)} ({"lower" if lower else "higher"} is better)</h3>')
        parts += [f'<p class="note">{_esc(line)}</p>' for line in describe(table, metric, level)]
        if table.empty:
            parts.append("<p>no finished run has this metric</p>")
            continue
        cols = by + ["n", "n_examples", "mean", "ci_low", "ci_high", "diff", "diff_low", "diff_high", "effect_d",
                     "p", "p_holm", "resolved"]
        parts.append(html_table(table[cols], cls="summary", left=by,
                                row_class=lambda r: "resolved" if r["resolved"] else ""))
        pairs = compare(runs, by=by, metric=metric, level=level, B=B, seed=seed)[0]
        if len(pairs) > 1:
            pairs = pairs.copy()
            pairs["a"] = [", ".join(map(str, k)) for k in pairs["a"]]
            pairs["b"] = [", ".join(map(str, k)) for k in pairs["b"]]
            pairs["resolved"] = pairs["p_holm"] < 1 - level
            parts.append(f"<details><summary>all {len(pairs)} pairs (a - b)</summary>")
            parts.append(html_table(pairs[["a", "b", "paired", "n_seeds", "n_examples", "diff", "ci_low", "ci_high",
                                           "effect_d", "p", "p_holm", "resolved"]], cls="pairs", left=("a", "b")))
            parts.append("</details>")
    return "".join(parts)


def section_curves(runs, by):
    parts = []
    for group, metric in (("train", "loss"), ("eval", "loss")):
        curves = load_curves(runs, group)
        if curves.empty or metric not in curves or curves["step"].nunique() < 2:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        plot_learning_curves(runs, by=by[0], metric=metric, group=group, ax=ax)
        ax.set_title(f"{group} {metric}: mean over runs, band +- one std")
        parts.append(_png(fig))
    return "".join(parts) or "<p>no curves with two or more points</p>"


def section_spectra(runs):
    parts = []
    for method, members in runs.groupby("method", sort=True):
        path = members["path"].iloc[0]
        spectra = load_spectra(path)
        layers = sorted({int(m.split(".")[2]) for m in spectra if m.split(".")[2].isdigit()})
        if not layers:
            continue
        fig, axes = plt.subplots(1, len(layers), figsize=(3.6 * len(layers), 3.2), squeeze=False)
        for ax, layer in zip(axes[0], layers):
            plot_spectra(path, layer=layer, ax=ax)
        fig.suptitle(f"{method}: {os.path.basename(path)} (selected components marked)")
        parts.append(f"<h3>{_esc(method)}</h3>" + _png(fig))
    return "".join(parts) or "<p>no spectra</p>"


def section_diagnostics(runs):
    """/diagnostics (include/ailora/updatediag.h): per module suffix, the share of each
    update's energy in W's top-K and bottom-K singular vectors over training (left and
    right), the effective rank, and a table of the last evaluation's values"""
    diag = load_diagnostics(runs)
    if diag.empty:
        return "<p>none of these run files has a /diagnostics group</p>"
    diag["suffix"] = diag["module"].str.rsplit(".", n=1).str[-1]
    parts = [f'<p class="note">{diag["path"].nunique()} run file(s) with /diagnostics; K = '
             f'{", ".join(str(k) for k in sorted(diag["K"].unique()))} singular vectors from each end of W\'s '
             "spectrum; energy = share of ||s(BA - B0A0)||_F^2 inside their span</p>"]
    for suffix in sorted(diag["suffix"].unique()):
        for side in ("u", "v"):
            fig, ax = plt.subplots(figsize=(6, 3.4))
            plot_update_energy(diag, module_suffix=suffix, ax=ax, side=side)
            ax.set_title(f"{suffix}: {'left' if side == 'u' else 'right'} singular vectors")
            parts.append(_png(fig))
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for method, sub in diag.groupby("method"):
        mean = sub.groupby("step")["effective_rank"].mean()
        ax.plot(mean.index, mean.values, marker="o", label=str(method))
    ax.set_xlabel("step")
    ax.set_ylabel("effective rank of the update")
    ax.legend(fontsize=7)
    parts.append(_png(fig))
    last = diag[diag["step"] == diag.groupby("path")["step"].transform("max")]
    cols = ["effective_rank", "energy_u_top", "energy_u_bottom", "energy_v_top", "energy_v_bottom", "sigma_0"]
    table = last.groupby(["method", "suffix"])[cols].mean().reset_index()
    table = table.rename(columns={"suffix": "module"})
    parts.append(html_table(table, cls="diagnostics", left=("method", "module")))
    return "".join(parts)


def section_provenance(runs):
    parts = []
    for _, run in runs.iterrows():
        with h5py.File(run["path"], "r") as f:
            model_fp = _text(f.attrs.get("model_fingerprint", ""))
            algo = _text(f.attrs.get("fingerprint_algorithm", ""))
            config = _text(f.attrs.get("config", ""))
            modules = [(m, _text(f[f"adapters/{m}"].attrs.get("fingerprint", "")),
                        _text(f[f"adapters/{m}"].attrs.get("residual_dtype", "")))
                       for m in (f["adapters"] if "adapters" in f else [])]
        state = "finished" if run.get("finished", True) else _esc(run.get("unfinished", "unfinished"))
        parts.append(f'<details class="run"><summary><code>{_esc(os.path.basename(run["path"]))}</code> '
                     f'({state}, step {_esc(run["steps_done"])}); model_fingerprint '
                     f'<code class="fp">{_esc(model_fp) or "(none)"}</code></summary>')
        parts.append(f'<p class="note">{_esc(run["path"])}; fingerprint algorithm {_esc(algo)}</p>')
        if modules:
            parts.append(html_table(pd.DataFrame(modules, columns=["module", "fingerprint", "residual_dtype"]),
                                    cls="fingerprints", left=("module", "fingerprint", "residual_dtype")))
        parts.append(f"<pre>{_esc(config)}</pre></details>")
    return "".join(parts)


def build(sweep_dir, by=None, level=0.95, seed=0, B=2000):
    runs = load_runs(sweep_dir)
    if runs.empty:
        raise SystemExit(f"report: error: no run files under {sweep_dir}")
    finished = runs[runs["finished"]]
    by = by or factors(finished if len(finished) else runs) or ["method"]
    n_unf = int((~runs["finished"]).sum())
    head = [f"<h1>Sweep report: {_esc(os.path.basename(os.path.abspath(sweep_dir)))}</h1>",
            f'<p>{_esc(os.path.abspath(sweep_dir))}: <b id="n-runs">{len(runs)}</b> run files, '
            f'<b id="n-finished">{len(runs) - n_unf}</b> finished, <b id="n-unfinished">{n_unf}</b> unfinished '
            f"(left out of every table). Grouped by {_esc(', '.join(by))}; runs paired on seed.</p>"]
    if n_unf:
        unf = runs[~runs["finished"]][["path", "steps_done", "steps", "unfinished"]].copy()
        unf["path"] = [os.path.basename(p) for p in unf["path"]]
        head.append(html_table(unf, cls="unfinished", left=("path", "unfinished")))
    body = ["<h2>Results</h2>", section_tables(runs, by, level, seed, B),
            "<h2>Learning curves</h2>", section_curves(finished if len(finished) else runs, by),
            "<h2>Spectra</h2>", section_spectra(finished if len(finished) else runs),
            "<h2>Diagnostics</h2>", section_diagnostics(runs),
            "<h2>Provenance</h2>", section_provenance(runs)]
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>ailora sweep report</title>"
            f"<style>{CSS}</style></head><body>" + "".join(head + body) + "</body></html>")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m ailora_analysis.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweep_dir")
    ap.add_argument("--out", required=True, help="the HTML file to write")
    ap.add_argument("--by", help="comma-separated config keys to group by (default: the keys that vary, less seed)")
    ap.add_argument("--level", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.sweep_dir):
        print(f"report: error: {args.sweep_dir} is not a folder", file=sys.stderr)
        return 1
    text = build(args.sweep_dir, args.by.split(",") if args.by else None, args.level, args.seed, args.bootstrap)
    partial = args.out + ".partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, args.out)
    print(f"report: {args.out} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
