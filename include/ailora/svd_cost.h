/* svd_cost.h - predicted time, memory and output size of `ailora svd` (--plan).
 *
 * Seconds from the per-core rates of svd.h (SvdRates, seconds per unit), k =
 * min(m, n), p kept vectors (k when all), one matrix on a grid of g ranks:
 *
 *   phase        route pdgebrd (svd_dist_select.c)         dgesdd (1 rank)    pdgesvd (g)
 *   read         read m n / g                               read m n           read m n / g
 *   compute      dist_select m n k / g                      gesdd m n k        pdgesvd m n k / g
 *                  + dist_step k log2(g)  (pdgebrd synchronizes per column: latency;
 *                    net_step once the grid spans nodes)
 *   values       bd_values k^2            (dqds; redundant on every rank)
 *   vectors      bd_vectors k p, or bd_all k^3 with every vector (dbdsdc)
 *   back         dist_back (m + n) k p / g   (pdormbr of the kept vectors only)
 *   write        write (k + (m + n) p)      (one file: shared bandwidth)
 *
 * select (svdsel's one-rank selected route): read + select_brd m n k + select_vec
 * (m + n) k p + write. With T BLIS threads in the rank (--threads), the one-rank
 * routes' compute and vectors are divided by svd_thread_speedup(eff2, T). Memory
 * per rank is the peak of the route (DistSelSvd in svd.h; svd_lapack_bytes for
 * dgesdd). A whole run: the plan of svd_plan_make, each phase as long as its
 * slowest group.
 */
#ifndef AILORA_SVD_COST_H
#define AILORA_SVD_COST_H

#include <stdio.h>

#include "ailora/svd.h"

/* Number of kept vectors of --keep K (all k when K <= 0 or 2K >= k). */
int svd_kept_count(int k, int keep);
/* Writes rates as the "name seconds_per_unit" file AILORA_SVD_RATES / --rates read. */
int svd_rates_save(const char *path, const SvdRates *rates, const char *comment);

/* Predicted cost of one matrix; seconds per phase, bytes per rank. */
typedef struct {
    double read_s, compute_s, values_s, vectors_s, back_s, write_s;
    double seconds;     /* sum of the phases */
    double rank_bytes;  /* peak memory of one rank */
    double out_bytes;   /* what it adds to the cache */
} SvdCost;

/* route: LAPACK, SELECT or CUSOLVER (P = 1), PDGESVD or PDGEBRD on P ranks. A grid
 * wider than node_cores (> 0) spans nodes: its synchronization costs net_step. */
void svd_cost_matrix(const SvdRates *r, SvdBackend route, int m, int n, int keep, int P,
                     int node_cores, SvdCost *cost);
/* The same with `threads` BLIS threads in the rank: the one-rank routes' compute
 * and vectors divided by svd_thread_speedup (their eff2); grid routes as above
 * (one thread per rank: threads is ignored). */
void svd_cost_matrix_threads(const SvdRates *r, SvdBackend route, int m, int n, int keep, int P,
                             int threads, int node_cores, SvdCost *cost);

/* The plan of svd_plan_make, priced (one-rank routes at plan->threads threads, grid
 * routes at one per rank): per phase the slowest group; writes a table to
 * out (rank 0 prints it). vector_bytes: 8 (float64) or 4 (`--vectors float32`) per
 * cached singular-vector entry. Returns the predicted seconds of the whole run. */
double svd_cost_plan(const SvdRates *r, const SvdPlan *plan, const TargetModule *targets,
                     int ntargets, int keep, int vector_bytes, int node_cores, FILE *out);

#endif
