"""HF transformers' greedy generate on the prompts of gen_bench.sh (the same model
directory, batch, left padding with an attention mask, threads), for the tokens/s
ratio; also compares its tokens with ailora's KV-cache tokens (PROMPTS.ailora).
Usage: gen_bench_hf.py MODEL_DIR PROMPTS_TXT NEW THREADS"""
import sys
import time

import torch
from transformers import AutoModelForCausalLM

model_dir, prompts, new, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
lines = open(prompts).read().split("\n")
B, P = map(int, lines[0].split())
rows = [list(map(int, l.split())) for l in lines[1:1 + B]]
ids = torch.tensor([[max(v, 0) for v in r] for r in rows])
mask = torch.tensor([[int(v >= 0) for v in r] for r in rows])
model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
kw = dict(attention_mask=mask, do_sample=False, max_new_tokens=new, min_new_tokens=new, pad_token_id=0,
          eos_token_id=None, use_cache=True)
with torch.no_grad():
    model.generate(ids, **{**kw, "max_new_tokens": 2, "min_new_tokens": 2})  # warm-up
    t0 = time.perf_counter()
    out = model.generate(ids, **kw)
    t = time.perf_counter() - t0
print(f"hf generate: {B} rows x {new} new tokens in {t:.3f} s: {B * new / t:.4g} tokens/s")
gen = out[:, P:].tolist()
ours = [list(map(int, l.split())) for l in open(prompts + ".ailora").read().strip().split("\n")]
agree = sum(a == b for r, s in zip(gen, ours) for a, b in zip(r, s))
# first divergence per row: a near-tie argmax flipped by float rounding changes the rest of the row
first = [next((i for i, (a, b) in enumerate(zip(r, s)) if a != b), new) for r, s in zip(gen, ours)]
print(f"hf vs ailora kv-cache tokens: {agree} of {B * new} equal; tokens before the first difference per row: {first}")
