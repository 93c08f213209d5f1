#!/usr/bin/env python3
"""Generate the reference fixtures for ailora's model / LoRA-training tests.

Regenerate (from the repository root; CPU only, one thread, no network):

    /root/.pyenv/versions/3.11.7/bin/python3 tests/reference/make_train_fixtures.py [--fresh]

Tensors already in train_fixtures.safetensors keep their stored values unless
--fresh (see keep_existing); new ones are added. (any python3 with torch, transformers 5, peft, safetensors, numpy and h5py;
the versions used are stored in the __metadata__ of train_fixtures.safetensors
and listed in tests/reference/README.md). The output is byte-deterministic.

Outputs, all next to this script:

  train_llama/{config.json,generation_config.json,model.safetensors}
      LlamaForCausalLM, float32: hidden 64, intermediate 96, 2 layers,
      4 heads, 2 KV heads (head_dim 16, GQA groups of 2), vocab 128,
      max positions 64, rms_norm_eps 1e-5, rope theta 10000 (rope_type
      "default"), untied lm_head, no biases.
  train_qwen2/{config.json,generation_config.json,model.safetensors}
      Qwen2ForCausalLM with the same sizes, q/k/v biases (o_proj and MLP
      have none), tie_word_embeddings=True (model.safetensors then holds no
      lm_head.weight; the head is model.embed_tokens.weight).

      Weights (both models): torch.manual_seed(1), HF's own init, then every
      parameter is overwritten, in named_parameters() order, from one
      torch.Generator seeded with 1:
        embed_tokens.weight       N(0, 1)
        every Linear weight       N(0, 1/fan_in)   (std 1/sqrt(in_features);
                                  lm_head too when untied)
        q/k/v biases (qwen2)      N(0, 0.1^2)
        every RMSNorm weight      1 + 0.1 N(0, 1)
        qwen2 only: model.norm.weight is then divided by sqrt(hidden) = 8,
        because its lm_head is the std-1 embedding (8x the std of llama's
        lm_head); this keeps the logits of both models at std ~1.
      HF's default init (std 0.02) would make every layer a near no-op and
      the logits near-uniform; with this scaling attention scores, MLP and
      both layers move the loss (asserted: zeroing any of q_proj/o_proj/
      down_proj of any layer, or removing the adapters, changes the loss by
      more than 1e-3 relative).

  train_data.h5
      /input_ids [8, 16] int32: uniform random tokens in [0, 128),
                 numpy default_rng(20240611)
      /labels    [8, 16] int32: = input_ids, except positions 0..4 of every
                 row are -100 ("prompt") and, in rows 2 and 5, also positions
                 13..15 (padding). Scored labels per row:
                 (11, 11, 8, 11, 11, 8, 11, 11) (positions 5..15, resp.
                 5..12); after the shift (position t predicts labels[t+1])
                 the same counts of scored predictions, 41 per 4-row half.
      HF convention: labels aligned with input_ids; the loss shifts. No
      attention mask: the "padding" positions hold ordinary random tokens,
      and under the causal mask they cannot influence any scored prediction.

  train_data_padded.h5 (dataset v2: variable-length rows)
      /input_ids, /labels [4, 16] int32, /attention_mask [4, 16] int8, from
      rows 0..3 of train_data.h5: row 0 left-padded by 3 (its first 13
      tokens), row 1 right-padded by 4 (first 12), row 2 left-padded by 6
      (first 10), row 3 unpadded. Padding tokens are PAD_TOKEN, their labels
      -100; labels of real tokens are those of train_data.h5 (the first real
      token's label is -100: prompt). Positions as HF takes them for padded
      batches: position_ids = (cumsum(mask) - 1).clamp(min=0), passed
      explicitly (HF derives them from the mask only in generate()).

  train_fixtures.safetensors (one file; all tensors float32 unless .f64.)
      names "<model>.<case>.<what>", model in {llama, qwen2}, case in
      {lora, pissa}; <module> = model.layers.{0,1}.self_attn.{q_proj,v_proj}
        init.<module>.lora_A [r, n], init.<module>.lora_B [m, r]
        residual.<module>.weight [m, n]       (pissa only: base weight after PEFT's init)
        logits [4, 16, 128], loss []          (batch rows 0..3, adapters at init)
        grad.<module>.lora_A / lora_B         (d loss / d param, same batch)
        losses [10], grad_norm [10]           (10 AdamW steps, see below)
        final.<module>.lora_A / lora_B        (after the 10 steps)
        padded_logits [4, 16, 128], padded_loss [], padded_grad.<module>.lora_A / lora_B
                                              (train_data_padded.h5, adapters at init,
                                              HF with attention_mask and position_ids;
                                              logits meaningful on real positions only:
                                              HF's fully masked padding queries differ)
      plus llama.lora.f64.* (float64, see below).
      The padded batch is checked here against the same rows unpadded, one
      forward each (loss of the batch and logits of real positions).

Adapters: peft.LoraConfig(r=4, lora_alpha=8 (s = alpha/r = 2),
target_modules=["q_proj","v_proj"], lora_dropout=0.0), a LoRA module computes
  y = x W^T + b + s * (x A^T) B^T.
  case "lora":  PEFT default init (torch.manual_seed(3) right before
                get_peft_model: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(n),
                1/sqrt(n)), B = 0), then every lora_B (module order above) is
                overwritten with N(0, 0.05^2) from torch.Generator seed 4, so
                that dA != 0 and the adapter changes the logits.
  case "pissa": init_lora_weights="pissa" (float32 SVD inside PEFT, signs as
                LAPACK returns them, no canonicalization). The base weight
                becomes the residual W - s B A; q/k/v biases are untouched.

Loss (HF ForCausalLMLoss, num_items_in_batch=None): with labels padded by one
-100 and shifted, mean over all scored (label != -100) positions of the whole
batch of -log softmax(logits[b, t])[labels[b, t+1]]. Not a mean of per-row
means: rows with fewer scored tokens weigh less (data parallel must weight
ranks by scored-token counts).

Training: torch.optim.AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
weight_decay=0.01) over the LoRA parameters only (base frozen), constant lr,
10 steps; step i (0-based) uses batch rows [(4 i) % 8, (4 i) % 8 + 4), i.e.
rows 0..3, 4..7, 0..3, ...; each step: loss -> backward -> total_norm =
torch.nn.utils.clip_grad_norm_(params, 1.0) (grads *= min(1, 1/(total_norm +
1e-6))) -> step -> zero_grad. losses[i] is the loss before update i,
grad_norm[i] the pre-clip global L2 norm over all LoRA grads.

Attention is run with attn_implementation="eager" (explicit softmax of
q k^T / sqrt(head_dim) + causal mask); RoPE is HF's rotate-half form:
  inv_freq[j] = theta^(-2j/d), j = 0..d/2-1, d = head_dim = 16,
  angle[t, j] = t * inv_freq[j] (t = 0-based position), emb = cat(angle, angle),
  q' = q * cos(emb) + rotate_half(q) * sin(emb), rotate_half(x) = cat(-x2, x1)
  with x1 = x[:d/2], x2 = x[d/2:] (pairs (j, j + d/2), NOT interleaved pairs).
GQA: query head h uses KV head h // (n_heads / n_kv_heads).

Float64 (llama.lora.f64.*): HF's modules are not float64-clean even after
model.double(): LlamaRMSNorm normalizes in float32, the rotary embedding
computes cos/sin in float32, eager attention takes the softmax in float32 and
ForCausalLMLoss casts the logits to float32. So the float64 tensors come from
ref_forward() below, an independent functional re-implementation of the same
network (checked against HF in float32 for all four model/case pairs) run in
float64 end to end, with the float32 weights and the float32 "lora" init
upcast exactly. It records logits, loss, grads and also a 10-step float64
AdamW trajectory (losses, grad_norm, final.*), torch.optim.AdamW on float64
parameters.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

import hashlib
import json
import math
import shutil
import sys

import h5py
import numpy as np
from fixture_io import save_fixture
import safetensors
import safetensors.numpy
import torch
import torch.nn.functional as F
import transformers
import peft

transformers.logging.disable_progress_bar()
transformers.logging.set_verbosity_error()
torch.set_num_threads(1)
torch.set_num_interop_threads(1)
torch.use_deterministic_algorithms(True)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "train_fixtures.safetensors")
DATA = os.path.join(HERE, "train_data.h5")
MODEL_DIRS = {"llama": os.path.join(HERE, "train_llama"), "qwen2": os.path.join(HERE, "train_qwen2")}

HIDDEN, INTER, LAYERS, HEADS, KV_HEADS, VOCAB, MAXPOS = 64, 96, 2, 4, 2, 128, 64
HEAD_DIM = HIDDEN // HEADS
EPS, THETA = 1e-5, 10000.0

N_SEQ, SEQ_LEN = 8, 16
PROMPT_LEN, PAD_ROWS, PAD_LEN = 5, (2, 5), 3
DATA_SEED = 20240611
WEIGHT_SEED = 1
BIAS_STD, NORM_JITTER = 0.1, 0.1

R, ALPHA = 4, 8
SCALE = ALPHA / R
TARGETS = ("q_proj", "v_proj")
MODULES = [f"model.layers.{i}.self_attn.{t}" for i in range(LAYERS) for t in TARGETS]
LORA_A_SEED, LORA_B_SEED, LORA_B_STD = 3, 4, 0.05

BATCH = 4
STEPS = 10
DATA_PADDED = os.path.join(HERE, "train_data_padded.h5")
PADDING = ((3, "left"), (4, "right"), (6, "left"), (0, "left"))  # per row of the padded batch
PAD_TOKEN = VOCAB - 1
LR, BETAS, ADAM_EPS, WD, CLIP = 1e-3, (0.9, 0.999), 1e-8, 0.01, 1.0


def batch_rows(i):
    start = (BATCH * i) % N_SEQ
    return start, start + BATCH


# ---------------------------------------------------------------- models
def make_config(kind):
    common = dict(
        hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, vocab_size=VOCAB,
        max_position_embeddings=MAXPOS, rms_norm_eps=EPS, hidden_act="silu",
        rope_parameters={"rope_theta": THETA, "rope_type": "default"},
    )
    if kind == "llama":
        cfg = transformers.LlamaConfig(tie_word_embeddings=False, attention_bias=False,
                                       mlp_bias=False, head_dim=HEAD_DIM, **common)
    else:
        cfg = transformers.Qwen2Config(tie_word_embeddings=True, use_sliding_window=False, **common)
    cfg.dtype = torch.float32
    return cfg


def model_class(kind):
    return transformers.LlamaForCausalLM if kind == "llama" else transformers.Qwen2ForCausalLM


def build_model(kind):
    cfg = make_config(kind)
    torch.manual_seed(WEIGHT_SEED)
    model = model_class(kind)(cfg).to(torch.float32).eval()
    g = torch.Generator().manual_seed(WEIGHT_SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied lm_head appears once, as embed_tokens
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
        if kind == "qwen2":
            assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
            model.model.norm.weight.div_(math.sqrt(HIDDEN))
    d = MODEL_DIRS[kind]
    if os.path.isdir(d):
        shutil.rmtree(d)
    model.save_pretrained(d, safe_serialization=True)
    files = set(os.listdir(d))
    assert files <= {"config.json", "model.safetensors", "generation_config.json"}, files
    assert {"config.json", "model.safetensors"} <= files, files
    return model


def load_model(kind):
    return model_class(kind).from_pretrained(
        MODEL_DIRS[kind], dtype=torch.float32, attn_implementation="eager").eval()


# ---------------------------------------------------------------- data
def make_data():
    rng = np.random.default_rng(DATA_SEED)
    ids = rng.integers(0, VOCAB, size=(N_SEQ, SEQ_LEN)).astype(np.int32)
    labels = ids.copy()
    labels[:, :PROMPT_LEN] = -100
    for r in PAD_ROWS:
        labels[r, SEQ_LEN - PAD_LEN:] = -100
    if os.path.exists(DATA):
        os.remove(DATA)
    with h5py.File(DATA, "w", libver="earliest", track_order=False) as f:
        f.create_dataset("input_ids", data=ids, dtype="<i4", track_times=False)
        f.create_dataset("labels", data=labels, dtype="<i4", track_times=False)
    with h5py.File(DATA, "r") as f:
        assert np.array_equal(f["input_ids"][...], ids) and np.array_equal(f["labels"][...], labels)
    return ids, labels


def make_padded_data(ids, labels):
    """Rows 0..3, padded per PADDING (see the docstring); returns ids, labels, mask, real lengths."""
    n, T = len(PADDING), SEQ_LEN
    pid = np.full((n, T), PAD_TOKEN, np.int32)
    plab = np.full((n, T), -100, np.int32)
    mask = np.zeros((n, T), np.int8)
    for b, (pad, side) in enumerate(PADDING):
        L = T - pad
        sl = slice(pad, T) if side == "left" else slice(0, L)
        pid[b, sl], plab[b, sl], mask[b, sl] = ids[b, :L], labels[b, :L], 1
        assert labels[b, 0] == -100  # the first real token has no real predictor
    if os.path.exists(DATA_PADDED):
        os.remove(DATA_PADDED)
    with h5py.File(DATA_PADDED, "w", libver="earliest", track_order=False) as f:
        f.create_dataset("input_ids", data=pid, dtype="<i4", track_times=False)
        f.create_dataset("labels", data=plab, dtype="<i4", track_times=False)
        f.create_dataset("attention_mask", data=mask, dtype="i1", track_times=False)
    return pid, plab, mask


def padded_forward(pm, pid, plab, mask):
    ids_t, lab_t, m_t = (torch.from_numpy(x).long() for x in (pid, plab, mask))
    pos = (m_t.cumsum(-1) - 1).clamp(min=0)
    return pm(input_ids=ids_t, attention_mask=m_t, position_ids=pos, labels=lab_t)


def padded_unpadded_diff(pm, pid, plab, mask, res):
    """The padded batch against each row alone, unpadded: |d loss|, max |d logits| on real positions."""
    tot, cnt, dl = 0.0, 0, 0.0
    with torch.no_grad():
        for b in range(len(pid)):
            real = mask[b] == 1
            x = torch.from_numpy(pid[b][real]).long()[None]
            y = torch.from_numpy(plab[b][real]).long()[None]
            r = pm(input_ids=x, labels=y)
            c = int((y[0, 1:] != -100).sum())
            tot += r.loss.item() * c
            cnt += c
            dl = max(dl, float((r.logits[0] - res.logits.detach()[b][torch.from_numpy(real)]).abs().max()))
    return abs(tot / cnt - res.loss.item()), dl


def hf_loss_check(logits, labels):
    """Independent recomputation of HF's loss from logits (float64)."""
    lg = logits.double()[:, :-1]
    lb = labels[:, 1:]
    mask = lb != -100
    lp = torch.log_softmax(lg, -1)
    nll = -lp.gather(-1, lb.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (nll * mask).sum() / mask.sum()


# ---------------------------------------------------------------- functional reference
def ref_forward(W, lora, ids, labels, dtype, tied):
    """The whole network as explicit tensor algebra, in `dtype` end to end.

    W: dict HF parameter name -> tensor; lora: dict module -> (A, B) or {}.
    Returns (logits [b, T, V], loss []).
    """
    b, T = ids.shape

    def lin(x, name):
        y = x @ W[name + ".weight"].T
        if name + ".bias" in W:
            y = y + W[name + ".bias"]
        if name in lora:
            A, B = lora[name]
            y = y + SCALE * ((x @ A.T) @ B.T)
        return y

    def rms(x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * W[name]

    d = HEAD_DIM
    inv_freq = 1.0 / (THETA ** (torch.arange(0, d, 2, dtype=dtype) / d))
    ang = torch.arange(T, dtype=dtype)[:, None] * inv_freq[None, :]
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos(), emb.sin()  # [T, d]

    def rope(x):  # [b, h, T, d]
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    causal = torch.ones(T, T, dtype=torch.bool).tril()
    x = W["model.embed_tokens.weight"][ids]
    for l in range(LAYERS):
        p = f"model.layers.{l}."
        h = rms(x, p + "input_layernorm.weight")
        q = lin(h, p + "self_attn.q_proj").view(b, T, HEADS, d).transpose(1, 2)
        k = lin(h, p + "self_attn.k_proj").view(b, T, KV_HEADS, d).transpose(1, 2)
        v = lin(h, p + "self_attn.v_proj").view(b, T, KV_HEADS, d).transpose(1, 2)
        q, k = rope(q), rope(k)
        grp = HEADS // KV_HEADS
        k = k[:, torch.arange(HEADS) // grp]  # query head hh uses kv head hh // grp
        v = v[:, torch.arange(HEADS) // grp]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        s = s.masked_fill(~causal, float("-inf"))
        a = torch.softmax(s, -1) @ v  # [b, h, T, d]
        a = a.transpose(1, 2).reshape(b, T, HEADS * d)
        x = x + lin(a, p + "self_attn.o_proj")
        h = rms(x, p + "post_attention_layernorm.weight")
        x = x + lin(F.silu(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, "model.norm.weight")
    head = W["model.embed_tokens.weight"] if tied else W["lm_head.weight"]
    logits = x @ head.T
    lb = labels[:, 1:]
    mask = lb != -100
    lp = torch.log_softmax(logits[:, :-1], -1)
    nll = -lp.gather(-1, lb.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    loss = (nll * mask).sum() / mask.sum()
    return logits, loss


def ref_weights(kind, dtype, residuals=None):
    W = safetensors.numpy.load_file(os.path.join(MODEL_DIRS[kind], "model.safetensors"))
    W = {k: torch.from_numpy(v).to(dtype) for k, v in W.items()}
    for k, v in (residuals or {}).items():
        W[k + ".weight"] = torch.from_numpy(v).to(dtype)
    return W


# ---------------------------------------------------------------- PEFT runs
def make_peft(kind, case):
    base = load_model(kind)
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    lcfg = peft.LoraConfig(r=R, lora_alpha=ALPHA, target_modules=list(TARGETS), lora_dropout=0.0,
                           init_lora_weights=("pissa" if case == "pissa" else True))
    torch.manual_seed(LORA_A_SEED)
    pm = peft.get_peft_model(base, lcfg).eval()
    mods = {name: pm.base_model.model.get_submodule(name) for name in MODULES}
    for name, mod in mods.items():
        assert mod.scaling["default"] == SCALE and mod.r["default"] == R
        assert mod.lora_A["default"].bias is None and mod.lora_B["default"].bias is None
        base_layer = mod.get_base_layer()
        if base_layer.bias is not None:  # qwen2: PEFT leaves the bias alone (also for pissa)
            assert torch.equal(base_layer.bias, before[name + ".bias"])
        if case == "lora":
            assert torch.equal(base_layer.weight, before[name + ".weight"])
            assert torch.count_nonzero(mod.lora_B["default"].weight) == 0
    if case == "lora":
        g = torch.Generator().manual_seed(LORA_B_SEED)
        with torch.no_grad():
            for name in MODULES:
                wB = mods[name].lora_B["default"].weight
                wB.copy_(LORA_B_STD * torch.randn(wB.shape, generator=g))
    params = []
    for name in MODULES:
        params += [mods[name].lora_A["default"].weight, mods[name].lora_B["default"].weight]
    trainable = [p for p in pm.parameters() if p.requires_grad]
    assert len(trainable) == len(params) and all(any(p is q for q in params) for p in trainable)
    return pm, mods, params


def lora_state(mods, prefix):
    out = {}
    for name in MODULES:
        out[f"{prefix}.{name}.lora_A"] = mods[name].lora_A["default"].weight.detach().numpy().copy()
        out[f"{prefix}.{name}.lora_B"] = mods[name].lora_B["default"].weight.detach().numpy().copy()
    return out


def lora_grads(mods):
    out = {}
    for name in MODULES:
        out[f"grad.{name}.lora_A"] = mods[name].lora_A["default"].weight.grad.detach().numpy().copy()
        out[f"grad.{name}.lora_B"] = mods[name].lora_B["default"].weight.grad.detach().numpy().copy()
    return out


def train(forward, params, ids, labels):
    opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=ADAM_EPS, weight_decay=WD)
    losses, norms = [], []
    for i in range(STEPS):
        a, b = batch_rows(i)
        loss = forward(ids[a:b], labels[a:b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        losses.append(loss.item())
        norms.append(norm.item())
    return losses, norms


def run_case(kind, case, ids, labels, checks, padded=None):
    pm, mods, params = make_peft(kind, case)
    out = {}
    out.update(lora_state(mods, "init"))
    if case == "pissa":
        for name in MODULES:
            out[f"residual.{name}.weight"] = mods[name].get_base_layer().weight.detach().numpy().copy()
    a, b = batch_rows(0)
    res = pm(input_ids=ids[a:b], labels=labels[a:b])
    res.loss.backward()
    out["logits"] = res.logits.detach().numpy().copy()
    out["loss"] = np.array(res.loss.item(), dtype=np.float32)
    assert abs(hf_loss_check(res.logits.detach(), labels[a:b]).item() - res.loss.item()) < 1e-5
    out.update(lora_grads(mods))
    for name in MODULES:
        for t in ("lora_A", "lora_B"):
            assert np.count_nonzero(out[f"grad.{name}.{t}"]) == out[f"grad.{name}.{t}"].size, (kind, case, name, t)

    # adapters must matter: disabling them must move the loss
    with torch.no_grad(), pm.disable_adapter():
        l_off = pm(input_ids=ids[a:b], labels=labels[a:b]).loss.item()
    checks[f"{kind}.{case}: adapters off"] = abs(l_off - res.loss.item()) / res.loss.item()

    # padded batch (dataset v2), adapters at init
    for p in params:
        p.grad = None
    rp = padded_forward(pm, *padded)
    rp.loss.backward()
    out["padded_logits"] = rp.logits.detach().numpy().copy()
    out["padded_loss"] = np.array(rp.loss.item(), dtype=np.float32)
    out.update({"padded_" + k: v for k, v in lora_grads(mods).items()})
    dloss, dlog = padded_unpadded_diff(pm, *padded, rp)
    print(f"{kind}.{case}: padded batch vs rows unpadded: |dloss| {dloss:.2e}, max|dlogits| (real) {dlog:.2e}")
    assert dloss < 1e-5 * rp.loss.item() and dlog < 1e-4, (dloss, dlog)

    # independent functional reference in float32 (same weights, same adapters)
    W = ref_weights(kind, torch.float32, {n: out[f"residual.{n}.weight"] for n in MODULES} if case == "pissa" else None)
    lo = {n: (torch.from_numpy(out[f"init.{n}.lora_A"]), torch.from_numpy(out[f"init.{n}.lora_B"])) for n in MODULES}
    with torch.no_grad():
        rl, rloss = ref_forward(W, lo, ids[a:b], labels[a:b], torch.float32, kind == "qwen2")
    ref_diff = (float((rl - res.logits.detach()).abs().max()), abs(rloss.item() - res.loss.item()))

    def fwd(x, y):
        return pm(input_ids=x, labels=y).loss

    for p in params:
        p.grad = None
    losses, norms = train(fwd, params, ids, labels)
    assert abs(losses[0] - res.loss.item()) <= 1e-6 * res.loss.item()
    out["losses"] = np.array(losses, dtype=np.float32)
    out["grad_norm"] = np.array(norms, dtype=np.float32)
    out.update(lora_state(mods, "final"))
    return out, ref_diff


def f64_run(init32, ids, labels):
    """llama / lora in float64 with the functional reference."""
    W = ref_weights("llama", torch.float64)
    lo = {}
    params = []
    for n in MODULES:
        A = torch.from_numpy(init32[f"init.{n}.lora_A"]).double().requires_grad_(True)
        B = torch.from_numpy(init32[f"init.{n}.lora_B"]).double().requires_grad_(True)
        lo[n] = (A, B)
        params += [A, B]
    a, b = batch_rows(0)
    logits, loss = ref_forward(W, lo, ids[a:b], labels[a:b], torch.float64, False)
    loss.backward()
    out = {"logits": logits.detach().numpy().copy(), "loss": np.array(loss.item(), dtype=np.float64)}
    for n in MODULES:
        out[f"grad.{n}.lora_A"] = lo[n][0].grad.numpy().copy()
        out[f"grad.{n}.lora_B"] = lo[n][1].grad.numpy().copy()
    for p in params:
        p.grad = None
    losses, norms = train(lambda x, y: ref_forward(W, lo, x, y, torch.float64, False)[1], params, ids, labels)
    out["losses"] = np.array(losses, dtype=np.float64)
    out["grad_norm"] = np.array(norms, dtype=np.float64)
    for n in MODULES:
        out[f"final.{n}.lora_A"] = lo[n][0].detach().numpy().copy()
        out[f"final.{n}.lora_B"] = lo[n][1].detach().numpy().copy()
    return out


def hf_double_diff(init32, ids, labels, ref64):
    """How far HF's model.double() is from a true float64 forward (report only)."""
    pm, mods, _ = make_peft("llama", "lora")
    with torch.no_grad():
        for n in MODULES:
            mods[n].lora_A["default"].weight.copy_(torch.from_numpy(init32[f"init.{n}.lora_A"]))
            mods[n].lora_B["default"].weight.copy_(torch.from_numpy(init32[f"init.{n}.lora_B"]))
    pm = pm.double()
    a, b = batch_rows(0)
    with torch.no_grad():
        res = pm(input_ids=ids[a:b], labels=labels[a:b])
    return float(np.max(np.abs(res.logits.numpy() - ref64["logits"]))), abs(res.loss.item() - float(ref64["loss"]))


# ---------------------------------------------------------------- ablation checks
def ablation_checks(kind, ids, labels, checks):
    a, b = batch_rows(0)

    def loss_of(model):
        with torch.no_grad():
            return model(input_ids=ids[a:b], labels=labels[a:b]).loss.item()

    base = loss_of(load_model(kind))
    checks[f"{kind}: base loss"] = base
    for l in range(LAYERS):
        for mod in ("self_attn.q_proj", "self_attn.o_proj", "mlp.down_proj"):
            m = load_model(kind)
            with torch.no_grad():
                m.get_submodule(f"model.layers.{l}.{mod}").weight.zero_()
            checks[f"{kind}: zero layers.{l}.{mod}"] = abs(loss_of(m) - base) / base
    # logits of the plain model must not be near-uniform
    with torch.no_grad():
        lg = load_model(kind)(input_ids=ids[a:b]).logits
    checks[f"{kind}: logits std"] = float(lg.std())


# ---------------------------------------------------------------- output
def rel_err(x, y):
    """max |x - y| / max |y| and max elementwise |x - y| / |y|."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    d = np.abs(x - y)
    return float(d.max() / np.abs(y).max()), float(np.max(d / np.maximum(np.abs(y), 1e-300)))


def main():
    versions = {
        "python": sys.version.split()[0], "torch": torch.__version__,
        "transformers": transformers.__version__, "peft": peft.__version__,
        "safetensors": safetensors.__version__, "numpy": np.__version__, "h5py": h5py.__version__,
    }
    print("versions:", json.dumps(versions))

    for kind in ("llama", "qwen2"):
        build_model(kind)
    ids_np, labels_np = make_data()
    padded = make_padded_data(ids_np, labels_np)
    ids = torch.from_numpy(ids_np).long()
    labels = torch.from_numpy(labels_np).long()
    scored = (labels_np[:, 1:] != -100).sum(1)
    print("scored predictions per row:", scored.tolist())

    checks = {}
    for kind in ("llama", "qwen2"):
        ablation_checks(kind, ids, labels, checks)

    tensors = {}
    per_case = {}
    for kind in ("llama", "qwen2"):
        for case in ("lora", "pissa"):
            out, ref_diff = run_case(kind, case, ids, labels, checks, padded)
            per_case[(kind, case)] = out
            for k, v in out.items():
                assert v.dtype == np.float32, (k, v.dtype)
                tensors[f"{kind}.{case}.{k}"] = np.array(v, order="C")  # not ascontiguousarray: it turns 0-d into [1]
            gmax = max(float(np.abs(v).max()) for k, v in out.items() if k.startswith("grad."))
            gmin = min(float(np.abs(v).min()) for k, v in out.items() if k.startswith("grad."))
            for k in out:
                if k.startswith("padded_grad."):
                    assert np.count_nonzero(out[k]) == out[k].size, k
            L = out["losses"]
            print(f"{kind}.{case}: loss {float(out['loss']):.7f}  max|grad| {gmax:.4e}  min|grad| {gmin:.3e}  "
                  f"HF-vs-ref(f32): max|dlogits| {ref_diff[0]:.2e} |dloss| {ref_diff[1]:.2e}")
            print(f"   losses {np.array2string(L, precision=6, max_line_width=200)}")
            print(f"   grad_norm {np.array2string(out['grad_norm'], precision=4, max_line_width=200)}")
            ev, od = L[0::2], L[1::2]
            print(f"   decrease rows0-3: {ev[0]:.6f} -> {ev[-1]:.6f} ({ev[0] - ev[-1]:.4e}); "
                  f"rows4-7: {od[0]:.6f} -> {od[-1]:.6f} ({od[0] - od[-1]:.4e})")
            fin = max(float(np.abs(out[f"final.{n}.{t}"] - out[f"init.{n}.{t}"]).max())
                      for n in MODULES for t in ("lora_A", "lora_B"))
            print(f"   max |final - init| {fin:.4e}")
            assert ref_diff[0] < 1e-4 and ref_diff[1] < 1e-5, ref_diff
            assert np.all(np.diff(ev) < 0) and np.all(np.diff(od) < 0), L

    for k, v in checks.items():
        print(f"check {k}: {v:.4g}")
        if "zero" in k or "adapters off" in k:
            assert v > 1e-3, (k, v)

    # float64 reference and float32-vs-float64 differences (llama / lora)
    o32 = per_case[("llama", "lora")]
    o64 = f64_run(o32, ids, labels)
    for k, v in o64.items():
        assert v.dtype == np.float64
        tensors[f"llama.lora.f64.{k}"] = np.array(v, order="C")  # not ascontiguousarray: it turns 0-d into [1]
    dl = float(np.abs(o32["logits"].astype(np.float64) - o64["logits"]).max())
    print(f"f32 vs f64 (llama.lora): max|dlogits| {dl:.3e} (max|logits| {np.abs(o64['logits']).max():.3f}), "
          f"|dloss| rel {abs(float(o32['loss']) - float(o64['loss'])) / float(o64['loss']):.3e}")
    worst_g = [0.0, 0.0]
    for n in MODULES:
        for t in ("lora_A", "lora_B"):
            r = rel_err(o32[f"grad.{n}.{t}"], o64[f"grad.{n}.{t}"])
            worst_g = [max(worst_g[0], r[0]), max(worst_g[1], r[1])]
    print(f"   grads: max|d|/max|g| {worst_g[0]:.3e}, max elementwise rel {worst_g[1]:.3e}")
    gd = np.concatenate([np.abs(o32[f"grad.{n}.{t}"] - o64[f"grad.{n}.{t}"]).ravel()
                         for n in MODULES for t in ("lora_A", "lora_B")])
    ga = np.concatenate([np.abs(o64[f"grad.{n}.{t}"]).ravel() for n in MODULES for t in ("lora_A", "lora_B")])
    print(f"   grads: max|d| {gd.max():.3e}, min|g| {ga.min():.3e}, elements with |d|/|g| > 1e-4: "
          f"{int(np.sum(gd > 1e-4 * ga))} of {ga.size} (largest such |g| {ga[gd > 1e-4 * ga].max() if np.any(gd > 1e-4 * ga) else 0:.3e}); "
          f"with |d| > 1e-4 |g| + 1e-6 max|g|: {int(np.sum(gd > 1e-4 * ga + 1e-6 * ga.max()))}")
    rl = rel_err(o32["losses"], o64["losses"])
    rn = rel_err(o32["grad_norm"], o64["grad_norm"])
    print(f"   10-step losses: max rel {rl[1]:.3e}; grad_norm max rel {rn[1]:.3e}")
    worst_f = [0.0, 0.0]
    for n in MODULES:
        for t in ("lora_A", "lora_B"):
            r = rel_err(o32[f"final.{n}.{t}"], o64[f"final.{n}.{t}"])
            worst_f = [max(worst_f[0], r[0]), max(worst_f[1], r[1])]
            worst_abs = float(np.abs(o32[f"final.{n}.{t}"] - o64[f"final.{n}.{t}"]).max())
            print(f"   final {n}.{t}: max|d| {worst_abs:.3e}  max|d|/max|p| {r[0]:.3e}")
    hd = hf_double_diff(o32, ids, labels, o64)
    print(f"HF model.double() vs true float64: max|dlogits| {hd[0]:.3e}, |dloss| {hd[1]:.3e}")

    meta = {
        "description": "ailora LLaMA/Qwen2 LoRA forward/backward/AdamW reference fixtures; generated by "
                       "tests/reference/make_train_fixtures.py from tests/reference/train_{llama,qwen2} and "
                       "tests/reference/train_data.h5",
        "models": "llama=train_llama (untied, no bias), qwen2=train_qwen2 (tied embeddings, q/k/v bias); "
                  f"hidden {HIDDEN}, intermediate {INTER}, layers {LAYERS}, heads {HEADS}, kv_heads {KV_HEADS}, "
                  f"head_dim {HEAD_DIM}, vocab {VOCAB}, rms_norm_eps {EPS}, rope_theta {THETA} (rotate-half)",
        "modules": ",".join(MODULES),
        "r": str(R), "alpha": str(ALPHA), "scaling": str(SCALE),
        "cases": "lora: PEFT default init (torch.manual_seed(3)) then lora_B ~ N(0, 0.05^2) "
                 "(torch.Generator seed 4, module order); pissa: init_lora_weights='pissa', residual.* = base weight",
        "loss": "mean over all scored positions of the batch of CE(logits[b,t], labels[b,t+1]), -100 ignored",
        "forward_batch": "rows 0..3 of train_data.h5",
        "padded_batch": "padded_*: train_data_padded.h5 (rows 0..3 of train_data.h5 left/right padded, "
                        "attention_mask), HF with attention_mask and position_ids = (cumsum(mask)-1).clamp(min=0), "
                        "adapters at init; logits meaningful on real positions only",
        "optimizer": f"torch.optim.AdamW lr={LR} betas={BETAS} eps={ADAM_EPS} weight_decay={WD}, constant lr, "
                     f"LoRA params only; clip_grad_norm_(max_norm={CLIP}) before each step "
                     "(coef = min(1, max_norm/(norm+1e-6)))",
        "schedule": f"{STEPS} steps; step i uses rows [(4*i)%8, (4*i)%8+4); losses[i] before update i, "
                    "grad_norm[i] = pre-clip global norm",
        "f64": "llama.lora.f64.*: independent float64 functional forward (HF is not float64-clean), "
               "same weights and init upcast from float32; torch AdamW on float64 params",
        "checks": json.dumps({k: float(f"{v:.6g}") for k, v in sorted(checks.items())}, sort_keys=True),
        "versions": json.dumps(versions, sort_keys=True),
    }
    assert tensors["llama.lora.loss"].shape == () and tensors["llama.lora.f64.loss"].shape == ()
    keep_existing(tensors)
    size = save_fixture(FIXTURE, tensors, meta, versions)
    print(f"wrote {FIXTURE}: {len(tensors)} tensors, {size} bytes")
    assert size < 3 << 20, size
    for p in [FIXTURE, DATA, DATA_PADDED] + [os.path.join(MODEL_DIRS[k], f) for k in MODEL_DIRS
                               for f in sorted(os.listdir(MODEL_DIRS[k]))]:
        with open(p, "rb") as f:
            print(f"  {hashlib.sha256(f.read()).hexdigest()[:16]}  {os.path.getsize(p):>9}  {os.path.relpath(p, HERE)}")


def keep_existing(tensors):
    """Tensors already in the committed fixture keep their stored values (unless
    --fresh): recomputing them on another machine (other BLAS kernels) moves
    them by rounding (measured: 3e-5 relative for float32 trajectories, 1e-16
    for float64), which would silently change what the C tests compare against.
    New tensors (e.g. the padded_* ones) are added. The recomputed values must
    agree with the stored ones to 1e-4 of each tensor's largest entry."""
    if "--fresh" in sys.argv or not os.path.exists(FIXTURE):
        return
    old = safetensors.numpy.load_file(FIXTURE)
    worst = 0.0
    for k, v in old.items():
        assert k in tensors and tensors[k].shape == v.shape and tensors[k].dtype == v.dtype, k
        d = float(np.abs(tensors[k].astype(np.float64) - v).max()) / max(float(np.abs(v).max()), 1e-30)
        assert d < 1e-4, (k, d)
        worst = max(worst, d)
        tensors[k] = v
    print(f"kept {len(old)} stored tensors (recomputed here within {worst:.2e} of each tensor's max); "
          f"added {len(tensors) - len(old)}")


def sensitivity():
    """`--sensitivity`: how much plausible optimizer/loss bugs move the stored
    trajectories (report only, reads the files written by a normal run)."""
    fx = safetensors.numpy.load_file(FIXTURE)
    with h5py.File(DATA, "r") as f:
        ids = torch.from_numpy(f["input_ids"][...]).long()
        labels = torch.from_numpy(f["labels"][...]).long()

    def mean_of_row_means(logits, y):
        lp = torch.log_softmax(logits[:, :-1].float(), -1)
        lb = y[:, 1:]
        m = lb != -100
        nll = -lp.gather(-1, lb.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return ((nll * m).sum(1) / m.sum(1)).mean()

    variants = [("no clipping", dict(clip=0.0)), ("no weight decay", dict(wd=0.0)),
                ("beta2 = 0.99", dict(betas=(BETAS[0], 0.99))),
                ("mean of row means", dict(lossfn=mean_of_row_means))]
    for kind, case in (("llama", "lora"), ("qwen2", "pissa")):
        for label, kw in variants:
            pm, mods, params = make_peft(kind, case)
            lossfn = kw.get("lossfn")
            opt = torch.optim.AdamW(params, lr=LR, betas=kw.get("betas", BETAS), eps=ADAM_EPS,
                                    weight_decay=kw.get("wd", WD))
            L = []
            for i in range(STEPS):
                a, b = batch_rows(i)
                if lossfn is None:
                    loss = pm(input_ids=ids[a:b], labels=labels[a:b]).loss
                else:
                    loss = lossfn(pm(input_ids=ids[a:b]).logits, labels[a:b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if kw.get("clip", CLIP) > 0:
                    torch.nn.utils.clip_grad_norm_(params, kw.get("clip", CLIP))
                opt.step()
                L.append(loss.item())
            p = f"{kind}.{case}."
            dl = float(np.max(np.abs(np.array(L) - fx[p + "losses"]) / fx[p + "losses"]))
            dp = max(float(np.abs(v - fx[p + k]).max()) for k, v in lora_state(mods, "final").items())
            print(f"{kind}.{case} {label:18s}: max rel |d losses| {dl:.2e}   max |d final| {dp:.2e}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--sensitivity"]:
        sensitivity()
    elif sys.argv[1:]:
        sys.exit("usage: make_train_fixtures.py [--sensitivity]")
    else:
        main()
