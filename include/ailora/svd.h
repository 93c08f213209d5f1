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
 *   pdgebrd  selected vectors (--keep) on a grid: pdgebrd, B's vectors, pdormbr (below)
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
    SVD_BACKEND_SELECT,
    SVD_BACKEND_PDGEBRD   /* selected vectors on a grid: pdgebrd + B's vectors + pdormbr */
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
 * (dgebrd), values by dqds (dbdsqr), B's selected vectors by inverse iteration at
 * those values on the Golub-Kahan tridiagonal (dstein, one call per contiguous
 * index range; dbdsvdx, which bisects for the values again, where they fail the
 * check), and only those vectors back-transformed (dormbr Q, P): ~ 4 m n k - 4/3 k^3
 * + 2 (m + n) k nsel flops against dgesdd's ~ 4 m n k + 8/3 k^3 + 4 (m + n) k^2.
 *
 * Accuracy: the same contract as svd_lapack (S within ~1e-15 smax of dgesdd's: the
 * same bidiagonal, both high relative accuracy; vectors within 1e-12 smax / gap).
 * B's vectors are checked (each side orthonormal, residuals ||B v - s u||,
 * ||B^T u - s v|| and the values against dqds's, all within SVD_SELECT_CHECK_TOL
 * (x smax)); orthonormal vectors with residual r are within r / gap of the exact
 * subspaces (Wedin), so passing keeps the contract with a factor 10 of margin.
 * Where dstein's vectors fail the check, dbdsvdx redoes the range (info->redone);
 * where dbdsvdx reports failure or fails it too, the matrix falls back to dgesdd
 * and info says why. */
#define SVD_SELECT_CHECK_TOL 1e-13

typedef struct {
    int fallback;       /* 1: dgesdd computed this matrix */
    int redone;         /* index ranges whose inverse iteration at dqds's values failed the check (dbdsvdx redid them) */
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
 *   select_vec   dstein + dormbr for nsel vectors       per (m + n) k nsel
 *   pdgesvd      ScaLAPACK pdgesvd on g ranks           per m n k / g
 *   dist_select  distributed selected route on g ranks  per m n k / g (svd_dist_select)
 * Planning compares predicted seconds; only ratios between entries matter. */
/* The committed table: measured on the 2-core development machine (AMD EPYC, BLIS 0.9
 * skx kernels, reference LAPACK 3.11, ScaLAPACK 2.2.1) on 2026-12-03 10:28-10:40 UTC,
 * quiet (load average < 1.3): the one-rank routes by bench_select_rates 1024 (1024^2,
 * 256 x 1024, 1024 x 256; experiments/bench/logs/svd_keep_20261203.txt), the rest by
 * experiments/bench/svd_rates_dist.sh (2048 x 2048, keep 64, 1 and 2 ranks;
 * logs/rates_20261203.txt). pdgesvd is 32x dgesdd per core; dist_select (pdgebrd on
 * one rank) 0.46x. dist_step is pdgebrd's synchronization on 2 ranks of this machine
 * (131 us per column and log2(g)); net_step (across nodes) is assumed: 20 us per
 * column and log2(g), a few small collectives at InfiniBand latency. See
 * experiments/bench/README.md. */
#define SVD_RATE_GESDD 3.35e-10
#define SVD_RATE_SELECT_BRD 1.66e-10
#define SVD_RATE_SELECT_VEC 1.95e-10
#define SVD_RATE_PDGESVD 1.10e-8
#define SVD_RATE_DIST_SELECT 1.58e-10
#define SVD_RATE_DIST_STEP 1.31e-4
#define SVD_RATE_NET_STEP 20e-6
#define SVD_RATE_DIST_BACK 4.68e-11
#define SVD_RATE_BD_VALUES 1.13e-8
/* B's kept vectors by the shared solver (svd_bdvectors.c: dstein at the dqds values,
 * Cholesky QR2, the check), re-measured 14:34 UTC after the pdgebrd route moved to it
 * (logs/rates_20261203_bdvectors.txt: 0.063 s for 128 vectors at k = 2048, against
 * 0.227 s with dbdsvdx + Gram-Schmidt, 8.65e-7); the rest of that run was left out
 * of the table: its dgesdd was 25% slower than the morning's, the VM's drift */
#define SVD_RATE_BD_VECTORS 2.40e-7
#define SVD_RATE_BD_ALL 6.89e-11
/* Parallel efficiency at 2 BLIS threads in one rank (speedup / 2, in [0.5, 1]):
 * `ailora svd --threads 2` against `--threads 1` on one 2048^2 matrix
 * (experiments/bench/svd_threads_bench.sh; logs/svd_threads_20261203_quiet.txt, load
 * 1.3-1.4 with the benchmark's own processes: dgesdd 0.570, select 0.596; 4096^2
 * select 0.547). BLIS 0.9 threads level 3 only (gemm 1.90x at 2 threads here, dgemv
 * 1.0x), and dgemv is half of dgebrd's flops: Amdahl's bound for the reduction alone
 * is ~0.67. Earlier samples under heavy load (logs/svd_threads_20261203*.txt) ran
 * slower at 2 threads than at 1: threads need cores of their own. */
#define SVD_RATE_GESDD_EFF2 0.57
#define SVD_RATE_SELECT_EFF2 0.60
#define SVD_RATE_READ 5.23e-9
#define SVD_RATE_WRITE 1.98e-8
/* the launch of `mpirun -np 2 ailora init` on a 64 x 64 model, whole process: 0.33 s
 * since the CUDA backend is a plugin (0.52 s before; logs/init_vs_peft_20261203_plugin.txt) */
#define SVD_RATE_STARTUP 0.33

/* The distributed selected route in detail (svd_cost.h: --plan, and auto's choice
 * of sub-grids), also seconds per unit on one core; g ranks of a grid:
 *   dist_select  pdgebrd (bidiagonalization)            per m n k / g
 *   dist_step    pdgebrd's synchronization              per column and log2(g), one node
 *   net_step     the same when the grid spans nodes     (assumed, not measured here)
 *   dist_back    pdormbr of the kept vectors            per (m + n) k nsel / g
 *   bd_values    dqds, all values of B (redundant)      per k^2
 *   bd_vectors   B's kept vectors (svd_bdvectors.c)     per k nsel
 *   bd_all       dbdsdc, every vector of B (keep all)   per k^3
 *   read, write  weights to float64; HDF5 cache writes  per double
 *   startup      launching the job (mpirun, MPI_Init)   per run */
/* Threads in a rank (`--threads T`, svd_threads_resolve): the one-rank routes run
 * BLIS with T threads; their time is the one-core time / svd_thread_speedup(eff2,
 * T), Amdahl's law with the serial fraction f = 1/eff2 - 1 that the measured
 * efficiency at 2 threads implies (beyond 2 threads an extrapolation):
 *   gesdd_eff2   dgesdd at 2 threads: t(1) / (2 t(2))
 *   select_eff2  the selected-vector route at 2 threads
 * The grid routes run one thread per rank (their rates are per core at one thread;
 * a threaded grid rank is not measured). */
typedef struct {
    double gesdd, select_brd, select_vec, pdgesvd, dist_select;
    double gesdd_eff2, select_eff2;
    double dist_step, net_step, dist_back, bd_values, bd_vectors, bd_all, read, write;
    double startup;      /* seconds per run: mpirun, MPI and HDF5 start-up (not per core) */
    const char *source;  /* where the numbers came from */
} SvdRates;

/* The committed table (or AILORA_SVD_RATES=FILE: lines "name seconds_per_unit"). */
int svd_rates_get(SvdRates *rates);
/* Predicted seconds of one m x n matrix keeping nsel vectors on one rank (one core). */
double svd_cost_gesdd(const SvdRates *r, int m, int n);
double svd_cost_select(const SvdRates *r, int m, int n, int nsel);
/* Speedup of T threads over one from the efficiency at 2 (Amdahl, above): 1 at
 * T = 1, 2 eff2 at T = 2, below 1 / (1/eff2 - 1) for any T. */
double svd_thread_speedup(double eff2, int threads);

/* ---- BLIS threads per rank (svd.c) ---------------------------------------------
 *
 * `--threads N|auto`. requested: N >= 1 sets N, overriding BLIS_NUM_THREADS and
 * OMP_NUM_THREADS (the command line is the more specific); SVD_THREADS_AUTO takes
 * BLIS_NUM_THREADS, else OMP_NUM_THREADS, when set to a count >= 1 (what BLIS itself
 * would use: the benchmarks' and tests' BLIS_NUM_THREADS=1 keeps meaning one thread),
 * else the CPUs of this rank's affinity mask (sched_getaffinity: what `mpirun
 * --map-by slot:PE=N` or Slurm's --cpus-per-task binds), at most the node's online
 * CPUs / its ranks (unbound ranks share the node instead of oversubscribing it);
 * 0 (SvdOptions zero-initialized) takes BLIS's current setting (1 when unset).
 * Collective over comm: every rank gets the smallest count of all ranks, so that
 * the plan (which prices it) is the same on every rank. */
#define SVD_THREADS_AUTO (-1)
#define SVD_THREADS_MAX 1024
int svd_threads_resolve(MPI_Comm comm, int requested, int *threads);
/* BLIS_NUM_THREADS, else OMP_NUM_THREADS, as a count >= 1; 0 when neither is. */
int svd_threads_env(void);
/* The CPUs in this process's affinity mask (1 when unknown). */
int svd_threads_affinity(void);
/* BLIS's thread count for the calls that follow (LAPACK's BLAS calls included);
 * returns the previous setting (< 1: unset). */
int svd_threads_set(int threads);
/* `--threads` text: "auto" or a count in [1, SVD_THREADS_MAX]; and back. */
int svd_threads_parse(const char *text, void *threads);
const char *svd_threads_print(const void *threads);

/* ---- selected singular vectors on a grid (svd_dist_select.c) -------------------- */

/* Distributed selected-vector SVD of W [m, n], route `pdgebrd`. With a = W^T (n x m,
 * the layout of the pdgesvd route):
 *   pdgebrd      a = Q B P^T, B bidiagonal (upper if n >= m, lower otherwise)
 *   gather       d, e of B (k + k-1 numbers) on every rank of the grid
 *   redundant    every rank: all values of B (dqds, dbdsdc 'N'); the selected
 *                vectors of B as the one-rank route finds them (inverse iteration
 *                at the dqds values, dbdsvdx where they fail the check:
 *                src/svd/svd_bdvectors.h), or all with dbdsdc when 2K >= k
 *   pdormbr      Q and P applied to the p selected vectors of B, distributed
 *                block-cyclically: a's left vectors (V of W) and right ones (U of W)
 * The kept vectors of B are re-orthonormalized and checked as in the one-rank
 * route (a run failing both tiers is an error here: there is no dgesdd to fall
 * back to). Signs are canonical (svd_signs.h) over the kept vectors. Memory per rank, P ranks:
 * a's blocks (m n / P), the vectors (2 (m + n) p / P), and the redundant bidiagonal
 * solve (inverse iteration: ~ 2k p doubles; dbdsvdx, where needed: 2k (k + 1);
 * dbdsdc, all vectors: 7 k^2). */
typedef struct {
    int m, n, k, p;
    int *idx;       /* [p] kept indices into S, increasing */
    double *S;      /* [k] all singular values, descending, on every rank */
    DistMatrix vt;  /* n x p: column c = V[:, idx[c]]; distmat_write_h5_t gives Vt rows [p, n] */
    DistMatrix ut;  /* p x m: row c = U[:, idx[c]]; distmat_write_h5_t gives U columns [m, p] */
    double t_load, t_brd, t_values, t_vectors, t_back;  /* seconds of each phase on this rank */
} DistSelSvd;

/* Collective over grid->comm. keep K: the vectors svd_kept_indices(k, K) (all
 * when K = 0). */
int svd_pdgebrd(const BlacsGrid *grid, const SafeTensor *w, int nb, int keep, DistSelSvd *out);
void dist_sel_svd_free(DistSelSvd *svd);

/* ---- scheduling all target matrices over the ranks (svd_plan.c) ---------------- */

/* One phase splits the ranks into groups of consecutive ranks; each group runs
 * its matrices one after another, with dgesdd, select or cuSOLVER (groups of 1), or
 * on a grid: pdgebrd (the distributed selected route) or pdgesvd. */
typedef struct {
    int ngroups;
    int group_size;  /* all groups of a phase have the same size */
} SvdPhase;

typedef struct {
    int phase;            /* which phase computes this matrix */
    int group;            /* which group of that phase */
    SvdBackend backend;   /* LAPACK, SELECT, PDGESVD, PDGEBRD or CUSOLVER (never AUTO) */
    int nprow, npcol;     /* grid of the group */
} SvdTask;

typedef struct {
    int nphases;
    int threads;          /* BLIS threads of a one-rank task (grid tasks: one per rank) */
    SvdPhase phases[2];
    int ntasks;
    SvdTask *tasks;       /* one per target matrix, same order */
} SvdPlan;

/* Deterministic: every rank computes the same plan. max_rank_bytes bounds the
 * memory one rank may use for a dgesdd (W, U, Vt and workspace); larger matrices
 * go to a phase that uses all ranks with pdgebrd (pdgesvd when asked for). When
 * ranks outnumber matrices, auto runs pdgebrd on sub-grids of nranks / nmatrices
 * ranks where the cost model (svd_cost.h) predicts it faster than one rank per
 * matrix; group_ranks > 0 forces sub-grids of that many ranks. (pdgesvd, QR
 * iteration, is ~16x slower per core than dgesdd: 12.3 s vs 0.75 s for 1024^2,
 * experiments/bench/svd_bench.sh; it stays as the reference backend.) */
int svd_plan_make(SvdBackend backend, const TargetModule *targets, int ntargets, int nranks,
                  double max_rank_bytes, int group_ranks, SvdPlan *plan);
/* The same with `--keep K` (0: all): one-rank matrices take dgesdd or the
 * selected-vector route (SVD_BACKEND_SELECT) by the rates of svd_rates_get (auto),
 * and pdgebrd sub-grids are planned against the faster of them. */
int svd_plan_make_keep(SvdBackend backend, const TargetModule *targets, int ntargets, int nranks,
                       double max_rank_bytes, int group_ranks, int keep, SvdPlan *plan);
/* The same with T BLIS threads per rank (cores = nranks T). Decision rule (auto):
 * a matrix on one rank costs its one-core seconds (dgesdd or select, whichever is
 * less) / svd_thread_speedup(that route's eff2, T); where ranks outnumber the
 * one-rank matrices, sub-grids of g = nranks / nmatrices ranks run pdgebrd (one
 * thread per rank, svd_cost_matrix at g ranks) when the matrices' summed predicted
 * seconds there are below their summed seconds on one threaded rank each. So more
 * threads per rank move big matrices from sub-grids to one rank only as far as the
 * measured speedup pays; which launch layout (ranks x threads for the same cores)
 * is fastest for the same cores, `ailora svd --plan` prints. */
int svd_plan_make_threads(SvdBackend backend, const TargetModule *targets, int ntargets, int nranks,
                          int threads, double max_rank_bytes, int group_ranks, int keep, SvdPlan *plan);
void svd_plan_free(SvdPlan *plan);
/* Bytes a dgesdd of an m x n matrix needs (inputs, outputs, workspace). */
double svd_lapack_bytes(int m, int n);

#endif
