"""make_gguf_fixtures.py - the tiny GGUF LLaMA of tests/test_gguf.c and tests/cli_import.sh.

    /work/venv-ref/bin/python tests/reference/make_gguf_fixtures.py   # writes tests/reference/gguf/

Writes (small, committed):
  tiny.gguf            2 layers, hidden 32, 4 heads, 2 KV heads (GQA), head_dim 8, ffn 64,
                       byte-level BPE vocabulary (3 control tokens, 256 byte tokens, merges,
                       one user-defined token), chat template; every tensor type ailora
                       converts (F32, F16, BF16, Q8_0, Q4_0, Q4_1), lm_head untied
  tiny_tied.gguf       the same without output.weight (tied embeddings)
  tiny_linear.gguf     tied, linear RoPE scaling (factor 2) in the metadata
  tiny_llama3.gguf     tied, Llama 3.1 RoPE scaling as llama.cpp stores it (rope_freqs.weight)
  expected.safetensors every tensor as HF expects it (HF name, (out, in) shape, float32),
                       dequantized here by a numpy reimplementation of the block formats
                       (gguf.h) -- not by gguf-py -- and Q/K rows un-permuted
  tiny_sp.gguf         1 layer, F16, SentencePiece vocabulary (tokenizer.ggml.model llama:
                       byte-fallback tokens, scores, no merges, a user-defined token)
  hf_tokenizer_{tiny,sp}.json  the tokenizer.json transformers builds from tiny / tiny_sp
  hf_qk.safetensors    transformers' own GGUF loading of tiny.gguf: q_proj / k_proj of
                       both layers (independent proof of the un-permutation)
Quantized blocks are random bytes (scales drawn as float16, every nibble value), not the
output of a quantizer, so every code path of the dequantizer is exercised.
"""
import os
import sys

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf")
rng = np.random.default_rng(20261202)
H, HEADS, KV, HD, FF, L, CTX = 32, 4, 2, 8, 64, 2, 256


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


b2u = bytes_to_unicode()
tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [b2u[b] for b in range(256)]
merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "Ġ s", "r e", "a t", "Ġ w", "o r", "e n"]
tokens += [m.replace(" ", "") for m in merges] + ["<think>"]
types = [3, 3, 3] + [1] * (len(tokens) - 4) + [4]
V = len(tokens)
TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
            "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def f16_scales(n, lo, hi):
    s = rng.uniform(lo, hi, n) * rng.choice([-1, 1], n)
    return s.astype(np.float16)


def make_blocks(qtype, rows, cols):
    """Random raw bytes (rows, cols / 32 * block_bytes) and their float32 values (rows, cols)."""
    nb = rows * cols // 32
    if qtype == Q.Q8_0:
        d = f16_scales(nb, 1e-3, 2e-2)
        q = rng.integers(-128, 128, (nb, 32)).astype(np.int8)
        raw = np.concatenate([d.view(np.uint8).reshape(nb, 2), q.view(np.uint8)], axis=1)
        val = d.astype(np.float32)[:, None] * q.astype(np.float32)
    elif qtype == Q.Q4_0:
        d = f16_scales(nb, 1e-3, 2e-2)
        nib = rng.integers(0, 16, (nb, 32)).astype(np.uint8)
        qs = nib[:, :16] | (nib[:, 16:] << 4)  # low nibbles: weights 0..15, high: 16..31
        raw = np.concatenate([d.view(np.uint8).reshape(nb, 2), qs], axis=1)
        val = d.astype(np.float32)[:, None] * (nib.astype(np.float32) - np.float32(8))
    elif qtype == Q.Q4_1:
        d = f16_scales(nb, 1e-3, 2e-2)
        m = f16_scales(nb, 1e-3, 1e-1)
        nib = rng.integers(0, 16, (nb, 32)).astype(np.uint8)
        qs = nib[:, :16] | (nib[:, 16:] << 4)
        raw = np.concatenate([d.view(np.uint8).reshape(nb, 2), m.view(np.uint8).reshape(nb, 2), qs], axis=1)
        val = d.astype(np.float32)[:, None] * nib.astype(np.float32) + m.astype(np.float32)[:, None]
    else:
        raise ValueError(qtype)
    assert val.dtype == np.float32
    return raw.reshape(rows, -1), val.reshape(rows, cols)


def make_tensor(qtype, rows, cols):
    """(data for GGUFWriter, raw dtype or None, float32 values (rows, cols))."""
    if qtype == Q.F32:
        v = rng.normal(0, 0.5, (rows, cols)).astype(np.float32)
        return v, None, v
    if qtype == Q.F16:
        v = rng.normal(0, 0.05, (rows, cols)).astype(np.float16)
        return v, None, v.astype(np.float32)
    if qtype == Q.BF16:
        v = rng.normal(0, 0.05, (rows, cols)).astype(np.float32)
        bits = (v.view(np.uint32) >> 16).astype(np.uint16)  # truncation: any bf16 pattern will do
        return bits.view(np.uint8).reshape(rows, cols * 2), Q.BF16, (bits.astype(np.uint32) << 16).view(np.float32)
    raw, val = make_blocks(qtype, rows, cols)
    return raw, qtype, val


def unpermute(w, n_head):
    """GGUF row h*d + 2i + s -> HF row h*d + s*d/2 + i."""
    d = w.shape[0] // n_head
    return w.reshape(n_head, d // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)


# (GGUF name, HF name, rows, cols, type, heads to un-permute)
plan = [("token_embd.weight", "model.embed_tokens.weight", V, H, Q.Q8_0, 0)]
types_by_layer = [
    dict(attn_q=Q.Q4_1, attn_k=Q.Q4_0, attn_v=Q.Q8_0, attn_output=Q.F16, ffn_gate=Q.Q4_1, ffn_up=Q.BF16, ffn_down=Q.Q4_0),
    dict(attn_q=Q.Q4_0, attn_k=Q.Q4_1, attn_v=Q.BF16, attn_output=Q.Q4_1, ffn_gate=Q.F32, ffn_up=Q.Q8_0, ffn_down=Q.F16),
]
for l in range(L):
    t = types_by_layer[l]
    plan += [
        (f"blk.{l}.attn_norm.weight", f"model.layers.{l}.input_layernorm.weight", 1, H, Q.F32, 0),
        (f"blk.{l}.attn_q.weight", f"model.layers.{l}.self_attn.q_proj.weight", HEADS * HD, H, t["attn_q"], HEADS),
        (f"blk.{l}.attn_k.weight", f"model.layers.{l}.self_attn.k_proj.weight", KV * HD, H, t["attn_k"], KV),
        (f"blk.{l}.attn_v.weight", f"model.layers.{l}.self_attn.v_proj.weight", KV * HD, H, t["attn_v"], 0),
        (f"blk.{l}.attn_output.weight", f"model.layers.{l}.self_attn.o_proj.weight", H, HEADS * HD, t["attn_output"], 0),
        (f"blk.{l}.ffn_norm.weight", f"model.layers.{l}.post_attention_layernorm.weight", 1, H, Q.F32, 0),
        (f"blk.{l}.ffn_gate.weight", f"model.layers.{l}.mlp.gate_proj.weight", FF, H, t["ffn_gate"], 0),
        (f"blk.{l}.ffn_up.weight", f"model.layers.{l}.mlp.up_proj.weight", FF, H, t["ffn_up"], 0),
        (f"blk.{l}.ffn_down.weight", f"model.layers.{l}.mlp.down_proj.weight", H, FF, t["ffn_down"], 0),
    ]
plan += [("output_norm.weight", "model.norm.weight", 1, H, Q.F32, 0),
         ("output.weight", "lm_head.weight", V, H, Q.F16, 0)]

tensors, expected = [], {}
for gname, hname, rows, cols, qtype, heads in plan:
    data, raw, val = make_tensor(qtype, rows, cols)
    if gname.endswith("norm.weight"):  # norms near 1, 1-D
        val = (1 + 0.1 * val).astype(np.float32).reshape(cols)
        data = val
    tensors.append((gname, data, raw, rows, cols))
    expected[hname] = np.ascontiguousarray(unpermute(val, heads) if heads else val)


def write(path, tied, theta=10000.0, rope=None):
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("ailora tiny test llama")
    w.add_block_count(L)
    w.add_context_length(CTX)
    w.add_embedding_length(H)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV)
    w.add_rope_freq_base(theta)
    if rope == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(2.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(HD)
    w.add_vocab_size(V)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)
    w.add_chat_template(TEMPLATE)
    for gname, data, raw, rows, cols in tensors:
        if tied and gname == "output.weight":
            continue
        if raw is None:
            w.add_tensor(gname, data)
        else:  # bytes (rows, row bytes): gguf-py derives the shape from the type
            w.add_tensor(gname, data, raw_dtype=raw)
    if rope == "llama3":  # as llama.cpp's converter stores Llama 3.1 scaling: divisors per frequency
        w.add_tensor("rope_freqs.weight", llama3_divisors(theta))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llama3_divisors(theta, factor=8.0, low=1.0, high=64.0, orig=8192):
    """llama.cpp's rope_freqs for Llama 3.1 RoPE scaling (convert_hf_to_gguf.py's formula)."""
    out = []
    for i in range(HD // 2):
        wavelen = 2 * np.pi * theta ** (2 * i / HD)
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


os.makedirs(OUT, exist_ok=True)
write(os.path.join(OUT, "tiny.gguf"), False)
write(os.path.join(OUT, "tiny_tied.gguf"), True)
# RoPE scaling variants (tied, to stay small): linear factor 2 in the metadata; Llama 3.1
# scaling as a rope_freqs tensor (theta 5e5, factor 8, low 1, high 64: two frequencies
# fall in the smooth band, so the importer can recover low / high)
write(os.path.join(OUT, "tiny_linear.gguf"), True, rope="linear")
write(os.path.join(OUT, "tiny_llama3.gguf"), True, theta=500000.0, rope="llama3")
print("llama3 divisors", llama3_divisors(500000.0))
save_file(expected, os.path.join(OUT, "expected.safetensors"))

# the file as gguf-py reads it back: same types, shapes (reversed) and, for the types
# gguf-py dequantizes, the same values as ours
r = gguf.GGUFReader(os.path.join(OUT, "tiny.gguf"))
for t, (gname, hname, rows, cols, qtype, heads) in zip(r.tensors, plan):
    assert t.name == gname and t.tensor_type == qtype, (t.name, t.tensor_type)
    deq = gguf.quants.dequantize(t.data, t.tensor_type)
    gg = expected[hname]  # compared in GGUF row order
    if heads:
        d = rows // heads
        gg = gg.reshape(heads, 2, d // 2, cols).swapaxes(1, 2).reshape(rows, cols)  # HF -> GGUF order
    assert np.array_equal(deq.reshape(gg.shape), gg), gname

# a SentencePiece (tokenizer.ggml.model = llama) variant: byte-fallback tokens, scores
# and no merges (the importer derives them), one user-defined token; F16 weights
sp_tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + \
    ["\u2581", "a", "b", "\u2581a", "ab", "\u2581ab", "c", "\u2581c", "\u2581\u2581", "\u00e9", "\u2581\u00e9", "ba",
     "\u2581b", "aa", "<s", "<", "s>", "<user>"]
SPV = len(sp_tokens)
sp_scores = [0.0] * 259 + [-float(i % 7) for i in range(SPV - 259)]  # ties: ranked by piece lengths, then order
sp_types = [2, 3, 3] + [6] * 256 + [1] * (SPV - 260) + [4]


def write_sp(path):
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(1)
    w.add_context_length(CTX)
    w.add_embedding_length(H)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("llama")
    w.add_token_list(sp_tokens)
    w.add_token_scores(sp_scores)
    w.add_token_types(sp_types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    f16 = lambda *s: rng.normal(0, 0.05, s).astype(np.float16)
    w.add_tensor("token_embd.weight", f16(SPV, H))
    w.add_tensor("output_norm.weight", np.ones(H, np.float32))
    for g, s in [("attn_q", (HEADS * HD, H)), ("attn_k", (KV * HD, H)), ("attn_v", (KV * HD, H)),
                 ("attn_output", (H, HEADS * HD)), ("ffn_gate", (FF, H)), ("ffn_up", (FF, H)), ("ffn_down", (H, FF))]:
        w.add_tensor(f"blk.0.{g}.weight", f16(*s))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(H, np.float32))
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(H, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


write_sp(os.path.join(OUT, "tiny_sp.gguf"))

# transformers' GGUF loader: q_proj / k_proj must equal ours (un-permuted)
try:
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(OUT, gguf_file="tiny.gguf", dtype=torch.float32)
    sd = m.state_dict()
    qk = {k: sd[k].numpy().copy() for k in sd if k.endswith(("q_proj.weight", "k_proj.weight"))}
    worst = max(float(np.abs(sd[k].numpy() - expected[k]).max()) for k in expected if k in sd)
    assert worst == 0.0, worst
    save_file(qk, os.path.join(OUT, "hf_qk.safetensors"))
    # the tokenizer.json transformers builds from each file's metadata (the importer must
    # write the same JSON document)
    import shutil, tempfile
    from transformers import AutoTokenizer
    for gg, name in [("tiny.gguf", "hf_tokenizer_tiny.json"), ("tiny_sp.gguf", "hf_tokenizer_sp.json")]:
        tmp = tempfile.mkdtemp()
        AutoTokenizer.from_pretrained(OUT, gguf_file=gg).save_pretrained(tmp)
        shutil.copy(os.path.join(tmp, "tokenizer.json"), os.path.join(OUT, name))
        shutil.rmtree(tmp)
    print(f"transformers agrees on all {len(expected)} tensors (max |diff| {worst})")
except ImportError as e:
    print("transformers not available:", e, file=sys.stderr)
print("wrote", OUT, {f: os.path.getsize(os.path.join(OUT, f)) for f in sorted(os.listdir(OUT))})
