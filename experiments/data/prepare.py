#!/usr/bin/env python3
"""prepare.py - real text in, ailora's HDF5 datasets out (dataset contract v2,
DESIGN.md), tokenized with the model's own tokenizer. Run with .venv/bin/python
(scripts/install-deps.sh makes it: tokenizers, pyarrow).

    .venv/bin/python experiments/data/prepare.py --recipe gsm8k --input train.jsonl \\
        --tokenizer MODEL_DIR --out data/gsm8k [--max-len 512] [--split 0.8,0.1,0.1]

writes OUT/train.h5, OUT/validation.h5, OUT/test.h5 (splits of fraction 0 are not
written). Steps, in order:
 1. read every --input (JSONL, JSON, CSV, Parquet); each row through the recipe
    (recipes.py). A missing field is an error naming FILE:LINE and the field (or, with
    --drop-incomplete, a counted drop); rows the recipe cannot use (no label, an answer
    not among the options, ...) are dropped and counted by reason.
 2. deduplicate on the rendered prompt (case and whitespace folded): the first
    occurrence stays, across all inputs (BoolQ's validation rows are also inside its
    combined file); duplicates with a different answer are counted apart.
 3. shuffle by --seed, keep the first --limit examples, split by --split fractions.
 4. tokenize: prompt (the recipe's template, through the chat template with --format
    chat), then the answer, then EOS; labels = -100 on the prompt and padding.
    Truncation: the answer is never cut. A row longer than --max-len has its recipe's
    long field (passage, document, context) cut at a token boundary until it fits
    (counted: truncated); a recipe without one, or a row that does not fit even with
    that field empty, is dropped (counted: too_long). Multiple choice: the prompt is
    cut once so that its longest option fits, and every option shares it.
 5. pad to the longest row of the split: train on the right, validation/test on the
    left (generation prompts end at the same column; --pad to force one side);
    /attention_mask 0 on padding, whose input_ids are the pad token (else EOS).
Every count goes into each file's attributes (dropped_*, truncated, duplicates*) and
is printed. Multiple choice: train holds the gold option's row only (metric loss),
validation/test one row per option (metric mc, /mc_*).
Output is atomic: OUT/SPLIT.h5.partial, fsync, rename; existing files are kept
unless --overwrite; on any error nothing is left behind.
"""

import argparse
import json
import os
import random
import re
import string
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import recipes as R  # noqa: E402
from tokenization import Tok, TokError  # noqa: E402

METRICS = ("loss", "exact_match", "gsm8k", "label", "mc", "squad", "rouge")


class Fail(Exception):
    """One error line, then exit 1."""


# ---------------------------------------------------------------- reading

def read_rows(path):
    """Yield (where, row) for each row of path; where = "FILE:LINE" (CSV: the line of
    the record in a file without embedded newlines; JSON/Parquet: "FILE:row N")."""
    low = path.lower()
    if not os.path.isfile(path):
        raise Fail(f"{path}: no such file")
    if low.endswith((".jsonl", ".ndjson")):
        with open(path, encoding="utf-8", errors="strict") as f:
            try:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as e:
                        raise Fail(f"{path}:{n}: malformed JSON ({e.msg}, column {e.colno})")
                    if not isinstance(row, dict):
                        raise Fail(f"{path}:{n}: not a JSON object")
                    yield f"{path}:{n}", row
            except UnicodeDecodeError:
                raise Fail(f"{path}: not UTF-8")
    elif low.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except ValueError as e:
            raise Fail(f"{path}: malformed JSON ({e})")
        if isinstance(doc, dict) and isinstance(doc.get("data"), list) and doc["data"] \
                and isinstance(doc["data"][0], dict) and "paragraphs" in doc["data"][0]:
            rows = list(R.squad_flatten(doc))
        elif isinstance(doc, list):
            rows = doc
        elif isinstance(doc, dict) and any(isinstance(doc.get(k), list) for k in ("data", "rows", "examples")):
            rows = next(doc[k] for k in ("data", "rows", "examples") if isinstance(doc.get(k), list))
        else:
            raise Fail(f"{path}: expected a JSON array of rows (or data/rows/examples, or SQuAD's nested JSON)")
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise Fail(f"{path}:row {n}: not a JSON object")
            yield f"{path}:row {n}", row
    elif low.endswith((".csv", ".tsv")):
        import pandas as pd
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, sep="\t" if low.endswith(".tsv") else ",")
        except Exception as e:
            raise Fail(f"{path}: malformed CSV ({str(e).strip().splitlines()[-1]})")
        for n, row in enumerate(df.to_dict("records"), 2):
            yield f"{path}:{n}", row
    elif low.endswith(".parquet"):
        import pandas as pd
        try:
            df = pd.read_parquet(path)
        except ImportError:
            raise Fail("Parquet needs pyarrow: run scripts/install-deps.sh and use .venv/bin/python")
        except Exception as e:
            raise Fail(f"{path}: not a Parquet file ({str(e).strip().splitlines()[-1]})")
        for n, row in enumerate(df.to_dict("records"), 1):
            yield f"{path}:row {n}", {k: _plain(v) for k, v in row.items()}
    else:
        raise Fail(f"{path}: unknown input format (.jsonl, .json, .csv, .tsv, .parquet)")


def _plain(v):
    """Parquet values as JSON would give them (numpy arrays -> lists, NaN -> None)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, float) and v != v:
        return None
    return v


# ---------------------------------------------------------------- prompts

def template_fields(tmpl):
    try:
        return [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(tmpl) if f]
    except ValueError as e:
        raise Fail(f"template {tmpl!r}: {e}")


class Renderer:
    """The prompt text of an example: the recipe's template over its fields, put
    through the chat template (--format chat) or used as is (plain)."""

    def __init__(self, tok, fmt, tmpl, system):
        self.tok, self.fmt, self.tmpl, self.system = tok, fmt, tmpl, system

    def prompt(self, fields):
        body = self.tmpl.format(**fields).strip()
        if self.fmt == "plain":
            return body
        msgs = ([{"role": "system", "content": self.system}] if self.system else []) + \
            [{"role": "user", "content": body}]
        return self.tok.render_chat(msgs)

    def answer_text(self, answer):
        # plain: the answer is a continuation after one space (" 42"), as
        # lm-evaluation-harness joins them; chat: the assistant's turn is already open
        return " " + answer if self.fmt == "plain" else answer

    def encode_prompt(self, text):
        # plain prompts get the tokenizer's own BOS if it adds one; chat templates
        # write their special tokens themselves (transformers does the same)
        return self.tok.encode(text, special=self.fmt == "plain")


def fit_prompt(ex, rnd, tok, need, max_len, counts):
    """Prompt token ids of ex such that len(prompt) + need <= max_len, shortening the
    long field if there is one; None if the row cannot fit."""
    ids = rnd.encode_prompt(rnd.prompt(ex.fields))
    if len(ids) + need <= max_len:
        return ids
    if not ex.long_field or not ex.fields.get(ex.long_field):
        return None
    long_ids = tok.encode(ex.fields[ex.long_field], special=False)
    keep = len(long_ids)
    while True:
        keep -= len(ids) + need - max_len
        if keep <= 0:
            return None
        cut = tok.decode(long_ids[:keep]).rstrip("\ufffd").rstrip()
        ids = rnd.encode_prompt(rnd.prompt(dict(ex.fields, **{ex.long_field: cut})))
        if len(ids) + need <= max_len:
            counts["truncated"] += 1
            return ids


# ---------------------------------------------------------------- output

def write_h5(path, rows, meta, pad_side, pad_id, detok, mc, width=None):
    import h5py
    import numpy as np
    n = len(rows)
    T = width or max(len(r["ids"]) for r in rows)
    ids = np.full((n, T), pad_id, np.int32)
    labels = np.full((n, T), -100, np.int32)
    mask = np.zeros((n, T), np.int8)
    for i, r in enumerate(rows):
        L = len(r["ids"])
        s = T - L if pad_side == "left" else 0
        ids[i, s:s + L] = r["ids"]
        labels[i, s + r["prompt_len"]:s + L] = r["ids"][r["prompt_len"]:]
        mask[i, s:s + L] = 1
    with h5py.File(path, "w") as f:
        f.create_dataset("input_ids", data=ids)
        f.create_dataset("labels", data=labels)
        f.create_dataset("attention_mask", data=mask)
        f.create_dataset("prompt_len", data=np.array([r["prompt_len"] for r in rows], np.int32))
        f.create_dataset("references", data=[json.dumps(r["refs"], ensure_ascii=False) for r in rows],
                         dtype=h5py.string_dtype("utf-8"))
        if mc:
            f.create_dataset("mc_example", data=np.array([r["mc_example"] for r in rows], np.int32))
            f.create_dataset("mc_gold", data=np.array([r["mc_gold"] for r in rows], np.int8))
            f.create_dataset("mc_chars", data=np.array([r["mc_chars"] for r in rows], np.int32))
        g = f.create_group("detok")
        g.create_dataset("offsets", data=np.array(detok[0], np.int64))
        g.create_dataset("bytes", data=np.frombuffer(detok[1], np.uint8))
        for k, v in meta.items():
            if isinstance(v, str):  # fixed-length UTF-8, as ailora's h5io_attr_str writes
                b = v.encode("utf-8")
                f.attrs.create(k, b if b else b"\0", dtype=h5py.string_dtype("utf-8", max(len(b), 1)))
            elif isinstance(v, list):
                f.attrs.create(k, np.array(v, np.int32))
            else:
                f.attrs.create(k, np.int64(v))
        f.flush()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- main

def parse_split(s):
    names = ("train", "validation", "test")
    out = {}
    parts = [p for p in s.split(",") if p]
    try:
        if all("=" in p for p in parts):
            for p in parts:
                k, v = p.split("=", 1)
                if k not in names:
                    raise Fail(f"--split: unknown split {k!r} (train, validation, test)")
                out[k] = float(v)
        elif len(parts) == 3:
            out = dict(zip(names, map(float, parts)))
        else:
            raise ValueError
    except ValueError:
        raise Fail(f"--split {s!r}: expected three fractions (0.8,0.1,0.1) or train=F,test=F")
    if any(v < 0 for v in out.values()) or abs(sum(out.values()) - 1) > 1e-9:
        raise Fail(f"--split {s!r}: fractions must be >= 0 and sum to 1")
    return {k: out.get(k, 0.0) for k in names}


def build_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", required=True, help="one of: " + ", ".join(R.RECIPES))
    ap.add_argument("--input", action="append", required=True, help="JSONL/JSON/CSV/TSV/Parquet (repeatable)")
    ap.add_argument("--tokenizer", required=True, help="DIR or DIR/tokenizer.json (+ tokenizer_config.json)")
    ap.add_argument("--out", required=True, help="output folder: SPLIT.h5 for each split")
    ap.add_argument("--format", choices=("auto", "chat", "plain"), default="auto",
                    help="chat: the prompt through the tokenizer's chat template (auto: if it has one)")
    ap.add_argument("--template", help="prompt template (Python format over the row's fields); "
                    "overrides the recipe's; required by custom")
    ap.add_argument("--system", help="system message (chat format)")
    ap.add_argument("--answer-field", help="custom: the field holding the answer")
    ap.add_argument("--references-field", help="custom: a field with accepted answers (JSON array or string)")
    ap.add_argument("--metric", choices=METRICS, help="custom: the metric (default exact_match)")
    ap.add_argument("--max-len", type=int, default=512, help="longest row in tokens (default 512)")
    ap.add_argument("--width", type=int, help="pad every split to exactly this many tokens (sets --max-len): "
                    "train, eval_data and retention_data of one run must have the same width")
    ap.add_argument("--max-new-tokens", type=int, help="generation budget (default: the recipe's; custom: "
                    "the longest answer + EOS)")
    ap.add_argument("--limit", type=int, help="keep this many examples (after deduplication, by --seed)")
    ap.add_argument("--split", default="0.8,0.1,0.1", help="train,validation,test fractions (default 0.8,0.1,0.1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pad", choices=("auto", "left", "right"), default="auto",
                    help="padding side (auto: train right, validation/test left)")
    ap.add_argument("--task", help="task name written to the files (default: the recipe)")
    ap.add_argument("--source", help="provenance and licence written to the files")
    ap.add_argument("--drop-incomplete", action="store_true",
                    help="drop (and count) rows missing a field instead of failing")
    ap.add_argument("--overwrite", action="store_true")
    return ap


def run(a):
    if a.recipe not in R.RECIPES:
        raise Fail(f"unknown recipe {a.recipe!r} (known: {', '.join(R.RECIPES)})")
    rec = R.RECIPES[a.recipe]
    if a.width is not None:
        if a.width < 4:
            raise Fail("--width must be at least 4")
        a.max_len = a.width
    if a.max_len < 4:
        raise Fail("--max-len must be at least 4")
    if a.limit is not None and a.limit < 1:
        raise Fail("--limit must be positive")
    fractions = parse_split(a.split)
    metric = rec.metric
    extract = rec.extract
    if a.recipe == "custom":
        if not a.template or not a.answer_field:
            raise Fail("recipe custom needs --template and --answer-field")
        metric = a.metric or "exact_match"
        if metric == "mc":
            raise Fail("recipe custom: metric mc needs an mc recipe (piqa, siqa, commonsenseqa, openbookqa, mmlu)")
        extract = R.custom(a.answer_field, a.references_field, metric == "label")
    elif a.metric or a.answer_field or a.references_field:
        raise Fail("--metric, --answer-field and --references-field are for recipe custom")
    if a.template is not None and a.answer_field and a.answer_field in template_fields(a.template):
        raise Fail(f"--template uses the answer field {{{a.answer_field}}}: it would leave no answer to score")
    try:
        tok = Tok(a.tokenizer)
    except TokError as e:
        raise Fail(str(e))
    fmt = a.format if a.format != "auto" else ("chat" if tok.chat_template else "plain")
    tmpl = a.template or (rec.chat if fmt == "chat" else rec.plain)
    need = template_fields(tmpl)
    rnd = Renderer(tok, fmt, tmpl, a.system)
    try:
        rnd.prompt({k: "x" for k in need})
    except (KeyError, IndexError, ValueError, AttributeError) as e:
        raise Fail(f"template {tmpl!r}: {type(e).__name__}: {e}")
    except TokError as e:
        raise Fail(str(e))

    # outputs: refuse before doing any work
    outs = {k: os.path.join(a.out, f"{k}.h5") for k, v in fractions.items() if v > 0}
    for p in outs.values():
        if os.path.exists(p) and not a.overwrite:
            raise Fail(f"{p} exists (use --overwrite)")

    # 1. rows -> examples; 2. deduplicate
    counts = {"rows": 0, "duplicates": 0, "duplicates_conflicting": 0}
    drops = {}
    examples, seen = [], {}
    for path in a.input:
        for where, row in read_rows(path):
            counts["rows"] += 1
            try:
                ex = extract(row)
                # a --template may use any text field of the row besides the recipe's
                ex.fields = dict({k: v for k, v in row.items() if isinstance(v, str)}, **ex.fields)
                missing = [f for f in need if f not in ex.fields]
                if missing:
                    raise R.Missing(missing[0])
                ptext = tmpl.format(**ex.fields)
            except R.Missing as e:
                if not a.drop_incomplete:
                    raise Fail(f"{where}: missing field '{e.field}' (recipe {a.recipe})")
                drops["missing_field"] = drops.get("missing_field", 0) + 1
                continue
            except (TypeError, ValueError, AttributeError, KeyError) as e:
                # a field of a type the recipe does not take (a number for a list, ...)
                raise Fail(f"{where}: a field has the wrong type for recipe {a.recipe} ({type(e).__name__}: {e})")
            except R.Bad as e:
                key = re.sub(r"\W+", "_", str(e)).strip("_")
                drops[key] = drops.get(key, 0) + 1
                continue
            if not ex.answer.strip():
                raise Fail(f"{where}: empty answer: no answer tokens to score")
            key = " ".join(ptext.casefold().split())
            if ex.options:
                key += "\x00" + "\x00".join(o.casefold() for o in ex.options)
            if key in seen:
                counts["duplicates"] += 1
                if seen[key] != ex.answer:
                    counts["duplicates_conflicting"] += 1
                continue
            seen[key] = ex.answer
            ex.where = where
            examples.append(ex)
    if not examples:
        raise Fail(f"no usable rows in {', '.join(a.input)} (dropped: {drops or 'none'})")

    # 3. shuffle, limit, split
    random.Random(a.seed).shuffle(examples)
    if a.limit:
        examples = examples[:a.limit]
    n = len(examples)
    sizes, start, parts = {}, 0, {}
    names = list(fractions)
    for i, k in enumerate(names):
        cnt = n - start if i == len(names) - 1 else int(round(fractions[k] * n))
        cnt = max(0, min(cnt, n - start))
        parts[k] = examples[start:start + cnt]
        start += cnt
        sizes[k] = cnt

    detok = tok.detok_tables()
    eos = tok.eos_id
    mc_rec = a.recipe in R.MC_RECIPES
    label_set = sorted({ex.label for ex in examples if ex.label is not None})

    # 4. tokenize each split
    results = {}
    max_answer = 0
    for k, exs in parts.items():
        if k not in outs:
            continue
        if not exs:
            raise Fail(f"split {k} is empty ({n} examples; --split {a.split})")
        c = {"examples": len(exs), "truncated": 0, "dropped_too_long": 0}
        rows = []
        per_option = mc_rec and k != "train"
        for ex in exs:
            kept = c.get("examples_kept", 0)
            opts = ex.options if per_option else [ex.answer]
            ans = [tok.encode(rnd.answer_text(o), special=False) + [eos] for o in opts]
            if any(len(x) == 1 for x in ans):
                raise Fail(f"{ex.where}: the answer {ex.answer!r} has no tokens after the prompt")
            p = fit_prompt(ex, rnd, tok, max(len(x) for x in ans), a.max_len, c)
            if p is None:
                c["dropped_too_long"] += 1
                continue
            for j, x in enumerate(ans):
                max_answer = max(max_answer, len(x))
                r = {"ids": p + x, "prompt_len": len(p), "refs": ex.references}
                if per_option:
                    r.update(mc_example=kept,
                             mc_gold=int(j == ex.gold), mc_chars=len(opts[j]), refs=[opts[j]])
                rows.append(r)
            c["examples_kept"] = kept + 1
        if not rows:
            raise Fail(f"split {k}: every row is longer than --max-len {a.max_len}")
        results[k] = (rows, c, per_option)

    mnt = a.max_new_tokens or rec.max_new_tokens or max_answer
    source = a.source or f"{', '.join(os.path.basename(p) for p in a.input)} (licence: see experiments/data/README.md)"
    # 5. write every split under a temporary name, then rename all
    os.makedirs(a.out, exist_ok=True)
    partials = []
    try:
        for k, (rows, c, per_option) in results.items():
            side = a.pad if a.pad != "auto" else ("right" if k == "train" else "left")
            m = "loss" if mc_rec and not per_option else metric
            meta = {"metric": m, "task": a.task or a.recipe, "source": source, "split": k,
                    "eos_token_ids": tok.eos_ids, "max_new_tokens": mnt, "pad_side": side,
                    "format": fmt, "template": tmpl, "max_len": a.max_len, "width": a.width or 0, "seed": a.seed,
                    "vocab_size": tok.vocab_size, "tokenizer_sha256": tok.sha256,
                    "rows_read": counts["rows"], "duplicates": counts["duplicates"],
                    "duplicates_conflicting": counts["duplicates_conflicting"],
                    "examples": c["examples"], "examples_kept": c.get("examples_kept", 0),
                    "truncated": c["truncated"], "dropped_too_long": c["dropped_too_long"]}
            for dk, dv in sorted(drops.items()):
                meta["dropped_" + dk] = dv
            if m == "label":
                meta["label_choices"] = json.dumps(label_set, ensure_ascii=False)
            if a.system:
                meta["system"] = a.system
            tmp = outs[k] + ".partial"
            partials.append(tmp)
            write_h5(tmp, rows, meta, side, tok.pad_id, detok, per_option, a.width)
        for k in results:
            os.replace(outs[k] + ".partial", outs[k])
        dfd = os.open(a.out, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        for p in partials:
            if os.path.exists(p):
                os.unlink(p)
        raise

    dropped = ", ".join(f"{k} {v}" for k, v in sorted(drops.items())) or "none"
    print(f"{a.task or a.recipe} (recipe {a.recipe}): {counts['rows']} rows read, {counts['duplicates']} duplicates "
          f"({counts['duplicates_conflicting']} with another answer), dropped before splitting: {dropped}; "
          f"{n} examples; format {fmt}, max_len {a.max_len}")
    for k, (rows, c, per_option) in results.items():
        T = a.width or max(len(r["ids"]) for r in rows)
        print(f"  {outs[k]}: {c.get('examples_kept', 0)} of {c['examples']} examples, {len(rows)} rows x {T} tokens; "
              f"truncated {c['truncated']}, dropped (too long) {c['dropped_too_long']}")


def main(argv=None):
    try:
        run(build_args().parse_args(argv))
    except Fail as e:
        print(f"prepare.py: error: {e}", file=sys.stderr)
        return 1
    except TokError as e:
        print(f"prepare.py: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"prepare.py: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("prepare.py: error: interrupted (nothing written)", file=sys.stderr)
        return 1
    except Exception as e:  # a bug or an input no rule above foresaw: still one line
        print(f"prepare.py: error: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
