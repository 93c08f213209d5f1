/* svdcache.h - the SVD cache file (SVD.h5), written once per model over MPI.
 *
 *   /modules/<module>/S    [k]     all singular values, descending
 *   /modules/<module>/U    [m, k]  left singular vectors (canonical signs)
 *   /modules/<module>/Vt   [k, n]  right singular vectors
 *   attributes of /modules/<module>: m, n, k, source_dtype, backend, grid, wall_time_s
 *   root attributes: format, version, model, targets, backend, nranks, block_size,
 *                    wall_time_s
 */
#ifndef AILORA_SVDCACHE_H
#define AILORA_SVDCACHE_H

#include <hdf5.h>
#include <mpi.h>

#include "ailora/hfmodel.h"
#include "ailora/svd.h"

#define SVDCACHE_FORMAT "ailora-svd-cache/1"

typedef struct {
    SvdBackend backend;
    int block_size;         /* ScaLAPACK block size nb (MB = NB) */
    double max_rank_bytes;  /* memory one rank may use for one dgesdd */
    int group_ranks;        /* auto: force pdgesvd sub-grids of this many ranks (0: plan) */
    int verbose;            /* rank 0 prints the plan and per-matrix timings */
} SvdOptions;

/* Collective over comm. Computes the SVD of every target and writes out_path
 * (via out_path.partial, renamed when complete; removed on error). */
int svdcache_write(MPI_Comm comm, const HFModel *model, const TargetModule *targets, int ntargets,
                   const SvdOptions *opt, const char *out_path);

/* Opens a cache read-only and checks that it holds every target with its shape;
 * errors name the file and the module. */
int svdcache_open(const char *path, const TargetModule *targets, int ntargets, hid_t *file);

/* Default for SvdOptions.max_rank_bytes: half of this node's memory divided by the
 * ranks on the node (collective over comm). */
double svd_default_rank_bytes(MPI_Comm comm);

#endif
