"""Comparisons that hold up: paired differences, hierarchical bootstrap, Holm.

A sweep's runs of different methods share seeds (hence data order) and are
scored on the same eval examples, so methods are compared pairwise on the same
units: for methods A and B the paired differences

    D[s, e] = X_A[s, e] - X_B[s, e]          // (S seeds, E examples)

and their mean d = mean(D). Its uncertainty comes from two sources, the seeds
(a new seed gives a new adapter init and data order) and the examples (a new
eval set gives new examples), so the bootstrap is hierarchical: each replicate
draws S seeds with replacement, then E examples with replacement within each
drawn seed, and takes the mean. Resampling both levels as they are would count
the examples' noise twice (the seed means already carry it) and shrink the seed
spread by (S-1)/S, so before resampling the within-seed deviations are scaled by
sqrt(E/(E-1)) and the seed means about the grand mean by
sqrt(max(0, S/(S-1) - s_w^2/(E v_m))) (s_w^2 the within-seed variance, v_m the
variance of the seed means): the replicates' variance is then the unbiased
var(seed means)/S of the nested design (Davison & Hinkley 1997, sec. 3.8).
Replicates are clipped to the metric's range, so percentile intervals of a
bounded metric (exact match, accuracy in [0, 1]) stay inside it.

    interval  percentile interval (level, default 95%) of the replicates after
              widening them about d by t_{df}/z at that level, df = S - 1 (E - 1
              for one seed): the seed means are S units, and a bootstrap of few
              units has normal tails where Student's t is right (with 3 seeds
              the plain percentile bootstrap rejected a true null 14% of the time
              at alpha 0.05 in tests/stats.sh's simulations). With S >= 2 the
              replicates are first scaled about d to the paired t-test's standard
              error sd(seed means)/sqrt(S), so that interval and test agree; the
              bootstrap gives the shape. Replicates are clipped to the metric's
              range afterwards.
    p-value   two-sided paired t-test on the S per-seed mean differences (df S - 1;
              their variance / S is what the bootstrap's replicates have, so the
              test and the interval agree up to bootstrap noise, and the test is
              exact for normal seed means). One seed: t = d / sd(replicates) with
              df E - 1. Unpaired groups: the same with the smaller group's df.
    Holm      over every pair of groups in a table (all k(k-1)/2): a "resolved"
              difference is a family-wise claim at alpha, including against the
              best group, which was picked by the same data
    effect    paired mean difference d with n (seeds, examples), and the
              standardized d_z = d / sd(D) over the paired cells (Cohen's d_z)

Without per-example scores (run files written before /eval/examples existed)
each run contributes one number, its final metric, and the bootstrap is over
seeds only (basis "seeds"). A group of one seed with 0/1 per-example scores gets
a Wilson interval (seed variance cannot be estimated from one seed; basis
"wilson"). With few seeds the seed-level variance rests on few units: the
intervals are wide (t with S - 1 df), and tests/stats.sh measures their error
rates on simulated sweeps. Deterministic: every bootstrap draws from a generator seeded by
`seed` and the comparison's name.
"""
import zlib

import numpy as np
import pandas as pd
from scipy import stats

# metrics whose values lie in [0, 1] (fractions of examples); loss and perplexity are unbounded above
BOUNDED = ("exact_match", "accuracy", "acc", "acc_norm", "em", "f1", "label", "mc", "gsm8k", "squad",
           "rouge", "rouge1", "rouge2", "rougeL", "rougeLsum", "score")


def metric_bounds(metric):
    """(low, high) of a metric's values: [0, 1] for fractions, [0, inf) for loss, [1, inf) for ppl"""
    name = str(metric).split("/")[-1]
    if name.startswith("eval_"):
        name = name[5:]
    if name in BOUNDED or name.startswith("rouge"):
        return 0.0, 1.0
    if name.endswith("ppl"):
        return 1.0, np.inf
    if name.endswith("loss"):
        return 0.0, np.inf
    return -np.inf, np.inf


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


def wilson(k, n, level=0.95):
    """Wilson score interval of a proportion k/n (inside [0, 1] by construction)"""
    if n <= 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def holm(pvalues):
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN):
    the i-th smallest p becomes max_{j<=i} min(1, (m - j + 1) p_(j))"""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adjusted)
    return out


def _rng(seed, name):
    return np.random.default_rng([int(seed), zlib.crc32(str(name).encode())])


def bootstrap_means(X, B=2000, rng=None, chunk=250):
    """B hierarchical-bootstrap replicates of the mean of X (S, E): seeds drawn with
    replacement, then examples with replacement within each drawn seed; seed means
    and within-seed deviations spread by sqrt(n/(n-1)) first (see the module notes)"""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    S, E = X.shape
    rng = rng if rng is not None else np.random.default_rng(0)
    m = X.mean(axis=1)
    grand = m.mean()
    ce2 = E / (E - 1) if E > 1 else 1.0
    vw = float(((X - m[:, None]) ** 2).mean())   # within-seed variance (divisor E), pooled
    vm = float(((m - grand) ** 2).mean())        # variance of the seed means (divisor S)
    # replicate variance = cs2 vm / S + ce2 vw / (S E); the mean of S nested units has
    # variance var(m_s) / S, estimated without bias by S/(S-1) vm / S: the seed means
    # already carry the examples' noise, so the seed spread is shrunk by it
    cs2 = max(0.0, S / (S - 1) - ce2 * vw / (E * vm)) if S > 1 and vm > 0 else 0.0
    Y = grand + np.sqrt(cs2) * (m - grand)[:, None] + np.sqrt(ce2) * (X - m[:, None])
    reps = np.empty(B)
    for start in range(0, B, chunk):
        b = min(chunk, B - start)
        si = rng.integers(0, S, size=(b, S))
        if E > 1:
            ei = rng.integers(0, E, size=(b, S, E))
            reps[start:start + b] = Y[si[:, :, None], ei].mean(axis=(1, 2))
        else:
            reps[start:start + b] = Y[si, 0].mean(axis=1)
    return reps


def _df(shape):
    S, E = shape
    return S - 1 if S > 1 else E - 1


def _percentile(reps, center, df, level, low, high):
    """percentile interval of the replicates widened about center by t_df / z, clipped to [low, high]"""
    q = 0.5 + level / 2
    k = stats.t.ppf(q, df) / stats.norm.ppf(q) if df >= 1 else np.nan
    if not np.isfinite(k):
        return float("nan"), float("nan")
    reps = np.clip(center + k * (reps - center), low, high)
    a = (1 - level) / 2
    return float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a))


def _to_seed_se(reps, X, center):
    """replicates scaled about center to the standard error of the seed means,
    sd(m_s)/sqrt(S), the one the paired t-test uses (S >= 2): the interval and the
    test then agree. The bootstrap's own spread is larger where the seed means vary
    less than the examples' noise predicts (its seed spread is floored at 0)."""
    S = X.shape[0]
    sd = float(np.std(reps, ddof=1))
    if S < 2 or not sd > 0:
        return reps
    se = float(X.mean(axis=1).std(ddof=1)) / np.sqrt(S)
    return center + (se / sd) * (reps - center)


def _p_two_sided(d, reps, df):
    """two-sided p of d / sd(replicates) against Student's t with df degrees of freedom"""
    se = float(np.std(reps, ddof=1))
    if df < 1 or not np.isfinite(se):
        return float("nan")
    if se == 0:
        return 1.0 if d == 0 else 0.0
    return float(2 * stats.t.sf(abs(d) / se, df))


def group_interval(X, metric, level=0.95, B=2000, seed=0, name=""):
    """mean and interval of one group's scores X (S, E); see the module notes"""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    S, E = X.shape
    low, high = metric_bounds(metric)
    mean = float(X.mean())
    if S == 1 and E == 1:
        return mean, float("nan"), float("nan"), "one run"
    if S == 1 and E > 1 and np.isin(X, (0.0, 1.0)).all():
        lo, hi = wilson(int(X.sum()), E, level)
        return mean, lo, hi, "wilson"
    reps = _to_seed_se(bootstrap_means(X, B, _rng(seed, name)), X, mean)
    lo, hi = _percentile(reps, mean, _df(X.shape), level, low, high)
    return mean, lo, hi, "bootstrap"


def paired_difference(XA, XB, metric, level=0.95, B=2000, seed=0, name=""):
    """Paired comparison of two groups on the same seeds (rows) and examples
    (columns): dict of diff (mean of A - B), ci_low, ci_high, p, effect_d (d_z),
    n_seeds, n_examples."""
    XA = np.asarray(XA, dtype=float)
    XB = np.asarray(XB, dtype=float)
    XA = XA[:, None] if XA.ndim == 1 else XA
    XB = XB[:, None] if XB.ndim == 1 else XB
    low, high = metric_bounds(metric)
    span = high - low
    if XA.shape != XB.shape:
        raise ValueError(f"paired groups need the same seeds and examples: {XA.shape} != {XB.shape}")
    D = XA - XB
    diff = float(D.mean())
    sd = float(D.std(ddof=1)) if D.size > 1 else float("nan")
    reps = bootstrap_means(D, B, _rng(seed, name)) if D.size > 1 else None
    n_seeds, n_examples = D.shape
    paired = True
    out = dict(diff=diff, n_seeds=int(n_seeds), n_examples=int(n_examples), paired=paired,
               effect_d=diff / sd if sd and np.isfinite(sd) and sd > 0 else float("nan"))
    if reps is None:
        out.update(ci_low=float("nan"), ci_high=float("nan"), p=float("nan"))
        return out
    reps = _to_seed_se(reps, D, diff)
    lo, hi = _percentile(reps, diff, _df(D.shape), level, -span, span)
    if n_seeds > 1:  # the paired t-test on the seed means: exact for normal seed means, no bootstrap noise
        m = D.mean(axis=1)
        sm = float(m.std(ddof=1))
        p = float(2 * stats.t.sf(abs(diff) / (sm / np.sqrt(n_seeds)), n_seeds - 1)) if sm > 0 else float(diff == 0)
    else:
        p = _p_two_sided(diff, reps, _df(D.shape))
    out.update(ci_low=lo, ci_high=hi, p=p)
    return out


# ---- run tables ----

def _example_scores(path, metric):
    """per-example scores of the run file's last eval step for metric, or None"""
    from .runs import load_examples
    ex = load_examples(path)
    if ex is None:
        return None
    name = str(metric)
    name = name[5:] if name.startswith("eval_") else name
    if name in ex:
        return ex[name]
    # score: the task metric of each example; it stands for the metric it names (or, unnamed,
    # for any eval metric but loss and perplexity); never for train-side columns
    if name.startswith("retention"):  # the retention set's metrics have no per-example scores here
        return None
    if "score" in ex and (ex.get("metric") == name or
                          ("metric" not in ex and name not in ("loss", "ppl") and not str(metric).startswith("train"))):
        return ex["score"]
    return None


def finished_runs(runs, metric):
    """(the runs that count, {reason: count} of those left out): unfinished runs
    (steps_done < steps, or no eval when the metric is an eval one) and runs
    without a finite value of metric"""
    excluded = {}
    keep = np.ones(len(runs), dtype=bool)
    if "finished" in runs:
        bad = ~runs["finished"].fillna(False).astype(bool).to_numpy()
        for reason, count in runs.loc[bad, "unfinished"].value_counts().items():
            excluded[reason] = int(count)
        keep &= ~bad
    if metric in runs:
        missing = keep & ~np.isfinite(pd.to_numeric(runs[metric], errors="coerce").to_numpy(dtype=float))
    else:
        missing = keep.copy()
    if missing.any():
        excluded[f"no {metric}"] = int(missing.sum())
    keep &= ~missing
    return runs[keep], excluded


def _units(group, metric, pair_on, use_examples):
    """({unit key: scores (E,)}, basis, keyed) of one group: per-example scores
    (basis 'examples') when every run has them and use_examples, else one number
    per run (basis 'seeds'); keyed: whether units carry the pairing keys"""
    keys = [k for k in pair_on if k in group]
    scores = {}
    basis = "examples" if use_examples and ("path" in group or "scores" in group) else "seeds"
    for i, (_, run) in enumerate(group.iterrows()):
        key = tuple(run[k] for k in keys) if keys else ("run", i)
        if key in scores:
            raise ValueError(f"two runs with {dict(zip(keys, key))} in one group: add the key that "
                             f"differs between them to `by`")
        x = None
        if basis == "examples":  # a `scores` column (arrays) wins over the run file's
            x = run["scores"] if "scores" in run and run["scores"] is not None else _example_scores(run["path"], metric)
        if x is None:
            basis = "seeds"
        scores[key] = np.asarray(x, dtype=float) if x is not None else None
        if basis == "seeds":
            break
    if basis == "seeds":
        scores = {}
        for i, (_, run) in enumerate(group.iterrows()):
            key = tuple(run[k] for k in keys) if keys else ("run", i)
            scores[key] = np.array([float(run[metric])])
    return scores, basis, bool(keys)


def _matrix(scores, keys):
    rows = [scores[k] for k in keys]
    E = {len(r) for r in rows}
    if len(E) != 1:
        raise ValueError(f"runs of one group have different numbers of eval examples: {sorted(E)}")
    return np.vstack(rows)


def compare(runs, by=("method",), metric="eval_loss", level=0.95, B=2000, seed=0, pair_on=("seed",),
            examples=True):
    """Every pair of groups: the difference A - B paired on common seeds (and the
    same examples), its interval, p, Holm-adjusted p over all pairs, d_z and n.
    Groups without common seeds, or scored on different examples, are compared
    unpaired. Returns (pairs DataFrame, {group key: units}, {excluded reason: count})."""
    by = list(by)
    kept, excluded = finished_runs(runs, metric)
    members = {}
    for key, group in kept.groupby(by if len(by) > 1 else by[0], sort=True, dropna=False):  # a key a run lacks: NaN, kept
        members[key if isinstance(key, tuple) else (key,)] = group
    groups = {key: dict(zip(("scores", "basis", "keyed"), _units(g, metric, pair_on, examples)))
              for key, g in members.items()}
    # one basis for the whole table: per-example scores only when every group has them
    if any(g["basis"] == "seeds" for g in groups.values()):
        groups = {key: dict(zip(("scores", "basis", "keyed"), _units(g, metric, pair_on, False)))
                  for key, g in members.items()}
    rows = []
    names = list(groups)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = groups[names[i]], groups[names[j]]
            name = f"{names[i]}|{names[j]}"
            common = [k for k in a["scores"] if k in b["scores"]] if a["keyed"] and b["keyed"] else []
            XA = _matrix(a["scores"], common or list(a["scores"]))
            XB = _matrix(b["scores"], common or list(b["scores"]))
            if common and XA.shape == XB.shape:
                r = paired_difference(XA, XB, metric, level, B, seed, name=name)
            else:
                r = _unpaired(_matrix(a["scores"], list(a["scores"])), _matrix(b["scores"], list(b["scores"])),
                              metric, level, B, seed, name)
            rows.append(dict(a=names[i], b=names[j], **r, basis=a["basis"]))
    pairs = pd.DataFrame(rows)
    if not pairs.empty:
        pairs["p_holm"] = holm(pairs["p"])
    return pairs, groups, excluded


def _unpaired(XA, XB, metric, level, B, seed, name):
    """paired_difference for groups without common units (independent bootstraps)"""
    low, high = metric_bounds(metric)
    span = high - low
    rng = _rng(seed, name)
    diff = float(XA.mean() - XB.mean())
    pooled = np.concatenate([(XA - XA.mean()).ravel(), (XB - XB.mean()).ravel()])
    sd = float(np.sqrt((pooled ** 2).sum() / max(pooled.size - 2, 1))) if pooled.size > 2 else float("nan")
    out = dict(diff=diff, n_seeds=int(min(XA.shape[0], XB.shape[0])), n_examples=int(min(XA.shape[1], XB.shape[1])),
               paired=False, effect_d=diff / sd if np.isfinite(sd) and sd > 0 else float("nan"))
    if XA.size < 2 or XB.size < 2:
        out.update(ci_low=float("nan"), ci_high=float("nan"), p=float("nan"))
        return out
    reps = bootstrap_means(XA, B, rng) - bootstrap_means(XB, B, rng)
    df = min(_df(XA.shape), _df(XB.shape))  # conservative: the smaller group's units
    lo, hi = _percentile(reps, diff, df, level, -span, span)
    out.update(ci_low=lo, ci_high=hi, p=_p_two_sided(diff, reps, df))
    return out


def summarize(runs, by=("method",), metric="eval_loss", lower_is_better=True, level=0.95, B=2000, seed=0,
              pair_on=("seed",), examples=True):
    """One row per group, best first: mean with its interval (ci_low, ci_high), n
    (seeds/runs) and n_examples; the paired difference to the best group (diff, its
    interval diff_low/diff_high, d_z effect), its p-value, the Holm-adjusted p over
    all pairs of groups (p_holm) and `resolved` (p_holm < 1 - level). Unfinished runs
    are left out and counted in table.attrs["excluded"]; table.attrs["basis"] says
    whether the bootstrap ran over seeds and examples or over seeds only."""
    by = list(by)
    pairs, groups, excluded = compare(runs, by, metric, level, B, seed, pair_on, examples)
    rows = []
    for key, g in groups.items():
        X = _matrix(g["scores"], list(g["scores"]))
        mean, lo, hi, how = group_interval(X, metric, level, B, seed, name=key)
        row = dict(zip(by, key))
        row.update(mean=mean, ci_low=lo, ci_high=hi, n=X.shape[0], n_examples=X.shape[1] if g["basis"] == "examples" else 0)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["excluded"] = excluded
    if table.empty:
        table.attrs["basis"] = "none"
        return table
    basis = {g["basis"] for g in groups.values()}
    table.attrs["basis"] = "examples" if basis == {"examples"} else "seeds"
    keys = list(groups)
    best = int(table["mean"].idxmin() if lower_is_better else table["mean"].idxmax())
    best_key = keys[best]
    for col in ("diff", "diff_low", "diff_high", "effect_d", "p", "p_holm"):
        table[col] = np.nan
    for i, key in enumerate(keys):
        if i == best or pairs.empty:
            continue
        hit = pairs.iloc[next(n for n, (a, b) in enumerate(zip(pairs["a"], pairs["b"]))
                              if {a, b} == {key, best_key})]
        sign = 1.0 if hit["a"] == key else -1.0  # this group minus the best
        lo, hi = sign * hit["ci_low"], sign * hit["ci_high"]
        table.loc[i, ["diff", "diff_low", "diff_high", "effect_d", "p", "p_holm"]] = [
            sign * hit["diff"], min(lo, hi), max(lo, hi), sign * hit["effect_d"], hit["p"], hit["p_holm"]]
    table["resolved"] = table["p_holm"] < (1 - level)
    table = table.sort_values("mean", ascending=lower_is_better, kind="stable").reset_index(drop=True)
    table.attrs.update(excluded=excluded, basis=table.attrs.get("basis", "seeds"))
    return table


def describe(table, metric, level=0.95):
    """the lines printed above a summarize table: basis, exclusions, how to read it"""
    lines = []
    basis = table.attrs.get("basis", "seeds")
    if basis == "examples":
        lines.append(f"{metric}: hierarchical bootstrap over seeds and eval examples (per-example scores)")
    else:
        lines.append(f"{metric}: per-run metrics, bootstrap over seeds only (no per-example scores "
                     f"under /eval/examples in these run files)")
    lines.append(f"{int(level * 100)}% percentile intervals; diff = group - best, paired on seed; "
                 f"p_holm: Holm over all pairs; resolved: p_holm < {1 - level:.2f}; effect_d: d_z")
    if len(table) and table["n"].min() < 5:
        n = int(table["n"].min())
        lines.append(f"note: {n} seed(s) in the smallest group: the seed-level variance rests on {n} unit(s), "
                     f"so intervals are wide (Student's t, {max(n - 1, 0)} df)" if n > 1 else
                     f"note: one seed in a group: no seed-level variance, its interval covers the examples only")
    excluded = table.attrs.get("excluded", {})
    if excluded:
        lines.append("excluded: " + ", ".join(f"{n} run(s) {why}" for why, n in excluded.items()))
    return lines
