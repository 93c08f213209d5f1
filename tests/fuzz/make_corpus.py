#!/usr/bin/env python3
"""make_corpus.py - writes the seed corpora of tests/fuzz/corpus/<harness>/.

Seeds are small: valid files like the ones tests/reference holds, minimal edge
cases, and for the HDF5 harnesses byte strings of choices (all zeros = the file
the reader expects; see h5gen.h). Deterministic; run from anywhere:
    python3 tests/fuzz/make_corpus.py
"""
import json
import os
import random
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, off, blob = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob


def gguf(kvs, tensors, version=3, align=32):
    """A GGUF file: kvs (key, type, value) with type u32 / f32 / str / bool / [str] / [i32];
    tensors (name, ne list, ggml type, raw bytes), packed at aligned offsets."""
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, typ, val in kvs:
        out += s(key)
        if typ == "u32":
            out += struct.pack("<II", 4, val)
        elif typ == "f32":
            out += struct.pack("<If", 6, val)
        elif typ == "bool":
            out += struct.pack("<IB", 7, val)
        elif typ == "str":
            out += struct.pack("<I", 8) + s(val)
        elif typ == "[str]":
            out += struct.pack("<IIQ", 9, 8, len(val)) + b"".join(s(v) for v in val)
        elif typ == "[f32]":
            out += struct.pack("<IIQ", 9, 6, len(val)) + struct.pack("<%df" % len(val), *val)
        elif typ == "[i32]":
            out += struct.pack("<IIQ", 9, 5, len(val)) + struct.pack("<%di" % len(val), *val)
    blob, offs = b"", []
    for name, ne, t, raw in tensors:
        blob += b"\0" * (-len(blob) % align)
        offs.append(len(blob))
        blob += raw
    for (name, ne, t, raw), off in zip(tensors, offs):
        out += s(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne) + struct.pack("<IQ", t, off)
    out += b"\0" * (-len(out) % align)
    return out + blob


def gguf_llama(qtype=2, sentencepiece=False):
    """The smallest LLaMA ailora imports: 1 layer, hidden 32, 4 heads, 2 KV heads, ffn 32,
    8 tokens; weights of ggml type qtype (2 = Q4_0), norms F32."""
    rnd = random.Random(5)
    blk = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 8: (32, 34)}[qtype]
    mat = lambda ne0, ne1: bytes(rnd.randrange(256) for _ in range(ne0 * ne1 // blk[0] * blk[1]))
    norm = struct.pack("<32f", *([1.0] * 32))
    tensors = [("token_embd.weight", [32, 8], qtype, mat(32, 8)), ("output_norm.weight", [32], 0, norm)]
    for g, ne in [("attn_q", [32, 32]), ("attn_k", [32, 16]), ("attn_v", [32, 16]), ("attn_output", [32, 32]),
                  ("ffn_gate", [32, 32]), ("ffn_up", [32, 32]), ("ffn_down", [32, 32])]:
        tensors.append(("blk.0.%s.weight" % g, ne, qtype, mat(*ne)))
    tensors += [("blk.0.attn_norm.weight", [32], 0, norm), ("blk.0.ffn_norm.weight", [32], 0, norm)]
    toks = ["<s>", "</s>", "a", "b", "\u0120", "ab", "\u0120a", "<x>"]
    kvs = [("general.architecture", "str", "llama"), ("llama.block_count", "u32", 1),
           ("llama.context_length", "u32", 64), ("llama.embedding_length", "u32", 32),
           ("llama.feed_forward_length", "u32", 32), ("llama.attention.head_count", "u32", 4),
           ("llama.attention.head_count_kv", "u32", 2), ("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5),
           ("llama.rope.freq_base", "f32", 10000.0), ("tokenizer.ggml.model", "str", "gpt2"),
           ("tokenizer.ggml.pre", "str", "smollm"), ("tokenizer.ggml.tokens", "[str]", toks),
           ("tokenizer.ggml.token_type", "[i32]", [3, 3, 1, 1, 1, 1, 1, 4]),
           ("tokenizer.ggml.merges", "[str]", ["a b", "\u0120 a"]), ("tokenizer.ggml.bos_token_id", "u32", 0),
           ("tokenizer.ggml.eos_token_id", "u32", 1), ("tokenizer.ggml.add_bos_token", "bool", 1),
           ("tokenizer.chat_template", "str", "{{ messages }}")]
    if sentencepiece:  # tokenizer.ggml.model llama: scores, byte tokens, no merges
        toks = ["<unk>", "<s>", "</s>", "<0x41>", "\u2581", "a", "\u2581a", "aa"]
        kvs = [kv for kv in kvs if not kv[0].startswith("tokenizer.ggml.")] + [
            ("tokenizer.ggml.model", "str", "llama"), ("tokenizer.ggml.tokens", "[str]", toks),
            ("tokenizer.ggml.scores", "[f32]", [0, 0, 0, 0, -1, -2, -3, -3]),
            ("tokenizer.ggml.token_type", "[i32]", [2, 3, 3, 6, 1, 1, 1, 4]),
            ("tokenizer.ggml.bos_token_id", "u32", 1), ("tokenizer.ggml.eos_token_id", "u32", 2)]
    return gguf(kvs, tensors)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    f32 = lambda *v: struct.pack("<%df" % len(v), *v)
    # ---- safetensors: valid files of every dtype and rank, then broken ones
    put("safetensors", "f32_2x2", safetensors([("w", "F32", [2, 2], f32(1, 2, 3, 4))], {"format": "pt"}))
    put("safetensors", "mixed", safetensors([
        ("model.layers.0.self_attn.q_proj.weight", "BF16", [2, 3], bytes(range(12))),
        ("model.norm.weight", "F16", [3], bytes(6)),
        ("lm_head.weight", "F64", [1, 2], struct.pack("<2d", 0.5, -1e300)),
        ("scalar", "F32", [], f32(7)),
        ("empty", "F32", [0, 4], b""),
        ("cube", "F32", [1, 2, 1], f32(1, 2)),
    ], {"format": "pt", "note": "x"}))
    put("safetensors", "empty_header", safetensors([], None))
    put("safetensors", "unpadded", safetensors([("a", "F32", [1], f32(1))], pad=False))
    put("safetensors", "nan_inf", safetensors([("a", "F32", [3], f32(float("nan"), float("inf"), -0.0))]))
    put("safetensors", "len_too_big", struct.pack("<Q", 1 << 40) + b"{}")
    put("safetensors", "short", b"\x02\x00\x00")
    put("safetensors", "overlap", struct.pack("<Q", 88) + json.dumps(
        {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
         "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode().ljust(88) + bytes(4))
    # ---- config.json: the reference models, variants, and an index
    for model in ("train_llama", "train_qwen2", "tiny_llama"):
        with open(os.path.join(ROOT, "tests", "reference", model, "config.json"), "rb") as f:
            put("config_json", model, f.read())
    put("config_json", "minimal", json.dumps({"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                                              "num_attention_heads": 2, "vocab_size": 10}))
    put("config_json", "gqa_bf16", json.dumps({
        "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 128, "torch_dtype": "bfloat16",
        "rope_theta": 1e5, "rms_norm_eps": 1e-5, "tie_word_embeddings": True, "model_type": "qwen2"}))
    put("config_json", "with_index", json.dumps({"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                                                 "num_attention_heads": 2, "vocab_size": 10})
        + "\n#INDEX#\n" + json.dumps({"metadata": {"total_size": 8}, "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors"}}))
    # ---- INI training config
    put("trainconfig", "full", "\n".join([
        "; a training config", "[data]", "model = experiments/default/base", "svd_cache = svd.h5",
        "train_data = train.h5", "eval_data = eval.h5", "out = run.h5", "task = majority", "[adapter]",
        "method = ratio", "rank = 4", "alpha = 8", "ratio_q = 0.75", "ratio_v = 0.25", "ratio_other = 1",
        "targets = q_proj,v_proj", "lora_init = gaussian", "seed = 3", "[optim]", "steps = 200",
        "batch_size = 16", "grad_accum = 2", "lr = 2e-3", "schedule = cosine", "warmup_steps = 10",
        "weight_decay = 0.01", "beta1 = 0.9", "beta2 = 0.999", "eps = 1e-8", "grad_clip = 1.0",
        "[run]", "log_every = 10", "eval_every = 50", "eval_batches = 2", "max_new_tokens = 2",
        "checkpoint_every = 100", "tp = 1", "dp = 0", "device = cpu", "precision = bf16",
        "shuffle = true", "resume = false", "train_base = false", "preempt_at_step = 0", ""]))
    put("trainconfig", "overrides", "model = m\ntrain_data = d.h5\nout = o.h5\n"
        "\n#OVERRIDES#\nrank=2\ntp=2\ndp=1\nbatch_size=4\nmethod=pissa")
    put("trainconfig", "bad_key", "rank = 4\nbogus_key = 1\n")
    put("trainconfig", "colon_comment", "rank: 4 ; inline\n# hash comment\nlr = 1e-3 # not a comment for inih\n")
    # ---- HDF5 harnesses: choice streams (zeros = the expected file)
    rng = random.Random(20260)
    for harness in ("dataset", "svdcache", "checkpoint"):
        put(harness, "zeros", bytes(1024))
        for i in range(4):
            put(harness, "random%d" % i, bytes(rng.randrange(256) for _ in range(256 << i)))
    # dataset: vocab 200, 3 x 5 tokens in range
    put("dataset", "valid_3x5", bytes([0, 199, 3, 5]) + bytes(200))
    # ---- dictionaries
    keys = ["model", "svd_cache", "train_data", "eval_data", "out", "resume", "task", "train_base", "out_model",
            "targets", "method", "rank", "alpha", "ratio_q", "ratio_v", "ratio_other", "lora_init", "seed",
            "steps", "batch_size", "grad_accum", "shuffle", "lr", "schedule", "warmup_steps", "weight_decay",
            "beta1", "beta2", "eps", "grad_clip", "log_every", "eval_every", "eval_batches", "max_new_tokens",
            "checkpoint_every", "tp", "dp", "device", "precision", "preempt_at_step"]
    words = keys + ["true", "false", "pissa", "milora", "ailora", "ratio", "lora", "cosine", "linear",
                    "constant", "cuda", "cpu", "fp32", "bf16", "kaiming", "gaussian", " = ", "[", "]", ";", "#",
                    "#OVERRIDES#", "0", "-1", "1e308", "nan", "inf", "2147483648"]
    with open(os.path.join(HERE, "trainconfig.dict"), "w") as f:
        f.write("# libFuzzer dictionary: train config keys and values (make_corpus.py)\n")
        f.writelines('"%s"\n' % w for w in words)
    jwords = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "rms_norm_eps",
              "rope_theta", "rope_parameters", "tie_word_embeddings", "attention_bias", "torch_dtype", "dtype",
              "model_type", "qwen2", "llama", "float32", "bfloat16", "float16", "weight_map", "#INDEX#",
              "null", "true", "false", "1e400", "-0", "2147483648", "\\u0000"]
    with open(os.path.join(HERE, "config_json.dict"), "w") as f:
        f.write("# libFuzzer dictionary: config.json keys and values (make_corpus.py)\n")
        f.writelines('"%s"\n' % w.replace('\\', '\\\\') for w in jwords)
    swords = ["__metadata__", "dtype", "shape", "data_offsets", "F32", "F16", "BF16", "F64", "I32", "format",
              "pt", "9007199254740992", "18446744073709551615", "-1", "1e3"]
    with open(os.path.join(HERE, "safetensors.dict"), "w") as f:
        f.write("# libFuzzer dictionary: safetensors header words (make_corpus.py)\n")
        f.writelines('"%s"\n' % w for w in swords)
    # ---- gguf: small LLaMAs of each tensor type ailora converts, edge cases
    for qt, name in [(2, "q4_0"), (3, "q4_1"), (8, "q8_0"), (1, "f16"), (30, "bf16"), (0, "f32")]:
        put("gguf", "llama_" + name, gguf_llama(qt))
    put("gguf", "llama_sentencepiece", gguf_llama(2, sentencepiece=True))
    put("gguf", "empty_v2", gguf([], [], version=2))
    put("gguf", "kv_only", gguf([("general.alignment", "u32", 64), ("a", "[str]", ["x", ""]),
                                 ("b", "[i32]", [1, -1])], []))
    put("gguf", "one_tensor_q4_k", gguf([], [("t", [256], 12, bytes(144))]))


if __name__ == "__main__":
    main()
