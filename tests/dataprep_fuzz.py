#!/usr/bin/env python3
"""dataprep_fuzz.py DATA TOKDIR WORK [N] - N (default 300) seeded mutations of the test
inputs through prepare.py's main() in this process: values replaced by other JSON
types (null, numbers, lists, objects, empty or huge strings), fields deleted, bytes
flipped, lines cut. Every run must return 0 (and leave whole files) or 1 with exactly
one "error:" line on stderr, never raise; no .partial file may be left. Prints the
first failures and exits 1 on any."""
import contextlib
import io
import json
import os
import random
import shutil
import sys

data, tokdir, work = sys.argv[1:4]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 300
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "experiments", "data"))
import prepare  # noqa: E402

cases = [("gsm8k", "gsm8k.jsonl"), ("asdiv", "asdiv.jsonl"), ("boolq", "boolq_dev.jsonl"), ("piqa", "piqa.jsonl"),
         ("siqa", "siqa.jsonl"), ("commonsenseqa", "commonsenseqa.jsonl"), ("openbookqa", "openbookqa.jsonl"),
         ("xsum", "xsum.jsonl"), ("squad", "squad.json"), ("custom", "custom.jsonl"), ("mmlu", "mmlu.csv")]
odd = [None, 0, -1, 3.5, True, [], ["x", 1], {}, {"text": ["a"]}, "", " ", "A", "####", "x" * 3000, "A. a\nA. b",
       "\u0000", "\ud7ff\ufffd", "{plural}"]
rng = random.Random(1)
fails = 0
for it in range(n):
    recipe, name = rng.choice(cases)
    raw = open(os.path.join(data, name), "rb").read()
    kind = rng.randrange(3)
    if kind == 0 and name.endswith(".jsonl"):  # a value of another type, or a field gone
        lines = raw.decode().splitlines()
        i = rng.randrange(len(lines))
        row = json.loads(lines[i])
        k = rng.choice(list(row))
        if rng.random() < 0.3:
            del row[k]
        else:
            row[k] = rng.choice(odd)
        lines[i] = json.dumps(row)
        raw = ("\n".join(lines) + "\n").encode()
    elif kind == 1:  # flipped bytes
        b = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        raw = bytes(b)
    else:  # cut
        raw = raw[:rng.randrange(len(raw) + 1)]
    d = os.path.join(work, f"f{it}")
    os.makedirs(d)
    inp = os.path.join(d, name)
    open(inp, "wb").write(raw)
    args = ["--recipe", recipe, "--input", inp, "--tokenizer", tokdir, "--out", os.path.join(d, "out"),
            "--split", rng.choice(["test=1", "0.5,0.25,0.25"]), "--max-len", str(rng.choice([16, 64, 512]))]
    if recipe == "custom":
        args += ["--template", "{word} ->", "--answer-field", "plural"]
    if rng.random() < 0.3:
        args.append("--drop-incomplete")
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = prepare.main(args)
    except BaseException as e:  # noqa: BLE001 - anything escaping main is the failure
        rc = f"raised {type(e).__name__}: {e}"
    lines = [x for x in err.getvalue().splitlines() if "error:" in x]
    partial = [f for _, _, fs in os.walk(d) for f in fs if f.endswith(".partial")]
    ok = (rc == 0 and not lines) or (rc == 1 and len(lines) == 1 and len(err.getvalue().splitlines()) == 1
                                     and "error: unexpected" not in lines[0])
    if os.environ.get("FUZZ_VERBOSE"):
        print(rc, lines[0][:150] if lines else "")
    if not ok or partial:
        fails += 1
        if fails <= 5:
            print(f"mutation {it} ({recipe}, kind {kind}): rc {rc}, stderr {err.getvalue()[:300]!r}, partial {partial}")
    shutil.rmtree(d)
print(f"dataprep_fuzz: {n} mutations, {fails} failed")
sys.exit(1 if fails else 0)
