"""python3 -m ailora_analysis SWEEP_DIR: summary table and figures of a sweep."""
import argparse
import os

import matplotlib.pyplot as plt

from . import describe, load_runs, plot_learning_curves, plot_spectra, summarize


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sweep_dir")
    ap.add_argument("--by", default="method", help="comma-separated config keys to group by")
    ap.add_argument("--metric", default="eval_loss")
    ap.add_argument("--higher-is-better", action="store_true")
    ap.add_argument("--out", help="folder for PNG figures")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed (results are deterministic)")
    ap.add_argument("--level", type=float, default=0.95)
    ap.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                    help="only runs whose config KEY equals VALUE (repeatable)")
    args = ap.parse_args()
    runs = load_runs(args.sweep_dir)
    if runs.empty:
        raise SystemExit(f"ailora_analysis: no run files under {args.sweep_dir}")
    for cond in args.where:
        key, sep, value = cond.partition("=")
        if not sep or key not in runs.columns:
            raise SystemExit(f"ailora_analysis: --where {cond!r}: not KEY=VALUE with a config key")
        runs = runs[runs[key].astype(str) == value]
        if runs.empty:
            raise SystemExit(f"ailora_analysis: no run has {cond}")
    if args.metric not in runs.columns:
        raise SystemExit(f"ailora_analysis: no metric {args.metric!r} in the run files "
                         f"(have: {', '.join(c for c in runs.columns if c.startswith(('eval', 'retention')) or c in ('exact_match', 'gsm8k', 'mc_acc', 'label'))})")
    by = args.by.split(",")
    table = summarize(runs, by=by, metric=args.metric, lower_is_better=not args.higher_is_better,
                      level=args.level, seed=args.seed)
    print(f"{args.metric} by {', '.join(by)} ({len(runs)} run files)")
    print("\n".join(describe(table, args.metric, args.level)))
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        fig, ax = plt.subplots(figsize=(6, 4))
        plot_learning_curves(runs, by=by[0], ax=ax)
        fig.savefig(os.path.join(args.out, "learning_curves.png"), dpi=120, bbox_inches="tight")
        fig, ax = plt.subplots(figsize=(6, 4))
        plot_spectra(runs["path"].iloc[0], layer=0, ax=ax)
        fig.savefig(os.path.join(args.out, "spectra_layer0.png"), dpi=120, bbox_inches="tight")
        print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
