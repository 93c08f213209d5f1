#!/usr/bin/env python3
"""Procedural corpus and downstream tasks of ailora's embedded default.

    make_tasks.py OUT_DIR [--seed 0] [--train N] [--eval N] [--pretrain N]

Writes, deterministically (numpy Generator seeded per file), pre-tokenized HDF5
files in the format `ailora train` reads: /input_ids and /labels [N, T] int32,
labels aligned with input_ids, -100 where not scored (the model shifts).

Tokens: a character vocabulary (vocab.txt is written beside the data):
  0 <pad>, 1 <bos>, 2 <eos>, then digits, lower-case letters and "+=?:;,| ".
Sequences are T = 48 tokens: <bos> text <eos> <pad>...

Files:
  pretrain.h5   a mixed corpus of the three task formats with random contents,
                every position scored (next-token pretraining)
  add_{train,eval}.h5       "347+589=936": 3-digit addition, the answer digits +
                            <eos> scored; metric exact match (a GSM8K stand-in)
  majority_{train,eval}.h5  "abbabab?b": which of two letters occurs more often,
                            one answer token; metric accuracy (= exact match)
  lookup_{train,eval}.h5    "k3:7,k9:2,k1:5|k9?2": in-context retrieval of the
                            value of a key; metric exact match
  <task>_val.h5             a validation split (as many rows as eval, its own
                            random stream) for choosing hyperparameters
                            (experiments/sweeps/lr_select.ini)
The pretraining corpus uses the same surface formats with *other* statistics
(2-digit sums, letter runs, shorter key lists), so a pretrained base knows the
syntax but not the tasks.
"""
import argparse
import os

import h5py
import numpy as np

T = 48
SPECIAL = ["<pad>", "<bos>", "<eos>"]
CHARS = list("0123456789abcdefghijklmnopqrstuvwxyz+=?:;,| ")
VOCAB = SPECIAL + CHARS
ID = {c: i for i, c in enumerate(VOCAB)}
VOCAB_SIZE = 64  # padded: the model's embedding has 64 rows


def encode(text):
    return [ID[c] for c in text]


def pack(prompt, answer, scored_prompt=False):
    """tokens and labels of <bos> prompt answer <eos>, padded to T"""
    ids = [1] + encode(prompt) + encode(answer) + [2]
    assert len(ids) <= T, (prompt, answer)
    labels = list(ids) if scored_prompt else [-100] * (1 + len(prompt)) + ids[1 + len(prompt):]
    ids += [0] * (T - len(ids))
    labels += [-100] * (T - len(labels))
    return ids, labels


def task_add(rng, digits=3):
    a, b = (int(x) for x in rng.integers(0, 10 ** digits, size=2))
    return f"{a}+{b}=", str(a + b)


def task_majority(rng, length=9):
    letters = rng.choice(list("abcdefgh"), size=2, replace=False)
    n_first = int(rng.integers(0, length + 1))
    while n_first * 2 == length:
        n_first = int(rng.integers(0, length + 1))
    seq = np.array([letters[0]] * n_first + [letters[1]] * (length - n_first))
    rng.shuffle(seq)
    winner = letters[0] if n_first * 2 > length else letters[1]
    return "".join(seq) + "?", str(winner)


def task_lookup(rng, n_keys=5):
    keys = rng.choice(10, size=n_keys, replace=False)
    values = rng.integers(0, 10, size=n_keys)
    query = int(rng.integers(0, n_keys))
    record = ",".join(f"k{k}:{v}" for k, v in zip(keys, values))
    return f"{record}|k{keys[query]}?", str(values[query])


TASKS = {"add": task_add, "majority": task_majority, "lookup": task_lookup}


def pretrain_example(rng):
    kind = int(rng.integers(0, 3))
    if kind == 0:  # 2-digit sums: the format of add, not its difficulty
        prompt, answer = task_add(rng, digits=2)
    elif kind == 1:  # short majority strings
        prompt, answer = task_majority(rng, length=5)
    else:  # fewer keys
        prompt, answer = task_lookup(rng, n_keys=3)
    return pack(prompt, answer, scored_prompt=True)


def write(path, rows):
    ids = np.array([r[0] for r in rows], dtype=np.int32)
    labels = np.array([r[1] for r in rows], dtype=np.int32)
    tmp = path + ".partial"
    with h5py.File(tmp, "w") as f:
        f["input_ids"] = ids
        f["labels"] = labels
        f.attrs["vocab_size"] = VOCAB_SIZE
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=2048)
    ap.add_argument("--eval", type=int, default=256)
    ap.add_argument("--pretrain", type=int, default=8192)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "vocab.txt"), "w") as f:
        f.write("\n".join(repr(t) for t in VOCAB) + "\n")
    rng = np.random.default_rng([args.seed, 0])
    write(os.path.join(args.out, "pretrain.h5"), [pretrain_example(rng) for _ in range(args.pretrain)])
    for i, (name, fn) in enumerate(TASKS.items()):
        for split, n in (("train", args.train), ("eval", args.eval), ("val", args.eval)):
            rng = np.random.default_rng([args.seed, 1 + i, {"train": 0, "eval": 1, "val": 2}[split]])
            write(os.path.join(args.out, f"{name}_{split}.h5"), [pack(*fn(rng)) for _ in range(n)])
    print(f"wrote {args.out}: pretrain {args.pretrain}, tasks {list(TASKS)} x train {args.train} / eval {args.eval} / val {args.eval}")


if __name__ == "__main__":
    main()
