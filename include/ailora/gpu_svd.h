/* gpu_svd.h - float64 SVDs on the GPU (cuSOLVER): one matrix (gpu_svd_f64), or a
 * stream of them with only the kept singular vectors copied back (GpuSvdPipe).
 *
 * Plain C without MPI, so the standalone GPU check (tests/gpu/svd_check.c) builds
 * where there is no MPI. Same contract as svd_lapack (svd.h): for W [m, n]
 * row-major, k = min(m, n), W = U diag(S) Vt with U [m, k], Vt [k, n] row-major,
 * S descending, canonical signs (svd_signs.h).
 *
 * Method: cusolverDnDgesvd (Householder bidiagonalization + implicit QR, the
 * algorithm of LAPACK dgesvd), backward stable like the CPU backends; wide W
 * is decomposed as its column-major view W^T, tall W transposed first (gesvd
 * wants rows >= columns). Checked at 1e-12 * smax for S, 1e-12 for
 * orthonormality and reconstruction (experiments/bench/gpu_svd.sh).
 */
#ifndef AILORA_GPU_SVD_H
#define AILORA_GPU_SVD_H

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices this process sees; 0 without CUDA support, without a
 * driver or on any CUDA error (never an error itself). */
int gpu_svd_available(void);

/* Makes device `device` (0 <= device < gpu_svd_available()) current for this
 * process's later gpu_svd_f64 calls. */
int gpu_svd_set_device(int device);

/* SVD of w [m, n] row-major on the current device (w is left unchanged).
 * S [k], U [m, k], Vt [k, n] on the host. Errors: AIL_ERR_MEM (device memory),
 * AIL_ERR_LIB (CUDA / cuSOLVER failure), AIL_ERR_NUMERIC (no convergence),
 * AIL_ERR_ARG (no CUDA). A one-slot GpuSvdPipe underneath. */
int gpu_svd_f64(int m, int n, const double *w, double *S, double *U, double *Vt);

/* ---- streamed SVDs: several matrices in flight on one GPU ---------------------------
 *
 * A pipe has nslots slots; each has its own CUDA stream (cuSOLVER and cuBLAS
 * handles bound to it), device buffers and pinned host staging, grown to the
 * largest matrix it has seen. A slot cycles
 *
 *     w = gpu_svd_input(p, s, m, n);           fill w [m, n] row-major (host)
 *     gpu_svd_submit(p, s, m, n, nk, kept);    queue H2D, gesvd, gather, D2H; returns at once
 *     ... host work, other slots ...
 *     gpu_svd_wait(p, s, &res);                S [k], U [m, nk], Vt [nk, n] (pinned)
 *
 * and the results stay valid until the slot's next gpu_svd_submit. kept[0..nk)
 * (ascending, in [0, k), k = min(m, n); nk == k: all) selects the singular vectors:
 * the device gathers columns kept[] of U and rows kept[] of Vt, one copy or
 * transpose per contiguous index range, so only nk (m + n) + k doubles come back.
 * Signs are canonical over the kept pairs (svd_signs.h: each pair on its own, so
 * the same as the full SVD's signs restricted to kept[]). Host memory per slot:
 * m n + k + nk (m + n) doubles pinned; device: 2 m n + k (max(m, n) + k + 2)
 * doubles + the gesvd workspace (the gathered vectors reuse the two m n buffers).
 *
 * Errors name the failing call and the matrix shape. After any error the pipe is
 * unusable except for gpu_svd_pipe_free, which waits for every stream and frees
 * everything (also after a failed create: *pipe is NULL then). */
typedef struct GpuSvdPipe GpuSvdPipe;

typedef struct {
    int m, n, k, nkept;  /* the shape; k = min(m, n) */
    const double *S;     /* [k], descending */
    const double *U;     /* [m, nkept] row-major: columns kept[] of U */
    const double *Vt;    /* [nkept, n] row-major: rows kept[] of Vt */
} GpuSvdResult;

/* nslots >= 1 slots on the current device. */
int gpu_svd_pipe_create(int nslots, GpuSvdPipe **pipe);
/* Waits for every slot's stream, frees all; NULL is a no-op. */
void gpu_svd_pipe_free(GpuSvdPipe *pipe);
/* The slot's pinned input buffer for an [m, n] matrix (grown as needed); NULL
 * with an error recorded if the slot is busy (submitted, not waited) or on failure. */
double *gpu_svd_input(GpuSvdPipe *pipe, int slot, int m, int n);
/* Queues the SVD of the [m, n] matrix in the slot's input (same m, n as the last
 * gpu_svd_input); kept is copied. */
int gpu_svd_submit(GpuSvdPipe *pipe, int slot, int m, int n, int nkept, const int *kept);
/* Waits for the slot's SVD: AIL_ERR_NUMERIC if gesvd did not converge. */
int gpu_svd_wait(GpuSvdPipe *pipe, int slot, GpuSvdResult *res);

#ifdef __cplusplus
}
#endif

#endif
