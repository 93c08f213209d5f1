#!/usr/bin/env python3
"""make_hf_chat_ids.py - reference token ids from HF transformers for tests/dataprep.sh:
apply_chat_template(messages, add_generation_prompt=True) with the tiny test tokenizer
(tests/data/dataprep/tok), and plain tokenizer(text) ids, so that prepare.py's own
rendering (jinja2 or the ChatML fallback) + tokenizers is checked against transformers.
Run with /work/venv-ref/bin/python (transformers); writes tests/data/dataprep/hf_chat_ids.json.
"""
import json
import os

from transformers import AutoTokenizer

here = os.path.dirname(os.path.abspath(__file__))
tokdir = os.path.join(here, "..", "data", "dataprep", "tok")
tok = AutoTokenizer.from_pretrained(tokdir)
cases = [
    [{"role": "user", "content": "Natalia sold clips to 48 of her friends. How many?"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "Ünïcödé ✓ 日本\nQuestion: is water wet? Answer yes or no."}],
]
plain = ["Question: What is 2 + 2?\nAnswer:", " 4", "Article: rain\nSummary:"]
out = {"chat": [{"messages": m, "ids": list(tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                                                     return_dict=False))} for m in cases],
       "plain": [{"text": t, "ids": tok(t)["input_ids"]} for t in plain]}
with open(os.path.join(here, "..", "data", "dataprep", "hf_chat_ids.json"), "w") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
    f.write("\n")
print(out)
