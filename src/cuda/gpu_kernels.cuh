/* gpu_kernels.cuh - element-wise and reduction kernels of the CUDA backend.
 *
 * Each launcher takes bf (0: activations are float, 1: __nv_bfloat16) and void
 * pointers to activation-typed buffers; float / double pointers are typed.
 * Launchers only enqueue on stream s; the caller checks cudaGetLastError.
 * Row-major everywhere; N = B * T tokens.
 */
#ifndef AILORA_GPU_KERNELS_CUH
#define AILORA_GPU_KERNELS_CUH

#include <cuda_runtime.h>
#include <stdint.h>

/* x (N, C) = table[tokens] (V, C) */
void k_embed(int bf, void *x, const void *table, const int32_t *tokens, int N, int C, cudaStream_t s);
/* out (N, C) = x / sqrt(mean(x^2) + eps) * w; rstd (N) */
void k_rmsnorm_fwd(int bf, void *out, float *rstd, const void *x, const float *w, int N, int C,
                   float eps, cudaStream_t s);
/* dx (N, C) = (dres ? dres : 0) + rmsnorm input gradient of dout (dx may alias dres) */
void k_rmsnorm_bwd(int bf, void *dx, const void *dres, const void *dout, const void *x,
                   const float *rstd, const float *w, int N, int C, cudaStream_t s);
/* out (N, m) += bias (m) */
void k_add_bias(int bf, void *out, const float *bias, int N, int m, cudaStream_t s);
/* out = a + b, n elements (out may alias a or b) */
void k_add(int bf, void *out, const void *a, const void *b, size_t n, cudaStream_t s);
/* Attention layout: heads (B, nheads / group, T, group, hd): for each group of
 * `group` consecutive heads (the query heads sharing one kv head; group 1 for k, v),
 * rows ordered by position then head, so a group's queries form one (T * group, hd)
 * matrix whose first c * group rows are positions < c (block-causal chunks).
 * group 1 is the plain (B, nheads, T, hd).
 * heads = tok (B*T, nheads*hd), rotated by RoPE when rope (HF rotate-half: pairs
 * (j, j + hd/2)) at position pos[n] of token n = b T + t (pos NULL: t) */
void k_tok_to_heads(int bf, void *heads, const void *tok, const float *cos, const float *sin,
                    const int32_t *pos, int B, int T, int nheads, int hd, int group, int rope, cudaStream_t s);
/* tok (B*T, nheads*hd) = heads, rotated by the inverse RoPE (the transpose of the
 * rotation: the backward) when rope */
void k_heads_to_tok(int bf, void *tok, const void *heads, const float *cos, const float *sin,
                    const int32_t *pos, int B, int T, int nheads, int hd, int group, int rope, cudaStream_t s);
/* Padding (llama.h, llama_acts_set_mask): scores S (rows as below, batch row
 * b = R / (nh T)) get -inf at keys j <= t that query t may not see: mask[b, j] = 0,
 * or j != t for a padding query. The softmax kernels then give them probability 0. */
void k_attn_mask(int bf, void *S, const int8_t *mask, long rows, int T, int group, int nh, cudaStream_t s);
/* Attention scores and probabilities: activation-typed rows of stride T, rows =
 * B * nh * T in the layout above, row R at position t = (R / group) % T. The row
 * is causal (j <= t is read) and block-causal: only columns below the end of t's
 * chunk, jend = (t / Tc + 1) * Tc, are written (zeros for t < j < jend); columns
 * from jend on are neither read nor written (the chunked GEMMs never touch them).
 * forward: SP holds the scaled scores S on entry and the softmax P on exit (in
 * place); lse (rows) float. */
void k_softmax_fwd(int bf, void *SP, float *lse, long rows, int T, int group, int Tc, cudaStream_t s);
/* backward, in place: SP holds S, dPS holds dP = dY V^T on entry; on exit
 * SP = P = exp(S - lse) and dPS = dS = P (dP - rowsum(P dP)) */
void k_softmax_bwd(int bf, void *SP, void *dPS, const float *lse, long rows, int T, int group, int Tc,
                   cudaStream_t s);
/* backward from stored probabilities: P read-only, dPS holds dP on entry and
 * dS = P (dP - rowsum(P dP)) on exit (columns t < j < jend zeroed) */
void k_softmax_bwd_p(int bf, const void *P, void *dPS, long rows, int T, int group, int Tc, cudaStream_t s);
/* act = silu(g) * u, n elements */
void k_swiglu_fwd(int bf, void *act, const void *g, const void *u, size_t n, cudaStream_t s);
/* from dact (in dg): dg = dact * u * silu'(g), du = dact * silu(g) */
void k_swiglu_bwd(int bf, void *dg, void *du, const void *g, const void *u, size_t n, cudaStream_t s);
/* Cross entropy per row of logits (N, V) float32 with target labels[n + 1] in the
 * same sequence (-100: not scored): row_loss (N) double (0 when not scored),
 * dlogits (N, V) = softmax - onehot (0 rows when not scored), unscaled. */
void k_cross_entropy(int bf, void *dlogits, double *row_loss, const float *logits,
                     const int32_t *labels, int N, int T, int V, cudaStream_t s);
/* out[0] = sum of row_loss, out[1] = number of scored rows (deterministic order) */
void k_loss_reduce(double *out, const double *row_loss, const int32_t *labels, int N, int T,
                   cudaStream_t s);
/* out[0] = sum of squares of x[0..n) in double, deterministic (partials: 256 doubles) */
void k_sumsq(double *out, double *partials, const float *x, size_t n, cudaStream_t s);
/* One AdamW step over n elements (float32 master weights); copy (bf16) refreshed
 * when bf. The scalars are those of src/train/optim.c, in float. */
void k_adamw(int bf, float *p, void *copy, const float *g, float *m, float *v, size_t n, float clip,
             float decay, float b1, float b2, float eps, float step_size, float bc2_sqrt,
             cudaStream_t s);
/* copy (bf16) = p, n elements (bf16 mode only) */
void k_to_bf16(void *copy, const float *p, size_t n, cudaStream_t s);
/* dst (activation type) = src (float), n elements */
void k_from_float(int bf, void *dst, const float *src, size_t n, cudaStream_t s);

/* ---- greedy decoding with a KV cache (gpu_generate_greedy) ------------------------
 * A pass runs n tokens; token i belongs to cache row row[i], sits in slot slot[i]
 * (prefill: the prompt slots, step: the same new slot for every live row) at RoPE
 * position pos[i]. The cache of one layer is kc, vc (B, S, kd), kd = nkv * hd,
 * keys after RoPE; valid (B, S) int8 marks the slots holding real tokens. */
/* x (n, nheads * hd) token-major, rotated in place by RoPE at pos[i] (HF rotate-half:
 * pairs (j, j + hd/2)), as k_tok_to_heads does */
void k_rope_rows(int bf, void *x, const float *cos, const float *sin, const int32_t *pos, int n, int nheads,
                 int hd, cudaStream_t s);
/* kc[row[i], slot[i], :] = k[i, :], vc[row[i], slot[i], :] = v[i, :]; k, v (n, kd) */
void k_kv_store(int bf, void *kc, void *vc, const void *k, const void *v, const int32_t *row,
                const int32_t *slot, int n, int S, int kd, cudaStream_t s);
/* y (n, nh * hd) = softmax(scale q k^T) v per (token i, head h), over the keys of
 * kv head h / (nh / nkv) of row b = row[i] at slots j <= t = slot[i] with
 * valid[b, j] (a padding query, valid[b, t] = 0, attends only to itself). Scores,
 * softmax and the weighted sum in float32; y rounded once. Needs (hd + S) floats
 * of shared memory per block (opted in beyond 48 KiB; the caller keeps it within
 * the device's limit: gpu_generate_greedy allows 160 KiB). */
void k_decode_attn(int bf, void *y, const void *q, const void *kc, const void *vc, const int8_t *valid,
                   const int32_t *row, const int32_t *slot, int n, int S, int nh, int nkv, int hd, float scale,
                   cudaStream_t s);
/* out[i] = argmax_v logits[i, v] over logits (n, V) float32, the first maximum on ties */
void k_argmax(int32_t *out, const float *logits, int n, int V, cudaStream_t s);

#endif
