#!/usr/bin/env python3
"""Check that a residual directory written by `ailora init --residual-out DIR`
loads in HF transformers + PEFT and reproduces the original model.

    python3 tests/reference/check_residual_peft.py ORIGINAL_MODEL_DIR RESIDUAL_DIR [--tol 1e-5]

Loads AutoModelForCausalLM(RESIDUAL_DIR) + PeftModel(RESIDUAL_DIR/adapter) and the
original model, feeds the same random hidden states to every adapted module and
compares outputs (float32 models: expect ~1e-6; the residual is rounded once to
the model dtype). Also reports how far the residual alone is from the original,
to show the adapter carries the selected components. Needs torch, transformers,
peft; not part of `make check` (CI has no PyTorch). Exit 1 if over tolerance.
"""
import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("original")
    ap.add_argument("residual")
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()
    torch.manual_seed(0)
    load = transformers.AutoModelForCausalLM.from_pretrained
    orig = load(args.original, dtype=torch.float32)
    resid = load(args.residual, dtype=torch.float32)
    adapted = peft.PeftModel.from_pretrained(load(args.residual, dtype=torch.float32),
                                             os.path.join(args.residual, "adapter"))
    worst = 0.0
    for name, module in orig.named_modules():
        if not isinstance(module, torch.nn.Linear) or "layers" not in name:
            continue
        peft_mod = adapted.get_submodule("base_model.model." + name)
        if not hasattr(peft_mod, "lora_A"):
            continue
        h = torch.randn(7, module.in_features)
        with torch.no_grad():
            want, got = module(h), peft_mod(h)
            alone = resid.get_submodule(name)(h)
        err = (want - got).abs().max().item()
        worst = max(worst, err)
        print(f"{name:42s} |adapted - original| {err:.2e}   |residual alone - original| "
              f"{(want - alone).abs().max().item():.2e}")
    print(f"worst {worst:.2e} (tol {args.tol:g})")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
