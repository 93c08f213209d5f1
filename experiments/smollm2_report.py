"""smollm2_report.py FINAL_DIR [--figure PNG] - the SmolLM2 study's tables and figure.

For each task of the study's final stage (test split, 3 seeds per method at the
learning rate chosen on validation): the task metric, the eval loss and the
retention metric (the other task's test split, before and after fine-tuning), each
as the mean with its 95% interval from ailora_analysis.summarize (hierarchical
bootstrap over seeds and test examples where per-example scores exist, else over
seeds), the paired difference to the best method and the Holm-adjusted p. Prints
Markdown; --figure writes one PNG (task metric and retention per method, with
intervals). Run with /usr/bin/python3 (h5py, pandas, matplotlib from Debian).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "analysis"))

from ailora_analysis import load_runs, summarize  # noqa: E402

# task -> (its metric, the retention set's metric: PIQA accuracy for ASDiv runs, ASDiv
# answer loss for PIQA runs (scored without decoding: experiments/smollm2_study.sh))
TASKS = {"asdiv": ("gsm8k", "mc_acc"), "piqa": ("mc_acc", "loss")}
RATIOS = {"lora": "random", "pissa": "q 1, v 1", "milora": "q 0, v 0", "ailora": "q 1, v 0", "ratio": "q .5, v .5"}


def fmt(mean, lo, hi, digits=3):
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def task_tables(runs, task, seed=0):
    metric, ret = TASKS[task]
    r = runs[runs["task"] == task]
    main = summarize(r, by=["method"], metric=metric, lower_is_better=False, seed=seed)
    loss = summarize(r, by=["method"], metric="eval_loss", lower_is_better=True, seed=seed).set_index("method")
    rcol = "retention_" + ret
    retn = summarize(r, by=["method"], metric=rcol, lower_is_better=ret.endswith("loss"), seed=seed).set_index("method") \
        if rcol in r.columns else None
    before = float(r[rcol + "_before"].iloc[0]) if rcol + "_before" in r.columns else float("nan")
    return metric, ret, main, loss, retn, before


def markdown(runs, task):
    metric, ret, main, loss, retn, before = task_tables(runs, task)
    r = runs[runs["task"] == task]
    lr = r.groupby("method")["lr"].first()
    lines = [f"| method (principal share) | lr | test {metric} | vs best | p (Holm) | test loss | "
             f"retention: {ret} (before {before:.3f}) |",
             "|---|---|---|---|---|---|---|"]
    for _, row in main.iterrows():
        m = row["method"]
        diff = "best" if row["diff"] != row["diff"] else fmt(row["diff"], row["diff_low"], row["diff_high"])
        p = "" if row["p_holm"] != row["p_holm"] else f"{row['p_holm']:.3f}"
        lo = loss.loc[m]
        rt = retn.loc[m] if retn is not None else None
        rtxt = fmt(rt["mean"], rt["ci_low"], rt["ci_high"]) if rt is not None else "-"
        lines.append(f"| {m} ({RATIOS.get(m, '')}) | {lr[m]:g} | {fmt(row['mean'], row['ci_low'], row['ci_high'])} | "
                     f"{diff} | {p} | {fmt(lo['mean'], lo['ci_low'], lo['ci_high'])} | {rtxt} |")
    n = int(main["n"].max()) if len(main) else 0
    ne = int(main["n_examples"].max()) if len(main) else 0
    lines.append("")
    lines.append(f"{task}: {n} seeds per method, {ne or 'no per-example'} test examples per run "
                 f"({main.attrs.get('basis')} bootstrap); excluded runs: {main.attrs.get('excluded') or 'none'}")
    return "\n".join(lines)


def figure(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = [t for t in TASKS if (runs["task"] == t).any()]
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.2 * len(tasks)), squeeze=False)
    for i, task in enumerate(tasks):
        metric, ret, main, _, retn, before = task_tables(runs, task)
        order = list(RATIOS)
        for j, (tab, name) in enumerate(((main.set_index("method"), f"{task}: test {metric}"),
                                         (retn, f"{task} runs: retention {ret} (other task)"))):
            ax = axes[i][j]
            if tab is None:
                ax.set_visible(False)
                continue
            ms = [m for m in order if m in tab.index]
            y = [tab.loc[m, "mean"] for m in ms]
            err = [[tab.loc[m, "mean"] - tab.loc[m, "ci_low"] for m in ms],
                   [tab.loc[m, "ci_high"] - tab.loc[m, "mean"] for m in ms]]
            ax.errorbar(range(len(ms)), y, yerr=err, fmt="o", capsize=4)
            ax.set_xticks(range(len(ms)), ms)
            ax.set_title(name, fontsize=10)
            if j == 1 and before == before:
                ax.axhline(before, color="gray", ls="--", lw=1, label="before fine-tuning")
                ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle("SmolLM2-135M-Instruct (Q4_1 GGUF), LoRA r=8 on q,v, 30 steps; 95% intervals", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("final_dir", help="the sweep's final stage folder (<out_dir>/<name>/final)")
    ap.add_argument("--figure", help="PNG to write")
    a = ap.parse_args()
    runs = load_runs(a.final_dir)
    if runs.empty:
        sys.exit(f"smollm2_report: no run files under {a.final_dir}")
    for task in TASKS:
        if (runs["task"] == task).any():
            print(f"### {task}\n")
            print(markdown(runs, task))
            print()
    if a.figure:
        figure(runs, a.figure)
        print(f"figure: {a.figure}")


if __name__ == "__main__":
    main()
