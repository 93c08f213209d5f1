/* engine.c - the CPU and GPU training engines behind one interface (see engine.h). */
#include "ailora/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"

#ifdef AILORA_REAL_DOUBLE
#define MPI_REAL_T MPI_DOUBLE
#else
#define MPI_REAL_T MPI_FLOAT
#endif

/* ---- cpu ------------------------------------------------------------------------------ */

/* tp > 1: what each optimizer parameter (adapter A, B in adamw_init's order) is
 * under tensor parallelism, worked out once. */
static int param_tp_init(Engine *e) {
    AIL_CALLOC(e->param_tp, e->opt->count);
    int k = 0;
    for (int l = 0; l < e->llm->L; l++)
        for (int j = 0; j < LIN_COUNT; j++) {
            if (!e->llm->layers[l].lora[j]) continue;
            for (int ab = 0; ab < 2; ab++, k++)
                e->param_tp[k] = (llama_adapter_tp_sharded(e->llm, j, ab) ? ENGINE_PARAM_SHARDED : 0) |
                                 (ab == 0 && llama_adapter_tp_partial(e->llm, j) ? ENGINE_PARAM_TP_PARTIAL : 0);
        }
    return AIL_OK;
}

static int cpu_zero_grads(Engine *e) {
    llama_zero_grads(e->llm);
    return AIL_OK;
}

static int cpu_forward(Engine *e, const int32_t *tok, const int8_t *mask, const int32_t *lab, double *loss_sum,
                       long *scored) {
    AIL_CHECK(llama_acts_set_mask(&e->acts, mask));
    return llama_forward(e->llm, &e->acts, tok, lab, loss_sum, scored);
}

static int cpu_backward(Engine *e, const int32_t *lab, double loss_scale) {
    return llama_backward(e->llm, &e->acts, lab, loss_scale);
}

/* Sums gradients over comm through e->flat: all of them (mask 0) or those whose
 * param_tp has a bit of mask. */
static int allreduce_some(Engine *e, MPI_Comm comm, int mask) {
    const AdamW *opt = e->opt;
    size_t k = 0;
    for (int i = 0; i < opt->count; i++)
        if (!mask || (e->param_tp[i] & mask)) {
            memcpy(e->flat + k, opt->params[i].g, sizeof(real) * opt->params[i].n);
            k += opt->params[i].n;
        }
    // MPI counts are int: large gradient sets go in chunks
    for (size_t off = 0; off < k;) {
        int n = k - off > (size_t)1 << 30 ? 1 << 30 : (int)(k - off);
        if (MPI_Allreduce(MPI_IN_PLACE, e->flat + off, n, MPI_REAL_T, MPI_SUM, comm) != MPI_SUCCESS)
            return AIL_ERROR(AIL_ERR_MPI, "gradient all-reduce failed");
        off += (size_t)n;
    }
    k = 0;
    for (int i = 0; i < opt->count; i++)
        if (!mask || (e->param_tp[i] & mask)) {
            memcpy(opt->params[i].g, e->flat + k, sizeof(real) * opt->params[i].n);
            k += opt->params[i].n;
        }
    return AIL_OK;
}

/* Completes the tensor-parallel partial sums (A of column-parallel adapters), then
 * sums over the data-parallel replicas (loss_scale already divided by the global
 * scored count). */
static int cpu_allreduce_grads(Engine *e) {
    if (e->tp > 1) AIL_CHECK(allreduce_some(e, e->tp_comm, ENGINE_PARAM_TP_PARTIAL));
    if (e->dp > 1) AIL_CHECK(allreduce_some(e, e->dp_comm, 0));
    return AIL_OK;
}

/* Global gradient norm: shards summed over the tp ranks, replicated tensors once. */
static int cpu_grad_norm(Engine *e, double *norm) {
    if (e->tp == 1) {
        *norm = adamw_grad_norm(e->opt);
        return AIL_OK;
    }
    double sq[2] = {0, 0};  // sharded, replicated
    for (int i = 0; i < e->opt->count; i++) {
        const OptimParam *q = &e->opt->params[i];
        double s = 0;
        for (size_t j = 0; j < q->n; j++) s += (double)q->g[j] * q->g[j];
        sq[e->param_tp[i] & ENGINE_PARAM_SHARDED ? 0 : 1] += s;
    }
    if (MPI_Allreduce(MPI_IN_PLACE, sq, 1, MPI_DOUBLE, MPI_SUM, e->tp_comm) != MPI_SUCCESS)
        return AIL_ERROR(AIL_ERR_MPI, "gradient norm all-reduce failed");
    *norm = sqrt(sq[0] + sq[1]);
    return AIL_OK;
}

static int cpu_adamw_step(Engine *e, double norm) {
    adamw_step(e->opt, norm);
    return AIL_OK;
}

static int cpu_sync(Engine *e, int download) { return AIL_OK; }  // the host copies are the model

/* The host decoder: a cache of at least B rows x S slots and B * P prefill tokens
 * (grown on demand); a smaller batch uses the first B rows (the cache's layout is
 * per call: every call starts with a prefill). */
static int cpu_generate(Engine *e, int B, int S, const int32_t *prompts, const int8_t *mask, int P, int max_new,
                        const int32_t *eos, int neos, int32_t *out, int *out_len) {
    LlamaKV *kv = &e->kv;
    int rc = AIL_OK;
    if (!kv->k || B > e->kv_rows || S > kv->S || (long long)B * P > kv->max_tokens) {
        int rows = B > e->kv_rows ? B : e->kv_rows, slots = S > kv->S ? S : kv->S;
        int tokens = B * P > kv->max_tokens ? B * P : kv->max_tokens;
        llama_kv_free(kv);
        e->kv_rows = 0;
        rc = llama_kv_alloc(e->llm, rows, slots, tokens, kv);
        if (rc == AIL_OK) e->kv_rows = rows;
    }
    if (e->tp > 1) rc = ail_error_agree(e->tp_comm, rc);  // llama_generate_greedy is collective over tp
    if (rc != AIL_OK) return rc;
    kv->B = B;  // the first B rows
    rc = llama_generate_greedy(e->llm, kv, prompts, mask, P, max_new, eos, neos, out, out_len);
    kv->B = e->kv_rows;
    return rc;
}

static void cpu_generate_end(Engine *e) {
    llama_kv_free(&e->kv);
    e->kv_rows = 0;
}

static void cpu_free(Engine *e) {
    cpu_generate_end(e);
    llama_acts_free(&e->acts);
    free(e->flat);
    free(e->param_tp);
}

static const EngineOps cpu_ops = {"cpu", cpu_zero_grads, cpu_forward, cpu_backward, cpu_allreduce_grads,
                                  cpu_grad_norm, cpu_adamw_step, cpu_sync, cpu_generate, cpu_generate_end,
                                  cpu_free};

static int cpu_create(Engine *e) {
    AIL_CHECK(llama_acts_alloc(e->llm, e->B, e->T, &e->acts));
    for (int i = 0; i < e->opt->count; i++) e->nflat += e->opt->params[i].n;
    AIL_MALLOC(e->flat, e->nflat);
    if (e->tp > 1) AIL_CHECK(param_tp_init(e));
    return AIL_OK;
}

/* ---- cuda ----------------------------------------------------------------------------- */

static int gpu_zero_grads_op(Engine *e) { return gpu_zero_grads(e->gpu); }

/* The GPU model's NCCL all-reduces are queued inside these calls: a rank failing in
 * one leaves its partners blocked in NCCL, where no agreement reaches them. Under
 * tp (forward, backward, norm) or any parallelism (gradient all-reduce) such a
 * failure ends the job (ail_error_fatal); alone, it is an ordinary error. */
static int nccl_fatal(const Engine *e, int collective, int rc) {
    return collective ? ail_error_fatal(e->comm, rc) : rc;
}

static int gpu_forward_op(Engine *e, const int32_t *tok, const int8_t *mask, const int32_t *lab, double *loss_sum,
                          long *scored) {
    AIL_CHECK(gpu_set_mask(e->gpu, mask));  // host-side only: no collective
    return nccl_fatal(e, e->tp > 1, gpu_forward(e->gpu, tok, lab, loss_sum, scored));
}

static int gpu_backward_op(Engine *e, const int32_t *lab, double loss_scale) {
    return nccl_fatal(e, e->tp > 1, gpu_backward(e->gpu, loss_scale));
}

static int gpu_allreduce_op(Engine *e) {
    return nccl_fatal(e, e->tp > 1 || e->dp > 1, gpu_grads_allreduce(e->gpu, e->gpu_dp));
}

static int gpu_grad_norm_op(Engine *e, double *norm) { return nccl_fatal(e, e->tp > 1, gpu_grad_norm(e->gpu, norm)); }

static int gpu_adamw_step_op(Engine *e, double norm) {
    const OptimConfig *o = &e->opt->cfg;
    GpuAdamW g = {.lr = optim_lr(o, (int)e->opt->step), .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps,
                  .weight_decay = o->weight_decay, .grad_clip = o->grad_clip};
    AIL_CHECK(gpu_adamw_step(e->gpu, &g, e->opt->step + 1, norm));
    e->opt->step++;
    return AIL_OK;
}

/* Adapters and their moments between the GPU and the host copies. */
static int gpu_sync_op(Engine *e, int download) {
    int k = 0;
    for (int l = 0; l < e->llm->L; l++)
        for (int j = 0; j < LIN_COUNT; j++) {
            LoraAdapter *ad = e->llm->layers[l].lora[j];
            if (!ad) continue;
            OptimParam *a = &e->opt->params[k++], *b = &e->opt->params[k++];
            AIL_CHECK(download ? gpu_adapter_download(e->gpu, l, j, ad->A, ad->B, a->m, a->v, b->m, b->v)
                               : gpu_adapter_upload(e->gpu, l, j, ad->A, ad->B, a->m, a->v, b->m, b->v));
        }
    return AIL_OK;
}

/* On the GPU in the model's precision; the tokens of every step come from tp rank 0. */
static int gpu_generate_op(Engine *e, int B, int S, const int32_t *prompts, const int8_t *mask, int P, int max_new,
                           const int32_t *eos, int neos, int32_t *out, int *out_len) {
    return nccl_fatal(e, e->tp > 1, gpu_generate_greedy(e->gpu, B, S, prompts, mask, P, max_new, eos, neos, out,
                                                        out_len));
}

static void gpu_generate_end_op(Engine *e) { gpu_generate_free(e->gpu); }

static void gpu_free_op(Engine *e) {
    gpu_model_free(e->gpu);
    gpu_comm_free(e->gpu_tp);
    gpu_comm_free(e->gpu_dp);
}

static const EngineOps gpu_ops = {"cuda", gpu_zero_grads_op, gpu_forward_op, gpu_backward_op, gpu_allreduce_op,
                                  gpu_grad_norm_op, gpu_adamw_step_op, gpu_sync_op, gpu_generate_op,
                                  gpu_generate_end_op, gpu_free_op};

/* An NCCL communicator over comm (NULL when comm has one rank): rank 0's id is
 * broadcast over MPI. */
static int gpu_comm_over(MPI_Comm comm, GpuComm **out) {
    int n, r;
    MPI_Comm_size(comm, &n);
    MPI_Comm_rank(comm, &r);
    *out = NULL;
    if (n == 1) return AIL_OK;
    unsigned char id[128] = {0};
    int rc = r == 0 ? gpu_nccl_unique_id(id) : AIL_OK;
    AIL_CHECK(ail_error_agree(comm, rc));
    MPI_Bcast(id, 128, MPI_BYTE, 0, comm);
    return ail_error_agree(comm, gpu_comm_create(id, n, r, out));
}

/* Uploads this rank's shard (residual weights, adapters, moments) to its GPU; ranks
 * of a node take its GPUs in turn. */
static int gpu_create_engine(Engine *e, const char *precision) {
    MPI_Comm node;
    int local;
    MPI_Comm_split_type(e->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
    int rc = gpu_device_count() > 0 ? gpu_select_device(local)
                                    : AIL_ERROR(AIL_ERR_ARG, "device = cuda: no CUDA device visible");
    AIL_CHECK(ail_error_agree(e->comm, rc));
    AIL_CHECK(gpu_comm_over(e->tp_comm, &e->gpu_tp));
    AIL_CHECK(gpu_comm_over(e->dp_comm, &e->gpu_dp));
    const Llama *l = e->llm;
    GpuLayerSpec *layers = ail_calloc((size_t)l->L, sizeof *layers);
    rc = layers ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int i = 0; layers && i < l->L; i++) {
        const LlamaLayer *ly = &l->layers[i];
        layers[i].ln1 = ly->ln1, layers[i].ln2 = ly->ln2;
        for (int j = 0; j < LIN_COUNT; j++) {
            layers[i].w[j] = ly->w[j];
            const LoraAdapter *ad = ly->lora[j];
            if (ad) layers[i].lora[j] = (GpuAdapterSpec){.m = ad->m, .n = ad->n, .r = ad->r, .scale = ad->scale,
                                                         .A = ad->A, .B = ad->B};
        }
        for (int j = 0; j < LIN_COUNT; j++) layers[i].bias[j] = ly->bias[j];
    }
    GpuModelSpec spec = {.H = l->H, .I = l->I, .V = l->V, .L = l->L, .nh = l->nh, .nkv = l->nkv, .hd = l->hd,
                         .rms_eps = l->cfg.rms_norm_eps, .max_pos = l->cfg.max_position_embeddings,
                         .rope_cos = l->rope_cos, .rope_sin = l->rope_sin, .embed = l->embed,
                         .final_norm = l->final_norm, .lm_head = l->lm_head, .layers = layers,
                         .tp_size = l->tp_size, .tp_rank = l->tp_rank};
    GpuPrecision prec = strcmp(precision, "fp32") == 0 ? GPU_FP32 : GPU_BF16;
    if (rc == AIL_OK) rc = gpu_model_create(&spec, prec, e->B, e->T, e->gpu_tp, &e->gpu);
    free(layers);
    AIL_CHECK(ail_error_agree(e->comm, rc));
    return ail_error_agree(e->comm, gpu_sync_op(e, 0));  // the host state (fresh or resumed) moves to the GPU
}

/* ---- both ----------------------------------------------------------------------------- */

int engine_create(Engine *e, const char *device, const char *precision, Llama *llm, AdamW *opt, MPI_Comm comm,
                  MPI_Comm tp_comm, MPI_Comm dp_comm, int B, int T) {
    memset(e, 0, sizeof *e);
    *e = (Engine){.llm = llm, .opt = opt, .comm = comm, .tp_comm = tp_comm, .dp_comm = dp_comm, .B = B, .T = T};
    MPI_Comm_size(tp_comm, &e->tp);
    MPI_Comm_size(dp_comm, &e->dp);
    if (strcmp(device, "cuda") == 0) {
        e->ops = &gpu_ops;
        return gpu_create_engine(e, precision);
    }
    e->ops = &cpu_ops;
    return ail_error_agree(comm, cpu_create(e));
}

void engine_free(Engine *e) {
    if (e->ops) e->ops->free(e);
    memset(e, 0, sizeof *e);
}
