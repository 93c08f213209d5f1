#!/usr/bin/env python3
"""Variable-length (dataset v2) training files for tests/cli_train_varlen.sh.

Run from the repository root with Debian's python3 (numpy, h5py):

    /usr/bin/python3 tests/reference/make_varlen_data.py

Reads tests/reference/train_data.h5 (/input_ids, /labels [8, 16]) and writes
into tests/reference/varlen/ (byte-deterministic, track_times off):

  padded.h5     row b keeps its first 16 - PAD[b] tokens, padded on SIDE[b]
                with PAD_TOKEN (labels -100); /attention_mask int8 (1 = real)
  same.h5       the same real tokens unpadded: row b as in train_data.h5 with
                labels beyond its first 16 - PAD[b] tokens set to -100 and no
                mask: under the causal mask the tail cannot change a scored
                prediction, so training on same.h5 must give padded.h5's curve
  ones.h5       same.h5 plus an all-ones /attention_mask stored as uint16
                (any integer type; all ones = no padding, bit for bit)
  bad_value.h5  padded.h5 with mask value 2 (row 3, position 7)
  bad_label.h5  padded.h5 with a scored label at a padded position (row 0, position 0)
  bad_empty.h5  padded.h5 with row 5 all padding
  bad_shape.h5  padded.h5 with a [8, 15] mask
"""
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "varlen")
PAD = (3, 0, 5, 2, 0, 4, 6, 1)
SIDE = ("left", "left", "right", "left", "right", "right", "left", "right")
PAD_TOKEN = 127


def write(name, ids, labels, mask=None, mask_dtype="i1"):
    path = os.path.join(OUT, name)
    if os.path.exists(path):
        os.remove(path)
    with h5py.File(path, "w", libver="earliest", track_order=False) as f:
        f.create_dataset("input_ids", data=ids, dtype="<i4", track_times=False)
        f.create_dataset("labels", data=labels, dtype="<i4", track_times=False)
        if mask is not None:
            f.create_dataset("attention_mask", data=mask, dtype=mask_dtype, track_times=False)


def main():
    os.makedirs(OUT, exist_ok=True)
    with h5py.File(os.path.join(HERE, "train_data.h5"), "r") as f:
        ids, labels = f["input_ids"][...], f["labels"][...]
    n, T = ids.shape
    pid = np.full((n, T), PAD_TOKEN, np.int32)
    plab = np.full((n, T), -100, np.int32)
    mask = np.zeros((n, T), np.int8)
    sid, slab = ids.copy(), labels.copy()
    for b in range(n):
        L = T - PAD[b]
        sl = slice(PAD[b], T) if SIDE[b] == "left" else slice(0, L)
        pid[b, sl], plab[b, sl], mask[b, sl] = ids[b, :L], labels[b, :L], 1
        slab[b, L:] = -100
        assert labels[b, 0] == -100
    write("padded.h5", pid, plab, mask)
    write("same.h5", sid, slab)
    write("ones.h5", sid, slab, np.ones((n, T), np.uint16), "<u2")
    m = mask.copy()
    m[3, 7] = 2
    write("bad_value.h5", pid, plab, m)
    lb = plab.copy()
    lb[0, 0] = 5
    write("bad_label.h5", pid, lb, mask)
    m = mask.copy()
    m[5] = 0
    write("bad_empty.h5", pid, np.where(m == 1, plab, -100), m)
    write("bad_shape.h5", pid, plab, mask[:, :T - 1])


if __name__ == "__main__":
    main()
