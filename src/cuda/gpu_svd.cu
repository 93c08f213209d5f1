/* gpu_svd.cu - the cuSOLVER backend of `ailora svd` (see gpu_svd.h). */
#ifndef AILORA_NO_MPI
#define AILORA_NO_MPI  // only the error record is used: this file builds without MPI
#endif
#include "ailora/gpu_svd.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/svd_signs.h"

/* Each check records the failing call and returns; the caller frees resources. */
#define CUDA_CHECK(call, what)                                                                 \
    do {                                                                                       \
        cudaError_t ce_ = (call);                                                              \
        if (ce_ != cudaSuccess) {                                                              \
            cudaGetLastError(); /* clear a non-sticky error for the next caller */             \
            return AIL_ERROR(ce_ == cudaErrorMemoryAllocation ? AIL_ERR_MEM : AIL_ERR_LIB,     \
                             "%s: %s", (what), cudaGetErrorString(ce_));                       \
        }                                                                                      \
    } while (0)

#define CUBLAS_CHECK(call, what)                                                               \
    do {                                                                                       \
        cublasStatus_t bs_ = (call);                                                           \
        if (bs_ != CUBLAS_STATUS_SUCCESS)                                                      \
            return AIL_ERROR(AIL_ERR_LIB, "%s: cuBLAS status %d", (what), (int)bs_);           \
    } while (0)

#define CUSOLVER_CHECK(call, what)                                                             \
    do {                                                                                       \
        cusolverStatus_t ss_ = (call);                                                         \
        if (ss_ != CUSOLVER_STATUS_SUCCESS)                                                    \
            return AIL_ERROR(AIL_ERR_LIB, "%s: cuSOLVER status %d", (what), (int)ss_);         \
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
    CUDA_CHECK(cudaSetDevice(device), "cudaSetDevice");
    return AIL_OK;
}

/* Everything one SVD holds on the device; zero-initialized, freed by work_free. */
typedef struct {
    cusolverDnHandle_t solver;
    cublasHandle_t blas;
    double *a, *b, *s, *u, *vt, *work, *rwork;
    int *info;
} GpuSvdWork;

static void work_free(GpuSvdWork *g) {
    double *bufs[] = {g->a, g->b, g->s, g->u, g->vt, g->work, g->rwork};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    cudaFree(g->info);
    if (g->blas) cublasDestroy(g->blas);
    if (g->solver) cusolverDnDestroy(g->solver);
    cudaGetLastError();  // a failed free must not poison the next call
}

static int device_alloc(double **p, size_t count, const char *what) {
    size_t bytes = sizeof(double) * (count ? count : 1);
    cudaError_t e = cudaMalloc((void **)p, bytes);
    if (e != cudaSuccess) {
        *p = NULL;
        cudaGetLastError();
        return AIL_ERROR(AIL_ERR_MEM, "cannot allocate %zu bytes of GPU memory for %s: %s", bytes,
                         what, cudaGetErrorString(e));
    }
    return AIL_OK;
}

/* out (cols x rows) = in^T for column-major in (rows x cols), as geam's
 * 1 * in^T + 0 * out: out untransposed with ldb = ldc is the in-place form cuBLAS
 * documents, and zeroing it first keeps stale NaNs out of 0 * out. */
static int transpose(cublasHandle_t h, int rows, int cols, const double *in, double *out) {
    const double one = 1.0, zero = 0.0;
    CUDA_CHECK(cudaMemset(out, 0, sizeof(double) * (size_t)rows * cols), "cudaMemset");
    CUBLAS_CHECK(cublasDgeam(h, CUBLAS_OP_T, CUBLAS_OP_N, cols, rows, &one, in, rows, &zero, out,
                             cols, out, cols),
                 "cublasDgeam (transpose)");
    return AIL_OK;
}

static int svd_on_device(GpuSvdWork *g, int m, int n, const double *w, double *S, double *U,
                         double *Vt) {
    // The column-major view of row-major W is W^T (n x m). gesvd needs rows >= columns:
    // wide or square W is decomposed as W^T directly, tall W is transposed first.
    int k = m < n ? m : n, tall = m > n;
    int rows = tall ? m : n;  // columns = k
    size_t mn = (size_t)m * n;
    CUSOLVER_CHECK(cusolverDnCreate(&g->solver), "cusolverDnCreate");
    CUBLAS_CHECK(cublasCreate(&g->blas), "cublasCreate");
    AIL_CHECK(device_alloc(&g->a, mn, "the matrix"));
    AIL_CHECK(device_alloc(&g->s, (size_t)k, "singular values"));
    AIL_CHECK(device_alloc(&g->u, (size_t)rows * k, "left singular vectors"));
    AIL_CHECK(device_alloc(&g->vt, (size_t)k * k, "right singular vectors"));
    AIL_CHECK(device_alloc(&g->rwork, (size_t)k, "gesvd rwork"));
    CUDA_CHECK(cudaMalloc((void **)&g->info, sizeof(int)), "cudaMalloc (info)");
    CUDA_CHECK(cudaMemcpy(g->a, w, sizeof(double) * mn, cudaMemcpyHostToDevice), "copy W to GPU");
    double *a = g->a;
    if (tall) {
        AIL_CHECK(device_alloc(&g->b, mn, "the transposed matrix"));
        AIL_CHECK(transpose(g->blas, n, m, g->a, g->b));
        a = g->b;
    }
    int lwork = 0, info = 0;
    CUSOLVER_CHECK(cusolverDnDgesvd_bufferSize(g->solver, rows, k, &lwork),
                   "cusolverDnDgesvd_bufferSize");
    AIL_CHECK(device_alloc(&g->work, (size_t)lwork, "gesvd workspace"));
    CUSOLVER_CHECK(cusolverDnDgesvd(g->solver, 'S', 'S', rows, k, a, rows, g->s, g->u, rows, g->vt,
                                    k, g->work, lwork, g->rwork, g->info),
                   "cusolverDnDgesvd");
    CUDA_CHECK(cudaMemcpy(&info, g->info, sizeof info, cudaMemcpyDeviceToHost), "gesvd info");
    if (info > 0)
        return AIL_ERROR(AIL_ERR_NUMERIC,
                         "cusolverDnDgesvd did not converge on a %dx%d matrix (%d superdiagonals left)",
                         m, n, info);
    if (info < 0)
        return AIL_ERROR(AIL_ERR_LIB, "cusolverDnDgesvd rejected parameter %d (%dx%d matrix)", -info,
                         m, n);
    CUDA_CHECK(cudaMemcpy(S, g->s, sizeof(double) * k, cudaMemcpyDeviceToHost), "copy S");
    if (!tall) {
        // W^T = Ua diag(S) VTa: Ua (n x k) read row-major is Vt, VTa (k x m) is U
        CUDA_CHECK(cudaMemcpy(Vt, g->u, sizeof(double) * k * n, cudaMemcpyDeviceToHost), "copy Vt");
        CUDA_CHECK(cudaMemcpy(U, g->vt, sizeof(double) * m * k, cudaMemcpyDeviceToHost), "copy U");
    } else {
        // W = Ub diag(S) VTb (k = n): row-major U is Ub^T and row-major Vt is VTb^T
        // column-major; g->a (m n doubles) is free to hold each transpose in turn
        AIL_CHECK(transpose(g->blas, m, k, g->u, g->a));
        CUDA_CHECK(cudaMemcpy(U, g->a, sizeof(double) * m * k, cudaMemcpyDeviceToHost), "copy U");
        AIL_CHECK(transpose(g->blas, k, n, g->vt, g->a));
        CUDA_CHECK(cudaMemcpy(Vt, g->a, sizeof(double) * k * n, cudaMemcpyDeviceToHost), "copy Vt");
    }
    svd_canonical_signs(m, n, k, U, Vt);  // the CPU backends' rule, on the host
    return AIL_OK;
}

int gpu_svd_f64(int m, int n, const double *w, double *S, double *U, double *Vt) {
    if (m < 0 || n < 0) return AIL_ERROR(AIL_ERR_ARG, "gpu_svd_f64: bad shape %dx%d", m, n);
    if (m == 0 || n == 0) return AIL_OK;  // k = 0: nothing to compute
    GpuSvdWork g;
    memset(&g, 0, sizeof g);
    int rc = svd_on_device(&g, m, n, w, S, U, Vt);
    work_free(&g);
    return rc;
}
