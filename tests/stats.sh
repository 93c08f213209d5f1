# analysis/ailora_analysis/stats.py: paired differences, hierarchical bootstrap,
# Holm, Wilson, exclusion of unfinished runs -- against closed forms, then on
# simulated sweeps (deterministic seeds): the false-positive rate of one paired
# comparison over 400 null sweeps is alpha within a binomial tolerance, in a
# seed-dominated and an example-dominated regime; Holm over all pairs of 4
# identical methods keeps the family-wise rate at alpha; a known difference is
# found with high power. Python only (no ailora build needed).
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
$PY -c "import numpy, pandas, h5py, matplotlib, scipy" 2> /dev/null ||
    skip "/usr/bin/python3 lacks numpy/pandas/h5py/matplotlib/scipy (scripts/install-deps.sh)"
check env PYTHONPATH="$top_srcdir/analysis" $PY - <<'PY'
import math
import numpy as np
import pandas as pd
from scipy import stats
import ailora_analysis as aa

# ---- closed forms ----
# paired difference of known values: D = A - B, mean, d_z = mean / sd(D, ddof=1), n
A = np.array([[1, 0, 1, 1], [0, 1, 1, 1], [1, 1, 1, 0]], float)
B = np.array([[0, 0, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]], float)
D = A - B
r = aa.paired_difference(A, B, "exact_match", seed=3)
assert abs(r["diff"] - 5 / 12) < 1e-15 and (r["n_seeds"], r["n_examples"]) == (3, 4), r
assert abs(r["effect_d"] - D.mean() / D.std(ddof=1)) < 1e-15, r
# its p is the paired t-test on the per-seed means [0.5, 0.25, 0.5]: t = d / (s / sqrt 3), df 2,
# p = 1 - t / sqrt(t^2 + 2) for df 2 (closed form of Student's t with 2 df)
m = D.mean(axis=1); t = m.mean() / (m.std(ddof=1) / math.sqrt(3))
assert abs(r["p"] - (1 - t / math.sqrt(t * t + 2))) < 1e-12, (r["p"], t)
# seeds only (one number per run): differences 1, 2, 3 -> t = 2 / (1 / sqrt 3), p as above
r = aa.paired_difference([[2.0], [4.0], [6.0]], [[1.0], [2.0], [3.0]], "eval_loss")
t = 2 * math.sqrt(3)
assert r["diff"] == 2.0 and abs(r["p"] - (1 - t / math.sqrt(t * t + 2))) < 1e-12 and r["n_examples"] == 1, r
# Holm by hand: p = .01 .04 .03 .005 -> sorted .005*4 = .02, .01*3 = .03, .03*2 = .06, .04*1 -> max .06
assert np.allclose(aa.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], atol=1e-15)
assert np.allclose(aa.holm([0.5, np.nan, 0.9]), [1.0, np.nan, 1.0], equal_nan=True)  # 0.5*2, then max(1, 0.9)
assert np.allclose(aa.holm([0.4, 0.3]), [0.6, 0.6])  # 0.3*2 = 0.6, then max(0.6, 0.4*1)
# Wilson: k = 0 -> [0, z^2/(n + z^2)]; k = n -> [n/(n + z^2), 1]; k = 5 of 10 symmetric about 1/2
z2 = stats.norm.ppf(0.975) ** 2
assert aa.wilson(0, 10)[0] == 0 and abs(aa.wilson(0, 10)[1] - z2 / (10 + z2)) < 1e-12
assert abs(aa.wilson(10, 10)[0] - 10 / (10 + z2)) < 1e-12 and abs(aa.wilson(10, 10)[1] - 1) < 1e-15
lo, hi = aa.wilson(5, 10); assert abs(lo + hi - 1) < 1e-12 and 0 < lo < 0.5 < hi < 1
# mean_ci: t(0.975, 2) = 4.302652729911275
mean, std, n, half = aa.mean_ci([1.0, 2.0, 3.0])
assert (mean, std, n) == (2.0, 1.0, 3) and abs(half - 4.302652729911275 / math.sqrt(3)) < 1e-12
# the bootstrap's variance is the nested design's unbiased var(seed means) / S: B = 40000
# replicates estimate a variance to ~sqrt(2/B) = 0.7% relative; 4% is over 5 sigma
rng = np.random.default_rng(7)
X = rng.normal(0, 1, (5, 30)) + rng.normal(0, 2, (5, 1))
reps = aa.bootstrap_means(X, 40000, np.random.default_rng(1))
want = X.mean(axis=1).var(ddof=1) / 5
assert abs(reps.var() / want - 1) < 0.04 and abs(reps.mean() - X.mean()) < 0.01, (reps.var(), want)
# deterministic by seed; another seed, other replicates
r1, r2 = aa.paired_difference(A, B, "exact_match", seed=5), aa.paired_difference(A, B, "exact_match", seed=5)
assert r1 == r2
assert (aa.bootstrap_means(X, 100, np.random.default_rng(2)) != aa.bootstrap_means(X, 100, np.random.default_rng(3))).any()
assert (aa.bootstrap_means(X, 100, np.random.default_rng(2)) == aa.bootstrap_means(X, 100, np.random.default_rng(2))).all()
# bounded metrics: intervals inside [0, 1] (means) and [-1, 1] (differences), even near the edge
hi_acc = np.ones((3, 40)); hi_acc[0, :2] = 0; hi_acc[2, 0] = 0
for x in (hi_acc, np.ones((3, 40)), 1 - hi_acc):
    mean, lo, hi, how = aa.group_interval(x, "exact_match")
    assert 0 <= lo <= mean <= hi <= 1 and how == "bootstrap", (mean, lo, hi)
r = aa.paired_difference(np.ones((2, 5)), np.zeros((2, 5)) + np.eye(2, 5), "exact_match")
assert -1 <= r["ci_low"] <= r["diff"] <= r["ci_high"] <= 1, r
mean, lo, hi, how = aa.group_interval(np.ones((1, 20)), "accuracy")
assert how == "wilson" and abs(hi - 1) < 1e-15 and abs(lo - 20 / (20 + z2)) < 1e-12
lo, hi = aa.group_interval([[1.0], [1.1], [0.9]], "eval_loss")[1:3]
assert lo < 1.0 < hi, (lo, hi)

# ---- run tables: unfinished runs out and counted, basis, columns ----
rows = []
for method, shift in (("a", 0.0), ("b", 0.0), ("c", 2.0)):
    for seed in range(4):
        rows.append(dict(method=method, seed=seed, x=1.0 + shift + 0.1 * seed + 0.01 * (method == "b"),
                         finished=True, unfinished=""))
rows.append(dict(method="a", seed=9, x=np.nan, finished=False, unfinished="unfinished (step < steps)"))
rows.append(dict(method="b", seed=9, x=np.nan, finished=True, unfinished=""))
t = aa.summarize(pd.DataFrame(rows), by=["method"], metric="x")
assert list(t["method"]) == ["a", "b", "c"] and t["n"].eq(4).all(), t
assert t.attrs["excluded"] == {"unfinished (step < steps)": 1, "no x": 1}, t.attrs
assert t.attrs["basis"] == "seeds" and t["n_examples"].eq(0).all()
# b - a = 0.01 on every seed (sd 0): resolved; c - a = 2 on every seed: resolved
assert abs(t.loc[1, "diff"] - 0.01) < 1e-12 and abs(t.loc[2, "diff"] - 2.0) < 1e-12 and math.isnan(t.loc[0, "diff"])
assert t.loc[2, "resolved"] and not t.loc[0, "resolved"], t
lines = aa.describe(t, "x")
assert any("seeds only" in s for s in lines) and any("excluded: 1 run(s) unfinished" in s for s in lines), lines
# per-example scores (a `scores` column, as load_examples gives per run file): basis examples
rng = np.random.default_rng(0)
rows = [dict(method=m, seed=s, acc=0.0, scores=(rng.random(50) < p).astype(float))
        for m, p in (("x", 0.5), ("y", 0.9)) for s in range(5)]
runs = pd.DataFrame(rows); runs["acc"] = [r.mean() for r in runs["scores"]]
t = aa.summarize(runs, by=["method"], metric="acc", lower_is_better=False)
assert t.attrs["basis"] == "examples" and t["n_examples"].eq(50).all() and t.loc[0, "method"] == "y", t
assert t.loc[1, "resolved"] and 0 <= t["ci_low"].min() and t["ci_high"].max() <= 1, t
print("closed forms passed")

# ---- simulated sweeps ----
def sweep(rng, S, E, deltas, seed_sd):
    """0/1 scores (methods, S, E): logit = example difficulty (shared) + method x seed effect + delta"""
    b = rng.normal(0, 1, E)
    logit = b[None, None, :] + rng.normal(0, seed_sd, (len(deltas), S, 1)) + np.asarray(deltas)[:, None, None]
    return (rng.random((len(deltas), S, E)) < 1 / (1 + np.exp(-logit))).astype(float)

alpha, N = 0.05, 400
tol = 3 * math.sqrt(alpha * (1 - alpha) / N)  # 3 binomial sigmas: 0.033 for 400 sweeps
for name, S, E, seed_sd in (("seed-dominated", 10, 60, 0.5), ("example-dominated", 8, 60, 0.15)):
    rng = np.random.default_rng(1)
    hits = sum(aa.paired_difference(*sweep(rng, S, E, [0, 0], seed_sd), "exact_match", B=400, seed=i)["p"] < alpha
               for i in range(N))
    print(f"false-positive rate, {name} ({S} seeds x {E} examples, {N} null sweeps): {hits / N:.4f} "
          f"(alpha {alpha}, tolerance +-{tol:.3f})")
    assert abs(hits / N - alpha) <= tol, (name, hits / N)
# the fallback without per-example scores: one number per run, 3 seeds (normal): false
# positives at alpha, and the interval covers the true difference 0 at the level
rng = np.random.default_rng(4)
res = [aa.paired_difference(rng.normal(0, 1, (3, 1)), rng.normal(0, 1, (3, 1)), "eval_loss", B=400, seed=i)
       for i in range(N)]
fpr = np.mean([r["p"] < alpha for r in res])
cover = np.mean([r["ci_low"] <= 0 <= r["ci_high"] for r in res])
print(f"seeds only (3 seeds, one number per run, {N} null sweeps): false-positive rate {fpr:.4f}, "
      f"95% interval coverage {cover:.4f}")
assert abs(fpr - alpha) <= tol and abs(cover - (1 - alpha)) <= tol, (fpr, cover)
# power: a difference of 0.5 on the logit (~0.1 in accuracy), 8 seeds x 100 examples
rng = np.random.default_rng(2)
hits = sum(aa.paired_difference(*sweep(rng, 8, 100, [0.5, 0], 0.15), "exact_match", B=400, seed=i)["p"] < alpha
           for i in range(200))
print(f"power, logit difference 0.5 (8 seeds x 100 examples, 200 sweeps): {hits / 200:.3f}")
assert hits / 200 >= 0.85, hits
# Holm over the 6 pairs of 4 identical methods: family-wise rate <= alpha (+ 3 sigmas of 200)
rng = np.random.default_rng(3)
fw = found = 0
for i in range(200):
    for deltas, name in (([0, 0, 0, 0], "null"), ([0, 0, 0, 0.8], "one differs")):
        X = sweep(rng, 6, 60, deltas, 0.15)
        runs = pd.DataFrame([dict(method=m, seed=s, acc=X[m, s].mean(), scores=X[m, s])
                             for m in range(4) for s in range(6)])
        pairs = aa.compare(runs, by=["method"], metric="acc", B=200, seed=i)[0]
        if name == "null":
            fw += (pairs["p_holm"] < alpha).any()
        else:
            found += (pairs[pairs["b"] == 3]["p_holm"] < alpha).all()
tol200 = 3 * math.sqrt(alpha * (1 - alpha) / 200)
print(f"Holm, 4 identical methods (6 pairs, 200 sweeps): family-wise false-positive rate {fw / 200:.3f}; "
      f"method 3 (+0.8 logit) resolved against all three others in {found / 200:.3f}")
assert fw / 200 <= alpha + tol200 and found / 200 >= 0.8, (fw, found)
print("simulations passed")
PY
cat "$WORK/last.out"
finish
