/* svdcache.h - the SVD cache file (SVD.h5), written once per model over MPI.
 *
 *   /modules/<module>/S    [k]     all singular values, descending
 *   /modules/<module>/U    [m, nk] left singular vectors (canonical signs)
 *   /modules/<module>/Vt   [nk, n] right singular vectors
 *   /modules/<module>/kept [nk] int64, only in a partial cache (`ailora svd --keep K`
 *                    with 2K < k): ascending indices into S, [0, K) and [k-K, k);
 *                    column j of U and row j of Vt are singular vector kept[j].
 *                    Absent: nk = k, all vectors (the layout of every older cache).
 *   attributes of /modules/<module>: m, n, k, source_dtype, backend, grid, wall_time_s,
 *                    fingerprint (of the source tensor <module>.weight, fingerprint.h)
 *   attribute fallback (string), only where the selected-vector route handed the
 *                    matrix to dgesdd: why
 *   root attributes: format, version, model, targets, backend, nranks, threads_per_rank
 *                    (BLIS threads of each one-rank SVD), block_size, keep (0: all),
 *                    wall_time_s, model_fingerprint, fingerprint_algorithm
 *
 * Every reader calls svdcache_verify: a cache is used only for the very tensors it
 * was computed from.
 */
#ifndef AILORA_SVDCACHE_H
#define AILORA_SVDCACHE_H

#include <hdf5.h>
#include <mpi.h>

#include "ailora/fingerprint.h"
#include "ailora/hfmodel.h"
#include "ailora/svd.h"

#define SVDCACHE_FORMAT "ailora-svd-cache/1"

typedef struct {
    SvdBackend backend;
    int block_size;         /* ScaLAPACK block size nb (MB = NB) */
    double max_rank_bytes;  /* memory one rank may use for one dgesdd */
    int group_ranks;        /* auto: force pdgesvd sub-grids of this many ranks (0: plan) */
    int verbose;            /* rank 0 prints the plan and per-matrix timings */
    int keep;               /* vectors [0, keep) and [k-keep, k) only; 0: all */
    int vectors_f32;        /* U, Vt stored as float32 (computed in float64, rounded once) */
    int threads;            /* BLIS threads per rank for the one-rank routes: N, SVD_THREADS_AUTO,
                               0: BLIS's setting (svd_threads_resolve); grid routes use one */
} SvdOptions;

/* Collective over comm. Computes the SVD of every target and writes out_path
 * (via out_path.partial, renamed when complete; removed on error). */
int svdcache_write(MPI_Comm comm, const HFModel *model, const TargetModule *targets, int ntargets,
                   const SvdOptions *opt, const char *out_path);

/* Opens a cache read-only and checks that it holds every target with its shape
 * (a partial cache: U, Vt as long as its kept set); errors name the file and the module. */
int svdcache_open(const char *path, const TargetModule *targets, int ntargets, hid_t *file);

/* The singular vectors module t has in the cache: kept [nkept] ascending indices
 * into S (all k for a whole cache); column j of U and row j of Vt are kept[j]. */
int svdcache_kept(hid_t cache, const TargetModule *t, int *nkept, int **kept);

/* U_I [m, nsel] and Vt_I [nsel, n]: the singular vectors sel[] (ascending indices
 * into S) of module t. A partial cache that lacks some of them is refused with one
 * line naming the cache, the module, what it keeps and what `what` (e.g. "milora
 * rank 128") needs. */
int svdcache_read_vectors(hid_t cache, const TargetModule *t, const char *what, int nsel, const int *sel,
                          double *U_I, double *Vt_I);

/* Relative tolerance of |sum S^2 - ||W||_F^2| / ||W||_F^2. A float64 SVD is
 * backward stable: S are the exact singular values of W + E with ||E||_F of order
 * p(n) eps ||W||_F, so sum S^2 moves by ~2 p(n) eps relative (measured: below 1e-14
 * for every backend here); 1e-10 leaves four decades of margin up to 7B shapes. */
#define SVDCACHE_NORM_RTOL 1e-10

/* Checks that cache (opened from path) was computed from these source weights.
 * Collective over comm; module i is checked on rank i % size: the fingerprint of
 * its source tensor must equal the cache's, and sum S^2 must equal ||W||_F^2
 * (float64, from the source weights) within SVDCACHE_NORM_RTOL. A cache without
 * fingerprints (written before they existed) is refused. fps[i] (may be NULL)
 * receives module i's fingerprint on every rank. One error line naming the cache
 * and the module; every rank returns it. */
int svdcache_verify(MPI_Comm comm, const char *path, hid_t cache, const TargetModule *targets,
                    int ntargets, char (*fps)[FINGERPRINT_HEX]);

/* The fingerprints a cache records: fps[i] of module i, and the model's
 * (model_fp, may be NULL), without hashing anything. Only for a cache this process
 * has just written from the same mapped weights (init without --svd): any other
 * cache goes through svdcache_verify. */
int svdcache_fingerprints(hid_t cache, const TargetModule *targets, int ntargets,
                          char (*fps)[FINGERPRINT_HEX], char *model_fp);

/* Default for SvdOptions.max_rank_bytes: half of this node's memory divided by the
 * ranks on the node (collective over comm). */
double svd_default_rank_bytes(MPI_Comm comm);

#endif
