/* trainconfig.h - `ailora train` configuration: an INI-style file (inih) of flat
 * key = value lines, every key overridable as key=value on the command line.
 * The keys are one option table (options.h: syntax, comments, ranges); unknown keys,
 * malformed and out-of-range values are errors naming the key (and the file line).
 * config_help() lists every key with its default, meaning and allowed values.
 */
#ifndef AILORA_TRAINCONFIG_H
#define AILORA_TRAINCONFIG_H

#include <stdio.h>

#include "ailora/adapter.h"
#include "ailora/optim.h"
#include "ailora/options.h"

typedef struct {
    char model[1024], svd_cache[1024], train_data[1024], eval_data[1024], out[1024];
    char targets[128], task[64], lora_init[16], out_model[1024];
    char device[8], precision[8];  /* cpu | cuda; bf16 | fp32 (cuda) */
    char residual_dtype[8];        /* model | fp32: how W - s B A is rounded (train.c) */
    int resume, shuffle, train_base;
    int svd_keep;                  /* computed cache: vectors [0, K), [k-K, k) only (0: all) */
    InitMethod method;
    int rank;
    double alpha, ratio_q, ratio_v, ratio_other;
    long long seed;
    int steps, batch_size, grad_accum;
    OptimConfig optim;
    int log_every, eval_every, checkpoint_every, eval_batches, max_new_tokens;
    int tp, dp;
    int preempt_at_step;
    int overwrite;              /* a fresh run may replace an existing run in `out` */
    double checkpoint_minutes;  /* a checkpoint at least this often (0: off) */
    int auto_batches;           /* method auto: batches of base gradient that score the triplets */
    int diagnostics;            /* spectral diagnostics of each update at every evaluation (updatediag.h) */
    int diagnostics_k;          /* singular vectors of W from each end they compare with (0: rank) */
} TrainConfig;

void config_defaults(TrainConfig *cfg);
/* Reads path (if not NULL), then applies the key=value overrides in order. */
int config_load(const char *path, int noverrides, char **overrides, TrainConfig *cfg);
/* Defaults, then INI text [len] (not NUL-terminated; the fuzz harnesses' entry):
 * AIL_OK or one recorded error, never a crash. */
int config_load_buffer(const char *text, size_t len, TrainConfig *cfg);
/* The key table (options.h), e.g. for options_parse_args. */
const OptionTable *config_options(void);
/* Sets one key from text; errors name the key. */
int config_set(TrainConfig *cfg, const char *key, const char *value);
/* Every key against its range, then consistency (tp x dp = ranks, batch divisible). */
int config_validate(const TrainConfig *cfg, int world_size);
/* "full" for full-parameter training, else the adapter init method's name. */
const char *config_method_name(const TrainConfig *cfg);
/* The fully resolved configuration as "key = value" lines (malloc'ed). */
char *config_dump(const TrainConfig *cfg);
void config_help(FILE *out);

#endif
