/* svd_check.c - standalone accuracy and speed check of the cuSOLVER SVD
 * (gpu_svd_f64) for machines with a GPU but without MPI, HDF5 or BLAS.
 *
 *   svd_check [--time-n N] [--reps R] [--dump DIR]
 *
 * (a) Matrices with prescribed spectra W = Q1 diag(s) Q2^T (Q1, Q2 products of
 *     random Householder reflectors, orthonormal to rounding): 10 decades,
 *     clusters of tiny values, exact zeros, tall, wide, square and degenerate
 *     shapes. Checked against the known s and factors at TOL = 1e-12, the
 *     tolerance of the CPU backends' tests (tests/test_svd.c):
 *       S            max |S - s| <= TOL * smax, descending, non-negative
 *       orthonormal  max |U^T U - I|, max |Vt Vt^T - I| <= TOL
 *       reconstruct  ||W - U diag(S) Vt||_F <= TOL * ||W||_F
 *       vectors      pair j within TOL * smax / gap_j of the true pair (Wedin)
 *       signs        largest-|.| entry of each U column (first on ties) > 0
 * (b) Times gpu_svd_f64 (host to host: copies, handles, gesvd, signs) on an
 *     N x N Gaussian matrix (default 4096): one warm-up, then the median of R
 *     runs (default 3; fewer when the warm-up says they would take over 30 s).
 *     Checked with sampled orthonormality / reconstruction at TOL_BIG = 1e-11:
 *     error bounds grow about linearly with n, and the CPU tests stop near n = 1000.
 *     --dump DIR writes W.bin, S.bin (raw float64) and gpu.txt for the
 *     baselines (experiments/bench/svd_baselines.py).
 * Prints PASS/FAIL lines; exit status 1 if any check failed, 2 on errors.
 */
#define _POSIX_C_SOURCE 200809L  // clock_gettime under -std=c11
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>  // device report only; the SVD goes through gpu_svd.h

#include "ailora/error.h"
#include "ailora/gpu_svd.h"
#include "ailora/svd_signs.h"

#define TOL 1e-12
#define TOL_BIG 1e-11

static int g_failed = 0;

/* ---- random numbers: splitmix64, Box-Muller ------------------------------------- */
static uint64_t g_state = 0x5eed1234abcdULL;
static double uniform01(void) {
    uint64_t z = (g_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0;  // in (0, 1)
}
static double normal(void) {
    return sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01());
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "svd_check: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

/* Q [p, q] row-major with orthonormal columns: the first q columns of identity
 * times max(q, 8) reflectors I - 2 v v^T with Gaussian v (dense, not Haar, but
 * orthonormal to rounding, which is what the checks rely on). */
static void random_orthonormal(int p, int q, double *Q) {
    double *v = xmalloc(sizeof(double) * p), *t = xmalloc(sizeof(double) * q);
    memset(Q, 0, sizeof(double) * (size_t)p * q);
    for (int i = 0; i < q; i++) Q[(size_t)i * q + i] = 1.0;
    int nrefl = q > 8 ? q : 8;
    for (int r = 0; r < nrefl; r++) {
        double nrm = 0;
        for (int i = 0; i < p; i++) v[i] = normal(), nrm += v[i] * v[i];
        nrm = sqrt(nrm);
        for (int i = 0; i < p; i++) v[i] /= nrm;
        for (int j = 0; j < q; j++) t[j] = 0;
        for (int i = 0; i < p; i++)
            for (int j = 0; j < q; j++) t[j] += v[i] * Q[(size_t)i * q + j];
        for (int i = 0; i < p; i++)
            for (int j = 0; j < q; j++) Q[(size_t)i * q + j] -= 2.0 * v[i] * t[j];
    }
    free(v);
    free(t);
}

typedef enum { SPEC_GEOMETRIC, SPEC_CLUSTERED, SPEC_ZEROS, SPEC_MIXED } Spectrum;
static const char *spec_name[] = {"geometric-10-decades", "tiny-cluster", "exact-zeros",
                                  "mixed(decades+cluster+zeros)"};

/* Descending spectra of k values with smax = 1. */
static void make_spectrum(Spectrum kind, int k, double *s) {
    for (int j = 0; j < k; j++) {
        double t = k > 1 ? (double)j / (k - 1) : 0.0;
        switch (kind) {
        case SPEC_GEOMETRIC: s[j] = pow(10.0, -10.0 * t); break;
        case SPEC_CLUSTERED:  // half over 4 decades, then a cluster at 1e-10, relative spread 1e-6
            s[j] = j < k / 2 ? pow(10.0, -4.0 * j / (k / 2 > 1 ? k / 2 - 1 : 1))
                             : 1e-10 * (1.0 + 1e-6 * (k - 1 - j));
            break;
        case SPEC_ZEROS:  // rank 3k/4 over 6 decades, the rest exactly zero
            s[j] = j < 3 * k / 4 ? pow(10.0, -6.0 * j / (3 * k / 4 > 1 ? 3 * k / 4 - 1 : 1)) : 0.0;
            break;
        case SPEC_MIXED:
            if (j < k / 3) s[j] = pow(10.0, -5.0 * j / (k / 3 > 1 ? k / 3 - 1 : 1));
            else if (j < 2 * k / 3) s[j] = 1e-8 * (1.0 + 1e-3 * (2 * k / 3 - 1 - j));
            else s[j] = 0.0;
            break;
        }
    }
}

static void report(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int ok, const char *fmt, ...) {
    va_list ap;
    printf("%s ", ok ? "PASS" : "FAIL");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (!ok) g_failed++;
}

/* Index of the largest-|.| entry of column j of U [m, k] (first on ties). */
static int col_argmax(int m, int k, const double *U, int j) {
    int imax = 0;
    double vmax = -1.0;
    for (int i = 0; i < m; i++)
        if (fabs(U[(size_t)i * k + j]) > vmax) vmax = fabs(U[(size_t)i * k + j]), imax = i;
    return imax;
}

/* (a) one matrix with a prescribed spectrum. */
static void check_case(int m, int n, Spectrum kind) {
    int k = m < n ? m : n;
    double *s = xmalloc(sizeof(double) * k), *Q1 = xmalloc(sizeof(double) * (size_t)m * k);
    double *Q2 = xmalloc(sizeof(double) * (size_t)n * k), *W = xmalloc(sizeof(double) * (size_t)m * n);
    double *S = xmalloc(sizeof(double) * k), *U = xmalloc(sizeof(double) * (size_t)m * k);
    double *Vt = xmalloc(sizeof(double) * (size_t)k * n), *w = xmalloc(sizeof(double) * (size_t)m * n);
    make_spectrum(kind, k, s);
    random_orthonormal(m, k, Q1);
    random_orthonormal(n, k, Q2);
    double wnorm = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int l = 0; l < k; l++) acc += Q1[(size_t)i * k + l] * s[l] * Q2[(size_t)j * k + l];
            W[(size_t)i * n + j] = acc;
            wnorm += acc * acc;
        }
    wnorm = sqrt(wnorm);
    memcpy(w, W, sizeof(double) * (size_t)m * n);
    char label[96];
    snprintf(label, sizeof label, "svd %dx%d %s %s", m, n, m > n ? "tall" : m < n ? "wide" : "square",
             spec_name[kind]);
    int rc = gpu_svd_f64(m, n, w, S, U, Vt);
    if (rc != AIL_OK) {
        report(0, "%s: %s", label, ail_error_message());
        ail_error_clear();
        goto done;
    }
    int input_kept = memcmp(w, W, sizeof(double) * (size_t)m * n) == 0;
    double smax = s[0], es = 0, eu = 0, ev = 0, er = 0, vec_ratio = 0;
    int order = 1, signs = 1;
    for (int j = 0; j < k; j++) {
        es = fmax(es, fabs(S[j] - s[j]) / smax);
        if (S[j] < 0 || (j > 0 && S[j] > S[j - 1])) order = 0;
    }
    for (int a = 0; a < k; a++)
        for (int b = a; b < k; b++) {
            double du = 0, dv = 0;
            for (int i = 0; i < m; i++) du += U[(size_t)i * k + a] * U[(size_t)i * k + b];
            for (int i = 0; i < n; i++) dv += Vt[(size_t)a * n + i] * Vt[(size_t)b * n + i];
            eu = fmax(eu, fabs(du - (a == b)));
            ev = fmax(ev, fabs(dv - (a == b)));
        }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = 0;
            for (int l = 0; l < k; l++) acc += U[(size_t)i * k + l] * S[l] * Vt[(size_t)l * n + j];
            double d = W[(size_t)i * n + j] - acc;
            er += d * d;
        }
    er = sqrt(er) / (wnorm > 0 ? wnorm : 1.0);
    for (int j = 0; j < k; j++) {
        if (U[(size_t)col_argmax(m, k, U, j) * k + j] <= 0) signs = 0;
        double gap = INFINITY;  // of the true spectrum
        if (j > 0) gap = fmin(gap, s[j - 1] - s[j]);
        if (j < k - 1) gap = fmin(gap, s[j] - s[j + 1]);
        if (isinf(gap)) gap = smax;  // k = 1: the pair is unique up to sign
        if (!(gap > 0)) continue;    // vectors of a repeated value are not unique
        double dot = 0, d = 0;
        for (int i = 0; i < m; i++) dot += U[(size_t)i * k + j] * Q1[(size_t)i * k + j];
        double sg = dot < 0 ? -1.0 : 1.0;
        for (int i = 0; i < m; i++) d = fmax(d, fabs(U[(size_t)i * k + j] - sg * Q1[(size_t)i * k + j]));
        for (int i = 0; i < n; i++) d = fmax(d, fabs(Vt[(size_t)j * n + i] - sg * Q2[(size_t)i * k + j]));
        vec_ratio = fmax(vec_ratio, d / (TOL * smax / gap));
    }
    int ok = input_kept && order && signs && es <= TOL && eu <= TOL && ev <= TOL && er <= TOL &&
             vec_ratio <= 1.0;
    report(ok,
           "%s: S %.2e, orth U %.2e V %.2e, recon %.2e (tol %.0e); vectors %.2e of gap bound; "
           "order %s, signs %s, input %s",
           label, es, eu, ev, er, TOL, vec_ratio, order ? "ok" : "BAD", signs ? "ok" : "BAD",
           input_kept ? "kept" : "MODIFIED");
done:
    free(s), free(Q1), free(Q2), free(W), free(S), free(U), free(Vt), free(w);
}

static int by_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int write_raw(const char *dir, const char *name, const double *x, size_t count) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(x, sizeof(double), count, f) == count;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "svd_check: cannot write %s\n", path);
    return ok;
}

/* (b) timing on an N x N Gaussian matrix, sampled checks, optional dump. */
static void time_big(int N, int reps, const char *dump) {
    size_t nn = (size_t)N * N;
    double *W = xmalloc(sizeof(double) * nn), *S = xmalloc(sizeof(double) * N);
    double *U = xmalloc(sizeof(double) * nn), *Vt = xmalloc(sizeof(double) * nn);
    double scale = 1.0 / sqrt((double)N), times[16];
    for (size_t i = 0; i < nn; i++) W[i] = scale * normal();
    double t0 = now();
    int rc = gpu_svd_f64(N, N, W, S, U, Vt);
    double warm = now() - t0;
    if (rc != AIL_OK) {
        report(0, "time %dx%d: warm-up failed: %s", N, N, ail_error_message());
        ail_error_clear();
        goto done;
    }
    printf("warm-up %dx%d: %.3f s (includes CUDA context and library start-up)\n", N, N, warm);
    if (reps > 1 && reps * warm > 30.0) {  // keep the timed runs within about 30 s
        int fit = warm > 15.0 ? 1 : (int)(30.0 / warm);
        printf("one run took %.1f s: timing %d run(s) instead of %d\n", warm, fit, reps);
        reps = fit;
    }
    if (reps > 16) reps = 16;
    for (int r = 0; r < reps && rc == AIL_OK; r++) {
        t0 = now();
        rc = gpu_svd_f64(N, N, W, S, U, Vt);
        times[r] = now() - t0;
        printf("run %d: %.3f s\n", r + 1, times[r]);
    }
    if (rc != AIL_OK) {
        report(0, "time %dx%d: %s", N, N, ail_error_message());
        ail_error_clear();
        goto done;
    }
    qsort(times, (size_t)reps, sizeof times[0], by_double);
    double median = times[reps / 2];
    if (reps % 2 == 0) median = 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    double gflop = 21.0 * N * (double)N * N / 1e9;  // Golub & Van Loan, thin SVD with U and V
    printf("TIME cusolver gesvd %dx%d float64: median %.3f s of %d run(s) (min %.3f, max %.3f), "
           "%.1f GFLOP/s (21 n^3)\n",
           N, N, median, reps, times[0], times[reps - 1], gflop / median);

    // sampled checks of the last run: 64 columns of U / rows of Vt, 4 random vectors
    int order = 1, signs = 1, ns = N < 64 ? N : 64, idx[64];
    double eu = 0, ev = 0, er = 0;
    for (int j = 0; j < N; j++) {
        if (S[j] < 0 || (j > 0 && S[j] > S[j - 1])) order = 0;
        if (U[(size_t)col_argmax(N, N, U, j) * N + j] <= 0) signs = 0;
    }
    for (int a = 0; a < ns; a++) idx[a] = (int)(uniform01() * N) % N;
    for (int a = 0; a < ns; a++)
        for (int b = a; b < ns; b++) {
            double du = 0, dv = 0;
            for (int i = 0; i < N; i++) du += U[(size_t)i * N + idx[a]] * U[(size_t)i * N + idx[b]];
            for (int i = 0; i < N; i++) dv += Vt[(size_t)idx[a] * N + i] * Vt[(size_t)idx[b] * N + i];
            eu = fmax(eu, fabs(du - (idx[a] == idx[b])));
            ev = fmax(ev, fabs(dv - (idx[a] == idx[b])));
        }
    double *x = xmalloc(sizeof(double) * N), *y = xmalloc(sizeof(double) * N);
    for (int t = 0; t < 4; t++) {
        double xn = 0, dn = 0;
        for (int i = 0; i < N; i++) x[i] = normal(), xn += x[i] * x[i];
        for (int l = 0; l < N; l++) {  // y = diag(S) Vt x
            double acc = 0;
            for (int i = 0; i < N; i++) acc += Vt[(size_t)l * N + i] * x[i];
            y[l] = S[l] * acc;
        }
        for (int i = 0; i < N; i++) {  // W x - U y
            double a = 0, b = 0;
            for (int j = 0; j < N; j++) a += W[(size_t)i * N + j] * x[j], b += U[(size_t)i * N + j] * y[j];
            dn += (a - b) * (a - b);
        }
        er = fmax(er, sqrt(dn) / (S[0] * sqrt(xn)));
    }
    free(x);
    free(y);
    report(order && signs && eu <= TOL_BIG && ev <= TOL_BIG && er <= TOL_BIG,
           "svd %dx%d gaussian (sampled): orth U %.2e V %.2e (64 columns), ||Wx - U S Vt x|| / "
           "(smax ||x||) %.2e (tol %.0e); order %s, signs %s",
           N, N, eu, ev, er, TOL_BIG, order ? "ok" : "BAD", signs ? "ok" : "BAD");
    if (dump) {
        char path[4096];
        snprintf(path, sizeof path, "%s/gpu.txt", dump);
        FILE *f = fopen(path, "w");
        int ok = f != NULL;
        if (f) {
            fprintf(f, "n %d\nmedian_s %.6f\nreps %d\n", N, median, reps);
            if (fclose(f) != 0) ok = 0;
        }
        ok = ok && write_raw(dump, "W.bin", W, nn) && write_raw(dump, "S.bin", S, (size_t)N);
        if (!ok) report(0, "dump of the %dx%d matrix to %s", N, N, dump);
    }
done:
    free(W), free(S), free(U), free(Vt);
}

int main(int argc, char **argv) {
    int N = 4096, reps = 3;
    const char *dump = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);  // a run killed by timeout keeps its lines
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--time-n") == 0 && i + 1 < argc) N = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc) dump = argv[++i];
        else {
            fprintf(stderr, "usage: svd_check [--time-n N] [--reps R] [--dump DIR]\n");
            return 2;
        }
    }
    int ndev = gpu_svd_available(), count = 0, drv = 0, rt = 0;
    cudaError_t e = cudaGetDeviceCount(&count);  // the reason, when there is no device
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    printf("gpu_svd_available: %d device(s); cudaGetDeviceCount: %s; driver API %d, runtime %d\n",
           ndev, cudaGetErrorString(e), drv, rt);
    if (ndev <= 0) {
        report(0, "no CUDA device visible");
        return 1;
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        printf("device 0: %s, compute capability %d.%d, %.1f GiB\n", prop.name, prop.major,
               prop.minor, prop.totalGlobalMem / 1073741824.0);
    if (gpu_svd_set_device(0) != AIL_OK) {
        report(0, "gpu_svd_set_device(0): %s", ail_error_message());
        return 1;
    }
    // (a) prescribed spectra: tall, wide (GQA-like 1:4), square, degenerate
    static const struct { int m, n; Spectrum kind; } cases[] = {
        {400, 300, SPEC_GEOMETRIC}, {300, 400, SPEC_GEOMETRIC}, {1024, 256, SPEC_CLUSTERED},
        {256, 1024, SPEC_MIXED},    {500, 500, SPEC_ZEROS},     {480, 640, SPEC_CLUSTERED},
        {640, 480, SPEC_MIXED},     {7, 5, SPEC_GEOMETRIC},     {5, 7, SPEC_ZEROS},
        {1, 40, SPEC_GEOMETRIC},    {40, 1, SPEC_GEOMETRIC},
    };
    double t0 = now();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) check_case(cases[c].m, cases[c].n, cases[c].kind);
    printf("accuracy cases: %.1f s\n", now() - t0);
    if (N > 0) time_big(N, reps, dump);
    printf("svd_check: %d failed\n", g_failed);
    return g_failed ? 1 : 0;
}
