/* updatediag.h - spectral diagnostics of a trained adapter's update, measured
 * against the singular vectors of the frozen weight it adapts.
 *
 * For a module W [m, n] = U diag(S) V^T (the SVD cache, k = min(m, n)) with initial
 * adapters A0 [r, n], B0 [m, r] and trained A, B, the update training has made is
 *
 *   D = s (B A - B0 A0) = s P Q^T,   P = [B | -B0]  (m, 2r),  Q = [A ; A0]^T  (n, 2r)
 *
 * so rank(D) <= 2r, and its SVD never needs an m x n matrix: thin QR P = Qp Rp and
 * Q = Qq Rq, then the SVD of the small core  s Rp Rq^T = Uc diag(sigma) Vc^T  gives
 * D = (Qp Uc) diag(sigma) (Qq Vc)^T. Reported, with K = the number of singular
 * vectors taken from each end of W's spectrum:
 *
 *   sigma [2r]         singular values of D, descending (zeros past its rank)
 *   effective_rank     exp(entropy of sigma / sum sigma) (Roy and Vetterli, 2007);
 *                      0 when D = 0
 *   energy_{u,v}_{top,bottom}
 *                      share of ||D||_F^2 inside span(U[:, 0:K]), span(U[:, k-K:k])
 *                      (left side: ||U_K^T D||_F^2 / ||D||_F^2) and span(V[:, ...])
 *                      (right side: ||D V_K||_F^2 / ||D||_F^2); NaN when D = 0
 *   cos_{u,v}_{top,bottom} [r]
 *                      cosines of the principal angles between D's leading
 *                      d-dimensional left (right) singular subspace and the K top
 *                      (bottom) singular vectors of W, descending; d = min(r, K,
 *                      numerical rank of D: sigma_j > 1e-12 sigma_0); NaN past d
 *
 * Everything in float64. What it says: an update whose energy sits in U_top / V_top
 * moves the principal directions (PiSSA's bet), one in U_bottom / V_bottom the minor
 * ones (MiLoRA's); the effective rank says how many directions training used.
 */
#ifndef AILORA_UPDATEDIAG_H
#define AILORA_UPDATEDIAG_H

/* The singular vectors of W at both ends of its spectrum, as the SVD cache holds
 * them (row-major): columns 0..K-1 of U and of V are the top K, of the bottom
 * arrays the last K (index k-K+j in column j). */
typedef struct {
    int m, n, K;
    const double *u_top, *u_bottom;  /* (m, K) */
    const double *v_top, *v_bottom;  /* (n, K): rows of Vt, transposed */
} SpectrumEnds;

typedef struct {
    int r;                     /* adapter rank; arrays below have 2r or r entries */
    double *sigma;             /* [2r] */
    double effective_rank;
    double energy_u_top, energy_u_bottom, energy_v_top, energy_v_bottom;
    double *cos_u_top, *cos_u_bottom, *cos_v_top, *cos_v_bottom;  /* [r] each */
} UpdateDiag;

int updatediag_alloc(int r, UpdateDiag *d);
void updatediag_free(UpdateDiag *d);

/* Diagnostics of D = s (B A - B0 A0) against ends (A, A0 [r, n]; B, B0 [m, r],
 * row-major float64). */
int updatediag_compute(int m, int n, int r, double s, const double *A, const double *B, const double *A0,
                       const double *B0, const SpectrumEnds *ends, UpdateDiag *d);

#endif
