#!/usr/bin/env python3
"""PyTorch + PEFT baseline for experiments/bench/gpu_bench (same config, same batch).

    torch_gpu_lora.py [B T steps warmup r]      defaults 8 1024 10 3 16

TinyLlama-1.1B shape (H 2048, L 22, nh 32, nkv 4, I 5632, V 32000), random weights,
bf16 on the GPU, attention through torch.nn.functional.scaled_dot_product_attention
(HF's "sdpa", the default); PEFT LoRA r on q_proj, v_proj, alpha 2r, dropout 0;
AdamW (lr 1e-4), clip_grad_norm_ 1.0. Step = forward with labels, backward, clip,
step, zero_grad; timed with torch.cuda.synchronize, median of the timed steps.
Prints one line "RESULT key=value ..." (MFU with gpu.h's FLOP formula).
"""
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402

H, I, V, L, NH, NKV, HD = 2048, 5632, 32000, 22, 32, 4, 64
PEAK = 989e12


def main():
    a = [int(x) for x in sys.argv[1:]]
    B, T, steps, warmup, r = (a + [8, 1024, 10, 3, 16][len(a):])[:5]
    if not torch.cuda.is_available():
        print("SKIP torch_gpu_lora: no CUDA device")
        sys.exit(77)
    import peft
    import transformers
    torch.manual_seed(0)
    kw = dict(hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=NH,
              num_key_value_heads=NKV, vocab_size=V, max_position_embeddings=2048,
              tie_word_embeddings=False, rms_norm_eps=1e-5)
    cfg = transformers.LlamaConfig(**kw)
    try:
        cfg._attn_implementation = "sdpa"
    except Exception:  # noqa: BLE001 - older/newer config objects
        pass
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
    print("attention implementation:", getattr(model.config, "_attn_implementation", "?"))
    lcfg = peft.LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    model = peft.get_peft_model(model, lcfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    print("trainable parameters:", sum(p.numel() for p in params), "dtype", params[0].dtype)
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, V, (B, T), device="cuda")
    times = []
    for s in range(steps + warmup):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(f"step {s:2d} {'(warm-up)' if s < warmup else ''} {dt * 1e3:.1f} ms loss {out.loss.item():.5f}")
        if s >= warmup:
            times.append(dt)
    t = statistics.median(times)
    N = B * T
    p_lin = L * (NH * HD * H * 2 + NKV * HD * H * 2 + 3 * H * I)
    p_lora = L * r * ((H + NH * HD) + (H + NKV * HD))
    flops = N * (4 * p_lin + 6 * p_lora + 4 * V * H + L * 6 * T * HD * NH)
    mem = torch.cuda.max_memory_allocated() / 2**30
    print(f"median step {t * 1e3:.2f} ms: {N / t:.0f} tokens/s, {flops / t / 1e12:.1f} TFLOP/s, "
          f"MFU {100 * flops / t / PEAK:.1f}%, peak allocated {mem:.2f} GiB")
    print(f"RESULT B={B} T={T} step_ms={t * 1e3:.2f} tokens_per_s={N / t:.0f} tflops={flops / t / 1e12:.1f} "
          f"mfu={flops / t / PEAK:.3f} mem_gib={mem:.2f}")


if __name__ == "__main__":
    main()
