/* engine.h - where a training step runs: one interface, a CPU and a GPU engine.
 *
 * The training loop (train.c) drives every step through this interface and never
 * asks which device holds the model:
 *
 *   engine_zero_grads
 *   for each micro-batch:  engine_forward (sum of token losses)  engine_backward (1 / global scored)
 *   engine_allreduce_grads  tp partial sums of A (column-parallel), then the dp replicas
 *   engine_grad_norm        global L2 norm (shards summed over tp, replicated tensors once)
 *   engine_adamw_step       clip with that norm, AdamW at optim_lr(opt->step); opt->step += 1
 *   engine_sync(download)   adapters + moments between the engine and the host Llama / AdamW
 *                           (run files, checkpoints and mc scoring read the host copies)
 *
 * Evaluation: engine_generate_greedy decodes on the engine's device (cpu:
 * llama_generate_greedy on the host Llama; cuda: gpu_generate_greedy in the GPU
 * model's precision, nothing decoded on the host); engine_generate_end frees the
 * decoder's KV cache and work space until the next evaluation.
 *
 * cpu: the host Llama itself (llama.h), BLIS GEMMs, MPI all-reduces through one flat buffer.
 * cuda: a GpuModel (gpu.h) on this rank's GPU, NCCL communicators bootstrapped over MPI;
 *       the host Llama and AdamW are its staging copies.
 * Each call is local to the rank except the all-reduce and the norm (collective over
 * the tp and dp communicators); callers agree on errors (ail_error_agree) between calls.
 */
#ifndef AILORA_ENGINE_H
#define AILORA_ENGINE_H

#include <mpi.h>
#include <stdint.h>

#include "ailora/gpu.h"
#include "ailora/llama.h"
#include "ailora/llama_decode.h"
#include "ailora/optim.h"

typedef struct Engine Engine;

typedef struct {
    const char *name;
    int (*zero_grads)(Engine *e);
    int (*forward)(Engine *e, const int32_t *tokens, const int8_t *mask, const int32_t *labels, double *loss_sum,
                   long *scored);
    int (*backward)(Engine *e, const int32_t *labels, double loss_scale);
    int (*allreduce_grads)(Engine *e);
    int (*grad_norm)(Engine *e, double *norm);
    int (*adamw_step)(Engine *e, double norm);
    int (*sync)(Engine *e, int download);
    int (*generate)(Engine *e, int B, int S, const int32_t *prompts, const int8_t *mask, int P, int max_new,
                    const int32_t *eos, int neos, int32_t *out, int *out_len);
    void (*generate_end)(Engine *e);
    void (*free)(Engine *e);
} EngineOps;

struct Engine {
    const EngineOps *ops;
    Llama *llm;                 /* host model: the CPU engine's own, the GPU engine's staging copy */
    AdamW *opt;                 /* host optimizer state, same roles */
    MPI_Comm comm, tp_comm, dp_comm;
    int tp, dp;
    int B, T;                   /* micro-batch shape */
    /* cpu */
    LlamaActs acts;
    real *flat;                 /* gradient all-reduce buffer */
    size_t nflat;
    unsigned char *param_tp;    /* tp > 1: ENGINE_PARAM_* role of each optimizer parameter */
    LlamaKV kv;                 /* greedy decoding: the KV cache (kv_rows rows), allocated on demand */
    int kv_rows;
    /* cuda */
    GpuModel *gpu;
    GpuComm *gpu_tp, *gpu_dp;
};

enum { ENGINE_PARAM_SHARDED = 1, ENGINE_PARAM_TP_PARTIAL = 2 };

/* Collective over comm. device "cpu" or "cuda" (precision "bf16" | "fp32"); llm holds
 * this rank's shard with its adapters attached, opt is initialized over it (and, on a
 * resume, already holds the checkpoint's state, which the GPU engine uploads). */
int engine_create(Engine *e, const char *device, const char *precision, Llama *llm, AdamW *opt, MPI_Comm comm,
                  MPI_Comm tp_comm, MPI_Comm dp_comm, int B, int T);
void engine_free(Engine *e);

static inline int engine_zero_grads(Engine *e) { return e->ops->zero_grads(e); }
/* mask (B, T): attention mask of the micro-batch, NULL = no padding (llama_acts_set_mask);
 * it holds for the backward that follows. */
static inline int engine_forward(Engine *e, const int32_t *tokens, const int8_t *mask, const int32_t *labels,
                                 double *loss_sum, long *scored) {
    return e->ops->forward(e, tokens, mask, labels, loss_sum, scored);
}
static inline int engine_backward(Engine *e, const int32_t *labels, double loss_scale) {
    return e->ops->backward(e, labels, loss_scale);
}
static inline int engine_allreduce_grads(Engine *e) { return e->ops->allreduce_grads(e); }
static inline int engine_grad_norm(Engine *e, double *norm) { return e->ops->grad_norm(e, norm); }
static inline int engine_adamw_step(Engine *e, double norm) { return e->ops->adamw_step(e, norm); }
static inline int engine_sync(Engine *e, int download) { return e->ops->sync(e, download); }
/* Greedy decoding of B prompts left-padded to P slots (mask (B, P), NULL: all real),
 * exactly llama_generate_greedy's contract (llama_decode.h): up to max_new tokens
 * per row into out (B, max_new), a row stopping at its first eos (kept, counted in
 * out_len (B)). S >= P + max_new - 1: cache slots per row, the same in every call of
 * one evaluation so the cache is allocated once. Collective over tp_comm (every tp
 * rank follows tp rank 0's tokens). */
static inline int engine_generate_greedy(Engine *e, int B, int S, const int32_t *prompts, const int8_t *mask, int P,
                                         int max_new, const int32_t *eos, int neos, int32_t *out, int *out_len) {
    return e->ops->generate(e, B, S, prompts, mask, P, max_new, eos, neos, out, out_len);
}
static inline void engine_generate_end(Engine *e) { e->ops->generate_end(e); }

#endif
