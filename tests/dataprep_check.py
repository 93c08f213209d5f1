#!/usr/bin/env python3
"""dataprep_check.py FILE TOKDIR [expectations] - check one output of
experiments/data/prepare.py against the dataset contract v2 (DESIGN.md) and what the
test expects; one line per failed check, exit 1 if any. Run by tests/dataprep.sh with
.venv/bin/python.
  --attr K=V      root attribute K equals V (ints compared as ints)
  --rows N        number of rows
  --answers JSON  the set of answer texts (decoded answer tokens, EOS excluded; mc: the
                  gold rows')
  --refs JSON     the multiset of /references arrays (mc: of the gold rows)
  --prompt-has S  every prompt (decoded) contains S
"""
import argparse
import collections
import json
import sys

import h5py
import numpy as np
from tokenizers import Tokenizer

METRICS = {"loss", "exact_match", "gsm8k", "label", "mc", "squad", "rouge"}
fails = []


def check(ok, msg):
    if not ok:
        fails.append(msg)
    return ok


def s(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("tokdir")
ap.add_argument("--attr", action="append", default=[])
ap.add_argument("--rows", type=int)
ap.add_argument("--answers")
ap.add_argument("--refs")
ap.add_argument("--prompt-has")
a = ap.parse_args()
tok = Tokenizer.from_file(a.tokdir + "/tokenizer.json")

f = h5py.File(a.file, "r")
ids, lab, mask = f["input_ids"][:], f["labels"][:], f["attention_mask"][:]
pl = f["prompt_len"][:]
refs = [json.loads(s(x)) for x in f["references"][:]]
N, T = ids.shape
check(ids.dtype == np.int32 and lab.dtype == np.int32 and mask.dtype == np.int8 and pl.dtype == np.int32,
      f"dtypes {ids.dtype} {lab.dtype} {mask.dtype} {pl.dtype}")
check(lab.shape == (N, T) and mask.shape == (N, T) and pl.shape == (N,) and len(refs) == N, "shapes differ")
at = dict(f.attrs)
check(s(at.get("metric")) in METRICS, f"metric {at.get('metric')}")
for k in ("task", "source"):
    check(isinstance(at.get(k), bytes) and len(at[k]) > 0, f"attribute {k} missing")
eos = [int(x) for x in np.atleast_1d(at.get("eos_token_ids", []))]
check(len(eos) >= 1 and np.asarray(at["eos_token_ids"]).dtype == np.int32, "eos_token_ids not int32")
check(int(at.get("max_new_tokens", 0)) >= 1, "max_new_tokens")
side = s(at.get("pad_side"))
off, by = f["detok/offsets"][:], f["detok/bytes"][:].tobytes()
check(off.dtype == np.int64 and f["detok/bytes"].dtype == np.uint8, "detok dtypes")
check(len(off) == tok.get_vocab_size() + 1 and off[0] == 0 and np.all(np.diff(off) >= 0) and off[-1] == len(by),
      "detok offsets")
special = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
for t, i in tok.get_vocab().items():
    if t in special:
        check(off[i + 1] == off[i], f"special token {t} not empty in detok")


def detok(row):
    return b"".join(by[off[t]:off[t + 1]] for t in row)


answers, prompts = [], []
for i in range(N):
    m = mask[i]
    check(set(np.unique(m)) <= {0, 1}, f"row {i}: mask not 0/1")
    real = np.flatnonzero(m)
    if not check(len(real) > 0, f"row {i}: empty"):
        continue
    a0, a1 = real[0], real[-1] + 1
    check(len(real) == a1 - a0, f"row {i}: padding inside the row")
    if side == "left":
        check(a1 == T, f"row {i}: left padding but the row does not end at T")
    else:
        check(a0 == 0, f"row {i}: right padding but the row does not start at 0")
    check(np.all(lab[i][m == 0] == -100), f"row {i}: padding scored")
    p = int(pl[i])
    check(0 < p < a1 - a0 - 1, f"row {i}: prompt_len {p} of {a1 - a0}")
    check(np.all(lab[i, a0:a0 + p] == -100), f"row {i}: prompt scored")
    check(np.array_equal(lab[i, a0 + p:a1], ids[i, a0 + p:a1]), f"row {i}: answer labels != input_ids")
    check(int(ids[i, a1 - 1]) in eos and np.sum(np.isin(ids[i, a0 + p:a1], eos)) == 1,
          f"row {i}: EOS not (only) at the end")
    row = ids[i, a0:a1].tolist()
    want = tok.decode(row, skip_special_tokens=True).encode("utf-8")
    check(detok(row) == want, f"row {i}: detok bytes {detok(row)[:60]!r} != decode {want[:60]!r}")
    answers.append(detok(ids[i, a0 + p:a1 - 1]).decode("utf-8"))
    prompts.append(tuple(row[:p]))
    check(isinstance(refs[i], list) and refs[i] and all(isinstance(x, str) for x in refs[i]),
          f"row {i}: references {refs[i]}")

gold_rows = list(range(N))
if s(at.get("metric")) == "mc":
    ex, gold, chars = f["mc_example"][:], f["mc_gold"][:], f["mc_chars"][:]
    check(ex.dtype == np.int32 and gold.dtype == np.int8 and chars.dtype == np.int32, "mc dtypes")
    check(ex[0] == 0 and np.all(np.diff(ex) >= 0) and np.all(np.diff(ex) <= 1), "mc_example not contiguous")
    for e in np.unique(ex):
        r = np.flatnonzero(ex == e)
        check(len(r) >= 2 and gold[r].sum() == 1, f"example {e}: {len(r)} options, {gold[r].sum()} gold")
        check(len({prompts[j] for j in r}) == 1, f"example {e}: options with different prompts")
    for j in range(N):
        text = answers[j][1:] if s(at.get("format")) == "plain" else answers[j]
        check(chars[j] == len(text) and refs[j] == [text], f"row {j}: mc_chars {chars[j]} / refs {refs[j]} vs {text!r}")
    gold_rows = list(np.flatnonzero(gold == 1))
else:
    check("mc_example" not in f, "mc items in a non-mc file")

for kv in a.attr:
    k, v = kv.split("=", 1)
    got = at.get(k)
    got = s(got) if isinstance(got, bytes) else (str(int(got)) if got is not None and np.ndim(got) == 0 else str(got))
    check(got == v, f"attribute {k} = {got}, expected {v}")
if a.rows is not None:
    check(N == a.rows, f"{N} rows, expected {a.rows}")
if a.answers:
    got = sorted(answers[j] for j in gold_rows)
    check(got == sorted(json.loads(a.answers)), f"answers {got}")
if a.refs:
    got = sorted(json.dumps(refs[j]) for j in gold_rows)
    check(got == sorted(json.dumps(x) for x in json.loads(a.refs)), f"references {got}")
if a.prompt_has:
    for i in range(N):
        check(a.prompt_has in tok.decode(list(prompts[i]), skip_special_tokens=False), f"row {i}: prompt lacks {a.prompt_has!r}")
for m in fails[:20]:
    print(f"{a.file}: {m}")
sys.exit(1 if fails else 0)
