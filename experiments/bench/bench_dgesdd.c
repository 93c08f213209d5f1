/* bench_dgesdd.c - the baseline of the SVD benchmark: plain sequential LAPACK
 * dgesdd, one core, over the target matrices of a model (no MPI work, no I/O
 * beyond reading the weights). Prints one line per matrix and the total.
 *
 *   bench_dgesdd MODEL_DIR [TARGETS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/cpu.h"
#include "ailora/error.h"
#include "ailora/hfmodel.h"
#include "ailora/svd.h"

int main(int argc, char **argv) {
    cpu_tune_blis();  // the same BLIS kernels as ailora
    MPI_Init(&argc, &argv);
    if (argc < 2) {
        fprintf(stderr, "usage: bench_dgesdd MODEL_DIR [TARGETS]\n");
        return 2;
    }
    HFModel model;
    TargetModule *t;
    int n;
    if (hfmodel_open(argv[1], &model) != AIL_OK ||
        hfmodel_targets(&model, argc > 2 ? argv[2] : "q_proj,v_proj", &t, &n) != AIL_OK) {
        fprintf(stderr, "bench_dgesdd: %s\n", ail_error_message());
        return 1;
    }
    double total = 0.0, flops = 0.0;
    for (int i = 0; i < n; i++) {
        int m = t[i].m, nn = t[i].n, k = m < nn ? m : nn, big = m > nn ? m : nn;
        double *w = malloc(sizeof(double) * m * nn), *S = malloc(sizeof(double) * k);
        double *U = malloc(sizeof(double) * m * k), *Vt = malloc(sizeof(double) * k * nn);
        dtype_to_f64(t[i].dtype, t[i].weight->data, (size_t)m * nn, w);
        double t0 = MPI_Wtime();
        if (svd_lapack(m, nn, w, S, U, Vt) != AIL_OK) {
            fprintf(stderr, "bench_dgesdd: %s\n", ail_error_message());
            return 1;
        }
        double dt = MPI_Wtime() - t0;
        // Golub & Van Loan's count for the thin SVD with both factors (R-SVD)
        double f = 4.0 * big * big * k + 8.0 * big * k * k + 9.0 * k * k * k;
        total += dt;
        flops += f;
        printf("dgesdd %-40s %5dx%-5d %8.3f s %7.2f GFLOP/s\n", t[i].name, m, nn, dt, f / dt * 1e-9);
        free(w), free(S), free(U), free(Vt);
    }
    printf("dgesdd total %d matrices: %.3f s, %.2f GFLOP/s\n", n, total, flops / total * 1e-9);
    free(t);
    hfmodel_close(&model);
    MPI_Finalize();
    return 0;
}
