/* export.h - `ailora export`: a run's trained adapters as files that transformers
 * + PEFT (and any LoRA-capable server) load.
 *
 * A run adapts W (m, n) of each target with s B A (s = alpha / r) on the frozen
 * residual W_res = W - s B0 A0, where A0 (r, n), B0 (m, r) are the run's initial
 * adapters (/init/<module>) and A, B the trained ones (/adapters/<module>):
 *
 *   W_res   = round_rd(W - s B0 A0)      float64, rounded once to the run's residual
 *                                        dtype rd (the model's, or F32 for
 *                                        residual_dtype = fp32): what the run trained on
 *   merged  = round_out(W_res + s B A)   = W + s (B A - B0 A0) up to those roundings
 *   A' = [A; A0] (2r, n), B' = [B, -B0] (m, 2r), r' = 2r, alpha' = 2 alpha:
 *           s' B' A' = s (B A - B0 A0)   (s' = s), a plain LoRA on the ORIGINAL W.
 *           This is PEFT's PiSSA-to-LoRA conversion (LoraModel.subtract_mutated_init,
 *           save_pretrained(path_initial_model_for_weight_conversion=...): r and
 *           lora_alpha doubled, rank_pattern / alpha_pattern values doubled; ailora's
 *           runs have one rank for every module, so those stay empty).
 *           When every B0 is exactly zero (method lora) s B0 A0 = 0: W_res = W and
 *           the plain adapter is the trained one itself, r and alpha unchanged.
 *
 * Output directory DIR (built as DIR.partial, committed by file_commit):
 *   residual/           HF model: config.json (dtype rewritten), model.safetensors
 *                       (every tensor; targets replaced by W_res), tokenizer and
 *                       generation files copied from the model directory
 *   adapter/            PEFT LoRA adapter (adapter_config.json, adapter_model.safetensors,
 *                       F32: the trained A, B exactly) for residual/
 *   lora_for_original/  PEFT LoRA adapter (A', B', F32) for the original model directory
 *   merged/             HF model with W_res + s B A in place of each target
 *   export.json         what was exported from what (run, model, fingerprint, dtypes)
 * PEFT tensor names: base_model.model.<module>.lora_A.weight (r, n), .lora_B.weight (m, r).
 *
 * Output dtype (models only; adapters are always F32, the precision they trained in):
 * dtype, or by default the model's (config.json's torch_dtype); the residual model
 * by default in F32 when the run held its residual in F32 above a narrower model
 * dtype, so that it is the residual the adapter was trained on. A narrower dtype
 * than the run's residual rounds the held residual once more.
 *
 * Checks before anything is written: the run file has trained adapters (an /adapters
 * group with modules, steps_done > 0), the model directory (recorded in the run, or
 * model_dir) exists and its model fingerprint (fingerprint.h) equals the run's,
 * every adapter has its module's shape; DIR does not exist (or, with overwrite, is
 * an earlier export: it then holds export.json, and is replaced atomically).
 */
#ifndef AILORA_EXPORT_H
#define AILORA_EXPORT_H

#include <mpi.h>

#include "ailora/dtype.h"

#define EXPORT_FORMAT "ailora-export/1"

typedef struct {
    const char *run_path;   /* run file (or checkpoint) of `ailora train` */
    const char *out_dir;    /* DIR */
    const char *model_dir;  /* NULL: the model directory recorded in the run file */
    DType dtype;            /* DTYPE_INVALID: the model's (see above) */
    int overwrite;          /* replace an earlier export at out_dir */
    int verbose;
} ExportOptions;

/* Collective over comm (the model fingerprint is shared over the ranks; rank 0
 * writes). Errors are agreed: every rank returns the same code. */
int export_run(MPI_Comm comm, const ExportOptions *opt);

#endif
