#!/usr/bin/env python3
"""Generate the reference fixture of `ailora export` (tests/export.sh) with PEFT.

Regenerate (from the repository root; CPU only, no network):

    /work/venv-ref/bin/python3 tests/reference/make_export_fixtures.py

(any python3 with torch, transformers, peft, safetensors and numpy; versions are
stored in the __metadata__ keys version_* of the output).

What it does, on tests/reference/tiny_llama (float32, 2 layers, q_proj 64x64,
v_proj 32x64):

  1. PEFT PiSSA init: LoraConfig(r=4, lora_alpha=8 (s = 2), target_modules=
     ["q_proj", "v_proj"], init_lora_weights="pissa"). PEFT replaces each base
     weight by its residual W - s B0 A0 (float32 SVD and arithmetic) and sets the
     adapter to A0, B0. The initial adapter is saved the way PEFT's docs say
     (init_lora_weights switched to True, save_pretrained) for step 3.
  2. "Training", deterministic: A = A0 + 0.05 N(0, 1), B = B0 + 0.05 N(0, 1)
     (one torch.Generator seeded 5, modules in named_parameters order, A before B).
  3. PEFT's PiSSA-to-LoRA conversion:
     save_pretrained(conv, path_initial_model_for_weight_conversion=init), i.e.
     LoraModel.subtract_mutated_init: lora_A' = cat([A, A0], 0) (2r, n),
     lora_B' = cat([B, -B0], 1) (m, 2r); adapter_config r and lora_alpha doubled.
  4. PEFT's merges: merge_and_unload() of (residual + trained adapter), and of
     (original model + converted adapter).

Output tests/reference/export_fixtures.safetensors (float32):
  init.<module>.lora_A [4, 64], init.<module>.lora_B [m, 4]     A0, B0 (PEFT's PiSSA)
  trained.<module>.lora_A, trained.<module>.lora_B              A, B
  peft.residual.<module>.weight [m, 64]                         PEFT's W - s B0 A0
  peft.converted.<PEFT tensor name>                             the converted adapter,
      under the exact names PEFT saved (base_model.model.<module>.lora_A.weight ...)
  peft.merged.<module>.weight                                   merge of residual + (A, B)
  peft.merged_original.<module>.weight                          merge of original + converted
  __metadata__: converted_config (PEFT's adapter_config.json of the converted
      adapter, JSON text), r, lora_alpha, model ("tiny_llama"), version_*.
<module> = model.layers.{0,1}.self_attn.{q_proj,v_proj}. The script checks its own
float64 algebra (printed) and that the file is byte-reproducible in form
(fixture_io.save_fixture canonicalizes the header).
"""
import json
import os
import platform
import sys
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import peft  # noqa: E402
import safetensors  # noqa: E402
import safetensors.numpy  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import save_fixture  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "tiny_llama")
R, ALPHA = 4, 8
TARGETS = ["q_proj", "v_proj"]


def lora_modules(model):
    """{module name (HF): LoRA layer} of a PeftModel."""
    out = {}
    for name, mod in model.named_modules():
        if hasattr(mod, "lora_A") and "default" in mod.lora_A:
            out[name.split("base_model.model.", 1)[1]] = mod
    return out


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    load = transformers.AutoModelForCausalLM.from_pretrained
    original = load(MODEL, dtype=torch.float32)
    W = {n: p.detach().double().numpy() for n, p in original.named_parameters()}
    cfg = peft.LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=0.0,
                          init_lora_weights="pissa", task_type="CAUSAL_LM")
    model = peft.get_peft_model(load(MODEL, dtype=torch.float32), cfg)
    mods = lora_modules(model)
    assert len(mods) == 4, mods.keys()
    s = ALPHA / R
    t = {}
    with tempfile.TemporaryDirectory() as tmp:
        init_dir, conv_dir = os.path.join(tmp, "init"), os.path.join(tmp, "conv")
        model.peft_config["default"].init_lora_weights = True
        model.save_pretrained(init_dir)
        model.peft_config["default"].init_lora_weights = "pissa"
        gen = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for name, m in mods.items():
                A0, B0 = m.lora_A["default"].weight, m.lora_B["default"].weight
                t[f"init.{name}.lora_A"] = A0.numpy().copy()
                t[f"init.{name}.lora_B"] = B0.numpy().copy()
                t[f"peft.residual.{name}.weight"] = m.base_layer.weight.detach().numpy().copy()
                A0 += 0.05 * torch.randn(A0.shape, generator=gen)
                B0 += 0.05 * torch.randn(B0.shape, generator=gen)
                t[f"trained.{name}.lora_A"] = A0.numpy().copy()
                t[f"trained.{name}.lora_B"] = B0.numpy().copy()
        model.save_pretrained(conv_dir, path_initial_model_for_weight_conversion=init_dir)
        with open(os.path.join(conv_dir, "adapter_config.json")) as f:
            conv_config = json.load(f)
        # this machine's path out of the committed file
        conv_config["base_model_name_or_path"] = "tests/reference/tiny_llama"
        conv_config = json.dumps(conv_config, indent=2, sort_keys=True)
        conv = safetensors.numpy.load_file(os.path.join(conv_dir, "adapter_model.safetensors"))
        for k, v in conv.items():
            t["peft.converted." + k] = v
        merged = model.merge_and_unload()
        mo = peft.PeftModel.from_pretrained(load(MODEL, dtype=torch.float32), conv_dir).merge_and_unload()
        for name in mods:
            t[f"peft.merged.{name}.weight"] = merged.get_submodule(name).weight.detach().numpy().copy()
            t[f"peft.merged_original.{name}.weight"] = mo.get_submodule(name).weight.detach().numpy().copy()

    # what the conversion must be, checked here in float64
    cc = json.loads(conv_config)
    assert cc["r"] == 2 * R and cc["lora_alpha"] == 2 * ALPHA, cc
    worst = {}
    for name in mods:
        A0, B0 = (t[f"init.{name}.lora_{x}"].astype(np.float64) for x in "AB")
        A, B = (t[f"trained.{name}.lora_{x}"].astype(np.float64) for x in "AB")
        Ac = conv[f"base_model.model.{name}.lora_A.weight"].astype(np.float64)
        Bc = conv[f"base_model.model.{name}.lora_B.weight"].astype(np.float64)
        assert np.array_equal(Ac, np.concatenate([A, A0], 0)) and np.array_equal(Bc, np.concatenate([B, -B0], 1))
        Wo = W[name + ".weight"]
        delta = s * (B @ A - B0 @ A0)
        sc = (cc["lora_alpha"] / cc["r"])
        worst["s' B'A' - s (BA - B0A0)"] = max(worst.get("s' B'A' - s (BA - B0A0)", 0),
                                               np.abs(sc * Bc @ Ac - delta).max())
        for key, ref in (("peft.residual - (W - s B0 A0)", Wo - s * B0 @ A0),
                         ("peft.merged - (W + delta)", Wo + delta),
                         ("peft.merged_original - (W + delta)", Wo + delta)):
            got = t[(key.split(" ")[0]) + f".{name}.weight"].astype(np.float64)
            worst[key] = max(worst.get(key, 0), np.abs(got - ref).max())
        worst["|delta| (the adaptation)"] = max(worst.get("|delta| (the adaptation)", 0), np.abs(delta).max())
    for k, v in worst.items():
        print(f"  max {k:40s} {v:.3e}")
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "transformers": transformers.__version__, "peft": peft.__version__,
                "safetensors": safetensors.__version__, "numpy": np.__version__}
    meta = {"converted_config": conv_config, "r": str(R), "lora_alpha": str(ALPHA), "model": "tiny_llama"}
    out = os.path.join(HERE, "export_fixtures.safetensors")
    size = save_fixture(out, t, meta, versions)
    print(f"wrote {out} ({len(t)} tensors, {size} bytes)")


if __name__ == "__main__":
    main()
