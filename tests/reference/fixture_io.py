"""Helpers shared by the fixture generators of this folder."""
import json
import os

import numpy as np
import safetensors.numpy


def canonicalize_header(path):
    """Make the file byte-for-byte reproducible.

    safetensors' Rust serializer writes the __metadata__ map in hash order,
    which changes from run to run. Rewrite the JSON header with __metadata__
    first (keys sorted) and the tensors in data-offset order, compact
    separators, space padding to a multiple of 8 bytes (as safetensors does).
    The data section is left untouched, so offsets stay valid.
    """
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", None)
    out = {}
    if meta is not None:
        out["__metadata__"] = {k: meta[k] for k in sorted(meta)}
    for k in sorted(header, key=lambda k: (header[k]["data_offsets"][0], k)):
        out[k] = header[k]
    text = json.dumps(out, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + data)


def save_fixture(path, tensors, meta, versions):
    """Writes tensors (name sorted) with meta plus version_<package> keys,
    canonicalizes the header, reads the file back and checks every tensor's dtype,
    shape and values. Returns the file size."""
    meta = dict(meta)
    for key, v in versions.items():
        meta["version_" + key] = v
    safetensors.numpy.save_file(dict(sorted(tensors.items())), path, metadata=meta)
    canonicalize_header(path)
    back = safetensors.numpy.load_file(path)
    assert set(back) == set(tensors) and all(
        back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v)
        for k, v in tensors.items())
    return os.path.getsize(path)
