/* svd.h - full-spectrum float64 SVDs of model weight matrices.
 *
 * For W [m, n] (row-major, out x in), k = min(m, n):  W = U diag(S) Vt with
 * U [m, k] and Vt [k, n] row-major and S descending. Signs are canonical: each
 * singular pair (U[:, j], Vt[j, :]) is flipped so that the entry of U[:, j] with
 * the largest magnitude (the first one on ties) is positive. Backends:
 *
 *   lapack   one rank, LAPACK dgesdd (divide and conquer)
 *   pdgesvd  ScaLAPACK on a BLACS grid of ranks (W^T distributed block-cyclically)
 *   pdgebrd  selected vectors (--keep) on a grid: pdgebrd, dbdsvdx, pdormbr (below)
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
    SVD_BACKEND_PDGEBRD   /* selected vectors on a grid: pdgebrd + dbdsvdx + pdormbr */
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

/* ---- selected singular vectors on a grid (svd_dist_select.c) -------------------- */

/* Distributed selected-vector SVD of W [m, n], route `pdgebrd`. With a = W^T (n x m,
 * the layout of the pdgesvd route):
 *   pdgebrd      a = Q B P^T, B bidiagonal (upper if n >= m, lower otherwise)
 *   gather       d, e of B (k + k-1 numbers) on every rank of the grid
 *   redundant    every rank: all values of B (dqds, dbdsdc 'N'); the selected
 *                vectors of B with dbdsvdx (RANGE 'I'), or all with dbdsdc when
 *                2K >= k
 *   pdormbr      Q and P applied to the p selected vectors of B, distributed
 *                block-cyclically: a's left vectors (V of W) and right ones (U of W)
 * The kept vectors of B are re-orthonormalized (Gram-Schmidt, twice): inverse
 * iteration leaves tiny and tied values' vectors orthogonal only to eps smax / gap.
 * Signs are canonical (svd_signs.h) over the kept vectors. Memory per rank, P ranks:
 * a's blocks (m n / P), the vectors (2 (m + n) p / P), and the redundant bidiagonal
 * solve (dbdsvdx: 2k (k + 1) + 2 k p doubles; dbdsdc, all vectors: 7 k^2). */
typedef struct {
    int m, n, k, p;
    int *idx;       /* [p] kept indices into S, increasing */
    double *S;      /* [k] all singular values, descending, on every rank */
    DistMatrix vt;  /* n x p: column c = V[:, idx[c]]; distmat_write_h5_t gives Vt rows [p, n] */
    DistMatrix ut;  /* p x m: row c = U[:, idx[c]]; distmat_write_h5_t gives U columns [m, p] */
    double t_load, t_brd, t_values, t_vectors, t_back;  /* seconds of each phase on this rank */
} DistSelSvd;

/* Collective over grid->comm. keep K: indices [0, K) and [k-K, k), all when K <= 0
 * or 2K >= k. */
int svd_pdgebrd(const BlacsGrid *grid, const SafeTensor *w, int nb, int keep, DistSelSvd *out);
void dist_sel_svd_free(DistSelSvd *svd);

/* ---- per-core rates of the SVD kernels (shared by the cost model, svd_cost.h) --- */

/* One thread on one core. Flop counts are those of svd_cost.h (svd_flops_*); a
 * rate is those flops divided by the measured seconds, so any consistent count
 * works. Measured by experiments/bench/svd_rates.sh (writes a rates file that
 * `ailora svd --plan --rates FILE` reads); the defaults (svd_rates_default) are the
 * development machine's, with date and machine in svd_cost.c. */
typedef struct {
    double gesdd_gflops;    /* dgesdd JOBZ='S' (one rank) */
    double gebrd_gflops;    /* dgebrd / pdgebrd per core: 4 M N^2 - 4/3 N^3 (M >= N) */
    double ormbr_gflops;    /* dormbr / pdormbr per core: Q or P applied to p vectors */
    double bdsvdx_val_ns;   /* dbdsvdx all values: seconds = 1e-9 * val_ns * k^2 */
    double bdsvdx_vec_ns;   /* dbdsvdx selected vectors: seconds = 1e-9 * vec_ns * k * p */
    double bdsdc_gflops;    /* dbdsdc with all vectors: (8/3) k^3 */
    double pdgesvd_gflops;  /* pdgesvd per core, counted like dgesdd */
    double step_s;          /* pdgebrd: seconds of synchronization per column and log2(P), one node */
    double net_step_s;      /* the same across nodes (not measurable here: an assumption) */
    double read_gbs;        /* reading + converting weights to float64 (GB/s of float64) */
    double write_gbs;       /* HDF5 writes of the cache (GB/s) */
} SvdRates;

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
    SvdBackend backend;   /* LAPACK, PDGESVD or CUSOLVER (never AUTO) */
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
void svd_plan_free(SvdPlan *plan);
/* Bytes a dgesdd of an m x n matrix needs (inputs, outputs, workspace). */
double svd_lapack_bytes(int m, int n);

#endif
