#!/usr/bin/env python3
"""torch_svd_time.py MODEL_DIR TENSOR [THREADS] - what a user does today: PEFT's
PiSSA initialization computes one float32 `torch.linalg.svd(W, full_matrices=False)`
per target matrix on one device. Times exactly that on the CPU with THREADS threads
(default 2) on the tensor of MODEL_DIR/model.safetensors, after one warm-up on a
small matrix; prints "torch_fp32 M N wall_s cpu_s" (cpu_s: process CPU time of all
threads, so cpu_s / threads is the time with a core of its own per thread).
Needs torch and safetensors (the reference venv); not part of the test suite."""
import sys
import time

import torch
from safetensors.torch import load_file


def main():
    model, name = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    torch.set_num_threads(threads)
    w = load_file(f"{model}/model.safetensors")[name].to(torch.float32)  # PEFT: weight.to(float32)
    torch.linalg.svd(torch.randn(64, 64), full_matrices=False)  # warm-up (library load)
    t0, c0 = time.perf_counter(), time.process_time()
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    # sanity: the float32 factors reproduce W to float32 accuracy
    err = (u * s @ vh - w).abs().max().item() / s[0].item()
    print(f"torch_fp32 {w.shape[0]} {w.shape[1]} {wall:.3f} {cpu:.3f} threads={threads} "
          f"max|USVt-W|/smax={err:.1e}")


if __name__ == "__main__":
    main()
