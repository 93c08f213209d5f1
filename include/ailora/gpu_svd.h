/* gpu_svd.h - full-spectrum float64 SVD of one matrix on the GPU (cuSOLVER).
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
 * AIL_ERR_LIB (CUDA / cuSOLVER failure, no convergence), AIL_ERR_ARG (no CUDA). */
int gpu_svd_f64(int m, int n, const double *w, double *S, double *U, double *Vt);

#ifdef __cplusplus
}
#endif

#endif
