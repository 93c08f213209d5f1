/* svd_bdvectors.h - selected singular vectors of an upper bidiagonal B (q x q, d [q]
 * diagonal, e [q - 1] superdiagonal) whose singular values S [q] (descending) dqds
 * has already computed. Internal to src/svd: the one-rank selected route
 * (svd_select.c) and the distributed one (svd_dist_select.c) both end up here.
 *
 * For each contiguous run of the indices sel [nsel] (ascending into S):
 *   1. inverse iteration at S's values on the Golub-Kahan tridiagonal (dstein)
 *   2. where those vectors fail the check, dbdsvdx (bisection, then inverse
 *      iteration), counted in info->redone
 * and each run is re-orthonormalized and checked (svd.h: SVD_SELECT_CHECK_TOL).
 * Out: Z [2q, nsel] column-major, column j = (u; v) of the value S[sel[j]], u in
 * rows [0, q), v in rows [q, 2q). A lower bidiagonal is the transpose of an upper
 * one with the same d, e: call this with them and swap u and v.
 *
 * Returns an error only for out of memory. A run that fails both tiers sets
 * info->fallback and info->reason (the caller decides: dgesdd or an error). d and e
 * may have negligible entries zeroed in place (dbdsvdx), the same ones every time.
 * Fault sites: AILORA_FAULT=dstein:R (skip tier 1), bidiag:R (both fail). */
#ifndef AILORA_SVD_BDVECTORS_H
#define AILORA_SVD_BDVECTORS_H

#include "ailora/svd.h"

int svd_bidiag_select(int q, double *d, double *e, const double *S, int nsel, const int *sel, double *Z,
                      SvdSelectInfo *info);

#endif
