/* svd_bdvectors.c - selected singular vectors of a bidiagonal matrix, from its values
 * (svd_bdvectors.h): shared by the one-rank selected route (svd_select.c) and the
 * distributed one (svd_dist_select.c), which both reduce W to B first. */
#include "svd/svd_bdvectors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blis.h>

#include "ailora/error.h"
#include "base/lapack.h"

/* G [cnt, cnt] := X^T X (upper triangle) for X [rows, cnt] column-major with leading
 * dimension ld: one BLAS-3 call (the plain loops were ~9% of the route at 1024^2). */
static void gram_upper(const double *X, int ld, int rows, int cnt, double *G) {
    double one = 1.0, zero = 0.0;
    bli_dsyrk(BLIS_UPPER, BLIS_TRANSPOSE, cnt, rows, &one, (double *)X, 1, ld, &zero, G, 1, cnt);
}

/* Largest |u_i . u_j - delta_ij| over the columns [0, cols) of Z (ld rows, first rows
 * entries from offset off); G: cols x cols workspace. */
static double orth_dev(const double *Z, int ld, int off, int rows, int cols, double *G) {
    double worst = 0.0;
    gram_upper(Z + off, ld, rows, cols, G);
    for (int b = 0; b < cols; b++)
        for (int a = 0; a <= b; a++) worst = fmax(worst, fabs(G[(size_t)b * cols + a] - (a == b)));
    return worst;
}

/* Re-orthonormalize the cnt columns of Z's rows [off, off + rows): inverse iteration
 * leaves vectors of tiny singular values orthogonal only to about eps ||B|| / gap
 * (the + and - eigenpairs of the Golub-Kahan matrix sit 2s apart, and only one side
 * is computed); re-orthonormalizing moves each by that much, which the residual
 * check below then bounds. X = Q R with R's diagonal positive, so Q is the same
 * basis modified Gram-Schmidt would give: Cholesky QR twice (BLAS-3: G = X^T X = R^T R,
 * X := X R^-1; the second pass removes the first's rounding), or, where the
 * columns are too far from orthonormal for Cholesky, modified Gram-Schmidt twice.
 * G: cnt x cnt workspace. */
static void reorthonormalize(double *Z, int ld, int off, int rows, int cnt, double *G) {
    double *X = Z + off, one = 1.0;
    int chol_ok = 1;
    for (int pass = 0; pass < 2 && chol_ok && cnt > 0; pass++) {
        int info = 0;
        gram_upper(X, ld, rows, cnt, G);
        dpotrf_("U", &cnt, G, &cnt, &info, 1);
        if (info != 0) chol_ok = 0;
        else bli_dtrsm(BLIS_RIGHT, BLIS_UPPER, BLIS_NO_TRANSPOSE, BLIS_NONUNIT_DIAG, rows, cnt, &one, G, 1,
                       cnt, X, 1, ld);
    }
    if (chol_ok) return;
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < cnt; j++) {
            double *x = X + (size_t)j * ld;
            for (int i = 0; i < j; i++) {
                const double *y = X + (size_t)i * ld;
                double dot = 0.0;
                for (int t = 0; t < rows; t++) dot += x[t] * y[t];
                for (int t = 0; t < rows; t++) x[t] -= dot * y[t];
            }
            double nrm = 0.0;
            for (int t = 0; t < rows; t++) nrm += x[t] * x[t];
            nrm = sqrt(nrm);
            if (nrm > 0)
                for (int t = 0; t < rows; t++) x[t] /= nrm;
        }
}

/* The check of B's vectors (d, e upper bidiagonal, q x q): u and v each
 * orthonormal, ||B v - s u|| and ||B^T u - s v|| small, s equal to dqds's value.
 * Orthonormal factors with residual r span subspaces within r / gap of the exact
 * ones (Wedin), so passing it gives the accuracy contract of svd.h. */
static int check_bidiag(int q, const double *d, const double *e, const double *Z, int ldz, int cnt,
                        const double *s, const double *S_ref, double smax, double *G, SvdSelectInfo *info) {
    double res = 0.0, sdiff = 0.0;
    for (int j = 0; j < cnt; j++) {
        const double *u = Z + (size_t)j * ldz, *v = u + q;
        double r1 = 0.0, r2 = 0.0;
        for (int i = 0; i < q; i++) {
            double bv = d[i] * v[i] + (i + 1 < q ? e[i] * v[i + 1] : 0.0) - s[j] * u[i];
            double bu = d[i] * u[i] + (i > 0 ? e[i - 1] * u[i - 1] : 0.0) - s[j] * v[i];
            r1 += bv * bv, r2 += bu * bu;
        }
        res = fmax(res, sqrt(fmax(r1, r2)));
        sdiff = fmax(sdiff, fabs(s[j] - S_ref[j]));
    }
    double orth = fmax(orth_dev(Z, ldz, 0, q, cnt, G), orth_dev(Z, ldz, q, q, cnt, G));
    double scale = smax > 0 ? smax : 1.0;
    info->orth_err = fmax(info->orth_err, orth);
    info->resid_err = fmax(info->resid_err, res / scale);
    if (!(orth <= SVD_SELECT_CHECK_TOL && res <= SVD_SELECT_CHECK_TOL * scale &&
          sdiff <= SVD_SELECT_CHECK_TOL * scale)) {
        snprintf(info->reason, sizeof info->reason,
                 "B's vectors failed the check (orthonormality %.2e, residual %.2e smax, "
                 "values %.2e smax; limit %.0e)",
                 orth, res / scale, sdiff / scale, SVD_SELECT_CHECK_TOL);
        return 0;
    }
    return 1;
}

/* Both halves of the cnt vectors Zr re-orthonormalized, then checked (check_bidiag). */
static int settle_vectors(int q, const double *d, const double *e, double *Zr, int ldz, int cnt,
                          const double *s, const double *S_ref, double smax, double *G, SvdSelectInfo *info) {
    reorthonormalize(Zr, ldz, 0, q, cnt, G);
    reorthonormalize(Zr, ldz, q, q, cnt, G);
    return check_bidiag(q, d, e, Zr, ldz, cnt, s, S_ref, smax, G, info);
}

/* B's vectors for the values s [cnt] (descending, from dqds) by inverse iteration on
 * the Golub-Kahan tridiagonal T (order 2q, zero diagonal, off-diagonal d1, e1, d2,
 * ..., dq): T z = s z for z = (v1, u1, v2, u2, ...) / sqrt(2). dqds already has the
 * values to high relative accuracy, so dstein starts from them; dbdsvdx would find
 * them again by bisection, which was the largest part of its time (1024^2, 128
 * vectors: ~20% of the whole route). Z [2q, cnt] (ldz): u in rows [0, q), v in
 * rows [q, 2q), as dbdsvdx lays them out. Returns 1, 0 where dstein reports failure
 * (the caller checks the result either way: check_bidiag), or -1 out of memory. */
static int tgk_inverse_iteration(int q, const double *d, const double *e, int cnt, const double *s,
                                 double *Z, int ldz) {
    int n2 = 2 * q, info = 0, one_block = 1;
    double *diag = ail_calloc((size_t)n2, sizeof(double)), *off = ail_malloc(sizeof(double) * (size_t)n2);
    double *w = ail_malloc(sizeof(double) * (size_t)cnt), *z = ail_malloc(sizeof(double) * (size_t)n2 * cnt);
    double *work = ail_malloc(sizeof(double) * 5 * (size_t)n2);
    int *iblock = ail_malloc(sizeof(int) * (size_t)cnt), *iwork = ail_malloc(sizeof(int) * (size_t)n2);
    int *ifail = ail_malloc(sizeof(int) * (size_t)cnt);
    int ok = diag && off && w && z && work && iblock && iwork && ifail ? 1 : -1;
    if (ok == 1) {
        for (int i = 0; i < q; i++) {
            off[2 * i] = d[i];
            if (i + 1 < q) off[2 * i + 1] = e[i];
        }
        for (int j = 0; j < cnt; j++) w[j] = s[cnt - 1 - j], iblock[j] = one_block;  // ascending
        dstein_(&n2, diag, off, &cnt, w, iblock, &n2, z, &n2, work, iwork, ifail, &info);
        ok = info == 0;
    }
    const double sqrt2 = 1.4142135623730951;
    for (int j = 0; j < cnt && ok == 1; j++) {
        const double *zj = z + (size_t)(cnt - 1 - j) * n2;  // value s[j]
        double *u = Z + (size_t)j * ldz, *v = u + q;
        for (int i = 0; i < q; i++) v[i] = sqrt2 * zj[2 * i], u[i] = sqrt2 * zj[2 * i + 1];
    }
    free(diag), free(off), free(w), free(z), free(work), free(iblock), free(iwork), free(ifail);
    return ok;
}

/* dbdsvdx for indices il..iu (1-based, IL = 1 the largest) into Zr [2q, want]:
 * bisection for the values, then inverse iteration. dbdsvdx widens the window of
 * IL..IU by 2 smax ulp q and, where it then holds more values than asked (ties at
 * its edge), keeps the LARGEST: a run ending at the smallest value therefore
 * starts where no tie can cut it (16 smax eps q above, from the dqds values) and
 * keeps the last `want` of what comes back. sx [want]: their values. 0 on failure. */
static int bidiag_dbdsvdx(int q, double *d, double *e, const double *S, int il, int iu, double *Zr,
                          double *sx, char *reason, size_t reason_len) {
    int want = iu - il + 1, ldz = 2 * q, ns = 0, info = 0;
    double tol = 16.0 * S[0] * 2.220446049250313e-16 * q;
    if (iu == q)
        while (il > 1 && S[il - 2] <= S[iu - want] + tol) il--;
    // dbdsvdx writes up to q + 1 columns whatever the range (a split of B at a zero
    // d_i parks a vector in column q + 1); sb: its S (n entries, also workspace)
    double *z = ail_malloc(sizeof(double) * (size_t)ldz * ((size_t)q + 1));
    double *sb = ail_malloc(sizeof(double) * (size_t)q + 1), *work = ail_malloc(sizeof(double) * 14 * (size_t)q);
    int *iwork = ail_malloc(sizeof(int) * 12 * (size_t)q);
    int ok = z && sb && work && iwork ? 1 : -1;
    if (ok == 1) {
        double vl = 0, vu = 0;
        dbdsvdx_("U", "V", "I", &q, d, e, &vl, &vu, &il, &iu, &ns, sb, z, &ldz, work, iwork, &info, 1, 1, 1);
        ok = info == 0 && ns == iu - il + 1;
        if (!ok)
            snprintf(reason, reason_len, "dbdsvdx failed on indices %d-%d (info %d, %d of %d vectors)", il - 1,
                     iu - 1, info, ns, iu - il + 1);
    }
    for (int j = 0; j < want && ok == 1; j++) {
        int col = ns - want + j;  // the last `want` (== j when il was not moved)
        memcpy(Zr + (size_t)j * ldz, z + (size_t)col * ldz, sizeof(double) * (size_t)ldz);
        sx[j] = sb[col];
    }
    free(z), free(sb), free(work), free(iwork);
    return ok;
}

int svd_bidiag_select(int q, double *d, double *e, const double *S, int nsel, const int *sel, double *Z,
                      SvdSelectInfo *info) {
    int ldz = 2 * q, ok = 1;
    double smax = q > 0 ? S[0] : 0.0;
    double *G = ail_malloc(sizeof(double) * (nsel ? (size_t)nsel * nsel : 1));  // Gram matrices of a run
    double *sx = ail_malloc(sizeof(double) * ((size_t)nsel + 1));
    if (!G || !sx) {
        free(G), free(sx);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for the vectors of a %d bidiagonal", q);
    }
    for (int j0 = 0, j1; j0 < nsel && ok; j0 = j1) {
        for (j1 = j0 + 1; j1 < nsel && sel[j1] == sel[j1 - 1] + 1;) j1++;
        int cnt = j1 - j0, il = sel[j0] + 1, iu = sel[j1 - 1] + 1;
        double *Zr = Z + (size_t)j0 * ldz;
        const double *s = S + sel[j0];
        if (AIL_FAULT("bidiag")) {  // AILORA_FAULT=bidiag:R: both tiers fail
            snprintf(info->reason, sizeof info->reason, "B's vectors failed on indices %d-%d (injected fault)",
                     il - 1, iu - 1);
            ok = 0;
            break;
        }
        // tier 1: inverse iteration at dqds's values
        int tgk = AIL_FAULT("dstein") ? 0 : tgk_inverse_iteration(q, d, e, cnt, s, Zr, ldz);
        if (tgk < 0) {
            free(G), free(sx);
            return AIL_ERROR(AIL_ERR_MEM, "out of memory for inverse iteration on a %d bidiagonal", q);
        }
        if (tgk) {
            SvdSelectInfo trial = *info;  // a failed check here is not the caller's failure reason
            if (settle_vectors(q, d, e, Zr, ldz, cnt, s, s, smax, G, &trial)) {
                *info = trial;
                continue;
            }
        }
        // tier 2: dbdsvdx finds the values again by bisection
        info->redone++;
        int dx = bidiag_dbdsvdx(q, d, e, S, il, iu, Zr, sx, info->reason, sizeof info->reason);
        if (dx < 0) {
            free(G), free(sx);
            return AIL_ERROR(AIL_ERR_MEM, "out of memory for dbdsvdx on a %d bidiagonal", q);
        }
        ok = dx && settle_vectors(q, d, e, Zr, ldz, cnt, sx, s, smax, G, info);
    }
    free(G), free(sx);
    info->fallback = !ok;
    return AIL_OK;
}
