/* svd_cost.h - predicted time, memory and output size of `ailora svd` (--plan).
 *
 * Flop counts (k = min(m, n), M >= N the larger and smaller side):
 *   gesdd   4 M^2 k + 8 M k^2 + 9 k^3        (Golub & Van Loan, thin R-SVD)
 *   gebrd   4 M N^2 - 4/3 N^3                (Householder bidiagonalization)
 *   ormbr   4 p k (m + n - k)                (Q and P applied to p vectors)
 *   bdsdc   8/3 k^3                          (all vectors of the bidiagonal)
 * One matrix on a grid of P ranks by the selected route (svd_dist_select.c):
 *   read    8 m n / P / read_gbs             each rank converts its blocks
 *   brd     gebrd / (P gebrd_gflops) + k step_s log2(P)   (pdgebrd synchronizes
 *                                            per column: latency, not bandwidth;
 *                                            net_step_s once the grid spans nodes)
 *   values  1e-9 bdsvdx_val_ns k^2           redundant on every rank
 *   vectors 1e-9 bdsvdx_vec_ns k p, or bdsdc / bdsdc_gflops with every vector
 *   back    ormbr / (P ormbr_gflops)
 *   write   8 (k + (m + n) p) / write_gbs    one file, shared bandwidth
 * dgesdd (one rank): read + gesdd / gesdd_gflops + write; pdgesvd on P ranks:
 * read + gesdd / (P pdgesvd_gflops) + write. Memory per rank: the largest phase.
 * The rates (svd.h SvdRates) are per core; svd_rates_default holds the ones
 * measured on the development machine (experiments/bench/svd_rates.sh).
 */
#ifndef AILORA_SVD_COST_H
#define AILORA_SVD_COST_H

#include <stdio.h>

#include "ailora/svd.h"

double svd_flops_gesdd(int m, int n);
double svd_flops_gebrd(int m, int n);
double svd_flops_ormbr(int m, int n, int p);
double svd_flops_bdsdc(int k);
/* Number of kept vectors of --keep K (all k when K <= 0 or 2K >= k). */
int svd_kept_count(int k, int keep);

void svd_rates_default(SvdRates *rates);
/* "name value" lines (# comments) with the SvdRates field names; missing names keep
 * their defaults. One error line naming the file, line and key. */
int svd_rates_load(const char *path, SvdRates *rates);
int svd_rates_save(const char *path, const SvdRates *rates, const char *comment);

/* Predicted cost of one matrix; seconds per phase, bytes per rank. */
typedef struct {
    double read_s, compute_s, values_s, vectors_s, back_s, write_s;
    double seconds;     /* sum of the phases */
    double rank_bytes;  /* peak memory of one rank */
    double out_bytes;   /* what it adds to the cache */
} SvdCost;

/* route: LAPACK (P = 1), PDGESVD or PDGEBRD on P ranks. A grid wider than
 * node_cores (> 0) spans nodes: its per-column synchronization costs net_step_s. */
void svd_cost_matrix(const SvdRates *r, SvdBackend route, int m, int n, int keep, int P,
                     int node_cores, SvdCost *cost);

/* The plan of svd_plan_make, priced: per phase the slowest group; writes a table to
 * out (rank 0 prints it). Returns the predicted seconds of the whole run. */
double svd_cost_plan(const SvdRates *r, const SvdPlan *plan, const TargetModule *targets,
                     int ntargets, int keep, int node_cores, FILE *out);

#endif
