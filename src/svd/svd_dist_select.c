/* svd_dist_select.c - selected singular vectors on a BLACS grid (route `pdgebrd`).
 *
 * pdgesvd computes every vector by QR iteration on the distributed bidiagonal:
 * ~20x slower per core than dgesdd. Here only the reduction to bidiagonal form and
 * the back-transformation of the kept vectors are distributed; the bidiagonal
 * itself (2k - 1 numbers) is small, so every rank solves it whole, redundantly,
 * which costs no communication and keeps all ranks in step.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/svd.h"
#include "base/lapack.h"
#include "svd/svd_bdvectors.h"

/* The workspace size a LAPACK query returned, rounded up (a double just below an
 * integer must not under-allocate), agreed as the largest over the grid (ScaLAPACK
 * queries may differ by rank), and refused past the 32-bit LWORK. */
static int lwork_agree(MPI_Comm comm, double q, const char *routine, const char *name, int *lwork) {
    MPI_Allreduce(MPI_IN_PLACE, &q, 1, MPI_DOUBLE, MPI_MAX, comm);
    double need = ceil(q * (1.0 + 1e-9)) + 1;
    if (!(need <= (double)INT_MAX))
        return AIL_ERROR(AIL_ERR_ARG, "%s on %s needs a workspace of %.0f doubles, more than its "
                         "32-bit LWORK can address: use more ranks", routine, name, need);
    *lwork = (int)need;
    return AIL_OK;
}

/* The bidiagonal B of a after pdgebrd: each entry lives on one rank; the others
 * add zeros, so the sum is exact. */
static void gather_bidiagonal(const DistMatrix *a, int k, int upper, double *d, double *e) {
    memset(d, 0, sizeof *d * (size_t)k);
    memset(e, 0, sizeof *e * (size_t)(k > 1 ? k - 1 : 1));
    for (int jl = 0; jl < a->nloc; jl++) {
        int gj = distmat_col_global(a, jl);
        for (int il = 0; il < a->mloc; il++) {
            int gi = distmat_row_global(a, il);
            double v = a->local[(size_t)jl * a->lld + il];
            if (gi == gj && gi < k) d[gi] = v;
            else if (upper && gj == gi + 1 && gi < k - 1) e[gi] = v;
            else if (!upper && gi == gj + 1 && gj < k - 1) e[gj] = v;
        }
    }
    MPI_Allreduce(MPI_IN_PLACE, d, k, MPI_DOUBLE, MPI_SUM, a->grid->comm);
    if (k > 1) MPI_Allreduce(MPI_IN_PLACE, e, k - 1, MPI_DOUBLE, MPI_SUM, a->grid->comm);
}

/* Redundant on every rank: S [k] all values (descending); ub, vb [k, p] column-major
 * the left and right vectors of B for the kept indices idx (increasing). */
static int solve_bidiagonal(int k, int upper, double *d, double *e, int p,
                            const int *idx, double *S, double *ub, double *vb, double *t_values) {
    const char *uplo = upper ? "U" : "L";
    double *dd = ail_malloc(sizeof(double) * (size_t)k), *ee = ail_malloc(sizeof(double) * (size_t)k);
    int info = 0, rc = dd && ee ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK && p == k) {
        // every vector: divide and conquer (what dgesdd uses), values come with them
        double *u = ail_malloc(sizeof(double) * (size_t)k * k), *vt = ail_malloc(sizeof(double) * (size_t)k * k);
        double *work = ail_malloc(sizeof(double) * (3 * (size_t)k * k + 4 * (size_t)k + 1));
        int *iwork = ail_malloc(sizeof(int) * 8 * (size_t)k);
        if (!u || !vt || !work || !iwork)
            rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for dbdsdc of a %d bidiagonal", k);
        if (rc == AIL_OK) {
            memcpy(dd, d, sizeof(double) * (size_t)k);
            if (k > 1) memcpy(ee, e, sizeof(double) * (size_t)(k - 1));
            dbdsdc_(uplo, "I", &k, dd, ee, u, &k, vt, &k, NULL, NULL, work, iwork, &info, 1, 1);
            if (info != 0) rc = AIL_ERROR(AIL_ERR_LIB, "dbdsdc failed on a %d bidiagonal (info %d)", k, info);
        }
        if (rc == AIL_OK) {
            memcpy(S, dd, sizeof(double) * (size_t)k);
            memcpy(ub, u, sizeof(double) * (size_t)k * k);
            for (int j = 0; j < k; j++)  // B = U S VT: right vector j is row j of vt
                for (int i = 0; i < k; i++) vb[(size_t)j * k + i] = vt[(size_t)i * k + j];
        }
        free(u), free(vt), free(work), free(iwork);
        free(dd), free(ee);
        return rc;
    }
    // all values by dqds (dbdsdc without vectors), to high relative accuracy
    double t0 = MPI_Wtime();
    if (rc == AIL_OK) {
        double *work = ail_malloc(sizeof(double) * (4 * (size_t)k + 1));
        int *iwork = ail_malloc(sizeof(int) * 8 * (size_t)k);
        if (!work || !iwork) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
        if (rc == AIL_OK) {
            memcpy(S, d, sizeof(double) * (size_t)k);
            if (k > 1) memcpy(ee, e, sizeof(double) * (size_t)(k - 1));
            int one = 1;
            double dummy = 0;
            dbdsdc_(uplo, "N", &k, S, ee, &dummy, &one, &dummy, &one, NULL, NULL, work, iwork, &info, 1, 1);
            if (info != 0) rc = AIL_ERROR(AIL_ERR_LIB, "dbdsdc (values) failed on a %d bidiagonal (info %d)", k, info);
        }
        free(work), free(iwork);
    }
    *t_values = MPI_Wtime() - t0;
    // the kept vectors (svd_bdvectors.h): inverse iteration at the dqds values, dbdsvdx
    // where that fails the check. A lower B is the transpose of the upper one with the
    // same d, e: its left vectors are that one's right ones.
    double *z = rc == AIL_OK ? ail_malloc(sizeof(double) * 2 * (size_t)k * (size_t)(p ? p : 1)) : NULL;
    if (rc == AIL_OK && !z) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for %d vectors of a %d bidiagonal", p, k);
    SvdSelectInfo check;
    memset(&check, 0, sizeof check);
    if (rc == AIL_OK) rc = svd_bidiag_select(k, d, e, S, p, idx, z, &check);
    if (rc == AIL_OK && check.fallback)  // no dgesdd to fall back to on a grid
        rc = AIL_ERROR(AIL_ERR_LIB, "the %d x %d bidiagonal's kept vectors: %s", k, k, check.reason);
    for (int j = 0; j < p && rc == AIL_OK; j++) {
        const double *zu = z + (size_t)j * 2 * k, *zv = zu + k;
        memcpy(ub + (size_t)j * k, upper ? zu : zv, sizeof(double) * (size_t)k);
        memcpy(vb + (size_t)j * k, upper ? zv : zu, sizeof(double) * (size_t)k);
    }
    free(z);
    free(dd), free(ee);
    return rc;
}

/* c (R x p, distributed) := [x; 0] for x [k, p] column-major, replicated. */
static void fill_padded(DistMatrix *c, const double *x, int k) {
    for (int jl = 0; jl < c->nloc; jl++) {
        int gj = distmat_col_global(c, jl);
        for (int il = 0; il < c->mloc; il++) {
            int gi = distmat_row_global(c, il);
            c->local[(size_t)jl * c->lld + il] = gi < k ? x[(size_t)gj * k + gi] : 0.0;
        }
    }
}

/* Canonical signs over the kept pairs: column c of u (U[:, idx[c]], m x p) gets its
 * largest-magnitude entry (smallest row on ties, like svd_canonical_signs) positive;
 * column c of v flips with it. */
static int canonical_signs_cols(DistMatrix *u, DistMatrix *v) {
    int p = u->n;
    struct { double v; int i; } *best = ail_malloc(sizeof *best * (size_t)(p + 1));
    double *sign = ail_calloc((size_t)p + 1, sizeof *sign);
    int rc = best && sign ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for sign canonicalization");
    if (ail_error_agree(u->grid->comm, rc) != AIL_OK) {
        free(best), free(sign);
        return ail_error_code();
    }
    for (int c = 0; c < p; c++) best[c].v = -1.0, best[c].i = INT_MAX;
    for (int jl = 0; jl < u->nloc; jl++) {
        int gc = distmat_col_global(u, jl);
        for (int il = 0; il < u->mloc; il++) {
            int gi = distmat_row_global(u, il);
            double a = fabs(u->local[(size_t)jl * u->lld + il]);
            if (a > best[gc].v || (a == best[gc].v && gi < best[gc].i)) best[gc].v = a, best[gc].i = gi;
        }
    }
    MPI_Allreduce(MPI_IN_PLACE, best, p, MPI_DOUBLE_INT, MPI_MAXLOC, u->grid->comm);
    for (int jl = 0; jl < u->nloc; jl++) {
        int gc = distmat_col_global(u, jl);
        for (int il = 0; il < u->mloc; il++)
            if (distmat_row_global(u, il) == best[gc].i)
                sign[gc] = u->local[(size_t)jl * u->lld + il] < 0 ? -1.0 : 1.0;
    }
    MPI_Allreduce(MPI_IN_PLACE, sign, p, MPI_DOUBLE, MPI_SUM, u->grid->comm);
    DistMatrix *mats[2] = {u, v};
    for (int t = 0; t < 2; t++)
        for (int jl = 0; jl < mats[t]->nloc; jl++)
            if (sign[distmat_col_global(mats[t], jl)] < 0)
                for (int il = 0; il < mats[t]->mloc; il++) mats[t]->local[(size_t)jl * mats[t]->lld + il] *= -1.0;
    free(best), free(sign);
    return AIL_OK;
}

/* c := Q c (vect "Q") or P c (vect "P"), the factors of pdgebrd in a (K = the
 * other dimension of a). P of a matrix with at least as many rows as columns is
 * G(1)..G(nq-1), stored in rows 1.. of a from column 2 on: applied with pdormlq
 * directly, because pdormbr refuses that case (see lapack.h). */
static int apply_factor(const char *vect, DistMatrix *a, const double *tau, DistMatrix *c,
                        int K, const char *name) {
    int one = 1, two = 2, lwork = -1, info = 0, rows = c->m, cols = c->n;
    int lq = vect[0] == 'P' && rows <= K, r1 = rows - 1;
    double query = 0;
    MPI_Comm comm = a->grid->comm;
    if (lq && rows <= 1) return AIL_OK;  // P = I
#define CALL_FACTOR(W, LW)                                                                        \
    do {                                                                                          \
        if (lq)                                                                                   \
            pdormlq_("L", "T", &r1, &cols, &r1, a->local, &one, &two, a->desc, tau, c->local,     \
                     &two, &one, c->desc, W, LW, &info, 1, 1);                                    \
        else                                                                                      \
            pdormbr_(vect, "L", "N", &rows, &cols, &K, a->local, &one, &one, a->desc, tau,        \
                     c->local, &one, &one, c->desc, W, LW, &info, 1, 1, 1);                       \
    } while (0)
    CALL_FACTOR(&query, &lwork);
    int rc = info != 0 ? AIL_ERROR(AIL_ERR_LIB, "pdormbr('%s') workspace query failed on %s (info %d)",
                                   vect, name, info)
                       : AIL_OK;
    rc = ail_error_agree(comm, rc);
    if (rc != AIL_OK) return rc;
    rc = lwork_agree(comm, query, "pdormbr", name, &lwork);
    double *work = NULL;
    if (rc == AIL_OK && !(work = ail_malloc(sizeof(double) * (size_t)lwork)))
        rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for pdormbr workspace (%d doubles)", lwork);
    rc = ail_error_agree(comm, rc);
    if (rc == AIL_OK) {
        CALL_FACTOR(work, &lwork);
        if (info != 0) rc = AIL_ERROR(AIL_ERR_LIB, "pdormbr('%s') failed on %s (info %d)", vect, name, info);
        rc = ail_error_agree(comm, rc);
    }
#undef CALL_FACTOR
    free(work);
    return rc;
}

int svd_pdgebrd(const BlacsGrid *grid, const SafeTensor *w, int nb, int keep, DistSelSvd *out) {
    memset(out, 0, sizeof *out);
    int m = (int)w->shape[0], n = (int)w->shape[1], k = m < n ? m : n;
    int M0 = n, N0 = m, upper = M0 >= N0;  // a = W^T is M0 x N0
    out->m = m, out->n = n, out->k = k;
    MPI_Comm comm = grid->comm;
    DistMatrix a = {0}, cq = {0}, cp = {0};
    double *d = NULL, *e = NULL, *tauq = NULL, *taup = NULL, *dl = NULL, *el = NULL, *work = NULL;
    double *ub = NULL, *vb = NULL;
    int rc = AIL_OK;
    out->idx = ail_malloc(sizeof(int) * (size_t)k);
    out->S = ail_malloc(sizeof(double) * (size_t)k);
    if (!out->idx || !out->S) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK) out->p = svd_kept_indices(k, keep, out->idx);
    int p = out->p;
    double t0 = MPI_Wtime();
    if (rc == AIL_OK) rc = distmat_create(grid, M0, N0, nb, &a);
    if (rc == AIL_OK) rc = distmat_load_weight_t(&a, w);
    out->t_load = MPI_Wtime() - t0;
    if (rc == AIL_OK) {
        size_t loc = (size_t)(a.mloc > a.nloc ? a.mloc : a.nloc) + 1;
        d = ail_malloc(sizeof(double) * (size_t)k);
        e = ail_malloc(sizeof(double) * (size_t)k);
        dl = ail_malloc(sizeof(double) * loc);
        el = ail_malloc(sizeof(double) * loc);
        tauq = ail_malloc(sizeof(double) * loc);
        taup = ail_malloc(sizeof(double) * loc);
        ub = ail_malloc(sizeof(double) * (size_t)k * p);
        vb = ail_malloc(sizeof(double) * (size_t)k * p);
        if (!d || !e || !dl || !el || !tauq || !taup || !ub || !vb)
            rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for the bidiagonalization of %s", w->name);
    }
    rc = ail_error_agree(comm, rc);  // before pdgebrd: nobody may be left waiting inside it

    // 1. a = Q B P^T on the grid
    int one = 1, lwork = -1, info = 0;
    t0 = MPI_Wtime();
    if (rc == AIL_OK) {
        double query = 0;
        pdgebrd_(&M0, &N0, a.local, &one, &one, a.desc, dl, el, tauq, taup, &query, &lwork, &info);
        rc = lwork_agree(comm, query, "pdgebrd", w->name, &lwork);
        if (rc == AIL_OK && !(work = ail_malloc(sizeof(double) * (size_t)lwork)))
            rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for pdgebrd workspace (%d doubles)", lwork);
        rc = ail_error_agree(comm, rc);
    }
    if (rc == AIL_OK) {
        pdgebrd_(&M0, &N0, a.local, &one, &one, a.desc, dl, el, tauq, taup, work, &lwork, &info);
        if (info != 0) rc = AIL_ERROR(AIL_ERR_LIB, "pdgebrd failed on %s (%dx%d, info %d)", w->name, m, n, info);
        rc = ail_error_agree(comm, rc);
    }
    free(work);
    work = NULL;
    out->t_brd = MPI_Wtime() - t0;
    t0 = MPI_Wtime();
    // 2. B on every rank, solved redundantly: same inputs, same library, same answer
    if (rc == AIL_OK) {
        gather_bidiagonal(&a, k, upper, d, e);
        rc = ail_error_agree(comm, solve_bidiagonal(k, upper, d, e, p, out->idx, out->S, ub, vb, &out->t_values));
    }
    out->t_vectors = MPI_Wtime() - t0 - out->t_values;
    t0 = MPI_Wtime();
    // 3. back to W's vectors: a's left vectors Q [ub; 0] are V of W (n x p), its
    //    right vectors P [vb; 0] are U of W (m x p)
    if (rc == AIL_OK) rc = distmat_create(grid, M0, p, nb, &cq);
    if (rc == AIL_OK) rc = distmat_create(grid, N0, p, nb, &cp);
    rc = ail_error_agree(comm, rc);
    if (rc == AIL_OK) {
        fill_padded(&cq, ub, k);
        fill_padded(&cp, vb, k);
        rc = apply_factor("Q", &a, tauq, &cq, N0, w->name);
    }
    if (rc == AIL_OK) rc = apply_factor("P", &a, taup, &cp, M0, w->name);
    if (rc == AIL_OK) rc = canonical_signs_cols(&cp, &cq);
    // U rows as the cache stores them: ut = cp^T (p x m)
    if (rc == AIL_OK) rc = ail_error_agree(comm, distmat_create(grid, p, m, nb, &out->ut));
    if (rc == AIL_OK) {
        double alpha = 1.0, beta = 0.0;
        pdtran_(&p, &m, &alpha, cp.local, &one, &one, cp.desc, &beta, out->ut.local, &one, &one, out->ut.desc);
        out->vt = cq;  // n x p, owned by out now
        memset(&cq, 0, sizeof cq);
    }
    out->t_back = MPI_Wtime() - t0;
    distmat_free(&a), distmat_free(&cq), distmat_free(&cp);
    free(d), free(e), free(dl), free(el), free(tauq), free(taup), free(ub), free(vb);
    if (rc != AIL_OK) dist_sel_svd_free(out);
    return rc;
}

void dist_sel_svd_free(DistSelSvd *svd) {
    free(svd->idx);
    free(svd->S);
    distmat_free(&svd->vt);
    distmat_free(&svd->ut);
    memset(svd, 0, sizeof *svd);
}
