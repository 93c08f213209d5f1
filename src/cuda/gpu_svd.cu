/* gpu_svd.cu - the cuSOLVER backend of `ailora svd` (see gpu_svd.h). */
#ifndef AILORA_NO_MPI
#define AILORA_NO_MPI  // only the error record is used: this file builds without MPI
#endif
#include "ailora/gpu_svd.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/svd_signs.h"

/* " (MxN matrix)", or "" without a shape (m = 0): the tail of error messages. */
static const char *shape_of(char *buf, size_t len, int m, int n) {
    if (m > 0) snprintf(buf, len, " (%dx%d matrix)", m, n);
    else buf[0] = '\0';
    return buf;
}

/* Each check records the failing call and the matrix shape (m, n; 0, 0: none) and
 * returns; the caller frees resources. */
#define CUDA_CHECK(call, what, m, n)                                                           \
    do {                                                                                       \
        cudaError_t ce_ = (call);                                                              \
        if (ce_ != cudaSuccess) {                                                              \
            char sh_[48];                                                                      \
            cudaGetLastError(); /* clear a non-sticky error for the next caller */             \
            return AIL_ERROR(ce_ == cudaErrorMemoryAllocation ? AIL_ERR_MEM : AIL_ERR_LIB,     \
                             "%s%s: %s", (what), shape_of(sh_, sizeof sh_, (m), (n)),          \
                             cudaGetErrorString(ce_));                                         \
        }                                                                                      \
    } while (0)

#define CUBLAS_CHECK(call, what, m, n)                                                         \
    do {                                                                                       \
        cublasStatus_t bs_ = (call);                                                           \
        char sh_[48];                                                                          \
        if (bs_ != CUBLAS_STATUS_SUCCESS)                                                      \
            return AIL_ERROR(AIL_ERR_LIB, "%s%s: cuBLAS status %d", (what),                    \
                             shape_of(sh_, sizeof sh_, (m), (n)), (int)bs_);                   \
    } while (0)

#define CUSOLVER_CHECK(call, what, m, n)                                                       \
    do {                                                                                       \
        cusolverStatus_t ss_ = (call);                                                         \
        char sh_[48];                                                                          \
        if (ss_ != CUSOLVER_STATUS_SUCCESS)                                                    \
            return AIL_ERROR(AIL_ERR_LIB, "%s%s: cuSOLVER status %d", (what),                  \
                             shape_of(sh_, sizeof sh_, (m), (n)), (int)ss_);                   \
    } while (0)

int gpu_svd_available(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {  // no driver, no device: not an error
        cudaGetLastError();
        return 0;
    }
    return count;
}

int gpu_svd_set_device(int device) {
    CUDA_CHECK(cudaSetDevice(device), "cudaSetDevice", 0, 0);
    return AIL_OK;
}

/* out = in^T on the stream, for column-major in (rows x cols, leading dimension
 * ldi) and out (cols x rows, ldo): geam's 1 * in^T + 0 * out, with out as its own
 * B (the in-place form cuBLAS documents); out's block is zeroed first so that stale
 * NaNs cannot leak through 0 * out. m, n: the matrix's shape, for messages. */
static int transpose(cublasHandle_t h, cudaStream_t st, int rows, int cols, const double *in, int ldi, double *out,
                     int ldo, int m, int n) {
    const double one = 1.0, zero = 0.0;
    CUDA_CHECK(cudaMemset2DAsync(out, sizeof(double) * ldo, 0, sizeof(double) * cols, (size_t)rows, st),
               "cudaMemset2DAsync", m, n);
    CUBLAS_CHECK(cublasDgeam(h, CUBLAS_OP_T, CUBLAS_OP_N, cols, rows, &one, in, ldi, &zero, out, ldo, out, ldo),
                 "cublasDgeam (transpose)", m, n);
    return AIL_OK;
}

/* A buffer that only grows (the slot keeps the largest matrix's buffers). */
typedef struct {
    void *p;
    size_t bytes;
} Buf;

/* Everything one slot holds; zero-initialized, freed by slot_free. */
typedef struct {
    cudaStream_t stream;
    cusolverDnHandle_t solver;
    cublasHandle_t blas;
    Buf a, b, s, u, vt, work, rwork, info;  // device; a and b also hold the gathered U, Vt
    Buf hw, hs, hu, hv, hinfo;              // pinned host
    int *kept, cap_kept;                    // host copy of the kept set
    int m, n, nkept, busy;                  // busy: submitted, not yet waited for
} Slot;

struct GpuSvdPipe {
    int nslots, broken;  // broken: an error left a stream in an unknown state
    Slot *slot;
};

/* Grows *b on the device (dev) or pinned on the host to hold `bytes`. The slot's
 * stream is idle whenever this runs, so the old contents can go. */
static int buf_grow(Buf *b, size_t bytes, int dev, const char *what, int m, int n) {
    if (bytes == 0) bytes = 8;
    if (b->bytes >= bytes) return AIL_OK;
    cudaError_t e = !b->p ? cudaSuccess : dev ? cudaFree(b->p) : cudaFreeHost(b->p);
    b->p = NULL, b->bytes = 0;
    if (e == cudaSuccess) e = dev ? cudaMalloc(&b->p, bytes) : cudaMallocHost(&b->p, bytes);
    if (e != cudaSuccess) {
        char sh[48];
        b->p = NULL;
        cudaGetLastError();
        return AIL_ERROR(e == cudaErrorMemoryAllocation ? AIL_ERR_MEM : AIL_ERR_LIB,
                         "%s of %zu bytes for %s%s: %s", dev ? "cudaMalloc" : "cudaMallocHost", bytes, what,
                         shape_of(sh, sizeof sh, m, n), cudaGetErrorString(e));
    }
    b->bytes = bytes;
    return AIL_OK;
}

static void slot_free(Slot *s) {
    if (s->stream) cudaStreamSynchronize(s->stream);  // nothing may still write into what goes
    Buf *dev[] = {&s->a, &s->b, &s->s, &s->u, &s->vt, &s->work, &s->rwork, &s->info};
    Buf *host[] = {&s->hw, &s->hs, &s->hu, &s->hv, &s->hinfo};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]->p) cudaFree(dev[i]->p);
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        if (host[i]->p) cudaFreeHost(host[i]->p);
    if (s->blas) cublasDestroy(s->blas);
    if (s->solver) cusolverDnDestroy(s->solver);
    if (s->stream) cudaStreamDestroy(s->stream);
    free(s->kept);
    memset(s, 0, sizeof *s);
    cudaGetLastError();  // a failed free must not poison the next call
}

void gpu_svd_pipe_free(GpuSvdPipe *p) {
    if (!p) return;
    for (int i = 0; i < p->nslots; i++) slot_free(&p->slot[i]);
    free(p->slot);
    free(p);
}

static int slot_init(Slot *s) {
    // non-blocking: the slots' streams must not serialize with each other via stream 0
    CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags", 0, 0);
    CUSOLVER_CHECK(cusolverDnCreate(&s->solver), "cusolverDnCreate", 0, 0);
    CUSOLVER_CHECK(cusolverDnSetStream(s->solver, s->stream), "cusolverDnSetStream", 0, 0);
    CUBLAS_CHECK(cublasCreate(&s->blas), "cublasCreate", 0, 0);
    CUBLAS_CHECK(cublasSetStream(s->blas, s->stream), "cublasSetStream", 0, 0);
    AIL_CHECK(buf_grow(&s->info, sizeof(int), 1, "gesvd info", 0, 0));
    AIL_CHECK(buf_grow(&s->hinfo, sizeof(int), 0, "gesvd info", 0, 0));
    return AIL_OK;
}

int gpu_svd_pipe_create(int nslots, GpuSvdPipe **pipe) {
    *pipe = NULL;
    if (nslots < 1) return AIL_ERROR(AIL_ERR_ARG, "gpu_svd_pipe_create: %d slots", nslots);
    GpuSvdPipe *p = (GpuSvdPipe *)ail_calloc(1, sizeof *p);
    Slot *slots = (Slot *)ail_calloc((size_t)nslots, sizeof *slots);
    if (!p || !slots) {
        free(p), free(slots);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for %d GPU SVD slots", nslots);
    }
    p->nslots = nslots, p->slot = slots;
    for (int i = 0; i < nslots; i++) {
        int rc = slot_init(&slots[i]);
        if (rc != AIL_OK) {
            gpu_svd_pipe_free(p);
            return rc;
        }
    }
    *pipe = p;
    return AIL_OK;
}

/* The slot, if the pipe is usable and the slot in range (else NULL, error recorded). */
static Slot *slot_of(GpuSvdPipe *p, int slot, const char *who) {
    if (!p || slot < 0 || slot >= p->nslots) {
        AIL_ERROR(AIL_ERR_ARG, "%s: no slot %d", who, slot);
        return NULL;
    }
    if (p->broken) {
        AIL_ERROR(AIL_ERR_LIB, "%s: the GPU SVD pipe failed earlier", who);
        return NULL;
    }
    return &p->slot[slot];
}

double *gpu_svd_input(GpuSvdPipe *p, int slot, int m, int n) {
    Slot *s = slot_of(p, slot, "gpu_svd_input");
    if (!s) return NULL;
    if (s->busy) {
        AIL_ERROR(AIL_ERR_ARG, "gpu_svd_input: slot %d is busy (submitted, not waited for)", slot);
        return NULL;
    }
    if (m < 1 || n < 1) {
        AIL_ERROR(AIL_ERR_ARG, "gpu_svd_input: bad shape %dx%d", m, n);
        return NULL;
    }
    if (buf_grow(&s->hw, sizeof(double) * (size_t)m * n, 0, "the staged matrix", m, n) != AIL_OK) {
        p->broken = 1;
        return NULL;
    }
    s->m = m, s->n = n;
    return (double *)s->hw.p;
}

/* Queues everything for the slot's matrix on its stream (see gpu_svd.h). The column-
 * major view of row-major W is W^T (n x m); gesvd needs rows >= columns: wide or
 * square W is decomposed as W^T directly, tall W is transposed first. */
static int submit(Slot *s, int m, int n, int nk, const int *kept) {
    int k = m < n ? m : n, tall = m > n;
    int rows = tall ? m : n;  // columns = k
    size_t mn = (size_t)m * n;
    if (nk > s->cap_kept) {
        int *grown = (int *)ail_malloc(sizeof(int) * (size_t)nk);
        if (!grown) return AIL_ERROR(AIL_ERR_MEM, "out of memory for the kept set (%dx%d matrix)", m, n);
        free(s->kept);
        s->kept = grown, s->cap_kept = nk;
    }
    memcpy(s->kept, kept, sizeof(int) * (size_t)nk);
    int lwork = 0;
    CUSOLVER_CHECK(cusolverDnDgesvd_bufferSize(s->solver, rows, k, &lwork), "cusolverDnDgesvd_bufferSize", m, n);
    // every buffer first, so that a failed allocation queues nothing
    AIL_CHECK(buf_grow(&s->a, sizeof(double) * mn, 1, "the matrix", m, n));
    AIL_CHECK(buf_grow(&s->b, sizeof(double) * mn, 1, "the transposed matrix", m, n));
    AIL_CHECK(buf_grow(&s->s, sizeof(double) * k, 1, "singular values", m, n));
    AIL_CHECK(buf_grow(&s->u, sizeof(double) * rows * k, 1, "left singular vectors", m, n));
    AIL_CHECK(buf_grow(&s->vt, sizeof(double) * k * k, 1, "right singular vectors", m, n));
    AIL_CHECK(buf_grow(&s->rwork, sizeof(double) * k, 1, "gesvd rwork", m, n));
    AIL_CHECK(buf_grow(&s->work, sizeof(double) * (size_t)lwork, 1, "gesvd workspace", m, n));
    AIL_CHECK(buf_grow(&s->hs, sizeof(double) * k, 0, "singular values", m, n));
    AIL_CHECK(buf_grow(&s->hu, sizeof(double) * m * nk, 0, "left singular vectors", m, n));
    AIL_CHECK(buf_grow(&s->hv, sizeof(double) * nk * n, 0, "right singular vectors", m, n));

    cudaStream_t st = s->stream;
    double *a = (double *)s->a.p, *b = (double *)s->b.p, *u = (double *)s->u.p, *vt = (double *)s->vt.p;
    CUDA_CHECK(cudaMemcpyAsync(a, s->hw.p, sizeof(double) * mn, cudaMemcpyHostToDevice, st), "copy W to GPU", m, n);
    double *in = a;
    if (tall) {
        AIL_CHECK(transpose(s->blas, st, n, m, a, n, b, m, m, n));
        in = b;
    }
    CUSOLVER_CHECK(cusolverDnDgesvd(s->solver, 'S', 'S', rows, k, in, rows, (double *)s->s.p, u, rows, vt, k,
                                    (double *)s->work.p, lwork, (double *)s->rwork.p, (int *)s->info.p),
                   "cusolverDnDgesvd", m, n);
    // gather the kept vectors into gu = a (U [m, nk] row-major) and gv = b (Vt [nk, n]):
    // a and b are free once gesvd has run (gesvd overwrites its input)
    double *gu = a, *gv = b;
    for (int i = 0, j; i < nk; i = j) {  // one contiguous range kept[i..j) = [lo, lo + len)
        for (j = i + 1; j < nk && s->kept[j] == s->kept[j - 1] + 1;) j++;
        int lo = s->kept[i], len = j - i;
        if (!tall) {
            // W^T = Ua diag(S) VTa: VTa (k x k) is row-major U, Ua (n x k) row-major Vt
            CUDA_CHECK(cudaMemcpy2DAsync(gu + i, sizeof(double) * nk, vt + lo, sizeof(double) * k,
                                         sizeof(double) * len, (size_t)m, cudaMemcpyDeviceToDevice, st),
                       "gather U (cudaMemcpy2DAsync)", m, n);
            CUDA_CHECK(cudaMemcpyAsync(gv + (size_t)i * n, u + (size_t)lo * n, sizeof(double) * len * n,
                                       cudaMemcpyDeviceToDevice, st),
                       "gather Vt (cudaMemcpyAsync)", m, n);
        } else {
            // W = Ub diag(S) VTb (k = n): row-major U is Ub^T, row-major Vt is VTb^T
            AIL_CHECK(transpose(s->blas, st, m, len, u + (size_t)lo * m, m, gu + i, nk, m, n));
            AIL_CHECK(transpose(s->blas, st, len, n, vt + lo, k, gv + (size_t)i * n, n, m, n));
        }
    }
    CUDA_CHECK(cudaMemcpyAsync(s->hinfo.p, s->info.p, sizeof(int), cudaMemcpyDeviceToHost, st), "copy gesvd info", m, n);
    CUDA_CHECK(cudaMemcpyAsync(s->hs.p, s->s.p, sizeof(double) * k, cudaMemcpyDeviceToHost, st), "copy S", m, n);
    CUDA_CHECK(cudaMemcpyAsync(s->hu.p, gu, sizeof(double) * m * nk, cudaMemcpyDeviceToHost, st), "copy U", m, n);
    CUDA_CHECK(cudaMemcpyAsync(s->hv.p, gv, sizeof(double) * nk * n, cudaMemcpyDeviceToHost, st), "copy Vt", m, n);
    return AIL_OK;
}

int gpu_svd_submit(GpuSvdPipe *p, int slot, int m, int n, int nk, const int *kept) {
    Slot *s = slot_of(p, slot, "gpu_svd_submit");
    if (!s) return ail_error_code();
    int k = m < n ? m : n;
    if (s->busy) return AIL_ERROR(AIL_ERR_ARG, "gpu_svd_submit: slot %d is busy", slot);
    if (m != s->m || n != s->n || m < 1 || n < 1)
        return AIL_ERROR(AIL_ERR_ARG, "gpu_svd_submit: %dx%d, but slot %d holds a %dx%d input", m, n, slot, s->m,
                         s->n);
    for (int j = 0; j < nk; j++)
        if (kept[j] < 0 || kept[j] >= k || (j > 0 && kept[j] <= kept[j - 1]))
            return AIL_ERROR(AIL_ERR_ARG, "gpu_svd_submit: kept[%d] = %d is out of [0, %d) or not ascending", j,
                             kept[j], k);
    if (nk < 1 || nk > k) return AIL_ERROR(AIL_ERR_ARG, "gpu_svd_submit: %d kept vectors of %d", nk, k);
    int rc = submit(s, m, n, nk, kept);
    if (rc != AIL_OK) {
        p->broken = 1;  // part of the work may be queued: only gpu_svd_pipe_free is safe now
        return rc;
    }
    s->nkept = nk, s->busy = 1;
    return AIL_OK;
}

int gpu_svd_wait(GpuSvdPipe *p, int slot, GpuSvdResult *res) {
    Slot *s = slot_of(p, slot, "gpu_svd_wait");
    if (!s) return ail_error_code();
    if (!s->busy) return AIL_ERROR(AIL_ERR_ARG, "gpu_svd_wait: nothing submitted on slot %d", slot);
    int m = s->m, n = s->n, k = m < n ? m : n, nk = s->nkept;
    s->busy = 0;
    cudaError_t e = cudaStreamSynchronize(s->stream);
    if (e != cudaSuccess) {
        p->broken = 1;
        cudaGetLastError();
        return AIL_ERROR(AIL_ERR_LIB, "GPU SVD of a %dx%d matrix (cudaStreamSynchronize): %s", m, n,
                         cudaGetErrorString(e));
    }
    int info = *(const int *)s->hinfo.p;
    if (info > 0)
        return AIL_ERROR(AIL_ERR_NUMERIC, "cusolverDnDgesvd did not converge on a %dx%d matrix (%d superdiagonals left)",
                         m, n, info);
    if (info < 0) return AIL_ERROR(AIL_ERR_LIB, "cusolverDnDgesvd rejected parameter %d (%dx%d matrix)", -info, m, n);
    double *U = (double *)s->hu.p, *Vt = (double *)s->hv.p;
    svd_canonical_signs(m, n, nk, U, Vt);  // each pair on its own: the same over kept[] as over all
    res->m = m, res->n = n, res->k = k, res->nkept = nk;
    res->S = (const double *)s->hs.p, res->U = U, res->Vt = Vt;
    return AIL_OK;
}

int gpu_svd_f64(int m, int n, const double *w, double *S, double *U, double *Vt) {
    if (m < 0 || n < 0) return AIL_ERROR(AIL_ERR_ARG, "gpu_svd_f64: bad shape %dx%d", m, n);
    if (m == 0 || n == 0) return AIL_OK;  // k = 0: nothing to compute
    int k = m < n ? m : n;
    int *all = (int *)ail_malloc(sizeof(int) * (size_t)k);
    if (!all) return AIL_ERROR(AIL_ERR_MEM, "out of memory (%dx%d matrix)", m, n);
    for (int j = 0; j < k; j++) all[j] = j;
    GpuSvdPipe *p = NULL;
    GpuSvdResult r;
    int rc = gpu_svd_pipe_create(1, &p);
    double *in = rc == AIL_OK ? gpu_svd_input(p, 0, m, n) : NULL;
    if (rc == AIL_OK && !in) rc = ail_error_code();
    if (rc == AIL_OK) {
        memcpy(in, w, sizeof(double) * (size_t)m * n);
        rc = gpu_svd_submit(p, 0, m, n, k, all);
    }
    if (rc == AIL_OK) rc = gpu_svd_wait(p, 0, &r);
    if (rc == AIL_OK) {
        memcpy(S, r.S, sizeof(double) * k);
        memcpy(U, r.U, sizeof(double) * (size_t)m * k);
        memcpy(Vt, r.Vt, sizeof(double) * (size_t)k * n);
    }
    gpu_svd_pipe_free(p);
    free(all);
    return rc;
}
