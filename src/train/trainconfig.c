/* trainconfig.c - the table of `ailora train` keys, their parsing and printing. */
#include "ailora/trainconfig.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"

typedef enum { K_STR, K_INT, K_LLONG, K_DOUBLE, K_BOOL, K_METHOD, K_SCHEDULE } KeyType;

typedef struct {
    const char *name;
    KeyType type;
    size_t offset;
    size_t size;        /* for strings */
    const char *fallback;
    const char *doc;
} Key;

#define F(field) offsetof(TrainConfig, field)
#define S(field) sizeof(((TrainConfig *)0)->field)
static const Key keys[] = {
    {"model", K_STR, F(model), S(model), "", "HF model directory (config.json + safetensors)"},
    {"svd_cache", K_STR, F(svd_cache), S(svd_cache), "", "SVD cache from `ailora svd` (empty: compute)"},
    {"train_data", K_STR, F(train_data), S(train_data), "", "training set: HDF5 /input_ids, /labels [N, T] int32"},
    {"eval_data", K_STR, F(eval_data), S(eval_data), "", "evaluation set, same format (empty: none)"},
    {"out", K_STR, F(out), S(out), "", "run file to write (HDF5); checkpoints go next to it"},
    {"resume", K_BOOL, F(resume), 0, "false", "continue the run in `out` from its latest checkpoint"},
    {"task", K_STR, F(task), S(task), "", "task name recorded in the run file"},
    {"train_base", K_BOOL, F(train_base), 0, "false", "train every base weight (pretraining) instead of adapters"},
    {"out_model", K_STR, F(out_model), S(out_model), "", "train_base: write the trained model here (HF directory)"},
    {"targets", K_STR, F(targets), S(targets), "q_proj,v_proj", "adapted module suffixes"},
    {"method", K_METHOD, F(method), 0, "ailora", "lora | pissa | milora | ailora | ratio"},
    {"rank", K_INT, F(rank), 0, "8", "adapter rank r"},
    {"alpha", K_DOUBLE, F(alpha), 0, "0", "LoRA alpha; 0 means r (s = 1)"},
    {"ratio_q", K_DOUBLE, F(ratio_q), 0, "1", "ratio: principal fraction of q_proj"},
    {"ratio_v", K_DOUBLE, F(ratio_v), 0, "0", "ratio: principal fraction of v_proj"},
    {"ratio_other", K_DOUBLE, F(ratio_other), 0, "1", "ailora/ratio: principal fraction of other targets"},
    {"lora_init", K_STR, F(lora_init), S(lora_init), "kaiming", "lora: kaiming | gaussian"},
    {"seed", K_LLONG, F(seed), 0, "0", "seed of adapters (lora) and data order"},
    {"steps", K_INT, F(steps), 0, "100", "optimizer steps"},
    {"batch_size", K_INT, F(batch_size), 0, "8", "global sequences per optimizer step"},
    {"grad_accum", K_INT, F(grad_accum), 0, "1", "micro-batches per optimizer step (per rank)"},
    {"shuffle", K_BOOL, F(shuffle), 0, "true", "reshuffle the training set every epoch (seeded)"},
    {"lr", K_DOUBLE, F(optim.lr), 0, "1e-4", "peak learning rate"},
    {"schedule", K_SCHEDULE, F(optim.schedule), 0, "constant", "constant | linear | cosine (after warmup)"},
    {"warmup_steps", K_INT, F(optim.warmup_steps), 0, "0", "linear warmup steps"},
    {"weight_decay", K_DOUBLE, F(optim.weight_decay), 0, "0", "AdamW decoupled weight decay"},
    {"beta1", K_DOUBLE, F(optim.beta1), 0, "0.9", "AdamW beta1"},
    {"beta2", K_DOUBLE, F(optim.beta2), 0, "0.999", "AdamW beta2"},
    {"eps", K_DOUBLE, F(optim.eps), 0, "1e-8", "AdamW epsilon"},
    {"grad_clip", K_DOUBLE, F(optim.grad_clip), 0, "1.0", "max global gradient norm (0 = off)"},
    {"log_every", K_INT, F(log_every), 0, "10", "steps between progress lines"},
    {"eval_every", K_INT, F(eval_every), 0, "0", "steps between evaluations (0: only at the end)"},
    {"eval_batches", K_INT, F(eval_batches), 0, "0", "evaluation batches (0: the whole eval set)"},
    {"max_new_tokens", K_INT, F(max_new_tokens), 0, "0", "greedy decoding budget for exact match (0: off)"},
    {"checkpoint_every", K_INT, F(checkpoint_every), 0, "0", "steps between checkpoints (0: only at the end)"},
    {"tp", K_INT, F(tp), 0, "1", "tensor-parallel ranks per model replica (Megatron layout)"},
    {"dp", K_INT, F(dp), 0, "0", "data-parallel ranks (0: world size / tp)"},
    {"device", K_STR, F(device), S(device), "cpu", "cpu | cuda (one GPU per rank: ranks on a node take GPUs in turn)"},
    {"precision", K_STR, F(precision), S(precision), "bf16", "cuda: bf16 (weights, activations; fp32 adapters) | fp32"},
    {"preempt_at_step", K_INT, F(preempt_at_step), 0, "0",
     "act as if SIGUSR1 arrived after this step (requeue drills, tests; 0 = off)"},
};
#undef F
#undef S
#define NKEYS (int)(sizeof keys / sizeof *keys)

static const Key *key_find(const char *name) {
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

static int parse_bool(const char *v, int *out) {
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *out = 0;
    else return 0;
    return 1;
}

int config_set(TrainConfig *cfg, const char *name, const char *value) {
    const Key *k = key_find(name);
    if (!k) return AIL_ERROR(AIL_ERR_ARG, "unknown config key \"%s\" (see ailora train --help)", name);
    char *field = (char *)cfg + k->offset, *end;
    errno = 0;
    switch (k->type) {
    case K_STR:
        if (strlen(value) >= k->size) return AIL_ERROR(AIL_ERR_ARG, "config key %s: value too long", name);
        memcpy(field, value, strlen(value) + 1);
        return AIL_OK;
    case K_INT: case K_LLONG: {
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || (k->type == K_INT && (v < -2147483647LL || v > 2147483647LL)))
            return AIL_ERROR(AIL_ERR_ARG, "config key %s expects an integer, got \"%s\"", name, value);
        if (k->type == K_INT) *(int *)field = (int)v;
        else *(long long *)field = v;
        return AIL_OK;
    }
    case K_DOUBLE: {
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v))
            return AIL_ERROR(AIL_ERR_ARG, "config key %s expects a number, got \"%s\"", name, value);
        *(double *)field = v;
        return AIL_OK;
    }
    case K_BOOL:
        if (!parse_bool(value, (int *)field))
            return AIL_ERROR(AIL_ERR_ARG, "config key %s expects true or false, got \"%s\"", name, value);
        return AIL_OK;
    case K_METHOD: return init_method_parse(value, (InitMethod *)field);
    case K_SCHEDULE: return schedule_parse(value, (Schedule *)field);
    }
    return AIL_OK;
}

void config_defaults(TrainConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < NKEYS; i++) config_set(cfg, keys[i].name, keys[i].fallback);
}

typedef struct {
    TrainConfig *cfg;
    int rc;
    char message[1024];
} IniState;

/* inih handler (Debian builds inih without line numbers: a handler returning 0
 * makes ini_parse_file report that line, which we then put in the message). */
static int ini_entry(void *user, const char *section, const char *name, const char *value) {
    IniState *st = user;
    (void)section;
    if (st->rc != AIL_OK) return 1;  // report only the first bad key
    if (config_set(st->cfg, name, value) != AIL_OK) {
        snprintf(st->message, sizeof st->message, "%s", ail_error_message());
        ail_error_clear();
        st->rc = AIL_ERR_ARG;
        return 0;
    }
    return 1;
}

int config_load(const char *path, int noverrides, char **overrides, TrainConfig *cfg) {
    config_defaults(cfg);
    if (path) {
        FILE *f = fopen(path, "r");
        if (!f) return AIL_ERROR(AIL_ERR_IO, "cannot open config %s: %s", path, strerror(errno));
        IniState st = {cfg, AIL_OK, ""};
        int line = ini_parse_file(f, ini_entry, &st);
        fclose(f);
        if (st.rc != AIL_OK) return AIL_ERROR(AIL_ERR_ARG, "%s:%d: %s", path, line, st.message);
        if (line != 0) return AIL_ERROR(AIL_ERR_FORMAT, "%s:%d: not a key = value line", path, line);
    }
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
    const char *required[] = {c->model, c->train_data, c->out};
    const char *names[] = {"model", "train_data", "out"};
    for (int i = 0; i < 3; i++)
        if (!required[i][0]) return AIL_ERROR(AIL_ERR_ARG, "config key %s is required", names[i]);
    if (c->rank <= 0) return AIL_ERROR(AIL_ERR_ARG, "rank must be positive");
    if (c->train_base && !c->out_model[0])
        return AIL_ERROR(AIL_ERR_ARG, "train_base = true needs out_model (where to write the trained model)");
    if (c->steps <= 0 || c->batch_size <= 0 || c->grad_accum <= 0)
        return AIL_ERROR(AIL_ERR_ARG, "steps, batch_size and grad_accum must be positive");
    int dp = c->dp ? c->dp : world / c->tp;
    if (c->tp <= 0 || dp <= 0 || c->tp * dp != world)
        return AIL_ERROR(AIL_ERR_ARG, "tp (%d) x dp (%d) must equal the number of ranks (%d)", c->tp, dp, world);
    if (c->batch_size % (dp * c->grad_accum))
        return AIL_ERROR(AIL_ERR_ARG, "batch_size %d is not divisible by dp (%d) x grad_accum (%d)",
                         c->batch_size, dp, c->grad_accum);
    if (c->optim.lr < 0 || c->optim.beta1 < 0 || c->optim.beta1 >= 1 || c->optim.beta2 < 0 ||
        c->optim.beta2 >= 1 || c->optim.eps <= 0 || c->optim.grad_clip < 0 || c->optim.weight_decay < 0)
        return AIL_ERROR(AIL_ERR_ARG, "optimizer settings out of range (lr >= 0, 0 <= beta < 1, eps > 0)");
    if (strcmp(c->lora_init, "kaiming") && strcmp(c->lora_init, "gaussian"))
        return AIL_ERROR(AIL_ERR_ARG, "lora_init must be kaiming or gaussian");
    if (strcmp(c->device, "cpu") && strcmp(c->device, "cuda"))
        return AIL_ERROR(AIL_ERR_ARG, "device must be cpu or cuda, got \"%s\"", c->device);
    if (strcmp(c->precision, "bf16") && strcmp(c->precision, "fp32"))
        return AIL_ERROR(AIL_ERR_ARG, "precision must be bf16 or fp32, got \"%s\"", c->precision);
    if (!strcmp(c->device, "cuda") && c->train_base)
        return AIL_ERROR(AIL_ERR_ARG, "train_base = true runs on device = cpu only");
    double ratios[3] = {c->ratio_q, c->ratio_v, c->ratio_other};
    for (int i = 0; i < 3; i++)
        if (!(ratios[i] >= 0 && ratios[i] <= 1)) return AIL_ERROR(AIL_ERR_ARG, "ratios must lie in [0, 1]");
    return AIL_OK;
}

static void value_text(const TrainConfig *cfg, const Key *k, char *buf, size_t len) {
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case K_STR: snprintf(buf, len, "%s", field); break;
    case K_INT: snprintf(buf, len, "%d", *(const int *)field); break;
    case K_LLONG: snprintf(buf, len, "%lld", *(const long long *)field); break;
    case K_DOUBLE: snprintf(buf, len, "%.17g", *(const double *)field); break;
    case K_BOOL: snprintf(buf, len, "%s", *(const int *)field ? "true" : "false"); break;
    case K_METHOD: snprintf(buf, len, "%s", init_method_name(*(const InitMethod *)field)); break;
    case K_SCHEDULE: snprintf(buf, len, "%s", schedule_name(*(const Schedule *)field)); break;
    }
}

char *config_dump(const TrainConfig *cfg) {
    size_t cap = 16384, used = 0;
    char *text = ail_malloc(cap), value[1100];
    if (!text) return NULL;
    text[0] = '\0';
    for (int i = 0; i < NKEYS; i++) {
        value_text(cfg, &keys[i], value, sizeof value);
        used += (size_t)snprintf(text + used, cap - used, "%s = %s\n", keys[i].name, value);
        if (used >= cap - 1200) break;
    }
    return text;
}

void config_help(FILE *out) {
    fprintf(out, "config keys (file: key = value lines; command line: key=value):\n");
    for (int i = 0; i < NKEYS; i++)
        fprintf(out, "  %-17s %-14s %s\n", keys[i].name, keys[i].fallback[0] ? keys[i].fallback : "\"\"", keys[i].doc);
}

const char *config_method_name(const TrainConfig *cfg) {
    return cfg->train_base ? "full" : init_method_name(cfg->method);
}
