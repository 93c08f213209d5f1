/* test_svd.c - SVD accuracy against prescribed spectra, every backend, any rank count.
 *
 * Matrices W = U diag(S) V^T are built in float64 from Haar-random orthonormal
 * factors and stored as F64 safetensors, so the truth is known to ~1e-16 * smax.
 * Checked (tolerances from the foundation issue; dgesdd and pdgesvd are backward
 * stable with errors ~ sqrt(n) eps smax ~ 1e-15 smax, so 1e-12 leaves margin):
 *   - singular values within 1e-12 * smax of the truth
 *   - U and V orthonormal to 1e-12, W = U S Vt to 1e-12 * smax
 *   - principal / minor r-subspaces (r = 8) against the truth, U and V: sin of the
 *     largest principal angle within 1e-12 * (smax / gap + 1) (Wedin; + 1: the
 *     rounding floor of orthonormal factors). A set that cuts through a cluster of
 *     singular values is widened to the whole cluster, so every case is checked,
 *     the minor end of MiLoRA-style spectra (tiny clusters, exact zeros) included.
 *     Clusters: j and j+1 share one when 1e-12 * smax / (S_j - S_j+1) > 1e-2, the
 *     rule of tests/h5compare.c; on a rectangular side the null space counts as a
 *     singular value 0, and a set joined to it is checked by its orthogonality to
 *     the other vectors (its own span is not unique there).
 *   - pdgesvd on the grid of all ranks agrees with dgesdd: a vector alone in its
 *     cluster element by element within 1e-12 * smax / gap (signs canonical), a
 *     cluster by its subspace as above
 *   - the selected-vector route (svd_lapack_select) keeping [0, K) and [k-K, k) (K = 8,
 *     the same sets) and keeping all: S within 1e-12 smax of the truth and of dgesdd;
 *     the kept vectors orthonormal to 1e-12; each principal / minor set widened to
 *     its cluster as above, the kept vectors of it checked against the truth's span
 *     of the whole cluster (the kept part of a cluster is not unique, its span lies
 *     in the cluster's); lone kept vectors against dgesdd's element by element
 *     within 1e-12 * smax / gap; every rank runs it on its own (same answer)
 *   - the selected-vector route pdgebrd (pdgebrd + dbdsvdx / dbdsdc + pdormbr) on the
 *     grid of all ranks, keep all and keep 8 / 1: S within 1e-12 smax of the truth,
 *     dgesdd and pdgesvd; each kept vector against each of the three, alone in its
 *     cluster element by element within 1e-12 * smax / gap, else inside the
 *     reference's whole-cluster span within 1e-12 * (smax / gap + 1); the kept
 *     vectors orthonormal to 1e-12
 * Run under mpirun with 1, 2 and 4 ranks (tests/svd_np*.sh).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ailora/error.h"
#include "ailora/safetensors.h"
#include "ailora/svd.h"
#include "ailora/synth.h"
#include "testutil.h"

#define TOL 1e-12

static int g_rank, g_size;

/* ||Q^T Q - I||_max for Q [rows, cols] row-major (columns orthonormal). */
static double orth_error(const double *Q, int rows, int cols, int by_rows) {
    double worst = 0.0;
    for (int a = 0; a < cols; a++)
        for (int b = a; b < cols; b++) {
            double dot = 0.0;
            for (int i = 0; i < rows; i++)
                dot += by_rows ? Q[(size_t)a * rows + i] * Q[(size_t)b * rows + i]
                               : Q[(size_t)i * cols + a] * Q[(size_t)i * cols + b];
            worst = fmax(worst, fabs(dot - (a == b)));
        }
    return worst;
}

#define CLUSTER_BOUND 1e-2

/* The cluster closure [*lo, *hi) of the index range [a, b) of S (descending, k
 * values; index k is the null space, value 0, when has_null), its distance to the
 * rest of the spectrum, and whether it reaches the null space (then *hi = k). */
static double cluster_closure(const double *S, int k, int has_null, double smax, int a, int b, int *lo,
                              int *hi, int *null_joined) {
    int kk = k + has_null;
#define SX(j) ((j) < k ? S[j] : 0.0)
#define JOINED(j) (!(SX(j) - SX((j) + 1) > 0 && TOL * smax / (SX(j) - SX((j) + 1)) <= CLUSTER_BOUND))
    *lo = a, *hi = b;
    while (*lo > 0 && JOINED(*lo - 1)) (*lo)--;
    while (*hi < kk && JOINED(*hi - 1)) (*hi)++;
    double gap = INFINITY;
    if (*lo > 0) gap = fmin(gap, SX(*lo - 1) - SX(*lo));
    if (*hi < kk) gap = fmin(gap, SX(*hi - 1) - SX(*hi));
#undef JOINED
#undef SX
    *null_joined = has_null && *hi == kk;
    if (*hi > k) *hi = k;
    return gap;
}

/* Q [rows, k] row-major: column j is singular vector j. Error of B's vectors
 * [lo, hi) against A's: the sin of the largest angle to A's span of the same
 * indices (Frobenius bound), or with null_joined the norm of their projection on
 * A's other vectors; plus B's departure from orthonormality within the set. */
static double set_error_masked(const double *A, const double *B, int rows, int k, int lo, int hi,
                               int null_joined, const char *have) {
    double err = 0.0, *res = malloc(sizeof(double) * (size_t)rows);
    for (int c = lo; c < hi; c++) {
        if (have && !have[c]) continue;
        double out = 0.0, in = 0.0;
        for (int i = 0; i < rows; i++) res[i] = B[(size_t)i * k + c];
        for (int j = 0; j < k; j++) {
            double dot = 0.0;
            for (int i = 0; i < rows; i++) dot += A[(size_t)i * k + j] * B[(size_t)i * k + c];
            if (j < lo || j >= hi) out += dot * dot;
            else  // the residual itself, not 1 - sum dot^2, which cancels to sqrt(eps)
                for (int i = 0; i < rows; i++) res[i] -= dot * A[(size_t)i * k + j];
        }
        for (int i = 0; i < rows; i++) in += res[i] * res[i];
        err = fmax(err, null_joined ? sqrt(out) : sqrt(in));
        for (int c2 = lo; c2 < hi; c2++) {
            if (have && !have[c2]) continue;
            double dot = 0.0;
            for (int i = 0; i < rows; i++) dot += B[(size_t)i * k + c] * B[(size_t)i * k + c2];
            err = fmax(err, fabs(dot - (c == c2)));
        }
    }
    free(res);
    return err;
}

static double set_error(const double *A, const double *B, int rows, int k, int lo, int hi, int null_joined) {
    return set_error_masked(A, B, rows, k, lo, hi, null_joined, NULL);
}

/* Vt [k, n] row-major as V [n, k] row-major (the layout set_error reads). */
static double *transpose(const double *Vt, int k, int n) {
    double *V = malloc(sizeof(double) * (size_t)k * n);
    for (int j = 0; j < k; j++)
        for (int i = 0; i < n; i++) V[(size_t)i * k + j] = Vt[(size_t)j * n + i];
    return V;
}

typedef struct {
    const char *name;
    int m, n;
    SpectrumKind kind;
    double decades;
} Case;

/* Gathers a distributed matrix to grid rank 0 as a dense column-major array. */
static double *gather(const DistMatrix *a) {
    const BlacsGrid *g = a->grid;
    int grank, gsize;
    MPI_Comm_rank(g->comm, &grank);
    MPI_Comm_size(g->comm, &gsize);
    double *full = NULL;
    if (grank == 0) full = calloc((size_t)a->m * a->n, sizeof *full);
    for (int q = 0; q < gsize; q++) {
        int prow = q / g->npcol, pcol = q % g->npcol;  // "Row" ordering of the grid
        int mloc = block_cyclic_count(a->m, a->nb, prow, g->nprow);
        int nloc = block_cyclic_count(a->n, a->nb, pcol, g->npcol);
        double *buf = NULL;
        if (q == grank && q == 0) {
            buf = a->local;
        } else if (q == grank) {
            double *packed = malloc(sizeof(double) * ((size_t)mloc * nloc + 1));
            for (int j = 0; j < nloc; j++) memcpy(packed + (size_t)j * mloc, a->local + (size_t)j * a->lld, sizeof(double) * mloc);
            MPI_Send(packed, mloc * nloc, MPI_DOUBLE, 0, 7, g->comm);
            free(packed);
        } else if (grank == 0) {
            buf = malloc(sizeof(double) * ((size_t)mloc * nloc + 1));
            MPI_Recv(buf, mloc * nloc, MPI_DOUBLE, q, 7, g->comm, MPI_STATUS_IGNORE);
        }
        if (grank == 0) {
            int ld = q == 0 ? a->lld : mloc;
            for (int j = 0; j < nloc; j++)
                for (int i = 0; i < mloc; i++) {
                    int gi = (i / a->nb) * g->nprow * a->nb + prow * a->nb + i % a->nb;
                    int gj = (j / a->nb) * g->npcol * a->nb + pcol * a->nb + j % a->nb;
                    full[(size_t)gj * a->m + gi] = buf[(size_t)j * ld + i];
                }
            if (q != 0) free(buf);
        }
    }
    return full;
}

static void check_against_truth(const Case *c, const char *backend, const double *S, const double *U,
                                const double *Vt, const double *W, const double *St,
                                const double *Ut, const double *Vtt) {
    int m = c->m, n = c->n, k = m < n ? m : n;
    double smax = St[0];
    char what[160];
    double serr = 0.0;
    for (int i = 0; i < k; i++) serr = fmax(serr, fabs(S[i] - St[i]));
    snprintf(what, sizeof what, "%s %s: max |S - S_true| / smax", c->name, backend);
    TU_CLOSE(serr / smax, 0.0, TOL, what);
    snprintf(what, sizeof what, "%s %s: ||U^T U - I||", c->name, backend);
    TU_CLOSE(orth_error(U, m, k, 0), 0.0, TOL, what);
    snprintf(what, sizeof what, "%s %s: ||V^T V - I||", c->name, backend);
    TU_CLOSE(orth_error(Vt, n, k, 1), 0.0, TOL, what);
    double rerr = 0.0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int l = 0; l < k; l++) sum += U[(size_t)i * k + l] * S[l] * Vt[(size_t)l * n + j];
            rerr = fmax(rerr, fabs(sum - W[(size_t)i * n + j]));
        }
    snprintf(what, sizeof what, "%s %s: max |U S Vt - W| / smax", c->name, backend);
    TU_CLOSE(rerr / smax, 0.0, TOL, what);
    // principal and minor subspaces of rank 8, widened to whole clusters, U and V
    int r = 8;
    double *V = transpose(Vt, k, n), *Vtrue = transpose(Vtt, k, n);
    for (int pass = 0; pass < 2; pass++)
        for (int side = 0; side < 2; side++) {
            int rows = side ? n : m, lo, hi, nj;
            double gap = cluster_closure(St, k, rows > k, smax, pass ? k - r : 0, pass ? k : r, &lo, &hi, &nj);
            double bound = TOL * (smax / gap + 1.0);
            snprintf(what, sizeof what, "%s %s: %s subspace of %s [%d, %d)%s (bound %.1e)", c->name, backend,
                     pass ? "minor" : "principal", side ? "V" : "U", lo, hi, nj ? " + null space" : "", bound);
            TU_CLOSE(set_error(side ? Vtrue : Ut, side ? V : U, rows, k, lo, hi, nj), 0.0, bound, what);
        }
    free(V), free(Vtrue);
}

/* The selected-vector route keeping sel (nsel ascending indices) against the truth
 * and against dgesdd (S, U, Vt full). */
static void check_selected(const Case *c, const double *W, int nsel, const int *sel, const double *S,
                           const double *U, const double *Vt, const double *St, const double *Ut,
                           const double *Vtt) {
    int m = c->m, n = c->n, k = m < n ? m : n;
    double smax = St[0];
    double *Ss = malloc(sizeof(double) * k), *Us = malloc(sizeof(double) * m * (nsel + 1));
    double *Vts = malloc(sizeof(double) * (nsel + 1) * n);
    char what[200], tag[64];
    snprintf(tag, sizeof tag, "select(%d of %d)", nsel, k);
    SvdSelectInfo info;
    int rc = svd_lapack_select(m, n, W, nsel, sel, Ss, Us, Vts, &info);
    TU_CHECK(rc == AIL_OK, "%s %s: %s", c->name, tag, ail_error_message());
    if (rc != AIL_OK) goto out;
    if (g_rank == 0)
        printf("%-28s %-18s fallback %d%s%s  dbdsvdx redid %d range(s)  bidiagonal check: orthonormality "
               "%.1e residual %.1e smax\n", c->name, tag, info.fallback, info.fallback ? ": " : "", info.reason,
               info.redone, info.orth_err, info.resid_err);
    double serr = 0.0, sgesdd = 0.0;
    for (int i = 0; i < k; i++) serr = fmax(serr, fabs(Ss[i] - St[i])), sgesdd = fmax(sgesdd, fabs(Ss[i] - S[i]));
    snprintf(what, sizeof what, "%s %s: max |S - S_true| / smax", c->name, tag);
    TU_CLOSE(serr / smax, 0.0, TOL, what);
    snprintf(what, sizeof what, "%s %s: max |S - S_dgesdd| / smax", c->name, tag);
    TU_CLOSE(sgesdd / smax, 0.0, TOL, what);
    snprintf(what, sizeof what, "%s %s: kept U orthonormal", c->name, tag);
    TU_CLOSE(orth_error(Us, m, nsel, 0), 0.0, TOL, what);
    snprintf(what, sizeof what, "%s %s: kept V orthonormal", c->name, tag);
    TU_CLOSE(orth_error(Vts, n, nsel, 1), 0.0, TOL, what);
    // spread the kept vectors into k columns (others zero) for the set checks
    double *Uk = calloc((size_t)m * k, sizeof(double)), *Vk = calloc((size_t)n * k, sizeof(double));
    char *have = calloc((size_t)k, 1);
    for (int j = 0; j < nsel; j++) {
        have[sel[j]] = 1;
        for (int i = 0; i < m; i++) Uk[(size_t)i * k + sel[j]] = Us[(size_t)i * nsel + j];
        for (int i = 0; i < n; i++) Vk[(size_t)i * k + sel[j]] = Vts[(size_t)j * n + i];
    }
    double *Vtrue = transpose(Vtt, k, n), *V = transpose(Vt, k, n);
    int r = 8;
    for (int pass = 0; pass < 2; pass++)
        for (int side = 0; side < 2; side++) {
            int rows = side ? n : m, lo, hi, nj;
            double gap = cluster_closure(St, k, rows > k, smax, pass ? k - r : 0, pass ? k : r, &lo, &hi, &nj);
            double bound = TOL * (smax / gap + 1.0);
            snprintf(what, sizeof what, "%s %s: kept %s vectors of %s [%d, %d)%s (bound %.1e)", c->name, tag,
                     pass ? "minor" : "principal", side ? "V" : "U", lo, hi, nj ? " + null space" : "", bound);
            TU_CLOSE(set_error_masked(side ? Vtrue : Ut, side ? Vk : Uk, rows, k, lo, hi, nj, have), 0.0, bound, what);
        }
    // lone kept vectors equal dgesdd's (canonical signs), element by element
    double worst = 0.0;
    for (int side = 0; side < 2; side++) {
        int rows = side ? n : m, lo, hi, nj;
        const double *A = side ? V : U, *B = side ? Vk : Uk;
        for (int j = 0; j < nsel; j++) {
            double gap = cluster_closure(S, k, rows > k, S[0], sel[j], sel[j] + 1, &lo, &hi, &nj);
            if (hi - lo != 1 || nj) continue;
            for (int i = 0; i < rows; i++)
                worst = fmax(worst, fabs(B[(size_t)i * k + sel[j]] - A[(size_t)i * k + sel[j]]) / (TOL * S[0] / gap));
        }
    }
    snprintf(what, sizeof what, "%s %s: lone kept vectors vs dgesdd (in units of the gap bound)", c->name, tag);
    TU_CLOSE(worst, 0.0, 1.0, what);
    free(Uk), free(Vk), free(have), free(Vtrue), free(V);
out:
    free(Ss), free(Us), free(Vts);
}

/* The kept vectors (present[j]) of U [m, k], Vt [k, n] against a reference
 * (Sr, Ur, Vtr), in units of the gap bound (<= 1 passes); also S and orthonormality. */
static void check_dist_kept(const char *name, const char *ref, int m, int n, const double *S,
                           const double *U, const double *Vt, const char *present, const double *Sr,
                           const double *Ur, const double *Vtr) {
    int k = m < n ? m : n;
    double smax = Sr[0], serr = 0.0, worst = 0.0, orth = 0.0;
    for (int i = 0; i < k; i++) serr = fmax(serr, fabs(S[i] - Sr[i]));
    char what[200];
    snprintf(what, sizeof what, "%s pdgebrd vs %s: max |S - S_ref| / smax", name, ref);
    TU_CLOSE(serr / smax, 0.0, TOL, what);
    double *V = transpose(Vt, k, n), *Vr = transpose(Vtr, k, n);
    int clusters = 0, kept = 0;
    for (int side = 0; side < 2; side++) {
        int rows = side ? n : m, lo, hi, nj;
        const double *A = side ? Vr : Ur, *B = side ? V : U;
        for (int a = 0; a < k; a++) {
            if (!present[a]) continue;
            kept += !side;
            for (int b = a; b < k; b++) {  // orthonormality among the kept vectors
                if (!present[b]) continue;
                double dot = 0.0;
                for (int i = 0; i < rows; i++) dot += B[(size_t)i * k + a] * B[(size_t)i * k + b];
                orth = fmax(orth, fabs(dot - (a == b)));
            }
        }
        for (int j = 0; j < k; j = hi) {
            double gap = cluster_closure(Sr, k, rows > k, smax, j, j + 1, &lo, &hi, &nj);
            int any = 0;
            for (int c = lo; c < hi; c++) any |= present[c];
            if (!any) continue;
            if (hi - lo == 1 && !nj) {
                double bound = TOL * smax / gap;
                for (int i = 0; i < rows; i++)
                    worst = fmax(worst, fabs(B[(size_t)i * k + j] - A[(size_t)i * k + j]) / bound);
            } else {
                clusters++;
                worst = fmax(worst, set_error_masked(A, B, rows, k, lo, hi, nj, present) / (TOL * (smax / gap + 1.0)));
            }
        }
    }
    free(V), free(Vr);
    snprintf(what, sizeof what, "%s pdgebrd vs %s: %d kept vectors, %d cluster(s) (in units of the gap bound)",
             name, ref, kept, clusters);
    if (getenv("TEST_SVD_VERBOSE"))
        printf("  %-44s vs %-7s S err %.1e smax, vectors %.2e of the gap bound\n", name, ref, serr / smax, worst);
    TU_CLOSE(worst, 0.0, 1.0, what);
    snprintf(what, sizeof what, "%s pdgebrd: kept vectors orthonormal", name);
    TU_CLOSE(orth, 0.0, TOL, what);
}

static void run_case(const Case *c, const char *dir) {
    int m = c->m, n = c->n, k = m < n ? m : n;
    double *St = malloc(sizeof(double) * k), *W = malloc(sizeof(double) * m * n);
    double *Ut = malloc(sizeof(double) * m * k), *Vtt = malloc(sizeof(double) * k * n);
    spectrum_fill(c->kind, k, 3.0, c->decades, St);
    synth_matrix(m, n, St, 11, (uint64_t)m * 1000 + n + c->kind, W, Ut, Vtt);
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, c->name);
    if (g_rank == 0) {
        SafeTensorSpec spec = {.name = "w", .dtype = DTYPE_F64, .ndim = 2, .shape = {m, n}, .data = W};
        TU_CHECK(safetensors_write(path, 1, &spec, 0, NULL, NULL) == AIL_OK, "%s", ail_error_message());
    }
    MPI_Barrier(MPI_COMM_WORLD);
    SafeTensors st;
    TU_CHECK(safetensors_open(path, &st) == AIL_OK, "%s", ail_error_message());
    const SafeTensor *w = safetensors_find(&st, "w");

    // dgesdd on every rank (each must get the same answer)
    double *S = malloc(sizeof(double) * k), *U = malloc(sizeof(double) * m * k);
    double *Vt = malloc(sizeof(double) * k * n), *work = malloc(sizeof(double) * m * n);
    memcpy(work, W, sizeof(double) * m * n);
    TU_CHECK(svd_lapack(m, n, work, S, U, Vt) == AIL_OK, "%s", ail_error_message());
    check_against_truth(c, "dgesdd", S, U, Vt, W, St, Ut, Vtt);

    // the selected-vector route: --keep 8 (principal and minor 8) and keep all
    int *sel = malloc(sizeof(int) * k);
    int nsel = svd_kept_indices(k, 8, sel);
    check_selected(c, W, nsel, sel, S, U, Vt, St, Ut, Vtt);
    nsel = svd_kept_indices(k, 0, sel);
    check_selected(c, W, nsel, sel, S, U, Vt, St, Ut, Vtt);
    free(sel);

    // pdgesvd on the grid of all ranks, small blocks so every rank owns several
    int nprow, npcol;
    blacs_grid_shape(g_size, &nprow, &npcol);
    BlacsGrid grid;
    TU_CHECK(blacs_grid_create(MPI_COMM_WORLD, nprow, npcol, &grid) == AIL_OK, "%s", ail_error_message());
    DistSvd ds;
    int rc = svd_pdgesvd(&grid, w, 8, &ds);
    TU_CHECK(rc == AIL_OK, "pdgesvd: %s", ail_error_message());
    if (rc == AIL_OK) {
        double *p = gather(&ds.p), *qt = gather(&ds.qt);  // col-major: p = Vt row-major, qt = U row-major
        if (g_rank == 0) {
            check_against_truth(c, "pdgesvd", ds.S, qt, p, W, St, Ut, Vtt);
            // against dgesdd cluster by cluster: lone vectors element by element, clusters by subspace
            double worst = 0.0;
            double *V = transpose(Vt, k, n), *Vp = transpose(p, k, n);
            int clusters = 0;
            for (int side = 0; side < 2; side++) {
                int rows = side ? n : m, lo, hi, nj;
                const double *A = side ? V : U, *B = side ? Vp : qt;
                for (int j = 0; j < k; j = hi) {
                    double gap = cluster_closure(S, k, rows > k, S[0], j, j + 1, &lo, &hi, &nj);
                    if (hi - lo == 1 && !nj) {
                        double bound = TOL * S[0] / gap;
                        for (int i = 0; i < rows; i++)
                            worst = fmax(worst, fabs(B[(size_t)i * k + j] - A[(size_t)i * k + j]) / bound);
                    } else {
                        clusters++;
                        worst = fmax(worst, set_error(A, B, rows, k, lo, hi, nj) / (TOL * (S[0] / gap + 1.0)));
                    }
                }
            }
            free(V), free(Vp);
            char what[160];
            snprintf(what, sizeof what, "%s: pdgesvd vs dgesdd vectors, %d cluster(s) (in units of the gap bound)",
                     c->name, clusters);
            TU_CLOSE(worst, 0.0, 1.0, what);
        }
        // the selected-vector route: keep all, keep 8 (principal and minor ends), keep 1
        const int keeps[3] = {0, 8, 1};
        for (int t = 0; t < 3; t++) {
            DistSelSvd sel;
            rc = svd_pdgebrd(&grid, w, 8, keeps[t], &sel);
            TU_CHECK(rc == AIL_OK, "pdgebrd: %s", ail_error_message());
            if (rc != AIL_OK) continue;
            double *ug = gather(&sel.ut), *vg = gather(&sel.vt);  // p x m, n x p column-major
            if (g_rank == 0) {
                int pk = sel.p;
                double *Uf = calloc((size_t)m * k, sizeof *Uf), *Vtf = calloc((size_t)k * n, sizeof *Vtf);
                char *present = calloc((size_t)k, 1);
                for (int q = 0; q < pk; q++) {
                    int j = sel.idx[q];
                    present[j] = 1;
                    for (int i = 0; i < m; i++) Uf[(size_t)i * k + j] = ug[(size_t)i * pk + q];
                    for (int i = 0; i < n; i++) Vtf[(size_t)j * n + i] = vg[(size_t)q * n + i];
                }
                int want = keeps[t] == 0 || 2 * keeps[t] >= k ? k : 2 * keeps[t];
                TU_CHECK(pk == want, "%s keep %d: %d vectors kept, want %d", c->name, keeps[t], pk, want);
                char name[160];
                snprintf(name, sizeof name, "%s keep %s", c->name, keeps[t] ? (keeps[t] == 8 ? "8" : "1") : "all");
                // the truth's own signs are arbitrary: compare with its canonical form
                double *Uc = malloc(sizeof(double) * m * k), *Vtc = malloc(sizeof(double) * k * n);
                memcpy(Uc, Ut, sizeof(double) * m * k), memcpy(Vtc, Vtt, sizeof(double) * k * n);
                svd_canonical_signs(m, n, k, Uc, Vtc);
                check_dist_kept(name, "truth", m, n, sel.S, Uf, Vtf, present, St, Uc, Vtc);
                free(Uc), free(Vtc);
                check_dist_kept(name, "dgesdd", m, n, sel.S, Uf, Vtf, present, S, U, Vt);
                check_dist_kept(name, "pdgesvd", m, n, sel.S, Uf, Vtf, present, ds.S, qt, p);
                if (keeps[t] == 0) check_against_truth(c, "pdgebrd keep all", sel.S, Uf, Vtf, W, St, Ut, Vtt);
                free(Uf), free(Vtf), free(present);
            }
            free(ug), free(vg);
            dist_sel_svd_free(&sel);
        }
        free(p);
        free(qt);
        dist_svd_free(&ds);
    }
    blacs_grid_free(&grid);
    safetensors_close(&st);
    free(St), free(W), free(Ut), free(Vtt), free(S), free(U), free(Vt), free(work);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    char dir[256] = "/tmp/ailora-test-svd-XXXXXX";
    if (g_rank == 0 && !mkdtemp(dir)) {
        perror("mkdtemp");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    const Case cases[] = {
        {"square_geometric_10decades", 96, 96, SPECTRUM_GEOMETRIC, 10.0},
        {"tall_geometric_8decades", 100, 52, SPECTRUM_GEOMETRIC, 8.0},
        {"wide_gqa_v_proj", 36, 100, SPECTRUM_GEOMETRIC, 9.0},
        {"cluster_of_tiny_values", 80, 80, SPECTRUM_CLUSTER, 9.0},
        {"exact_zeros", 72, 60, SPECTRUM_ZEROS, 4.0},
        {"wide_exact_zeros", 40, 90, SPECTRUM_ZEROS, 3.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i], dir);
    int failures = tu_failures;
    MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    if (g_rank == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
        printf("test_svd on %d rank(s): %d checks, %d failed (all ranks)\n", g_size, tu_checks, failures);
    }
    MPI_Finalize();
    return failures ? 1 : 0;
}
