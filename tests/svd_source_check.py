"""svd_source_check.py MODEL_DIR SVD.h5 [TOL] - an SVD cache against the SOURCE weights.

For every module of the cache: ||W - U diag(S) Vt||_F / ||W||_F with W read from
the model's safetensors bytes (F32, BF16, F16, F64; one file or shards listed by
model.safetensors.index.json), independently of ailora's readers. Exit 1 when any
error exceeds TOL (default 1e-12: a float64 SVD reconstructs to ~1e-15).
Runs on Debian's /usr/bin/python3 (numpy, h5py).
"""
import json
import os
import struct
import sys

import h5py
import numpy as np


def tensors(model):
    index = os.path.join(model, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else ["model.safetensors"]
    out = {}
    for name in files:
        raw = open(os.path.join(model, name), "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        head = json.loads(raw[8:8 + n])
        head.pop("__metadata__", None)
        for key, t in head.items():
            b, e = t["data_offsets"]
            out[key] = (t["dtype"], t["shape"], raw[8 + n + b:8 + n + e])
    return out


def as_f64(dtype, shape, data):
    if dtype == "BF16":  # the upper half of a float32
        x = (np.frombuffer(data, "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        x = np.frombuffer(data, {"F32": "<f4", "F16": "<f2", "F64": "<f8"}[dtype])
    return x.astype(np.float64).reshape(shape)


def main():
    model, svd = sys.argv[1], sys.argv[2]
    tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-12
    src = tensors(model)
    worst, bad = 0.0, 0
    with h5py.File(svd, "r") as f:
        for mod in f["/modules"]:
            g = f["/modules/" + mod]
            W = as_f64(*src[mod + ".weight"])
            err = np.linalg.norm(W - (g["U"][...] * g["S"][...]) @ g["Vt"][...]) / np.linalg.norm(W)
            worst = max(worst, err)
            if not err <= tol:
                print(f"{mod}: ||W - U S Vt|| / ||W|| = {err:.3e} > {tol:g}")
                bad += 1
    print(f"{svd} against the weights of {model}: worst ||W - U S Vt|| / ||W|| = {worst:.3e}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
