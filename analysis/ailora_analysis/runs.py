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
            if target_loss is not None:
                row["steps_to_target"] = steps_to_loss(steps, loss, target_loss)
            rows.append(row)
    return pd.DataFrame(rows)


def load_curves(runs, group="train"):
    """Long-format curves of the runs in a load_runs frame (or a list of paths):
    columns run (index into runs), path, step and the metrics of /train or /eval."""
    paths = list(runs["path"]) if isinstance(runs, pd.DataFrame) else list(runs)
    frames = []
    for i, path in enumerate(paths):
        with h5py.File(path, "r") as f:
            g = f[group]
            frame = pd.DataFrame({name: g[name][:] for name in g})
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
