/* llama.c - LLaMA decoder with LoRA: forward, backward (see llama.h).
 *
 * Row-major everywhere: activations (N, C) with N = B * T tokens, weights
 * (out, in). Compiled twice: float (the library) and double (-DAILORA_REAL_DOUBLE,
 * tests only).
 */
#include "ailora/llama.h"

#include <blis.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"

#ifdef AILORA_REAL_DOUBLE
#define MPI_REAL_T MPI_DOUBLE
#define GEMM_EX bli_dgemm_ex
#define RSQRT(x) (1.0 / sqrt(x))
#define EXP exp
#define LOG log
#else
#define MPI_REAL_T MPI_FLOAT
#define GEMM_EX bli_sgemm_ex
#define RSQRT(x) (1.0f / sqrtf(x))
#define EXP expf
#define LOG logf
#endif

/* ---- GEMM --------------------------------------------------------------------- */

/* C (M, N) = alpha A (M, K) B (K, N) + beta C, any strides. Inside OpenMP loops
 * (single = 1) BLIS runs one thread so the loops do not oversubscribe the cores. */
static void gemm(int M, int N, int K, real alpha, const real *A, inc_t rsa, inc_t csa,
                 const real *B, inc_t rsb, inc_t csb, real beta, real *C, inc_t rsc, inc_t csc,
                 int single) {
    if (M == 0 || N == 0) return;
    rntm_t rntm;
    bli_rntm_init(&rntm);
    if (single) bli_rntm_set_num_threads(1, &rntm);
    GEMM_EX(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &alpha, (real *)A, rsa, csa, (real *)B,
            rsb, csb, &beta, C, rsc, csc, NULL, single ? &rntm : NULL);
}

/* out (N, m) = in (N, n) W^T (+ bias), W (m, n); beta 1 accumulates into out. */
static void linear_forward(real *out, const real *in, const real *W, const real *bias, int N,
                           int m, int n, real beta) {
    if (bias) {
#pragma omp parallel for
        for (int i = 0; i < N; i++)  // beta 0 must overwrite: out may hold NaN garbage
            for (int j = 0; j < m; j++)
                out[(size_t)i * m + j] = beta != 0 ? beta * out[(size_t)i * m + j] + bias[j] : bias[j];
        beta = 1;
    }
    gemm(N, m, n, 1, in, n, 1, W, 1, n, beta, out, m, 1, 0);
}

/* din (N, n) += dout (N, m) W (m, n): the input gradient of a frozen linear. */
static void linear_backward_input(real *din, const real *dout, const real *W, int N, int m, int n,
                                  real beta) {
    gemm(N, n, m, 1, dout, m, 1, W, n, 1, beta, din, n, 1, 0);
}

/* Gradient of a base tensor (same offset in grad_storage); NULL when base tensors
 * are frozen. */
static real *base_grad(const Llama *llm, const real *p) {
    return llm->grad_storage && p ? llm->grad_storage + (p - llm->storage) : NULL;
}

/* dW (m, n) += dout^T (m, N) in (N, n);  db (m) += column sums of dout */
static void linear_backward_weight(real *dW, real *db, const real *dout, const real *in, int N, int m, int n) {
    gemm(m, n, N, 1, dout, 1, m, in, n, 1, 1, dW, n, 1, 0);
    if (db)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < m; j++) db[j] += dout[(size_t)i * m + j];
}

/* ---- LoRA ------------------------------------------------------------------------ */

/* t (N, r) = in A^T;  out (N, m) += s t B^T */
static void lora_forward(const LoraAdapter *ad, const real *in, real *out, real *t, int N) {
    gemm(N, ad->r, ad->n, 1, in, ad->n, 1, ad->A, 1, ad->n, 0, t, ad->r, 1, 0);
    gemm(N, ad->m, ad->r, ad->scale, t, ad->r, 1, ad->B, 1, ad->r, 1, out, ad->m, 1, 0);
}

/* dB += s dout^T t;  dt = s dout B;  dA += dt^T in;  din += dt A (din NULL: not needed) */
static void lora_backward(LoraAdapter *ad, const real *in, const real *t, const real *dout,
                          real *din, real *dt, int N) {
    int m = ad->m, n = ad->n, r = ad->r;
    gemm(m, r, N, ad->scale, dout, 1, m, t, r, 1, 1, ad->dB, r, 1, 0);
    gemm(N, r, m, ad->scale, dout, m, 1, ad->B, r, 1, 0, dt, r, 1, 0);
    gemm(r, n, N, 1, dt, 1, r, in, n, 1, 1, ad->dA, n, 1, 0);
    if (din) gemm(N, n, r, 1, dt, r, 1, ad->A, n, 1, 1, din, n, 1, 0);
}

/* ---- RMSNorm ------------------------------------------------------------------------ */

/* out = x / sqrt(mean(x^2) + eps) * w, per row of (N, C) */
static void rmsnorm_forward(real *out, real *rstd, const real *x, const real *w, int N, int C,
                            double eps) {
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const real *xi = x + (size_t)i * C;
        real ss = 0;
        for (int c = 0; c < C; c++) ss += xi[c] * xi[c];
        real r = RSQRT(ss / C + (real)eps);
        rstd[i] = r;
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] = xi[c] * r * w[c];
    }
}

/* dw (C) += sum over rows of dout * x * rstd (the weight gradient; dw may be NULL) */
static void rmsnorm_backward_weight(real *dw, const real *dout, const real *x, const real *rstd, int N, int C) {
    if (!dw) return;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) dw[c] += dout[(size_t)i * C + c] * x[(size_t)i * C + c] * rstd[i];
}

/* dx (+)= d/dx of the above given dout; accumulate selects += or = */
static void rmsnorm_backward(real *dx, const real *dout, const real *x, const real *rstd,
                             const real *w, int N, int C, int accumulate) {
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const real *xi = x + (size_t)i * C, *di = dout + (size_t)i * C;
        real r = rstd[i], dot = 0;
        for (int c = 0; c < C; c++) dot += w[c] * di[c] * xi[c];
        real k = dot * r * r * r / C;
        for (int c = 0; c < C; c++) {
            real g = r * w[c] * di[c] - k * xi[c];
            dx[(size_t)i * C + c] = accumulate ? dx[(size_t)i * C + c] + g : g;
        }
    }
}

/* ---- rotary embeddings (HF rotate-half) ------------------------------------------ */

/* x (N, nheads * hd) in place; position of token i is pos[i] (NULL: i % T). inverse = 1
 * applies the transposed rotation (backward). */
static void rope_apply(real *x, const Llama *llm, const int32_t *pos, int N, int T, int nheads, int inverse) {
    int hd = llm->hd, half = hd / 2;
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        int p = pos ? pos[i] : i % T;
        const real *cs = llm->rope_cos + (size_t)p * half;
        const real *sn = llm->rope_sin + (size_t)p * half;
        for (int h = 0; h < nheads; h++) {
            real *v = x + (size_t)i * nheads * hd + (size_t)h * hd;
            for (int j = 0; j < half; j++) {
                real a = v[j], b = v[j + half], s = inverse ? -sn[j] : sn[j];
                v[j] = a * cs[j] - b * s;
                v[j + half] = b * cs[j] + a * s;
            }
        }
    }
}

/* ---- causal grouped-query attention ------------------------------------------------ */

/* Key j visible to query t of a row with mask m (NULL: no padding): causal, real keys
 * only; a padding query sees only itself (finite, never scored). */
static inline int visible(const int8_t *m, int t, int j) { return j <= t && (!m || (m[t] ? m[j] : j == t)); }

/* y (N, nh*hd) from q (N, nh*hd), k, v (N, nkv*hd); lse (B, nh, T). One (batch,
 * head) per iteration; S = q k^T / sqrt(hd) in a T x T scratch. */
static void attention_forward(const Llama *llm, LlamaActs *a, real *y, real *lse, const real *q,
                              const real *k, const real *v) {
    int B = a->B, T = a->T, nh = llm->nh, nkv = llm->nkv, hd = llm->hd, group = nh / nkv;
    int qs = nh * hd, ks = nkv * hd;
    real scale = (real)(1.0 / sqrt((double)hd));
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++) {
            real *S = a->scratch + (size_t)omp_get_thread_num() * 2 * T * T;
            const real *qh = q + (size_t)b * T * qs + (size_t)h * hd;
            const real *kh = k + (size_t)b * T * ks + (size_t)(h / group) * hd;
            const real *vh = v + (size_t)b * T * ks + (size_t)(h / group) * hd;
            gemm(T, T, hd, scale, qh, qs, 1, kh, 1, ks, 0, S, T, 1, 1);  // (T, T)
            real *l = lse + ((size_t)b * nh + h) * T;
            const int8_t *m = a->masked ? a->mask + (size_t)b * T : NULL;
            for (int t = 0; t < T; t++) {
                real *row = S + (size_t)t * T, mx = row[t], sum = 0;  // the diagonal is always visible
                for (int j = 0; j <= t; j++)
                    if (visible(m, t, j)) mx = row[j] > mx ? row[j] : mx;
                for (int j = 0; j <= t; j++) sum += (row[j] = visible(m, t, j) ? EXP(row[j] - mx) : 0);
                for (int j = 0; j <= t; j++) row[j] /= sum;
                for (int j = t + 1; j < T; j++) row[j] = 0;
                l[t] = mx + LOG(sum);
            }
            gemm(T, hd, T, 1, S, T, 1, vh, ks, 1, 0, y + (size_t)b * T * qs + (size_t)h * hd, qs, 1, 1);
        }
}

/* dq (N, nh*hd) =, dk, dv (N, nkv*hd) = from dy. Probabilities are recomputed from
 * lse; one (batch, kv head) per iteration so the heads sharing a kv head add into
 * dk, dv without races. */
static void attention_backward(const Llama *llm, LlamaActs *a, real *dq, real *dk, real *dv,
                               const real *dy, const real *q, const real *k, const real *v,
                               const real *lse) {
    int B = a->B, T = a->T, nh = llm->nh, nkv = llm->nkv, hd = llm->hd, group = nh / nkv;
    int qs = nh * hd, ks = nkv * hd;
    real scale = (real)(1.0 / sqrt((double)hd));
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < nkv; g++) {
            real *P = a->scratch + (size_t)omp_get_thread_num() * 2 * T * T, *dP = P + (size_t)T * T;
            const real *kh = k + (size_t)b * T * ks + (size_t)g * hd;
            const real *vh = v + (size_t)b * T * ks + (size_t)g * hd;
            real *dkh = dk + (size_t)b * T * ks + (size_t)g * hd;
            real *dvh = dv + (size_t)b * T * ks + (size_t)g * hd;
            for (int t = 0; t < T; t++)
                for (int c = 0; c < hd; c++) dkh[(size_t)t * ks + c] = dvh[(size_t)t * ks + c] = 0;
            for (int h = g * group; h < (g + 1) * group; h++) {
                const real *qh = q + (size_t)b * T * qs + (size_t)h * hd;
                const real *dyh = dy + (size_t)b * T * qs + (size_t)h * hd;
                const real *l = lse + ((size_t)b * nh + h) * T;
                const int8_t *m = a->masked ? a->mask + (size_t)b * T : NULL;
                gemm(T, T, hd, scale, qh, qs, 1, kh, 1, ks, 0, P, T, 1, 1);
                for (int t = 0; t < T; t++)
                    for (int j = 0; j < T; j++)
                        P[(size_t)t * T + j] = visible(m, t, j) ? EXP(P[(size_t)t * T + j] - l[t]) : 0;
                gemm(T, T, hd, 1, dyh, qs, 1, vh, 1, ks, 0, dP, T, 1, 1);  // dP = dy v^T
                for (int t = 0; t < T; t++) {  // dS = P (dP - rowsum(P dP))
                    real *pr = P + (size_t)t * T, *dr = dP + (size_t)t * T, dot = 0;
                    for (int j = 0; j <= t; j++) dot += pr[j] * dr[j];
                    for (int j = 0; j < T; j++) dr[j] = j <= t ? pr[j] * (dr[j] - dot) : 0;
                }
                gemm(T, hd, T, 1, P, 1, T, dyh, qs, 1, 1, dvh, ks, 1, 1);  // dv += P^T dy
                gemm(T, hd, T, scale, dP, T, 1, kh, ks, 1, 0, dq + (size_t)b * T * qs + (size_t)h * hd,
                     qs, 1, 1);                                         // dq = dS k / sqrt(hd)
                gemm(T, hd, T, scale, dP, 1, T, qh, qs, 1, 1, dkh, ks, 1, 1);  // dk += dS^T q
            }
        }
}

/* ---- model --------------------------------------------------------------------------- */

/* Loading and saving the base weights: llama_io.c. */

void llama_free(Llama *llm) {
    for (int l = 0; llm->layers && l < llm->L; l++)
        for (int i = 0; i < LIN_COUNT; i++) {
            LoraAdapter *ad = llm->layers[l].lora[i];
            if (!ad) continue;
            free(ad->A), free(ad->B), free(ad->dA), free(ad->dB), free(ad);
        }
    free(llm->layers);
    free(llm->storage);
    free(llm->grad_storage);
    free(llm->rope_cos);
    free(llm->rope_sin);
    memset(llm, 0, sizeof *llm);
}

int llama_adapter_attach(Llama *llm, int layer, int lin, int r, double scale, const double *A,
                         const double *B) {
    if (layer < 0 || layer >= llm->L || lin < 0 || lin >= LIN_COUNT || r <= 0)
        return AIL_ERROR(AIL_ERR_ARG, "no module %d in layer %d for an adapter of rank %d", lin, layer, r);
    const int out[LIN_COUNT] = {llm->nh * llm->hd, llm->nkv * llm->hd, llm->nkv * llm->hd, llm->H,
                                llm->I, llm->I, llm->H};
    const int in[LIN_COUNT] = {llm->H, llm->H, llm->H, llm->nh * llm->hd, llm->H, llm->H, llm->I};
    LoraAdapter *ad = ail_calloc(1, sizeof *ad);
    if (!ad) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    ad->m = out[lin], ad->n = in[lin], ad->r = r, ad->scale = (real)scale;
    size_t na = (size_t)r * ad->n, nb = (size_t)ad->m * r;
    ad->A = ail_malloc(sizeof(real) * na), ad->dA = ail_calloc(na, sizeof(real));
    ad->B = ail_malloc(sizeof(real) * nb), ad->dB = ail_calloc(nb, sizeof(real));
    if (!ad->A || !ad->B || !ad->dA || !ad->dB) {
        free(ad->A), free(ad->B), free(ad->dA), free(ad->dB), free(ad);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for an adapter");
    }
    // this rank's shard: columns of A (row-parallel) or rows of B (column-parallel)
    int tp = llm->tp_size, rk = llm->tp_rank, row_par = llama_row_parallel(lin);
    size_t n_full = (size_t)ad->n * (row_par ? tp : 1), c0 = row_par ? (size_t)ad->n * rk : 0;
    size_t b0 = row_par ? 0 : (size_t)ad->m * rk;
    for (int i = 0; i < r; i++)
        for (int j = 0; j < ad->n; j++) ad->A[(size_t)i * ad->n + j] = (real)A[(size_t)i * n_full + c0 + j];
    for (size_t i = 0; i < nb; i++) ad->B[i] = (real)B[b0 * r + i];
    LoraAdapter **slot = &llm->layers[layer].lora[lin];
    if (*slot) free((*slot)->A), free((*slot)->B), free((*slot)->dA), free((*slot)->dB), free(*slot);
    *slot = ad;
    return AIL_OK;
}

int llama_adapter_tp_partial(const Llama *llm, int lin) { return llm->tp_size > 1 && !llama_row_parallel(lin); }

int llama_adapter_tp_sharded(const Llama *llm, int lin, int which) {
    return llm->tp_size > 1 && (llama_row_parallel(lin) ? which == 0 : which == 1);
}

int llama_enable_base_grads(Llama *llm) {
    if (!llm->grad_storage) AIL_CALLOC(llm->grad_storage, llm->storage_size);
    return AIL_OK;
}

void llama_zero_grads(Llama *llm) {
    if (llm->grad_storage) memset(llm->grad_storage, 0, sizeof(real) * llm->storage_size);
    for (int l = 0; l < llm->L; l++)
        for (int i = 0; i < LIN_COUNT; i++) {
            LoraAdapter *ad = llm->layers[l].lora[i];
            if (!ad) continue;
            memset(ad->dA, 0, sizeof(real) * (size_t)ad->r * ad->n);
            memset(ad->dB, 0, sizeof(real) * (size_t)ad->m * ad->r);
        }
}

int llama_acts_alloc(const Llama *llm, int B, int T, LlamaActs *a) {
    memset(a, 0, sizeof *a);
    if (T > llm->cfg.max_position_embeddings && llm->cfg.sliding_window)
        return AIL_ERROR(AIL_ERR_ARG, "sequence length %d exceeds config.json's sliding_window %d (sliding-window "
                         "attention is not implemented; up to the window it equals full attention)", T,
                         llm->cfg.sliding_window);
    if (T > llm->cfg.max_position_embeddings)
        return AIL_ERROR(AIL_ERR_ARG, "sequence length %d exceeds max_position_embeddings %d", T,
                         llm->cfg.max_position_embeddings);
    a->B = B, a->T = T;
    size_t N = (size_t)B * T, L = (size_t)llm->L, H = (size_t)llm->H, I = (size_t)llm->I;
    size_t qd = (size_t)llm->nh * llm->hd, kd = (size_t)llm->nkv * llm->hd;
    for (int l = 0; l < llm->L; l++)
        for (int i = 0; i < LIN_COUNT; i++)
            if (llm->layers[l].lora[i] && llm->layers[l].lora[i]->r > a->rmax) a->rmax = llm->layers[l].lora[i]->r;
    a->nthreads = omp_get_max_threads();
    struct { real **p; size_t n; } bufs[] = {
        {&a->x, (L + 1) * N * H}, {&a->h1, L * N * H}, {&a->rstd1, L * N}, {&a->q, L * N * qd},
        {&a->k, L * N * kd},      {&a->v, L * N * kd}, {&a->lse, L * N * llm->nh}, {&a->y, L * N * qd},
        {&a->xm, L * N * H},      {&a->h2, L * N * H}, {&a->rstd2, L * N},    {&a->g, L * N * I},
        {&a->u, L * N * I},       {&a->xf, N * H},     {&a->rstdf, N},        {&a->logits, N * llm->V},
        {&a->lora_t, L * LIN_COUNT * N * (size_t)(a->rmax ? a->rmax : 1)},
        {&a->scratch, (size_t)a->nthreads * 2 * T * T}, {&a->row_lse, N}, {&a->act, N * I},
    };
    a->row_loss = ail_malloc(sizeof(double) * N);
    a->mask = ail_malloc(N), a->pos = ail_malloc(sizeof(int32_t) * N);
    if (!a->mask || !a->pos) {
        llama_acts_free(a);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for activations (%d x %d tokens)", B, T);
    }
    if (llm->tp_size > 1 && !(a->tp_partial = ail_malloc(sizeof(real) * N * H))) {
        llama_acts_free(a);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for activations (%d x %d tokens)", B, T);
    }
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (!(*bufs[i].p = ail_malloc(sizeof(real) * bufs[i].n)) || !a->row_loss) {
            llama_acts_free(a);
            return AIL_ERROR(AIL_ERR_MEM, "out of memory for activations (%d x %d tokens)", B, T);
        }
    return AIL_OK;
}

void llama_acts_free(LlamaActs *a) {
    real *bufs[] = {a->x,  a->h1, a->rstd1, a->q,      a->k,      a->v,        a->lse,
                    a->y,  a->xm, a->h2,    a->rstd2,  a->g,      a->u,        a->xf,
                    a->rstdf, a->logits, a->lora_t, a->scratch, a->row_lse, a->act, a->grad};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(a->row_loss);
    free(a->tp_partial);
    free(a->mask), free(a->pos);
    memset(a, 0, sizeof *a);
}

static real silu(real x) { return x / (1 + EXP(-x)); }

/* Target of position n of (B, T): labels[n + 1] within the same sequence; with a
 * mask only predictions from a real token of a real token are scored. */
static int target_of(const LlamaActs *a, const int32_t *labels, int n, int T) {
    if ((n % T) + 1 >= T) return -100;
    if (a->masked && (!a->mask[n] || !a->mask[n + 1])) return -100;
    return labels[n + 1];
}

#define POS(a) ((a)->masked ? (a)->pos : NULL)

int llama_acts_set_mask(LlamaActs *a, const int8_t *mask) {
    int N = a->B * a->T;
    a->masked = 0;
    if (!mask) return AIL_OK;
    for (int i = 0; i < N; i++)
        if (mask[i] != 0 && mask[i] != 1)
            return AIL_ERROR(AIL_ERR_ARG, "attention mask value %d at row %d, position %d (0 or 1 expected)",
                             mask[i], i / a->T, i % a->T);
    for (int b = 0; b < a->B; b++) {
        int c = 0;
        for (int t = 0; t < a->T; t++) {
            int i = b * a->T + t;
            c += a->mask[i] = mask[i];
            a->pos[i] = c > 0 ? c - 1 : 0;  // HF: max(cumsum(mask) - 1, 0)
        }
    }
    a->masked = 1, a->mask_T = a->T;
    return AIL_OK;
}

/* Sum of buf (count) over the tensor-parallel ranks, in place. A failure here
 * cannot be agreed (the other ranks are inside this or the next all-reduce):
 * it ends the job. */
static int tp_allreduce(const Llama *llm, real *buf, size_t count) {
    if (llm->tp_size == 1) return AIL_OK;
    return ail_error_fatal(llm->tp_comm, ail_allreduce_sum(buf, count, MPI_REAL_T, llm->tp_comm));
}

/* y (N, m) = linear(in) with its adapter, if any */
static void adapted_linear(const LlamaLayer *ly, int lin, const real *in, real *out, real *t,
                           int N, int m, int n, real beta) {
    linear_forward(out, in, ly->w[lin], ly->bias[lin], N, m, n, beta);
    if (ly->lora[lin]) lora_forward(ly->lora[lin], in, out, t, N);
}

/* out (N, H) += the row-parallel linear lin of in (N, n) (this rank's columns):
 * partial products all-reduced over tp; the adapter's t = in A^T too, so that
 * s t B^T is added once, with the whole t (kept for backward). The bias (LLaMA's
 * o_proj and down_proj ones) is whole on every rank: added after the sum, once. */
static int row_parallel_linear(const Llama *llm, LlamaActs *a, const LlamaLayer *ly, int lin, const real *in,
                               real *out, real *t, int N, int n) {
    int H = llm->H;
    if (llm->tp_size == 1) {
        adapted_linear(ly, lin, in, out, t, N, H, n, 1);
        return AIL_OK;
    }
    real *part = a->tp_partial;
    linear_forward(part, in, ly->w[lin], NULL, N, H, n, 0);
    AIL_CHECK(tp_allreduce(llm, part, (size_t)N * H));
    const real *bias = ly->bias[lin];
#pragma omp parallel for
    for (size_t i = 0; i < (size_t)N * H; i++) out[i] += bias ? part[i] + bias[i % H] : part[i];
    const LoraAdapter *ad = ly->lora[lin];
    if (ad) {
        gemm(N, ad->r, ad->n, 1, in, ad->n, 1, ad->A, 1, ad->n, 0, t, ad->r, 1, 0);
        AIL_CHECK(tp_allreduce(llm, t, (size_t)N * ad->r));
        gemm(N, ad->m, ad->r, ad->scale, t, ad->r, 1, ad->B, 1, ad->r, 1, out, ad->m, 1, 0);
    }
    return AIL_OK;
}

int llama_forward(const Llama *llm, LlamaActs *a, const int32_t *tokens, const int32_t *labels,
                  double *loss_sum, long *scored) {
    int N = a->B * a->T, T = a->T, H = llm->H, I = llm->I, V = llm->V;
    int qd = llm->nh * llm->hd, kd = llm->nkv * llm->hd, r = a->rmax ? a->rmax : 1;
    double eps = llm->cfg.rms_norm_eps;
    for (int i = 0; i < N; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return AIL_ERROR(AIL_ERR_ARG, "token id %d outside the vocabulary (%d)", tokens[i], V);
    if (a->masked && a->mask_T != T)
        return AIL_ERROR(AIL_ERR_ARG, "attention mask set for %d positions, forward over %d", a->mask_T, T);
    a->tokens = tokens;
#pragma omp parallel for
    for (int i = 0; i < N; i++) memcpy(a->x + (size_t)i * H, llm->embed + (size_t)tokens[i] * H, sizeof(real) * H);
    real *act = a->act;  // silu(g) * u, rebuilt in backward
    for (int l = 0; l < llm->L; l++) {
        const LlamaLayer *ly = &llm->layers[l];
        size_t o = (size_t)l * N;
        real *x = a->x + o * H, *xn = a->x + (o + N) * H, *h1 = a->h1 + o * H, *xm = a->xm + o * H;
        real *q = a->q + o * qd, *k = a->k + o * kd, *v = a->v + o * kd, *y = a->y + o * qd;
        real *h2 = a->h2 + o * H, *g = a->g + o * I, *u = a->u + o * I;
        real *t = a->lora_t + (size_t)l * LIN_COUNT * N * r;
        rmsnorm_forward(h1, a->rstd1 + o, x, ly->ln1, N, H, eps);
        adapted_linear(ly, LIN_Q, h1, q, t + (size_t)LIN_Q * N * r, N, qd, H, 0);
        adapted_linear(ly, LIN_K, h1, k, t + (size_t)LIN_K * N * r, N, kd, H, 0);
        adapted_linear(ly, LIN_V, h1, v, t + (size_t)LIN_V * N * r, N, kd, H, 0);
        rope_apply(q, llm, POS(a), N, T, llm->nh, 0);
        rope_apply(k, llm, POS(a), N, T, llm->nkv, 0);
        attention_forward(llm, a, y, a->lse + o * llm->nh, q, k, v);
        memcpy(xm, x, sizeof(real) * (size_t)N * H);
        AIL_CHECK(row_parallel_linear(llm, a, ly, LIN_O, y, xm, t + (size_t)LIN_O * N * r, N, qd));
        rmsnorm_forward(h2, a->rstd2 + o, xm, ly->ln2, N, H, eps);
        adapted_linear(ly, LIN_GATE, h2, g, t + (size_t)LIN_GATE * N * r, N, I, H, 0);
        adapted_linear(ly, LIN_UP, h2, u, t + (size_t)LIN_UP * N * r, N, I, H, 0);
#pragma omp parallel for
        for (size_t i = 0; i < (size_t)N * I; i++) act[i] = silu(g[i]) * u[i];
        memcpy(xn, xm, sizeof(real) * (size_t)N * H);
        AIL_CHECK(row_parallel_linear(llm, a, ly, LIN_DOWN, act, xn, t + (size_t)LIN_DOWN * N * r, N, I));
    }
    rmsnorm_forward(a->xf, a->rstdf, a->x + (size_t)llm->L * N * H, llm->final_norm, N, H, eps);
    linear_forward(a->logits, a->xf, llm->lm_head, NULL, N, V, H, 0);
    if (!labels) return AIL_OK;
    // per-row losses, then a sequential sum: the same bits for any thread count
    double *row_loss = a->row_loss;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        int target = target_of(a, labels, n, T);
        row_loss[n] = 0.0;
        if (target == -100) continue;
        if (target < 0 || target >= V) {
            row_loss[n] = NAN;
            continue;
        }
        const real *row = a->logits + (size_t)n * V;
        real mx = row[0];
        double s = 0.0;
        for (int j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
        for (int j = 0; j < V; j++) s += EXP(row[j] - mx);
        a->row_lse[n] = mx + (real)log(s);  // backward's softmax is exp(logit - lse)
        row_loss[n] = (double)mx + log(s) - row[target];
    }
    double sum = 0.0;
    long count = 0;
    for (int n = 0; n < N; n++) {
        int target = target_of(a, labels, n, T);
        if (target == -100) continue;
        if (target < 0 || target >= V)
            return AIL_ERROR(AIL_ERR_ARG, "label %d outside the vocabulary (%d) and not -100", target, V);
        sum += row_loss[n];
        count++;
    }
    *loss_sum = sum;
    *scored = count;
    return AIL_OK;
}

/* dout of a frozen linear into din, plus its adapter's gradients */
static void adapted_linear_backward(const Llama *llm, LlamaLayer *ly, int lin, const real *in,
                                    const real *t, const real *dout, real *din, real *dt, int N,
                                    int m, int n, real beta) {
    if (din) linear_backward_input(din, dout, ly->w[lin], N, m, n, beta);
    if (llm->grad_storage)
        linear_backward_weight(base_grad(llm, ly->w[lin]), base_grad(llm, ly->bias[lin]),
                               dout, in, N, m, n);
    if (ly->lora[lin]) lora_backward(ly->lora[lin], in, t, dout, din, dt, N);
}

int llama_backward(Llama *llm, LlamaActs *a, const int32_t *labels, double loss_scale) {
    int N = a->B * a->T, T = a->T, H = llm->H, I = llm->I, V = llm->V;
    int qd = llm->nh * llm->hd, kd = llm->nkv * llm->hd, r = a->rmax ? a->rmax : 1;
    size_t big = (size_t)N * (V > 2 * I ? V : 2 * I);
    size_t sizes[9] = {(size_t)N * H, (size_t)N * H, (size_t)N * H, big, (size_t)N * qd, (size_t)N * qd,
                       (size_t)N * kd, (size_t)N * kd, (size_t)N * r};
    if (!a->grad) {  // kept for the next steps: no page faults in the hot loop
        size_t total = 0;
        for (int i = 0; i < 9; i++) total += sizes[i];
        a->grad = ail_malloc(sizeof(real) * total);
        int rc = a->grad ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for the backward pass");
        // first call on every tp rank alike: agree before the backward's all-reduces
        if (llm->tp_size > 1) rc = ail_error_agree(llm->tp_comm, rc);
        if (rc != AIL_OK) {
            free(a->grad), a->grad = NULL;
            return rc;
        }
    }
    real *bufs[9], *p = a->grad;
    for (int i = 0; i < 9; i++) bufs[i] = p, p += sizes[i];
    real *dx = bufs[0], *dxm = bufs[1], *dh = bufs[2], *dbig = bufs[3], *dq = bufs[4], *dy = bufs[5];
    real *dk = bufs[6], *dv = bufs[7], *dt = bufs[8], *act = a->act;

    // dlogits = (softmax - onehot) * loss_scale on scored rows
    real *dlogits = dbig;
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        real *d = dlogits + (size_t)n * V;
        const real *row = a->logits + (size_t)n * V;
        int target = target_of(a, labels, n, T);
        if (target == -100) {
            memset(d, 0, sizeof(real) * V);
            continue;
        }
        real lse = a->row_lse[n], scale = (real)loss_scale;
        for (int j = 0; j < V; j++) d[j] = EXP(row[j] - lse) * scale;
        d[target] -= scale;
    }
    linear_backward_input(dh, dlogits, llm->lm_head, N, V, H, 0);
    if (llm->grad_storage) linear_backward_weight(base_grad(llm, llm->lm_head), NULL, dlogits, a->xf, N, V, H);
    rmsnorm_backward_weight(base_grad(llm, llm->final_norm), dh, a->x + (size_t)llm->L * N * H, a->rstdf, N, H);
    rmsnorm_backward(dx, dh, a->x + (size_t)llm->L * N * H, a->rstdf, llm->final_norm, N, H, 0);

    for (int l = llm->L - 1; l >= 0; l--) {
        LlamaLayer *ly = &llm->layers[l];
        size_t o = (size_t)l * N;
        real *x = a->x + o * H, *h1 = a->h1 + o * H, *xm = a->xm + o * H;
        real *q = a->q + o * qd, *k = a->k + o * kd, *v = a->v + o * kd, *y = a->y + o * qd;
        real *h2 = a->h2 + o * H, *g = a->g + o * I, *u = a->u + o * I;
        real *t = a->lora_t + (size_t)l * LIN_COUNT * N * r;
        real *dg = dbig, *du = dbig + (size_t)N * I;
        // MLP: x_next = xm + (silu(g) * u) Wd^T
#pragma omp parallel for
        for (size_t i = 0; i < (size_t)N * I; i++) act[i] = silu(g[i]) * u[i];
        adapted_linear_backward(llm, ly, LIN_DOWN, act, t + (size_t)LIN_DOWN * N * r, dx, dg, dt, N, H, I, 0);
#pragma omp parallel for
        for (size_t i = 0; i < (size_t)N * I; i++) {
            real da = dg[i], sig = 1 / (1 + EXP(-g[i]));
            du[i] = da * g[i] * sig;
            dg[i] = da * u[i] * sig * (1 + g[i] * (1 - sig));
        }
        adapted_linear_backward(llm, ly, LIN_GATE, h2, t + (size_t)LIN_GATE * N * r, dg, dh, dt, N, I, H, 0);
        adapted_linear_backward(llm, ly, LIN_UP, h2, t + (size_t)LIN_UP * N * r, du, dh, dt, N, I, H, 1);
        AIL_CHECK(tp_allreduce(llm, dh, (size_t)N * H));  // column-parallel: partial input gradients
        memcpy(dxm, dx, sizeof(real) * (size_t)N * H);
        rmsnorm_backward_weight(base_grad(llm, ly->ln2), dh, xm, a->rstd2 + o, N, H);
        rmsnorm_backward(dxm, dh, xm, a->rstd2 + o, ly->ln2, N, H, 1);
        // attention: xm = x + y Wo^T
        adapted_linear_backward(llm, ly, LIN_O, y, t + (size_t)LIN_O * N * r, dxm, dy, dt, N, H, qd, 0);
        attention_backward(llm, a, dq, dk, dv, dy, q, k, v, a->lse + o * llm->nh);
        rope_apply(dq, llm, POS(a), N, T, llm->nh, 1);
        rope_apply(dk, llm, POS(a), N, T, llm->nkv, 1);
        // below layer 0 only the embedding may train: else skip its input gradients
        real *din = l > 0 || llm->grad_storage ? dh : NULL;
        adapted_linear_backward(llm, ly, LIN_Q, h1, t + (size_t)LIN_Q * N * r, dq, din, dt, N, qd, H, 0);
        adapted_linear_backward(llm, ly, LIN_K, h1, t + (size_t)LIN_K * N * r, dk, din, dt, N, kd, H, 1);
        adapted_linear_backward(llm, ly, LIN_V, h1, t + (size_t)LIN_V * N * r, dv, din, dt, N, kd, H, 1);
        if (!din) break;
        AIL_CHECK(tp_allreduce(llm, dh, (size_t)N * H));
        memcpy(dx, dxm, sizeof(real) * (size_t)N * H);
        rmsnorm_backward_weight(base_grad(llm, ly->ln1), dh, x, a->rstd1 + o, N, H);
        rmsnorm_backward(dx, dh, x, a->rstd1 + o, ly->ln1, N, H, 1);
    }
    real *dembed = base_grad(llm, llm->embed);
    if (dembed)  // scatter-add in token order: deterministic
        for (int i = 0; i < N; i++)
            for (int c = 0; c < H; c++) dembed[(size_t)a->tokens[i] * H + c] += dx[(size_t)i * H + c];
    return AIL_OK;
}

/* ---- kernels shared with the KV-cache decoder (llama_decode.c, llama_ops.h) ------- */

#include "llama_ops.h"  /* here, not above: keeps this addition in one place */

void llama_op_gemm(int M, int N, int K, real alpha, const real *A, long rsa, long csa, const real *B, long rsb,
                   long csb, real beta, real *C, long rsc, long csc, int single) {
    gemm(M, N, K, alpha, A, rsa, csa, B, rsb, csb, beta, C, rsc, csc, single);
}

void llama_op_rmsnorm(real *out, real *rstd, const real *x, const real *w, int N, int C, double eps) {
    rmsnorm_forward(out, rstd, x, w, N, C, eps);
}

void llama_op_adapted_linear(const LlamaLayer *ly, int lin, const real *in, real *out, real *t, int N, int m, int n) {
    adapted_linear(ly, lin, in, out, t, N, m, n, 0);
}

int llama_op_row_parallel(const Llama *llm, real *part, const LlamaLayer *ly, int lin, const real *in, real *out,
                          real *t, int N, int n) {
    LlamaActs a = {.tp_partial = part};
    return row_parallel_linear(llm, &a, ly, lin, in, out, t, N, n);
}
