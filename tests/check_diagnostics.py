"""check_diagnostics.py RUN.h5 SVD.h5 - recomputes a run's last spectral diagnostics
(updatediag.h) in float64 numpy from the stored factors and the SVD cache, the
direct way: the dense update D = s (B A - B0 A0), its full SVD, and projections
onto W's singular vectors. Exit 1 on a mismatch.

Tolerances: ailora forms the same quantities through thin QRs of the factors and
a 2r x 2r core SVD, also in float64; both routes are backward stable, so values
agree to a few hundred ulps of their scale (sigma: 1e-10 sigma_max; energies are
ratios in [0, 1]: 1e-9). Principal-angle cosines are singular values of a K x d
product and move by O(eps / gap) under rounding: 1e-7."""
import sys

import h5py
import numpy as np

run, svd = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
r = int(run.attrs["rank"])
s = float(run.attrs["alpha"]) / r
K = int(run["diagnostics"].attrs["K"])
bad = 0


def close(name, got, want, tol):
    global bad
    got, want = np.asarray(got, float), np.asarray(want, float)
    if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=tol, equal_nan=True):
        print(f"FAIL {name}: got {got} want {want}")
        bad += 1


n_checked = 0
for mod in run["diagnostics"]:
    if mod == "step":
        continue
    g = run["diagnostics"][mod]
    A, B = run[f"adapters/{mod}/lora_A"][()], run[f"adapters/{mod}/lora_B"][()]
    A0, B0 = run[f"init/{mod}/lora_A"][()], run[f"init/{mod}/lora_B"][()]
    D = s * (B @ A - B0 @ A0)
    U, S, Vt = svd[f"modules/{mod}/U"][()], svd[f"modules/{mod}/S"][()], svd[f"modules/{mod}/Vt"][()]
    k = S.size
    Ud, sd, Vdt = np.linalg.svd(D)
    sigma = np.zeros(2 * r)
    sigma[: min(2 * r, sd.size)] = sd[: 2 * r]
    close(f"{mod} sigma", g["sigma"][-1], sigma, 1e-10 * max(sd[0], 1e-300))
    p = sd[sd > 0] / sd.sum() if sd.sum() > 0 else np.zeros(0)
    close(f"{mod} effective_rank", g["effective_rank"][-1], np.exp(-(p * np.log(p)).sum()) if p.size else 0.0, 1e-9)
    total = (D ** 2).sum()
    ends = {"top": slice(0, K), "bottom": slice(k - K, k)}
    rank_num = int((sd > 1e-12 * sd[0]).sum())
    d = min(r, K, rank_num)
    for end, sl in ends.items():
        Uk, Vk = U[:, sl], Vt[sl, :].T
        close(f"{mod} energy_u_{end}", g[f"energy_u_{end}"][-1], ((Uk.T @ D) ** 2).sum() / total, 1e-9)
        close(f"{mod} energy_v_{end}", g[f"energy_v_{end}"][-1], ((D @ Vk) ** 2).sum() / total, 1e-9)
        for side, X, E in (("u", Ud[:, :d], Uk), ("v", Vdt[:d, :].T, Vk)):
            want = np.full(r, np.nan)
            c = np.linalg.svd(E.T @ X, compute_uv=False)
            want[: c.size] = np.minimum(c, 1.0)
            close(f"{mod} cos_{side}_{end}", g[f"cos_{side}_{end}"][-1], want, 1e-7)
    n_checked += 1
if n_checked == 0:
    print("FAIL: no modules under /diagnostics")
    bad += 1
print(f"checked {n_checked} modules, {bad} mismatches")
sys.exit(1 if bad else 0)
