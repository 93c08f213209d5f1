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


if __name__ == "__main__":
    main()
