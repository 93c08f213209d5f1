/* updatediag.c - spectral diagnostics of an adapter's update (updatediag.h).
 * All small matrices here are column-major, as LAPACK takes them. */
#include "ailora/updatediag.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../base/lapack.h"
#include "ailora/error.h"

int updatediag_alloc(int r, UpdateDiag *d) {
    memset(d, 0, sizeof *d);
    d->r = r;
    d->sigma = ail_calloc((size_t)2 * r, sizeof(double));
    double *cos = ail_calloc((size_t)4 * r, sizeof(double));
    if (!d->sigma || !cos) {
        free(d->sigma);
        free(cos);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for update diagnostics (rank %d)", r);
    }
    d->cos_u_top = cos, d->cos_u_bottom = cos + r, d->cos_v_top = cos + 2 * r, d->cos_v_bottom = cos + 3 * r;
    return AIL_OK;
}

void updatediag_free(UpdateDiag *d) {
    free(d->sigma);
    free(d->cos_u_top);  // the four cosine arrays are one allocation
    memset(d, 0, sizeof *d);
}

/* dgesdd of a (rows x cols, column-major, destroyed): S [min], and with want_vectors
 * U (rows x min) and VT (min x cols). */
static int small_svd(int rows, int cols, double *a, double *S, double *U, double *VT) {
    int c = rows < cols ? rows : cols, info = 0, lwork = -1;
    const char *job = U ? "S" : "N";
    int ldu = rows > 0 ? rows : 1, ldvt = c > 0 ? c : 1;
    double query = 0, dummy = 0;
    int *iwork = ail_malloc(sizeof(int) * 8 * (size_t)(c > 0 ? c : 1));
    if (!iwork) return AIL_ERROR(AIL_ERR_MEM, "out of memory for a small SVD");
    dgesdd_(job, &rows, &cols, a, &ldu, S, U ? U : &dummy, &ldu, VT ? VT : &dummy, &ldvt, &query, &lwork, iwork,
            &info, 1);
    lwork = (int)query + 1;
    double *work = ail_malloc(sizeof(double) * (size_t)lwork);
    if (!work) {
        free(iwork);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for a small SVD");
    }
    dgesdd_(job, &rows, &cols, a, &ldu, S, U ? U : &dummy, &ldu, VT ? VT : &dummy, &ldvt, work, &lwork, iwork,
            &info, 1);
    free(work);
    free(iwork);
    return info == 0 ? AIL_OK : AIL_ERROR(AIL_ERR_LIB, "dgesdd failed on a %dx%d update core (info %d)", rows, cols, info);
}

/* Thin QR of a (rows x cols, column-major, overwritten by Q): q = min(rows, cols)
 * orthonormal columns of Q stay in a; R (q x cols, column-major) is returned. */
static int thin_qr(int rows, int cols, double *a, double *R, int *q) {
    int k = rows < cols ? rows : cols, info = 0, lwork = -1;
    double query = 0;
    double *tau = ail_malloc(sizeof(double) * (size_t)(k > 0 ? k : 1));
    if (!tau) return AIL_ERROR(AIL_ERR_MEM, "out of memory for a QR");
    dgeqrf_(&rows, &cols, a, &rows, tau, &query, &lwork, &info);
    lwork = (int)query + 1;
    double *work = ail_malloc(sizeof(double) * (size_t)lwork);
    if (!work) {
        free(tau);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for a QR");
    }
    dgeqrf_(&rows, &cols, a, &rows, tau, work, &lwork, &info);
    for (int j = 0; j < cols && info == 0; j++)  // R: the upper trapezoid
        for (int i = 0; i < k; i++) R[i + (size_t)j * k] = i <= j ? a[i + (size_t)j * rows] : 0.0;
    if (info == 0) {
        lwork = -1;
        dorgqr_(&rows, &k, &k, a, &rows, tau, &query, &lwork, &info);
        int need = (int)query + 1;
        if (need > lwork) {
            free(work);
            work = ail_malloc(sizeof(double) * (size_t)need);
        }
        lwork = need;
        if (!work) info = -1000;
        else dorgqr_(&rows, &k, &k, a, &rows, tau, work, &lwork, &info);
    }
    free(work);
    free(tau);
    *q = k;
    return info == 0 ? AIL_OK : AIL_ERROR(AIL_ERR_LIB, "QR of a %dx%d adapter factor failed (info %d)", rows, cols, info);
}

/* Energy share and principal-angle cosines of the singular vectors X (rows x c,
 * column-major) weighted by sigma against the K columns of E (rows x K, row-major). */
static int against_end(int rows, int c, const double *X, const double *sigma, double total, int d,
                       const double *E, int K, int r, double *energy, double *cos) {
    double *M = ail_calloc((size_t)K * (c > 0 ? c : 1), sizeof(double));  // (K, c) column-major: E^T X
    if (!M) return AIL_ERROR(AIL_ERR_MEM, "out of memory for update diagnostics");
    for (int j = 0; j < c; j++)
        for (int i = 0; i < rows; i++) {
            double x = X[i + (size_t)j * rows];
            const double *e = E + (size_t)i * K;
            for (int a = 0; a < K; a++) M[a + (size_t)j * K] += e[a] * x;
        }
    double inside = 0;
    for (int j = 0; j < c; j++) {
        double norm2 = 0;
        for (int a = 0; a < K; a++) norm2 += M[a + (size_t)j * K] * M[a + (size_t)j * K];
        inside += sigma[j] * sigma[j] * norm2;
    }
    *energy = total > 0 ? inside / total : NAN;
    for (int i = 0; i < r; i++) cos[i] = NAN;
    int rc = AIL_OK;
    if (d > 0) {  // cosines: singular values of E^T X[:, 0:d] (its first d columns)
        int nc = d < K ? d : K;
        double *S = ail_malloc(sizeof(double) * (size_t)nc);
        rc = S ? small_svd(K, d, M, S, NULL, NULL) : AIL_ERROR(AIL_ERR_MEM, "out of memory");
        for (int i = 0; i < nc && rc == AIL_OK; i++) cos[i] = S[i] > 1.0 ? 1.0 : S[i];
        free(S);
    }
    free(M);
    return rc;
}

int updatediag_compute(int m, int n, int r, double s, const double *A, const double *B, const double *A0,
                       const double *B0, const SpectrumEnds *ends, UpdateDiag *d) {
    if (ends->m != m || ends->n != n || ends->K < 1)
        return AIL_ERROR(AIL_ERR_ARG, "update diagnostics: spectrum ends of %dx%d (K %d) for a %dx%d module",
                         ends->m, ends->n, ends->K, m, n);
    int r2 = 2 * r, K = ends->K;
    // P = [B | -B0] (m, 2r) and Q = [A ; A0]^T (n, 2r), column-major
    double *P = ail_malloc(sizeof(double) * (size_t)m * r2), *Q = ail_malloc(sizeof(double) * (size_t)n * r2);
    double *Rp = ail_malloc(sizeof(double) * (size_t)r2 * r2), *Rq = ail_malloc(sizeof(double) * (size_t)r2 * r2);
    double *C = ail_malloc(sizeof(double) * (size_t)r2 * r2), *Uc = ail_malloc(sizeof(double) * (size_t)r2 * r2);
    double *VTc = ail_malloc(sizeof(double) * (size_t)r2 * r2);
    double *L = ail_calloc((size_t)m * r2, sizeof(double)), *R = ail_calloc((size_t)n * r2, sizeof(double));
    int rc = P && Q && Rp && Rq && C && Uc && VTc && L && R ? AIL_OK
                                                           : AIL_ERROR(AIL_ERR_MEM, "out of memory for update diagnostics");
    int qp = 0, qq = 0, c = 0;
    if (rc == AIL_OK) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < r; j++) {
                P[i + (size_t)j * m] = B[(size_t)i * r + j];
                P[i + (size_t)(r + j) * m] = -B0[(size_t)i * r + j];
            }
        for (int j = 0; j < r; j++)
            for (int i = 0; i < n; i++) {
                Q[i + (size_t)j * n] = A[(size_t)j * n + i];
                Q[i + (size_t)(r + j) * n] = A0[(size_t)j * n + i];
            }
        rc = thin_qr(m, r2, P, Rp, &qp);
    }
    if (rc == AIL_OK) rc = thin_qr(n, r2, Q, Rq, &qq);
    if (rc == AIL_OK) {  // core C = s Rp Rq^T (qp, qq), then its SVD
        for (int j = 0; j < qq; j++)
            for (int i = 0; i < qp; i++) {
                double acc = 0;
                for (int t = 0; t < r2; t++) acc += Rp[i + (size_t)t * qp] * Rq[j + (size_t)t * qq];
                C[i + (size_t)j * qp] = s * acc;
            }
        c = qp < qq ? qp : qq;
        memset(d->sigma, 0, sizeof(double) * (size_t)r2);
        rc = small_svd(qp, qq, C, d->sigma, Uc, VTc);
    }
    if (rc == AIL_OK) {  // left vectors L = Qp Uc (m, c), right R = Qq Vc (n, c)
        for (int j = 0; j < c; j++)
            for (int t = 0; t < qp; t++) {
                double u = Uc[t + (size_t)j * qp];
                for (int i = 0; i < m; i++) L[i + (size_t)j * m] += P[i + (size_t)t * m] * u;
            }
        for (int j = 0; j < c; j++)
            for (int t = 0; t < qq; t++) {
                double v = VTc[j + (size_t)t * c];
                for (int i = 0; i < n; i++) R[i + (size_t)j * n] += Q[i + (size_t)t * n] * v;
            }
        double total = 0, sum = 0;
        for (int j = 0; j < c; j++) total += d->sigma[j] * d->sigma[j], sum += d->sigma[j];
        double entropy = 0;
        for (int j = 0; j < c && sum > 0; j++)
            if (d->sigma[j] > 0) entropy -= d->sigma[j] / sum * log(d->sigma[j] / sum);
        d->effective_rank = sum > 0 ? exp(entropy) : 0.0;
        int num_rank = 0;
        while (num_rank < c && d->sigma[num_rank] > 1e-12 * d->sigma[0]) num_rank++;
        int dd = num_rank < r ? num_rank : r;
        if (dd > K) dd = K;
        rc = against_end(m, c, L, d->sigma, total, dd, ends->u_top, K, r, &d->energy_u_top, d->cos_u_top);
        if (rc == AIL_OK)
            rc = against_end(m, c, L, d->sigma, total, dd, ends->u_bottom, K, r, &d->energy_u_bottom, d->cos_u_bottom);
        if (rc == AIL_OK)
            rc = against_end(n, c, R, d->sigma, total, dd, ends->v_top, K, r, &d->energy_v_top, d->cos_v_top);
        if (rc == AIL_OK)
            rc = against_end(n, c, R, d->sigma, total, dd, ends->v_bottom, K, r, &d->energy_v_bottom, d->cos_v_bottom);
    }
    free(P), free(Q), free(Rp), free(Rq), free(C), free(Uc), free(VTc), free(L), free(R);
    return rc;
}
