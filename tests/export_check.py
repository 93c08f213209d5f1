#!/usr/bin/env python3
"""Checks of `ailora export` output for tests/export.sh (Debian python3: numpy, h5py).

    export_check.py make-run FIXTURE MODEL FINGERPRINT RUN.h5
        a run file holding the fixture's PEFT PiSSA init (A0, B0) and "trained" A, B
        (tests/reference/make_export_fixtures.py), as `ailora train` writes one
    export_check.py fixture FIXTURE DIR MODEL
        DIR (exported from that run file) against PEFT's own outputs
    export_check.py run RUN.h5 DIR MODEL
        DIR (exported from a real `ailora train` run) against the run file, in float64

safetensors files are read with numpy alone (8-byte header length + JSON header +
data). Prints the measured differences; exit 1 on the first failed check.

Tolerances. A value rounded once from float64 to a dtype is within half a unit in
the last place (ulp) of that dtype: exported weights are checked against an
independent numpy float64 formula at 0.5 ulp (1 + 1e-6) + 1e-13 (the 1e-13 covers
the order of summation of BLIS vs numpy in r-term dot products: ~1e-16 |x|).
Adapters hold float32 values exactly: compared for equality. PEFT's own residual
and merge are computed in float32 arithmetic: compared at 2e-7 absolute (weights
|w| < 1.2: a few float32 ulps; measured 2.8e-8 and 5.0e-8 against float64 by the
fixture script).
"""
import json
import os
import sys

import numpy as np

DT = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64,
      "I32": np.int32}
MANT = {"F64": 52, "F32": 23, "F16": 10, "BF16": 7}
FAILED = []


def read_st(path):
    """{name: (dtype name, float64 array or raw array)} and the metadata of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        a = np.frombuffer(raw[8 + n + b:8 + n + e], dtype=DT[h["dtype"]]).reshape(h["shape"])
        if h["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = (h["dtype"], a.astype(np.float64) if h["dtype"] in MANT else a)
    return out, meta


def check(ok, what):
    if not ok:
        FAILED.append(what)
        print("FAIL: " + what)


def ulp(x, dtype):
    """Spacing of dtype's numbers at |x| (normal range; subnormals get the smallest normal's)."""
    m = MANT[dtype]
    emin = {"F64": -1022, "F32": -126, "F16": -14, "BF16": -126}[dtype]
    e = np.floor(np.log2(np.maximum(np.abs(x), 2.0 ** emin)))
    return 2.0 ** (e - m)


def round_to(x, dtype):
    """x (float64) rounded once to dtype (round to nearest even), as float64."""
    if dtype == "F64":
        return x.copy()
    if dtype == "F32":
        return x.astype(np.float32).astype(np.float64)
    if dtype == "F16":
        return x.astype(np.float16).astype(np.float64)
    # bf16: 8 significant bits; frexp / rint (half to even) / ldexp are exact in float64
    m, e = np.frexp(x)
    return np.ldexp(np.rint(m * 256.0), e - 8)


def within_half_ulp(got, exact, dtype, what):
    err = np.abs(got - exact)
    bound = 0.5 * ulp(exact, dtype) * (1 + 1e-6) + 1e-13
    worst = float((err / bound).max()) if err.size else 0.0
    print(f"  {what}: max |err| {err.max():.3e}, max err / (0.5 ulp {dtype}) {worst * 1.0:.3f}")
    check(worst <= 1.0, f"{what}: not within half an ulp of {dtype} of the float64 formula (ratio {worst:.3f})")


def modules_of(names):
    return sorted({k.split("base_model.model.", 1)[1].rsplit(".lora_", 1)[0] for k in names})


def load_config(path):
    with open(path) as f:
        return json.load(f)


# ---- make-run ------------------------------------------------------------------------

def make_run(fixture, model, fingerprint, run):
    import h5py
    t, meta = read_st(fixture)
    r, alpha = int(meta["r"]), float(meta["lora_alpha"])
    names = sorted({k[len("init."):].rsplit(".lora_", 1)[0] for k in t if k.startswith("init.")})
    with h5py.File(run, "w") as f:
        for k, v in {"format": "ailora-run/1", "version": "test", "method": "pissa", "model": model,
                     "targets": "q_proj,v_proj", "task": "", "config": "method = pissa\n",
                     "model_fingerprint": fingerprint, "fingerprint_algorithm": "xxh3-128",
                     "residual_dtype": "model"}.items():
            f.attrs[k] = np.bytes_(v)
        f.attrs["rank"] = np.int64(r)
        f.attrs["alpha"] = np.float64(alpha)
        f.attrs["steps_done"] = np.int64(10)
        for n in names:
            for x in "AB":
                f[f"/init/{n}/lora_{x}"] = t[f"init.{n}.lora_{x}"][1]
                f[f"/adapters/{n}/lora_{x}"] = t[f"trained.{n}.lora_{x}"][1]
            f[f"/adapters/{n}"].attrs["residual_dtype"] = np.bytes_("F32")
    print(f"wrote {run}: {len(names)} modules, r = {r}, alpha = {alpha}")


# ---- fixture -----------------------------------------------------------------------------

def check_fixture(fixture, out, model):
    t, meta = read_st(fixture)
    r, alpha = int(meta["r"]), float(meta["lora_alpha"])
    s = alpha / r
    pconf = json.loads(meta["converted_config"])
    orig, _ = read_st(os.path.join(model, "model.safetensors"))
    conv = {k[len("peft.converted."):]: v[1] for k, v in t.items() if k.startswith("peft.converted.")}
    mods = modules_of(conv)
    print(f"fixture: {len(mods)} modules, r = {r}, alpha = {alpha}; PEFT converted r = {pconf['r']}, "
          f"lora_alpha = {pconf['lora_alpha']}")

    # (a) the trained adapter for the residual: exactly the fixture's A, B, PEFT's names
    ad, _ = read_st(os.path.join(out, "adapter", "adapter_model.safetensors"))
    check(set(ad) == set(conv), f"adapter/ tensor names {sorted(ad)[:2]} are not PEFT's {sorted(conv)[:2]}")
    for n in mods:
        for x in "AB":
            got = ad[f"base_model.model.{n}.lora_{x}.weight"]
            check(got[0] == "F32", f"adapter/ {n} lora_{x} is {got[0]}, not F32")
            check(np.array_equal(got[1], t[f"trained.{n}.lora_{x}"][1]), f"adapter/ {n} lora_{x} != trained")
    ac = load_config(os.path.join(out, "adapter", "adapter_config.json"))
    check(ac["r"] == r and ac["lora_alpha"] == alpha, f"adapter/ r, alpha = {ac['r']}, {ac['lora_alpha']}")
    check(ac["base_model_name_or_path"] == os.path.realpath(os.path.join(out, "residual")),
          f"adapter/ base_model_name_or_path {ac['base_model_name_or_path']}")

    # (b) PEFT's conversion: the same names and float32 values, the same config
    lo, _ = read_st(os.path.join(out, "lora_for_original", "adapter_model.safetensors"))
    check(set(lo) == set(conv), "lora_for_original/ tensor names are not PEFT's")
    for k, v in conv.items():
        check(k in lo and lo[k][1].shape == v.shape and np.array_equal(lo[k][1], v),
              f"lora_for_original/ {k} != PEFT's conversion")
    print(f"  lora_for_original/: {len(conv)} tensors equal to PEFT's convert_pissa_to_lora output (exactly)")
    lc = load_config(os.path.join(out, "lora_for_original", "adapter_config.json"))
    for k, v in lc.items():
        if k in ("base_model_name_or_path",):
            continue
        if k == "target_modules":
            check(sorted(v) == sorted(pconf[k]), f"target_modules {v} != PEFT's {pconf[k]}")
        else:
            check(k in pconf and pconf[k] == v, f"lora_for_original/adapter_config.json {k} = {v!r}, "
                  f"PEFT's {pconf.get(k, '(absent)')!r}")
    print(f"  lora_for_original/adapter_config.json: {len(lc) - 1} keys equal to PEFT's (r {lc['r']}, "
          f"lora_alpha {lc['lora_alpha']})")
    check(lc["base_model_name_or_path"] == os.path.realpath(model), "lora_for_original/ base is not the model")

    res, _ = read_st(os.path.join(out, "residual", "model.safetensors"))
    mer, _ = read_st(os.path.join(out, "merged", "model.safetensors"))
    check(set(res) == set(orig) and set(mer) == set(orig), "residual/ or merged/ tensor names differ from the model's")
    worst = {"residual vs PEFT": 0.0, "merged vs PEFT": 0.0, "merged vs PEFT (original + converted)": 0.0}
    for name in orig:
        mod = name.rsplit(".weight", 1)[0]
        if mod in mods:
            continue
        check(np.array_equal(res[name][1], orig[name][1]) and np.array_equal(mer[name][1], orig[name][1]),
              f"{name} (not adapted) changed")
    for n in mods:
        W = orig[n + ".weight"][1]
        A0, B0 = t[f"init.{n}.lora_A"][1], t[f"init.{n}.lora_B"][1]
        A, B = t[f"trained.{n}.lora_A"][1], t[f"trained.{n}.lora_B"][1]
        R, M = res[n + ".weight"][1], mer[n + ".weight"][1]
        within_half_ulp(R, W - s * B0 @ A0, "F32", f"residual {n} vs round(W - s B0 A0)")
        within_half_ulp(M, R + s * B @ A, "F32", f"merged {n} vs round(W_res + s B A)")
        worst["residual vs PEFT"] = max(worst["residual vs PEFT"], np.abs(R - t[f"peft.residual.{n}.weight"][1]).max())
        worst["merged vs PEFT"] = max(worst["merged vs PEFT"], np.abs(M - t[f"peft.merged.{n}.weight"][1]).max())
        worst["merged vs PEFT (original + converted)"] = max(
            worst["merged vs PEFT (original + converted)"], np.abs(M - t[f"peft.merged_original.{n}.weight"][1]).max())
        # float64 algebra: merged = original + s (BA - B0A0) up to two roundings; the
        # conversion gives the same delta on the original base
        delta = s * (B @ A - B0 @ A0)
        d = np.abs(M - (W + delta)).max()
        bound = (ulp(W + delta, "F32") + ulp(W - s * B0 @ A0, "F32")).max() * 0.5 * (1 + 1e-6)
        check(d <= bound, f"merged {n} - (W + s (BA - B0A0)) = {d:.3e} > {bound:.3e}")
        Ac, Bc = lo[f"base_model.model.{n}.lora_A.weight"][1], lo[f"base_model.model.{n}.lora_B.weight"][1]
        sc = lc["lora_alpha"] / lc["r"]
        dd = np.abs(sc * Bc @ Ac - delta).max()
        check(dd <= 1e-14, f"s' B'A' - s (BA - B0A0) = {dd:.3e} for {n}")
    for k, v in worst.items():
        print(f"  max |{k}| {v:.3e} (tol 2e-7)")
        check(v <= 2e-7, f"{k}: {v:.3e} > 2e-7")


# ---- run ---------------------------------------------------------------------------------

def check_run(run, out, model):
    import h5py
    with h5py.File(run, "r") as f:
        r, alpha = int(f.attrs["rank"]), float(f.attrs["alpha"])
        method = f.attrs["method"].decode()
        names = sorted(f["adapters"].keys())
        ad = {n: {x: f[f"/adapters/{n}/lora_{x}"][()] for x in "AB"} for n in names}
        init = {n: {x: f[f"/init/{n}/lora_{x}"][()] for x in "AB"} for n in names}
        rd = {n: f[f"/adapters/{n}"].attrs["residual_dtype"].decode() for n in names}
    s = alpha / r
    man = load_config(os.path.join(out, "export.json"))
    rout, mout = man["residual_model_dtype"], man["merged_model_dtype"]
    print(f"run: {method}, r = {r}, alpha = {alpha}, {len(names)} modules, residual held in {set(rd.values())}, "
          f"export: residual/ {rout}, merged/ {mout}")
    orig, _ = read_st(os.path.join(model, "model.safetensors"))
    res, _ = read_st(os.path.join(out, "residual", "model.safetensors"))
    mer, _ = read_st(os.path.join(out, "merged", "model.safetensors"))
    a, _ = read_st(os.path.join(out, "adapter", "adapter_model.safetensors"))
    lo, _ = read_st(os.path.join(out, "lora_for_original", "adapter_model.safetensors"))
    lc = load_config(os.path.join(out, "lora_for_original", "adapter_config.json"))
    doubled = any(np.any(init[n]["B"] != 0) for n in names)
    check(lc["r"] == (2 * r if doubled else r) and lc["lora_alpha"] == (2 * alpha if doubled else alpha),
          f"lora_for_original r, alpha = {lc['r']}, {lc['lora_alpha']} (doubled: {doubled})")
    for d, want in (("residual", rout), ("merged", mout)):
        cfg = load_config(os.path.join(out, d, "config.json"))
        torch_name = {"F32": "float32", "BF16": "bfloat16", "F16": "float16", "F64": "float64"}[want]
        key = "dtype" if "dtype" in cfg else "torch_dtype"
        check(cfg[key] == torch_name, f"{d}/config.json {key} = {cfg[key]}, expected {torch_name}")
        for side in ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"):
            src = os.path.join(model, side)
            if os.path.exists(src):
                with open(src, "rb") as x, open(os.path.join(out, d, side), "rb") as y:
                    check(x.read() == y.read(), f"{d}/{side} is not the model's")
        tens = res if d == "residual" else mer
        for name, (dt, v) in tens.items():
            if name.rsplit(".weight", 1)[0] in names:
                continue
            check(dt == want and np.array_equal(v, round_to(orig[name][1], want)), f"{d}/{name} (not adapted)")
    worst_lora = 0.0
    for n in names:
        A, B, A0, B0 = ad[n]["A"], ad[n]["B"], init[n]["A"], init[n]["B"]
        pa, pb = f"base_model.model.{n}.lora_A.weight", f"base_model.model.{n}.lora_B.weight"
        check(np.array_equal(a[pa][1], A) and np.array_equal(a[pb][1], B), f"adapter/ {n} != the run's trained adapter")
        if doubled:
            wantA, wantB = np.concatenate([A, A0], 0), np.concatenate([B, -B0], 1)
        else:
            wantA, wantB = A, B
        check(np.array_equal(lo[pa][1], round_to(wantA, "F32")) and np.array_equal(lo[pb][1], round_to(wantB, "F32")),
              f"lora_for_original/ {n} != [A; A0], [B, -B0] in float32")
        W = orig[n + ".weight"][1]
        exact = W - s * B0 @ A0
        held = round_to(exact, rd[n])  # what the run trained on
        R, M = res[n + ".weight"], mer[n + ".weight"]
        within_half_ulp(R[1], exact, rd[n], f"residual {n} vs round_{rd[n]}(W - s B0 A0)")
        if MANT[rout] >= MANT[rd[n]]:
            check(np.array_equal(R[1], held), f"residual {n} is not the residual the run held")
        within_half_ulp(M[1], held + s * B @ A, mout, f"merged {n} vs round_{mout}(W_res + s B A)")
        # the plain LoRA on the ORIGINAL weights gives the merged model up to the roundings of
        # W_res, of the merged weight and of A0, B0 to float32
        sc = lc["lora_alpha"] / lc["r"]
        viaorig = W + sc * lo[pb][1] @ lo[pa][1]
        d = np.abs(viaorig - M[1]).max()
        bound = (0.5 * ulp(exact, rd[n]) + 0.5 * ulp(M[1], mout)).max() + \
            abs(s) * 2.0 ** -23 * (np.abs(B0) @ np.abs(A0)).max() + 1e-13
        worst_lora = max(worst_lora, d / bound)
        check(d <= bound, f"original + lora_for_original vs merged {n}: {d:.3e} > {bound:.3e}")
    print(f"  original + s' B'A' vs merged: max err / bound {worst_lora:.3f} (bound: roundings of W_res, merged, A0 B0)")


def main():
    cmd = sys.argv[1]
    if cmd == "make-run":
        make_run(*sys.argv[2:6])
    elif cmd == "fixture":
        check_fixture(*sys.argv[2:5])
    elif cmd == "run":
        check_run(*sys.argv[2:5])
    else:
        sys.exit(f"unknown command {cmd}")
    print("FAILED: %d" % len(FAILED) if FAILED else "all checks passed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
