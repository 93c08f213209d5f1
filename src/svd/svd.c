/* svd.c - dgesdd and pdgesvd backends with canonical signs (svd_signs.c). */
#include "ailora/svd.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <blis.h>

#include "ailora/error.h"
#include "base/lapack.h"

int svd_threads_parse(const char *text, void *threads) {
    if (strcmp(text, "auto") == 0) {
        *(int *)threads = SVD_THREADS_AUTO;
        return AIL_OK;
    }
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < 1 || v > SVD_THREADS_MAX)
        return AIL_ERROR(AIL_ERR_ARG, "threads \"%s\": expected auto or a count of BLIS threads per rank "
                         "in [1, %d]", text, SVD_THREADS_MAX);
    *(int *)threads = (int)v;
    return AIL_OK;
}

const char *svd_threads_print(const void *threads) {
    static _Thread_local char buf[16];
    int v = *(const int *)threads;
    if (v == SVD_THREADS_AUTO) return "auto";
    snprintf(buf, sizeof buf, "%d", v);
    return buf;
}

int svd_threads_affinity(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

/* A thread count from the environment, 0 when unset or not a count >= 1 (BLIS
 * ignores those too); of an OpenMP list ("4,2": nested levels) the outer level. */
static int env_threads(const char *name) {
    const char *text = getenv(name);
    if (!text || !*text) return 0;
    char *end;
    long v = strtol(text, &end, 10);
    return (*end && *end != ',') || v < 1 ? 0 : v > SVD_THREADS_MAX ? SVD_THREADS_MAX : (int)v;
}

int svd_threads_env(void) {
    int n = env_threads("BLIS_NUM_THREADS");
    return n ? n : env_threads("OMP_NUM_THREADS");
}

int svd_threads_set(int threads) {
    int before = (int)bli_thread_get_num_threads();
    bli_thread_set_num_threads(threads < 1 ? 1 : threads);  // unset: BLIS's default of one
    return before;
}

int svd_threads_resolve(MPI_Comm comm, int requested, int *threads) {
    if (requested < SVD_THREADS_AUTO || requested > SVD_THREADS_MAX)
        return AIL_ERROR(AIL_ERR_ARG, "threads %d per rank: expected auto or 1 to %d", requested, SVD_THREADS_MAX);
    int mine = requested;
    if (requested == SVD_THREADS_AUTO) {
        mine = svd_threads_env();
        if (!mine) {
            // ranks not bound to disjoint CPUs all see the whole node: share it
            MPI_Comm node;
            int per_node;
            MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
            MPI_Comm_size(node, &per_node);
            MPI_Comm_free(&node);
            long online = sysconf(_SC_NPROCESSORS_ONLN), share = online > per_node ? online / per_node : 1;
            mine = svd_threads_affinity();
            if (mine > share) mine = (int)share;
        }
    } else if (requested == 0) {
        mine = (int)bli_thread_get_num_threads();  // the environment's, as BLIS read it
    }
    if (mine < 1) mine = 1;
    if (mine > SVD_THREADS_MAX) mine = SVD_THREADS_MAX;
    // every rank plans with the same count (the plan prices it)
    MPI_Allreduce(&mine, threads, 1, MPI_INT, MPI_MIN, comm);
    return AIL_OK;
}

int svd_backend_parse(const char *name, SvdBackend *backend) {
    if (strcmp(name, "auto") == 0) *backend = SVD_BACKEND_AUTO;
    else if (strcmp(name, "lapack") == 0) *backend = SVD_BACKEND_LAPACK;
    else if (strcmp(name, "pdgesvd") == 0) *backend = SVD_BACKEND_PDGESVD;
    else if (strcmp(name, "cusolver") == 0) *backend = SVD_BACKEND_CUSOLVER;
    else if (strcmp(name, "select") == 0) *backend = SVD_BACKEND_SELECT;
    else if (strcmp(name, "pdgebrd") == 0) *backend = SVD_BACKEND_PDGEBRD;
    else return AIL_ERROR(AIL_ERR_ARG, "unknown SVD backend \"%s\" (auto, lapack, pdgesvd, cusolver, select, pdgebrd)", name);
    return AIL_OK;
}

const char *svd_backend_name(SvdBackend backend) {
    switch (backend) {
    case SVD_BACKEND_LAPACK: return "lapack";
    case SVD_BACKEND_PDGESVD: return "pdgesvd";
    case SVD_BACKEND_CUSOLVER: return "cusolver";
    case SVD_BACKEND_SELECT: return "select";
    case SVD_BACKEND_PDGEBRD: return "pdgebrd";
    default: return "auto";
    }
}

/* LAPACK's int workspace sizes come back as doubles; round up so a value just
 * below an integer cannot under-allocate, and refuse sizes the 32-bit LWORK of
 * LAPACK / ScaLAPACK cannot hold (the cast would wrap). */
static int lwork_from_query(double q, const char *routine, int m, int n, int *lwork) {
    double need = ceil(q * (1.0 + 1e-9)) + 1;
    if (!(need <= (double)INT_MAX))
        return AIL_ERROR(AIL_ERR_ARG, "%s on a %dx%d matrix needs a workspace of %.0f doubles, more than "
                         "its 32-bit LWORK can address (%d): use --backend pdgesvd on more ranks",
                         routine, m, n, need, INT_MAX);
    *lwork = (int)need;
    return AIL_OK;
}

int svd_lapack(int m, int n, double *w, double *S, double *U, double *Vt) {
    // Column-major, the row-major W [m, n] is A = W^T (n x m). dgesdd(A) gives
    // A = Ua diag(S) VTa with Ua (n x k) = Vt read row-major, VTa (k x m) = U row-major.
    int k = m < n ? m : n, rows = n, cols = m, info, lwork = -1;
    int ldvt = k;
    double query;
    int *iwork = ail_malloc(sizeof(int) * 8 * (size_t)k);
    if (!iwork) return AIL_ERROR(AIL_ERR_MEM, "out of memory for dgesdd workspace");
    dgesdd_("S", &rows, &cols, w, &rows, S, Vt, &rows, U, &ldvt, &query, &lwork, iwork, &info, 1);
    int rc = lwork_from_query(query, "dgesdd", m, n, &lwork);
    if (rc != AIL_OK) {
        free(iwork);
        return rc;
    }
    double *work = ail_malloc(sizeof(double) * (size_t)lwork);
    if (!work) {
        free(iwork);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for dgesdd workspace (%d doubles)", lwork);
    }
    dgesdd_("S", &rows, &cols, w, &rows, S, Vt, &rows, U, &ldvt, work, &lwork, iwork, &info, 1);
    free(work);
    free(iwork);
    if (info != 0)
        return AIL_ERROR(AIL_ERR_LIB, "dgesdd failed on a %dx%d matrix (info %d)", m, n, info);
    svd_canonical_signs(m, n, k, U, Vt);
    return AIL_OK;
}

/* Canonical signs for the distributed factors: U[:, j] is row j of qt, spread over
 * a process row; find its largest-magnitude entry across the grid (MAXLOC picks
 * the smallest index on ties, matching the serial rule), then flip qt row j and
 * p column j where that entry is negative. */
static int dist_canonical_signs(DistSvd *svd) {
    int k = svd->k;
    struct { double v; int i; } *best = ail_malloc(sizeof *best * (size_t)k);
    double *sign = ail_calloc((size_t)k, sizeof *sign);
    int rc = best && sign ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for sign canonicalization");
    if (ail_error_agree(svd->qt.grid->comm, rc) != AIL_OK) {  // before the grid's all-reduces
        free(best);
        free(sign);
        return ail_error_code();
    }
    for (int j = 0; j < k; j++) best[j].v = -1.0, best[j].i = INT_MAX;
    DistMatrix *qt = &svd->qt;
    for (int jl = 0; jl < qt->nloc; jl++) {
        int gi = distmat_col_global(qt, jl);
        for (int il = 0; il < qt->mloc; il++) {
            int gj = distmat_row_global(qt, il);
            double v = fabs(qt->local[(size_t)jl * qt->lld + il]);
            if (v > best[gj].v || (v == best[gj].v && gi < best[gj].i)) best[gj].v = v, best[gj].i = gi;
        }
    }
    MPI_Comm comm = qt->grid->comm;
    MPI_Allreduce(MPI_IN_PLACE, best, k, MPI_DOUBLE_INT, MPI_MAXLOC, comm);
    for (int jl = 0; jl < qt->nloc; jl++) {
        int gi = distmat_col_global(qt, jl);
        for (int il = 0; il < qt->mloc; il++) {
            int gj = distmat_row_global(qt, il);
            if (best[gj].i == gi) sign[gj] = qt->local[(size_t)jl * qt->lld + il] < 0 ? -1.0 : 1.0;
        }
    }
    MPI_Allreduce(MPI_IN_PLACE, sign, k, MPI_DOUBLE, MPI_SUM, comm);
    for (int jl = 0; jl < qt->nloc; jl++)
        for (int il = 0; il < qt->mloc; il++)
            if (sign[distmat_row_global(qt, il)] < 0) qt->local[(size_t)jl * qt->lld + il] *= -1.0;
    DistMatrix *p = &svd->p;
    for (int jl = 0; jl < p->nloc; jl++)
        if (sign[distmat_col_global(p, jl)] < 0)
            for (int il = 0; il < p->mloc; il++) p->local[(size_t)jl * p->lld + il] *= -1.0;
    free(best);
    free(sign);
    return AIL_OK;
}

int svd_pdgesvd(const BlacsGrid *grid, const SafeTensor *w, int nb, DistSvd *out) {
    memset(out, 0, sizeof *out);
    int m = (int)w->shape[0], n = (int)w->shape[1], k = m < n ? m : n;
    out->m = m, out->n = n, out->k = k;
    DistMatrix a = {0};  // W^T, n x m
    // every rank of the grid agrees before each ScaLAPACK call: one rank's failure
    // must not leave the others waiting inside pdgesvd
    int rc = distmat_create(grid, n, m, nb, &a);
    if (rc == AIL_OK) rc = distmat_load_weight_t(&a, w);
    if (rc == AIL_OK) rc = distmat_create(grid, n, k, nb, &out->p);
    if (rc == AIL_OK) rc = distmat_create(grid, k, m, nb, &out->qt);
    if (rc == AIL_OK && !(out->S = ail_malloc(sizeof(double) * (size_t)k)))
        rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    rc = ail_error_agree(grid->comm, rc);
    double *work = NULL;
    if (rc == AIL_OK) {
        int one = 1, lwork = -1, info;
        double query;
        pdgesvd_("V", "V", &n, &m, a.local, &one, &one, a.desc, out->S, out->p.local, &one, &one,
                 out->p.desc, out->qt.local, &one, &one, out->qt.desc, &query, &lwork, &info, 1, 1);
        // pdgesvd's query can differ across ranks; everyone uses the largest
        MPI_Allreduce(MPI_IN_PLACE, &query, 1, MPI_DOUBLE, MPI_MAX, grid->comm);
        rc = lwork_from_query(query, "pdgesvd", m, n, &lwork);  // same answer on every rank
        if (rc == AIL_OK && !(work = ail_malloc(sizeof(double) * (size_t)lwork)))
            rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for pdgesvd workspace (%d doubles)", lwork);
        rc = ail_error_agree(grid->comm, rc);
        if (rc == AIL_OK) {
            pdgesvd_("V", "V", &n, &m, a.local, &one, &one, a.desc, out->S, out->p.local, &one,
                     &one, out->p.desc, out->qt.local, &one, &one, out->qt.desc, work, &lwork, &info,
                     1, 1);
            // info is global for pdgesvd's argument and convergence checks
            if (info != 0)
                rc = AIL_ERROR(AIL_ERR_LIB, "pdgesvd failed on %s (%dx%d, info %d)", w->name, m, n,
                               info);
            rc = ail_error_agree(grid->comm, rc);
        }
    }
    free(work);
    distmat_free(&a);
    if (rc == AIL_OK) rc = dist_canonical_signs(out);
    if (rc != AIL_OK) dist_svd_free(out);
    return rc;
}

void dist_svd_free(DistSvd *svd) {
    free(svd->S);
    distmat_free(&svd->p);
    distmat_free(&svd->qt);
    memset(svd, 0, sizeof *svd);
}
