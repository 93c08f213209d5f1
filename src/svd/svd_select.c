/* svd_select.c - all singular values and selected singular triplets on one rank.
 *
 * W [m, n] row-major is W^T column-major. Work on the orientation with rows >= cols,
 * A (p x q, column-major, p >= q, q = k): A = W^T when m <= n (no transpose of the
 * data, only a copy), A = W when m > n (transposed copy). Then
 *
 *   dgebrd   A = Q B P^T, B upper bidiagonal (q x q)              ~ 4 p q^2 - 4/3 q^3 flops
 *   dbdsqr   all singular values of B (no vectors: dqds)          O(q^2)
 *   dstein   B's vectors at those values, for each contiguous      O(q * nsel) (+ reorthogonalization in clusters)
 *            index range (dbdsvdx where they fail the check)
 *   dormbr   Ua = Q [Ub; 0], Va = P Vb for the selected only       ~ 2 (p + q) q nsel
 *
 * and A = Ua S Va^T maps back to W: for A = W^T, U = Va and Vt = Ua^T; for A = W,
 * U = Ua and Vt = Va^T.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blis.h>

#include "ailora/error.h"
#include "ailora/svd.h"
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

/* The check of dbdsvdx's vectors of B (d, e upper bidiagonal, q x q): u and v each
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

/* dgesdd of the whole matrix, then the selected columns / rows: the fallback. */
static int select_by_dgesdd(int m, int n, const double *w, int nsel, const int *sel, double *S,
                            double *U, double *Vt) {
    int k = m < n ? m : n;
    double *wc = ail_malloc(sizeof(double) * (size_t)m * n);
    double *Uf = ail_malloc(sizeof(double) * (size_t)m * k);
    double *Vf = ail_malloc(sizeof(double) * (size_t)k * n);
    int rc = wc && Uf && Vf ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for a %dx%d dgesdd", m, n);
    if (rc == AIL_OK) {
        memcpy(wc, w, sizeof(double) * (size_t)m * n);
        rc = svd_lapack(m, n, wc, S, Uf, Vf);
    }
    if (rc == AIL_OK)
        for (int j = 0; j < nsel; j++) {
            for (int i = 0; i < m; i++) U[(size_t)i * nsel + j] = Uf[(size_t)i * k + sel[j]];
            memcpy(Vt + (size_t)j * n, Vf + (size_t)sel[j] * n, sizeof(double) * (size_t)n);
        }
    free(wc), free(Uf), free(Vf);
    return rc;
}

int svd_select_check(int k, int nsel, const int *sel) {
    for (int j = 0; j < nsel; j++)
        if (sel[j] < 0 || sel[j] >= k || (j > 0 && sel[j] <= sel[j - 1]))
            return AIL_ERROR(AIL_ERR_ARG, "selected singular index %d (position %d) is out of [0, %d) "
                             "or not ascending", sel[j], j, k);
    return AIL_OK;
}

int svd_lapack_select(int m, int n, const double *w, int nsel, const int *sel, double *S,
                      double *U, double *Vt, SvdSelectInfo *info) {
    memset(info, 0, sizeof *info);
    int k = m < n ? m : n, wide = m <= n;
    int p = wide ? n : m, q = k, lda = p, rc;
    AIL_CHECK(svd_select_check(k, nsel, sel));
    double *A = ail_malloc(sizeof(double) * (size_t)p * q);
    double *d = ail_malloc(sizeof(double) * (size_t)q), *e = ail_malloc(sizeof(double) * (size_t)q);
    double *tauq = ail_malloc(sizeof(double) * (size_t)q), *taup = ail_malloc(sizeof(double) * (size_t)q);
    double *ds = ail_malloc(sizeof(double) * (size_t)q), *es = ail_malloc(sizeof(double) * (size_t)q);
    // Z: the selected vectors of B; Zs: dbdsvdx's own output, which needs room for
    // q + 1 columns whatever it returns (on a split of B at a zero d_i it parks a
    // vector in column q + 1, and over split blocks it may find more than asked)
    double *Z = ail_malloc(sizeof(double) * 2 * (size_t)q * ((size_t)nsel + 1));
    double *Zs = ail_malloc(sizeof(double) * 2 * (size_t)q * ((size_t)q + 1));
    double *sx = ail_malloc(sizeof(double) * ((size_t)nsel + 1));
    double *sb = ail_malloc(sizeof(double) * (size_t)q);  // dbdsvdx's S: n entries, also workspace
    double *Cu = ail_calloc((size_t)p * (nsel ? nsel : 1), sizeof(double));
    double *Cv = ail_malloc(sizeof(double) * (size_t)q * (nsel ? nsel : 1));
    double *bwork = ail_malloc(sizeof(double) * 14 * (size_t)q);
    int *iwork = ail_malloc(sizeof(int) * 12 * (size_t)q);
    double *G = ail_malloc(sizeof(double) * (nsel ? (size_t)nsel * nsel : 1));  // Gram matrices of a run
    double *work = NULL;
    rc = A && d && e && tauq && taup && ds && es && Z && Zs && sx && sb && Cu && Cv && bwork && iwork && G
             ? AIL_OK
             : AIL_ERROR(AIL_ERR_MEM, "out of memory for the selected-vector SVD of a %dx%d matrix", m, n);
    if (rc != AIL_OK) goto done;
    if (wide) memcpy(A, w, sizeof(double) * (size_t)m * n);  // W row-major = W^T (n x m) column-major
    else
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) A[(size_t)j * m + i] = w[(size_t)i * n + j];

    // one workspace for dgebrd and both dormbr: the largest query
    int info_l = 0, lwork = -1, ncol = nsel ? nsel : 1, zero = 0, one = 1;
    double qb = 0, qq = 0, qp = 0;
    dgebrd_(&p, &q, A, &lda, d, e, tauq, taup, &qb, &lwork, &info_l);
    dormbr_("Q", "L", "N", &p, &ncol, &q, A, &lda, tauq, Cu, &p, &qq, &lwork, &info_l, 1, 1, 1);
    dormbr_("P", "L", "N", &q, &ncol, &p, A, &lda, taup, Cv, &q, &qp, &lwork, &info_l, 1, 1, 1);
    double need = ceil(fmax(qb, fmax(qq, qp)) * (1.0 + 1e-9)) + 1;
    if (!(need <= (double)INT_MAX)) {
        rc = AIL_ERROR(AIL_ERR_ARG, "the selected-vector SVD of a %dx%d matrix needs a workspace "
                       "beyond LAPACK's 32-bit LWORK", m, n);
        goto done;
    }
    lwork = (int)need;
    if (!(work = ail_malloc(sizeof(double) * (size_t)lwork))) {
        rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for dgebrd workspace (%d doubles)", lwork);
        goto done;
    }
    dgebrd_(&p, &q, A, &lda, d, e, tauq, taup, work, &lwork, &info_l);
    if (info_l != 0) {
        rc = AIL_ERROR(AIL_ERR_LIB, "dgebrd failed on a %dx%d matrix (info %d)", m, n, info_l);
        goto done;
    }
    // all values: dqds (dbdsqr without vectors), descending and non-negative
    memcpy(ds, d, sizeof(double) * (size_t)q);
    memcpy(es, e, sizeof(double) * (size_t)q);
    dbdsqr_("U", &q, &zero, &zero, &zero, ds, es, NULL, &one, NULL, &one, NULL, &one, bwork, &info_l, 1);
    if (info_l != 0) {
        // rare non-convergence: dgesdd does all of it
        snprintf(info->reason, sizeof info->reason, "dbdsqr (values) did not converge (info %d)", info_l);
        info->fallback = 1;
        rc = select_by_dgesdd(m, n, w, nsel, sel, S, U, Vt);
        goto done;
    }
    memcpy(S, ds, sizeof(double) * (size_t)k);
    double smax = S[0];

    // the selected vectors of B, per contiguous range of indices: inverse iteration
    // at dqds's values; where that fails the check, dbdsvdx (bisection, then inverse
    // iteration); where that fails too, dgesdd does the whole matrix
    int ok = 1;
    for (int j0 = 0, j1; j0 < nsel && ok; j0 = j1) {
        for (j1 = j0 + 1; j1 < nsel && sel[j1] == sel[j1 - 1] + 1;) j1++;
        int il = sel[j0] + 1, iu = sel[j1 - 1] + 1, ns = 0, ldz = 2 * q;
        double vl = 0, vu = 0;
        double *Zr = Z + (size_t)j0 * ldz;
        if (AIL_FAULT("bidiag")) {  // AILORA_FAULT=bidiag:R tests the dgesdd fallback
            snprintf(info->reason, sizeof info->reason, "B's vectors failed on indices %d-%d (injected fault)",
                     il - 1, iu - 1);
            ok = 0;
            break;
        }
        int tgk = AIL_FAULT("dstein") ? 0 : tgk_inverse_iteration(q, d, e, j1 - j0, S + sel[j0], Zr, ldz);
        if (tgk < 0) {
            rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for inverse iteration on a %d bidiagonal", q);
            goto done;
        }
        if (tgk) {
            SvdSelectInfo trial = *info;  // a failed check here is not the matrix's fallback reason
            if (settle_vectors(q, d, e, Zr, ldz, j1 - j0, S + sel[j0], S + sel[j0], smax, G, &trial)) {
                *info = trial;
                continue;
            }
        }
        info->redone++;
        dbdsvdx_("U", "V", "I", &q, d, e, &vl, &vu, &il, &iu, &ns, sb, Zs, &ldz, bwork, iwork,
                 &info_l, 1, 1, 1);
        if (info_l == 0 && ns == j1 - j0) {
            memcpy(sx + j0, sb, sizeof(double) * (size_t)ns);
            memcpy(Zr, Zs, sizeof(double) * (size_t)ldz * ns);
        }
        if (info_l != 0 || ns != j1 - j0) {
            snprintf(info->reason, sizeof info->reason,
                     "dbdsvdx failed on indices %d-%d (info %d, %d of %d vectors)", il - 1, iu - 1,
                     info_l, ns, j1 - j0);
            ok = 0;
        } else {
            ok = settle_vectors(q, d, e, Zr, ldz, j1 - j0, sx + j0, S + sel[j0], smax, G, info);
        }
    }
    if (!ok) {
        info->fallback = 1;
        rc = select_by_dgesdd(m, n, w, nsel, sel, S, U, Vt);
        goto done;
    }
    if (nsel == 0) goto done;
    // back-transform the selected vectors only: Ua = Q [Ub; 0] (p x nsel), Va = P Vb (q x nsel)
    for (int j = 0; j < nsel; j++) {
        memcpy(Cu + (size_t)j * p, Z + (size_t)j * 2 * q, sizeof(double) * (size_t)q);
        memcpy(Cv + (size_t)j * q, Z + (size_t)j * 2 * q + q, sizeof(double) * (size_t)q);
    }
    dormbr_("Q", "L", "N", &p, &nsel, &q, A, &lda, tauq, Cu, &p, work, &lwork, &info_l, 1, 1, 1);
    if (info_l == 0)
        dormbr_("P", "L", "N", &q, &nsel, &p, A, &lda, taup, Cv, &q, work, &lwork, &info_l, 1, 1, 1);
    if (info_l != 0) {
        rc = AIL_ERROR(AIL_ERR_LIB, "dormbr failed on a %dx%d matrix (info %d)", m, n, info_l);
        goto done;
    }
    // column-major Ua (p x nsel) and Va (q x nsel) to row-major U [m, nsel], Vt [nsel, n]
    const double *Ucol = wide ? Cv : Cu, *Vcol = wide ? Cu : Cv;  // U = Va for A = W^T
    for (int i = 0; i < m; i++)
        for (int j = 0; j < nsel; j++) U[(size_t)i * nsel + j] = Ucol[(size_t)j * m + i];
    memcpy(Vt, Vcol, sizeof(double) * (size_t)nsel * n);  // column-major V (n x nsel) is row-major Vt
    svd_canonical_signs(m, n, nsel, U, Vt);
done:
    free(A), free(d), free(e), free(tauq), free(taup), free(ds), free(es), free(Z), free(Zs), free(sx), free(sb);
    free(Cu), free(Cv), free(bwork), free(iwork), free(G), free(work);
    return rc;
}
