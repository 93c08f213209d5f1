/* bench_select_rates.c - per-core rates of the one-rank SVD routes (SvdRates, svd.h),
 * in the format AILORA_SVD_RATES reads. One core, no MPI work, no I/O.
 *
 *   bench_select_rates [N]     square N x N (default 1024) plus N x N/4 and N/4 x N
 *
 * gesdd:      dgesdd time / (m n k)
 * select_brd: svd_lapack_select keeping no vectors (dgebrd + dqds) / (m n k)
 * select_vec: (keeping 2 x 64 vectors - keeping none) / ((m + n) k 128)
 * Each is the median of 3 runs, averaged over the shapes (weights by m n k).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/cpu.h"
#include "ailora/error.h"
#include "ailora/rng.h"
#include "ailora/svd.h"

static double median3(double a, double b, double c) {
    return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

int main(int argc, char **argv) {
    cpu_tune_blis();  // the same BLIS kernels as ailora
    MPI_Init(&argc, &argv);
    int N = argc > 1 ? atoi(argv[1]) : 1024;
    int shapes[3][2] = {{N, N}, {N / 4, N}, {N, N / 4}};
    double sum_g = 0, sum_b = 0, sum_v = 0, w_g = 0, w_v = 0;
    for (int s = 0; s < 3; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = m < n ? m : n;
        double *w = malloc(sizeof(double) * m * n), *wc = malloc(sizeof(double) * m * n);
        double *S = malloc(sizeof(double) * k), *U = malloc(sizeof(double) * m * k);
        double *Vt = malloc(sizeof(double) * k * n);
        Rng rng;
        rng_init(&rng, 1, (uint64_t)s);
        for (size_t i = 0; i < (size_t)m * n; i++) w[i] = rng_normal(&rng);
        int *sel = malloc(sizeof(int) * k), nsel = svd_kept_indices(k, 64, sel);
        double t[3][3];
        for (int rep = 0; rep < 3; rep++) {
            memcpy(wc, w, sizeof(double) * m * n);
            double t0 = MPI_Wtime();
            if (svd_lapack(m, n, wc, S, U, Vt) != AIL_OK) return fprintf(stderr, "%s\n", ail_error_message()), 1;
            t[0][rep] = MPI_Wtime() - t0;
            SvdSelectInfo info;
            t0 = MPI_Wtime();
            if (svd_lapack_select(m, n, w, 0, sel, S, U, Vt, &info) != AIL_OK) return 1;
            t[1][rep] = MPI_Wtime() - t0;
            t0 = MPI_Wtime();
            if (svd_lapack_select(m, n, w, nsel, sel, S, U, Vt, &info) != AIL_OK || info.fallback) return 1;
            t[2][rep] = MPI_Wtime() - t0;
        }
        double tg = median3(t[0][0], t[0][1], t[0][2]), tb = median3(t[1][0], t[1][1], t[1][2]);
        double tv = median3(t[2][0], t[2][1], t[2][2]);
        double mnk = (double)m * n * k, vec = ((double)m + n) * k * nsel;
        printf("# %5d x %-5d dgesdd %.3f s, select (0 vectors) %.3f s, select (%d vectors) %.3f s\n", m, n, tg,
               tb, nsel, tv);
        sum_g += tg, sum_b += tb, sum_v += tv - tb, w_g += mnk, w_v += vec;
        free(w), free(wc), free(S), free(U), free(Vt), free(sel);
    }
    printf("gesdd %.4e\nselect_brd %.4e\nselect_vec %.4e\n", sum_g / w_g, sum_b / w_g, sum_v / w_v);
    MPI_Finalize();
    return 0;
}
