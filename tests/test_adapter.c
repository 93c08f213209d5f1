/* test_adapter.c - closed-form checks of the adapter initializations (adapter.h).
 *
 *   - selection: principal / minor / ratio index sets, p = floor(rho r + 1/2)
 *   - method -> principal fraction per module (ailora: q principal, v minor)
 *   - s B A equals the truncated SVD U_I S_I Vt_I for any alpha (1e-14 relative:
 *     a handful of float64 roundings)
 *   - W_res + s B A = W in float64 (1e-15), and the rounded-residual error equals an
 *     independent computation of ||round(W_res) - W_res|| / ||W||
 *   - captured energy = sum S_I^2 / sum S^2 for a known spectrum
 *   - lora: A in (-1/sqrt(n), 1/sqrt(n)) with variance 1/(3n), B = 0, same numbers
 *     for the same (seed, module) and different ones otherwise; gaussian A with
 *     std 1/r as PEFT draws it
 *   - milora on a spectrum whose minor end is a cluster of tiny values, from a
 *     computed SVD (dgesdd): which r vectors of the cluster come back is arbitrary,
 *     but every column of B and row of A lies in the true cluster's subspace within
 *     Wedin's bound 1e-12 * (smax / gap + 1) (the rule of tests/test_svd.c)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/adapter.h"
#include "ailora/error.h"
#include "ailora/svd.h"
#include "ailora/synth.h"
#include "testutil.h"

static void test_selection(void) {
    int sel[8];
    init_select(64, 8, 8, sel);
    for (int i = 0; i < 8; i++) TU_CHECK(sel[i] == i, "pissa index %d = %d", i, sel[i]);
    init_select(64, 8, 0, sel);
    for (int i = 0; i < 8; i++) TU_CHECK(sel[i] == 56 + i, "milora index %d = %d", i, sel[i]);
    init_select(32, 8, 2, sel);
    const int want[8] = {0, 1, 26, 27, 28, 29, 30, 31};
    for (int i = 0; i < 8; i++) TU_CHECK(sel[i] == want[i], "ratio index %d = %d", i, sel[i]);
    init_select(8, 8, 3, sel);  // r = k: every index exactly once
    for (int i = 0; i < 8; i++) TU_CHECK(sel[i] == i, "r = k index %d = %d", i, sel[i]);

    TU_CHECK(init_principal_count(0.5, 5) == 3, "floor(2.5 + .5) = 3");
    TU_CHECK(init_principal_count(0.25, 8) == 2, "floor(2 + .5) = 2");
    TU_CHECK(init_principal_count(0.3, 8) == 2, "floor(2.4 + .5) = 2");
    TU_CHECK(init_principal_count(1.0, 8) == 8 && init_principal_count(0.0, 8) == 0, "ends");

    InitSpec s = {.method = INIT_AILORA, .rank = 8, .ratio_other = 1.0};
    TU_CHECK(init_principal_fraction(&s, "q_proj") == 1.0, "ailora q principal");
    TU_CHECK(init_principal_fraction(&s, "v_proj") == 0.0, "ailora v minor");
    TU_CHECK(init_principal_fraction(&s, "o_proj") == 1.0, "ailora other default principal");
    s.method = INIT_RATIO, s.ratio_q = 0.75, s.ratio_v = 0.25, s.ratio_other = 0.5;
    TU_CHECK(init_principal_fraction(&s, "q_proj") == 0.75, "ratio q");
    TU_CHECK(init_principal_fraction(&s, "v_proj") == 0.25, "ratio v");
    TU_CHECK(init_principal_fraction(&s, "up_proj") == 0.5, "ratio other");
    s.method = INIT_PISSA;
    TU_CHECK(init_principal_fraction(&s, "v_proj") == 1.0, "pissa");
    s.method = INIT_MILORA;
    TU_CHECK(init_principal_fraction(&s, "q_proj") == 0.0, "milora");

    InitSpec bad = {.method = INIT_RATIO, .rank = 4, .ratio_q = 1.5};
    TU_CHECK(init_spec_validate(&bad) == AIL_ERR_ARG && strstr(ail_error_message(), "ratio-q"),
             "ratio outside [0,1] rejected: %s", ail_error_message());
    ail_error_clear();
    InitSpec def = {.method = INIT_PISSA, .rank = 4, .alpha = -1, .ratio_other = 1};
    TU_CHECK(init_spec_validate(&def) == AIL_OK && def.alpha == 4.0, "alpha defaults to r");
    InitMethod mth;
    TU_CHECK(init_method_parse("foo", &mth) == AIL_ERR_ARG, "unknown method rejected");
    ail_error_clear();
}

static void test_svd_adapters(void) {
    const int m = 40, n = 30, k = 30, r = 6;
    double S[30], *W = malloc(sizeof(double) * m * n), *U = malloc(sizeof(double) * m * k);
    double *Vt = malloc(sizeof(double) * k * n);
    spectrum_fill(SPECTRUM_GEOMETRIC, k, 2.0, 3.0, S);
    TU_CHECK(synth_matrix(m, n, S, 5, 1, W, U, Vt) == AIL_OK, "synth");
    const double alphas[3] = {3.0, 6.0, 24.0};  // s = 0.5, 1, 4
    for (int ai = 0; ai < 3; ai++) {
        double scale = alphas[ai] / r;
        int sel[6];
        init_select(k, r, 2, sel);
        double S_I[6], *U_I = malloc(sizeof(double) * m * r), *Vt_I = malloc(sizeof(double) * r * n);
        for (int j = 0; j < r; j++) {
            S_I[j] = S[sel[j]];
            for (int i = 0; i < m; i++) U_I[i * r + j] = U[i * k + sel[j]];
            for (int i = 0; i < n; i++) Vt_I[j * n + i] = Vt[sel[j] * n + i];
        }
        double *A = malloc(sizeof(double) * r * n), *B = malloc(sizeof(double) * m * r);
        adapter_from_svd(m, n, r, scale, S_I, U_I, Vt_I, A, B);
        // s B A against the truncated SVD built directly
        double worst = 0.0;
        for (int i = 0; i < m; i++)
            for (int c = 0; c < n; c++) {
                double sba = 0.0, trunc = 0.0;
                for (int j = 0; j < r; j++) {
                    sba += scale * B[i * r + j] * A[j * n + c];
                    trunc += U_I[i * r + j] * S_I[j] * Vt_I[j * n + c];
                }
                worst = fmax(worst, fabs(sba - trunc));
            }
        TU_CLOSE(worst / S[0], 0.0, 1e-14, "s B A == U_I S_I Vt_I");
        // B's column norms are sqrt(S_I / s): the scale moves into the factors
        for (int j = 0; j < r; j++) {
            double norm = 0.0;
            for (int i = 0; i < m; i++) norm += B[i * r + j] * B[i * r + j];
            TU_CLOSE(sqrt(norm), sqrt(S_I[j] / scale), 1e-14, "||B[:, j]|| = sqrt(S_j / s)");
        }
        double *W_res = malloc(sizeof(double) * m * n);
        adapter_residual(m, n, r, scale, W, A, B, W_res);
        AdapterDiagnostics d;
        adapter_diagnostics(m, n, r, scale, W, W_res, A, B, DTYPE_BF16, S, k, sel, &d);
        double e_num = 0.0, e_den = 0.0;
        for (int i = 0; i < k; i++) e_den += S[i] * S[i];
        for (int j = 0; j < r; j++) e_num += S_I[j] * S_I[j];
        TU_CLOSE(d.energy, e_num / e_den, 1e-14, "captured energy");
        TU_CLOSE(d.recon_err_f64, 0.0, 1e-15, "float64 reconstruction error");
        double num = 0.0, den = 0.0;
        for (int i = 0; i < m * n; i++) {
            double rounded = bf16_to_f64(f64_to_bf16(W_res[i]));
            num += (rounded - W_res[i]) * (rounded - W_res[i]);
            den += W[i] * W[i];
        }
        TU_CLOSE(d.recon_err_rounded, sqrt(num / den), 1e-12 * sqrt(num / den), "bf16 rounding error");
        TU_CHECK(d.recon_err_rounded > 1e-4, "bf16 residual loses ~2^-9 relative (got %.3g)",
                 d.recon_err_rounded);
        free(U_I), free(Vt_I), free(A), free(B), free(W_res);
    }
    free(W), free(U), free(Vt);
}

static void test_lora_random(void) {
    const int m = 64, n = 256, r = 16;
    InitSpec s = {.method = INIT_LORA, .rank = r, .seed = 3};
    double *A = malloc(sizeof(double) * r * n), *B = malloc(sizeof(double) * m * r);
    double *A2 = malloc(sizeof(double) * r * n);
    for (int i = 0; i < m * r; i++) B[i] = 1.0;
    adapter_lora_random(&s, "model.layers.0.self_attn.q_proj", m, n, A, B);
    double bound = 1.0 / sqrt(n), mean = 0.0, var = 0.0, bmax = 0.0;
    int inside = 1;
    for (int i = 0; i < r * n; i++) {
        inside &= fabs(A[i]) < bound;
        mean += A[i];
        var += A[i] * A[i];
    }
    for (int i = 0; i < m * r; i++) bmax = fmax(bmax, fabs(B[i]));
    mean /= r * n;
    var /= r * n;
    TU_CHECK(inside, "kaiming-uniform A inside (-1/sqrt(n), 1/sqrt(n))");
    TU_CHECK(bmax == 0.0, "B = 0");
    // 4096 samples: the variance estimate has relative std ~ sqrt(0.8/4096) ~ 1.4%; allow 6 sigma
    TU_CLOSE(var / (bound * bound / 3.0), 1.0, 0.09, "kaiming variance bound^2/3");
    TU_CLOSE(mean / bound, 0.0, 6 * sqrt(1.0 / 3.0 / (r * n)), "kaiming mean 0");
    adapter_lora_random(&s, "model.layers.0.self_attn.q_proj", m, n, A2, B);
    TU_CHECK(memcmp(A, A2, sizeof(double) * r * n) == 0, "same seed and module: same A");
    adapter_lora_random(&s, "model.layers.0.self_attn.v_proj", m, n, A2, B);
    TU_CHECK(memcmp(A, A2, sizeof(double) * r * n) != 0, "another module: another A");
    s.lora_gaussian = 1;
    adapter_lora_random(&s, "model.layers.0.self_attn.q_proj", m, n, A, B);
    var = 0.0;
    for (int i = 0; i < r * n; i++) var += A[i] * A[i];
    // PEFT: nn.init.normal_(lora_A.weight, std=1 / r), so variance 1/r^2 (an earlier
    // version drew variance 1/r: r times too wide); 4096 samples, 6 sigma of the estimate
    TU_CLOSE(var / (r * n) * r * r, 1.0, 6 * sqrt(2.0 / (r * n)), "gaussian std 1/r (PEFT)");
    free(A), free(B), free(A2);
}

/* |b - P b| / |b| for P the projection onto the columns [lo, k) of Q [rows, k] row-major;
 * x(i) = element i of the vector b, stride apart in X. */
static double leak(const double *Q, int rows, int k, int lo, const double *X, size_t stride) {
    double *res = malloc(sizeof(double) * rows), norm = 0.0, out = 0.0;
    for (int i = 0; i < rows; i++) res[i] = X[i * stride], norm += res[i] * res[i];
    for (int t = lo; t < k; t++) {
        double dot = 0.0;
        for (int i = 0; i < rows; i++) dot += Q[(size_t)i * k + t] * X[i * stride];
        for (int i = 0; i < rows; i++) res[i] -= dot * Q[(size_t)i * k + t];
    }
    for (int i = 0; i < rows; i++) out += res[i] * res[i];
    free(res);
    return sqrt(out / norm);
}

static void test_milora_cluster(void) {
    const int m = 40, n = 30, k = 30, r = 6;
    double S[30], Sc[30];
    double *W = malloc(sizeof(double) * m * n), *Ut = malloc(sizeof(double) * m * k);
    double *Vtt = malloc(sizeof(double) * k * n), *U = malloc(sizeof(double) * m * k);
    double *Vt = malloc(sizeof(double) * k * n), *work = malloc(sizeof(double) * m * n);
    spectrum_fill(SPECTRUM_CLUSTER, k, 2.0, 9.0, S);  // the last 15 within 1e-6 relative of 2e-9
    TU_CHECK(synth_matrix(m, n, S, 5, 2, W, Ut, Vtt) == AIL_OK, "synth");
    memcpy(work, W, sizeof(double) * m * n);
    TU_CHECK(svd_lapack(m, n, work, Sc, U, Vt) == AIL_OK, "%s", ail_error_message());
    int sel[6];
    init_select(k, r, 0, sel);  // milora: the r smallest
    double S_I[6], U_I[40 * 6], Vt_I[6 * 30], A[6 * 30], B[40 * 6];
    for (int j = 0; j < r; j++) {
        S_I[j] = Sc[sel[j]];
        for (int i = 0; i < m; i++) U_I[i * r + j] = U[i * k + sel[j]];
        for (int i = 0; i < n; i++) Vt_I[j * n + i] = Vt[sel[j] * n + i];
    }
    adapter_from_svd(m, n, r, 1.0, S_I, U_I, Vt_I, A, B);
    // the true cluster holding the selection: widen while neighbours are not separated
    int lo = k - r;
    while (lo > 0 && !(S[lo - 1] - S[lo] > 0 && 1e-12 * S[0] / (S[lo - 1] - S[lo]) <= 1e-2)) lo--;
    TU_CHECK(lo < k - r, "the selection lies inside a wider cluster (lo = %d)", lo);
    double gap_v = S[lo - 1] - S[lo], gap_u = fmin(gap_v, S[k - 1]);  // U is tall: its null space is 0
    double *V = malloc(sizeof(double) * n * k);  // V [n, k] row-major
    for (int t = 0; t < k; t++)
        for (int i = 0; i < n; i++) V[(size_t)i * k + t] = Vtt[(size_t)t * n + i];
    double worst_b = 0.0, worst_a = 0.0;
    for (int j = 0; j < r; j++) {
        worst_b = fmax(worst_b, leak(Ut, m, k, lo, B + j, r));
        worst_a = fmax(worst_a, leak(V, n, k, lo, A + (size_t)j * n, 1));
    }
    char what[128];
    snprintf(what, sizeof what, "milora B in the minor cluster's left subspace [%d, %d)", lo, k);
    TU_CLOSE(worst_b, 0.0, 1e-12 * (S[0] / gap_u + 1.0), what);
    snprintf(what, sizeof what, "milora A in the minor cluster's right subspace [%d, %d)", lo, k);
    TU_CLOSE(worst_a, 0.0, 1e-12 * (S[0] / gap_v + 1.0), what);
    free(W), free(Ut), free(Vtt), free(U), free(Vt), free(work), free(V);
}

/* method auto: for G = U diag(c) Vt with orthonormal U, V (synth_matrix), the score of
 * triplet i is exactly |c_i| (u_i^T G v_i = c_i), so the r largest |c_i| are selected;
 * ties go to the lower index; a subset of candidates is honoured. */
static void test_auto_selection(void) {
    const int m = 24, n = 16, k = 16, r = 4;
    double S[16], *W = malloc(sizeof(double) * m * n), *U = malloc(sizeof(double) * m * k);
    double *Vt = malloc(sizeof(double) * k * n), *G = malloc(sizeof(double) * m * n);
    spectrum_fill(SPECTRUM_GEOMETRIC, k, 2.0, 3.0, S);
    TU_CHECK(synth_matrix(m, n, S, 7, 1, W, U, Vt) == AIL_OK, "synth");
    // c: signed, with a tie between indices 5 and 12 (|c| = 0.8), largest at 9 and 14
    double c[16] = {0.1, -0.2, 0.05, 0.3, 0.0, -0.8, 0.4, 0.01, 0.2, 2.0, -0.3, 0.1, 0.8, 0.0, -1.5, 0.2};
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double g = 0.0;
            for (int q = 0; q < k; q++) g += U[i * k + q] * c[q] * Vt[q * n + j];
            G[i * n + j] = g;
        }
    double scores[16];
    int cand[16], sel[4];
    for (int i = 0; i < k; i++) cand[i] = i;
    init_auto_scores(m, n, G, k, U, Vt, scores);
    double worst = 0.0;
    for (int i = 0; i < k; i++) worst = fmax(worst, fabs(scores[i] - fabs(c[i])));
    TU_CLOSE(worst, 0.0, 1e-13, "auto scores = |u_i^T G v_i| = |c_i| (orthonormal U, V: rounding only)");
    // selection on the exact |c_i|: the computed scores equal them only up to rounding,
    // which (OpenMP reduction order, sanitizer builds) may part the ties tested below
    double exact[16];
    for (int i = 0; i < k; i++) exact[i] = fabs(c[i]);
    TU_CHECK(init_auto_select(k, cand, exact, r, sel) == AIL_OK, "auto select");
    // largest: 9 (2.0), 14 (1.5), then the tie 5 / 12 at 0.8: both, then nothing else
    TU_CHECK(sel[0] == 5 && sel[1] == 9 && sel[2] == 12 && sel[3] == 14, "top 4: got %d %d %d %d", sel[0], sel[1],
             sel[2], sel[3]);
    int sel3[3];
    TU_CHECK(init_auto_select(k, cand, exact, 3, sel3) == AIL_OK && sel3[0] == 5 && sel3[1] == 9 && sel3[2] == 14,
             "tie at the cut goes to the lower index: got %d %d %d", sel3[0], sel3[1], sel3[2]);
    // candidates restricted to the two ends (a partial cache): 0..3 and 12..15; the tie
    // 1 / 15 (0.2) at the cut goes to 1
    int ends[8] = {0, 1, 2, 3, 12, 13, 14, 15}, sel_e[4];
    double sc_e[8];
    for (int i = 0; i < 8; i++) sc_e[i] = exact[ends[i]];
    TU_CHECK(init_auto_select(8, ends, sc_e, r, sel_e) == AIL_OK && sel_e[0] == 1 && sel_e[1] == 3 &&
                 sel_e[2] == 12 && sel_e[3] == 14,
             "ends only: got %d %d %d %d", sel_e[0], sel_e[1], sel_e[2], sel_e[3]);
    TU_CHECK(init_auto_select(8, ends, sc_e, 9, sel_e) == AIL_ERR_ARG, "rank beyond the candidates refused");
    ail_error_clear();
    InitMethod mth;
    TU_CHECK(init_method_parse("auto", &mth) == AIL_OK && mth == INIT_AUTO, "auto parses");
    free(W), free(U), free(Vt), free(G);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    test_selection();
    test_svd_adapters();
    test_lora_random();
    test_milora_cluster();
    test_auto_selection();
    int status = tu_finish("test_adapter");
    MPI_Finalize();
    return status;
}
