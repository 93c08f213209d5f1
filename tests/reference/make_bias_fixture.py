#!/usr/bin/env python3
"""Generate the LLaMA attention_bias fixture: HF transformers' logits and loss of a
tiny LlamaForCausalLM whose q, k, v AND o projections have biases.

Regenerate (from the repository root; CPU only, one thread, no network):

    /work/venv-arch/bin/python3 tests/reference/make_bias_fixture.py

(any python3 with torch, transformers 5, safetensors and numpy; versions are
stored in the __metadata__ of bias_fixtures.safetensors and listed in
tests/reference/README.md). The output is byte-deterministic.

Outputs, next to this script:

  bias_llama/{config.json,model.safetensors}
      LlamaForCausalLM, float32, attention_bias=True: hidden 16, intermediate
      24, 2 layers, 4 heads, 2 KV heads (head_dim 4), vocab 128, max positions
      64, rms_norm_eps 1e-5, rope theta 10000 ("default"), untied lm_head,
      mlp_bias false. transformers builds q_proj, k_proj, v_proj AND o_proj
      with biases (LlamaAttention: bias=config.attention_bias on all four).
      Vocab and max positions match train_data.h5, so the training tests can
      run on it.
      Weights, in named_parameters() order from torch.Generator seed 11:
        embed_tokens.weight, lm_head.weight   N(0, 1), N(0, 1/16)
        every other Linear weight             N(0, 1/fan_in)
        every bias (q, k, v, o)               N(0, 0.3^2)
        every RMSNorm weight                  1 + 0.1 N(0, 1)
  bias_fixtures.safetensors
      tokens [2, 12] int32   uniform in [0, 128), numpy default_rng(5)
      labels [2, 12] int32   = tokens, positions 0..2 of each row -100
      logits [2, 12, 128] float32   HF forward (eager attention)
      loss []  float32               HF's loss (position t predicts labels[t+1])
      loss_no_obias [] float32       the same with every o_proj.bias zeroed: what
                                     an engine that drops o_proj.bias computes

Asserted: the saved model reloads with no missing or unexpected keys (so
o_proj.bias is really part of the checkpoint), and dropping the o_proj
biases moves the loss by more than 1e-2 relative.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

import math
import shutil
import sys

import numpy as np
import safetensors
import torch
import transformers

from fixture_io import canonicalize_header, save_fixture

transformers.logging.disable_progress_bar()
transformers.logging.set_verbosity_error()
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "bias_llama")
FIXTURE = os.path.join(HERE, "bias_fixtures.safetensors")
HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB, MAXPOS = 16, 24, 2, 4, 2, 128, 64
ROWS, T, PROMPT = 2, 12, 3
BIAS_STD, NORM_JITTER, SEED, DATA_SEED = 0.3, 0.1, 11, 5


def build():
    cfg = transformers.LlamaConfig(
        hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HIDDEN // HEADS,
        vocab_size=VOCAB, max_position_embeddings=MAXPOS, rms_norm_eps=1e-5, hidden_act="silu",
        rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
        tie_word_embeddings=False, attention_bias=True, mlp_bias=False)
    cfg.dtype = torch.float32
    torch.manual_seed(SEED)
    model = transformers.LlamaForCausalLM(cfg).to(torch.float32).eval()
    names = [n for n, _ in model.named_parameters()]
    assert all(f"model.layers.{l}.self_attn.{p}.bias" in names for l in range(LAYERS)
               for p in ("q_proj", "k_proj", "v_proj", "o_proj")), names
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g))
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + NORM_JITTER * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(BIAS_STD * torch.randn(p.shape, generator=g))
            elif name.endswith(".weight") and p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            else:
                raise AssertionError(name)
    if os.path.isdir(MODEL_DIR):
        shutil.rmtree(MODEL_DIR)
    model.save_pretrained(MODEL_DIR, safe_serialization=True)
    os.remove(os.path.join(MODEL_DIR, "generation_config.json"))  # unused
    canonicalize_header(os.path.join(MODEL_DIR, "model.safetensors"))
    assert sorted(os.listdir(MODEL_DIR)) == ["config.json", "model.safetensors"]


def main():
    build()
    model, info = transformers.LlamaForCausalLM.from_pretrained(
        MODEL_DIR, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    model.eval()
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    rng = np.random.default_rng(DATA_SEED)
    tokens = rng.integers(0, VOCAB, size=(ROWS, T)).astype(np.int32)
    labels = tokens.copy()
    labels[:, :PROMPT] = -100
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(tokens).long(), labels=torch.from_numpy(labels).long())
        for l in range(LAYERS):
            model.model.layers[l].self_attn.o_proj.bias.zero_()
        no_obias = model(input_ids=torch.from_numpy(tokens).long(), labels=torch.from_numpy(labels).long()).loss
    loss, logits = float(out.loss), out.logits.numpy().astype(np.float32)
    # the loss from the logits, independently (float64)
    lg, lb = logits[:, :-1].astype(np.float64), labels[:, 1:]
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    nll = lse - np.take_along_axis(lg, np.clip(lb, 0, None)[..., None], -1)[..., 0]
    assert abs(nll[lb != -100].mean() - loss) < 1e-6 * loss
    moved = abs(float(no_obias) - loss) / loss
    assert moved > 1e-2, moved
    versions = {"python": sys.version.split()[0], "torch": torch.__version__,
                "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                "numpy": np.__version__}
    size = save_fixture(FIXTURE, {
        "tokens": tokens, "labels": labels, "logits": logits,
        "loss": np.array(loss, dtype=np.float32), "loss_no_obias": np.array(float(no_obias), dtype=np.float32),
    }, {"generator": "make_bias_fixture.py"}, versions)
    print(f"loss {loss:.7f}, without o_proj.bias {float(no_obias):.7f} ({moved:.1%} off); "
          f"max |logit| {np.abs(logits).max():.3f}; {FIXTURE}: {size} bytes")


if __name__ == "__main__":
    main()
