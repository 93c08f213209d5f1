/* adapter.h - LoRA adapter initialization from the SVD of the pretrained weight.
 *
 * For W [m, n] = U diag(S) Vt and scale s = alpha / r, an SVD method selects r
 * singular triplets I and sets (DESIGN.md section 1)
 *     B = U_I diag(sqrt(S_I / s))      [m, r]
 *     A = diag(sqrt(S_I / s)) Vt_I     [r, n]
 *     W_res = W - s B A                (float64, rounded once to the storage dtype)
 * so that s B A is exactly the truncated SVD on I, whatever alpha is.
 *
 *   lora    no triplets: A ~ kaiming-uniform(a = sqrt(5)) = U(-1/sqrt(n), 1/sqrt(n))
 *           (or gaussian with std 1/r, PEFT's init_lora_weights="gaussian"), B = 0, W_res = W
 *   pissa   I = 0..r-1 (principal)
 *   milora  I = k-r..k-1 (minor)
 *   ailora  q_proj principal, v_proj minor, other targets principal (configurable)
 *   ratio   p = floor(rho r + 1/2) principal, then r - p minor; rho = ratio_q for
 *           q_proj, ratio_v for v_proj, ratio_other for the rest
 *   auto    the r triplets the task's loss is most sensitive to: with G = dL/dW, the
 *           base gradient over the first auto_batches training batches (train only),
 *           score_i = |u_i^T G v_i|, the first-order change of the loss along the
 *           rank-one direction u_i v_i^T that the adapter would own; the r highest
 *           scores win (ties: the lower index), among the indices the cache holds
 */
#ifndef AILORA_ADAPTER_H
#define AILORA_ADAPTER_H

#include <stdint.h>

#include "ailora/dtype.h"

typedef enum { INIT_LORA = 0, INIT_PISSA, INIT_MILORA, INIT_AILORA, INIT_RATIO, INIT_AUTO } InitMethod;

typedef struct {
    InitMethod method;
    int rank;
    double alpha;        /* s = alpha / rank */
    double ratio_q;      /* principal fraction of q_proj (ratio method) */
    double ratio_v;      /* principal fraction of v_proj (ratio method) */
    double ratio_other;  /* principal fraction of other targets (ailora, ratio); default 1 */
    uint64_t seed;
    int lora_gaussian;   /* lora: 0 = kaiming-uniform A, 1 = normal A with std 1/r (PEFT) */
} InitSpec;

int init_method_parse(const char *name, InitMethod *method);
const char *init_method_name(InitMethod method);
/* Validates rank > 0, alpha > 0 and ratios in [0, 1]; alpha <= 0 on entry means
 * "not given" and becomes r (s = 1, as the PiSSA and MiLoRA authors run). */
int init_spec_validate(InitSpec *spec);

/* Principal fraction rho applied to a module with this suffix (q_proj, v_proj, ...). */
double init_principal_fraction(const InitSpec *spec, const char *suffix);
/* Number of principal components out of r for fraction rho: floor(rho r + 1/2). */
int init_principal_count(double rho, int r);
/* selected[0..r-1]: the first p indices 0..p-1, then the last r-p indices k-(r-p)..k-1.
 * Ascending; p + (r - p) <= k is required (r <= k). */
void init_select(int k, int r, int p, int *selected);

/* auto: scores[c] = |U_c[:, c]^T G Vt_c[c, :]^T| for ncand candidate triplets;
 * G [m, n], U_c [m, ncand], Vt_c [ncand, n], all row-major float64. */
void init_auto_scores(int m, int n, const double *G, int ncand, const double *U_c, const double *Vt_c,
                      double *scores);
/* auto: the r candidates (cand [ncand], ascending) with the highest scores, ties to
 * the lower index, into selected [r] in ascending order (r <= ncand). */
int init_auto_select(int ncand, const int *cand, const double *scores, int r, int *selected);

/* A [r, n], B [m, r] from the selected factors: S_I [r], U_I [m, r], Vt_I [r, n]. */
void adapter_from_svd(int m, int n, int r, double scale, const double *S_I, const double *U_I,
                      const double *Vt_I, double *A, double *B);
/* LoRA's random A (stream chosen by module name, independent of rank layout), B = 0. */
void adapter_lora_random(const InitSpec *spec, const char *module, int m, int n, double *A,
                         double *B);
/* W_res = W - scale B A, all float64. */
void adapter_residual(int m, int n, int r, double scale, const double *W, const double *A,
                      const double *B, double *W_res);

/* ||W - W_held - scale B A||_F / ||W||_F in float64: the reconstruction error of a
 * residual as some engine holds it (W_held: W_res after whatever rounding). NaN
 * when out of memory. */
double adapter_recon_error(int m, int n, int r, double scale, const double *W, const double *W_held,
                           const double *A, const double *B);

typedef struct {
    double energy;             /* sum(S_I^2) / sum(S^2) */
    double recon_err_f64;      /* ||W - W_res - s B A||_F / ||W||_F, W_res in float64 */
    double recon_err_rounded;  /* same with W_res rounded to the model dtype */
} AdapterDiagnostics;

void adapter_diagnostics(int m, int n, int r, double scale, const double *W, const double *W_res,
                         const double *A, const double *B, DType dtype, const double *S, int k,
                         const int *selected, AdapterDiagnostics *diag);

#endif
