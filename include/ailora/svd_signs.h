/* svd_signs.h - the canonical sign convention of every SVD backend.
 *
 * Plain C, no MPI: shared by the CPU backends (svd.c), the cuSOLVER backend and
 * the standalone GPU check (tests/gpu/svd_check.c), so all of them agree.
 */
#ifndef AILORA_SVD_SIGNS_H
#define AILORA_SVD_SIGNS_H

#ifdef __cplusplus
extern "C" {
#endif

/* For U [m, k] and Vt [k, n] row-major: flip each singular pair (U[:, j], Vt[j, :])
 * so that the entry of U[:, j] with the largest magnitude (the first one on ties)
 * is positive. */
void svd_canonical_signs(int m, int n, int k, double *U, double *Vt);

#ifdef __cplusplus
}
#endif

#endif
