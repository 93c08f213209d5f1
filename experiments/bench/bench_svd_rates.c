/* bench_svd_rates.c - per-core rates of the SVD kernels for the cost model
 * (svd_cost.h), measured on a random Gaussian m x n matrix on all ranks of
 * MPI_COMM_WORLD (one BLIS thread per rank):
 *
 *   bench_svd_rates --m M --n N --keep K [--gesdd] [--all] [--pdgesvd]
 *                   [--base RATES] [--out RATES] [--h5 SCRATCH.h5]
 *
 * Rates are seconds per unit on one core (svd.h SvdRates). On 1 rank it sets gesdd
 * (with --gesdd), dist_select (pdgebrd), dist_back (pdormbr), bd_values and
 * bd_vectors (keep K), bd_all (with --all: keep all), pdgesvd (with --pdgesvd),
 * read and write (HDF5 writes of the kept vectors to SCRATCH.h5). On P > 1 ranks it
 * keeps the rates of --base and sets dist_step from the bidiagonalization's excess
 * over perfect scaling: (t_brd - dist_select m n k / P) / (k log2 P). Prints every
 * phase time; --out writes the rates file that `ailora svd --plan --rates FILE`
 * (or AILORA_SVD_RATES) reads.
 *
 * On a shared machine a rank gets only part of its core: every phase time is
 * scaled by the run's process CPU time / wall time (the rank's share of a core;
 * MPI waits spin, so they count as CPU), which estimates the time on a core of
 * its own. Both raw and scaled figures are printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ailora/cpu.h"
#include "ailora/error.h"
#include "ailora/h5io.h"
#include "ailora/rng.h"
#include "ailora/svd_cost.h"

static int g_rank, g_size;

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void die(const char *what) {
    if (g_rank == 0) fprintf(stderr, "bench_svd_rates: %s: %s\n", what, ail_error_message());
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Writes sel's vectors to a scratch file as the cache would; returns seconds. */
static double time_write(const char *path, const DistSelSvd *sel) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    hid_t file, u, vt;
    hsize_t du[2] = {(hsize_t)sel->m, (hsize_t)sel->p}, dv[2] = {(hsize_t)sel->p, (hsize_t)sel->n};
    if (h5io_create_parallel(path, MPI_COMM_WORLD, &file) != AIL_OK) die("create");
    if (h5io_dataset_create(file, "/U", H5T_IEEE_F64LE, 2, du, &u) != AIL_OK) die("dataset");
    if (h5io_dataset_create(file, "/Vt", H5T_IEEE_F64LE, 2, dv, &vt) != AIL_OK) die("dataset");
    if (distmat_write_h5_t(u, &sel->ut) != AIL_OK || distmat_write_h5_t(vt, &sel->vt) != AIL_OK) die("write");
    H5Dclose(u), H5Dclose(vt), H5Fclose(file);
    MPI_Barrier(MPI_COMM_WORLD);
    double dt = MPI_Wtime() - t0;
    if (g_rank == 0) unlink(path);
    return dt;
}

int main(int argc, char **argv) {
    cpu_tune_blis();
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    int m = 2048, n = 2048, keep = 64, do_gesdd = 0, do_all = 0, do_pdgesvd = 0;
    const char *base = NULL, *out = NULL, *h5 = "/tmp/ailora-bench-rates.h5";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--m") && i + 1 < argc) m = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--keep") && i + 1 < argc) keep = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--base") && i + 1 < argc) base = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--h5") && i + 1 < argc) h5 = argv[++i];
        else if (!strcmp(argv[i], "--gesdd")) do_gesdd = 1;
        else if (!strcmp(argv[i], "--all")) do_all = 1;
        else if (!strcmp(argv[i], "--pdgesvd")) do_pdgesvd = 1;
        else {
            if (g_rank == 0) fprintf(stderr, "bench_svd_rates: unknown argument %s\n", argv[i]);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    if (m < 2 || n < 2 || keep < 1) {
        if (g_rank == 0) fprintf(stderr, "bench_svd_rates: need m, n >= 2 and keep >= 1\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int k = m < n ? m : n;
    SvdRates r;
    if (base) setenv("AILORA_SVD_RATES", base, 1);
    if (svd_rates_get(&r) != AIL_OK) die("rates");
    double mnk = (double)m * n * k;

    // the same Gaussian matrix on every rank (as a mapped F64 tensor would be)
    double *w = malloc(sizeof(double) * (size_t)m * n);
    Rng rng;
    rng_init(&rng, 42, 0);
    for (size_t i = 0; i < (size_t)m * n; i++) w[i] = rng_normal(&rng);
    SafeTensor t = {.name = "w", .dtype = DTYPE_F64, .ndim = 2, .shape = {m, n},
                    .numel = (size_t)m * n, .nbytes = sizeof(double) * (size_t)m * n, .data = w};
    if (g_rank == 0)
        printf("# bench_svd_rates: %d x %d, keep %d, %d rank(s), BLIS %s\n", m, n, keep, g_size, cpu_tune_blis());

    if (do_gesdd && g_size == 1) {
        double *a = malloc(sizeof(double) * (size_t)m * n), *S = malloc(sizeof(double) * k);
        double *U = malloc(sizeof(double) * (size_t)m * k), *Vt = malloc(sizeof(double) * (size_t)k * n);
        memcpy(a, w, sizeof(double) * (size_t)m * n);
        double t0 = MPI_Wtime(), c0 = cpu_seconds();
        if (svd_lapack(m, n, a, S, U, Vt) != AIL_OK) die("dgesdd");
        double dt = MPI_Wtime() - t0, cpu = cpu_seconds() - c0;
        r.gesdd = cpu / mnk;
        printf("dgesdd            %8.3f s wall, %8.3f s cpu  (gesdd %.3g s per m n k)\n", dt, cpu, r.gesdd);
        free(a), free(S), free(U), free(Vt);
    }

    int nprow, npcol;
    blacs_grid_shape(g_size, &nprow, &npcol);
    BlacsGrid grid;
    if (blacs_grid_create(MPI_COMM_WORLD, nprow, npcol, &grid) != AIL_OK) die("grid");
    for (int pass = 0; pass < 1 + do_all; pass++) {
        DistSelSvd sel;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime(), c0 = cpu_seconds();
        if (svd_pdgebrd(&grid, &t, 64, pass ? 0 : keep, &sel) != AIL_OK) die("pdgebrd");
        double total = MPI_Wtime() - t0, share = (cpu_seconds() - c0) / total;
        MPI_Allreduce(MPI_IN_PLACE, &share, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
        double ph[5] = {sel.t_load, sel.t_brd, sel.t_values, sel.t_vectors, sel.t_back};
        MPI_Allreduce(MPI_IN_PLACE, ph, 5, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (g_rank == 0)
            printf("pdgebrd keep %-4s raw   %8.3f s wall: load %.3f, bidiagonalize %.3f, values %.3f, vectors %.3f, "
                   "back-transform %.3f s; share of a core %.2f\n", pass ? "all" : "K", total, ph[0], ph[1], ph[2],
                   ph[3], ph[4], share);
        share = fmin(share, 1.0);
        for (int i = 0; i < 5; i++) ph[i] *= share;
        total *= share;
        double tw = time_write(h5, &sel);
        int p = sel.p;
        if (g_rank == 0) {
            printf("pdgebrd keep %-4s own core %6.3f s: load %.3f, bidiagonalize %.3f, values %.3f, vectors %.3f, "
                   "back-transform %.3f, write %.3f s\n", pass ? "all" : "K", total, ph[0], ph[1], ph[2], ph[3], ph[4], tw);
            if (g_size == 1) {
                r.read = ph[0] / ((double)m * n);
                r.dist_select = ph[1] / mnk;
                r.dist_back = ph[4] / (((double)m + n) * k * p);
                r.write = tw / (k + ((double)m + n) * p);
                if (pass == 0) {
                    r.bd_values = ph[2] / ((double)k * k);
                    r.bd_vectors = ph[3] / ((double)k * p);
                } else {
                    r.bd_all = ph[3] / ((double)k * k * k);
                }
            } else if (pass == 0) {
                double ideal = r.dist_select * mnk / g_size;
                r.dist_step = fmax((ph[1] - ideal) / (k * log2((double)g_size)), 1e-8);
                printf("bidiagonalize: perfect scaling %.3f s; dist_step %.3g s per column and log2(P)\n",
                       ideal, r.dist_step);
            }
            SvdCost c;
            svd_cost_matrix(&r, SVD_BACKEND_PDGEBRD, m, n, pass ? 0 : keep, g_size, 0, &c);
            printf("  model with these rates: %.3f s (load %.3f, bidiagonalize %.3f, values %.3f, vectors %.3f, "
                   "back %.3f, write %.3f)\n", c.seconds, c.read_s, c.compute_s, c.values_s, c.vectors_s, c.back_s, c.write_s);
        }
        dist_sel_svd_free(&sel);
    }
    if (do_pdgesvd) {
        DistSvd ds;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime(), c0 = cpu_seconds();
        if (svd_pdgesvd(&grid, &t, 64, &ds) != AIL_OK) die("pdgesvd");
        double wall = MPI_Wtime() - t0, dt = fmin(cpu_seconds() - c0, wall);
        dist_svd_free(&ds);
        if (g_rank == 0) {
            printf("pdgesvd           %8.3f s wall, %8.3f s cpu\n", wall, dt);
            if (g_size == 1) r.pdgesvd = dt / ((double)m * n * k);
        }
    }
    blacs_grid_free(&grid);
    if (g_rank == 0 && out) {
        char note[256];
        snprintf(note, sizeof note, "bench_svd_rates %dx%d keep %d on %d rank(s)", m, n, keep, g_size);
        if (svd_rates_save(out, &r, note) != AIL_OK) die("save");
        printf("wrote %s\n", out);
    }
    free(w);
    MPI_Finalize();
    return 0;
}
