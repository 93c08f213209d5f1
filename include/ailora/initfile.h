/* initfile.h - `ailora init`: adapters and residuals for one method, rank and
 * ratio, written to INIT.h5 (DESIGN.md section 4) and optionally as an HF model
 * directory with the residual weights plus a PEFT adapter that loads on top.
 *
 *   /adapters/<module>/lora_A    [r, n]   float64
 *   /adapters/<module>/lora_B    [m, r]
 *   /adapters/<module>/selected  [r] int64 indices into S ([0] for lora)
 *   /spectra/<module>/S          [k]
 *   attributes of /adapters/<module>: m, n, k, n_principal, principal_fraction,
 *     energy, recon_err_f64, recon_err_rounded, residual_dtype, fingerprint (of
 *     the source tensor, fingerprint.h; the SVD cache was checked against it)
 *   root attributes: format, version, method, rank, alpha, scale, ratio_q, ratio_v,
 *     ratio_other, seed, lora_init, model, targets, svd_cache, model_fingerprint,
 *     fingerprint_algorithm
 *
 * Residual directory (--residual-out DIR): config.json, model.safetensors with
 * every tensor of the model and W_res in place of each target weight (float64
 * rounded once to the model's dtype), and DIR/adapter/ with adapter_config.json +
 * adapter_model.safetensors (PEFT LoRA format, float32), so that
 * PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(DIR), DIR + "/adapter")
 * reproduces the original model's outputs at initialization.
 */
#ifndef AILORA_INITFILE_H
#define AILORA_INITFILE_H

#include <hdf5.h>
#include <mpi.h>

#include "ailora/adapter.h"
#include "ailora/hfmodel.h"
#include "ailora/svdcache.h"

#define INITFILE_FORMAT "ailora-init/1"

typedef struct {
    InitSpec spec;
    const char *svd_path;      /* SVD cache to read; NULL: compute the SVDs first */
    SvdOptions svd;            /* how to compute them when svd_path is NULL */
    const char *residual_dir;  /* NULL: no residual model directory */
    int verbose;
} InitOptions;

/* One module's initialization, computed from the SVD cache in float64. */
typedef struct {
    int k, nsel, p;      /* spectrum length, selected count (0 for lora), principal count */
    double rho;          /* principal fraction used */
    int *selected;       /* [nsel] ascending indices into S */
    double *S;           /* [k] */
    double *A, *B;       /* [r, n], [m, r] */
    double *W_res;       /* [m, n] W - s B A, when keep_residual was set */
    AdapterDiagnostics diag;
    char fingerprint[FINGERPRINT_HEX];  /* of the source tensor (svdcache_verify) */
    int ncand;           /* auto: candidate triplets scored (0 otherwise) */
    int *candidates;     /* auto: [ncand] ascending indices into S */
    double *scores;      /* auto: [ncand] |u_i^T G v_i| (adapter.h) */
} ModuleInit;

/* Reads S and the selected singular vectors of t from cache and builds its
 * adapters (spec), residual and diagnostics. Serial; any rank may call it. */
int init_module(hid_t cache, const TargetModule *t, const InitSpec *spec, int keep_residual,
                ModuleInit *mi);
/* After init_module_adapters: W_res = W - s B A from the source weight in float64
 * and the diagnostics, the rounded error with W_res rounded once to round_to. */
int init_module_residual(const TargetModule *t, const InitSpec *spec, DType round_to, int keep_residual,
                         ModuleInit *mi);
/* Only S, the selection and the whole module's A and B (no residual, no
 * diagnostics): what a tensor-parallel rank needs besides its own residual block. */
int init_module_adapters(hid_t cache, const TargetModule *t, const InitSpec *spec, ModuleInit *mi);
/* Like init_module_adapters for an explicit selection (r ascending indices into S):
 * what method auto builds once its triplets are chosen. */
int init_module_selected(hid_t cache, const TargetModule *t, const InitSpec *spec, const int *selected,
                         ModuleInit *mi);
/* auto: scores of every triplet the cache holds for t against the base gradient
 * G [m, n] (float64, row-major); malloc'ed candidates and scores [*ncand]. */
int init_auto_scores_module(hid_t cache, const TargetModule *t, const double *G, int **candidates,
                            double **scores, int *ncand);
void module_init_free(ModuleInit *mi);

/* Collective over comm. Validates everything before writing; writes out_path
 * (and residual_dir) completely or not at all. */
int initfile_write(MPI_Comm comm, const HFModel *model, const TargetModule *targets, int ntargets,
                   const InitOptions *opt, const char *out_path);

#endif
