/* train.c - the training loop of `ailora train` (see train.h). */
#include "ailora/train.h"

#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ailora/dataset.h"
#include "ailora/error.h"
#include "ailora/eval.h"
#include "ailora/runfile.h"
#include "ailora/svdcache.h"
#include "ailora/gpu.h"
#include "ailora/safetensors.h"
#include "ailora/adapter.h"

static volatile sig_atomic_t g_stop_signal = 0;

static void on_signal(int sig) { g_stop_signal = sig; }

void train_install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

void train_checkpoint_path(const char *out, char *buf, size_t len) { snprintf(buf, len, "%s.ckpt.h5", out); }

typedef struct {
    MPI_Comm comm;             /* world = tp x dp ranks; rank = dp_rank * tp + tp_rank */
    MPI_Comm tp_comm, dp_comm; /* the ranks of one model replica; the replicas of one shard */
    int rank, tp, dp, tp_rank, dp_rank;
    const TrainConfig *cfg;
    HFModel model;
    TargetModule *targets;
    int ntargets;
    Llama llm;                 /* this rank's shard */
    ModuleInit *init;
    Dataset train, eval;
    LlamaActs acts;
    int micro;       /* sequences per replica per micro-batch */
    AdamW opt;
    Llama whole;     /* tp > 1: whole-module adapters, for run files and checkpoints */
    AdamW whole_opt; /* tp > 1: whole-module moments, same order as opt */
    RunState st;
    char *config_text;
    real *flat;      /* gradient all-reduce buffer */
    size_t nflat;
    unsigned char *param_tp; /* tp > 1: PARAM_* flags of each optimizer parameter */
    GpuModel *gpu;   /* device = cuda: the model on this rank's GPU (else NULL) */
    GpuComm *gpu_tp, *gpu_dp;
} Trainer;

#ifdef AILORA_REAL_DOUBLE
#define MPI_REAL_T MPI_DOUBLE
#else
#define MPI_REAL_T MPI_FLOAT
#endif

enum { PARAM_SHARDED = 1, PARAM_TP_PARTIAL = 2 };

/* tp > 1: what each optimizer parameter (adapter A, B in adamw_init's order) is
 * under tensor parallelism, worked out once. */
static int param_tp_init(Trainer *tr) {
    AIL_CALLOC(tr->param_tp, tr->opt.count);
    int k = 0;
    for (int l = 0; l < tr->llm.L; l++)
        for (int j = 0; j < LIN_COUNT; j++) {
            if (!tr->llm.layers[l].lora[j]) continue;
            for (int ab = 0; ab < 2; ab++, k++)
                tr->param_tp[k] = (llama_adapter_tp_sharded(&tr->llm, j, ab) ? PARAM_SHARDED : 0) |
                                  (ab == 0 && llama_adapter_tp_partial(&tr->llm, j) ? PARAM_TP_PARTIAL : 0);
        }
    return AIL_OK;
}

/* Sums gradients over comm through tr->flat: all of them (mask 0) or those whose
 * param_tp has a bit of mask. */
static int allreduce_some(Trainer *tr, MPI_Comm comm, int mask) {
    size_t k = 0;
    for (int i = 0; i < tr->opt.count; i++)
        if (!mask || (tr->param_tp[i] & mask)) {
            memcpy(tr->flat + k, tr->opt.params[i].g, sizeof(real) * tr->opt.params[i].n);
            k += tr->opt.params[i].n;
        }
    if (k && MPI_Allreduce(MPI_IN_PLACE, tr->flat, (int)k, MPI_REAL_T, MPI_SUM, comm) != MPI_SUCCESS)
        return AIL_ERROR(AIL_ERR_MPI, "gradient all-reduce failed");
    k = 0;
    for (int i = 0; i < tr->opt.count; i++)
        if (!mask || (tr->param_tp[i] & mask)) {
            memcpy(tr->opt.params[i].g, tr->flat + k, sizeof(real) * tr->opt.params[i].n);
            k += tr->opt.params[i].n;
        }
    return AIL_OK;
}

/* Completes the tensor-parallel partial sums (A of column-parallel adapters), then
 * sums over the data-parallel replicas (loss_scale already divided by the global
 * scored count). */
static int allreduce_grads(Trainer *tr) {
    if (tr->tp > 1) AIL_CHECK(allreduce_some(tr, tr->tp_comm, PARAM_TP_PARTIAL));
    if (tr->dp > 1) AIL_CHECK(allreduce_some(tr, tr->dp_comm, 0));
    return AIL_OK;
}

/* Global gradient norm: shards summed over the tp ranks, replicated tensors once. */
static double grad_norm(const Trainer *tr) {
    if (tr->tp == 1) return adamw_grad_norm(&tr->opt);
    double sq[2] = {0, 0};  // sharded, replicated
    for (int i = 0; i < tr->opt.count; i++) {
        const OptimParam *q = &tr->opt.params[i];
        double s = 0;
        for (size_t j = 0; j < q->n; j++) s += (double)q->g[j] * q->g[j];
        sq[tr->param_tp[i] & PARAM_SHARDED ? 0 : 1] += s;
    }
    MPI_Allreduce(MPI_IN_PLACE, sq, 1, MPI_DOUBLE, MPI_SUM, tr->tp_comm);
    return sqrt(sq[0] + sq[1]);
}

/* ---- whole-module adapters under tensor parallelism ------------------------------ */

/* Copies between this rank's shard (rows x cols of the local tensor) and the whole
 * tensor: a tensor split by rows is the concatenation of the shards, one split by
 * columns interleaves them. gather: all-gather into whole; else slice whole. */
static int shard_copy(const Trainer *tr, int gather, int split_cols, int rows, int cols, real *local, real *whole) {
    int tp = tr->tp, rk = tr->tp_rank;
    size_t n = (size_t)rows * cols;
    if (!split_cols) {
        if (!gather) {
            memcpy(local, whole + (size_t)rk * n, sizeof(real) * n);
            return AIL_OK;
        }
        return MPI_Allgather(local, (int)n, MPI_REAL_T, whole, (int)n, MPI_REAL_T, tr->tp_comm) == MPI_SUCCESS
                   ? AIL_OK : AIL_ERROR(AIL_ERR_MPI, "tensor-parallel gather failed");
    }
    size_t wc = (size_t)cols * tp;
    if (!gather) {
        for (int i = 0; i < rows; i++) memcpy(local + (size_t)i * cols, whole + i * wc + (size_t)rk * cols, sizeof(real) * cols);
        return AIL_OK;
    }
    real *all = malloc(sizeof(real) * n * tp);
    if (!all) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    int rc = MPI_Allgather(local, (int)n, MPI_REAL_T, all, (int)n, MPI_REAL_T, tr->tp_comm) == MPI_SUCCESS
                 ? AIL_OK : AIL_ERROR(AIL_ERR_MPI, "tensor-parallel gather failed");
    for (int p = 0; p < tp && rc == AIL_OK; p++)
        for (int i = 0; i < rows; i++) memcpy(whole + i * wc + (size_t)p * cols, all + (size_t)p * n + (size_t)i * cols, sizeof(real) * cols);
    free(all);
    return rc;
}

/* Allocates tr->whole / tr->whole_opt: the adapters and moments at module shape. */
static int whole_alloc(Trainer *tr) {
    Llama *w = &tr->whole;
    w->L = tr->llm.L;
    AIL_CALLOC(w->layers, w->L);
    AdamW *o = &tr->whole_opt;
    o->count = tr->opt.count;
    AIL_CALLOC(o->params, o->count);
    int k = 0;
    for (int l = 0; l < w->L; l++)
        for (int j = 0; j < LIN_COUNT; j++) {
            const LoraAdapter *ad = tr->llm.layers[l].lora[j];
            if (!ad) continue;
            LoraAdapter *wa;
            AIL_CALLOC(wa, 1);
            w->layers[l].lora[j] = wa;
            *wa = (LoraAdapter){.m = ad->m * (llama_adapter_tp_sharded(&tr->llm, j, 1) ? tr->tp : 1),
                                .n = ad->n * (llama_adapter_tp_sharded(&tr->llm, j, 0) ? tr->tp : 1),
                                .r = ad->r, .scale = ad->scale};
            AIL_MALLOC(wa->A, (size_t)wa->r * wa->n);
            AIL_MALLOC(wa->B, (size_t)wa->m * wa->r);
            for (int ab = 0; ab < 2; ab++, k++) {
                OptimParam *q = &o->params[k];
                q->n = ab ? (size_t)wa->m * wa->r : (size_t)wa->r * wa->n;
                AIL_MALLOC(q->m, q->n);
                AIL_MALLOC(q->v, q->n);
            }
        }
    return AIL_OK;
}

static void whole_free(Trainer *tr) {
    for (int l = 0; tr->whole.layers && l < tr->whole.L; l++)
        for (int j = 0; j < LIN_COUNT; j++) {
            LoraAdapter *wa = tr->whole.layers[l].lora[j];
            if (wa) free(wa->A), free(wa->B), free(wa);
        }
    free(tr->whole.layers);
    for (int i = 0; tr->whole_opt.params && i < tr->whole_opt.count; i++)
        free(tr->whole_opt.params[i].m), free(tr->whole_opt.params[i].v);
    free(tr->whole_opt.params);
}

/* gather: shards -> whole (collective over tp); else whole -> this rank's shards. */
static int whole_sync(Trainer *tr, int gather) {
    int k = 0;
    for (int l = 0; l < tr->llm.L; l++)
        for (int j = 0; j < LIN_COUNT; j++) {
            LoraAdapter *ad = tr->llm.layers[l].lora[j], *wa = tr->whole.layers[l].lora[j];
            if (!ad) continue;
            for (int ab = 0; ab < 2; ab++, k++) {
                int rows = ab ? ad->m : ad->r, cols = ab ? ad->r : ad->n;
                int split_cols = ab == 0;  // A shards are columns (row-parallel), B shards rows
                real *loc[3] = {ab ? ad->B : ad->A, tr->opt.params[k].m, tr->opt.params[k].v};
                real *all[3] = {ab ? wa->B : wa->A, tr->whole_opt.params[k].m, tr->whole_opt.params[k].v};
                for (int x = 0; x < 3; x++) {
                    if (llama_adapter_tp_sharded(&tr->llm, j, ab))
                        AIL_CHECK(shard_copy(tr, gather, split_cols, rows, cols, loc[x], all[x]));
                    else if (gather)
                        memcpy(all[x], loc[x], sizeof(real) * (size_t)rows * cols);
                    else
                        memcpy(loc[x], all[x], sizeof(real) * (size_t)rows * cols);
                }
            }
        }
    if (gather) tr->whole_opt.step = tr->opt.step;
    else tr->opt.step = tr->whole_opt.step;
    return AIL_OK;
}

/* ---- device = cuda ------------------------------------------------------------------ */

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

/* Uploads this rank's shard (residual weights, adapters) to its GPU. */
static int gpu_setup(Trainer *tr) {
    MPI_Comm node;
    int local;
    MPI_Comm_split_type(tr->comm, MPI_COMM_TYPE_SHARED, tr->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
    int rc = gpu_device_count() > 0 ? gpu_select_device(local)
                                    : AIL_ERROR(AIL_ERR_ARG, "device = cuda: no CUDA device visible");
    AIL_CHECK(ail_error_agree(tr->comm, rc));
    AIL_CHECK(gpu_comm_over(tr->tp_comm, &tr->gpu_tp));
    AIL_CHECK(gpu_comm_over(tr->dp_comm, &tr->gpu_dp));
    const Llama *l = &tr->llm;
    GpuLayerSpec *layers;
    AIL_CALLOC(layers, l->L);
    for (int i = 0; i < l->L; i++) {
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
    GpuPrecision prec = strcmp(tr->cfg->precision, "fp32") == 0 ? GPU_FP32 : GPU_BF16;
    rc = gpu_model_create(&spec, prec, tr->micro, tr->train.T, tr->gpu_tp, &tr->gpu);
    free(layers);
    return ail_error_agree(tr->comm, rc);
}

/* Adapters and their moments between the GPU and the host copies (run files,
 * checkpoints, greedy decoding on the host). */
static int gpu_sync(Trainer *tr, int download) {
    int k = 0;
    for (int l = 0; l < tr->llm.L; l++)
        for (int j = 0; j < LIN_COUNT; j++) {
            LoraAdapter *ad = tr->llm.layers[l].lora[j];
            if (!ad) continue;
            OptimParam *a = &tr->opt.params[k++], *b = &tr->opt.params[k++];
            AIL_CHECK(download ? gpu_adapter_download(tr->gpu, l, j, ad->A, ad->B, a->m, a->v, b->m, b->v)
                               : gpu_adapter_upload(tr->gpu, l, j, ad->A, ad->B, a->m, a->v, b->m, b->v));
        }
    return AIL_OK;
}

static void gpu_teardown(Trainer *tr) {
    gpu_model_free(tr->gpu);
    gpu_comm_free(tr->gpu_tp);
    gpu_comm_free(tr->gpu_dp);
}

/* One micro-batch forward on whichever device holds the model. */
static int model_forward(Trainer *tr, const int32_t *tok, const int32_t *lab, double *s, long *count) {
    return tr->gpu ? gpu_forward(tr->gpu, tok, lab, s, count) : llama_forward(&tr->llm, &tr->acts, tok, lab, s, count);
}

/* The frozen weight of target t becomes its residual W - s B A, computed in float64
 * from the file for this rank's block only and rounded once to our precision. */
static int set_residual(Trainer *tr, const TargetModule *t, const ModuleInit *mi, int r, double scale) {
    int lin = llama_linear_index(t->suffix);
    int tp = tr->llm.tp_size, rk = tr->llm.tp_rank;
    int row_par = llama_adapter_tp_sharded(&tr->llm, lin, 0);  // A split by columns: so is W
    int nr = row_par ? t->m : t->m / tp, nc = row_par ? t->n / tp : t->n;
    int r0 = row_par ? 0 : nr * rk, c0 = row_par ? nc * rk : 0;
    double *W = malloc(sizeof(double) * (size_t)nr * nc), *Wres = malloc(sizeof(double) * (size_t)nr * nc);
    double *A = malloc(sizeof(double) * (size_t)r * nc);
    int rc = W && Wres && A ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for the residual of %s", t->name);
    if (rc == AIL_OK) {
        safetensor_block_f64(t->weight, r0, nr, c0, nc, W);
        for (int i = 0; i < r; i++) memcpy(A + (size_t)i * nc, mi->A + (size_t)i * t->n + c0, sizeof(double) * nc);
        adapter_residual(nr, nc, r, scale, W, A, mi->B + (size_t)r0 * r, Wres);
        real *w = tr->llm.layers[t->layer].w[lin];
        for (size_t j = 0; j < (size_t)nr * nc; j++) w[j] = (real)Wres[j];
    }
    free(W), free(Wres), free(A);
    return rc;
}

/* Adapters and residuals from the SVD cache (computed first if none is given). */
static int setup_adapters(Trainer *tr) {
    const TrainConfig *c = tr->cfg;
    char cache_path[1100];
    if (c->svd_cache[0]) {
        snprintf(cache_path, sizeof cache_path, "%s", c->svd_cache);
    } else {  // computed once next to the run file and reused by resumes
        snprintf(cache_path, sizeof cache_path, "%s.svd.h5", c->out);
        struct stat sb;
        int have = stat(cache_path, &sb) == 0;
        MPI_Bcast(&have, 1, MPI_INT, 0, tr->comm);
        if (!have) {
            SvdOptions so = {.backend = SVD_BACKEND_AUTO, .block_size = 64,
                             .max_rank_bytes = svd_default_rank_bytes(tr->comm)};
            AIL_CHECK(svdcache_write(tr->comm, &tr->model, tr->targets, tr->ntargets, &so, cache_path));
        }
    }
    InitSpec spec = {.method = c->method, .rank = c->rank, .alpha = c->alpha, .ratio_q = c->ratio_q,
                     .ratio_v = c->ratio_v, .ratio_other = c->ratio_other, .seed = (uint64_t)c->seed,
                     .lora_gaussian = strcmp(c->lora_init, "gaussian") == 0};
    AIL_CHECK(init_spec_validate(&spec));
    for (int i = 0; i < tr->ntargets; i++) {
        int k = tr->targets[i].m < tr->targets[i].n ? tr->targets[i].m : tr->targets[i].n;
        if (spec.rank > k)
            return AIL_ERROR(AIL_ERR_ARG, "rank %d exceeds min(m, n) = %d of %s", spec.rank, k, tr->targets[i].name);
    }
    hid_t cache;
    AIL_CHECK(svdcache_open(cache_path, tr->targets, tr->ntargets, &cache));
    AIL_CALLOC(tr->init, tr->ntargets);
    int rc = AIL_OK;
    for (int i = 0; i < tr->ntargets && rc == AIL_OK; i++) {
        const TargetModule *t = &tr->targets[i];
        ModuleInit *mi = &tr->init[i];
        rc = init_module_adapters(cache, t, &spec, mi);
        if (rc == AIL_OK) rc = set_residual(tr, t, mi, spec.rank, spec.alpha / spec.rank);
        if (rc == AIL_OK)
            rc = llama_adapter_attach(&tr->llm, t->layer, llama_linear_index(t->suffix), spec.rank,
                                      spec.alpha / spec.rank, mi->A, mi->B);
    }
    H5Fclose(cache);
    return rc;
}

/* Reads tokens / labels of this rank's part of micro-batch j of optimizer step s. */
static int fill_micro(const Trainer *tr, long step, int j, int *rows, int32_t *tok, int32_t *lab) {
    const TrainConfig *c = tr->cfg;
    long long base = (long long)step * c->batch_size + (long long)j * (c->batch_size / c->grad_accum) +
                     (long long)tr->dp_rank * tr->micro;
    for (int b = 0; b < tr->micro; b++) rows[b] = dataset_index(&tr->train, base + b, (uint64_t)c->seed, c->shuffle);
    return dataset_read_rows(&tr->train, rows, tr->micro, tok, lab);
}

/* Scored tokens of the whole global batch of step s (every rank counts them all). */
static long global_scored(const Trainer *tr, long step) {
    long total = 0;
    for (int b = 0; b < tr->cfg->batch_size; b++)
        total += tr->train.scored[dataset_index(&tr->train, (long long)step * tr->cfg->batch_size + b,
                                                (uint64_t)tr->cfg->seed, tr->cfg->shuffle)];
    return total;
}

/* Exact match of eval sequence idx (eval.h): adds 1 to *hits when it matches. */
static int exact_match(Trainer *tr, LlamaActs *one, int idx, int32_t *work, double *hits) {
    const Dataset *d = &tr->eval;
    int32_t ids[d->T], lab[d->T];
    int match;
    AIL_CHECK(dataset_read_rows(d, &idx, 1, ids, lab));
    AIL_CHECK(eval_exact_match(&tr->llm, one, ids, lab, d->T, tr->cfg->max_new_tokens, work, &match));
    *hits += match;
    return AIL_OK;
}

/* Mean eval loss over (the first eval_batches x dp x micro of) the eval set, and
 * the exact-match rate when max_new_tokens > 0. Sequences are dealt round-robin. */
static int evaluate(Trainer *tr, double *loss, double *em) {
    const Dataset *d = &tr->eval;
    int limit = d->n;
    if (tr->cfg->eval_batches > 0 && tr->cfg->eval_batches * tr->micro * tr->dp < limit)
        limit = tr->cfg->eval_batches * tr->micro * tr->dp;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)tr->micro * d->T);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)tr->micro * d->T);
    if (!tok || !lab) {
        free(tok), free(lab);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    }
    double sums[4] = {0, 0, 0, 0};  // loss sum, scored, exact matches, sequences
    int rc = AIL_OK;
    LlamaActs one = {0};
    if (tr->cfg->max_new_tokens > 0) rc = llama_acts_alloc(&tr->llm, 1, d->T, &one);
    if (rc == AIL_OK && tr->gpu && tr->cfg->max_new_tokens > 0) rc = gpu_sync(tr, 1);  // decoding runs on the host
    for (int start = tr->dp_rank * tr->micro; start < limit && rc == AIL_OK; start += tr->micro * tr->dp) {
        int nb = limit - start < tr->micro ? limit - start : tr->micro, rows[tr->micro];
        for (int b = 0; b < tr->micro; b++) rows[b] = start + (b < nb ? b : 0);
        rc = dataset_read_rows(d, rows, tr->micro, tok, lab);
        for (size_t i = (size_t)nb * d->T; i < (size_t)tr->micro * d->T; i++) lab[i] = -100;  // padding rows
        if (rc != AIL_OK) break;
        double s;
        long count;
        rc = model_forward(tr, tok, lab, &s, &count);
        sums[0] += s, sums[1] += (double)count;
        for (int b = 0; b < nb && tr->cfg->max_new_tokens > 0 && rc == AIL_OK; b++) {
            rc = exact_match(tr, &one, start + b, tok, &sums[2]);
            sums[3] += 1;
        }
    }
    llama_acts_free(&one);
    free(tok), free(lab);
    AIL_CHECK(ail_error_agree(tr->comm, rc));
    MPI_Allreduce(MPI_IN_PLACE, sums, 4, MPI_DOUBLE, MPI_SUM, tr->dp_comm);  // tp ranks hold the same sums
    *loss = sums[1] > 0 ? sums[0] / sums[1] : NAN;
    *em = sums[3] > 0 ? sums[2] / sums[3] : NAN;
    return AIL_OK;
}

static int save(Trainer *tr, int checkpoint) {
    int rc = tr->gpu ? ail_error_agree(tr->comm, gpu_sync(tr, 1)) : AIL_OK;
    if (rc == AIL_OK && tr->tp > 1) rc = whole_sync(tr, 1);
    if (rc == AIL_OK && tr->rank == 0) {
        rc = runfile_write(tr->cfg->out, &tr->st, 0);
        if (rc == AIL_OK && checkpoint) {
            char path[1100];
            train_checkpoint_path(tr->cfg->out, path, sizeof path);
            rc = runfile_write(path, &tr->st, 1);
        }
    }
    return ail_error_agree(tr->comm, rc);
}

static void format_eta(double seconds, char *buf, size_t len) {
    long s = (long)(seconds + 0.5);
    snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

static int setup(Trainer *tr) {
    const TrainConfig *c = tr->cfg;
    AIL_CHECK(ail_error_agree(tr->comm, hfmodel_open(c->model, &tr->model)));
    if (!c->train_base)
        AIL_CHECK(ail_error_agree(tr->comm, hfmodel_targets(&tr->model, c->targets, &tr->targets, &tr->ntargets)));
    AIL_CHECK(ail_error_agree(tr->comm, llama_load_tp(&tr->model, tr->tp_comm, &tr->llm)));
    if (c->train_base) {
        struct stat sb;
        int rc = stat(c->out_model, &sb) == 0 ? AIL_ERROR(AIL_ERR_IO, "out_model %s already exists", c->out_model)
                                              : llama_enable_base_grads(&tr->llm);
        AIL_CHECK(ail_error_agree(tr->comm, rc));
    }
    AIL_CHECK(ail_error_agree(tr->comm, dataset_load(c->train_data, tr->llm.V, &tr->train)));
    if (c->eval_data[0]) AIL_CHECK(ail_error_agree(tr->comm, dataset_load(c->eval_data, tr->llm.V, &tr->eval)));
    if (tr->eval.n && tr->eval.T != tr->train.T)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s has sequences of %d tokens, %s of %d", c->eval_data, tr->eval.T,
                         c->train_data, tr->train.T);
    if (!c->train_base) AIL_CHECK(ail_error_agree(tr->comm, setup_adapters(tr)));
    tr->micro = c->batch_size / (tr->dp * c->grad_accum);  // every tp rank of a replica reads the same rows
    if (strcmp(c->device, "cuda") != 0)  // on the GPU, activations live there
        AIL_CHECK(ail_error_agree(tr->comm, llama_acts_alloc(&tr->llm, tr->micro, tr->train.T, &tr->acts)));
    OptimConfig oc = c->optim;
    oc.total_steps = c->steps;
    AIL_CHECK(adamw_init(&tr->opt, &oc, &tr->llm));
    for (int i = 0; i < tr->opt.count; i++) tr->nflat += tr->opt.params[i].n;
    AIL_MALLOC(tr->flat, tr->nflat);
    if (tr->tp > 1) AIL_CHECK(ail_error_agree(tr->comm, whole_alloc(tr)));
    if (tr->tp > 1) AIL_CHECK(param_tp_init(tr));
    // run files and checkpoints always hold whole modules, whatever the layout
    tr->st = (RunState){.cfg = c, .config_text = tr->config_text, .targets = tr->targets,
                        .ntargets = tr->ntargets, .init = tr->init,
                        .llm = tr->tp > 1 ? &tr->whole : &tr->llm, .opt = tr->tp > 1 ? &tr->whole_opt : &tr->opt,
                        .tp = tr->tp, .dp = tr->dp};
    if (c->resume) {
        char path[1100];
        train_checkpoint_path(c->out, path, sizeof path);
        int rc = AIL_OK;
        struct stat sb;
        if (stat(path, &sb) != 0)
            rc = AIL_ERROR(AIL_ERR_IO, "resume=true but there is no checkpoint %s", path);
        if (rc == AIL_OK) rc = checkpoint_read(path, &tr->st);
        if (rc == AIL_OK && tr->tp > 1) rc = whole_sync(tr, 0);
        AIL_CHECK(ail_error_agree(tr->comm, rc));
        if (tr->rank == 0) printf("resuming %s at step %ld\n", c->out, tr->st.step);
        if (tr->rank == 0 && (tr->st.ckpt_tp != tr->tp || tr->st.ckpt_dp != tr->dp))
            printf("note: the checkpoint was written on tp=%d x dp=%d, this run is tp=%d x dp=%d: the curve continues "
                   "equal up to float rounding, not bit for bit\n", tr->st.ckpt_tp, tr->st.ckpt_dp, tr->tp, tr->dp);
    }
    if (strcmp(c->device, "cuda") == 0) {  // the host state (fresh or resumed) moves to the GPU
        AIL_CHECK(gpu_setup(tr));
        AIL_CHECK(ail_error_agree(tr->comm, gpu_sync(tr, 0)));
    }
    return AIL_OK;
}

static void teardown(Trainer *tr) {
    gpu_teardown(tr);
    for (int i = 0; tr->init && i < tr->ntargets; i++) module_init_free(&tr->init[i]);
    free(tr->init);
    trainlog_free(&tr->st.train);
    evallog_free(&tr->st.eval);
    free(tr->flat);
    free(tr->param_tp);
    whole_free(tr);
    adamw_free(&tr->opt);
    llama_acts_free(&tr->acts);
    dataset_free(&tr->train);
    dataset_free(&tr->eval);
    llama_free(&tr->llm);
    free(tr->targets);
    if (tr->model.shards) hfmodel_close(&tr->model);
    free(tr->config_text);
}

static int record_eval(Trainer *tr, long step) {
    if (!tr->eval.n) return AIL_OK;
    double loss = NAN, em = NAN;
    AIL_CHECK(evaluate(tr, &loss, &em));
    if (tr->rank == 0) {
        printf("eval step %ld | loss %.4f | ppl %.3f", step, loss, exp(loss));
        if (!isnan(em)) printf(" | exact match %.4f", em);
        printf("\n");
        fflush(stdout);
    }
    return evallog_append(&tr->st.eval, step, loss, em);
}

static int train_loop(Trainer *tr, int *status) {
    const TrainConfig *c = tr->cfg;
    int T = tr->train.T;
    size_t per = (size_t)tr->micro * T;
    int32_t *tok = malloc(sizeof(int32_t) * per), *lab = malloc(sizeof(int32_t) * per);
    int *rows = malloc(sizeof(int) * (size_t)tr->micro);
    if (!tok || !lab || !rows) {
        free(tok), free(lab), free(rows);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    }
    double t_begin = MPI_Wtime();
    long first = tr->st.step;
    int rc = AIL_OK;
    *status = TRAIN_DONE;
    while (tr->st.step < c->steps && rc == AIL_OK) {
        long step = tr->st.step;
        double t0 = MPI_Wtime(), loss_sum = 0.0;
        long total = global_scored(tr, step);
        if (tr->gpu) rc = gpu_zero_grads(tr->gpu);
        else llama_zero_grads(&tr->llm);
        for (int j = 0; j < c->grad_accum && rc == AIL_OK; j++) {
            rc = fill_micro(tr, step, j, rows, tok, lab);
            if (rc != AIL_OK) break;
            double s;
            long count;
            rc = model_forward(tr, tok, lab, &s, &count);
            if (rc == AIL_OK && total > 0)
                rc = tr->gpu ? gpu_backward(tr->gpu, 1.0 / total) : llama_backward(&tr->llm, &tr->acts, lab, 1.0 / total);
            loss_sum += s;
        }
        rc = ail_error_agree(tr->comm, rc);
        if (rc == AIL_OK)
            rc = ail_error_agree(tr->comm, tr->gpu ? gpu_grads_allreduce(tr->gpu, tr->gpu_dp) : allreduce_grads(tr));
        double norm = 0;
        if (rc == AIL_OK) rc = ail_error_agree(tr->comm, tr->gpu ? gpu_grad_norm(tr->gpu, &norm) : AIL_OK);
        if (rc != AIL_OK) break;
        MPI_Allreduce(MPI_IN_PLACE, &loss_sum, 1, MPI_DOUBLE, MPI_SUM, tr->dp_comm);
        double loss = total > 0 ? loss_sum / total : 0.0;
        double lr = optim_lr(&tr->opt.cfg, (int)tr->opt.step);
        if (!tr->gpu) norm = grad_norm(tr);
        if (!isfinite(loss) || !isfinite(norm)) {
            // the adapters still hold the last good step: keep them
            if (tr->rank == 0)
                fprintf(stderr, "ailora train: error: loss is %s at step %ld (grad norm %g); stopped, "
                        "checkpoint of step %ld kept\n", isfinite(loss) ? "finite but the gradient is not" : "NaN/Inf",
                        step + 1, norm, step);
            rc = save(tr, 1);
            *status = TRAIN_NAN;
            break;
        }
        if (tr->gpu) {
            const OptimConfig *o = &tr->opt.cfg;
            GpuAdamW g = {.lr = lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = o->eps,
                          .weight_decay = o->weight_decay, .grad_clip = o->grad_clip};
            rc = ail_error_agree(tr->comm, gpu_adamw_step(tr->gpu, &g, tr->opt.step + 1, norm));
            if (rc != AIL_OK) break;
            tr->opt.step++;
        } else {
            adamw_step(&tr->opt, norm);
        }
        tr->st.step = step + 1;
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, tr->comm);  // the slowest rank sets the pace
        double tps = (double)c->batch_size * T / dt;
        rc = trainlog_append(&tr->st.train, tr->st.step, loss, lr, norm, tps);
        long done = tr->st.step;
        if (rc == AIL_OK && tr->rank == 0 && (done % c->log_every == 0 || done == c->steps || done == first + 1)) {
            char eta[32];
            format_eta((MPI_Wtime() - t_begin) / (double)(done - first) * (double)(c->steps - done), eta, sizeof eta);
            printf("step %ld/%d | loss %.4f | lr %.3e | grad norm %.4f | %.0f tok/s | ETA %s\n", done, c->steps,
                   loss, lr, norm, tps, eta);
            fflush(stdout);
        }
        if (rc == AIL_OK && c->eval_every > 0 && done % c->eval_every == 0 && done < c->steps)
            rc = record_eval(tr, done);
        int stop = g_stop_signal ? g_stop_signal : (done == c->preempt_at_step ? SIGUSR1 : 0);
        MPI_Allreduce(MPI_IN_PLACE, &stop, 1, MPI_INT, MPI_MAX, tr->comm);
        int ckpt = (c->checkpoint_every > 0 && done % c->checkpoint_every == 0) || stop;
        if (rc == AIL_OK && (ckpt || done % c->log_every == 0)) rc = save(tr, ckpt);
        if (rc == AIL_OK && stop && done < c->steps) {
            if (tr->rank == 0)
                fprintf(stderr, "ailora train: signal %d: checkpointed at step %ld; resume with resume=true\n", stop, done);
            *status = TRAIN_PREEMPTED;
            break;
        }
    }
    free(tok), free(lab), free(rows);
    if (rc == AIL_OK && *status == TRAIN_DONE && first == c->steps) {
        if (tr->rank == 0) printf("%s already holds all %d steps: nothing to do\n", c->out, c->steps);
    } else if (rc == AIL_OK && *status == TRAIN_DONE) {
        rc = record_eval(tr, tr->st.step);
        if (rc == AIL_OK) rc = save(tr, 1);
        if (rc == AIL_OK && c->train_base)
            rc = ail_error_agree(tr->comm, tr->rank == 0 ? llama_save(&tr->llm, &tr->model, c->out_model) : AIL_OK);
        if (rc == AIL_OK && c->train_base && tr->rank == 0) printf("wrote the trained model to %s\n", c->out_model);
    }
    return rc;
}

int train_run(MPI_Comm comm, const TrainConfig *cfg) {
    Trainer tr = {.comm = comm, .cfg = cfg, .tp_comm = MPI_COMM_NULL, .dp_comm = MPI_COMM_NULL};
    int world;
    MPI_Comm_rank(comm, &tr.rank);
    MPI_Comm_size(comm, &world);
    int status = TRAIN_ERROR;
    int rc = ail_error_agree(comm, config_validate(cfg, world));
    if (rc == AIL_OK && strcmp(cfg->device, "cuda") == 0 && gpu_device_count() == 0)  // before any file is written
#ifdef AILORA_HAVE_CUDA
        rc = ail_error_agree(comm, AIL_ERROR(AIL_ERR_ARG, "device = cuda: no CUDA device visible"));
#else
        rc = ail_error_agree(comm, AIL_ERROR(AIL_ERR_ARG, "device = cuda: ailora was built without CUDA (configure --with-cuda)"));
#endif
    if (rc == AIL_OK && cfg->tp > 1 && cfg->train_base)
        rc = AIL_ERROR(AIL_ERR_ARG, "train_base = true supports tp = 1 only (tp = %d given)", cfg->tp);
    if (rc == AIL_OK) {
        // consecutive ranks form one model replica: tensor parallelism stays within a node
        tr.tp = cfg->tp, tr.dp = world / cfg->tp;
        tr.tp_rank = tr.rank % tr.tp, tr.dp_rank = tr.rank / tr.tp;
        MPI_Comm_split(comm, tr.dp_rank, tr.tp_rank, &tr.tp_comm);
        MPI_Comm_split(comm, tr.tp_rank, tr.dp_rank, &tr.dp_comm);
    }
    tr.config_text = config_dump(cfg);
    if (rc == AIL_OK) rc = setup(&tr);
    if (rc == AIL_OK) rc = train_loop(&tr, &status);
    teardown(&tr);
    if (tr.tp_comm != MPI_COMM_NULL) MPI_Comm_free(&tr.tp_comm);
    if (tr.dp_comm != MPI_COMM_NULL) MPI_Comm_free(&tr.dp_comm);
    return rc == AIL_OK ? status : TRAIN_ERROR;
}
