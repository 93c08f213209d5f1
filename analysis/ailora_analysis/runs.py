"""Reading ailora run files (format "ailora-run/1", DESIGN.md section 4)."""
import glob
import os

import h5py
import numpy as np
import pandas as pd

RUN_FORMAT = "ailora-run/1"


def _text(value):
    return value.decode() if isinstance(value, (bytes, np.bytes_)) else str(value)


def _typed(text):
    """config values as numbers or booleans where they are ones"""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def parse_config(text):
    """the resolved 'key = value' lines of a run file's config attribute"""
    config = {}
    for line in text.splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            config[key.strip()] = _typed(value.strip())
    return config


def steps_to_loss(steps, losses, target):
    """first step whose loss is <= target, NaN if never"""
    hit = np.nonzero(np.asarray(losses) <= target)[0]
    return float(np.asarray(steps)[hit[0]]) if len(hit) else float("nan")


def run_files(sweep_dir):
    """every run file under sweep_dir (checkpoints, SVD caches and partial files skipped)"""
    paths = []
    for path in sorted(glob.glob(os.path.join(sweep_dir, "**", "*.h5"), recursive=True)):
        if path.endswith((".ckpt.h5", ".svd.h5", ".partial")):
            continue
        try:
            with h5py.File(path, "r") as f:
                if _text(f.attrs.get("format", b"")) == RUN_FORMAT:
                    paths.append(path)
        except OSError:
            continue
    return paths


def load_runs(sweep_dir, target_loss=None, tail=5):
    """One row per run: every config key, the final metrics and, with target_loss,
    the steps to reach it (train loss). Final train loss is the mean of the last
    `tail` logged steps (one step is noisy)."""
    rows = []
    for path in run_files(sweep_dir):
        with h5py.File(path, "r") as f:
            row = parse_config(_text(f.attrs["config"]))
            row.update(path=path, method=_text(f.attrs["method"]), steps_done=int(f.attrs["steps_done"]))
            loss = f["train/loss"][:]
            steps = f["train/step"][:]
            row["train_loss"] = float(np.mean(loss[-tail:])) if len(loss) else float("nan")
            if len(f["eval/step"]):
                row["eval_loss"] = float(f["eval/loss"][-1])
                row["eval_ppl"] = float(f["eval/ppl"][-1])
                row["exact_match"] = float(f["eval/exact_match"][-1])
            # the task metric's components (gsm8k, label, mc_acc, mc_acc_norm, squad_f1,
            # rouge1, ...) and the retention set's curves: first value = before training
            for group, prefix in (("eval", ""), ("retention", "retention_")):
                if group not in f:
                    continue
                for name, d in f[group].items():
                    if not isinstance(d, h5py.Dataset) or name == "step" or not len(d):
                        continue
                    if prefix or name not in row:
                        row[prefix + name] = float(d[-1])
                    if prefix:
                        row[prefix + name + "_before"] = float(d[0])
            if target_loss is not None:
                row["steps_to_target"] = steps_to_loss(steps, loss, target_loss)
            # unfinished: stopped before its steps (preempted, failed, still running) or never
            # evaluated although it has eval data; summaries leave these out and count them
            why = ""
            if isinstance(row.get("steps"), int) and row["steps_done"] < row["steps"]:
                why = "unfinished (step < steps)"
            elif row.get("eval_data") not in (None, "") and not len(f["eval/step"]):
                why = "without eval"
            row["finished"], row["unfinished"] = not why, why
            row["has_examples"] = "eval/examples" in f and len(f["eval/examples"]) > 0
            rows.append(row)
        if row["has_examples"]:  # the task metric of the per-example scores, where the curves lack it
            ex = load_examples(path)
            if ex is not None and "score" in ex:
                name = ex.get("metric", "score")
                if not np.isfinite(row.get(name, float("nan"))):
                    row[name] = float(np.mean(ex["score"]))
                row["example_metric"] = name
    return pd.DataFrame(rows)


def load_examples(path, step=None):
    """Per-example results of one eval step (default: the last) from a run file's
    /eval/examples/<step>/ group: {dataset name: array (N,)} for every 1-D numeric
    dataset there (score: the task metric of each example, e.g. 0/1 exact match;
    others as written, e.g. loss), plus "metric" (the group's or the file's metric
    attribute, if any) and "step". None when the run file has no per-example results
    (written before they existed): callers fall back to per-run metrics."""
    with h5py.File(path, "r") as f:
        if "eval/examples" not in f or not len(f["eval/examples"]):
            return None
        g = f["eval/examples"]
        names = [n for n in g if n.isdigit()]
        if not names:
            return None
        key = str(step) if step is not None else max(names, key=int)
        if key not in g:
            return None
        out = {"step": int(key)}
        for name, d in g[key].items():
            if isinstance(d, h5py.Dataset) and d.ndim == 1 and d.dtype.kind in "fiub":
                out[name] = d[:].astype(float)
        # score (N, ncomp) of the task metrics (components "gsm8k", "mc_acc,mc_acc_norm", ...):
        # one array per component, under its name
        d = g[key].get("score")
        comps = g[key].attrs.get("components")
        if isinstance(d, h5py.Dataset) and d.ndim == 2 and comps is not None:
            names = [c.strip() for c in _text(comps).split(",") if c.strip()]
            if len(names) == d.shape[1]:
                for j, c in enumerate(names):
                    out[c] = d[:, j].astype(float)
        metric = g[key].attrs.get("metric", g.attrs.get("metric", f.attrs.get("metric")))
        if metric is not None:
            out["metric"] = _text(metric)
        return out if "score" in out or len(out) > 2 else None


def load_curves(runs, group="train"):
    """Long-format curves of the runs in a load_runs frame (or a list of paths):
    columns run (index into runs), path, step and the metrics of /train or /eval."""
    paths = list(runs["path"]) if isinstance(runs, pd.DataFrame) else list(runs)
    frames = []
    for i, path in enumerate(paths):
        with h5py.File(path, "r") as f:
            g = f[group]
            # the curves: 1-D datasets as long as step (not /eval/examples or other groups)
            n = len(g["step"]) if "step" in g else 0
            frame = pd.DataFrame({name: g[name][:] for name in g
                                  if isinstance(g[name], h5py.Dataset) and g[name].shape == (n,)})
        frame.insert(0, "path", path)
        frame.insert(0, "run", i)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_spectra(path):
    """{module: (S, selected)} from a run or INIT file (selected: [] for lora)"""
    out = {}
    with h5py.File(path, "r") as f:
        for module in f["spectra"]:
            selected = f[f"adapters/{module}/selected"][:] if f"adapters/{module}/selected" in f else []
            out[module] = (f[f"spectra/{module}/S"][:], np.asarray(selected, dtype=int))
    return out
