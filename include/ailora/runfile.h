/* runfile.h - the HDF5 run file of `ailora train`, and its checkpoints.
 *
 * Run file (DESIGN.md section 4), rewritten whole at every flush through
 * "<path>.partial" + rename, so a killed job leaves the last flushed file intact:
 *   /spectra/<module>/S [k]        /adapters/<module>/selected [r] int64
 *   /init/<module>/lora_A, lora_B  initial adapters (float64)
 *   /adapters/<module>/lora_A, lora_B  current / final adapters
 *   /train/step (int64), loss, lr, grad_norm, tokens_per_s
 *   /eval/step (int64), loss, ppl, exact_match (NaN when not measured)
 *   /diagnostics/...               update spectra at each evaluation (diaglog.h)
 *   root attributes: format, version, method, rank, alpha, ratio_q, ratio_v,
 *     ratio_other, seed, task, model, targets, steps_done, config (resolved text
 *     of the run as it was started: never rewritten by a resume),
 *     model_fingerprint, fingerprint_algorithm, residual_dtype (model | fp32), and
 *     after a resume resume_steps [n] int64 (steps_done at each resume) and resumes
 *     (one line per resume: "step N: key old -> new, ..." naming the allowed keys
 *     that changed, or "step N: same config")
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
#include "ailora/diaglog.h"
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
    DiagLog diag;            /* spectral diagnostics at each evaluation (diaglog.h) */
    long step;               /* optimizer steps completed */
    int tp, dp;              /* this run's layout */
    int ckpt_tp, ckpt_dp;    /* the layout of the checkpoint read, if any */
    const char *model_fingerprint;  /* of the model directory (fingerprint.h) */
    int nresumes;            /* resumes of this run so far: */
    long long *resume_steps; /*   [nresumes] steps_done at each */
    char *resumes;           /*   one line each (malloc'ed; NULL when none) */
} RunState;

/* Writes path atomically (one rank, serial HDF5). with_optimizer: a checkpoint.
 * Test hook: the environment variable AILORA_TEST_COMMIT_PAUSE_MS=N pauses N ms
 * between finishing "<path>.partial" and committing it (tests/sigkill_resume.sh
 * widens the window a kill can fall into). */
int runfile_write(const char *path, const RunState *st, int with_optimizer);
/* Restores adapters, optimizer state, logs and step from a checkpoint written by
 * the same configuration; a different method, rank, residual_dtype or model
 * (fingerprint) is refused. */
int checkpoint_read(const char *path, RunState *st);
/* Appends "step N: <changed>" to st's resume record (changed: "" = same config). */
int runstate_add_resume(RunState *st, long step, const char *changed);
void runstate_free_resumes(RunState *st);

/* The config text (malloc'ed) and steps_done of a run file or checkpoint. */
int runfile_read_head(const char *path, char **config_text, long *steps_done);

/* Compares the config a run was started with (stored: config_dump text) with the
 * one given now, key by key; a key absent from stored (added to ailora later)
 * counts as its default. Keys a resume may change (runfile.c: the steps and
 * output cadence, the parallel layout, the device at the same compute precision)
 * go to changed, every other difference to refused, each as "key old -> new",
 * comma-separated ("" when none); *nrefused counts the refused keys. */
int runfile_config_diff(const char *stored, const TrainConfig *cfg, char *refused, size_t rlen, char *changed,
                        size_t clen, int *nrefused);

#endif
