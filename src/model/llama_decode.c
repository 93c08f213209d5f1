/* llama_decode.c - batched greedy generation with a KV cache (see llama_decode.h).
 * The layer math is llama.c's own kernels (llama_ops.h); only the attention over
 * cached slots and the per-row positions are new here. Compiled twice, like
 * llama.c (float for the library, double for the tests). */
#include "ailora/llama_decode.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "llama_ops.h"

#ifdef AILORA_REAL_DOUBLE
#define EXP exp
#else
#define EXP expf
#endif

int llama_kv_alloc(const Llama *llm, int B, int S, int max_tokens, LlamaKV *kv) {
    memset(kv, 0, sizeof *kv);
    if (B < 1 || S < 1 || max_tokens < B)
        return AIL_ERROR(AIL_ERR_ARG, "KV cache of %d rows x %d slots (%d tokens per prefill)", B, S, max_tokens);
    kv->B = B, kv->S = S, kv->max_tokens = max_tokens;
    for (int l = 0; l < llm->L; l++)
        for (int i = 0; i < LIN_COUNT; i++)
            if (llm->layers[l].lora[i] && llm->layers[l].lora[i]->r > kv->rmax) kv->rmax = llm->layers[l].lora[i]->r;
    kv->nthreads = omp_get_max_threads();
    size_t N = (size_t)max_tokens, H = (size_t)llm->H, I = (size_t)llm->I;
    size_t qd = (size_t)llm->nh * llm->hd, kd = (size_t)llm->nkv * llm->hd, r = kv->rmax ? (size_t)kv->rmax : 1;
    size_t cache = (size_t)llm->L * B * S * kd;
    struct { real **p; size_t n; } bufs[] = {
        {&kv->k, cache}, {&kv->v, cache}, {&kv->x, N * H}, {&kv->h, N * H}, {&kv->rstd, N}, {&kv->q, N * qd},
        {&kv->kn, N * kd}, {&kv->vn, N * kd}, {&kv->y, N * qd}, {&kv->g, N * I}, {&kv->u, N * I}, {&kv->t, N * r},
        {&kv->part, llm->tp_size > 1 ? N * H : 1}, {&kv->xf, N * H},
        {&kv->scratch, (size_t)kv->nthreads * S * S},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) ok &= (*bufs[i].p = ail_malloc(sizeof(real) * bufs[i].n)) != NULL;
    ok &= (kv->valid = ail_calloc((size_t)B * S, 1)) != NULL;
    ok &= (kv->next_pos = ail_calloc((size_t)B, sizeof(int))) != NULL;
    ok &= (kv->pos = ail_calloc(N, sizeof(int))) != NULL;
    if (!ok) {
        llama_kv_free(kv);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for a KV cache of %d rows x %d slots", B, S);
    }
    return AIL_OK;
}

void llama_kv_free(LlamaKV *kv) {
    real *bufs[] = {kv->k, kv->v, kv->x, kv->h, kv->rstd, kv->q, kv->kn, kv->vn, kv->y, kv->g, kv->u, kv->t,
                    kv->part, kv->xf, kv->scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(kv->valid), free(kv->next_pos), free(kv->pos);
    memset(kv, 0, sizeof *kv);
}

/* HF rotate-half RoPE on x (N, nheads * hd) in place, row i at position pos[i]. */
static void rope_rows(real *x, const Llama *llm, int N, const int *pos, int nheads) {
    int hd = llm->hd, half = hd / 2;
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const real *cs = llm->rope_cos + (size_t)pos[i] * half, *sn = llm->rope_sin + (size_t)pos[i] * half;
        for (int h = 0; h < nheads; h++) {
            real *v = x + (size_t)i * nheads * hd + (size_t)h * hd;
            for (int j = 0; j < half; j++) {
                real a = v[j], b = v[j + half];
                v[j] = a * cs[j] - b * sn[j];
                v[j + half] = b * cs[j] + a * sn[j];
            }
        }
    }
}

/* Softmax of row[0..n) over the entries with keep[j] (the others get 0), in place;
 * as attention_forward computes it: max, exp, sum, divide. */
static void masked_softmax(real *row, int n, const int8_t *keep) {
    real mx = 0, sum = 0;
    int any = 0;
    for (int j = 0; j < n; j++)
        if (keep[j] && (!any || row[j] > mx)) mx = row[j], any = 1;
    for (int j = 0; j < n; j++) sum += (row[j] = keep[j] ? EXP(row[j] - mx) : 0);
    for (int j = 0; j < n; j++) row[j] /= sum;
}

/* Layers over kv->x (N, H): tokens rows[i] (cache row) at slot slot0 + (i % per)
 * for prefill (per = P, row i / P) or slot kv->len for a step (per = 1). */
static int run_layers(const Llama *llm, LlamaKV *kv, int N, int prefill, int P, const int *rows) {
    int H = llm->H, I = llm->I, nh = llm->nh, nkv = llm->nkv, hd = llm->hd, group = nh / nkv;
    int qd = nh * hd, kd = nkv * hd, S = kv->S;
    real scale = (real)(1.0 / sqrt((double)hd));
    double eps = llm->cfg.rms_norm_eps;
    for (int l = 0; l < llm->L; l++) {
        const LlamaLayer *ly = &llm->layers[l];
        real *K = kv->k + (size_t)l * kv->B * S * kd, *V = kv->v + (size_t)l * kv->B * S * kd;
        llama_op_rmsnorm(kv->h, kv->rstd, kv->x, ly->ln1, N, H, eps);
        llama_op_adapted_linear(ly, LIN_Q, kv->h, kv->q, kv->t, N, qd, H);
        llama_op_adapted_linear(ly, LIN_K, kv->h, kv->kn, kv->t, N, kd, H);
        llama_op_adapted_linear(ly, LIN_V, kv->h, kv->vn, kv->t, N, kd, H);
        rope_rows(kv->q, llm, N, kv->pos, nh);
        rope_rows(kv->kn, llm, N, kv->pos, nkv);
        for (int i = 0; i < N; i++) {  // into the cache
            int b = prefill ? i / P : rows[i], s = prefill ? i % P : kv->len;
            memcpy(K + ((size_t)b * S + s) * kd, kv->kn + (size_t)i * kd, sizeof(real) * kd);
            memcpy(V + ((size_t)b * S + s) * kd, kv->vn + (size_t)i * kd, sizeof(real) * kd);
        }
        if (prefill) {
            int B = N / P;
#pragma omp parallel for collapse(2)
            for (int b = 0; b < B; b++)
                for (int h = 0; h < nh; h++) {
                    real *Sc = kv->scratch + (size_t)omp_get_thread_num() * S * S;
                    const real *qh = kv->q + (size_t)b * P * qd + (size_t)h * hd;
                    const real *kh = K + (size_t)b * S * kd + (size_t)(h / group) * hd;
                    const real *vh = V + (size_t)b * S * kd + (size_t)(h / group) * hd;
                    const int8_t *valid = kv->valid + (size_t)b * S;
                    llama_op_gemm(P, P, hd, scale, qh, qd, 1, kh, 1, kd, 0, Sc, P, 1, 1);  // (P, P)
                    for (int t = 0; t < P; t++) {
                        real *row = Sc + (size_t)t * P;
                        if (!valid[t]) {  // padding query: attends only to itself
                            for (int j = 0; j < P; j++) row[j] = j == t;
                            continue;
                        }
                        masked_softmax(row, t + 1, valid);
                        for (int j = t + 1; j < P; j++) row[j] = 0;
                    }
                    llama_op_gemm(P, hd, P, 1, Sc, P, 1, vh, kd, 1, 0, kv->y + (size_t)b * P * qd + (size_t)h * hd, qd,
                                  1, 1);
                }
        } else {
            int n = kv->len + 1;
#pragma omp parallel for collapse(2)
            for (int i = 0; i < N; i++)
                for (int h = 0; h < nh; h++) {
                    real *sc = kv->scratch + (size_t)omp_get_thread_num() * S * S;
                    int b = rows[i];
                    const real *qh = kv->q + (size_t)i * qd + (size_t)h * hd;
                    const real *kh = K + (size_t)b * S * kd + (size_t)(h / group) * hd;
                    const real *vh = V + (size_t)b * S * kd + (size_t)(h / group) * hd;
                    const int8_t *valid = kv->valid + (size_t)b * S;
                    for (int j = 0; j < n; j++) {
                        real d = 0;
                        if (valid[j])
                            for (int c = 0; c < hd; c++) d += qh[c] * kh[(size_t)j * kd + c];
                        sc[j] = d * scale;
                    }
                    masked_softmax(sc, n, valid);
                    real *yh = kv->y + (size_t)i * qd + (size_t)h * hd;
                    for (int c = 0; c < hd; c++) yh[c] = 0;
                    for (int j = 0; j < n; j++)
                        if (valid[j])
                            for (int c = 0; c < hd; c++) yh[c] += sc[j] * vh[(size_t)j * kd + c];
                }
        }
        AIL_CHECK(llama_op_row_parallel(llm, kv->part, ly, LIN_O, kv->y, kv->x, kv->t, N, qd));  // x += o(y)
        llama_op_rmsnorm(kv->h, kv->rstd, kv->x, ly->ln2, N, H, eps);
        llama_op_adapted_linear(ly, LIN_GATE, kv->h, kv->g, kv->t, N, I, H);
        llama_op_adapted_linear(ly, LIN_UP, kv->h, kv->u, kv->t, N, I, H);
#pragma omp parallel for
        for (size_t i = 0; i < (size_t)N * I; i++) {
            real gv = kv->g[i];
            kv->g[i] = gv / (1 + EXP(-gv)) * kv->u[i];
        }
        AIL_CHECK(llama_op_row_parallel(llm, kv->part, ly, LIN_DOWN, kv->g, kv->x, kv->t, N, I));  // x += down(act)
    }
    return AIL_OK;
}

/* logits (n, V) of the residual rows src[0..n) (each a row index of kv->x). */
static void head(const Llama *llm, LlamaKV *kv, const int *src, int n, real *logits) {
    int H = llm->H;
    for (int i = 0; i < n; i++) memcpy(kv->h + (size_t)i * H, kv->x + (size_t)src[i] * H, sizeof(real) * H);
    llama_op_rmsnorm(kv->xf, kv->rstd, kv->h, llm->final_norm, n, H, llm->cfg.rms_norm_eps);
    llama_op_gemm(n, llm->V, H, 1, kv->xf, H, 1, llm->lm_head, 1, H, 0, logits, llm->V, 1, 0);
}

static int embed_check(const Llama *llm, const int32_t *tok, int N) {
    for (int i = 0; i < N; i++)
        if (tok[i] < 0 || tok[i] >= llm->V)
            return AIL_ERROR(AIL_ERR_ARG, "token id %d outside the vocabulary (%d)", tok[i], llm->V);
    return AIL_OK;
}

int llama_kv_prefill(const Llama *llm, LlamaKV *kv, const int32_t *tokens, const int8_t *mask, int P,
                     int all_logits, real *logits) {
    int B = kv->B, N = B * P, H = llm->H;
    if (P < 1 || P > kv->S || (long long)B * P > kv->max_tokens)
        return AIL_ERROR(AIL_ERR_ARG, "prefill of %d x %d tokens does not fit a KV cache of %d x %d slots (%d tokens)",
                         B, P, B, kv->S, kv->max_tokens);
    AIL_CHECK(embed_check(llm, tokens, N));
    memset(kv->valid, 0, (size_t)B * kv->S);
    for (int b = 0; b < B; b++) {
        int c = 0;
        for (int s = 0; s < P; s++) {
            int real_tok = mask ? mask[(size_t)b * P + s] != 0 : 1;
            kv->valid[(size_t)b * kv->S + s] = (int8_t)real_tok;
            c += real_tok;
            kv->pos[(size_t)b * P + s] = c > 0 ? c - 1 : 0;  // HF: max(cumsum(mask) - 1, 0)
        }
        if (!all_logits && !kv->valid[(size_t)b * kv->S + P - 1])
            return AIL_ERROR(AIL_ERR_ARG, "prompt %d of the batch is not left-padded (its last slot is padding)", b);
        if (c > llm->cfg.max_position_embeddings)
            return AIL_ERROR(AIL_ERR_ARG, "prompt %d has %d tokens, beyond max_position_embeddings %d", b, c,
                             llm->cfg.max_position_embeddings);
        kv->next_pos[b] = c;
    }
#pragma omp parallel for
    for (int i = 0; i < N; i++) memcpy(kv->x + (size_t)i * H, llm->embed + (size_t)tokens[i] * H, sizeof(real) * H);
    kv->len = 0;
    AIL_CHECK(run_layers(llm, kv, N, 1, P, NULL));
    kv->len = P;
    if (all_logits) {
        int *src = ail_malloc(sizeof(int) * (size_t)N);
        if (!src) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
        for (int i = 0; i < N; i++) src[i] = i;
        head(llm, kv, src, N, logits);
        free(src);
    } else {
        int src[B];
        for (int b = 0; b < B; b++) src[b] = b * P + P - 1;
        head(llm, kv, src, B, logits);
    }
    return AIL_OK;
}

int llama_kv_step(const Llama *llm, LlamaKV *kv, const int32_t *token, const int *rows, int n, real *logits) {
    int H = llm->H;
    if (kv->len >= kv->S) return AIL_ERROR(AIL_ERR_ARG, "KV cache full (%d slots)", kv->S);
    if (n < 1 || n > kv->B) return AIL_ERROR(AIL_ERR_ARG, "KV step of %d rows in a cache of %d", n, kv->B);
    AIL_CHECK(embed_check(llm, token, n));
    for (int b = 0; b < kv->B; b++) kv->valid[(size_t)b * kv->S + kv->len] = 0;
    for (int i = 0; i < n; i++) {
        int b = rows[i];
        if (kv->next_pos[b] >= llm->cfg.max_position_embeddings)
            return AIL_ERROR(AIL_ERR_ARG, "row %d reached max_position_embeddings %d", b, llm->cfg.max_position_embeddings);
        kv->valid[(size_t)b * kv->S + kv->len] = 1;
        kv->pos[i] = kv->next_pos[b]++;
        memcpy(kv->x + (size_t)i * H, llm->embed + (size_t)token[i] * H, sizeof(real) * H);
    }
    AIL_CHECK(run_layers(llm, kv, n, 0, 1, rows));
    kv->len++;
    int src[n];
    for (int i = 0; i < n; i++) src[i] = i;
    head(llm, kv, src, n, logits);
    return AIL_OK;
}

/* Argmax with eval_generate_greedy's tie rule (the first maximum). */
static int argmax(const real *row, int V) {
    int best = 0;
    for (int v = 1; v < V; v++) best = row[v] > row[best] ? v : best;
    return best;
}

int llama_generate_greedy(const Llama *llm, LlamaKV *kv, const int32_t *prompts, const int8_t *mask, int P,
                          int max_new, const int32_t *eos, int neos, int32_t *out, int *out_len) {
    int B = kv->B, V = llm->V;
    for (int b = 0; b < B; b++) out_len[b] = 0;
    if (max_new <= 0) return AIL_OK;
    if (P + max_new - 1 > kv->S)
        return AIL_ERROR(AIL_ERR_ARG, "%d prompt slots + %d new tokens need %d cache slots, the cache has %d", P,
                         max_new, P + max_new - 1, kv->S);
    real *logits = ail_malloc(sizeof(real) * (size_t)B * V);
    int *rows = ail_malloc(sizeof(int) * (size_t)B);
    int32_t *tok = ail_malloc(sizeof(int32_t) * (size_t)B);
    int rc = logits && rows && tok ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for decoding");
    // every tp rank must take the same branches: agree before the collectives
    if (llm->tp_size > 1) rc = ail_error_agree(llm->tp_comm, rc);
    if (rc == AIL_OK) rc = llama_kv_prefill(llm, kv, prompts, mask, P, 0, logits);
    int n = B;
    for (int b = 0; b < B; b++) rows[b] = b;
    for (int i = 0; i < max_new && rc == AIL_OK && n > 0; i++) {
        for (int j = 0; j < n; j++) tok[j] = argmax(logits + (size_t)j * V, V);
        // the same tokens on every tp rank (their logits agree up to the all-reduce's rounding)
        if (llm->tp_size > 1 && MPI_Bcast(tok, n, MPI_INT32_T, 0, llm->tp_comm) != MPI_SUCCESS)
            rc = ail_error_fatal(llm->tp_comm, AIL_ERROR(AIL_ERR_MPI, "token broadcast failed"));
        int m = 0;
        for (int j = 0; j < n && rc == AIL_OK; j++) {
            int b = rows[j], stop = 0;
            out[(size_t)b * max_new + out_len[b]++] = tok[j];
            for (int e = 0; e < neos; e++) stop |= tok[j] == eos[e];
            if (!stop) rows[m] = b, tok[m] = tok[j], m++;
        }
        n = m;
        if (rc == AIL_OK && n > 0 && i + 1 < max_new) rc = llama_kv_step(llm, kv, tok, rows, n, logits);
    }
    free(logits), free(rows), free(tok);
    return rc;
}
