/* svd_plan.c - scheduling the SVDs of all target matrices over the ranks.
 *
 * Cost of one SVD ~ m n k flops. Longest-processing-time-first (LPT): take the
 * matrices from the most to the least expensive, give each to the least loaded
 * group. Phase 0 holds the matrices one rank can hold; phase 1, if any matrix is
 * too big for one rank, runs those on a grid of all ranks.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/svd.h"
#include "ailora/svd_cost.h"

double svd_lapack_bytes(int m, int n) {
    double k = m < n ? m : n, big = m > n ? m : n;
    // W, U, Vt, and dgesdd's workspace of about 4k^2 + 7k + max(m,n)k doubles, plus iwork
    return 8.0 * ((double)m * n + (double)m * k + k * n + 4.0 * k * k + 7.0 * k + big * k) + 32.0 * k;
}

/* dgesdd's LWORK is a 32-bit int and its JOBZ='S' workspace at least 4k^2 + 7k:
 * from k of about 23170 on, no 32-bit LAPACK can take the matrix whole. */
static int lapack_lwork_overflows(int m, int n) {
    double k = m < n ? m : n;
    return 4.0 * k * k + 7.0 * k > (double)INT_MAX;
}

static double task_cost(const TargetModule *t) {
    double k = t->m < t->n ? t->m : t->n;
    return (double)t->m * (double)t->n * k;
}

typedef struct {
    double cost;
    int index;
} CostIndex;

static int by_cost_desc(const void *a, const void *b) {
    const CostIndex *x = a, *y = b;
    if (x->cost != y->cost) return x->cost < y->cost ? 1 : -1;
    return x->index - y->index;  // stable: same plan on every rank
}

/* Assign the tasks listed in order[] (by decreasing cost) to ngroups groups of phase. */
static int assign_lpt(SvdPlan *plan, const CostIndex *order, int count, int phase, int ngroups,
                      int group_size, SvdBackend backend) {
    double *load;
    AIL_CALLOC(load, ngroups);
    int nprow, npcol;
    blacs_grid_shape(group_size, &nprow, &npcol);
    for (int t = 0; t < count; t++) {
        int g = 0;
        for (int i = 1; i < ngroups; i++)
            if (load[i] < load[g]) g = i;
        load[g] += order[t].cost;
        SvdTask *task = &plan->tasks[order[t].index];
        task->phase = phase;
        task->group = g;
        if (backend != SVD_BACKEND_AUTO) task->backend = backend;  // AUTO: the route chosen per matrix
        task->nprow = nprow;
        task->npcol = npcol;
    }
    plan->phases[phase].ngroups = ngroups;
    plan->phases[phase].group_size = group_size;
    free(load);
    return AIL_OK;
}

int svd_plan_make(SvdBackend backend, const TargetModule *targets, int ntargets, int nranks,
                  double max_rank_bytes, int group_ranks, SvdPlan *plan) {
    return svd_plan_make_keep(backend, targets, ntargets, nranks, max_rank_bytes, group_ranks, 0, plan);
}

int svd_plan_make_keep(SvdBackend backend, const TargetModule *targets, int ntargets, int nranks,
                       double max_rank_bytes, int group_ranks, int keep, SvdPlan *plan) {
    return svd_plan_make_threads(backend, targets, ntargets, nranks, 1, max_rank_bytes, group_ranks, keep, plan);
}

/* The one-rank route of a matrix: select when keep leaves vectors out and the rates
 * say it is faster (auto), or when asked for; dgesdd otherwise. Seconds at `threads`
 * BLIS threads: the routes scale differently (dgebrd's dgemv half is not threaded). */
static SvdBackend single_route(SvdBackend backend, const SvdRates *rates, const TargetModule *t, int keep,
                               int threads, double *seconds) {
    int k = t->m < t->n ? t->m : t->n, nsel = keep > 0 && 2 * (long)keep < k ? 2 * keep : k;
    double gesdd = svd_cost_gesdd(rates, t->m, t->n) / svd_thread_speedup(rates->gesdd_eff2, threads);
    double sel = svd_cost_select(rates, t->m, t->n, nsel) / svd_thread_speedup(rates->select_eff2, threads);
    SvdBackend b = backend == SVD_BACKEND_SELECT || (backend == SVD_BACKEND_AUTO && sel < gesdd)
                       ? SVD_BACKEND_SELECT
                       : backend == SVD_BACKEND_CUSOLVER ? SVD_BACKEND_CUSOLVER : SVD_BACKEND_LAPACK;
    *seconds = b == SVD_BACKEND_SELECT ? sel : gesdd;
    return b;
}

int svd_plan_make_threads(SvdBackend backend, const TargetModule *targets, int ntargets, int nranks,
                          int threads, double max_rank_bytes, int group_ranks, int keep, SvdPlan *plan) {
    memset(plan, 0, sizeof *plan);
    SvdRates rates;
    AIL_CHECK(svd_rates_get(&rates));
    if (threads < 1 || threads > SVD_THREADS_MAX)
        return AIL_ERROR(AIL_ERR_ARG, "threads %d per rank: expected 1 to %d", threads, SVD_THREADS_MAX);
    if (group_ranks < 0 || group_ranks > nranks)
        return AIL_ERROR(AIL_ERR_ARG, "sub-grids of %d ranks impossible with %d ranks", group_ranks,
                         nranks);
    AIL_CALLOC(plan->tasks, ntargets);
    plan->ntasks = ntargets;
    CostIndex *fits = ail_malloc(sizeof *fits * (size_t)(ntargets ? ntargets : 1));
    CostIndex *big = ail_malloc(sizeof *big * (size_t)(ntargets ? ntargets : 1));
    if (!fits || !big) {
        free(fits);
        free(big);
        svd_plan_free(plan);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    }
    int nfits = 0, nbig = 0, rc = AIL_OK;
    double single_s = 0.0, pd_s = 0.0;  // predicted seconds of the fitting matrices, one rank / sub-grids
    for (int i = 0; i < ntargets; i++) {
        CostIndex ci = {task_cost(&targets[i]), i};
        int too_big = svd_lapack_bytes(targets[i].m, targets[i].n) > max_rank_bytes;
        int no_lwork = lapack_lwork_overflows(targets[i].m, targets[i].n);
        if (backend == SVD_BACKEND_LAPACK && no_lwork && rc == AIL_OK)
            rc = AIL_ERROR(AIL_ERR_ARG, "%s (%dx%d): dgesdd's workspace exceeds LAPACK's 32-bit LWORK; "
                           "use --backend pdgesvd or auto", targets[i].name, targets[i].m, targets[i].n);
        if (backend == SVD_BACKEND_PDGESVD || backend == SVD_BACKEND_PDGEBRD ||
            (backend == SVD_BACKEND_AUTO && ((too_big && nranks > 1) || no_lwork)))
            big[nbig++] = ci;
        else {
            // LPT over predicted seconds of the route each matrix takes
            plan->tasks[i].backend = single_route(backend, &rates, &targets[i], keep, threads, &ci.cost);
            single_s += ci.cost;
            fits[nfits++] = ci;
        }
    }
    qsort(fits, (size_t)nfits, sizeof *fits, by_cost_desc);
    qsort(big, (size_t)nbig, sizeof *big, by_cost_desc);

    if (rc == AIL_OK && nfits > 0) {
        int g = group_ranks > 0 ? group_ranks : nranks / nfits;
        // idle ranks (more ranks than matrices): the distributed selected route on
        // sub-grids of g ranks (one thread each) where the cost model (svd_cost.h)
        // says it is faster than one rank at `threads` threads (single_s)
        for (int i = 0; i < nfits && g >= 2; i++) {
            SvdCost c;
            const TargetModule *t = &targets[fits[i].index];
            svd_cost_matrix(&rates, SVD_BACKEND_PDGEBRD, t->m, t->n, keep, g, 0, &c);
            pd_s += c.seconds;
        }
        if (backend == SVD_BACKEND_AUTO && (group_ranks > 0 || (g >= 2 && pd_s < single_s)))
            rc = assign_lpt(plan, fits, nfits, plan->nphases, nranks / g, g, SVD_BACKEND_PDGEBRD);
        else  // one matrix per rank: dgesdd, selected vectors, or cuSOLVER on the rank's GPU
            rc = assign_lpt(plan, fits, nfits, plan->nphases, nranks < nfits ? nranks : nfits, 1,
                            SVD_BACKEND_AUTO);
        plan->nphases++;
    }
    if (rc == AIL_OK && nbig > 0) {
        // too big for one rank: the distributed selected route (pdgesvd only when
        // asked for: the reference backend). auto: sub-grids as small as memory
        // allows, but no more groups than matrices, so that no rank idles.
        int g = nranks;
        if (backend == SVD_BACKEND_AUTO) {
            g = nranks / nbig > 1 ? nranks / nbig : 1;
            for (;; g++) {
                int fits_all = 1;
                for (int i = 0; i < nbig && fits_all; i++) {
                    SvdCost c;
                    const TargetModule *t = &targets[big[i].index];
                    svd_cost_matrix(&rates, SVD_BACKEND_PDGEBRD, t->m, t->n, keep, g, 0, &c);
                    fits_all = c.rank_bytes <= max_rank_bytes;
                }
                if (fits_all || g >= nranks) break;
            }
            if (g < 2 && nranks >= 2) g = 2;  // one rank cannot hold it: a grid at least
        }
        rc = assign_lpt(plan, big, nbig, plan->nphases, nranks / g, g,
                        backend == SVD_BACKEND_PDGESVD ? SVD_BACKEND_PDGESVD : SVD_BACKEND_PDGEBRD);
        plan->nphases++;
    }
    free(fits);
    free(big);
    if (rc != AIL_OK) svd_plan_free(plan);
    else plan->threads = threads;
    return rc;
}

void svd_plan_free(SvdPlan *plan) {
    free(plan->tasks);
    memset(plan, 0, sizeof *plan);
}
