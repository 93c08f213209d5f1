/* optim.c - AdamW, schedules and clipping (see optim.h). */
#include "ailora/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"

static const char *const schedule_names[] = {"constant", "linear", "cosine"};

int schedule_parse(const char *name, Schedule *schedule) {
    for (int i = 0; i < 3; i++)
        if (strcmp(name, schedule_names[i]) == 0) {
            *schedule = (Schedule)i;
            return AIL_OK;
        }
    return AIL_ERROR(AIL_ERR_ARG, "unknown schedule \"%s\" (constant, linear, cosine)", name);
}

const char *schedule_name(Schedule schedule) { return schedule_names[schedule]; }

double optim_lr(const OptimConfig *c, int step) {
    if (step < c->warmup_steps) return c->lr * step / c->warmup_steps;
    double span = c->total_steps - c->warmup_steps, done = step - c->warmup_steps;
    switch (c->schedule) {
    case SCHEDULE_LINEAR: return span > 0 ? c->lr * fmax(0.0, (span - done) / span) : c->lr;
    case SCHEDULE_COSINE:
        return span > 0 ? c->lr * fmax(0.0, 0.5 * (1.0 + cos(M_PI * fmin(done / span, 1.0)))) : c->lr;
    default: return c->lr;
    }
}

int adamw_init(AdamW *opt, const OptimConfig *cfg, Llama *llm) {
    memset(opt, 0, sizeof *opt);
    opt->cfg = *cfg;
    for (int l = 0; l < llm->L; l++)
        for (int i = 0; i < LIN_COUNT; i++) opt->count += llm->layers[l].lora[i] ? 2 : 0;
    opt->count += llm->grad_storage ? 1 : 0;
    AIL_CALLOC(opt->params, opt->count);
    int k = 0;
    if (llm->grad_storage)  // full-parameter training: every base tensor, as one array
        opt->params[k++] = (OptimParam){.p = llm->storage, .g = llm->grad_storage, .n = llm->storage_size};
    for (int l = 0; l < llm->L; l++)
        for (int i = 0; i < LIN_COUNT; i++) {
            LoraAdapter *ad = llm->layers[l].lora[i];
            if (!ad) continue;
            opt->params[k++] = (OptimParam){.p = ad->A, .g = ad->dA, .n = (size_t)ad->r * ad->n};
            opt->params[k++] = (OptimParam){.p = ad->B, .g = ad->dB, .n = (size_t)ad->m * ad->r};
        }
    for (int i = 0; i < opt->count; i++) {
        opt->params[i].m = ail_calloc(opt->params[i].n, sizeof(real));
        opt->params[i].v = ail_calloc(opt->params[i].n, sizeof(real));
        if (!opt->params[i].m || !opt->params[i].v) {
            adamw_free(opt);
            return AIL_ERROR(AIL_ERR_MEM, "out of memory for optimizer state");
        }
    }
    return AIL_OK;
}

void adamw_free(AdamW *opt) {
    for (int i = 0; opt->params && i < opt->count; i++) free(opt->params[i].m), free(opt->params[i].v);
    free(opt->params);
    memset(opt, 0, sizeof *opt);
}

double adamw_grad_norm(const AdamW *opt) {
    double sum = 0.0;
    for (int i = 0; i < opt->count; i++)
        for (size_t j = 0; j < opt->params[i].n; j++) sum += (double)opt->params[i].g[j] * opt->params[i].g[j];
    return sqrt(sum);
}

void adamw_step(AdamW *opt, double grad_norm) {
    const OptimConfig *c = &opt->cfg;
    double clip = 1.0;
    if (c->grad_clip > 0) clip = fmin(1.0, c->grad_clip / (grad_norm + 1e-6));
    double lr = optim_lr(c, (int)opt->step);
    long t = ++opt->step;
    double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    real step_size = (real)(lr / bc1), bc2_sqrt = (real)sqrt(bc2), decay = (real)(1.0 - lr * c->weight_decay);
    real b1 = (real)c->beta1, b2 = (real)c->beta2, eps = (real)c->eps, cl = (real)clip;
    for (int i = 0; i < opt->count; i++) {
        OptimParam *q = &opt->params[i];
#pragma omp parallel for
        for (size_t j = 0; j < q->n; j++) {
            real g = q->g[j] * cl;
            q->p[j] *= decay;
            q->m[j] = b1 * q->m[j] + (1 - b1) * g;
            q->v[j] = b2 * q->v[j] + (1 - b2) * g * g;
            q->p[j] -= step_size * q->m[j] / (sqrtf(q->v[j]) / bc2_sqrt + eps);
        }
    }
}
