"""check_gguf_import.py - by-hand check of `ailora import` on a real GGUF model against
transformers' own GGUF loader (not part of `make test`: needs /work/venv-ref and the model).

    /work/venv-ref/bin/python tests/reference/check_gguf_import.py MODEL.gguf [AILORA]

1. imports MODEL.gguf twice (--dtype F32 and the default BF16) into a scratch dir;
2. weights: transformers' dequantized float32 state dict vs ours: F32 import must be
   equal bit for bit (both compute d*q (+ m) in float32), BF16 import equal to
   bf16(transformers) bit for bit (one round-to-nearest-even of the same float32);
3. tokenizer: our tokenizer.json (tokenizers library) vs AutoTokenizer(gguf_file=...)
   on several strings, with and without special tokens; chat template rendering;
4. loss: the mean cross-entropy of a few sequences, transformers (GGUF-loaded, then
   our BF16 directory loaded in float32) vs `ailora train` step 1 (method lora: B = 0,
   so the first step's loss is the base model's).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf = os.path.abspath(sys.argv[1])
ailora = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "./ailora")
work = tempfile.mkdtemp(prefix="gguf_check_")
times = {}
for dt in ("F32", "BF16"):
    t0 = time.time()
    subprocess.run([ailora, "import", gguf, "--out", f"{work}/{dt}", "--dtype", dt, "--quiet"], check=True)
    times[dt] = time.time() - t0
print("import wall time (s):", {k: round(v, 2) for k, v in times.items()})

d, f = os.path.split(gguf)
ref = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
sd = ref.state_dict()
ours32, ours16 = load_file(f"{work}/F32/model.safetensors"), load_file(f"{work}/BF16/model.safetensors")
cfg = json.load(open(f"{work}/BF16/config.json"))
if cfg.get("tie_word_embeddings"):
    sd.pop("lm_head.weight", None)
assert set(sd) == set(ours16) == set(ours32), (set(sd) ^ set(ours16))
w32 = max(float((ours32[k] - sd[k]).abs().max()) for k in sd)
w16 = max(float((ours16[k].float() - sd[k].to(torch.bfloat16).float()).abs().max()) for k in sd)
print(f"weights: {len(sd)} tensors; max |ours F32 - transformers| = {w32:.3g}; "
      f"max |ours BF16 - bf16(transformers)| = {w16:.3g}")
for k in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"):
    print(f"  {k}: max|diff| {float((ours32[k] - sd[k]).abs().max()):.3g}, max|w| {float(sd[k].abs().max()):.3g}")

tref = AutoTokenizer.from_pretrained(d, gguf_file=f)
tours = Tokenizer.from_file(f"{work}/BF16/tokenizer.json")
texts = ["Hello world!", "  leading spaces and\ttabs\n\nnewlines", "The year 2024: 3.14159 café naïve 日本語 🙂",
         "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", "def f(x):\n    return x**2  # ok",
         "a" * 50 + " don't won't I'm"]
mism = 0
for t in texts:
    a = tref(t, add_special_tokens=True)["input_ids"]
    b = tours.encode(t, add_special_tokens=True).ids
    mism += a != b
    if a != b:
        print("MISMATCH", repr(t), a[:20], b[:20])
    assert tours.decode(b, skip_special_tokens=False) == tref.decode(a, skip_special_tokens=False)
print(f"tokenizer: {len(texts)} strings, {mism} mismatches (ids and decode)")
from transformers import PreTrainedTokenizerFast
mine = AutoTokenizer.from_pretrained(f"{work}/BF16")
msgs = [{"role": "user", "content": "Hi there"}]
same_tmpl = mine.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == \
    tref.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
same_ids = all(mine(t)["input_ids"] == tref(t)["input_ids"] for t in texts)
print(f"AutoTokenizer on our dir: chat template render equal: {same_tmpl}; ids equal: {same_ids}; "
      f"eos {mine.eos_token!r} bos {mine.bos_token!r} pad {mine.pad_token!r}")

# loss on 4 sequences of 32 tokens
text = open(__file__).read()
ids = tours.encode(text).ids[: 4 * 32]
x = torch.tensor(ids).reshape(4, 32)
with torch.no_grad():
    loss_ref = float(ref(input_ids=x, labels=x).loss)
    ourmodel = AutoModelForCausalLM.from_pretrained(f"{work}/BF16", dtype=torch.float32)
    loss_dir = float(ourmodel(input_ids=x, labels=x).loss)
np.save(f"{work}/ids.npy", x.numpy().astype(np.int32))
subprocess.run(["/usr/bin/python3", "-c",
                "import h5py, numpy as np, sys; a = np.load(sys.argv[1]); f = h5py.File(sys.argv[2], 'w');"
                "f['input_ids'] = a; f['labels'] = a; f.close()", f"{work}/ids.npy", f"{work}/data.h5"], check=True)
subprocess.run([ailora, "train", f"model={work}/BF16", f"train_data={work}/data.h5", f"out={work}/run.h5",
                "method=lora", "rank=2", "steps=1", "batch_size=4", "lr=1e-9", "log_every=1", "shuffle=false"],
               check=True, stdout=subprocess.DEVNULL)
out = subprocess.run(["/usr/bin/python3", "-c", "import h5py, sys; print(h5py.File(sys.argv[1])['train/loss'][0])",
                      f"{work}/run.h5"], check=True, capture_output=True, text=True).stdout
loss_ailora = float(out)
print(f"loss (4 x 32 tokens): transformers GGUF f32 {loss_ref:.6f}, "
      f"transformers on our BF16 dir {loss_dir:.6f}, ailora train step 1 {loss_ailora:.6f} "
      f"(|ailora - transformers(our dir)| = {abs(loss_ailora - loss_dir):.2e})")
shutil.rmtree(work)
