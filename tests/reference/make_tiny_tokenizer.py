#!/usr/bin/env python3
"""make_tiny_tokenizer.py - the tiny byte-level BPE tokenizer of tests/dataprep.sh.

Trained with HF tokenizers on the test inputs (tests/data/dataprep) plus a few
sentences, 384 ids: the three ChatML special tokens (<|endoftext|> 0, <|im_start|> 1,
<|im_end|> 2, as SmolLM2 numbers them), the 256 byte tokens, then merges. Written with
a ChatML chat template and eos_token <|im_end|> in tokenizer_config.json, the shape of
what the import engineer's GGUF conversion and transformers' save_pretrained produce.
Run with .venv/bin/python (tokenizers 0.21.1); committed output:
tests/data/dataprep/tok/{tokenizer.json,tokenizer_config.json}.
"""
import glob
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "data", "dataprep")
out = os.path.join(data, "tok")
os.makedirs(out, exist_ok=True)

texts = []
for p in sorted(glob.glob(os.path.join(data, "*.*"))):
    with open(p, encoding="utf-8") as f:
        texts.append(f.read())
texts += ["Question: Answer: Summarize the following article in one sentence.",
          "user assistant system The quick brown fox jumps over the lazy dog. Ünïcödé ✓ 日本"]

special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
tok.post_processor = processors.ByteLevel(trim_offsets=False)
trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=special, show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(texts, trainer)
tok.save(os.path.join(out, "tokenizer.json"))

chatml = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
config = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
          "unk_token": "<|endoftext|>", "chat_template": chatml,
          "added_tokens_decoder": {str(i): {"content": s, "special": True} for i, s in enumerate(special)}}
with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
    json.dump(config, f, indent=1)
    f.write("\n")
print(f"{out}: vocab {tok.get_vocab_size()}")
