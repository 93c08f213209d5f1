#!/usr/bin/env python3
"""peft_pissa_time.py MODEL_DIR TARGETS [THREADS] [RANK] - what a user does today to
get PiSSA adapters: PEFT's `get_peft_model` with `init_lora_weights="pissa"`, which
runs one float32 `torch.linalg.svd(W, full_matrices=False)` per target matrix and
writes the adapters and the residual into the model. Times only that call (the
model is loaded, float32, and torch's SVD warmed up first), with THREADS threads
(default 2), rank RANK (default 8). Prints
    peft_pissa TARGETS wall_s cpu_s threads=N matrices=M peft=VERSION torch=VERSION
Needs torch, transformers, peft (a scratch venv: experiments/bench/init_vs_peft.sh);
not part of the test suite."""
import sys
import time

import peft
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def main():
    model_dir, targets = sys.argv[1], sys.argv[2].split(",")
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    rank = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    torch.linalg.svd(torch.randn(64, 64), full_matrices=False)  # warm-up (library load)
    config = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=targets,
                        init_lora_weights="pissa")
    t0, c0 = time.perf_counter(), time.process_time()
    model = get_peft_model(model, config)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = sum(1 for name, _ in model.named_modules() if name.endswith(tuple(targets)) and hasattr(_, "lora_A"))
    print(f"peft_pissa {','.join(targets)} {wall:.3f} {cpu:.3f} threads={threads} matrices={n} "
          f"peft={peft.__version__} torch={torch.__version__}")


if __name__ == "__main__":
    main()
