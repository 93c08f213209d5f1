/* llama_decode.h - batched greedy generation with a KV cache on the CPU model
 * (llama.h), for evaluation.
 *
 * A batch of B prompts, LEFT-padded to P slots with mask (B, P) (1 = real token,
 * 0 = padding; the last slot of every row is real), is run once (prefill); then
 * each step feeds one token per live row and reuses the keys and values of every
 * earlier slot:
 *
 *   slots      s = 0 .. S-1 per row; slot s of row b holds K, V (after RoPE) of
 *              every layer, and valid[b, s] = 1 when it is a real token
 *   positions  HF: pos = max(cumsum(mask) - 1, 0) over the row's slots, so left
 *              padding does not move the real tokens' positions
 *   attention  query slot t attends key slot j iff j <= t and valid[j]; a padding
 *              query attends only to itself (finite, never used)
 *   layers     exactly llama_forward's: RMSNorm, q/k/v (+ bias) + s (h A^T) B^T on
 *              adapted modules, rotate-half RoPE, grouped-query softmax attention,
 *              o (row-parallel), SiLU MLP (gate/up column-, down row-parallel)
 *
 * so row b's logits equal those of llama_forward on its unpadded tokens (up to
 * float summation order), and greedy decoding equals eval_generate_greedy (no
 * cache, one forward over the growing sequence per token) token for token
 * (tests/test_llama_decode.c).
 *
 * Tensor parallelism: every rank of llm->tp_comm runs the same calls on its shard
 * (its q/k/v heads and MLP columns; its KV cache holds its kv heads only), with
 * the same all-reduces as llama_forward after o and down; the next tokens are
 * broadcast from tp rank 0, so every rank follows the same rows to the same stop.
 *
 * Cost per generated token: one (live rows x H) pass through the weights plus the
 * attention over the cached slots, instead of a forward over the whole sequence
 * with logits at every position.
 */
#ifndef AILORA_LLAMA_DECODE_H
#define AILORA_LLAMA_DECODE_H

#include <stdint.h>

#include "ailora/llama.h"

#ifdef AILORA_REAL_DOUBLE
#define llama_kv_alloc llama_kv_alloc_f64
#define llama_kv_free llama_kv_free_f64
#define llama_kv_prefill llama_kv_prefill_f64
#define llama_kv_step llama_kv_step_f64
#define llama_generate_greedy llama_generate_greedy_f64
#endif

typedef struct {
    int B, S;          /* rows; slots per row (prompt slots + new tokens) */
    int len;           /* slots filled so far (every row alike) */
    int max_tokens;    /* tokens one prefill may process (B x prompt slots) */
    int rmax;          /* largest adapter rank */
    real *k, *v;       /* (L, B, S, nkv*hd) after RoPE */
    int8_t *valid;     /* (B, S) */
    int *next_pos;     /* (B) position of the row's next token */
    /* work space for up to max_tokens tokens */
    real *x, *h, *rstd, *q, *kn, *vn, *y, *g, *u, *t, *part, *xf, *scratch;
    int *pos;          /* (max_tokens) positions of the tokens being run */
    int nthreads;
} LlamaKV;

/* Cache for B rows of S slots; work space for prefills of up to max_tokens tokens
 * (>= B). Slots are not positions (left padding takes slots, not positions): a
 * row's positions are checked against max_position_embeddings as it grows. */
int llama_kv_alloc(const Llama *llm, int B, int S, int max_tokens, LlamaKV *kv);
void llama_kv_free(LlamaKV *kv);

/* Prefill: tokens, mask (B, P) (mask NULL: all real); resets the cache and fills
 * slots 0..P. logits: all_logits ? (B * P, V) at every slot : (B, V) at slot P - 1. */
int llama_kv_prefill(const Llama *llm, LlamaKV *kv, const int32_t *tokens, const int8_t *mask, int P,
                     int all_logits, real *logits);

/* One step: token[i] for row rows[i] (i < n, rows ascending) goes into slot
 * kv->len; rows not listed get an invalid slot. logits (n, V). */
int llama_kv_step(const Llama *llm, LlamaKV *kv, const int32_t *token, const int *rows, int n, real *logits);

/* Greedy decoding of B left-padded prompts (B, P) with mask (NULL: all real): up to
 * max_new tokens per row into out (B, max_new), stopping a row at the first of
 * eos[0..neos) (kept in out, counted in out_len); out_len (B) = tokens generated.
 * kv must have B rows, S >= P + max_new - 1 slots and max_tokens >= B * P.
 * Collective over llm->tp_comm. */
int llama_generate_greedy(const Llama *llm, LlamaKV *kv, const int32_t *prompts, const int8_t *mask, int P,
                          int max_new, const int32_t *eos, int neos, int32_t *out, int *out_len);

#endif
