/* trainconfig.c - the table of `ailora train` keys (parsed, checked and printed by options.c). */
#include "ailora/trainconfig.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/svd.h" /* svd_keep_parse */

/* Enum keys: the method and schedule names of their own modules. */
static int method_parse(const char *text, void *field) { return init_method_parse(text, field); }
static const char *method_print(const void *field) { return init_method_name(*(const InitMethod *)field); }
static int schedule_parse_field(const char *text, void *field) { return schedule_parse(text, field); }
static const char *schedule_print(const void *field) { return schedule_name(*(const Schedule *)field); }

/* One row per key: name, field, default (NULL: required), allowed values, meaning. */
#define OPT_STRUCT TrainConfig
static const Option keys[] = {
    OPT_STR("model", model, NULL, "HF model directory (config.json + safetensors)"),
    OPT_STR("svd_cache", svd_cache, "", "SVD cache from `ailora svd` (empty: compute)"),
    OPT_ENUM("svd_keep", svd_keep, "all", svd_keep_parse, svd_keep_print,
             "computed SVD cache: K | all singular vectors kept at each end (as `ailora svd --keep`)"),
    OPT_STR("train_data", train_data, NULL, "training set: HDF5 /input_ids, /labels [N, T] int32"),
    OPT_STR("eval_data", eval_data, "", "evaluation set, same format (empty: none)"),
    OPT_STR("out", out, NULL, "run file to write (HDF5); checkpoints go next to it"),
    OPT_BOOL("resume", resume, "false", "continue the run in `out` from its latest checkpoint"),
    OPT_STR("task", task, "", "task name recorded in the run file"),
    OPT_BOOL("train_base", train_base, "false", "train every base weight (pretraining) instead of adapters"),
    OPT_STR("out_model", out_model, "", "train_base: write the trained model here (HF directory)"),
    OPT_STR("targets", targets, "q_proj,v_proj", "adapted module suffixes"),
    OPT_ENUM("method", method, "ailora", method_parse, method_print, "adapter init: lora | pissa | milora | ailora | ratio | auto"),
    OPT_INT("rank", rank, "8", "[1, inf)", "adapter rank r"),
    OPT_DBL("alpha", alpha, "0", "[0, inf)", "LoRA alpha; 0 means r (s = 1)"),
    OPT_DBL("ratio_q", ratio_q, "1", "[0, 1]", "ratio: principal fraction of q_proj"),
    OPT_DBL("ratio_v", ratio_v, "0", "[0, 1]", "ratio: principal fraction of v_proj"),
    OPT_DBL("ratio_other", ratio_other, "1", "[0, 1]", "ailora/ratio: principal fraction of other targets"),
    OPT_CHOICE("lora_init", lora_init, "kaiming", "kaiming|gaussian", "lora: A ~ PEFT's kaiming-uniform or normal, std 1/r"),
    OPT_LLONG("seed", seed, "0", "[0, inf)", "seed of adapters (lora) and data order"),
    OPT_INT("steps", steps, "100", "[1, inf)", "optimizer steps"),
    OPT_INT("batch_size", batch_size, "8", "[1, inf)", "global sequences per optimizer step"),
    OPT_INT("grad_accum", grad_accum, "1", "[1, inf)", "micro-batches per optimizer step (per rank)"),
    OPT_BOOL("shuffle", shuffle, "true", "reshuffle the training set every epoch (seeded)"),
    OPT_DBL("lr", optim.lr, "1e-4", "(0, inf)", "peak learning rate"),
    OPT_ENUM("schedule", optim.schedule, "constant", schedule_parse_field, schedule_print,
             "lr schedule after warmup: constant | linear | cosine"),
    OPT_INT("warmup_steps", optim.warmup_steps, "0", "[0, inf)", "linear warmup steps"),
    OPT_DBL("weight_decay", optim.weight_decay, "0", "[0, inf)", "AdamW decoupled weight decay"),
    OPT_DBL("beta1", optim.beta1, "0.9", "[0, 1)", "AdamW beta1"),
    OPT_DBL("beta2", optim.beta2, "0.999", "[0, 1)", "AdamW beta2"),
    OPT_DBL("eps", optim.eps, "1e-8", "(0, inf)", "AdamW epsilon"),
    OPT_DBL("grad_clip", optim.grad_clip, "1.0", "[0, inf)", "max global gradient norm (0 = off)"),
    OPT_INT("log_every", log_every, "10", "[1, inf)", "steps between progress lines"),
    OPT_INT("eval_every", eval_every, "0", "[0, inf)", "steps between evaluations (0: only at the end)"),
    OPT_INT("eval_batches", eval_batches, "0", "[0, inf)", "evaluation batches (0: the whole eval set)"),
    OPT_INT("max_new_tokens", max_new_tokens, "0", "[0, inf)", "greedy decoding budget for exact match (0: off)"),
    OPT_INT("checkpoint_every", checkpoint_every, "0", "[0, inf)", "steps between checkpoints (0: only at the end)"),
    OPT_INT("tp", tp, "1", "[1, inf)", "tensor-parallel ranks per model replica (Megatron layout)"),
    OPT_INT("dp", dp, "0", "[0, inf)", "data-parallel ranks (0: world size / tp)"),
    OPT_CHOICE("device", device, "cpu", "cpu|cuda", "cuda: one GPU per rank (ranks on a node take GPUs in turn)"),
    OPT_CHOICE("precision", precision, "bf16", "bf16|fp32", "cuda: bf16 weights and activations (fp32 adapters), or fp32"),
    OPT_CHOICE("residual_dtype", residual_dtype, "model", "model|fp32",
               "frozen W - sBA: formed in float64, rounded once to the model's dtype, or to fp32"),
    OPT_INT("preempt_at_step", preempt_at_step, "0", "[0, inf)",
            "act as if SIGUSR1 arrived after this step (requeue drills, tests; 0 = off)"),
    OPT_BOOL("overwrite", overwrite, "false", "a fresh run may replace the run in `out` (deleted first)"),
    OPT_DBL("checkpoint_minutes", checkpoint_minutes, "30", "[0, inf)",
            "minutes between checkpoints, besides checkpoint_every (0: off)"),
    OPT_INT("auto_batches", auto_batches, "4", "[1, inf)",
            "method auto: training batches whose base gradient scores the singular triplets"),
    OPT_BOOL("diagnostics", diagnostics, "true",
             "at every evaluation: spectrum of each update s(BA - B0A0) against W's (run file /diagnostics)"),
    OPT_INT("diagnostics_k", diagnostics_k, "0", "[0, inf)",
            "diagnostics: singular vectors of W taken from each end of its spectrum (0: rank)"),
};
#undef OPT_STRUCT

static const OptionTable table = {"ailora train", keys, (int)(sizeof keys / sizeof *keys), 0};

const OptionTable *config_options(void) { return &table; }

int config_set(TrainConfig *cfg, const char *key, const char *value) {
    return options_set(&table, cfg, key, value, NULL);
}

void config_defaults(TrainConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    options_defaults(&table, cfg);  // the table's defaults pass its checks (test_options)
}

int config_load_buffer(const char *text, size_t len, TrainConfig *cfg) {
    config_defaults(cfg);
    return options_load_buffer(&table, cfg, text, len, "config");
}

int config_load(const char *path, int noverrides, char **overrides, TrainConfig *cfg) {
    config_defaults(cfg);
    if (path) AIL_CHECK(options_load_file(&table, cfg, path));
    for (int i = 0; i < noverrides; i++) {
        char *eq = strchr(overrides[i], '=');
        if (!eq || eq == overrides[i])
            return AIL_ERROR(AIL_ERR_ARG, "override \"%s\" is not key=value", overrides[i]);
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(eq - overrides[i]), overrides[i]);
        AIL_CHECK(config_set(cfg, key, eq + 1));
    }
    return AIL_OK;
}

int config_validate(const TrainConfig *c, int world) {
    AIL_CHECK(options_check(&table, c));  // each key on its own; what follows spans several
    if (c->train_base && !c->out_model[0])
        return AIL_ERROR(AIL_ERR_ARG, "train_base = true needs out_model (where to write the trained model)");
    // tp checked before dividing by it; products in long long (the values are any int)
    int dp = c->dp ? c->dp : c->tp > 0 ? world / c->tp : 0;
    if (c->tp <= 0 || dp <= 0 || (long long)c->tp * dp != world)
        return AIL_ERROR(AIL_ERR_ARG, "tp (%d) x dp (%d) must equal the number of ranks (%d)", c->tp, dp, world);
    if (c->batch_size % ((long long)dp * c->grad_accum))
        return AIL_ERROR(AIL_ERR_ARG, "batch_size %d is not divisible by dp (%d) x grad_accum (%d)",
                         c->batch_size, dp, c->grad_accum);
    if (!strcmp(c->residual_dtype, "fp32") && !strcmp(c->device, "cuda") && !strcmp(c->precision, "bf16"))
        return AIL_ERROR(AIL_ERR_ARG, "residual_dtype = fp32 needs an fp32 engine: precision = bf16 holds weights in bf16 "
                                      "(use precision = fp32 or residual_dtype = model)");
    if (!strcmp(c->device, "cuda") && c->train_base)
        return AIL_ERROR(AIL_ERR_ARG, "train_base = true runs on device = cpu only");
    if (c->resume && c->overwrite)
        return AIL_ERROR(AIL_ERR_ARG, "resume = true and overwrite = true contradict each other: pick one");
    return AIL_OK;
}

char *config_dump(const TrainConfig *cfg) { return options_dump(&table, cfg); }

void config_help(FILE *out) { options_help(&table, out); }

const char *config_method_name(const TrainConfig *cfg) {
    return cfg->train_base ? "full" : init_method_name(cfg->method);
}
