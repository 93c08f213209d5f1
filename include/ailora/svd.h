/* svd.h - full-spectrum float64 SVDs of model weight matrices.
 *
 * For W [m, n] (row-major, out x in), k = min(m, n):  W = U diag(S) Vt with
 * U [m, k] and Vt [k, n] row-major and S descending. Signs are canonical: each
 * singular pair (U[:, j], Vt[j, :]) is flipped so that the entry of U[:, j] with
 * the largest magnitude (the first one on ties) is positive. Backends:
 *
 *   lapack   one rank, LAPACK dgesdd (divide and conquer)
 *   select   one rank, all of S but only the kept singular vectors (svd_lapack_select)
 *   pdgesvd  ScaLAPACK on a BLACS grid of ranks (W^T distributed block-cyclically)
 *   auto     a schedule over all ranks (svd_plan_make); CPU only
 *   cusolver one rank per matrix on that rank's GPU, cuSOLVER gesvd (gpu_svd.h)
 */
#ifndef AILORA_SVD_H
#define AILORA_SVD_H

#include <mpi.h>

#include "ailora/distmat.h"
#include "ailora/hfmodel.h"
#include "ailora/svd_signs.h"  /* svd_canonical_signs */

typedef enum {
    SVD_BACKEND_AUTO = 0,
    SVD_BACKEND_LAPACK,
    SVD_BACKEND_PDGESVD,
    SVD_BACKEND_CUSOLVER,
    SVD_BACKEND_SELECT
} SvdBackend;

int svd_backend_parse(const char *name, SvdBackend *backend);
const char *svd_backend_name(SvdBackend backend);

/* LAPACK dgesdd of w [m, n] row-major (destroyed). S [k], U [m, k], Vt [k, n]. */
int svd_lapack(int m, int n, double *w, double *S, double *U, double *Vt);

/* Result of a distributed SVD of W, stored as ScaLAPACK returned it for W^T:
 * vt_t = Vt^T... concretely, for a = W^T (n x m): a = P diag(S) Q^T, so
 *   p  (n x k distributed) holds Vt^T: p(i, j) = Vt[j][i]
 *   qt (k x m distributed) holds U^T:  qt(j, i) = U[i][j]
 * Read as row-major arrays (dataset[j][i] = p(i, j)) they are Vt [k, n] and U [m, k]. */
typedef struct {
    int m, n, k;
    double *S;      /* [k], replicated on every rank of the grid */
    DistMatrix p;   /* n x k */
    DistMatrix qt;  /* k x m */
} DistSvd;

/* pdgesvd of W (tensor w) on grid with block size nb; collective over grid->comm. */
int svd_pdgesvd(const BlacsGrid *grid, const SafeTensor *w, int nb, DistSvd *out);
void dist_svd_free(DistSvd *svd);

/* ---- all values, selected vectors, on one rank (svd_select.c) -------------------
 *
 * W [m, n] row-major (not modified), k = min(m, n), sel [nsel] ascending indices
 * into S (descending). Out: S [k] all singular values, U [m, nsel] and Vt [nsel, n]
 * the selected singular vectors, canonical signs. One bidiagonal reduction
 * (dgebrd), values by dqds (dbdsqr), B's selected vectors by dbdsvdx (bisection and
 * inverse iteration on the Golub-Kahan tridiagonal, one call per contiguous index
 * range), and only those vectors back-transformed (dormbr Q, P): ~ 4 m n k - 4/3 k^3
 * + 2 (m + n) k nsel flops against dgesdd's ~ 4 m n k + 8/3 k^3 + 4 (m + n) k^2.
 *
 * Accuracy: the same contract as svd_lapack (S within ~1e-15 smax of dgesdd's: the
 * same bidiagonal, both high relative accuracy; vectors within 1e-12 smax / gap).
 * dbdsvdx's vectors of B are checked (each side orthonormal, residuals
 * ||B v - s u||, ||B^T u - s v|| and the values against dqds's, all within
 * SVD_SELECT_CHECK_TOL (x smax)); orthonormal vectors with residual r are within
 * r / gap of the exact subspaces (Wedin), so passing keeps the contract with a
 * factor 10 of margin. Where dbdsvdx reports failure or fails the check, the matrix
 * falls back to dgesdd and info says why. */
#define SVD_SELECT_CHECK_TOL 1e-13

typedef struct {
    int fallback;       /* 1: dgesdd computed this matrix */
    char reason[200];   /* why, when fallback */
    double orth_err;    /* worst departure of B's selected vectors from orthonormality */
    double resid_err;   /* worst residual of B's selected triplets / smax */
} SvdSelectInfo;

int svd_lapack_select(int m, int n, const double *w, int nsel, const int *sel, double *S,
                      double *U, double *Vt, SvdSelectInfo *info);
/* sel ascending, within [0, k): one error line otherwise. */
int svd_select_check(int k, int nsel, const int *sel);

/* The kept index set of `--keep K`: [0, K) and [k - K, k), deduplicated, ascending.
 * K = 0 means all (returns k). kept needs room for k entries. */
int svd_kept_indices(int k, int keep, int *kept);
/* `--keep` / `svd_keep` text: "all" (0) or an integer >= 1; and back. */
int svd_keep_parse(const char *text, void *keep);
const char *svd_keep_print(const void *keep);

/* ---- per-core speed of the routes (svd_rates.c) ----------------------------------
 *
 * Seconds per unit of work on one core, measured by experiments/bench/bench_select_rates
 * (`make bench-keep`; committed below, compiled in). Work units, k = min(m, n):
 *   gesdd        dgesdd of the whole matrix             per m n k
 *   select_brd   dgebrd + dqds (values)                 per m n k
 *   select_vec   dbdsvdx + dormbr for nsel vectors      per (m + n) k nsel
 *   pdgesvd      ScaLAPACK pdgesvd on g ranks           per m n k / g
 *   dist_select  distributed selected route on g ranks  per m n k / g (svd_dist_select)
 * Planning compares predicted seconds; only ratios between entries matter. */
/* The committed table: bench_select_rates 1024 (1024^2, 256 x 1024, 1024 x 256) on the
 * 2-core development machine, 2026-12-02, heavily shared (only ratios matter). */
#define SVD_RATE_GESDD 5.22e-9
#define SVD_RATE_SELECT_BRD 2.22e-9
#define SVD_RATE_SELECT_VEC 4.34e-9
#define SVD_RATE_PDGESVD (16.0 * SVD_RATE_GESDD)
#define SVD_RATE_DIST_SELECT (16.0 * SVD_RATE_GESDD)

typedef struct {
    double gesdd, select_brd, select_vec, pdgesvd, dist_select;
    const char *source;  /* where the numbers came from */
} SvdRates;

/* The committed table (or AILORA_SVD_RATES=FILE: lines "name seconds_per_unit"). */
int svd_rates_get(SvdRates *rates);
/* Predicted seconds of one m x n matrix keeping nsel vectors on one rank. */
double svd_cost_gesdd(const SvdRates *r, int m, int n);
double svd_cost_select(const SvdRates *r, int m, int n, int nsel);

/* ---- scheduling all target matrices over the ranks (svd_plan.c) ---------------- */

/* One phase splits the ranks into groups of consecutive ranks; each group runs
 * its matrices one after another, with dgesdd or cuSOLVER (groups of 1) or pdgesvd. */
typedef struct {
    int ngroups;
    int group_size;  /* all groups of a phase have the same size */
} SvdPhase;

typedef struct {
    int phase;            /* which phase computes this matrix */
    int group;            /* which group of that phase */
    SvdBackend backend;   /* LAPACK, SELECT, PDGESVD or CUSOLVER (never AUTO) */
    int nprow, npcol;     /* grid of the group */
} SvdTask;

typedef struct {
    int nphases;
    SvdPhase phases[2];
    int ntasks;
    SvdTask *tasks;       /* one per target matrix, same order */
} SvdPlan;

/* pdgesvd is this many times slower than dgesdd per rank (12.3 s vs 0.75 s for
 * 1024x1024 on one core, measured with
 * experiments/bench/svd_bench.sh: QR iteration versus divide and conquer), so
 * auto splits a matrix over ranks only when enough ranks would otherwise idle. */
#define SVD_PDGESVD_SLOWDOWN 16.0

/* Deterministic: every rank computes the same plan. max_rank_bytes bounds the
 * memory one rank may use for a dgesdd (W, U, Vt and workspace); larger matrices
 * go to a phase that uses all ranks with pdgesvd. group_ranks > 0 makes auto run
 * pdgesvd on sub-grids of that many ranks (0: decide by SVD_PDGESVD_SLOWDOWN). */
int svd_plan_make(SvdBackend backend, const TargetModule *targets, int ntargets, int nranks,
                  double max_rank_bytes, int group_ranks, SvdPlan *plan);
/* The same with `--keep K` (0: all): one-rank matrices take dgesdd or the
 * selected-vector route (SVD_BACKEND_SELECT) by the rates of svd_rates_get (auto),
 * and pdgesvd sub-grids are planned against the faster of them. */
int svd_plan_make_keep(SvdBackend backend, const TargetModule *targets, int ntargets, int nranks,
                       double max_rank_bytes, int group_ranks, int keep, SvdPlan *plan);
void svd_plan_free(SvdPlan *plan);
/* Bytes a dgesdd of an m x n matrix needs (inputs, outputs, workspace). */
double svd_lapack_bytes(int m, int n);

#endif
