/* adapter.c - LoRA / PiSSA / MiLoRA / AILoRA / ratio initialization (see adapter.h). */
#include "ailora/adapter.h"

#include <blis.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/rng.h"

static const char *const method_names[] = {"lora", "pissa", "milora", "ailora", "ratio", "auto"};

int init_method_parse(const char *name, InitMethod *method) {
    for (int i = 0; i < (int)(sizeof method_names / sizeof *method_names); i++)
        if (strcmp(name, method_names[i]) == 0) {
            *method = (InitMethod)i;
            return AIL_OK;
        }
    return AIL_ERROR(AIL_ERR_ARG, "unknown init method \"%s\" (lora, pissa, milora, ailora, ratio, auto)",
                     name);
}

const char *init_method_name(InitMethod method) { return method_names[method]; }

int init_spec_validate(InitSpec *spec) {
    if (spec->rank <= 0) return AIL_ERROR(AIL_ERR_ARG, "rank must be positive (got %d)", spec->rank);
    if (spec->alpha <= 0) spec->alpha = spec->rank;
    if (!isfinite(spec->alpha)) return AIL_ERROR(AIL_ERR_ARG, "alpha must be a finite positive number");
    const double ratios[3] = {spec->ratio_q, spec->ratio_v, spec->ratio_other};
    const char *names[3] = {"ratio-q", "ratio-v", "ratio-other"};
    for (int i = 0; i < 3; i++)
        if (!(ratios[i] >= 0.0 && ratios[i] <= 1.0))
            return AIL_ERROR(AIL_ERR_ARG, "%s must lie in [0, 1] (got %g)", names[i], ratios[i]);
    return AIL_OK;
}

void init_auto_scores(int m, int n, const double *G, int ncand, const double *U_c, const double *Vt_c,
                      double *scores) {
    // u^T G v = sum_i u_i (G v)_i: one pass over G per candidate, rows in parallel
    for (int c = 0; c < ncand; c++) {
        const double *v = Vt_c + (size_t)c * n;
        double acc = 0.0;
#pragma omp parallel for reduction(+ : acc)
        for (int i = 0; i < m; i++) {
            const double *g = G + (size_t)i * n;
            double gv = 0.0;
            for (int j = 0; j < n; j++) gv += g[j] * v[j];
            acc += U_c[(size_t)i * ncand + c] * gv;
        }
        scores[c] = fabs(acc);
    }
}

int init_auto_select(int ncand, const int *cand, const double *scores, int r, int *selected) {
    if (r > ncand) return AIL_ERROR(AIL_ERR_ARG, "auto: rank %d exceeds the %d candidate triplets", r, ncand);
    // r passes of a max search: r is small, and ties resolve to the lower index
    // (the candidates are ascending) without depending on a sort's stability
    unsigned char *taken = ail_calloc((size_t)ncand, 1);
    if (!taken) return AIL_ERROR(AIL_ERR_MEM, "out of memory selecting triplets");
    for (int j = 0; j < r; j++) {
        int best = -1;
        for (int c = 0; c < ncand; c++)
            if (!taken[c] && (best < 0 || scores[c] > scores[best])) best = c;
        taken[best] = 1;
        selected[j] = cand[best];
    }
    free(taken);
    for (int a = 1; a < r; a++)  // ascending, as every selection is stored
        for (int b = a; b > 0 && selected[b - 1] > selected[b]; b--) {
            int x = selected[b];
            selected[b] = selected[b - 1], selected[b - 1] = x;
        }
    return AIL_OK;
}

double init_principal_fraction(const InitSpec *spec, const char *suffix) {
    int is_q = strcmp(suffix, "q_proj") == 0, is_v = strcmp(suffix, "v_proj") == 0;
    switch (spec->method) {
    case INIT_PISSA: return 1.0;
    case INIT_MILORA: return 0.0;
    case INIT_AILORA: return is_q ? 1.0 : is_v ? 0.0 : spec->ratio_other;
    case INIT_RATIO: return is_q ? spec->ratio_q : is_v ? spec->ratio_v : spec->ratio_other;
    default: return 0.0;  // lora selects nothing
    }
}

int init_principal_count(double rho, int r) { return (int)floor(rho * r + 0.5); }

void init_select(int k, int r, int p, int *selected) {
    for (int i = 0; i < p; i++) selected[i] = i;
    for (int i = p; i < r; i++) selected[i] = k - r + i;  // the last r - p indices
}

void adapter_from_svd(int m, int n, int r, double scale, const double *S_I, const double *U_I,
                      const double *Vt_I, double *A, double *B) {
    for (int j = 0; j < r; j++) {
        double root = sqrt(S_I[j] / scale);
        for (int c = 0; c < n; c++) A[(size_t)j * n + c] = root * Vt_I[(size_t)j * n + c];
        for (int i = 0; i < m; i++) B[(size_t)i * r + j] = U_I[(size_t)i * r + j] * root;
    }
}

void adapter_lora_random(const InitSpec *spec, const char *module, int m, int n, double *A,
                         double *B) {
    Rng rng;
    rng_init(&rng, spec->seed, rng_stream_id(module));
    int r = spec->rank;
    // kaiming_uniform_(a=sqrt(5)) on A [r, n]: gain sqrt(2/(1+5)), bound gain*sqrt(3/n) = 1/sqrt(n);
    // gaussian as PEFT draws it: nn.init.normal_(lora_A.weight, std=1 / r) (std, not variance)
    double bound = 1.0 / sqrt((double)n), stdev = 1.0 / (double)r;
    for (size_t i = 0; i < (size_t)r * n; i++)
        A[i] = spec->lora_gaussian ? stdev * rng_normal(&rng) : bound * (2.0 * rng_uniform(&rng) - 1.0);
    memset(B, 0, sizeof(double) * (size_t)m * r);
}

/* C [m, n] += alpha * B [m, r] A [r, n], row-major, through BLIS. */
static void gemm_add_ba(int m, int n, int r, double alpha, const double *B, const double *A,
                        double *C) {
    double one = 1.0;
    bli_dgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, r, &alpha, (double *)B, r, 1,
              (double *)A, n, 1, &one, C, n, 1);
}

void adapter_residual(int m, int n, int r, double scale, const double *W, const double *A,
                      const double *B, double *W_res) {
    memcpy(W_res, W, sizeof(double) * (size_t)m * n);
    if (r > 0) gemm_add_ba(m, n, r, -scale, B, A, W_res);
}

/* Sums over rows [i0, i0 + rows) of ||W||^2 and ||W - W_held - s B A||^2, with
 * W_held = W_res, and (round) W_res rounded to dtype. e is scratch [rows, n].
 * The gemm per block computes the same sums, in the same order, as one gemm over
 * the whole matrix would: r is a single inner block. */
typedef struct {
    double w2, err2, err2_rounded;
} ReconSums;

static void recon_block(int i0, int rows, int n, int r, double scale, const double *W, const double *W_res,
                        const double *A, const double *B, int round, DType dtype, double *e, ReconSums *sum) {
    size_t off = (size_t)i0 * n, count = (size_t)rows * n;
    if (round) {
        dtype_round_array(dtype, W_res + off, count, e);
        for (size_t i = 0; i < count; i++) e[i] = W[off + i] - e[i];
    } else
        for (size_t i = 0; i < count; i++) e[i] = W[off + i] - W_res[off + i];
    if (r > 0) gemm_add_ba(rows, n, r, -scale, B + (size_t)i0 * r, A, e);
    double acc = 0.0;
    for (size_t i = 0; i < count; i++) acc += e[i] * e[i];
    if (round) sum->err2_rounded += acc;
    else {
        sum->err2 += acc;
        for (size_t i = 0; i < count; i++) sum->w2 += W[off + i] * W[off + i];
    }
}

/* Rows per block: the scratch (and W's rows) stay in cache across both passes. */
enum { RECON_ROWS = 16 };

/* Both errors in one sweep over row blocks (round < 0: only the float64 one). */
static void recon_errors(int m, int n, int r, double scale, const double *W, const double *W_res,
                         const double *A, const double *B, int round, DType dtype, double *err,
                         double *err_rounded) {
    double *e = malloc(sizeof(double) * (size_t)RECON_ROWS * n);  // not a fault point: diagnostics only
    if (!e) {  // report NaN rather than fail the init
        *err = NAN;
        if (err_rounded) *err_rounded = NAN;
        return;
    }
    ReconSums sum = {0};
    for (int i0 = 0; i0 < m; i0 += RECON_ROWS) {
        int rows = m - i0 < RECON_ROWS ? m - i0 : RECON_ROWS;
        recon_block(i0, rows, n, r, scale, W, W_res, A, B, 0, dtype, e, &sum);
        if (round) recon_block(i0, rows, n, r, scale, W, W_res, A, B, 1, dtype, e, &sum);
    }
    free(e);
    double wnorm = sqrt(sum.w2);
    *err = wnorm > 0 ? sqrt(sum.err2) / wnorm : 0.0;
    if (err_rounded) *err_rounded = wnorm > 0 ? sqrt(sum.err2_rounded) / wnorm : 0.0;
}

double adapter_recon_error(int m, int n, int r, double scale, const double *W, const double *W_held,
                           const double *A, const double *B) {
    double err;
    recon_errors(m, n, r, scale, W, W_held, A, B, 0, DTYPE_F64, &err, NULL);
    return err;
}

void adapter_diagnostics(int m, int n, int r, double scale, const double *W, const double *W_res,
                         const double *A, const double *B, DType dtype, const double *S, int k,
                         const int *selected, AdapterDiagnostics *diag) {
    double total = 0.0, captured = 0.0;
    for (int i = 0; i < k; i++) total += S[i] * S[i];
    for (int i = 0; i < r && selected; i++) captured += S[selected[i]] * S[selected[i]];
    diag->energy = total > 0 ? captured / total : 0.0;
    recon_errors(m, n, r, scale, W, W_res, A, B, 1, dtype, &diag->recon_err_f64, &diag->recon_err_rounded);
}
