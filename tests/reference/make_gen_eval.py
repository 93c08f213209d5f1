"""Writes tests/reference/gen_eval.h5: a generating evaluation set (dataset v2) for
tests/reference/train_llama (vocabulary 128, max_position_embeddings 64), used by
experiments/bench/gpu_train_e2e.sh to check that a run on the GPU decodes the same
tokens as the CPU run (its /eval ROUGE curves and per-example scores).

12 rows of T = 16 slots (two decoding batches of 8 and 4), prompts of 1 to 12 real
tokens left-padded (attention_mask, prompt_len), metric rouge, /detok mapping token
i to "w<i> " (distinct words: the scores depend on every generated token),
one reference of all words in ascending order, max_new_tokens 8, eos_token_ids:
EOS_IDS below (ids that the CPU runs of gpu_train_e2e.sh generate, so some rows
stop early and others run to the budget).

Usage: python3 tests/reference/make_gen_eval.py tests/reference/gen_eval.h5
"""
import json
import sys

import h5py
import numpy as np

V, T, N, MAX_NEW = 128, 16, 12, 8
EOS_IDS = [13, 46, 55, 62, 108]

rng = np.random.default_rng(12)
plens = [1, 3, 12, 7, 5, 2, 9, 4, 11, 6, 8, 10]
x = np.zeros((N, T), np.int32)
m = np.zeros((N, T), np.int8)
for i, p in enumerate(plens):
    x[i, T - p:] = rng.integers(0, V, size=p)
    m[i, T - p:] = 1
lab = np.full((N, T), -100, np.int32)
lab[:, -1] = x[:, -1]  # the loss of each prompt's last token (the set has a loss too)
words = [f"w{i} " for i in range(V)]
off = np.cumsum([0] + [len(w) for w in words]).astype(np.int64)
by = np.frombuffer("".join(words).encode(), dtype=np.uint8)
# one reference per row, every word in ascending order: ROUGE-1 counts the distinct
# generated words, ROUGE-2 the pairs (i, i + 1), ROUGE-L the longest ascending run
refs = [[" ".join(f"w{t}" for t in range(V))] for _ in range(N)]
with h5py.File(sys.argv[1], "w") as f:
    f["input_ids"] = x
    f["labels"] = lab
    f["attention_mask"] = m
    f["prompt_len"] = np.array(plens, np.int32)
    f.create_dataset("references", data=[json.dumps(r) for r in refs], dtype=h5py.string_dtype())
    f["detok/offsets"] = off
    f["detok/bytes"] = by
    f.attrs["metric"] = "rouge"
    f.attrs["max_new_tokens"] = MAX_NEW
    f.attrs["eos_token_ids"] = np.array(EOS_IDS, np.int32)
