#!/usr/bin/env python3
"""PyTorch + PEFT side of the training benchmark (experiments/bench/train_bench.sh).

    torch_lora_step.py setup DIR          writes DIR/model (HF LLaMA, float32) and DIR/data.h5
    torch_lora_step.py run DIR STEPS      times LoRA fine-tuning steps, prints tokens/s

The config is the issue's ~30M LLaMA: hidden 512, 8 layers, 8 heads, 4 KV heads,
intermediate 1376, vocab 8192, sequence 256, batch 8; LoRA r = 16 on q_proj, v_proj;
AdamW; float32 on the CPU, torch.set_num_threads(OMP_NUM_THREADS).
"""
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

H, LAYERS, HEADS, KV, INTER, VOCAB, T, B, R = 512, 8, 8, 4, 1376, 8192, 256, 8, 16


def setup(d):
    import h5py
    import transformers
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=H, intermediate_size=INTER, num_hidden_layers=LAYERS,
                                   num_attention_heads=HEADS, num_key_value_heads=KV, vocab_size=VOCAB,
                                   max_position_embeddings=T, tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(cfg)
    model.save_pretrained(os.path.join(d, "model"), safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, size=(64, T), dtype=np.int32)
    with h5py.File(os.path.join(d, "data.h5"), "w") as f:
        f["input_ids"] = ids
        f["labels"] = ids
    print(f"model: {n / 1e6:.1f}M parameters")


def run(d, steps):
    import h5py
    import peft
    import transformers
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(d, "model"), dtype=torch.float32)
    cfg = peft.LoraConfig(r=R, lora_alpha=R, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    model = peft.get_peft_model(model, cfg)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    with h5py.File(os.path.join(d, "data.h5"), "r") as f:
        ids = torch.from_numpy(f["input_ids"][:].astype(np.int64))
    times = []
    for step in range(steps + 2):  # two warm-up steps
        batch = ids[(step * B) % len(ids):(step * B) % len(ids) + B]
        t0 = time.perf_counter()
        out = model(input_ids=batch, labels=batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - t0)
    print(f"pytorch tokens/s {B * T / np.median(times):.1f} (median of {steps} steps, "
          f"{torch.get_num_threads()} threads, attention {model.config._attn_implementation})")


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(sys.argv[2])
    else:
        run(sys.argv[2], int(sys.argv[3]))
