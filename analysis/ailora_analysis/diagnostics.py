"""Spectral diagnostics of each adapter's update (the run file's /diagnostics group,
written by `ailora train` at every evaluation; see include/ailora/updatediag.h):
where in W's spectrum training moved each module, and how many directions it used.

    from ailora_analysis import load_diagnostics, plot_update_energy
    diag = load_diagnostics(runs)      # long format: run, path, method, module, step, ...
    plot_update_energy(diag)           # energy share in W's top / bottom singular vectors
"""
import h5py
import numpy as np
import pandas as pd

SCALARS = ("effective_rank", "energy_u_top", "energy_u_bottom", "energy_v_top", "energy_v_bottom")
VECTORS = ("sigma", "cos_u_top", "cos_u_bottom", "cos_v_top", "cos_v_bottom")


def load_diagnostics(runs):
    """One row per (run, module, evaluation step): the scalar diagnostics, the update's
    leading singular value sigma_0, and the mean principal-angle cosines (NaN-aware)
    per end; runs is a load_runs frame or a list of paths. Runs without /diagnostics
    contribute no rows."""
    paths = list(runs["path"]) if isinstance(runs, pd.DataFrame) else list(runs)
    methods = list(runs["method"]) if isinstance(runs, pd.DataFrame) else [None] * len(paths)
    rows = []
    for i, path in enumerate(paths):
        with h5py.File(path, "r") as f:
            if "diagnostics" not in f:
                continue
            g = f["diagnostics"]
            steps = g["step"][:]
            K = int(g.attrs["K"])
            for module in g:
                if module == "step":
                    continue
                m = g[module]
                data = {name: m[name][:] for name in SCALARS}
                sigma = m["sigma"][:]
                cos = {name: m[name][:] for name in VECTORS[1:]}
                for j, step in enumerate(steps):
                    row = dict(run=i, path=path, method=methods[i], module=module, step=int(step), K=K,
                               sigma_0=float(sigma[j, 0]) if sigma.shape[1] else float("nan"))
                    row.update({name: float(data[name][j]) for name in SCALARS})
                    for name, c in cos.items():
                        valid = c[j][~np.isnan(c[j])]
                        row[f"{name}_mean"] = float(valid.mean()) if valid.size else float("nan")
                    rows.append(row)
    return pd.DataFrame(rows)


def plot_update_energy(diag, module_suffix=None, ax=None, side="u"):
    """Share of each update's energy inside W's top-K (solid) and bottom-K (dashed)
    singular vectors over training, mean over runs per method (and module suffix)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    d = diag if module_suffix is None else diag[diag["module"].str.endswith(module_suffix)]
    for i, (method, sub) in enumerate(d.groupby("method")):
        mean = sub.groupby("step")[[f"energy_{side}_top", f"energy_{side}_bottom"]].mean()
        color = f"C{i}"
        ax.plot(mean.index, mean[f"energy_{side}_top"], color=color, label=f"{method}: top-K")
        ax.plot(mean.index, mean[f"energy_{side}_bottom"], color=color, ls="--", label=f"{method}: bottom-K")
    ax.set_xlabel("step")
    ax.set_ylabel(f"share of ||update||_F^2 ({'left' if side == 'u' else 'right'} vectors)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    return ax
