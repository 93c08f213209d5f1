/* gpu_model.cu - the CUDA training backend (see gpu.h): model upload, forward,
 * hand-written backward mirroring src/model/llama.c, AdamW as src/train/optim.c, and the
 * tensor / data-parallel collectives.
 *
 * Layouts (row-major, N = B * T tokens, qd = nh * hd, kd = nkv * hd, local counts):
 *   token-major activations (N, C); attention operands head-major, queries as
 *   (B, nkv, T, group, hd) so that the `group` = nh / nkv query heads sharing kv
 *   head g of batch row b form one contiguous (T * group, hd) matrix, in position
 *   order: GQA attention is strided-batched GEMMs over B * nkv (the K dimension of
 *   dK = dS^T Q sums the group for free), cut into block-causal chunks.
 *   Attention scores S (B, nh, T, T) are activation-typed (bf16 in bf16 mode, as
 *   HF's eager attention; softmax math in float32) and turned into P in place;
 *   only lse is kept per layer and P is recomputed in backward.
 * Adapters: all A, B in one float32 array (params, grads, two moments), ordered
 *   region 0: column-parallel B, row-parallel A     (sharded over tp)
 *   region 1: column-parallel A                      (replicated; grads summed over tp)
 *   region 2: row-parallel B                         (replicated, grads identical)
 * so the tp gradient sum and the tp-aware norm are one call each.
 * cuBLAS is column-major: a row-major C (M, N) = op(A) op(B) is computed as the
 * column-major C^T = op(B)^T op(A)^T (gemm() below).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"  // AILORA_HAVE_NCCL (the standalone builds pass -D flags instead)
#endif
extern "C" {
#include "ailora/error.h"
}
#include "ailora/gpu.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef AILORA_HAVE_NCCL
#include <nccl.h>
#endif

#include "gpu_kernels.cuh"

#define CU(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) return AIL_ERROR(AIL_ERR_LIB, "CUDA: %s (%s)", cudaGetErrorString(e_), #call); \
    } while (0)
#define CB(call)                                                                                   \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return AIL_ERROR(AIL_ERR_LIB, "cuBLAS: %s (%s)", cublasGetStatusString(s_), #call);   \
    } while (0)
#ifdef AILORA_HAVE_NCCL
#define NC(call)                                                                                   \
    do {                                                                                           \
        ncclResult_t r_ = (call);                                                                  \
        if (r_ != ncclSuccess) return AIL_ERROR(AIL_ERR_LIB, "NCCL: %s (%s)", ncclGetErrorString(r_), #call); \
    } while (0)
#endif
#define KCHECK() CU(cudaGetLastError())

struct GpuComm {
    int nranks, rank;
#ifdef AILORA_HAVE_NCCL
    ncclComm_t nccl;
#endif
};

typedef struct {
    int m, n, r;         /* local shape of the module; r = 0: not adapted */
    float scale;
    size_t offA, offB;   /* into the flat adapter arrays */
} Adapter;

typedef struct {
    float *ln1, *ln2;
    void *w[GPU_LIN_COUNT];
    float *bias[GPU_LIN_COUNT];  /* column-parallel: this rank's rows; o, down: whole, added after the tp sum */
    Adapter ad[GPU_LIN_COUNT];
} Layer;

#define PROF_EVENTS 4096
#define PROF_PHASES 48

struct GpuModel {
    int H, I, V, L, nh, nkv, hd, B, T, N, rmax, tp_size, tp_rank, bf;
    int chunks;              /* block-causal attention chunks requested (0: automatic) */
    float eps;
    size_t es;               /* bytes of an activation element */
    cudaDataType_t dt;       /* CUDA_R_32F or CUDA_R_16BF */
    GpuComm *tp;
    cudaStream_t st;
    cublasHandle_t cb;
    void *ws;                /* cuBLAS workspace */
    /* frozen weights */
    void *embed, *lm_head;
    float *final_norm, *rope_cos, *rope_sin;
    Layer *layers;
    /* adapters: float32 master / grads / moments; pc: activation-typed copy (== p in fp32) */
    float *p, *g, *m1, *m2;
    void *pc;
    size_t np, n_region0, n_region01;
    /* saved activations */
    void *x, *h1, *qh, *kh, *vh, *y, *xm, *h2, *gg, *uu, *xf, *lora_t;
    float *rstd1, *rstd2, *rstdf, *lse, *logits;
    void *dlogits;
    double *row_loss, *red, *partials;
    int32_t *tokens, *labels;
    int32_t *h_tokens, *h_labels;  /* pinned staging */
    double *h_red;
    int have_labels;
    /* padding (gpu_set_mask): host copy and positions, device copies of the forward's */
    int8_t *h_mask, *mask;
    int32_t *h_pos, *pos;
    int masked;
    /* scratch: forward and backward */
    void *qtok, *ktok, *vtok, *yh, *act, *tmp, *S, *dP, *dx, *dh, *dg, *du, *dy, *dqh, *dkh, *dvh, *dtb;
    void *P_all;             /* (L, att) attention probabilities of every layer, when kept */
    size_t att;              /* elements of one layer's score matrix: N * nh * T */
    float *stage;            /* upload staging (bf16 mode), only during gpu_model_create */
    /* greedy decoding (gpu_generate_greedy): KV cache and work space, allocated on
     * first use and grown on demand (their own allocations, not in allocs) */
    struct {
        int ready;               /* every buffer below allocated */
        int B, S, N;             /* cache rows, slots per row (the cache's row stride); tokens per pass */
        void *kc, *vc;           /* (L, B, S, kd) keys after RoPE, values */
        int8_t *valid, *h_valid; /* (B, S) real-token slots: device, host */
        int32_t *in, *h_in;      /* (4, N) tokens, rows, slots, positions of a pass: device, pinned host */
        int32_t *next, *h_next;  /* (B) the argmax tokens: device, pinned host */
        void *x, *h, *q, *k, *v, *y, *g, *u, *t, *tmp;  /* (N, H|qd|kd|I|rmax) activations */
        float *rstd, *logits;    /* (N), (B, V) */
        void *mem[24];
        int nmem;
        size_t bytes;
    } gen;
    int max_pos;             /* rows of the RoPE tables on the device */
    /* every device allocation, for gpu_model_free */
    void **allocs;
    int nallocs, cap;
    size_t bytes;
    /* AILORA_GPU_PROFILE=1: events at phase boundaries, attributed per phase name */
    int prof, prof_n, prof_steps;  /* prof_steps: forward calls seen (the first two are not recorded) */
    cudaEvent_t prof_ev[PROF_EVENTS];
    const char *prof_at[PROF_EVENTS];
    const char *prof_name[PROF_PHASES];
    double prof_ms[PROF_PHASES];
};

static void *at(void *p, size_t elems, size_t es) { return (char *)p + elems * es; }

/* ---- phase profile (AILORA_GPU_PROFILE=1) ------------------------------------------------ */

/* Adds the time between consecutive recorded events to the phase that began at the
 * earlier one; called where the stream is idle anyway (the loss sync). */
static void prof_flush(GpuModel *M) {
    if (!M->prof || M->prof_n < 2) return;
    cudaEventSynchronize(M->prof_ev[M->prof_n - 1]);
    for (int i = 0; i + 1 < M->prof_n; i++) {
        float ms = 0;
        cudaEventElapsedTime(&ms, M->prof_ev[i], M->prof_ev[i + 1]);
        int k = 0;
        while (k < PROF_PHASES && M->prof_name[k] && strcmp(M->prof_name[k], M->prof_at[i])) k++;
        if (k == PROF_PHASES) continue;
        M->prof_name[k] = M->prof_at[i];
        M->prof_ms[k] += ms;
    }
    M->prof_n = 0;
}

/* Marks the start of phase name (NULL: the end of the last one). */
static void prof(GpuModel *M, const char *name) {
    if (!M->prof || M->prof_steps <= 2) return;  // warm-up: cuBLAS start-up, lazy kernel loading
    if (M->prof_n == PROF_EVENTS) prof_flush(M);
    cudaEventRecord(M->prof_ev[M->prof_n], M->st);
    M->prof_at[M->prof_n++] = name ? name : "(between calls)";
}

static const char *const prof_fwd_lin[GPU_LIN_COUNT] = {"fwd q base", "fwd k base", "fwd v base", "fwd o base",
                                                        "fwd gate base", "fwd up base", "fwd down base"};
static const char *const prof_bwd_lin[GPU_LIN_COUNT] = {"bwd q base", "bwd k base", "bwd v base", "bwd o base",
                                                        "bwd gate base", "bwd up base", "bwd down base"};

static void prof_report(GpuModel *M) {
    if (!M->prof) return;
    prof_flush(M);
    double total = 0;
    for (int k = 0; k < PROF_PHASES && M->prof_name[k]; k++)
        if (strcmp(M->prof_name[k], "(between calls)")) total += M->prof_ms[k];
    int steps = M->prof_steps - 2 > 0 ? M->prof_steps - 2 : 1;
    fprintf(stderr, "GPU phase profile (AILORA_GPU_PROFILE; ms per step over %d steps after 2 warm-up, share):\n", steps);
    for (int k = 0; k < PROF_PHASES && M->prof_name[k]; k++)
        fprintf(stderr, "  %-28s %10.3f ms %6.1f%%\n", M->prof_name[k], M->prof_ms[k] / steps,
                strcmp(M->prof_name[k], "(between calls)") ? 100.0 * M->prof_ms[k] / total : 0.0);
}

/* ---- devices and communicators ------------------------------------------------------ */

int gpu_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky "no driver" state
        return 0;
    }
    return n;
}

int gpu_select_device(int local_rank) {
    int n = gpu_device_count();
    if (n == 0) return AIL_ERROR(AIL_ERR_ARG, "no CUDA device visible");
    CU(cudaSetDevice(local_rank % n));
    return AIL_OK;
}

int gpu_nccl_unique_id(unsigned char id[128]) {
    memset(id, 0, 128);
#ifdef AILORA_HAVE_NCCL
    ncclUniqueId u;
    NC(ncclGetUniqueId(&u));
    memcpy(id, &u, sizeof u < 128 ? sizeof u : 128);
#endif
    return AIL_OK;
}

int gpu_comm_create(const unsigned char id[128], int nranks, int rank, GpuComm **comm) {
    *comm = NULL;
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return AIL_ERROR(AIL_ERR_ARG, "GPU communicator rank %d of %d", rank, nranks);
    GpuComm *c = (GpuComm *)calloc(1, sizeof *c);
    if (!c) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    c->nranks = nranks, c->rank = rank;
    if (nranks > 1) {
#ifdef AILORA_HAVE_NCCL
        ncclUniqueId u;
        memcpy(&u, id, sizeof u);
        ncclResult_t r = ncclCommInitRank(&c->nccl, nranks, u, rank);
        if (r != ncclSuccess) {
            free(c);
            return AIL_ERROR(AIL_ERR_LIB, "NCCL: ncclCommInitRank: %s", ncclGetErrorString(r));
        }
#else
        (void)id;
        free(c);
        return AIL_ERROR(AIL_ERR_ARG, "%d GPU ranks need NCCL: this build has none (AILORA_HAVE_NCCL)", nranks);
#endif
    }
    *comm = c;
    return AIL_OK;
}

void gpu_comm_free(GpuComm *c) {
    if (!c) return;
#ifdef AILORA_HAVE_NCCL
    if (c->nranks > 1) ncclCommDestroy(c->nccl);
#endif
    free(c);
}

int gpu_comm_size(const GpuComm *c) { return c ? c->nranks : 1; }

int gpu_have_nccl(void) {
#ifdef AILORA_HAVE_NCCL
    return 1;
#else
    return 0;
#endif
}

/* kind: 0 activation type, 1 float, 2 double. A no-op on one rank. */
static int allreduce(const GpuModel *m, GpuComm *c, void *buf, size_t count, int kind) {
    if (!c || c->nranks == 1 || count == 0) return AIL_OK;
#ifdef AILORA_HAVE_NCCL
    ncclDataType_t t = kind == 2 ? ncclDouble : (kind == 1 || !m->bf ? ncclFloat : ncclBfloat16);
    NC(ncclAllReduce(buf, buf, count, t, ncclSum, c->nccl, m->st));
    return AIL_OK;
#else
    (void)m, (void)buf, (void)kind;
    return AIL_ERROR(AIL_ERR_ARG, "collective over %d ranks without NCCL", c->nranks);
#endif
}

/* ---- GEMMs -------------------------------------------------------------------------- */

/* Row-major C (M, N) = alpha op(A) op(B) + beta C. op(A) is (M, K): A stored (M, K)
 * with leading dimension lda, or (K, M) when ta. Same for B: (K, N), or (N, K) when tb. */
static int gemm(const GpuModel *m, int ta, int tb, int M, int N, int K, float alpha, const void *A,
                cudaDataType_t at_, int lda, const void *B, cudaDataType_t bt, int ldb, float beta, void *C,
                cudaDataType_t ct, int ldc) {
    if (M == 0 || N == 0) return AIL_OK;
    CB(cublasGemmEx(m->cb, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                    bt, ldb, A, at_, lda, &beta, C, ct, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return AIL_OK;
}

static int gemm_batched(const GpuModel *m, int ta, int tb, int M, int N, int K, float alpha, const void *A,
                        cudaDataType_t at_, int lda, long long sa, const void *B, cudaDataType_t bt, int ldb,
                        long long sb, float beta, void *C, cudaDataType_t ct, int ldc, long long sc, int batch) {
    CB(cublasGemmStridedBatchedEx(m->cb, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                                  K, &alpha, B, bt, ldb, sb, A, at_, lda, sa, &beta, C, ct, ldc, sc, batch,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return AIL_OK;
}

/* out (N, m) = in (N, n) W^T + beta out */
static int linear_fwd(const GpuModel *M, void *out, const void *in, const void *W, int m, int n, float beta) {
    return gemm(M, 0, 1, M->N, m, n, 1.f, in, M->dt, n, W, M->dt, n, beta, out, M->dt, m);
}

/* din (N, n) = alpha dout (N, m) W (m, n) + beta din */
static int linear_bwd_in(const GpuModel *M, void *din, const void *dout, const void *W, int m, int n,
                         float alpha, float beta) {
    return gemm(M, 0, 0, M->N, n, m, alpha, dout, M->dt, m, W, M->dt, n, beta, din, M->dt, n);
}

static const void *copyA(const GpuModel *M, const Adapter *a) { return at(M->pc, a->offA, M->es); }
static const void *copyB(const GpuModel *M, const Adapter *a) { return at(M->pc, a->offB, M->es); }

/* t (N, r) = in (N, n) A^T */
static int lora_t(const GpuModel *M, const Adapter *a, const void *in, void *t) {
    return gemm(M, 0, 1, M->N, a->r, a->n, 1.f, in, M->dt, a->n, copyA(M, a), M->dt, a->n, 0.f, t, M->dt, a->r);
}

/* out (N, m) += s t B^T */
static int lora_out(const GpuModel *M, const Adapter *a, const void *t, void *out) {
    return gemm(M, 0, 1, M->N, a->m, a->r, a->scale, t, M->dt, a->r, copyB(M, a), M->dt, a->r, 1.f, out, M->dt,
                a->m);
}

/* dB += s dout^T t;  dt = s dout B;  dA += dt^T in;  din += dt A (din NULL: skipped) */
static int lora_bwd(const GpuModel *M, const Adapter *a, const void *in, const void *t, const void *dout,
                    void *din) {
    int N = M->N, m = a->m, n = a->n, r = a->r;
    AIL_CHECK(gemm(M, 1, 0, m, r, N, a->scale, dout, M->dt, m, t, M->dt, r, 1.f, M->g + a->offB, CUDA_R_32F, r));
    AIL_CHECK(gemm(M, 0, 0, N, r, m, a->scale, dout, M->dt, m, copyB(M, a), M->dt, r, 0.f, M->dtb, M->dt, r));
    AIL_CHECK(gemm(M, 1, 0, r, n, N, 1.f, M->dtb, M->dt, r, in, M->dt, n, 1.f, M->g + a->offA, CUDA_R_32F, n));
    if (din) AIL_CHECK(gemm(M, 0, 0, N, n, r, 1.f, M->dtb, M->dt, r, copyA(M, a), M->dt, n, 1.f, din, M->dt, n));
    return AIL_OK;
}

/* ---- creation -------------------------------------------------------------------------- */

static int dalloc(GpuModel *m, void **p, size_t bytes) {
    *p = NULL;
    if (bytes == 0) bytes = 16;
    if (m->nallocs == m->cap) {
        int cap = m->cap ? 2 * m->cap : 256;
        void **a = (void **)realloc(m->allocs, sizeof *a * (size_t)cap);
        if (!a) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
        m->allocs = a, m->cap = cap;
    }
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess)
        return AIL_ERROR(AIL_ERR_MEM, "cudaMalloc of %zu bytes: %s (%.2f GiB allocated so far)", bytes,
                         cudaGetErrorString(e), m->bytes / 1073741824.0);
    m->allocs[m->nallocs++] = *p;
    m->bytes += bytes;
    return AIL_OK;
}

#define DALLOC(ptr, bytes) AIL_CHECK(dalloc(m, (void **)&(ptr), (bytes)))

/* Uploads n floats into an activation-typed device tensor (through stage in bf16 mode).
 * Everything goes through m->st (non-blocking: the legacy stream would not order it). */
static int upload_act(GpuModel *m, void *dst, const float *src, size_t n, float *stage) {
    if (!m->bf) {
        CU(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyHostToDevice, m->st));
        return AIL_OK;
    }
    CU(cudaMemcpyAsync(stage, src, sizeof(float) * n, cudaMemcpyHostToDevice, m->st));
    k_from_float(1, dst, stage, n, m->st);
    KCHECK();
    CU(cudaStreamSynchronize(m->st));  // stage is reused by the next upload
    return AIL_OK;
}

static int upload_f32(GpuModel *m, float **dst, const float *src, size_t n) {
    DALLOC(*dst, sizeof(float) * n);
    CU(cudaMemcpyAsync(*dst, src, sizeof(float) * n, cudaMemcpyHostToDevice, m->st));
    return AIL_OK;
}

static int create(GpuModel *m, const GpuModelSpec *sp, GpuPrecision prec, int B, int T, GpuComm *tp) {
    m->H = sp->H, m->I = sp->I, m->V = sp->V, m->L = sp->L, m->nh = sp->nh, m->nkv = sp->nkv, m->hd = sp->hd;
    m->B = B, m->T = T, m->N = B * T, m->eps = (float)sp->rms_eps;
    m->tp_size = sp->tp_size < 1 ? 1 : sp->tp_size, m->tp_rank = sp->tp_rank, m->tp = tp;
    m->bf = prec == GPU_BF16;
    const char *ch = getenv("AILORA_GPU_ATTN_CHUNKS");
    m->chunks = ch ? atoi(ch) : 0;
    m->es = m->bf ? sizeof(__nv_bfloat16) : sizeof(float);
    m->dt = m->bf ? CUDA_R_16BF : CUDA_R_32F;
    int H = m->H, I = m->I, V = m->V, L = m->L, nh = m->nh, nkv = m->nkv, hd = m->hd, N = m->N;
    if (prec != GPU_FP32 && prec != GPU_BF16) return AIL_ERROR(AIL_ERR_ARG, "unknown GPU precision %d", (int)prec);
    if (H <= 0 || I <= 0 || V <= 0 || L <= 0 || nh <= 0 || nkv <= 0 || hd <= 0 || hd % 2 || nh % nkv)
        return AIL_ERROR(AIL_ERR_ARG, "bad GPU model shape H %d I %d V %d L %d nh %d nkv %d hd %d", H, I, V, L, nh,
                         nkv, hd);
    if (B <= 0 || T <= 0 || T > sp->max_pos)
        return AIL_ERROR(AIL_ERR_ARG, "batch %d x %d does not fit max_pos %d (max_position_embeddings, or "
                         "config.json's sliding_window when shorter)", B, T, sp->max_pos);
    if (gpu_comm_size(tp) != m->tp_size || m->tp_rank < 0 || m->tp_rank >= m->tp_size ||
        (tp && tp->rank != m->tp_rank))
        return AIL_ERROR(AIL_ERR_ARG, "tensor-parallel rank %d of %d does not match its communicator (%d ranks)",
                         m->tp_rank, m->tp_size, gpu_comm_size(tp));
    int qd = nh * hd, kd = nkv * hd;
    const int out[7] = {qd, kd, kd, H, I, I, H}, in[7] = {H, H, H, qd, H, H, I};

    CU(cudaStreamCreateWithFlags(&m->st, cudaStreamNonBlocking));
    CB(cublasCreate(&m->cb));
    CB(cublasSetStream(m->cb, m->st));
    // no TF32: fp32 mode must match the CPU; bf16 GEMMs use tensor cores with COMPUTE_32F anyway
    CB(cublasSetMathMode(m->cb, m->bf ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH));
    size_t ws = (size_t)32 << 20;
    DALLOC(m->ws, ws);
    CB(cublasSetWorkspace(m->cb, m->ws, ws));

    // adapters: shapes, ranks, offsets by region
    m->layers = (Layer *)calloc((size_t)L, sizeof *m->layers);
    if (!m->layers) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    size_t off = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (int l = 0; l < L; l++)
            for (int i = 0; i < GPU_LIN_COUNT; i++) {
                const GpuAdapterSpec *as = &sp->layers[l].lora[i];
                Adapter *a = &m->layers[l].ad[i];
                if (as->r <= 0) continue;
                int col = i != GPU_LIN_O && i != GPU_LIN_DOWN;
                if (pass == 0) {
                    if (as->m != out[i] || as->n != in[i] || !as->A || !as->B)
                        return AIL_ERROR(AIL_ERR_ARG, "adapter of layer %d module %d: shape (%d, %d), want (%d, %d)",
                                         l, i, as->m, as->n, out[i], in[i]);
                    a->m = as->m, a->n = as->n, a->r = as->r, a->scale = (float)as->scale;
                    m->rmax = a->r > m->rmax ? a->r : m->rmax;
                    if (col) a->offB = off, off += (size_t)a->m * a->r;  // sharded
                    else a->offA = off, off += (size_t)a->r * a->n;
                } else if (pass == 1 && col) {
                    a->offA = off, off += (size_t)a->r * a->n;  // replicated, tp-summed
                } else if (pass == 2 && !col) {
                    a->offB = off, off += (size_t)a->m * a->r;  // replicated, identical
                }
            }
        if (pass == 0) m->n_region0 = off;
        if (pass == 1) m->n_region01 = off;
    }
    m->np = off;
    size_t np = m->np ? m->np : 1;
    DALLOC(m->p, sizeof(float) * np);
    DALLOC(m->g, sizeof(float) * np);
    DALLOC(m->m1, sizeof(float) * np);
    DALLOC(m->m2, sizeof(float) * np);
    CU(cudaMemsetAsync(m->g, 0, sizeof(float) * np, m->st));
    CU(cudaMemsetAsync(m->m1, 0, sizeof(float) * np, m->st));
    CU(cudaMemsetAsync(m->m2, 0, sizeof(float) * np, m->st));
    if (m->bf) DALLOC(m->pc, m->es * np);
    else m->pc = m->p;
    for (int l = 0; l < L; l++)
        for (int i = 0; i < GPU_LIN_COUNT; i++) {
            const GpuAdapterSpec *as = &sp->layers[l].lora[i];
            const Adapter *a = &m->layers[l].ad[i];
            if (!a->r) continue;
            CU(cudaMemcpyAsync(m->p + a->offA, as->A, sizeof(float) * a->r * a->n, cudaMemcpyHostToDevice, m->st));
            CU(cudaMemcpyAsync(m->p + a->offB, as->B, sizeof(float) * a->m * a->r, cudaMemcpyHostToDevice, m->st));
        }
    if (m->bf) {
        k_to_bf16(m->pc, m->p, m->np, m->st);
        KCHECK();
    }

    // frozen weights
    size_t big = (size_t)V * H;
    for (int i = 0; i < GPU_LIN_COUNT; i++) big = (size_t)out[i] * in[i] > big ? (size_t)out[i] * in[i] : big;
    float *stage = NULL;  // freed at the end of create (or by gpu_model_free on failure)
    if (m->bf) CU(cudaMalloc((void **)&m->stage, sizeof(float) * big));
    stage = m->stage;
    DALLOC(m->embed, m->es * V * H);
    AIL_CHECK(upload_act(m, m->embed, sp->embed, (size_t)V * H, stage));
    if (sp->lm_head == sp->embed) m->lm_head = m->embed;
    else {
        DALLOC(m->lm_head, m->es * V * H);
        AIL_CHECK(upload_act(m, m->lm_head, sp->lm_head, (size_t)V * H, stage));
    }
    AIL_CHECK(upload_f32(m, &m->final_norm, sp->final_norm, H));
    // every position (generation goes beyond T: prompt + new tokens)
    m->max_pos = sp->max_pos;
    AIL_CHECK(upload_f32(m, &m->rope_cos, sp->rope_cos, (size_t)sp->max_pos * (hd / 2)));
    AIL_CHECK(upload_f32(m, &m->rope_sin, sp->rope_sin, (size_t)sp->max_pos * (hd / 2)));
    for (int l = 0; l < L; l++) {
        const GpuLayerSpec *ls = &sp->layers[l];
        Layer *ly = &m->layers[l];
        AIL_CHECK(upload_f32(m, &ly->ln1, ls->ln1, H));
        AIL_CHECK(upload_f32(m, &ly->ln2, ls->ln2, H));
        for (int i = 0; i < GPU_LIN_COUNT; i++) {
            DALLOC(ly->w[i], m->es * out[i] * in[i]);
            AIL_CHECK(upload_act(m, ly->w[i], ls->w[i], (size_t)out[i] * in[i], stage));
        }
        for (int i = 0; i < GPU_LIN_COUNT; i++)
            if (ls->bias[i]) AIL_CHECK(upload_f32(m, &ly->bias[i], ls->bias[i], out[i]));
    }

    // activations
    size_t es = m->es, n = (size_t)N, r = (size_t)(m->rmax ? m->rmax : 1), att = n * nh * T;
    DALLOC(m->x, es * (L + 1) * n * H);
    DALLOC(m->h1, es * L * n * H);
    DALLOC(m->qh, es * L * n * qd);
    DALLOC(m->kh, es * L * n * kd);
    DALLOC(m->vh, es * L * n * kd);
    DALLOC(m->y, es * L * n * qd);
    DALLOC(m->xm, es * L * n * H);
    DALLOC(m->h2, es * L * n * H);
    DALLOC(m->gg, es * L * n * I);
    DALLOC(m->uu, es * L * n * I);
    DALLOC(m->xf, es * n * H);
    DALLOC(m->lora_t, es * L * GPU_LIN_COUNT * n * r);
    DALLOC(m->rstd1, sizeof(float) * L * n);
    DALLOC(m->rstd2, sizeof(float) * L * n);
    DALLOC(m->rstdf, sizeof(float) * n);
    DALLOC(m->lse, sizeof(float) * L * n * nh);
    DALLOC(m->logits, sizeof(float) * n * V);
    DALLOC(m->dlogits, es * n * V);
    DALLOC(m->row_loss, sizeof(double) * n);
    DALLOC(m->red, sizeof(double) * 4);
    DALLOC(m->partials, sizeof(double) * 256);
    DALLOC(m->tokens, sizeof(int32_t) * n);
    DALLOC(m->labels, sizeof(int32_t) * n);
    CU(cudaMallocHost((void **)&m->h_tokens, sizeof(int32_t) * n));
    CU(cudaMallocHost((void **)&m->h_labels, sizeof(int32_t) * n));
    CU(cudaMallocHost((void **)&m->h_red, sizeof(double) * 4));
    DALLOC(m->mask, n);
    DALLOC(m->pos, sizeof(int32_t) * n);
    CU(cudaMallocHost((void **)&m->h_mask, n));
    CU(cudaMallocHost((void **)&m->h_pos, sizeof(int32_t) * n));
    // scratch (forward buffers are reused by the backward: dq, dk, dv go to qtok, ktok, vtok)
    DALLOC(m->qtok, es * n * qd);
    DALLOC(m->ktok, es * n * kd);
    DALLOC(m->vtok, es * n * kd);
    DALLOC(m->yh, es * n * qd);
    DALLOC(m->act, es * L * n * I);  // saved per layer: the backward needs no SwiGLU recompute
    if (m->tp_size > 1) DALLOC(m->tmp, es * n * H);
    DALLOC(m->S, es * att);   // scores, then probabilities (in place)
    DALLOC(m->dP, es * att);  // dP, then dS (in place)
    DALLOC(m->dx, es * n * H);
    DALLOC(m->dh, es * n * H);
    DALLOC(m->dg, es * n * I);
    DALLOC(m->du, es * n * I);
    DALLOC(m->dy, es * n * qd);
    DALLOC(m->dqh, es * n * qd);
    DALLOC(m->dkh, es * n * kd);
    DALLOC(m->dvh, es * n * kd);
    DALLOC(m->dtb, es * n * r);
    // Keep every layer's probabilities when they fit in half of what is free: the
    // backward then neither recomputes S = QK^T nor its exponentials
    // (AILORA_GPU_STORE_P=0 / 1 forces the choice)
    m->att = att;
    size_t free_b = 0, total_b = 0;
    CU(cudaMemGetInfo(&free_b, &total_b));
    const char *keep_p = getenv("AILORA_GPU_STORE_P");
    int store = keep_p ? atoi(keep_p) > 0 : es * L * att <= free_b / 2;
    if (store) DALLOC(m->P_all, es * L * att);
    CU(cudaStreamSynchronize(m->st));
    if (m->stage) cudaFree(m->stage);
    m->stage = NULL;
    return AIL_OK;
}

static void gen_release(GpuModel *m);

int gpu_model_create(const GpuModelSpec *spec, GpuPrecision prec, int B, int T, GpuComm *tp, GpuModel **out) {
    *out = NULL;
    GpuModel *m = (GpuModel *)calloc(1, sizeof *m);
    if (!m) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    int rc = create(m, spec, prec, B, T, tp);
    const char *pe = getenv("AILORA_GPU_PROFILE");
    if (rc == AIL_OK && pe && atoi(pe) > 0) {
        m->prof = 1;
        for (int i = 0; i < PROF_EVENTS && rc == AIL_OK; i++)
            if (cudaEventCreate(&m->prof_ev[i]) != cudaSuccess) rc = AIL_ERROR(AIL_ERR_LIB, "cudaEventCreate failed");
    }
    if (rc != AIL_OK) {
        gpu_model_free(m);
        return rc;
    }
    *out = m;
    return AIL_OK;
}

void gpu_model_free(GpuModel *m) {
    if (!m) return;
    if (m->st) cudaStreamSynchronize(m->st);
    prof_report(m);
    for (int i = 0; m->prof && i < PROF_EVENTS; i++)
        if (m->prof_ev[i]) cudaEventDestroy(m->prof_ev[i]);
    gen_release(m);
    for (int i = 0; i < m->nallocs; i++) cudaFree(m->allocs[i]);
    if (m->stage) cudaFree(m->stage);
    free(m->allocs);
    if (m->h_tokens) cudaFreeHost(m->h_tokens);
    if (m->h_labels) cudaFreeHost(m->h_labels);
    if (m->h_mask) cudaFreeHost(m->h_mask);
    if (m->h_pos) cudaFreeHost(m->h_pos);
    if (m->h_red) cudaFreeHost(m->h_red);
    if (m->cb) cublasDestroy(m->cb);
    if (m->st) cudaStreamDestroy(m->st);
    free(m->layers);
    free(m);
}

size_t gpu_model_bytes(const GpuModel *m) { return m ? m->bytes : 0; }

/* ---- forward --------------------------------------------------------------------------- */

static int target_of(const int32_t *labels, int n, int T) { return (n % T) + 1 < T ? labels[n + 1] : -100; }

/* out (N, m) = in W^T (+ bias) (+ s (in A^T) B^T): a column-parallel linear */
static int column_fwd(GpuModel *M, int l, int lin, const void *in, void *out, int mo, int ni) {
    Layer *ly = &M->layers[l];
    prof(M, prof_fwd_lin[lin]);
    AIL_CHECK(linear_fwd(M, out, in, ly->w[lin], mo, ni, 0.f));
    if (ly->bias[lin]) {
        k_add_bias(M->bf, out, ly->bias[lin], M->N, mo, M->st);
        KCHECK();
    }
    const Adapter *a = &ly->ad[lin];
    if (!a->r) return AIL_OK;
    void *t = at(M->lora_t, ((size_t)l * GPU_LIN_COUNT + lin) * M->N * M->rmax, M->es);
    prof(M, "fwd lora");
    AIL_CHECK(lora_t(M, a, in, t));
    return lora_out(M, a, t, out);
}

/* res_out (N, H) = res_in + in_loc W_loc^T (+ s t B^T, t = allreduce(in_loc A_loc^T)) (+ b):
 * a row-parallel linear added to the residual. The partial products are summed over
 * tp; the adapter's output is added on tp rank 0 only so the sum counts it once, the
 * bias (LLaMA's o_proj and down_proj ones) after the sum. */
static int row_fwd(GpuModel *M, int l, int lin, const void *in, int ni, const void *res_in, void *res_out) {
    Layer *ly = &M->layers[l];
    const Adapter *a = &ly->ad[lin];
    const float *bias = ly->bias[lin];
    int H = M->H;
    size_t nH = (size_t)M->N * H;
    void *t = at(M->lora_t, ((size_t)l * GPU_LIN_COUNT + lin) * M->N * M->rmax, M->es);
    prof(M, prof_fwd_lin[lin]);
    if (M->tp_size == 1) {
        CU(cudaMemcpyAsync(res_out, res_in, M->es * nH, cudaMemcpyDeviceToDevice, M->st));
        AIL_CHECK(linear_fwd(M, res_out, in, ly->w[lin], H, ni, 1.f));
        if (a->r) {
            prof(M, "fwd lora");
            AIL_CHECK(lora_t(M, a, in, t));
            AIL_CHECK(lora_out(M, a, t, res_out));
        }
        if (bias) {
            k_add_bias(M->bf, res_out, bias, M->N, H, M->st);
            KCHECK();
        }
        return AIL_OK;
    }
    AIL_CHECK(linear_fwd(M, M->tmp, in, ly->w[lin], H, ni, 0.f));
    if (a->r) {
        AIL_CHECK(lora_t(M, a, in, t));
        AIL_CHECK(allreduce(M, M->tp, t, (size_t)M->N * a->r, 0));  // t_full: kept for backward's dB
        if (M->tp_rank == 0) AIL_CHECK(lora_out(M, a, t, M->tmp));
    }
    AIL_CHECK(allreduce(M, M->tp, M->tmp, nH, 0));
    if (bias) {
        k_add_bias(M->bf, M->tmp, bias, M->N, H, M->st);
        KCHECK();
    }
    k_add(M->bf, res_out, res_in, M->tmp, nH, M->st);
    KCHECK();
    return AIL_OK;
}

/* Attention, per (batch row b, kv head g), i = b * nkv + g the GEMM batch index:
 * the group's queries Q (T * group, hd) in (position, head) row order, K, V (T, hd),
 * scores S (T * group, T) with row stride T. Block-causal: positions split into C
 * chunks of Tc; chunk c's query rows [c Tc group, (c+1) Tc group) only meet keys
 * [0, (c+1) Tc), so each GEMM runs per chunk over that trapezoid and skips
 * (C - 1) / (2 C) of the T x T work and traffic (the softmax masks the rest). */
typedef struct {
    int group, batch, C, Tc;
    long long sq, sk, ss;
    float scale;
} AttnDims;

static AttnDims attn_dims(const GpuModel *M) {
    AttnDims d;
    d.group = M->nh / M->nkv, d.batch = M->B * M->nkv;
    // more chunks skip more of the masked half ((C - 1) / 2C) but make smaller GEMMs
    int T = M->T;
    d.C = T % 8 == 0 && T >= 1024 ? 8 : T % 4 == 0 && T >= 32 ? 4 : T % 2 == 0 && T >= 16 ? 2 : 1;
    if (M->chunks > 0 && T % M->chunks == 0) d.C = M->chunks;  // AILORA_GPU_ATTN_CHUNKS
    d.Tc = M->T / d.C;
    d.sq = (long long)d.group * M->T * M->hd, d.sk = (long long)M->T * M->hd;
    d.ss = (long long)d.group * M->T * M->T;
    d.scale = (float)(1.0 / sqrt((double)M->hd));
    return d;
}

/* row offset (elements) of chunk c in Q-like (ld hd) and S-like (ld T) buffers */
static size_t qrow(const GpuModel *M, const AttnDims *d, int c) { return (size_t)c * d->Tc * d->group * M->hd; }
static size_t srow(const GpuModel *M, const AttnDims *d, int c) { return (size_t)c * d->Tc * d->group * M->T; }

/* X (T group, T) = alpha A (T group, hd) Bk^T over the trapezoid: S = scale Q K^T or
 * dP = dY V^T, written in the activation type (bf16 scores as HF's eager
 * attention; float32 accumulation inside the GEMM, softmax in float32) */
static int attn_qk(GpuModel *M, const AttnDims *d, float alpha, const void *A, const void *Bk, void *X) {
    int hd = M->hd, T = M->T, mc = d->Tc * d->group;
    for (int c = 0; c < d->C; c++)
        AIL_CHECK(gemm_batched(M, 0, 1, mc, (c + 1) * d->Tc, hd, alpha, at((void *)A, qrow(M, d, c), M->es), M->dt,
                               hd, d->sq, Bk, M->dt, hd, d->sk, 0.f, at(X, srow(M, d, c), M->es), M->dt, T, d->ss,
                               d->batch));
    return AIL_OK;
}

/* Y (T group, hd) = alpha X (T group, T) Bv (T, hd) over the trapezoid: Y = P V, dQ = scale dS K */
static int attn_xv(GpuModel *M, const AttnDims *d, float alpha, const void *X, const void *Bv, void *Y) {
    int hd = M->hd, T = M->T, mc = d->Tc * d->group;
    for (int c = 0; c < d->C; c++)
        AIL_CHECK(gemm_batched(M, 0, 0, mc, hd, (c + 1) * d->Tc, alpha, at((void *)X, srow(M, d, c), M->es), M->dt,
                               T, d->ss, Bv, M->dt, hd, d->sk, 0.f, at(Y, qrow(M, d, c), M->es), M->dt, hd, d->sq,
                               d->batch));
    return AIL_OK;
}

/* Z (T, hd) = alpha X^T (T, T group) A (T group, hd): dV = P^T dY, dK = scale dS^T Q.
 * The last chunk covers every key and goes first with beta 0; the others add to
 * their key prefix. The K dimension runs over the group: the GQA sum. */
static int attn_xtq(GpuModel *M, const AttnDims *d, float alpha, const void *X, const void *A, void *Z) {
    int hd = M->hd, T = M->T, mc = d->Tc * d->group;
    for (int c = d->C - 1; c >= 0; c--)
        AIL_CHECK(gemm_batched(M, 1, 0, (c + 1) * d->Tc, hd, mc, alpha, at((void *)X, srow(M, d, c), M->es), M->dt,
                               T, d->ss, at((void *)A, qrow(M, d, c), M->es), M->dt, hd, d->sq,
                               c == d->C - 1 ? 0.f : 1.f, Z, M->dt, hd, d->sk, d->batch));
    return AIL_OK;
}

static int attention_fwd(GpuModel *M, int l, void *y) {
    size_t qo = (size_t)l * M->N * M->nh * M->hd, ko = (size_t)l * M->N * M->nkv * M->hd;
    const void *q = at(M->qh, qo, M->es), *k = at(M->kh, ko, M->es), *v = at(M->vh, ko, M->es);
    float *lse = M->lse + (size_t)l * M->N * M->nh;
    AttnDims d = attn_dims(M);
    long rows = (long)M->N * M->nh;
    void *SP = M->P_all ? at(M->P_all, (size_t)l * M->att, M->es) : M->S;  // this layer's P, when kept
    prof(M, "fwd attn S = QK^T");
    AIL_CHECK(attn_qk(M, &d, d.scale, q, k, SP));
    if (M->masked) k_attn_mask(M->bf, SP, M->mask, rows, M->T, d.group, M->nh, M->st);
    prof(M, "fwd attn softmax");
    k_softmax_fwd(M->bf, SP, lse, rows, M->T, d.group, d.Tc, M->st);  // S -> P in place
    KCHECK();
    prof(M, "fwd attn PV");
    AIL_CHECK(attn_xv(M, &d, 1.f, SP, v, M->yh));  // yh = P V
    prof(M, "fwd attn layout");
    k_heads_to_tok(M->bf, y, M->yh, NULL, NULL, NULL, M->B, M->T, M->nh, M->hd, d.group, 0, M->st);
    KCHECK();
    return AIL_OK;
}

static int forward(GpuModel *M, const int32_t *tokens, const int32_t *labels, double *loss_sum, long *scored) {
    int N = M->N, T = M->T, H = M->H, I = M->I, V = M->V, L = M->L, nh = M->nh, nkv = M->nkv, hd = M->hd;
    int qd = nh * hd, kd = nkv * hd;
    size_t es = M->es;
    for (int i = 0; i < N; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return AIL_ERROR(AIL_ERR_ARG, "token id %d outside the vocabulary (%d)", tokens[i], V);
    if (labels)
        for (int n = 0; n < N; n++) {
            int t = target_of(labels, n, T);
            if (t != -100 && (t < 0 || t >= V))
                return AIL_ERROR(AIL_ERR_ARG, "label %d outside the vocabulary (%d) and not -100", t, V);
        }
    memcpy(M->h_tokens, tokens, sizeof(int32_t) * N);  // the previous step synchronized: staging is free
    CU(cudaMemcpyAsync(M->tokens, M->h_tokens, sizeof(int32_t) * N, cudaMemcpyHostToDevice, M->st));
    if (labels) {
        memcpy(M->h_labels, labels, sizeof(int32_t) * N);
        // padding: only real-to-real predictions are scored (target_of reads labels[n + 1])
        for (int n = 0; M->masked && n < N; n++)
            if ((n % T) + 1 < T && (!M->h_mask[n] || !M->h_mask[n + 1])) M->h_labels[n + 1] = -100;
        CU(cudaMemcpyAsync(M->labels, M->h_labels, sizeof(int32_t) * N, cudaMemcpyHostToDevice, M->st));
    }
    if (M->masked) {
        CU(cudaMemcpyAsync(M->mask, M->h_mask, (size_t)N, cudaMemcpyHostToDevice, M->st));
        CU(cudaMemcpyAsync(M->pos, M->h_pos, sizeof(int32_t) * N, cudaMemcpyHostToDevice, M->st));
    }
    M->have_labels = 0;
    prof_flush(M);
    M->prof_steps++;
    prof(M, "fwd embed");
    k_embed(M->bf, M->x, M->embed, M->tokens, N, H, M->st);
    KCHECK();
    for (int l = 0; l < L; l++) {
        size_t o = (size_t)l * N;
        void *x = at(M->x, o * H, es), *xn = at(M->x, (o + N) * H, es), *h1 = at(M->h1, o * H, es);
        void *xm = at(M->xm, o * H, es), *h2 = at(M->h2, o * H, es), *y = at(M->y, o * qd, es);
        void *g = at(M->gg, o * I, es), *u = at(M->uu, o * I, es);
        prof(M, "fwd rmsnorm");
        k_rmsnorm_fwd(M->bf, h1, M->rstd1 + o, x, M->layers[l].ln1, N, H, M->eps, M->st);
        KCHECK();
        AIL_CHECK(column_fwd(M, l, GPU_LIN_Q, h1, M->qtok, qd, H));
        AIL_CHECK(column_fwd(M, l, GPU_LIN_K, h1, M->ktok, kd, H));
        AIL_CHECK(column_fwd(M, l, GPU_LIN_V, h1, M->vtok, kd, H));
        int group = nh / nkv;
        prof(M, "fwd rope + head layout");
        const int32_t *pos = M->masked ? M->pos : NULL;
        k_tok_to_heads(M->bf, at(M->qh, o * qd, es), M->qtok, M->rope_cos, M->rope_sin, pos, M->B, T, nh, hd, group,
                       1, M->st);
        k_tok_to_heads(M->bf, at(M->kh, o * kd, es), M->ktok, M->rope_cos, M->rope_sin, pos, M->B, T, nkv, hd, 1, 1,
                       M->st);
        k_tok_to_heads(M->bf, at(M->vh, o * kd, es), M->vtok, NULL, NULL, NULL, M->B, T, nkv, hd, 1, 0, M->st);
        KCHECK();
        prof(M, "fwd attention");
        AIL_CHECK(attention_fwd(M, l, y));
        AIL_CHECK(row_fwd(M, l, GPU_LIN_O, y, qd, x, xm));
        prof(M, "fwd rmsnorm");
        k_rmsnorm_fwd(M->bf, h2, M->rstd2 + o, xm, M->layers[l].ln2, N, H, M->eps, M->st);
        KCHECK();
        AIL_CHECK(column_fwd(M, l, GPU_LIN_GATE, h2, g, I, H));
        AIL_CHECK(column_fwd(M, l, GPU_LIN_UP, h2, u, I, H));
        void *act = at(M->act, o * I, es);
        prof(M, "fwd swiglu");
        k_swiglu_fwd(M->bf, act, g, u, (size_t)N * I, M->st);
        KCHECK();
        AIL_CHECK(row_fwd(M, l, GPU_LIN_DOWN, act, I, xm, xn));
    }
    prof(M, "fwd final norm + lm_head");
    k_rmsnorm_fwd(M->bf, M->xf, M->rstdf, at(M->x, (size_t)L * N * H, es), M->final_norm, N, H, M->eps, M->st);
    KCHECK();
    // logits in float32: the cross entropy reads them at full precision
    AIL_CHECK(gemm(M, 0, 1, N, V, H, 1.f, M->xf, M->dt, H, M->lm_head, M->dt, H, 0.f, M->logits, CUDA_R_32F, V));
    *loss_sum = 0.0, *scored = 0;
    if (!labels) {
        CU(cudaStreamSynchronize(M->st));
        return AIL_OK;
    }
    prof(M, "fwd cross entropy");
    k_cross_entropy(M->bf, M->dlogits, M->row_loss, M->logits, M->labels, N, T, V, M->st);
    k_loss_reduce(M->red, M->row_loss, M->labels, N, T, M->st);
    KCHECK();
    prof(M, NULL);
    CU(cudaMemcpyAsync(M->h_red, M->red, sizeof(double) * 2, cudaMemcpyDeviceToHost, M->st));
    CU(cudaStreamSynchronize(M->st));  // the one host sync of a step: the loss
    *loss_sum = M->h_red[0], *scored = (long)M->h_red[1];
    M->have_labels = 1;
    return AIL_OK;
}

int gpu_forward(GpuModel *m, const int32_t *tokens, const int32_t *labels, double *loss_sum, long *scored) {
    return forward(m, tokens, labels, loss_sum, scored);
}

int gpu_set_mask(GpuModel *m, const int8_t *mask) {
    int N = m->N, T = m->T;
    m->masked = 0;
    if (!mask) return AIL_OK;
    for (int i = 0; i < N; i++)
        if (mask[i] != 0 && mask[i] != 1)
            return AIL_ERROR(AIL_ERR_ARG, "attention mask value %d at row %d, position %d (0 or 1 expected)",
                             mask[i], i / T, i % T);
    // staging is free here: the previous forward synchronized (and the backward reads only device copies)
    for (int b = 0; b < m->B; b++)
        for (int t = 0, c = 0; t < T; t++) {
            int i = b * T + t;
            c += m->h_mask[i] = mask[i];
            m->h_pos[i] = c > 0 ? c - 1 : 0;  // HF: max(cumsum(mask) - 1, 0)
        }
    m->masked = 1;
    return AIL_OK;
}

/* ---- backward -------------------------------------------------------------------------- */

/* din (=, or += when accumulate) dout W, plus the adapter's gradients (din NULL:
 * only the adapter's gradients) */
static int lin_bwd(GpuModel *M, int l, int lin, const void *in, const void *dout, void *din, int mo, int ni,
                   int accumulate) {
    Layer *ly = &M->layers[l];
    prof(M, prof_bwd_lin[lin]);
    if (din) AIL_CHECK(linear_bwd_in(M, din, dout, ly->w[lin], mo, ni, 1.f, accumulate ? 1.f : 0.f));
    const Adapter *a = &ly->ad[lin];
    if (!a->r) return AIL_OK;
    prof(M, "bwd lora");
    const void *t = at(M->lora_t, ((size_t)l * GPU_LIN_COUNT + lin) * M->N * M->rmax, M->es);
    return lora_bwd(M, a, in, t, dout, din);
}

/* from dy (N, qd) token-major: dq (N, qd), dk, dv (N, kd) token-major, un-roped */
static int attention_bwd(GpuModel *M, int l, void *dq, void *dk, void *dv) {
    size_t qo = (size_t)l * M->N * M->nh * M->hd, ko = (size_t)l * M->N * M->nkv * M->hd;
    const void *q = at(M->qh, qo, M->es), *k = at(M->kh, ko, M->es), *v = at(M->vh, ko, M->es);
    const float *lse = M->lse + (size_t)l * M->N * M->nh;
    AttnDims d = attn_dims(M);
    int T = M->T, hd = M->hd, B = M->B;
    long rows = (long)M->N * M->nh;
    void *dyh = M->yh;  // the forward's head-major scratch
    prof(M, "bwd attn layout");
    k_tok_to_heads(M->bf, dyh, M->dy, NULL, NULL, NULL, B, T, M->nh, hd, d.group, 0, M->st);
    KCHECK();
    const void *P = M->P_all ? at(M->P_all, (size_t)l * M->att, M->es) : M->S, *dS = M->dP;
    if (!M->P_all) {
        prof(M, "bwd attn S = QK^T again");
        AIL_CHECK(attn_qk(M, &d, d.scale, q, k, M->S));  // S again (not kept per layer)
        if (M->masked) k_attn_mask(M->bf, M->S, M->mask, rows, T, d.group, M->nh, M->st);
    }
    prof(M, "bwd attn dP = dY V^T");
    AIL_CHECK(attn_qk(M, &d, 1.f, dyh, v, M->dP));   // dP = dY V^T
    prof(M, "bwd attn softmax");
    if (M->P_all) k_softmax_bwd_p(M->bf, P, M->dP, rows, T, d.group, d.Tc, M->st);  // dP -> dS in place
    else k_softmax_bwd(M->bf, M->S, M->dP, lse, rows, T, d.group, d.Tc, M->st);    // S -> P, dP -> dS
    KCHECK();
    prof(M, "bwd attn dV, dQ, dK");
    AIL_CHECK(attn_xtq(M, &d, 1.f, P, dyh, M->dvh));       // dV = P^T dY
    AIL_CHECK(attn_xv(M, &d, d.scale, dS, k, M->dqh));     // dQ = scale dS K
    AIL_CHECK(attn_xtq(M, &d, d.scale, dS, q, M->dkh));    // dK = scale dS^T Q
    prof(M, "bwd attn layout");
    const int32_t *pos = M->masked ? M->pos : NULL;
    k_heads_to_tok(M->bf, dq, M->dqh, M->rope_cos, M->rope_sin, pos, B, T, M->nh, hd, d.group, 1, M->st);
    k_heads_to_tok(M->bf, dk, M->dkh, M->rope_cos, M->rope_sin, pos, B, T, M->nkv, hd, 1, 1, M->st);
    k_heads_to_tok(M->bf, dv, M->dvh, NULL, NULL, NULL, B, T, M->nkv, hd, 1, 0, M->st);
    KCHECK();
    return AIL_OK;
}

static int backward(GpuModel *M, double loss_scale) {
    if (!M->have_labels) return AIL_ERROR(AIL_ERR_ARG, "gpu_backward without a gpu_forward with labels");
    int N = M->N, H = M->H, I = M->I, V = M->V, L = M->L, qd = M->nh * M->hd, kd = M->nkv * M->hd;
    size_t es = M->es;
    // dh = loss_scale (softmax - onehot) lm_head: the scale rides on the GEMM's alpha
    prof(M, "bwd lm_head + final norm");
    AIL_CHECK(linear_bwd_in(M, M->dh, M->dlogits, M->lm_head, V, H, (float)loss_scale, 0.f));
    k_rmsnorm_bwd(M->bf, M->dx, NULL, M->dh, at(M->x, (size_t)L * N * H, es), M->rstdf, M->final_norm, N, H, M->st);
    KCHECK();
    void *dq = M->qtok, *dk = M->ktok, *dv = M->vtok;
    for (int l = L - 1; l >= 0; l--) {
        Layer *ly = &M->layers[l];
        size_t o = (size_t)l * N;
        void *x = at(M->x, o * H, es), *h1 = at(M->h1, o * H, es), *xm = at(M->xm, o * H, es);
        void *h2 = at(M->h2, o * H, es), *y = at(M->y, o * qd, es);
        void *g = at(M->gg, o * I, es), *u = at(M->uu, o * I, es);
        // MLP: x_next = xm + act Wd^T, act = silu(g) * u; dx holds d x_next
        AIL_CHECK(lin_bwd(M, l, GPU_LIN_DOWN, at(M->act, o * I, es), M->dx, M->dg, H, I, 0));  // row-parallel: exact locally
        prof(M, "bwd swiglu");
        k_swiglu_bwd(M->bf, M->dg, M->du, g, u, (size_t)N * I, M->st);
        KCHECK();
        AIL_CHECK(lin_bwd(M, l, GPU_LIN_GATE, h2, M->dg, M->dh, I, H, 0));
        AIL_CHECK(lin_bwd(M, l, GPU_LIN_UP, h2, M->du, M->dh, I, H, 1));
        prof(M, "bwd rmsnorm (+ tp all-reduce)");
        AIL_CHECK(allreduce(M, M->tp, M->dh, (size_t)N * H, 0));  // column-parallel: partial dh2
        k_rmsnorm_bwd(M->bf, M->dx, M->dx, M->dh, xm, M->rstd2 + o, ly->ln2, N, H, M->st);  // dx = dxm
        KCHECK();
        // attention: xm = x + y Wo^T
        AIL_CHECK(lin_bwd(M, l, GPU_LIN_O, y, M->dx, M->dy, H, qd, 0));
        prof(M, "bwd attention");
        AIL_CHECK(attention_bwd(M, l, dq, dk, dv));
        // below layer 0 nothing trains: only the adapters' own gradients there
        void *din = l > 0 ? M->dh : NULL;
        AIL_CHECK(lin_bwd(M, l, GPU_LIN_Q, h1, dq, din, qd, H, 0));
        AIL_CHECK(lin_bwd(M, l, GPU_LIN_K, h1, dk, din, kd, H, 1));
        AIL_CHECK(lin_bwd(M, l, GPU_LIN_V, h1, dv, din, kd, H, 1));
        if (!din) break;
        prof(M, "bwd rmsnorm (+ tp all-reduce)");
        AIL_CHECK(allreduce(M, M->tp, M->dh, (size_t)N * H, 0));  // partial dh1
        k_rmsnorm_bwd(M->bf, M->dx, M->dx, M->dh, x, M->rstd1 + o, ly->ln1, N, H, M->st);
        KCHECK();
    }
    prof(M, NULL);
    return AIL_OK;
}

int gpu_backward(GpuModel *m, double loss_scale) { return backward(m, loss_scale); }

/* ---- gradients and AdamW ------------------------------------------------------------------ */

int gpu_zero_grads(GpuModel *m) {
    if (m->np) CU(cudaMemsetAsync(m->g, 0, sizeof(float) * m->np, m->st));
    return AIL_OK;
}

int gpu_grads_allreduce(GpuModel *m, GpuComm *dp) {
    AIL_CHECK(allreduce(m, m->tp, m->g + m->n_region0, m->n_region01 - m->n_region0, 1));  // column-parallel A
    AIL_CHECK(allreduce(m, dp, m->g, m->np, 1));
    return AIL_OK;
}

int gpu_grad_norm(GpuModel *m, double *norm) {
    k_sumsq(m->red + 2, m->partials, m->g, m->n_region0, m->st);
    KCHECK();
    AIL_CHECK(allreduce(m, m->tp, m->red + 2, 1, 2));  // sharded: every shard once
    k_sumsq(m->red + 3, m->partials, m->g + m->n_region0, m->np - m->n_region0, m->st);
    KCHECK();
    CU(cudaMemcpyAsync(m->h_red + 2, m->red + 2, sizeof(double) * 2, cudaMemcpyDeviceToHost, m->st));
    CU(cudaStreamSynchronize(m->st));
    *norm = sqrt(m->h_red[2] + m->h_red[3]);
    return AIL_OK;
}

int gpu_adamw_step(GpuModel *m, const GpuAdamW *c, long step, double grad_norm) {
    if (step < 1) return AIL_ERROR(AIL_ERR_ARG, "AdamW step %ld (1-based)", step);
    double clip = 1.0;
    if (c->grad_clip > 0) clip = fmin(1.0, c->grad_clip / (grad_norm + 1e-6));
    double lr = c->lr;
    double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    k_adamw(m->bf, m->p, m->bf ? m->pc : NULL, m->g, m->m1, m->m2, m->np, (float)clip,
            (float)(1.0 - lr * c->weight_decay), (float)c->beta1, (float)c->beta2, (float)c->eps,
            (float)(lr / bc1), (float)sqrt(bc2), m->st);
    KCHECK();
    return AIL_OK;
}

/* ---- adapter transfers ------------------------------------------------------------------- */

static int adapter_of(GpuModel *m, int layer, int lin, const Adapter **a) {
    if (layer < 0 || layer >= m->L || lin < 0 || lin >= GPU_LIN_COUNT || !m->layers[layer].ad[lin].r)
        return AIL_ERROR(AIL_ERR_ARG, "no adapter on layer %d module %d", layer, lin);
    *a = &m->layers[layer].ad[lin];
    return AIL_OK;
}

static int down(GpuModel *m, float *dst, const float *src, size_t n) {
    if (dst) CU(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyDeviceToHost, m->st));
    return AIL_OK;
}

static int up(GpuModel *m, float *dst, const float *src, size_t n) {
    if (src) CU(cudaMemcpyAsync(dst, src, sizeof(float) * n, cudaMemcpyHostToDevice, m->st));
    return AIL_OK;
}

int gpu_adapter_download(GpuModel *m, int layer, int lin, float *A, float *B, float *mA, float *vA, float *mB,
                         float *vB) {
    const Adapter *a;
    AIL_CHECK(adapter_of(m, layer, lin, &a));
    size_t na = (size_t)a->r * a->n, nb = (size_t)a->m * a->r;
    AIL_CHECK(down(m, A, m->p + a->offA, na));
    AIL_CHECK(down(m, B, m->p + a->offB, nb));
    AIL_CHECK(down(m, mA, m->m1 + a->offA, na));
    AIL_CHECK(down(m, vA, m->m2 + a->offA, na));
    AIL_CHECK(down(m, mB, m->m1 + a->offB, nb));
    AIL_CHECK(down(m, vB, m->m2 + a->offB, nb));
    CU(cudaStreamSynchronize(m->st));
    return AIL_OK;
}

int gpu_adapter_upload(GpuModel *m, int layer, int lin, const float *A, const float *B, const float *mA,
                       const float *vA, const float *mB, const float *vB) {
    const Adapter *a;
    AIL_CHECK(adapter_of(m, layer, lin, &a));
    size_t na = (size_t)a->r * a->n, nb = (size_t)a->m * a->r;
    AIL_CHECK(up(m, m->p + a->offA, A, na));
    AIL_CHECK(up(m, m->p + a->offB, B, nb));
    AIL_CHECK(up(m, m->m1 + a->offA, mA, na));
    AIL_CHECK(up(m, m->m2 + a->offA, vA, na));
    AIL_CHECK(up(m, m->m1 + a->offB, mB, nb));
    AIL_CHECK(up(m, m->m2 + a->offB, vB, nb));
    if (m->bf) {  // the GEMMs read the bf16 copies
        k_to_bf16(at(m->pc, a->offA, m->es), m->p + a->offA, na, m->st);
        k_to_bf16(at(m->pc, a->offB, m->es), m->p + a->offB, nb, m->st);
        KCHECK();
    }
    CU(cudaStreamSynchronize(m->st));  // the host buffers may be freed on return
    return AIL_OK;
}

int gpu_adapter_grads(GpuModel *m, int layer, int lin, float *dA, float *dB) {
    const Adapter *a;
    AIL_CHECK(adapter_of(m, layer, lin, &a));
    AIL_CHECK(down(m, dA, m->g + a->offA, (size_t)a->r * a->n));
    AIL_CHECK(down(m, dB, m->g + a->offB, (size_t)a->m * a->r));
    CU(cudaStreamSynchronize(m->st));
    return AIL_OK;
}

/* ---- greedy decoding with a KV cache ---------------------------------------------------- */

/* Shared memory of k_decode_attn, (hd + S) floats: within the opt-in limit of
 * sm_80 (163 KiB) and sm_90 (227 KiB), so S up to ~40k slots. */
#define GEN_SMEM_MAX ((size_t)160 * 1024)

static void gen_release(GpuModel *m) {
    for (int i = 0; i < m->gen.nmem; i++) cudaFree(m->gen.mem[i]);
    if (m->gen.h_valid) cudaFreeHost(m->gen.h_valid);
    if (m->gen.h_in) cudaFreeHost(m->gen.h_in);
    if (m->gen.h_next) cudaFreeHost(m->gen.h_next);
    m->bytes -= m->gen.bytes;
    memset(&m->gen, 0, sizeof m->gen);
}

static int gen_alloc(GpuModel *m, void **p, size_t bytes) {
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 16);
    if (e != cudaSuccess)
        return AIL_ERROR(AIL_ERR_MEM, "cudaMalloc of %zu bytes for decoding: %s", bytes, cudaGetErrorString(e));
    m->gen.mem[m->gen.nmem++] = *p;
    m->gen.bytes += bytes, m->bytes += bytes;
    return AIL_OK;
}

#define GALLOC(ptr, bytes) AIL_CHECK(gen_alloc(m, (void **)&(ptr), (bytes)))

/* A cache of at least B rows x S slots and work space for N tokens per pass; a
 * smaller one is freed and replaced (its contents are not kept: every call
 * starts with a prefill). */
static int gen_alloc_all(GpuModel *m, int B, int S, int N) {
    m->gen.B = B, m->gen.S = S, m->gen.N = N;
    size_t es = m->es, n = (size_t)N, kd = (size_t)m->nkv * m->hd, qd = (size_t)m->nh * m->hd;
    size_t cache = (size_t)m->L * B * S * kd, r = (size_t)(m->rmax ? m->rmax : 1);
    GALLOC(m->gen.kc, es * cache);
    GALLOC(m->gen.vc, es * cache);
    // never-written slots are only ever skipped (probability 0), but keep them finite anyway
    CU(cudaMemsetAsync(m->gen.kc, 0, es * cache, m->st));
    CU(cudaMemsetAsync(m->gen.vc, 0, es * cache, m->st));
    GALLOC(m->gen.valid, (size_t)B * S);
    GALLOC(m->gen.in, sizeof(int32_t) * 4 * n);
    GALLOC(m->gen.next, sizeof(int32_t) * B);
    GALLOC(m->gen.x, es * n * m->H);
    GALLOC(m->gen.h, es * n * m->H);
    GALLOC(m->gen.q, es * n * qd);
    GALLOC(m->gen.k, es * n * kd);
    GALLOC(m->gen.v, es * n * kd);
    GALLOC(m->gen.y, es * n * qd);
    GALLOC(m->gen.g, es * n * m->I);
    GALLOC(m->gen.u, es * n * m->I);
    GALLOC(m->gen.t, es * n * r);
    if (m->tp_size > 1) GALLOC(m->gen.tmp, es * n * m->H);
    GALLOC(m->gen.rstd, sizeof(float) * n);
    GALLOC(m->gen.logits, sizeof(float) * B * m->V);
    CU(cudaMallocHost((void **)&m->gen.h_valid, (size_t)B * S));
    CU(cudaMallocHost((void **)&m->gen.h_in, sizeof(int32_t) * 4 * n));
    CU(cudaMallocHost((void **)&m->gen.h_next, sizeof(int32_t) * B));
    m->gen.ready = 1;
    return AIL_OK;
}

static int gen_reserve(GpuModel *m, int B, int S, int N) {
    if (m->gen.ready && B <= m->gen.B && S <= m->gen.S && N <= m->gen.N) return AIL_OK;
    B = B > m->gen.B ? B : m->gen.B, S = S > m->gen.S ? S : m->gen.S, N = N > m->gen.N ? N : m->gen.N;
    if (m->st) CU(cudaStreamSynchronize(m->st));
    gen_release(m);
    int rc = gen_alloc_all(m, B, S, N);
    if (rc != AIL_OK) gen_release(m);  // all or nothing: the next call starts afresh
    return rc;
}

/* out (n, mo) = in (n, ni) W^T (+ bias) (+ s (in A^T) B^T): column_fwd for n tokens */
static int gen_column(GpuModel *M, int l, int lin, const void *in, void *out, int n, int mo, int ni) {
    const Layer *ly = &M->layers[l];
    AIL_CHECK(gemm(M, 0, 1, n, mo, ni, 1.f, in, M->dt, ni, ly->w[lin], M->dt, ni, 0.f, out, M->dt, mo));
    if (ly->bias[lin]) {
        k_add_bias(M->bf, out, ly->bias[lin], n, mo, M->st);
        KCHECK();
    }
    const Adapter *a = &ly->ad[lin];
    if (!a->r) return AIL_OK;
    AIL_CHECK(gemm(M, 0, 1, n, a->r, a->n, 1.f, in, M->dt, a->n, copyA(M, a), M->dt, a->n, 0.f, M->gen.t, M->dt,
                   a->r));  // t (n, r)
    return gemm(M, 0, 1, n, a->m, a->r, a->scale, M->gen.t, M->dt, a->r, copyB(M, a), M->dt, a->r, 1.f, out, M->dt,
                a->m);
}

/* x (n, H) += in (n, ni) W^T (+ s t B^T, t = in A^T summed over tp) (+ bias): row_fwd
 * for n tokens, in place on the residual */
static int gen_row(GpuModel *M, int l, int lin, const void *in, int ni, void *x, int n) {
    const Layer *ly = &M->layers[l];
    const Adapter *a = &ly->ad[lin];
    int H = M->H;
    void *t = M->gen.t, *acc = M->tp_size == 1 ? x : M->gen.tmp;
    AIL_CHECK(gemm(M, 0, 1, n, H, ni, 1.f, in, M->dt, ni, ly->w[lin], M->dt, ni, M->tp_size == 1 ? 1.f : 0.f, acc,
                   M->dt, H));
    if (a->r) {
        AIL_CHECK(gemm(M, 0, 1, n, a->r, a->n, 1.f, in, M->dt, a->n, copyA(M, a), M->dt, a->n, 0.f, t, M->dt, a->r));
        AIL_CHECK(allreduce(M, M->tp, t, (size_t)n * a->r, 0));  // t of the whole input
        if (M->tp_rank == 0)  // counted once in the sum
            AIL_CHECK(gemm(M, 0, 1, n, a->m, a->r, a->scale, t, M->dt, a->r, copyB(M, a), M->dt, a->r, 1.f, acc, M->dt,
                           a->m));
    }
    if (M->tp_size > 1) AIL_CHECK(allreduce(M, M->tp, acc, (size_t)n * H, 0));
    if (ly->bias[lin]) {
        k_add_bias(M->bf, acc, ly->bias[lin], n, H, M->st);
        KCHECK();
    }
    if (M->tp_size > 1) {
        k_add(M->bf, x, x, acc, (size_t)n * H, M->st);
        KCHECK();
    }
    return AIL_OK;
}

/* One pass of the n tokens staged in gen.in (ids, rows, slots, positions; uploaded)
 * through every layer, storing their keys and values in the cache; then the final
 * norm and the logits (nl, V) float32 of token rows first, first + stride, ...,
 * and their argmax into gen.next (nl), the same on every tp rank. */
static int gen_pass(GpuModel *M, int n, int first, int stride, int nl) {
    int H = M->H, I = M->I, V = M->V, nh = M->nh, nkv = M->nkv, hd = M->hd, qd = nh * hd, kd = nkv * hd, bf = M->bf;
    int N = M->gen.N, S = M->gen.S;
    const int32_t *tok = M->gen.in, *row = M->gen.in + N, *slot = M->gen.in + 2 * N, *pos = M->gen.in + 3 * N;
    float scale = (float)(1.0 / sqrt((double)hd));
    k_embed(bf, M->gen.x, M->embed, tok, n, H, M->st);  // x (n, H)
    KCHECK();
    for (int l = 0; l < M->L; l++) {
        const Layer *ly = &M->layers[l];
        size_t lo = (size_t)l * M->gen.B * S * kd;  // this layer's cache (B, S, kd)
        void *kc = at(M->gen.kc, lo, M->es), *vc = at(M->gen.vc, lo, M->es);
        k_rmsnorm_fwd(bf, M->gen.h, M->gen.rstd, M->gen.x, ly->ln1, n, H, M->eps, M->st);
        KCHECK();
        AIL_CHECK(gen_column(M, l, GPU_LIN_Q, M->gen.h, M->gen.q, n, qd, H));  // (n, nh*hd)
        AIL_CHECK(gen_column(M, l, GPU_LIN_K, M->gen.h, M->gen.k, n, kd, H));  // (n, nkv*hd)
        AIL_CHECK(gen_column(M, l, GPU_LIN_V, M->gen.h, M->gen.v, n, kd, H));
        k_rope_rows(bf, M->gen.q, M->rope_cos, M->rope_sin, pos, n, nh, hd, M->st);
        k_rope_rows(bf, M->gen.k, M->rope_cos, M->rope_sin, pos, n, nkv, hd, M->st);
        k_kv_store(bf, kc, vc, M->gen.k, M->gen.v, row, slot, n, S, kd, M->st);
        k_decode_attn(bf, M->gen.y, M->gen.q, kc, vc, M->gen.valid, row, slot, n, S, nh, nkv, hd, scale, M->st);
        KCHECK();  // y (n, nh*hd)
        AIL_CHECK(gen_row(M, l, GPU_LIN_O, M->gen.y, qd, M->gen.x, n));  // x += o(y)
        k_rmsnorm_fwd(bf, M->gen.h, M->gen.rstd, M->gen.x, ly->ln2, n, H, M->eps, M->st);
        KCHECK();
        AIL_CHECK(gen_column(M, l, GPU_LIN_GATE, M->gen.h, M->gen.g, n, I, H));  // (n, I)
        AIL_CHECK(gen_column(M, l, GPU_LIN_UP, M->gen.h, M->gen.u, n, I, H));
        k_swiglu_fwd(bf, M->gen.g, M->gen.g, M->gen.u, (size_t)n * I, M->st);  // in place: element-wise
        KCHECK();
        AIL_CHECK(gen_row(M, l, GPU_LIN_DOWN, M->gen.g, I, M->gen.x, n));  // x += down(act)
    }
    k_rmsnorm_fwd(bf, M->gen.h, M->gen.rstd, M->gen.x, M->final_norm, n, H, M->eps, M->st);
    KCHECK();
    // logits (nl, V) float32 of the wanted rows: a strided read of the normed rows
    AIL_CHECK(gemm(M, 0, 1, nl, V, H, 1.f, at(M->gen.h, (size_t)first * H, M->es), M->dt, stride * H, M->lm_head,
                   M->dt, H, 0.f, M->gen.logits, CUDA_R_32F, V));
    k_argmax(M->gen.next, M->gen.logits, nl, V, M->st);
    KCHECK();
    if (M->tp_size > 1) {  // the same tokens on every rank (their logits agree up to the all-reduces' rounding)
#ifdef AILORA_HAVE_NCCL
        NC(ncclBroadcast(M->gen.next, M->gen.next, nl, ncclInt32, 0, M->tp->nccl, M->st));
#else
        return AIL_ERROR(AIL_ERR_ARG, "collective over %d ranks without NCCL", M->tp_size);
#endif
    }
    CU(cudaMemcpyAsync(M->gen.h_next, M->gen.next, sizeof(int32_t) * nl, cudaMemcpyDeviceToHost, M->st));
    CU(cudaStreamSynchronize(M->st));  // the one host sync of a pass: nl token ids
    return AIL_OK;
}

void gpu_generate_free(GpuModel *m) {
    if (!m) return;
    if (m->st) cudaStreamSynchronize(m->st);
    gen_release(m);
}

/* Uploads the staged pass (n tokens) and the valid slots of rows 0..B-1. */
static int gen_upload(GpuModel *M, int n, int B) {
    size_t N = (size_t)M->gen.N;
    for (int k = 0; k < 4; k++)  // ids, rows, slots, positions at offsets 0, N, 2N, 3N
        CU(cudaMemcpyAsync(M->gen.in + k * N, M->gen.h_in + k * N, sizeof(int32_t) * n, cudaMemcpyHostToDevice,
                           M->st));
    CU(cudaMemcpyAsync(M->gen.valid, M->gen.h_valid, (size_t)B * M->gen.S, cudaMemcpyHostToDevice, M->st));
    return AIL_OK;
}

int gpu_generate_greedy(GpuModel *M, int B, int S, const int32_t *prompts, const int8_t *mask, int P, int max_new,
                        const int32_t *eos, int neos, int32_t *out, int *out_len) {
    for (int b = 0; b < B; b++) out_len[b] = 0;
    if (B < 1 || P < 1 || max_new < 1)
        return AIL_ERROR(AIL_ERR_ARG, "generation of %d rows x %d prompt slots x %d new tokens (each at least 1)", B,
                         P, max_new);
    if ((long long)P + max_new - 1 > S)
        return AIL_ERROR(AIL_ERR_ARG, "%d prompt slots + %d new tokens need %d cache slots, the cache has %d", P,
                         max_new, P + max_new - 1, S);
    if (sizeof(float) * ((size_t)S + M->hd) > GEN_SMEM_MAX)  // the attention kernel's shared memory
        return AIL_ERROR(AIL_ERR_ARG, "a KV cache of %d slots per row is beyond the GPU decoder's %d", S,
                         (int)(GEN_SMEM_MAX / sizeof(float)) - M->hd);
    for (size_t i = 0; i < (size_t)B * P; i++) {
        if (prompts[i] < 0 || prompts[i] >= M->V)
            return AIL_ERROR(AIL_ERR_ARG, "token id %d outside the vocabulary (%d)", prompts[i], M->V);
        if (mask && mask[i] != 0 && mask[i] != 1)
            return AIL_ERROR(AIL_ERR_ARG, "attention mask value %d at row %zu, slot %zu (0 or 1 expected)", mask[i],
                             i / P, i % P);
    }
    for (int b = 0; b < B; b++)
        if (mask && !mask[(size_t)b * P + P - 1])
            return AIL_ERROR(AIL_ERR_ARG, "prompt %d of the batch is not left-padded (its last slot is padding)", b);
    AIL_CHECK(gen_reserve(M, B, S, B * P));
    int N = M->gen.N, GS = M->gen.S;  // GS: the cache's slots per row (>= S)
    int32_t *tok = M->gen.h_in, *row = tok + N, *slot = tok + 2 * N, *pos = tok + 3 * N;
    int *next_pos = (int *)malloc(sizeof(int) * B), *rows = (int *)malloc(sizeof(int) * B);
    if (!next_pos || !rows) {
        free(next_pos), free(rows);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for decoding");
    }
    int rc = AIL_OK;
    // prefill: the B x P prompt tokens, logits of each row's last slot
    memset(M->gen.h_valid, 0, (size_t)B * GS);
    for (int b = 0; b < B && rc == AIL_OK; b++) {
        int c = 0;
        for (int s = 0; s < P; s++) {
            size_t i = (size_t)b * P + s;
            int real_tok = mask ? mask[i] : 1;
            M->gen.h_valid[(size_t)b * GS + s] = (int8_t)real_tok;
            c += real_tok;
            tok[i] = prompts[i], row[i] = b, slot[i] = s, pos[i] = c > 0 ? c - 1 : 0;  // HF: max(cumsum(mask) - 1, 0)
        }
        if (c > M->max_pos)
            rc = AIL_ERROR(AIL_ERR_ARG, "prompt %d has %d tokens, beyond max_position_embeddings %d", b, c, M->max_pos);
        next_pos[b] = c;
    }
    if (rc == AIL_OK) rc = gen_upload(M, B * P, B);
    if (rc == AIL_OK) rc = gen_pass(M, B * P, P - 1, P, B);
    int n = B, len = P;  // live rows, slots filled
    for (int b = 0; b < B; b++) rows[b] = b;
    for (int i = 0; i < max_new && rc == AIL_OK && n > 0; i++) {
        int m = 0;
        for (int j = 0; j < n; j++) {  // gen.h_next[j]: row rows[j]'s token
            int b = rows[j], t = M->gen.h_next[j], stop = 0;
            out[(size_t)b * max_new + out_len[b]++] = t;
            for (int e = 0; e < neos; e++) stop |= t == eos[e];
            if (!stop) rows[m] = b, tok[m] = t, m++;
        }
        n = m;
        if (n == 0 || i + 1 == max_new) break;
        // step: one token per live row into slot len
        for (int b = 0; b < B; b++) M->gen.h_valid[(size_t)b * GS + len] = 0;
        for (int j = 0; j < n && rc == AIL_OK; j++) {
            int b = rows[j];
            if (next_pos[b] >= M->max_pos)
                rc = AIL_ERROR(AIL_ERR_ARG, "row %d reached max_position_embeddings %d", b, M->max_pos);
            M->gen.h_valid[(size_t)b * GS + len] = 1;
            row[j] = b, slot[j] = len, pos[j] = next_pos[b]++;
        }
        if (rc == AIL_OK) rc = gen_upload(M, n, B);
        if (rc == AIL_OK) rc = gen_pass(M, n, 0, 1, n);
        len++;
    }
    free(next_pos), free(rows);
    return rc;
}
