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
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/svd.h"
#include "base/lapack.h"
#include "svd/svd_bdvectors.h"

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
    double *Z = ail_malloc(sizeof(double) * 2 * (size_t)q * ((size_t)nsel + 1));  // the selected vectors of B
    double *Cu = ail_calloc((size_t)p * (nsel ? nsel : 1), sizeof(double));
    double *Cv = ail_malloc(sizeof(double) * (size_t)q * (nsel ? nsel : 1));
    double *bwork = ail_malloc(sizeof(double) * 4 * (size_t)q);  // dbdsqr, values only
    double *work = NULL;
    rc = A && d && e && tauq && taup && ds && es && Z && Cu && Cv && bwork
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

    // the selected vectors of B (svd_bdvectors.h); where they fail, dgesdd does the whole matrix
    rc = svd_bidiag_select(q, d, e, S, nsel, sel, Z, info);
    if (rc != AIL_OK) goto done;
    if (info->fallback) {
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
    free(A), free(d), free(e), free(tauq), free(taup), free(ds), free(es), free(Z);
    free(Cu), free(Cv), free(bwork), free(work);
    return rc;
}
