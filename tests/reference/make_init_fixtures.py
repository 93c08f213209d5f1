#!/usr/bin/env python3
"""Generate the reference fixtures for ailora's SVD-initialization tests.

Regenerate (from the repository root; CPU only, no network):

    /root/.pyenv/versions/3.11.7/bin/python3 tests/reference/make_init_fixtures.py

(any python3 with torch, transformers, peft, safetensors and numpy works; the
versions used for the committed fixtures are listed in tests/reference/README.md
and in the __metadata__ of init_fixtures.safetensors).

Outputs, all next to this script:

  tiny_llama/config.json, tiny_llama/generation_config.json,
  tiny_llama/model.safetensors
      A 2-layer float32 LLaMA (hidden 64, intermediate 128, 4 heads, 2 KV heads,
      vocab 256). q_proj is 64x64; k_proj/v_proj are 32x64 (wide, m < n).
      Every q_proj and v_proj weight is overwritten by U diag(S) V^T built in
      float64 from seeded random orthogonal factors and a geometric spectrum
      S_i = 2 * q^i with q = (1e-3)^(1/(k-1)), i.e. S runs from 2.0 down to
      2e-3 (q_proj: q ~ 0.896, v_proj: q ~ 0.800), and then cast to float32.
      The spectrum is chosen so that even the smallest singular values stay
      ~4 orders of magnitude above the float32 rounding noise of the stored
      weights (a steeper decay such as 2 * 0.7^i would reach 3e-10 at i = 63,
      far below that noise, and the minor triplets -- what MiLoRA/AILoRA
      select -- would then be arbitrary noise directions). Relative gaps
      between consecutive singular values are >= 10 % (q_proj) / 20 % (v_proj).

  init_fixtures.safetensors (one file, see README.md for the full list)
      peft.pissa.r{R}.a{A}.<module>.{lora_A,lora_B,residual}    float32
      np.<method>.r{R}.a{A}.<module>.{lora_A,lora_B,residual}   float64
      np.<method>.r{R}.a{A}.<module>.selected                    int64
      np.S.<module>                                              float64

SIGN CONVENTION (applied to every singular pair before anything is stored):
  For every singular pair j, the signs of U[:, j] and Vt[j, :] are flipped
  together so that the entry of U[:, j] with the largest absolute value is
  positive; if several entries share the largest absolute value, the first
  (lowest index) of them decides. For the PEFT outputs the pair is
  (lora_B[:, j], lora_A[j, :]): both are flipped so that the largest-|.| entry
  of lora_B[:, j] is positive (lora_B[:, j] = U[:, j] * sqrt(S_j / s) has the
  same sign pattern as U[:, j]). Residuals are sign-invariant.

What PEFT's PiSSA computes (peft 0.21.2, peft/tuners/lora/layer.py,
LoraLayer.pissa_init, init_lora_weights="pissa"):
  * weight = transpose(base_weight.to(torch.float32), fan_in_fan_out); for
    nn.Linear fan_in_fan_out is False, so this is the HF [out, in] = [m, n]
    matrix W itself. (fan_in_fan_out=True is only for GPT-2-style Conv1D
    weights stored [in, out]; then W is transposed before and the residual
    transposed back after.)
  * V, S, Uh = torch.linalg.svd(weight, full_matrices=False) -- the SVD is
    done in FLOAT32 (even for bf16/fp16 models it upcasts to float32 only,
    never float64). The names are misleading: the comment in PEFT reads
    "USV^T = W <-> VSU^T = W^T", so its "V" is our U (left vectors, [m, k])
    and its "Uh" is our Vt (right vectors, [k, n]).
  * Sr = S[:r] / scaling with scaling = lora_alpha / r (lora_alpha/sqrt(r)
    with use_rslora). I.e. PEFT divides S by s, exactly our sqrt(S_I / s).
  * lora_A = diag(sqrt(Sr)) @ Uh[:r]     [r, n]   (= diag(sqrt(S_I/s)) Vt_I)
    lora_B = V[:, :r] @ diag(sqrt(Sr))   [m, r]   (= U_I diag(sqrt(S_I/s)))
  * residual = weight - scaling * lora_B @ lora_A, computed in FLOAT32 (not
    float64, unlike ailora's contract), then cast to the base dtype and
    transposed back for fan_in_fan_out.
  * No sign canonicalization: signs are whatever LAPACK's gesdd returns.
  Hence PEFT's outputs agree with the float64 reference only to float32
  accuracy (~1e-6 here); the float64 "np." tensors are the tight reference.

The numpy reference ("np.") is independent of torch and of ailora's C code:
it reads the float32 weights back from tiny_llama/model.safetensors with
safetensors.numpy, converts them to float64, takes
numpy.linalg.svd(W, full_matrices=False), canonicalizes signs, and forms
  B = U_I diag(sqrt(S_I / s)),  A = diag(sqrt(S_I / s)) Vt_I,
  residual = W - s * B @ A        (all float64), s = alpha / r,
with I (ascending index order, k = min(m, n)):
  pissa              I = 0..r-1
  milora             I = k-r..k-1
  ailora             q_proj: pissa's I, v_proj: milora's I
  ratio_q0.5_v0.25   p = floor(rho * r + 0.5) principal (0..p-1) followed by
                     r - p minor (k-(r-p)..k-1); rho = 0.5 for q_proj and
                     0.25 for v_proj (r=8: q p=4, v p=floor(2.5)=2;
                     r=4: q p=2, v p=floor(1.5)=1).
"""

import os

# Determinism and no network: set before torch/numpy/transformers are imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import json
import math
import shutil
import sys

import numpy as np
from fixture_io import save_fixture
import safetensors
import safetensors.numpy
import torch
import transformers
import peft

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "tiny_llama")
FIXTURE = os.path.join(HERE, "init_fixtures.safetensors")

N_LAYERS = 2
TARGETS = ("q_proj", "v_proj")
MODULES = [f"model.layers.{i}.self_attn.{t}" for i in range(N_LAYERS) for t in TARGETS]

SPECTRUM_TOP = 2.0
SPECTRUM_COND = 1e3  # S_0 / S_{k-1}
SPECTRUM_SEED = 1234

# (r, alpha) pairs. PEFT pissa is run for PEFT_CONFIGS; the numpy reference
# covers every method for NP_CONFIGS and pissa also for the PEFT configs.
NP_CONFIGS = [(8, 8), (8, 16)]
PEFT_CONFIGS = [(8, 8), (4, 16)]
RATIO = {"q_proj": 0.5, "v_proj": 0.25}
METHODS = ["pissa", "milora", "ailora", "ratio_q0.5_v0.25"]

TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


def module_kind(name):
    return name.rsplit(".", 1)[1]


# ---------------------------------------------------------------- sign convention
def sign_of_pairs(U):
    """+1/-1 per column j of U so that the first largest-|.| entry becomes positive."""
    idx = np.argmax(np.abs(U), axis=0)  # argmax returns the first maximum on ties
    piv = U[idx, np.arange(U.shape[1])]
    return np.where(piv < 0, -1.0, 1.0).astype(U.dtype)


def canon_svd(U, Vt):
    sg = sign_of_pairs(U)
    return U * sg[None, :], Vt * sg[:, None]


def canon_lora(A, B):
    """A: [r, n], B: [m, r]; flip (B[:, j], A[j, :]) together."""
    sg = sign_of_pairs(B)
    return A * sg[:, None], B * sg[None, :]


# ---------------------------------------------------------------- 1. tiny model
def spectrum(k):
    q = SPECTRUM_COND ** (-1.0 / (k - 1))
    return SPECTRUM_TOP * q ** np.arange(k, dtype=np.float64)


def random_orthonormal(rng, rows, cols):
    """rows x cols with orthonormal columns (rows >= cols), QR of a gaussian,
    with R's diagonal made positive so the result is unique for the seed."""
    G = rng.standard_normal((rows, cols))
    Q, R = np.linalg.qr(G)
    d = np.sign(np.diag(R))
    d[d == 0] = 1.0
    return Q * d[None, :]


def build_tiny_llama():
    cfg = transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=N_LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
        max_position_embeddings=128,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=False,
    )
    if TRANSFORMERS_MAJOR >= 5:
        cfg.dtype = torch.float32
    else:
        cfg.torch_dtype = torch.float32
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).to(torch.float32).eval()

    rng = np.random.default_rng(SPECTRUM_SEED)
    designed = {}
    with torch.no_grad():
        for name in MODULES:
            lin = model.get_submodule(name)
            m, n = lin.weight.shape
            k = min(m, n)
            U = random_orthonormal(rng, m, k)
            V = random_orthonormal(rng, n, k)
            S = spectrum(k)
            W = (U * S[None, :]) @ V.T
            lin.weight.copy_(torch.from_numpy(W.astype(np.float32)))
            designed[name] = S

    if os.path.isdir(MODEL_DIR):
        shutil.rmtree(MODEL_DIR)
    model.save_pretrained(MODEL_DIR, safe_serialization=True)
    files = sorted(os.listdir(MODEL_DIR))
    allowed = {"config.json", "model.safetensors", "generation_config.json"}
    assert set(files) <= allowed and {"config.json", "model.safetensors"} <= set(files), files
    size = os.path.getsize(os.path.join(MODEL_DIR, "model.safetensors"))
    assert size < 1 << 20, size
    return designed


# ---------------------------------------------------------------- 2. PEFT PiSSA
def load_model():
    kw = {"dtype": torch.float32} if TRANSFORMERS_MAJOR >= 5 else {"torch_dtype": torch.float32}
    return transformers.LlamaForCausalLM.from_pretrained(MODEL_DIR, **kw).eval()


def peft_pissa(r, alpha):
    base = load_model()
    lcfg = peft.LoraConfig(
        r=r,
        lora_alpha=alpha,
        target_modules=list(TARGETS),
        init_lora_weights="pissa",
        lora_dropout=0.0,
    )
    pm = peft.get_peft_model(base, lcfg)
    out = {}
    for name in MODULES:
        mod = pm.base_model.model.get_submodule(name)
        assert abs(mod.scaling["default"] - alpha / r) == 0.0
        A = mod.lora_A["default"].weight.detach().cpu().numpy().astype(np.float32)
        B = mod.lora_B["default"].weight.detach().cpu().numpy().astype(np.float32)
        R = mod.get_base_layer().weight.detach().cpu().numpy().astype(np.float32)
        A, B = canon_lora(A, B)
        out[name] = (np.ascontiguousarray(A), np.ascontiguousarray(B), np.ascontiguousarray(R))
    return out


# ---------------------------------------------------------------- 3. numpy float64
def selected(method, kind, r, k):
    principal = list(range(r))
    minor = list(range(k - r, k))
    if method == "pissa":
        return principal
    if method == "milora":
        return minor
    if method == "ailora":
        return principal if kind == "q_proj" else minor
    if method.startswith("ratio_"):
        p = int(math.floor(RATIO[kind] * r + 0.5))
        return list(range(p)) + list(range(k - (r - p), k))
    raise ValueError(method)


def numpy_svds():
    W32 = safetensors.numpy.load_file(os.path.join(MODEL_DIR, "model.safetensors"))
    out = {}
    for name in MODULES:
        w32 = W32[name + ".weight"]
        assert w32.dtype == np.float32
        W = w32.astype(np.float64)
        U, S, Vt = np.linalg.svd(W, full_matrices=False)
        U, Vt = canon_svd(U, Vt)
        out[name] = (W, U, S, Vt)
    return out


def np_adapter(name, svd, method, r, alpha):
    W, U, S, Vt = svd
    k = S.shape[0]
    s = alpha / r
    I = np.array(selected(method, module_kind(name), r, k), dtype=np.int64)
    assert len(I) == r and np.all(np.diff(I) > 0)
    sq = np.sqrt(S[I] / s)
    B = U[:, I] * sq[None, :]
    A = sq[:, None] * Vt[I, :]
    R = W - s * (B @ A)
    return (np.ascontiguousarray(A), np.ascontiguousarray(B), np.ascontiguousarray(R), I)


# ---------------------------------------------------------------- output
# ---------------------------------------------------------------- main
def main():
    versions = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }
    print("versions:", json.dumps(versions))

    designed = build_tiny_llama()
    svds = numpy_svds()

    tensors = {}
    for name in MODULES:
        S = svds[name][2]
        tensors[f"np.S.{name}"] = np.ascontiguousarray(S)
        rel = np.max(np.abs(S - designed[name]) / designed[name])
        gaps = np.min(S[:-1] / S[1:] - 1.0)
        # How robust the sign convention is: gap between the largest and the
        # second largest |U[i, j]| of each column (must be far above the
        # float32 error of PEFT's vectors, ~1e-6, for the PEFT comparison).
        Ua = np.sort(np.abs(svds[name][1]), axis=0)
        margin = np.min(Ua[-1] - Ua[-2])
        print(f"{name}: W {svds[name][0].shape}, S[0]={S[0]:.6g} S[-1]={S[-1]:.6g}, "
              f"max rel dev from designed spectrum {rel:.2e}, min rel gap {gaps:.3f}, "
              f"min sign-pivot margin {margin:.2e}")
        assert margin > 1e-4, margin

    np_configs = [(meth, r, a) for (r, a) in NP_CONFIGS for meth in METHODS]
    np_configs += [("pissa", r, a) for (r, a) in PEFT_CONFIGS if (r, a) not in NP_CONFIGS]
    np_ref = {}
    for meth, r, a in np_configs:
        for name in MODULES:
            A, B, R, I = np_adapter(name, svds[name], meth, r, a)
            np_ref[(meth, r, a, name)] = (A, B, R)
            p = f"np.{meth}.r{r}.a{a}.{name}"
            tensors[p + ".lora_A"] = A
            tensors[p + ".lora_B"] = B
            tensors[p + ".residual"] = R
            tensors[p + ".selected"] = I
            # s*B@A is the truncated SVD, whatever alpha is
            W, U, S, Vt = svds[name]
            trunc = (U[:, I] * S[I][None, :]) @ Vt[I, :]
            assert np.max(np.abs(a / r * (B @ A) - trunc)) < 1e-13

    diffs = {}
    for r, a in PEFT_CONFIGS:
        out = peft_pissa(r, a)
        worst = [0.0, 0.0, 0.0]
        for name in MODULES:
            A, B, R = out[name]
            p = f"peft.pissa.r{r}.a{a}.{name}"
            tensors[p + ".lora_A"] = A
            tensors[p + ".lora_B"] = B
            tensors[p + ".residual"] = R
            nA, nB, nR = np_ref[("pissa", r, a, name)]
            for i, (x, y) in enumerate(((A, nA), (B, nB), (R, nR))):
                assert x.shape == y.shape, (name, x.shape, y.shape)
                worst[i] = max(worst[i], float(np.max(np.abs(x.astype(np.float64) - y))))
        diffs[f"r{r}.a{a}"] = worst
        print(f"PEFT pissa vs numpy float64 pissa, r={r} alpha={a} (s={a / r:g}): "
              f"max|dA|={worst[0]:.3e} max|dB|={worst[1]:.3e} max|dResidual|={worst[2]:.3e}")

    meta = {
        "description": "ailora init reference fixtures; generated by tests/reference/make_init_fixtures.py "
                       "from tests/reference/tiny_llama/model.safetensors",
        "modules": ",".join(MODULES),
        "methods": ",".join(METHODS),
        "np_configs": ",".join(f"{m}:r{r}.a{a}" for m, r, a in np_configs),
        "peft_configs": ",".join(f"pissa:r{r}.a{a}" for r, a in PEFT_CONFIGS),
        "scale": "s = alpha / r; B = U_I diag(sqrt(S_I/s)), A = diag(sqrt(S_I/s)) Vt_I, residual = W - s B A",
        "ratio": "ratio_q0.5_v0.25: p = floor(rho*r + 0.5) principal (0..p-1) then r-p minor (k-(r-p)..k-1), "
                 "rho_q=0.5, rho_v=0.25",
        "sign_convention": "for every singular pair j, U[:,j] and Vt[j,:] (PEFT: lora_B[:,j] and lora_A[j,:]) "
                           "are flipped together so that the entry of U[:,j] (lora_B[:,j]) with the largest "
                           "absolute value is positive; ties: the first such index",
        "spectrum": f"q_proj/v_proj weights = U diag(S) V^T, S_i = {SPECTRUM_TOP} * q^i, "
                    f"q = ({1 / SPECTRUM_COND:g})^(1/(k-1)), orthogonal factors seed {SPECTRUM_SEED}, cast to float32",
        "peft_pissa_max_abs_diff_vs_np": json.dumps(diffs),
        "dtypes": "peft.* float32 (PEFT float32 SVD and float32 residual); np.* float64; *.selected int64",
        "versions": json.dumps(versions),
    }
    size = save_fixture(FIXTURE, tensors, meta, versions)
    print(f"wrote {FIXTURE}: {len(tensors)} tensors, {size} bytes")
    assert size < 2 << 20, size


if __name__ == "__main__":
    main()
