/* runfile.h - the HDF5 run file of `ailora train`, and its checkpoints.
 *
 * Run file (DESIGN.md section 4), rewritten whole at every flush through
 * "<path>.partial" + rename, so a killed job leaves the last flushed file intact:
 *   /spectra/<module>/S [k]        /adapters/<module>/selected [r] int64
 *   /init/<module>/lora_A, lora_B  initial adapters (float64)
 *   /adapters/<module>/lora_A, lora_B  current / final adapters
 *   /train/step (int64), loss, lr, grad_norm, tokens_per_s
 *   /eval/step (int64), loss, ppl, exact_match (NaN when not measured)
 *   root attributes: format, version, method, rank, alpha, ratio_q, ratio_v,
 *     ratio_other, seed, task, model, targets, steps_done, config (resolved text),
 *     model_fingerprint, fingerprint_algorithm, residual_dtype (model | fp32)
 *   attributes of /adapters/<module>: fingerprint (source tensor, fingerprint.h),
 *     residual_dtype (the dtype W_res was rounded to), energy, recon_err_f64,
 *     recon_err_rounded (||W - W_res - s B0 A0||_F / ||W||_F with W_res in float64
 *     and as the engine holds it)
 * Checkpoint ("<out>.ckpt.h5"): the same plus /optimizer/<i>/m, v (float32) and
 * attributes optimizer_step, tp, dp; adapters stored exactly (float32 values in
 * float64), so a run resumed on the same layout continues bit for bit. Adapters and
 * moments are stored at whole-module shape whatever the tensor-parallel layout, so
 * a checkpoint resumes on any tp x dp (equal up to float rounding).
 */
#ifndef AILORA_RUNFILE_H
#define AILORA_RUNFILE_H

#include "ailora/trainconfig.h"
#include "ailora/initfile.h"
#include "ailora/llama.h"
#include "ailora/optim.h"

typedef struct {
    int count, cap;
    double *step, *loss, *lr, *grad_norm, *tokens_per_s;
} TrainLog;

typedef struct {
    int count, cap;
    double *step, *loss, *ppl, *exact_match;
} EvalLog;

int trainlog_append(TrainLog *log, long step, double loss, double lr, double grad_norm, double tps);
int evallog_append(EvalLog *log, long step, double loss, double exact_match);
void trainlog_free(TrainLog *log);
void evallog_free(EvalLog *log);

typedef struct {
    const TrainConfig *cfg;
    const char *config_text;
    const TargetModule *targets;
    int ntargets;
    const ModuleInit *init;  /* [ntargets]: spectra, selected, initial adapters */
    Llama *llm;              /* current adapters */
    AdamW *opt;
    TrainLog train;
    EvalLog eval;
    long step;               /* optimizer steps completed */
    int tp, dp;              /* this run's layout */
    int ckpt_tp, ckpt_dp;    /* the layout of the checkpoint read, if any */
    const char *model_fingerprint;  /* of the model directory (fingerprint.h) */
} RunState;

/* Writes path atomically (one rank, serial HDF5). with_optimizer: a checkpoint. */
int runfile_write(const char *path, const RunState *st, int with_optimizer);
/* Restores adapters, optimizer state, logs and step from a checkpoint written by
 * the same configuration; a different method, rank, residual_dtype or model
 * (fingerprint) is refused. */
int checkpoint_read(const char *path, RunState *st);

#endif
