"""Summaries with confidence intervals: researchers compare inits across seeds."""
import numpy as np
import pandas as pd
from scipy import stats


def mean_ci(values, level=0.95):
    """mean, sample std, n and the half-width of the Student-t confidence interval
    (NaN half-width for n < 2)"""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), 0, float("nan")
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), 1, float("nan")
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n))
    return mean, std, n, half


def summarize(runs, by=("method",), metric="eval_loss", lower_is_better=True, level=0.95):
    """One row per group: mean, std, n, ci_low, ci_high of metric, and `within_noise`:
    True where the group's interval overlaps the best group's (the difference is
    not resolved by these seeds)."""
    by = list(by)
    rows = []
    for key, group in runs.groupby(by if len(by) > 1 else by[0]):
        mean, std, n, half = mean_ci(group[metric], level)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row.update(mean=mean, std=std, n=n, ci_low=mean - half, ci_high=mean + half)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    best = table["mean"].idxmin() if lower_is_better else table["mean"].idxmax()
    lo, hi = table.loc[best, "ci_low"], table.loc[best, "ci_high"]
    overlap = ~((table["ci_high"] < lo) | (table["ci_low"] > hi))
    table["within_noise"] = overlap.where(table[["ci_low", "ci_high"]].notna().all(axis=1), other=True)
    table.loc[best, "within_noise"] = True
    return table.sort_values("mean", ascending=lower_is_better).reset_index(drop=True)
