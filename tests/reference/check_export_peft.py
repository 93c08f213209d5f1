#!/usr/bin/env python3
"""Check by hand that what `ailora export RUN.h5 --out DIR` wrote loads in
transformers + PEFT and computes one and the same model three ways:

    (a) PeftModel(AutoModelForCausalLM(DIR/residual), DIR/adapter)
    (b) PeftModel(AutoModelForCausalLM(ORIGINAL), DIR/lora_for_original)
    (c) AutoModelForCausalLM(DIR/merged)

    /work/venv-ref/bin/python3 tests/reference/check_export_peft.py DIR [--tol 1e-4]

ORIGINAL is the base_model_name_or_path of DIR/lora_for_original/adapter_config.json
(the model the run was trained on). Feeds a few token sequences and prints the
largest logit differences between (a), (b), (c), and (for scale) between (c)
and the original model without any adapter, so one sees the adapter matters.
Also merges (a) and (b) with PEFT's merge_and_unload and compares the merged
weights with DIR/merged. Needs torch, transformers, peft: not part of
`make check` (CI has no PyTorch). Exit 1 if a difference exceeds --tol.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--dtype", default="float32", help="torch dtype to load the models in")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    dt = getattr(torch, args.dtype)
    with open(os.path.join(args.dir, "lora_for_original", "adapter_config.json")) as f:
        original = json.load(f)["base_model_name_or_path"]
    load = transformers.AutoModelForCausalLM.from_pretrained
    a = peft.PeftModel.from_pretrained(load(os.path.join(args.dir, "residual"), dtype=dt),
                                       os.path.join(args.dir, "adapter")).eval()
    b = peft.PeftModel.from_pretrained(load(original, dtype=dt),
                                       os.path.join(args.dir, "lora_for_original")).eval()
    c = load(os.path.join(args.dir, "merged"), dtype=dt).eval()
    base = load(original, dtype=dt).eval()
    vocab = c.config.vocab_size
    tokens = torch.randint(0, vocab, (3, 12), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        la, lb, lc, l0 = (m(input_ids=tokens).logits.double() for m in (a, b, c, base))
    res = {
        "|(a) residual+adapter - (c) merged|": (la - lc).abs().max().item(),
        "|(b) original+lora_for_original - (c) merged|": (lb - lc).abs().max().item(),
        "|(a) - (b)|": (la - lb).abs().max().item(),
    }
    scale = {
        "max |logit| of (c)": lc.abs().max().item(),
        "|(c) merged - original base| (the adaptation)": (lc - l0).abs().max().item(),
    }
    print(f"transformers {transformers.__version__}, peft {peft.__version__}, torch {torch.__version__}, "
          f"dtype {args.dtype}, tokens {tuple(tokens.shape)}")
    for k, v in {**res, **scale}.items():
        print(f"  {k:50s} {v:.3e}")
    # PEFT's own merge of (a) and (b) against DIR/merged, module by module
    ma, mb = a.merge_and_unload(), b.merge_and_unload()
    worst = 0.0
    cw = dict(c.named_parameters())
    for name, p in ma.named_parameters():
        d = max((p - cw[name]).abs().max().item(), (dict(mb.named_parameters())[name] - cw[name]).abs().max().item())
        worst = max(worst, d)
    print(f"  {'PEFT merge_and_unload of (a), (b) vs DIR/merged, max':50s} {worst:.3e}")
    bad = [k for k, v in res.items() if v > args.tol]
    if scale["|(c) merged - original base| (the adaptation)"] <= 10 * args.tol:
        bad.append("the adapter does not change the logits: nothing was checked")
    print("FAIL: " + ", ".join(bad) if bad else f"ok (tol {args.tol:g})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
