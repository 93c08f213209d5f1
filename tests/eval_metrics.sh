# End to end: `ailora train` scores v2 evaluation sets (dataset v2 contract) by their
# `metric` and writes the curves, counts and per-example records to the run file.
#
# A tiny synthetic LLaMA (ailora synth, vocabulary 64, max_position_embeddings set
# to 24 = the sequence length) and hand-made eval sets (h5py, below) whose answers
# are known whatever the random model generates, because the /detok tables map
# EVERY token to the same text:
#   gsm8k  every token detokenizes to "7": 6 new tokens (no EOS) read "777777";
#          references "777777" (match), "7" (miss), "#### 777,777" (match: the
#          reference's answer is extracted and normalized too) -> 2/3; one row whose
#          20-token prompt + 6 new tokens passes the 24 positions: unfit, counted in
#          /eval/unfit and not scored
#   label  tokens read "Yes " -> first word "yes": references "yes", "YES.", "no" -> 2/3
#   rouge  tokens read "a " -> "a a a a a a": against "a b": ROUGE-1 = ROUGE-L = 1/4,
#          ROUGE-2 = 0; against "a a a": ROUGE-1 = ROUGE-L = 2/3, ROUGE-2 = 4/7
#   exact_match  eos_token_ids = every id: each row stops at its first token, whose
#          text is dropped with it: "" equals the reference "" -> 1 (without the EOS
#          stop the six tokens' text would not be empty)
#   mc     three examples of three options with the SAME option tokens (equal
#          log-likelihoods): ties go to the first option (acc), acc_norm divides by
#          mc_chars; the third example's options are left-padded by different
#          amounts (attention mask + positions must make them equal) and decided by
#          mc_chars -> mc_acc_norm = 1, per-example acc of the first two 1 and 0
# Each curve must equal the mean of its per-example scores; a 2-rank (dp = 2) run
# gives the same curves and examples; retention_data (the gsm8k set) is measured at
# step 0 and at each evaluation under /retention; a preempted and resumed run ends
# with the same /eval and /retention (examples included) as an uninterrupted one.
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
$PY -c "import numpy, h5py" 2> /dev/null || skip "/usr/bin/python3 lacks numpy/h5py (scripts/install-deps.sh)"
check "$AILORA" synth --out "$WORK/m" --hidden 32 --layers 2 --heads 4 --kv-heads 2 --intermediate 64 --vocab 64
$PY - "$WORK" << 'EOF'
import json, sys
import numpy as np, h5py
w = sys.argv[1]
cfg = json.load(open(f"{w}/m/config.json"))
cfg["max_position_embeddings"] = 24
json.dump(cfg, open(f"{w}/m/config.json", "w"))
V, T = 64, 24
rng = np.random.default_rng(0)
ids = rng.integers(0, V, size=(16, T)).astype(np.int32)
with h5py.File(f"{w}/train.h5", "w") as f:
    f["input_ids"] = ids
    f["labels"] = ids

def detok(text):
    b = text.encode()
    return np.arange(V + 1, dtype=np.int64) * len(b), np.frombuffer(b * V, dtype=np.uint8)

def gen_set(path, metric, text, plens, refs, eos=None, max_new=6):
    n = len(plens)
    x = np.zeros((n, T), np.int32); m = np.zeros((n, T), np.int8)
    for i, p in enumerate(plens):
        x[i, T - p:] = rng.integers(0, V, size=p); m[i, T - p:] = 1
    lab = np.full((n, T), -100, np.int32); lab[:, -2:] = x[:, -2:]
    with h5py.File(path, "w") as f:
        f["input_ids"] = x; f["labels"] = lab; f["attention_mask"] = m
        f["prompt_len"] = np.array(plens, np.int32)
        f.create_dataset("references", data=[json.dumps(r) for r in refs], dtype=h5py.string_dtype())
        off, by = detok(text)
        f["detok/offsets"] = off; f["detok/bytes"] = by
        f.attrs["metric"] = metric; f.attrs["max_new_tokens"] = max_new
        if eos is not None: f.attrs["eos_token_ids"] = np.array(eos, np.int32)

gen_set(f"{w}/gsm8k.h5", "gsm8k", "7", [5, 9, 3, 20], [["777777"], ["7"], ["#### 777,777"], ["7"]])
gen_set(f"{w}/label.h5", "label", "Yes ", [4, 6, 8], [["yes"], ["YES."], ["no"]])
gen_set(f"{w}/rouge.h5", "rouge", "a ", [4, 7], [["a b"], ["x y", "a a a"]])
gen_set(f"{w}/em.h5", "exact_match", "word ", [3, 5], [[""], [""]], eos=list(range(V)))

# multiple choice: 3 examples x 3 options; option tokens identical within an example
rows, mcex, gold, chars, masks = [], [], [], [], []
specs = [((0, 0, 0), 0, (5, 5, 5)), ((0, 0, 0), 2, (1, 1, 9)), ((0, 3, 6), 0, (30, 3, 3))]
for e, (pads, g, ch) in enumerate(specs):
    body = rng.integers(0, V, size=10)
    for o in range(3):
        r = np.zeros(T, np.int32); mk = np.zeros(T, np.int8)
        start = T - 10 - pads[o] - 2          # left padding, then 10 tokens, then 2 unused
        r[start:start + 10] = body; mk[start:start + 10] = 1
        lab = np.full(T, -100, np.int32); lab[start + 6:start + 10] = body[6:]  # the option: last 4 tokens
        rows.append((r, lab)); masks.append(mk); mcex.append(e); gold.append(int(o == g)); chars.append(ch[o])
with h5py.File(f"{w}/mc.h5", "w") as f:
    f["input_ids"] = np.stack([r for r, _ in rows]); f["labels"] = np.stack([l for _, l in rows])
    f["attention_mask"] = np.stack(masks)
    f["mc_example"] = np.array(mcex, np.int32); f["mc_gold"] = np.array(gold, np.int8)
    f["mc_chars"] = np.array(chars, np.int32)
    f.attrs["metric"] = "mc"
EOF
BASE="model=$WORK/m train_data=$WORK/train.h5 method=lora rank=2 lr=1e-3 steps=2 batch_size=2 eval_every=1 log_every=1"
# malformed v2 items: one error line naming the file and the item, nothing written
$PY - "$WORK" << 'EOF'
import sys, shutil, h5py
w = sys.argv[1]
for name, edit in [("badmetric", lambda f: f.attrs.__setitem__("metric", "bleu")),
                   ("badrefs", lambda f: f["references"].__setitem__(1, '["unclosed"')),
                   ("nodetok", lambda f: f.__delitem__("detok"))]:
    shutil.copy(f"{w}/gsm8k.h5", f"{w}/{name}.h5")
    with h5py.File(f"{w}/{name}.h5", "a") as f:
        edit(f)
EOF
# shellcheck disable=SC2086
expect_error 'unknown metric "bleu"' "$WORK/bad.run" "$AILORA" train $BASE eval_data="$WORK/badmetric.h5" out="$WORK/bad.run"
# shellcheck disable=SC2086
expect_error "/references[1]" "$WORK/bad.run" "$AILORA" train $BASE eval_data="$WORK/badrefs.h5" out="$WORK/bad.run"
# shellcheck disable=SC2086
expect_error "metric gsm8k needs /references and /detok" "$WORK/bad.run" "$AILORA" train $BASE \
    retention_data="$WORK/nodetok.h5" out="$WORK/bad.run"
for set in gsm8k label rouge em mc; do
    # shellcheck disable=SC2086
    check "$AILORA" train $BASE eval_data="$WORK/$set.h5" out="$WORK/$set.h5.run"
done
# shellcheck disable=SC2086
check run_np 2 "$AILORA" train $BASE eval_data="$WORK/gsm8k.h5" retention_data="$WORK/gsm8k.h5" \
    out="$WORK/gsm8k_np2.run"
grep -q "did not fit the position budget" "$WORK/last.out" || fail "the unfit row was not reported"
# a run preempted after step 1 and resumed has the same curves and examples (kept in
# the checkpoint), bit for bit
# shellcheck disable=SC2086
"$AILORA" train $BASE eval_data="$WORK/gsm8k.h5" retention_data="$WORK/rouge.h5" out="$WORK/part.run" \
    preempt_at_step=1 > /dev/null 2>&1
# shellcheck disable=SC2086
check "$AILORA" train $BASE eval_data="$WORK/gsm8k.h5" retention_data="$WORK/rouge.h5" out="$WORK/part.run" resume=true
# shellcheck disable=SC2086
check "$AILORA" train $BASE eval_data="$WORK/gsm8k.h5" retention_data="$WORK/rouge.h5" out="$WORK/full.run"
check "$H5COMPARE" "$WORK/full.run" "$WORK/part.run" --only /eval/ --tol 0 --nan-equal
check "$H5COMPARE" "$WORK/full.run" "$WORK/part.run" --only /retention/ --tol 0 --nan-equal
check $PY - "$WORK" << 'EOF'
import sys
import numpy as np, h5py
w = sys.argv[1]
bad = []
def expect(what, got, want, tol=1e-12):
    if not np.allclose(got, want, atol=tol, rtol=0, equal_nan=True):
        bad.append(f"{what}: got {got}, want {want}")
def check_set(run, curves, want):
    with h5py.File(run) as f:
        steps = list(f["/eval/step"][:])
        expect(f"{run} /eval/step", steps, [1, 2], 0)
        for c, v in want.items():
            expect(f"{run} /eval/{c}", f[f"/eval/{c}"][:], [v, v])
        for s in steps:
            g = f[f"/eval/examples/{s}"]
            names = g.attrs["components"]
            names = (names.decode() if isinstance(names, bytes) else names).split(",")
            score, unfit = g["score"][:], g["unfit"][:].astype(bool)
            for k, c in enumerate(names):
                col = c if c != "exact_match" else "exact_match"
                expect(f"{run} {c} = mean of its examples", f[f"/eval/{col}"][steps.index(s)],
                       score[~unfit, k].mean())
            if "unfit" in f["/eval"]:
                expect(f"{run} /eval/unfit", f["/eval/unfit"][steps.index(s)], unfit.sum(), 0)
        return f
check_set(f"{w}/gsm8k.h5.run", None, {"gsm8k": 2 / 3, "unfit": 1, "scored": 3})
with h5py.File(f"{w}/gsm8k.h5.run") as f:
    p = [x.decode() for x in f["/eval/examples/2/prediction"][:]]
    expect("gsm8k predictions", p == ["777777", "777777", "777777", ""], True)
    expect("gsm8k unfit flags", f["/eval/examples/2/unfit"][:], [0, 0, 0, 1], 0)
check_set(f"{w}/label.h5.run", None, {"label": 2 / 3, "unfit": 0})
check_set(f"{w}/rouge.h5.run", None, {"rougeL": (1 / 4 + 2 / 3) / 2, "rouge1": (1 / 4 + 2 / 3) / 2,
                                      "rouge2": (0 + 4 / 7) / 2})
check_set(f"{w}/em.h5.run", None, {"exact_match": 1.0})
with h5py.File(f"{w}/em.h5.run") as f:
    expect("em predictions empty", [x.decode() for x in f["/eval/examples/1/prediction"][:]] == ["", ""], True)
check_set(f"{w}/mc.h5.run", None, {"mc_acc_norm": 1.0, "scored": 3})
with h5py.File(f"{w}/mc.h5.run") as f:
    sc = f["/eval/examples/1/score"][:]
    expect("mc per-example acc of examples 0, 1", sc[:2, 0], [1, 0], 0)
    expect("mc per-example acc_norm", sc[:, 1], [1, 1, 1], 0)
    expect("mc example rows", f["/eval/examples/1/row"][:], [0, 3, 6], 0)
# 2 ranks (dp = 2): the same curves and examples; retention at steps 0, 1, 2
with h5py.File(f"{w}/gsm8k.h5.run") as a, h5py.File(f"{w}/gsm8k_np2.run") as b:
    for k in ["/eval/gsm8k", "/eval/unfit", "/eval/scored", "/eval/examples/2/score", "/eval/examples/2/row"]:
        expect(f"np2 {k}", b[k][:], a[k][:], 0)
    expect("np2 predictions", list(b["/eval/examples/2/prediction"][:]) == list(a["/eval/examples/2/prediction"][:]), True)
    expect("/retention/step", b["/retention/step"][:], [0, 1, 2], 0)
    expect("/retention/gsm8k", b["/retention/gsm8k"][:], [2 / 3] * 3)
    expect("/retention/unfit", b["/retention/unfit"][:], [1] * 3, 0)
    expect("/retention/loss finite", np.isfinite(b["/retention/loss"][:]).all(), True)
for x in bad:
    print("FAIL:", x)
print(f"run files checked, {len(bad)} mismatches")
sys.exit(1 if bad else 0)
EOF
cat "$WORK/last.out"
finish
