#!/usr/bin/env python3
"""Generate the architecture fixtures: HF transformers' logits and loss of tiny
LlamaForCausalLM models with biases on all seven linears (attention_bias: q, k, v
AND o; mlp_bias: gate, up, down) and with Llama 3.1 ("llama3") and linear RoPE
scaling.

Regenerate (from the repository root; CPU only, one thread, no network):

    /work/venv-arch/bin/python3 tests/reference/make_arch_fixtures.py

(any python3 with torch, transformers 5, safetensors and numpy; versions are
stored in the __metadata__ of arch_fixtures.safetensors and listed in
tests/reference/README.md). The output is byte-deterministic.

Outputs, next to this script:

  bias_llama/{config.json,model.safetensors}
      LlamaForCausalLM, float32, attention_bias=True, mlp_bias=True: hidden 16,
      intermediate 24, 2 layers, 4 heads, 2 KV heads (head_dim 4), vocab 128,
      max positions 64, rms_norm_eps 1e-5, rope theta 10000 ("default"),
      untied lm_head. transformers builds q_proj, k_proj, v_proj AND o_proj
      with biases (LlamaAttention: bias=config.attention_bias on all four), and
      gate_proj, up_proj, down_proj with biases (LlamaMLP: bias=config.mlp_bias).
      Vocab and max positions match train_data.h5, so the training tests can
      run on it.
      Weights, in named_parameters() order from torch.Generator seed 11:
        embed_tokens.weight, lm_head.weight   N(0, 1), N(0, 1/16)
        every other Linear weight             N(0, 1/fan_in)
        every bias (q, k, v, o, gate, up, down)  N(0, 0.3^2)
        every RMSNorm weight                  1 + 0.1 N(0, 1)
  rope_llama3/{config.json,model.safetensors}
      LlamaForCausalLM, float32, no biases: hidden 32, intermediate 32, 1 layer,
      2 heads, 1 KV head, head_dim 16, vocab 128, max positions 64,
      rope_parameters {"rope_type": "llama3", "rope_theta": 100, "factor": 8,
      "low_freq_factor": 1, "high_freq_factor": 4,
      "original_max_position_embeddings": 64}: of the 8 inverse frequencies,
      wavelengths 6.3 and 11.2 (< 64/4) are kept, 19.9, 35.3, 62.8 fall in the
      smoothed band, 112, 199, 353 (> 64/1) are divided by 8. Same weight
      recipe, torch.Generator seed 12.
  arch_fixtures.safetensors
      bias.tokens [2, 12] int32   uniform in [0, 128), numpy default_rng(5)
      bias.labels [2, 12] int32   = tokens, positions 0..2 of each row -100
      bias.logits [2, 12, 128] float32   HF forward (eager attention)
      bias.loss []  float32               HF's loss (position t predicts labels[t+1])
      bias.loss_no_obias [] float32       the same with every o_proj.bias zeroed: what
                                          an engine that drops o_proj.bias computes
      rope.tokens [1, 32] int32           uniform in [0, 128), default_rng(6)
      rope.llama3.logits [1, 32, 128]     rope_llama3 as saved
      rope.linear.logits [1, 32, 128]     the same weights with rope_parameters
                                          {"rope_type": "linear", "factor": 4,
                                          "rope_theta": 100}

Asserted: the saved models reload with no missing or unexpected keys (so
o_proj.bias is really part of the checkpoint); dropping the o_proj biases,
or the MLP biases, moves the loss by more than 1e-3 relative (100x the C test's
loss tolerance); each scaled RoPE moves the logits
by more than 0.05 from plain RoPE (so a test at 1e-4 sees the scaling).
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
FIXTURE = os.path.join(HERE, "arch_fixtures.safetensors")
ROPE_DIR = os.path.join(HERE, "rope_llama3")
HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB, MAXPOS = 16, 24, 2, 4, 2, 128, 64
ROWS, T, PROMPT = 2, 12, 3
BIAS_STD, NORM_JITTER, SEED, DATA_SEED = 0.3, 0.1, 11, 5


def build():
    cfg = transformers.LlamaConfig(
        hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HIDDEN // HEADS,
        vocab_size=VOCAB, max_position_embeddings=MAXPOS, rms_norm_eps=1e-5, hidden_act="silu",
        rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
        tie_word_embeddings=False, attention_bias=True, mlp_bias=True)
    cfg.dtype = torch.float32
    torch.manual_seed(SEED)
    model = transformers.LlamaForCausalLM(cfg).to(torch.float32).eval()
    names = [n for n, _ in model.named_parameters()]
    assert all(f"model.layers.{l}.self_attn.{p}.bias" in names for l in range(LAYERS)
               for p in ("q_proj", "k_proj", "v_proj", "o_proj")), names
    assert all(f"model.layers.{l}.mlp.{p}.bias" in names for l in range(LAYERS)
               for p in ("gate_proj", "up_proj", "down_proj")), names
    init_weights(model, SEED)
    if os.path.isdir(MODEL_DIR):
        shutil.rmtree(MODEL_DIR)
    model.save_pretrained(MODEL_DIR, safe_serialization=True)
    os.remove(os.path.join(MODEL_DIR, "generation_config.json"))  # unused
    canonicalize_header(os.path.join(MODEL_DIR, "model.safetensors"))
    assert sorted(os.listdir(MODEL_DIR)) == ["config.json", "model.safetensors"]


def init_weights(model, seed):
    g = torch.Generator().manual_seed(seed)
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


ROPE_SIZES = dict(hidden_size=32, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=16, vocab_size=128, max_position_embeddings=64,
                  rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False)
LLAMA3 = {"rope_type": "llama3", "rope_theta": 100.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
LINEAR = {"rope_type": "linear", "rope_theta": 100.0, "factor": 4.0}


def rope_logits(rope, state, tokens):
    cfg = transformers.LlamaConfig(rope_parameters=dict(rope), **ROPE_SIZES)
    model = transformers.LlamaForCausalLM._from_config(cfg, attn_implementation="eager").to(torch.float32).eval()
    model.load_state_dict(state)
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(tokens).long()).logits.numpy().astype(np.float32)


def build_rope():
    cfg = transformers.LlamaConfig(rope_parameters=dict(LLAMA3), **ROPE_SIZES)
    cfg.dtype = torch.float32
    torch.manual_seed(12)
    model = transformers.LlamaForCausalLM(cfg).to(torch.float32).eval()
    init_weights(model, 12)
    if os.path.isdir(ROPE_DIR):
        shutil.rmtree(ROPE_DIR)
    model.save_pretrained(ROPE_DIR, safe_serialization=True)
    os.remove(os.path.join(ROPE_DIR, "generation_config.json"))
    canonicalize_header(os.path.join(ROPE_DIR, "model.safetensors"))
    back, info = transformers.LlamaForCausalLM.from_pretrained(
        ROPE_DIR, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert back.config.rope_parameters["rope_type"] == "llama3"
    tokens = np.random.default_rng(6).integers(0, 128, size=(1, 32)).astype(np.int32)
    with torch.no_grad():
        llama3 = back(input_ids=torch.from_numpy(tokens).long()).logits.numpy().astype(np.float32)
    state = back.state_dict()
    assert np.array_equal(llama3, rope_logits(LLAMA3, state, tokens))
    linear = rope_logits(LINEAR, state, tokens)
    plain = rope_logits({"rope_type": "default", "rope_theta": 100.0}, state, tokens)
    for name, lg in (("llama3", llama3), ("linear", linear)):
        moved = np.abs(lg - plain).max()
        assert moved > 0.05, (name, moved)
        print(f"{name} RoPE moves the logits by up to {moved:.3f} from plain RoPE")
    return {"rope.tokens": tokens, "rope.llama3.logits": llama3, "rope.linear.logits": linear}


def main():
    build()
    rope = build_rope()
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
        keep = [{n: p.clone() for n, p in model.model.layers[l].mlp.named_parameters()} for l in range(LAYERS)]
        for l in range(LAYERS):
            for p in ("gate_proj", "up_proj", "down_proj"):
                getattr(model.model.layers[l].mlp, p).bias.zero_()
        no_mlpbias = model(input_ids=torch.from_numpy(tokens).long(), labels=torch.from_numpy(labels).long()).loss
        for l in range(LAYERS):
            for n, p in model.model.layers[l].mlp.named_parameters():
                p.copy_(keep[l][n])
            model.model.layers[l].self_attn.o_proj.bias.zero_()
        no_obias = model(input_ids=torch.from_numpy(tokens).long(), labels=torch.from_numpy(labels).long()).loss
    loss, logits = float(out.loss), out.logits.numpy().astype(np.float32)
    # the loss from the logits, independently (float64)
    lg, lb = logits[:, :-1].astype(np.float64), labels[:, 1:]
    lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
    nll = lse - np.take_along_axis(lg, np.clip(lb, 0, None)[..., None], -1)[..., 0]
    assert abs(nll[lb != -100].mean() - loss) < 1e-6 * loss
    moved = abs(float(no_obias) - loss) / loss
    assert moved > 1e-3, moved
    moved_mlp = abs(float(no_mlpbias) - loss) / loss
    assert moved_mlp > 1e-3, moved_mlp
    versions = {"python": sys.version.split()[0], "torch": torch.__version__,
                "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                "numpy": np.__version__}
    size = save_fixture(FIXTURE, {
        "bias.tokens": tokens, "bias.labels": labels, "bias.logits": logits,
        "bias.loss": np.array(loss, dtype=np.float32),
        "bias.loss_no_obias": np.array(float(no_obias), dtype=np.float32), **rope,
    }, {"generator": "make_arch_fixtures.py"}, versions)
    print(f"loss {loss:.7f}, without o_proj.bias {float(no_obias):.7f} ({moved:.1%} off), "
          f"without the MLP biases {float(no_mlpbias):.7f} ({moved_mlp:.1%} off); "
          f"max |logit| {np.abs(logits).max():.3f}; {FIXTURE}: {size} bytes")


if __name__ == "__main__":
    main()
