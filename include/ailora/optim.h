/* optim.h - AdamW with PyTorch's semantics, learning-rate schedules, global-norm
 * gradient clipping, over a list of (parameter, gradient) arrays.
 *
 *   AdamW (torch.optim.AdamW, step t = 1, 2, ...):
 *     p -= lr * wd * p                                  decoupled decay
 *     m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *     p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   clipping (torch.nn.utils.clip_grad_norm_): norm = ||all g||_2, and if
 *     clip > 0: g *= min(1, clip / (norm + 1e-6))
 *   schedules (HF transformers' get_*_schedule_with_warmup, step s = 0, 1, ...):
 *     warmup s < w: lr * s / w;  then constant: lr;  linear: lr * (S - s) / (S - w);
 *     cosine: lr * (1 + cos(pi (s - w) / (S - w))) / 2   (S = total steps, floored at 0)
 */
#ifndef AILORA_OPTIM_H
#define AILORA_OPTIM_H

#include <stddef.h>

#include "ailora/llama.h"

typedef enum { SCHEDULE_CONSTANT = 0, SCHEDULE_LINEAR, SCHEDULE_COSINE } Schedule;

typedef struct {
    double lr, beta1, beta2, eps, weight_decay, grad_clip;
    Schedule schedule;
    int warmup_steps, total_steps;
} OptimConfig;

int schedule_parse(const char *name, Schedule *schedule);
const char *schedule_name(Schedule schedule);
/* Learning rate of optimizer step `step` (0-based). */
double optim_lr(const OptimConfig *cfg, int step);

typedef struct {
    real *p, *g;   /* parameter and gradient (not owned) */
    real *m, *v;   /* moments (owned) */
    size_t n;
} OptimParam;

typedef struct {
    OptimConfig cfg;
    int count;
    OptimParam *params;
    long step;     /* optimizer steps taken */
} AdamW;

/* One OptimParam for all base weights when llm trains them (llama_enable_base_grads),
 * then one per adapter A and B, in layer, module, A-then-B order. */
int adamw_init(AdamW *opt, const OptimConfig *cfg, Llama *llm);
void adamw_free(AdamW *opt);
/* Global L2 norm of all gradients (float64 accumulation). */
double adamw_grad_norm(const AdamW *opt);
/* Clips (if configured) with the given pre-clip norm, then takes one step at
 * optim_lr(cfg, opt->step). */
void adamw_step(AdamW *opt, double grad_norm);

#endif
