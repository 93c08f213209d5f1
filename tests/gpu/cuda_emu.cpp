/* cuda_emu.cpp - a CPU stand-in for the CUDA runtime, cuBLAS and the kernels of
 * src/cuda/gpu_kernels.cuh, so that the host orchestration of src/cuda/gpu_model.cu
 * (GEMM shapes, transposes, leading dimensions, batch strides, layouts, adapter
 * offsets, precision plumbing) runs and is checked on a machine without a GPU:
 *
 *   g++ -O2 -x c++ -DAILORA_NO_MPI -Iinclude -I/usr/local/cuda/include -c src/cuda/gpu_model.cu
 *   g++ -O2 -DAILORA_NO_MPI -Iinclude -I/usr/local/cuda/include -c tests/gpu/cuda_emu.cpp
 *   gcc ... tests/gpu/test_gpu_train.c gpu_model.o cuda_emu.o src/base/error.c -lstdc++ -lm
 *   (tests/gpu/emu_check.sh)
 *
 * The kernels here are re-implementations of the CUDA ones (same formulas, same
 * float / double choices), not the CUDA code itself. bf16 storage is emulated
 * bit-exactly (round to nearest even). cudaMalloc fills memory with 0xFF bytes
 * (NaN for float and bf16) so reading anything not written first shows up.
 * Single stream, synchronous: every call completes before it returns.
 *
 * Misuse is caught where it is cheap, with a message and abort(): cudaFree /
 * cudaFreeHost of anything not live (freed twice, never allocated), streams and
 * handles destroyed twice or used after destruction, and device pointers of
 * the cuSOLVER route's calls (copies, geam, gesvd) outside any live allocation
 * (a freed or overrun buffer). With -DAILORA_EMU_CUSOLVER (links LAPACK) it also
 * stands in for the cuSOLVER calls of src/cuda/gpu_svd.cu (gesvd on the host by
 * LAPACK dgesvd). Knobs, counted per process, to test the error paths:
 *     AILORA_EMU_MALLOC_FAIL=N   the N-th cudaMalloc fails (cudaErrorMemoryAllocation)
 *     AILORA_EMU_GESVD_NOCONV=N  the N-th cusolverDnDgesvd reports devInfo = 2
 *     AILORA_EMU_LOG=FILE        at exit, appends "d2h_bytes=B max_busy_streams=S":
 *                                device-to-host bytes copied, and the most streams
 *                                that had work queued (not yet synchronized) at once
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <mutex>
#include <set>

#include "../../src/cuda/gpu_kernels.cuh"

/* ---- bf16 emulation -------------------------------------------------------------- */

static float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
    u += 0x7fffu + ((u >> 16) & 1u);                     // round to nearest even
    return (uint16_t)(u >> 16);
}

static float ldv(int bf, const void *p, size_t i) { return bf ? bf2f(((const uint16_t *)p)[i]) : ((const float *)p)[i]; }
static void stv(int bf, void *p, size_t i, float v) {
    if (bf) ((uint16_t *)p)[i] = f2bf(v);
    else ((float *)p)[i] = v;
}

/* ---- bookkeeping: live allocations, streams and handles -------------------------- */

static std::mutex book_lock;             // NCCL emulation: ranks are threads
static std::map<uintptr_t, size_t> dev_live, host_live;  // base -> bytes
static std::set<const void *> objs_live; // streams and handles

[[noreturn]] static void misuse(const char *what, const void *p) {
    fprintf(stderr, "cuda_emu: misuse: %s (%p)\n", what, p);
    abort();
}

static long knob(const char *name) {
    const char *v = getenv(name);
    return v ? atol(v) : 0;
}

/* traffic and overlap, for AILORA_EMU_LOG */
static unsigned long long d2h_bytes;
static std::set<const void *> busy_streams;  // work queued since the last synchronize
static size_t max_busy;

static void queued(const void *stream) {
    if (!stream) return;
    std::lock_guard<std::mutex> g(book_lock);
    busy_streams.insert(stream);
    if (busy_streams.size() > max_busy) max_busy = busy_streams.size();
}
static void count_d2h(size_t bytes) {
    std::lock_guard<std::mutex> g(book_lock);
    d2h_bytes += bytes;
}

static struct Reporter {
    ~Reporter() {
        const char *path = getenv("AILORA_EMU_LOG");
        FILE *f = path ? fopen(path, "a") : NULL;
        if (!f) return;
        fprintf(f, "d2h_bytes=%llu max_busy_streams=%zu\n", d2h_bytes, max_busy);
        fclose(f);
    }
} reporter;

/* p [0, bytes) must lie inside one live device allocation. */
static void dev_check(const void *p, size_t bytes, const char *what) {
    std::lock_guard<std::mutex> g(book_lock);
    uintptr_t a = (uintptr_t)p;
    auto it = dev_live.upper_bound(a);
    if (it == dev_live.begin()) misuse(what, p);
    --it;
    if (a + bytes > it->first + (it->second ? it->second : 1)) misuse(what, p);
}

static void obj_add(const void *o) {
    std::lock_guard<std::mutex> g(book_lock);
    objs_live.insert(o);
}
static void obj_check(const void *o, const char *what) {  // NULL: the default stream
    std::lock_guard<std::mutex> g(book_lock);
    if (o && !objs_live.count(o)) misuse(what, o);
}
static void obj_remove(const void *o, const char *what) {
    std::lock_guard<std::mutex> g(book_lock);
    if (!objs_live.erase(o)) misuse(what, o);
    // the object's memory is never reused: a later use of it is caught too
}

/* ---- runtime ------------------------------------------------------------------------ */

struct CUstream_st {
    int id;
};

extern "C" {
cudaError_t cudaGetDeviceCount(int *n) {
    *n = getenv("AILORA_EMU_DEVICES") ? atoi(getenv("AILORA_EMU_DEVICES")) : 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
const char *cudaGetErrorString(cudaError_t) { return "emulated CUDA error"; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
cudaError_t cudaMalloc(void **p, size_t n) {
    static long calls;
    long fail_at = knob("AILORA_EMU_MALLOC_FAIL");
    {
        std::lock_guard<std::mutex> g(book_lock);
        if (++calls == fail_at) {
            *p = NULL;
            return cudaErrorMemoryAllocation;
        }
    }
    *p = malloc(n ? n : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    memset(*p, 0xff, n);  // poison: NaN in float and bf16
    std::lock_guard<std::mutex> g(book_lock);
    dev_live[(uintptr_t)*p] = n;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    {
        std::lock_guard<std::mutex> g(book_lock);
        if (!dev_live.erase((uintptr_t)p)) misuse("cudaFree of a pointer that is not live", p);
    }
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n) {
    *p = malloc(n ? n : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    memset(*p, 0xff, n);  // poison: a result read before it was copied back shows up
    std::lock_guard<std::mutex> g(book_lock);
    host_live[(uintptr_t)*p] = n;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void *p) {
    if (!p) return cudaSuccess;
    {
        std::lock_guard<std::mutex> g(book_lock);
        if (!host_live.erase((uintptr_t)p)) misuse("cudaFreeHost of a pointer that is not live", p);
    }
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind kind) {
    if (kind == cudaMemcpyDeviceToHost) count_d2h(n);
    memmove(d, s, n);
    return cudaSuccess;
}
/* the device side(s) of a copy must be live (the direction as the caller says) */
static void copy_check(void *d, const void *s, size_t n, enum cudaMemcpyKind kind) {
    if (n == 0) return;
    if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice)
        dev_check(d, n, "copy into a device pointer outside any live allocation");
    if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice)
        dev_check(s, n, "copy from a device pointer outside any live allocation");
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind kind, cudaStream_t st) {
    obj_check(st, "cudaMemcpyAsync on a stream that is not live");
    copy_check(d, s, n, kind);
    if (kind == cudaMemcpyDeviceToHost) count_d2h(n);
    queued(st);
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *d, size_t dpitch, const void *s, size_t spitch, size_t width, size_t height,
                              enum cudaMemcpyKind kind, cudaStream_t st) {
    obj_check(st, "cudaMemcpy2DAsync on a stream that is not live");
    if (width > dpitch || width > spitch) return cudaErrorInvalidPitchValue;
    if (height == 0 || width == 0) return cudaSuccess;
    if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice)
        dev_check(d, dpitch * (height - 1) + width, "cudaMemcpy2DAsync into a dead device pointer");
    if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice)
        dev_check(s, spitch * (height - 1) + width, "cudaMemcpy2DAsync from a dead device pointer");
    if (kind == cudaMemcpyDeviceToHost) count_d2h(width * height);
    queued(st);
    for (size_t r = 0; r < height; r++) memmove((char *)d + r * dpitch, (const char *)s + r * spitch, width);
    return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n) {
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) {
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemset2DAsync(void *d, size_t pitch, int v, size_t width, size_t height, cudaStream_t st) {
    obj_check(st, "cudaMemset2DAsync on a stream that is not live");
    if (width > pitch) return cudaErrorInvalidPitchValue;
    if (height == 0 || width == 0) return cudaSuccess;
    dev_check(d, pitch * (height - 1) + width, "cudaMemset2DAsync of a dead device pointer");
    queued(st);
    for (size_t r = 0; r < height; r++) memset((char *)d + r * pitch, v, width);
    return cudaSuccess;
}
static int dummy_stream;
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int) {
    *s = new CUstream_st();
    obj_add(*s);
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    obj_check(s, "cudaStreamSynchronize of a stream that is not live");
    std::lock_guard<std::mutex> g(book_lock);
    busy_streams.erase(s);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    obj_remove(s, "cudaStreamDestroy of a stream that is not live (destroyed twice?)");
    std::lock_guard<std::mutex> g(book_lock);
    busy_streams.erase(s);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = (cudaEvent_t)&dummy_stream;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t, cudaEvent_t) {
    *ms = 1.f;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *f, size_t *t) {
    *f = 0, *t = 0;
    return cudaSuccess;
}

/* ---- cuBLAS ------------------------------------------------------------------------- */

struct cublasContext {
    cudaStream_t stream;
};
cublasStatus_t cublasCreate_v2(cublasHandle_t *h) {
    *h = new cublasContext();
    obj_add(*h);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
    obj_remove(h, "cublasDestroy of a handle that is not live (destroyed twice?)");
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
    obj_check(h, "cublasSetStream on a handle that is not live");
    obj_check(s, "cublasSetStream to a stream that is not live");
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}

/* column-major C (m, n) = alpha op(A) + beta op(B); B is read even when beta = 0, so
 * that 0 * NaN from an unwritten (poisoned) B shows up, as it may on a GPU. C may be
 * B (ldb = ldc, no transpose) or A (lda = ldc, no transpose), as cuBLAS allows. */
cublasStatus_t cublasDgeam(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                           const double *alpha, const double *A, int lda, const double *beta, const double *B,
                           int ldb, double *C, int ldc) {
    obj_check(h, "cublasDgeam on a handle that is not live");
    obj_check(h->stream, "cublasDgeam on a stream that is not live");
    if (m < 0 || n < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    queued(h->stream);
    int ra = ta == CUBLAS_OP_N ? m : n, ca = ta == CUBLAS_OP_N ? n : m;  // A's stored shape
    int rb = tb == CUBLAS_OP_N ? m : n, cb = tb == CUBLAS_OP_N ? n : m;
    if (lda < ra || ldb < rb || ldc < m) return CUBLAS_STATUS_INVALID_VALUE;
    dev_check(A, sizeof(double) * ((size_t)lda * (ca - 1) + ra), "cublasDgeam: A is not live");
    dev_check(B, sizeof(double) * ((size_t)ldb * (cb - 1) + rb), "cublasDgeam: B is not live");
    dev_check(C, sizeof(double) * ((size_t)ldc * (n - 1) + m), "cublasDgeam: C is not live");
    // out of place unless C is exactly A or B untransposed: overlapping C is an error
    uintptr_t c0 = (uintptr_t)C, c1 = c0 + sizeof(double) * ((size_t)ldc * (n - 1) + m);
    uintptr_t a0 = (uintptr_t)A, a1 = a0 + sizeof(double) * ((size_t)lda * (ca - 1) + ra);
    uintptr_t b0 = (uintptr_t)B, b1 = b0 + sizeof(double) * ((size_t)ldb * (cb - 1) + rb);
    int a_in_place = C == A && ta == CUBLAS_OP_N && lda == ldc, b_in_place = C == B && tb == CUBLAS_OP_N && ldb == ldc;
    if ((!a_in_place && c0 < a1 && a0 < c1) || (!b_in_place && c0 < b1 && b0 < c1)) return CUBLAS_STATUS_INVALID_VALUE;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double a = ta == CUBLAS_OP_N ? A[i + (size_t)j * lda] : A[j + (size_t)i * lda];
            double b = tb == CUBLAS_OP_N ? B[i + (size_t)j * ldb] : B[j + (size_t)i * ldb];
            C[i + (size_t)j * ldc] = *alpha * a + *beta * b;
        }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void *, size_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t) { return "emulated cuBLAS error"; }

static int type_ok(cudaDataType t) { return t == CUDA_R_32F || t == CUDA_R_16BF; }

/* column-major C (m, n) = alpha op(A) op(B) + beta C, float accumulation */
static cublasStatus_t gemm1(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                            const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb,
                            float beta, void *C, cudaDataType ct, int ldc) {
    if (!type_ok(at) || !type_ok(bt) || !type_ok(ct) || at != bt) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    // cuBLAS's own checks on the leading dimensions
    if (lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1))) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1))) return CUBLAS_STATUS_INVALID_VALUE;
    if (ldc < (m > 1 ? m : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    int abf = at == CUDA_R_16BF, cbf = ct == CUDA_R_16BF;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            float s = 0.f;
            for (int p = 0; p < k; p++) {
                float a = ldv(abf, A, ta == CUBLAS_OP_N ? (size_t)i + (size_t)p * lda : (size_t)p + (size_t)i * lda);
                float b = ldv(abf, B, tb == CUBLAS_OP_N ? (size_t)p + (size_t)j * ldb : (size_t)j + (size_t)p * ldb);
                s += a * b;
            }
            size_t c = (size_t)i + (size_t)j * ldc;
            stv(cbf, C, c, beta == 0.f ? alpha * s : alpha * s + beta * ldv(cbf, C, c));
        }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B,
                            cudaDataType bt, int ldb, const void *beta, void *C, cudaDataType ct, int ldc,
                            cublasComputeType_t comp, cublasGemmAlgo_t) {
    if (comp != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    return gemm1(ta, tb, m, n, k, *(const float *)alpha, A, at, lda, B, bt, ldb, *(const float *)beta, C, ct, ldc);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void *alpha, const void *A, cudaDataType at, int lda,
                                          long long sa, const void *B, cudaDataType bt, int ldb, long long sb,
                                          const void *beta, void *C, cudaDataType ct, int ldc, long long sc,
                                          int batch, cublasComputeType_t comp, cublasGemmAlgo_t) {
    if (comp != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    size_t ea = at == CUDA_R_16BF ? 2 : 4, eb = bt == CUDA_R_16BF ? 2 : 4, ec = ct == CUDA_R_16BF ? 2 : 4;
    for (int i = 0; i < batch; i++) {
        cublasStatus_t s = gemm1(ta, tb, m, n, k, *(const float *)alpha, (const char *)A + i * sa * ea, at, lda,
                                 (const char *)B + i * sb * eb, bt, ldb, *(const float *)beta,
                                 (char *)C + i * sc * ec, ct, ldc);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}
}

/* ---- cuSOLVER (with -DAILORA_EMU_CUSOLVER; needs LAPACK) ---------------------------- */
#ifdef AILORA_EMU_CUSOLVER
#include <cusolverDn.h>

extern "C" void dgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a, const int *lda,
                        double *s, double *u, const int *ldu, double *vt, const int *ldvt, double *work,
                        const int *lwork, int *info, size_t, size_t);

struct cusolverDnContext {
    cudaStream_t stream;
};

extern "C" {
cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t *h) {
    *h = new cusolverDnContext();
    obj_add(*h);
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t h) {
    obj_remove(h, "cusolverDnDestroy of a handle that is not live (destroyed twice?)");
    return CUSOLVER_STATUS_SUCCESS;
}
cusolverStatus_t cusolverDnSetStream(cusolverDnHandle_t h, cudaStream_t s) {
    obj_check(h, "cusolverDnSetStream on a handle that is not live");
    obj_check(s, "cusolverDnSetStream to a stream that is not live");
    h->stream = s;
    return CUSOLVER_STATUS_SUCCESS;
}

/* LAPACK's optimal workspace for jobu = jobvt = 'S' (at least what any job needs) */
static int gesvd_lwork(int m, int n) {
    double q = 0;
    int info = 0, lw = -1, lda = m > 1 ? m : 1, ldvt = n > 1 ? n : 1;
    dgesvd_("S", "S", &m, &n, NULL, &lda, NULL, NULL, &lda, NULL, &ldvt, &q, &lw, &info, 1, 1);
    int need = (int)q;
    int k = m < n ? m : n;
    return need > 5 * k ? need : 5 * k;
}

cusolverStatus_t cusolverDnDgesvd_bufferSize(cusolverDnHandle_t h, int m, int n, int *lwork) {
    obj_check(h, "cusolverDnDgesvd_bufferSize on a handle that is not live");
    if (m < n || n < 0) return CUSOLVER_STATUS_INVALID_VALUE;  // cuSOLVER's gesvd: m >= n only
    *lwork = gesvd_lwork(m, n);
    return CUSOLVER_STATUS_SUCCESS;
}

/* Column-major A [m, n] (m >= n, as cuSOLVER requires) by LAPACK dgesvd, devInfo as
 * cuSOLVER writes it; rwork gets the unconverged superdiagonal (cuSOLVER's rwork). */
cusolverStatus_t cusolverDnDgesvd(cusolverDnHandle_t h, signed char jobu, signed char jobvt, int m, int n,
                                  double *A, int lda, double *S, double *U, int ldu, double *VT, int ldvt,
                                  double *work, int lwork, double *rwork, int *devInfo) {
    static long calls;
    obj_check(h, "cusolverDnDgesvd on a handle that is not live");
    obj_check(h->stream, "cusolverDnDgesvd on a stream that is not live");
    if (m < n || n < 0 || lda < (m > 1 ? m : 1)) return CUSOLVER_STATUS_INVALID_VALUE;
    if (!strchr("ASON", jobu) || !strchr("ASON", jobvt)) return CUSOLVER_STATUS_INVALID_VALUE;
    int k = m < n ? m : n;
    if ((jobu == 'A' || jobu == 'S') && ldu < (m > 1 ? m : 1)) return CUSOLVER_STATUS_INVALID_VALUE;
    if ((jobvt == 'A' && ldvt < (n > 1 ? n : 1)) || (jobvt == 'S' && ldvt < (k > 1 ? k : 1)))
        return CUSOLVER_STATUS_INVALID_VALUE;
    if (n == 0) return CUSOLVER_STATUS_SUCCESS;
    queued(h->stream);
    dev_check(A, sizeof(double) * ((size_t)lda * (n - 1) + m), "cusolverDnDgesvd: A is not live");
    dev_check(S, sizeof(double) * k, "cusolverDnDgesvd: S is not live");
    if (jobu == 'A' || jobu == 'S')
        dev_check(U, sizeof(double) * ((size_t)ldu * ((jobu == 'A' ? m : k) - 1) + m), "cusolverDnDgesvd: U is not live");
    if (jobvt == 'A' || jobvt == 'S')
        dev_check(VT, sizeof(double) * ((size_t)ldvt * (n - 1) + (jobvt == 'A' ? n : k)), "cusolverDnDgesvd: VT is not live");
    dev_check(work, sizeof(double) * (lwork > 0 ? lwork : 1), "cusolverDnDgesvd: work is not live");
    dev_check(devInfo, sizeof(int), "cusolverDnDgesvd: devInfo is not live");
    if (rwork) dev_check(rwork, sizeof(double) * (k > 1 ? k - 1 : 1), "cusolverDnDgesvd: rwork is not live");
    {
        std::lock_guard<std::mutex> g(book_lock);
        if (++calls == knob("AILORA_EMU_GESVD_NOCONV")) {
            *devInfo = 2;  // "2 superdiagonals did not converge"
            return CUSOLVER_STATUS_SUCCESS;
        }
    }
    if (lwork < gesvd_lwork(m, n)) {  // cuSOLVER reports a short workspace through devInfo
        *devInfo = -13;
        return CUSOLVER_STATUS_SUCCESS;
    }
    char ju = (char)jobu, jv = (char)jobvt;
    int info = 0;
    dgesvd_(&ju, &jv, &m, &n, A, &lda, S, U, &ldu, VT, &ldvt, work, &lwork, &info, 1, 1);
    if (info > 0 && rwork) memcpy(rwork, work + 1, sizeof(double) * (k > 1 ? k - 1 : 0));
    *devInfo = info;
    return CUSOLVER_STATUS_SUCCESS;
}
}
#endif

/* ---- kernels (gpu_kernels.cuh) ----------------------------------------------------- */

void k_embed(int bf, void *x, const void *table, const int32_t *tokens, int N, int C, cudaStream_t) {
    size_t es = bf ? 2 : 4;
    for (int n = 0; n < N; n++) memcpy((char *)x + (size_t)n * C * es, (const char *)table + (size_t)tokens[n] * C * es, C * es);
}

void k_rmsnorm_fwd(int bf, void *out, float *rstd, const void *x, const float *w, int N, int C, float eps, cudaStream_t) {
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C;
        float ss = 0.f;
        for (int c = 0; c < C; c++) ss += ldv(bf, x, o + c) * ldv(bf, x, o + c);
        float r = 1.0f / sqrtf(ss / C + eps);
        rstd[n] = r;
        for (int c = 0; c < C; c++) stv(bf, out, o + c, ldv(bf, x, o + c) * r * w[c]);
    }
}

void k_rmsnorm_bwd(int bf, void *dx, const void *dres, const void *dout, const void *x, const float *rstd,
                   const float *w, int N, int C, cudaStream_t) {
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C;
        float r = rstd[n], dot = 0.f;
        for (int c = 0; c < C; c++) dot += w[c] * ldv(bf, dout, o + c) * ldv(bf, x, o + c);
        float k = dot * r * r * r / C;
        for (int c = 0; c < C; c++) {
            float g = r * w[c] * ldv(bf, dout, o + c) - k * ldv(bf, x, o + c);
            stv(bf, dx, o + c, dres ? ldv(bf, dres, o + c) + g : g);
        }
    }
}

void k_add_bias(int bf, void *out, const float *bias, int N, int m, cudaStream_t) {
    for (size_t i = 0; i < (size_t)N * m; i++) stv(bf, out, i, ldv(bf, out, i) + bias[i % m]);
}

void k_add(int bf, void *out, const void *a, const void *b, size_t n, cudaStream_t) {
    for (size_t i = 0; i < n; i++) stv(bf, out, i, ldv(bf, a, i) + ldv(bf, b, i));
}

static void transpose_rope(int bf, void *dst, const void *src, const float *cs, const float *sn, const int32_t *pos,
                           int B, int T, int nheads, int hd, int group, int rope, int to_heads) {
    int half = hd / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nheads; h++) {
                size_t tok = ((size_t)b * T + t) * nheads * hd + (size_t)h * hd;
                size_t head = (((size_t)b * (nheads / group) + h / group) * T + t) * (size_t)group * hd + (size_t)(h % group) * hd;
                size_t in = to_heads ? tok : head, out = to_heads ? head : tok;
                for (int j = 0; j < half; j++) {
                    float a = ldv(bf, src, in + j), c = ldv(bf, src, in + j + half);
                    if (rope) {
                        size_t p = pos ? (size_t)pos[(size_t)b * T + t] : (size_t)t;
                        float co = cs[p * half + j], si = to_heads ? sn[p * half + j] : -sn[p * half + j];
                        stv(bf, dst, out + j, a * co - c * si);
                        stv(bf, dst, out + j + half, c * co + a * si);
                    } else {
                        stv(bf, dst, out + j, a);
                        stv(bf, dst, out + j + half, c);
                    }
                }
            }
}

void k_tok_to_heads(int bf, void *heads, const void *tok, const float *cs, const float *sn, const int32_t *pos,
                    int B, int T, int nheads, int hd, int group, int rope, cudaStream_t) {
    transpose_rope(bf, heads, tok, cs, sn, pos, B, T, nheads, hd, group, rope, 1);
}

void k_heads_to_tok(int bf, void *tok, const void *heads, const float *cs, const float *sn, const int32_t *pos,
                    int B, int T, int nheads, int hd, int group, int rope, cudaStream_t) {
    transpose_rope(bf, tok, heads, cs, sn, pos, B, T, nheads, hd, group, rope, 0);
}

void k_attn_mask(int bf, void *S, const int8_t *mask, long rows, int T, int group, int nh, cudaStream_t) {
    for (long r = 0; r < rows; r++) {
        int t = (int)((r / group) % T);
        const int8_t *m = mask + (size_t)(r / ((long)nh * T)) * T;
        for (int j = 0; j <= t; j++)
            if (!(m[t] ? m[j] : j == t)) stv(bf, S, (size_t)r * T + j, -INFINITY);
    }
}

void k_softmax_fwd(int bf, void *SP, float *lse, long rows, int T, int group, int Tc, cudaStream_t) {
    for (long r = 0; r < rows; r++) {
        int t = (int)((r / group) % T), jend = (t / Tc + 1) * Tc;
        size_t o = (size_t)r * T;
        float mx = -INFINITY, sum = 0.f;
        for (int j = 0; j <= t; j++) mx = fmaxf(mx, ldv(bf, SP, o + j));
        for (int j = 0; j <= t; j++) sum += expf(ldv(bf, SP, o + j) - mx);
        for (int j = 0; j < jend; j++) stv(bf, SP, o + j, j <= t ? expf(ldv(bf, SP, o + j) - mx) * (1.0f / sum) : 0.f);
        lse[r] = mx + logf(sum);
    }
}

void k_softmax_bwd(int bf, void *SP, void *dPS, const float *lse, long rows, int T, int group, int Tc, cudaStream_t) {
    for (long r = 0; r < rows; r++) {
        int t = (int)((r / group) % T), jend = (t / Tc + 1) * Tc;
        size_t o = (size_t)r * T;
        float dot = 0.f;
        for (int j = 0; j <= t; j++) dot += expf(ldv(bf, SP, o + j) - lse[r]) * ldv(bf, dPS, o + j);
        for (int j = 0; j < jend; j++) {
            float p = j <= t ? expf(ldv(bf, SP, o + j) - lse[r]) : 0.f;
            float ds = j <= t ? p * (ldv(bf, dPS, o + j) - dot) : 0.f;
            stv(bf, SP, o + j, p);
            stv(bf, dPS, o + j, ds);
        }
    }
}

void k_softmax_bwd_p(int bf, const void *P, void *dPS, long rows, int T, int group, int Tc, cudaStream_t) {
    for (long r = 0; r < rows; r++) {
        int t = (int)((r / group) % T), jend = (t / Tc + 1) * Tc;
        size_t o = (size_t)r * T;
        float dot = 0.f;
        for (int j = 0; j <= t; j++) dot += ldv(bf, P, o + j) * ldv(bf, dPS, o + j);
        for (int j = 0; j < jend; j++)
            stv(bf, dPS, o + j, j <= t ? ldv(bf, P, o + j) * (ldv(bf, dPS, o + j) - dot) : 0.f);
    }
}

void k_swiglu_fwd(int bf, void *act, const void *g, const void *u, size_t n, cudaStream_t) {
    for (size_t i = 0; i < n; i++) {
        float x = ldv(bf, g, i);
        stv(bf, act, i, x / (1.0f + expf(-x)) * ldv(bf, u, i));
    }
}

void k_swiglu_bwd(int bf, void *dg, void *du, const void *g, const void *u, size_t n, cudaStream_t) {
    for (size_t i = 0; i < n; i++) {
        float da = ldv(bf, dg, i), x = ldv(bf, g, i), uu = ldv(bf, u, i), sig = 1.0f / (1.0f + expf(-x));
        stv(bf, du, i, da * x * sig);
        stv(bf, dg, i, da * uu * sig * (1.0f + x * (1.0f - sig)));
    }
}

static int target_of(const int32_t *labels, int n, int T) { return (n % T) + 1 < T ? labels[n + 1] : -100; }

void k_cross_entropy(int bf, void *dl, double *row_loss, const float *logits, const int32_t *labels, int N, int T,
                     int V, cudaStream_t) {
    for (int n = 0; n < N; n++) {
        int target = target_of(labels, n, T);
        const float *row = logits + (size_t)n * V;
        size_t o = (size_t)n * V;
        if (target == -100) {
            for (int j = 0; j < V; j++) stv(bf, dl, o + j, 0.f);
            row_loss[n] = 0.0;
            continue;
        }
        float mx = -INFINITY;
        for (int j = 0; j < V; j++) mx = fmaxf(mx, row[j]);
        double s = 0.0;
        for (int j = 0; j < V; j++) s += (double)expf(row[j] - mx);
        float lse = mx + (float)log(s);
        for (int j = 0; j < V; j++) stv(bf, dl, o + j, expf(row[j] - lse) - (j == target ? 1.f : 0.f));
        row_loss[n] = (double)mx + log(s) - row[target];
    }
}

void k_loss_reduce(double *out, const double *row_loss, const int32_t *labels, int N, int T, cudaStream_t) {
    double sum = 0, count = 0;
    for (int n = 0; n < N; n++)
        if (target_of(labels, n, T) != -100) sum += row_loss[n], count += 1;
    out[0] = sum, out[1] = count;
}

void k_sumsq(double *out, double *partials, const float *x, size_t n, cudaStream_t) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    partials[0] = s;
    out[0] = s;
}

void k_adamw(int bf, float *p, void *copy, const float *g, float *m, float *v, size_t n, float clip, float decay,
             float b1, float b2, float eps, float step_size, float bc2_sqrt, cudaStream_t) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] * clip, pi = p[i] * decay;
        float mi = b1 * m[i] + (1 - b1) * gi;
        float vi = b2 * v[i] + (1 - b2) * gi * gi;
        pi -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
        p[i] = pi, m[i] = mi, v[i] = vi;
        if (bf && copy) ((uint16_t *)copy)[i] = f2bf(pi);
    }
}

void k_to_bf16(void *copy, const float *p, size_t n, cudaStream_t) {
    for (size_t i = 0; i < n; i++) ((uint16_t *)copy)[i] = f2bf(p[i]);
}

void k_from_float(int bf, void *dst, const float *src, size_t n, cudaStream_t) {
    for (size_t i = 0; i < n; i++) stv(bf, dst, i, src[i]);
}

/* ---- greedy decoding (gpu_generate_greedy) ---------------------------------------- */

void k_rope_rows(int bf, void *x, const float *cs, const float *sn, const int32_t *pos, int n, int nheads, int hd,
                 cudaStream_t) {
    int half = hd / 2;
    for (int i = 0; i < n; i++)
        for (int h = 0; h < nheads; h++) {
            size_t o = ((size_t)i * nheads + h) * hd, p = (size_t)pos[i] * half;
            for (int j = 0; j < half; j++) {
                float a = ldv(bf, x, o + j), c = ldv(bf, x, o + j + half);
                stv(bf, x, o + j, a * cs[p + j] - c * sn[p + j]);
                stv(bf, x, o + j + half, c * cs[p + j] + a * sn[p + j]);
            }
        }
}

void k_kv_store(int bf, void *kc, void *vc, const void *k, const void *v, const int32_t *row, const int32_t *slot,
                int n, int S, int kd, cudaStream_t) {
    size_t es = bf ? 2 : 4;
    for (int i = 0; i < n; i++) {
        size_t dst = ((size_t)row[i] * S + slot[i]) * kd * es;
        memcpy((char *)kc + dst, (const char *)k + (size_t)i * kd * es, kd * es);
        memcpy((char *)vc + dst, (const char *)v + (size_t)i * kd * es, kd * es);
    }
}

/* per (token, head): scores of the visible slots, max, exp, sum, weighted values / sum */
void k_decode_attn(int bf, void *y, const void *q, const void *kc, const void *vc, const int8_t *valid,
                   const int32_t *row, const int32_t *slot, int n, int S, int nh, int nkv, int hd, float scale,
                   cudaStream_t) {
    int kd = nkv * hd, group = nh / nkv;
    float *sc = (float *)malloc(sizeof(float) * (size_t)S);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < nh; h++) {
            int b = row[i], t = slot[i];
            const int8_t *ok = valid + (size_t)b * S;
            size_t qo = ((size_t)i * nh + h) * hd, ko = (size_t)b * S * kd + (size_t)(h / group) * hd;
            float mx = -INFINITY, sum = 0.f;
            for (int j = 0; j <= t; j++) {
                int seen = ok[t] ? ok[j] != 0 : j == t;  // a padding query sees only itself
                float d = 0.f;
                for (int c = 0; seen && c < hd; c++) d += ldv(bf, q, qo + c) * ldv(bf, kc, ko + (size_t)j * kd + c);
                sc[j] = seen ? d * scale : -INFINITY;
                mx = fmaxf(mx, sc[j]);
            }
            for (int j = 0; j <= t; j++) sum += (sc[j] = sc[j] == -INFINITY ? 0.f : expf(sc[j] - mx));
            for (int c = 0; c < hd; c++) {
                float acc = 0.f;
                for (int j = 0; j <= t; j++)
                    if (sc[j] != 0.f) acc += sc[j] * ldv(bf, vc, ko + (size_t)j * kd + c);
                stv(bf, y, qo + c, acc * (1.0f / sum));
            }
        }
    free(sc);
}

void k_argmax(int32_t *out, const float *logits, int n, int V, cudaStream_t) {
    for (int i = 0; i < n; i++) {
        const float *r = logits + (size_t)i * V;
        int best = 0;
        for (int v = 1; v < V; v++) best = r[v] > r[best] ? v : best;
        out[i] = best;
    }
}

/* ---- NCCL (with -DAILORA_HAVE_NCCL): ranks are threads of this process ---------------- */
#ifdef AILORA_HAVE_NCCL
#include <nccl.h>
#include <pthread.h>

typedef struct {
    ncclUniqueId id;
    int n;
    pthread_barrier_t bar;
    const void *slot[64];
} Group;

struct ncclComm {
    Group *g;
    int rank;
};

static pthread_mutex_t groups_lock = PTHREAD_MUTEX_INITIALIZER;
static Group *groups[256];
static int ngroups;
static unsigned long long next_id = 1;

extern "C" {
const char *ncclGetErrorString(ncclResult_t) { return "emulated NCCL error"; }

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    memset(id, 0, sizeof *id);
    pthread_mutex_lock(&groups_lock);
    unsigned long long v = next_id++;
    pthread_mutex_unlock(&groups_lock);
    memcpy(id->internal, &v, sizeof v);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
    if (nranks > 64 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
    pthread_mutex_lock(&groups_lock);
    Group *g = NULL;
    for (int i = 0; i < ngroups && !g; i++)
        if (memcmp(&groups[i]->id, &id, sizeof id) == 0) g = groups[i];
    if (!g && ngroups < 256) {
        g = (Group *)calloc(1, sizeof *g);
        g->id = id, g->n = nranks;
        pthread_barrier_init(&g->bar, NULL, (unsigned)nranks);
        groups[ngroups++] = g;
    }
    pthread_mutex_unlock(&groups_lock);
    if (!g || g->n != nranks) return ncclInvalidArgument;
    *comm = (ncclComm_t)calloc(1, sizeof(struct ncclComm));
    (*comm)->g = g, (*comm)->rank = rank;
    pthread_barrier_wait(&g->bar);  // collective, as the real one
    return ncclSuccess;
}

/* root's buffer to every rank (int32, float) */
ncclResult_t ncclBroadcast(const void *send, void *recv, size_t count, ncclDataType_t type, int root, ncclComm_t comm,
                           cudaStream_t) {
    if (type != ncclInt32 && type != ncclFloat) return ncclInvalidArgument;
    Group *g = comm->g;
    if (comm->rank == root) g->slot[root] = send;
    pthread_barrier_wait(&g->bar);
    if (comm->rank != root) memcpy(recv, g->slot[root], count * 4);
    pthread_barrier_wait(&g->bar);  // the root's buffer is read
    if (comm->rank == root && recv != send) memmove(recv, send, count * 4);
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    free(comm);
    return ncclSuccess;
}

/* sum in rank order (every rank gets the same bits, as with NCCL) */
ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t) {
    if (op != ncclSum || (type != ncclFloat && type != ncclDouble && type != ncclBfloat16)) return ncclInvalidArgument;
    Group *g = comm->g;
    g->slot[comm->rank] = send;
    pthread_barrier_wait(&g->bar);
    size_t es = type == ncclDouble ? 8 : (type == ncclFloat ? 4 : 2);
    void *tmp = malloc(count * es);
    for (size_t i = 0; i < count; i++) {
        double s = 0;
        for (int r = 0; r < g->n; r++) {
            if (type == ncclDouble) s += ((const double *)g->slot[r])[i];
            else if (type == ncclFloat) s = (float)(s + ((const float *)g->slot[r])[i]);
            else s = bf2f(f2bf((float)(s + bf2f(((const uint16_t *)g->slot[r])[i]))));
        }
        if (type == ncclDouble) ((double *)tmp)[i] = s;
        else if (type == ncclFloat) ((float *)tmp)[i] = (float)s;
        else ((uint16_t *)tmp)[i] = f2bf((float)s);
    }
    pthread_barrier_wait(&g->bar);  // everyone has read every slot
    memcpy(recv, tmp, count * es);
    free(tmp);
    return ncclSuccess;
}
}
#endif
