/* test_svd.c - SVD accuracy against prescribed spectra, every backend, any rank count.
 *
 * Matrices W = U diag(S) V^T are built in float64 from Haar-random orthonormal
 * factors and stored as F64 safetensors, so the truth is known to ~1e-16 * smax.
 * Checked (tolerances from the foundation issue; dgesdd and pdgesvd are backward
 * stable with errors ~ sqrt(n) eps smax ~ 1e-15 smax, so 1e-12 leaves margin):
 *   - singular values within 1e-12 * smax of the truth
 *   - U and V orthonormal to 1e-12, W = U S Vt to 1e-12 * smax
 *   - principal / minor r-subspaces against the truth: sin(largest principal
 *     angle) within 1e-12 * smax / gap (Wedin), whenever that bound is < 1e-2
 *   - pdgesvd on the grid of all ranks agrees with dgesdd pair by pair (signs canonical)
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

/* sin of the largest principal angle between span(U_true[:, I]) and span(U[:, I]),
 * bounded by the Frobenius norm of (I - P_true) U_I. */
static double subspace_sin(const double *Ut, const double *U, int m, int k, const int *I, int r) {
    double fro = 0.0;
    double *proj = malloc(sizeof(double) * r);
    for (int c = 0; c < r; c++) {
        for (int a = 0; a < r; a++) {
            double dot = 0.0;
            for (int i = 0; i < m; i++) dot += Ut[(size_t)i * k + I[a]] * U[(size_t)i * k + I[c]];
            proj[a] = dot;
        }
        for (int i = 0; i < m; i++) {
            double res = U[(size_t)i * k + I[c]];
            for (int a = 0; a < r; a++) res -= Ut[(size_t)i * k + I[a]] * proj[a];
            fro += res * res;
        }
    }
    free(proj);
    return sqrt(fro);
}

/* Gap between the selected set and the rest of the spectrum. */
static double set_gap(const double *S, int k, const int *I, int r) {
    double gap = INFINITY;
    for (int a = 0; a < r; a++)
        for (int j = 0; j < k; j++) {
            int in = 0;
            for (int b = 0; b < r; b++) in |= I[b] == j;
            if (!in) gap = fmin(gap, fabs(S[I[a]] - S[j]));
        }
    return gap;
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
                                const double *Ut) {
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
    // principal and minor subspaces of rank 8, where the gap makes them well defined
    int r = 8, I[8];
    for (int pass = 0; pass < 2; pass++) {
        for (int a = 0; a < r; a++) I[a] = pass ? k - r + a : a;
        double gap = set_gap(St, k, I, r);
        double bound = TOL * smax / gap;
        if (bound > 1e-2) continue;  // no gap: the subspace itself is ill-defined
        snprintf(what, sizeof what, "%s %s: sin angle of the %s subspace (bound %.1e)", c->name,
                 backend, pass ? "minor" : "principal", bound);
        TU_CLOSE(subspace_sin(Ut, U, m, k, I, r), 0.0, bound, what);
    }
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
    check_against_truth(c, "dgesdd", S, U, Vt, W, St, Ut);

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
            check_against_truth(c, "pdgesvd", ds.S, qt, p, W, St, Ut);
            // pair by pair against dgesdd, with the gap-aware bound
            double worst = 0.0;
            for (int j = 0; j < k; j++) {
                double gap = INFINITY;
                if (j > 0) gap = fmin(gap, S[j - 1] - S[j]);
                if (j < k - 1) gap = fmin(gap, S[j] - S[j + 1]);
                double bound = fmin(2.0, TOL * S[0] / gap);
                for (int i = 0; i < m; i++) worst = fmax(worst, fabs(qt[(size_t)i * k + j] - U[(size_t)i * k + j]) / bound);
                for (int i = 0; i < n; i++) worst = fmax(worst, fabs(p[(size_t)j * n + i] - Vt[(size_t)j * n + i]) / bound);
            }
            char what[128];
            snprintf(what, sizeof what, "%s: pdgesvd vs dgesdd vectors (in units of the gap bound)", c->name);
            TU_CLOSE(worst, 0.0, 1.0, what);
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
