/* train.c - the training loop of `ailora train` (see train.h). */
#include "ailora/train.h"

#include "config.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ailora/dataset.h"
#include "ailora/error.h"
#include "ailora/eval.h"
#include "ailora/evaldata.h"
#include "ailora/llama_decode.h"
#include "ailora/metrics.h"
#include "ailora/runfile.h"
#include "ailora/svdcache.h"
#include "ailora/engine.h"
#include "ailora/gpu.h"
#include "ailora/gpu_backend.h"
#include "ailora/safetensors.h"
#include "ailora/adapter.h"
#include "ailora/fileio.h"
#include "ailora/updatediag.h"
#include "ailora/h5io.h"

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
    Dataset train, eval, retention;
    EvalData evx, retx;        /* how eval / retention rows are scored (evaldata.h) */
    int micro;       /* sequences per replica per micro-batch */
    AdamW opt;
    Engine eng;      /* where steps run (cpu | cuda): engine.h */
    Llama whole;     /* tp > 1: whole-module adapters, for run files and checkpoints */
    AdamW whole_opt; /* tp > 1: whole-module moments, same order as opt */
    RunState st;
    char *config_text;
    char model_fp[FINGERPRINT_HEX]; /* fingerprint of the model directory (fingerprint.h) */
    int start;            /* START_*: how this run begins (outputs_check) */
    char changed[1024];   /* rank 0, START_CHECKPOINT: allowed keys that differ from the stored config */
    SpectrumEnds *ends;   /* rank 0, diagnostics: W's singular vectors at both ends, per target */
    double *ends_storage; /*   one allocation behind them */
    int diag_k;           /* K of the diagnostics (0: off) */
} Trainer;

/* How a run starts: with nothing (a fresh run, or resume=true before any
 * checkpoint exists), or from the checkpoint in `out`.ckpt.h5. */
enum { START_FRESH, START_CHECKPOINT };

#ifdef AILORA_REAL_DOUBLE
#define MPI_REAL_T MPI_DOUBLE
#else
#define MPI_REAL_T MPI_FLOAT
#endif

/* Agreement within one model replica: its tp ranks run the forward's all-reduces
 * together, so a failure on one of them (a read, an allocation) must stop all of
 * them before the next forward. Other replicas learn of it at the next agreement
 * over the world. */
static int tp_agree(const Trainer *tr, int rc) { return tr->tp > 1 ? ail_error_agree(tr->tp_comm, rc) : rc; }

/* ---- whole-module adapters under tensor parallelism ------------------------------ */

/* All-gather of each tp rank's rows x cols into dst, counted in rows of a contiguous
 * type: no MPI count exceeds an int however large the shard. A failing gather may
 * leave partners inside it: that ends the job. */
static int tp_allgather(const Trainer *tr, const real *local, real *dst, int rows, int cols) {
    MPI_Datatype row;
    MPI_Type_contiguous(cols, MPI_REAL_T, &row);
    MPI_Type_commit(&row);
    int st = MPI_Allgather(local, rows, row, dst, rows, row, tr->tp_comm);
    MPI_Type_free(&row);
    return st == MPI_SUCCESS ? AIL_OK
                             : ail_error_fatal(tr->tp_comm, AIL_ERROR(AIL_ERR_MPI, "tensor-parallel gather failed"));
}

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
        return tp_allgather(tr, local, whole, rows, cols);
    }
    size_t wc = (size_t)cols * tp;
    if (!gather) {
        for (int i = 0; i < rows; i++) memcpy(local + (size_t)i * cols, whole + i * wc + (size_t)rk * cols, sizeof(real) * cols);
        return AIL_OK;
    }
    real *all = ail_malloc(sizeof(real) * n * tp);
    if (tp_agree(tr, all ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory")) != AIL_OK) {  // before the gather
        free(all);
        return ail_error_code();
    }
    int rc = tp_allgather(tr, local, all, rows, cols);
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

/* One residual entry as residual_dtype rounds it: once to the model's storage
 * dtype (model) or to float32 (fp32), from float64. Exact in real (float) for
 * BF16 / F16 / F32 models. */
static double residual_round(const Trainer *tr, DType model_dtype, double x) {
    return strcmp(tr->cfg->residual_dtype, "fp32") == 0 ? (double)(float)x : dtype_round(model_dtype, x);
}

/* The value the engine computes with: residual_round, then the engine's precision
 * (a bf16 GPU rounds the residual of an F32 model once more: that is what it
 * computes with, so that is what the run file measures). */
static double residual_held(const Trainer *tr, DType model_dtype, double x) {
    double v = (double)(real)residual_round(tr, model_dtype, x);
    if (strcmp(tr->cfg->device, "cuda") == 0 && strcmp(tr->cfg->precision, "bf16") == 0) v = dtype_round(DTYPE_BF16, v);
    return v;
}

/* The frozen weight of target t becomes its residual W - s B A, computed in float64
 * from the file for this rank's block only and rounded as residual_dtype says. */
static int set_residual(Trainer *tr, const TargetModule *t, const ModuleInit *mi, int r, double scale) {
    int lin = llama_linear_index(t->suffix);
    int tp = tr->llm.tp_size, rk = tr->llm.tp_rank;
    int row_par = llama_adapter_tp_sharded(&tr->llm, lin, 0);  // A split by columns: so is W
    int nr = row_par ? t->m : t->m / tp, nc = row_par ? t->n / tp : t->n;
    int r0 = row_par ? 0 : nr * rk, c0 = row_par ? nc * rk : 0;
    double *W = ail_malloc(sizeof(double) * (size_t)nr * nc), *Wres = ail_malloc(sizeof(double) * (size_t)nr * nc);
    double *A = ail_malloc(sizeof(double) * (size_t)r * nc);
    int rc = W && Wres && A ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for the residual of %s", t->name);
    if (rc == AIL_OK) {
        safetensor_block_f64(t->weight, r0, nr, c0, nc, W);
        for (int i = 0; i < r; i++) memcpy(A + (size_t)i * nc, mi->A + (size_t)i * t->n + c0, sizeof(double) * nc);
        adapter_residual(nr, nc, r, scale, W, A, mi->B + (size_t)r0 * r, Wres);
        real *w = tr->llm.layers[t->layer].w[lin];
        for (size_t j = 0; j < (size_t)nr * nc; j++) w[j] = (real)residual_round(tr, t->dtype, Wres[j]);
    }
    free(W), free(Wres), free(A);
    return rc;
}

/* Diagnostics of module i as the run file reports them (rank i % world, whole
 * module): the float64 reconstruction error and that of the residual as held. */
static int residual_diagnostics(Trainer *tr, const TargetModule *t, const InitSpec *spec, ModuleInit *mi) {
    int m = t->m, n = t->n, r = spec->rank;
    double scale = spec->alpha / spec->rank;
    DType rd = strcmp(tr->cfg->residual_dtype, "fp32") == 0 ? DTYPE_F32 : t->dtype;
    AIL_CHECK(init_module_residual(t, spec, rd, 1, mi));  // energy, recon_err_f64
    double *W;
    AIL_MALLOC(W, (size_t)m * n);
    dtype_to_f64(t->dtype, t->weight->data, (size_t)m * n, W);
    for (size_t j = 0; j < (size_t)m * n; j++) mi->W_res[j] = residual_held(tr, t->dtype, mi->W_res[j]);
    mi->diag.recon_err_rounded = adapter_recon_error(m, n, r, scale, W, mi->W_res, mi->A, mi->B);
    free(W);
    free(mi->W_res);
    mi->W_res = NULL;
    return AIL_OK;
}

static int fill_micro(const Trainer *tr, long step, int j, int *rows, int32_t *tok, int32_t *lab, int8_t *mask);
static long global_scored(const Trainer *tr, long step);
static int shard_copy(const Trainer *tr, int gather, int split_cols, int rows, int cols, real *local, real *whole);

/* ---- method auto: the triplets the task's loss is most sensitive to (adapter.h) ---- */

/* The base gradient G = dL/dW of the loss over the first auto_batches training
 * batches (the same global batches, in the same order, as steps 0, 1, ...), before
 * any adapter exists: left in llm.grad_storage (this rank's shard, summed over
 * this replica's rows only; auto_choose completes the sum over dp). */
static int auto_gradients(Trainer *tr) {
    const TrainConfig *c = tr->cfg;
    int T = tr->train.T;
    size_t per = (size_t)tr->micro * T;
    LlamaActs acts = {0};
    int32_t *tok = ail_malloc(sizeof(int32_t) * per), *lab = ail_malloc(sizeof(int32_t) * per);
    int8_t *mask = ail_malloc(per);
    int *rows = ail_malloc(sizeof(int) * (size_t)tr->micro);
    int rc = tok && lab && mask && rows ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK) rc = llama_enable_base_grads(&tr->llm);
    if (rc == AIL_OK) rc = llama_acts_alloc(&tr->llm, tr->micro, T, &acts);
    rc = tp_agree(tr, rc);
    long total = 0;
    for (int b = 0; b < c->auto_batches; b++) total += global_scored(tr, b);
    if (rc == AIL_OK) llama_zero_grads(&tr->llm);
    for (int b = 0; b < c->auto_batches && rc == AIL_OK && total > 0; b++)
        for (int j = 0; j < c->grad_accum && rc == AIL_OK; j++) {
            rc = tp_agree(tr, fill_micro(tr, b, j, rows, tok, lab, mask));
            double s;
            long count;
            if (rc == AIL_OK) rc = llama_acts_set_mask(&acts, tr->train.mask >= 0 ? mask : NULL);
            if (rc == AIL_OK) rc = llama_forward(&tr->llm, &acts, tok, lab, &s, &count);
            if (rc == AIL_OK) rc = llama_backward(&tr->llm, &acts, lab, 1.0 / (double)total);
        }
    if (rc == AIL_OK && total == 0)
        rc = AIL_ERROR(AIL_ERR_ARG, "method auto: the first %d training batches score no tokens", c->auto_batches);
    llama_acts_free(&acts);
    free(tok), free(lab), free(mask), free(rows);
    return rc;
}

/* Target i's selection under method auto: the whole gradient (summed over dp,
 * gathered over tp) scored on rank 0 against every triplet of the cache, the r
 * best broadcast. A resume takes the selection recorded in the checkpoint, so the
 * residual is the one the run started from whatever the layout now. */
static int auto_choose(Trainer *tr, hid_t cache, int i, const char *ckpt, int *selected, ModuleInit *scored) {
    const TargetModule *t = &tr->targets[i];
    int r = tr->cfg->rank, m = t->m, n = t->n, rc = AIL_OK;
    char path[512];
    if (ckpt) {  // resume: what the run chose when it started
        if (tr->rank == 0) {
            hid_t f;
            hsize_t dims[2];
            double *x = NULL;
            rc = h5io_open_read(ckpt, &f);
            snprintf(path, sizeof path, "/adapters/%s/selected", t->name);
            if (rc == AIL_OK) {
                rc = h5io_read_f64(f, path, 1, dims, &x);
                if (rc == AIL_OK && dims[0] != (hsize_t)r)
                    rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s holds %llu indices, rank is %d", ckpt, path,
                                   (unsigned long long)dims[0], r);
                for (int j = 0; j < r && rc == AIL_OK; j++) selected[j] = (int)x[j];
                free(x);
                x = NULL;
                // the scores behind it, so the resumed run file equals an uninterrupted one
                snprintf(path, sizeof path, "/adapters/%s/auto_scores", t->name);
                if (rc == AIL_OK) rc = h5io_read_f64(f, path, 1, dims, &scored->scores);
                snprintf(path, sizeof path, "/adapters/%s/auto_candidates", t->name);
                if (rc == AIL_OK) rc = h5io_read_f64(f, path, 1, dims, &x);
                if (rc == AIL_OK) scored->ncand = (int)dims[0];
                scored->candidates = rc == AIL_OK ? ail_malloc(sizeof(int) * (dims[0] ? dims[0] : 1)) : NULL;
                if (rc == AIL_OK && !scored->candidates) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
                for (hsize_t j = 0; j < dims[0] && rc == AIL_OK; j++) scored->candidates[j] = (int)x[j];
                free(x);
                H5Fclose(f);
            }
        }
        MPI_Bcast(selected, r, MPI_INT, 0, tr->comm);
        return ail_error_agree(tr->comm, rc);
    }
    int lin = llama_linear_index(t->suffix), split_cols = llama_row_parallel(lin);
    real *w = tr->llm.layers[t->layer].w[lin];
    real *g = tr->llm.grad_storage + (w - tr->llm.storage);  // this rank's shard of dL/dW
    int rows = split_cols ? m : m / tr->tp, cols = split_cols ? n / tr->tp : n;
    if (tr->dp > 1) MPI_Allreduce(MPI_IN_PLACE, g, rows * cols, MPI_REAL_T, MPI_SUM, tr->dp_comm);
    real *whole = ail_malloc(sizeof(real) * (size_t)m * n);
    double *G = tr->rank == 0 ? ail_malloc(sizeof(double) * (size_t)m * n) : NULL;
    rc = ail_error_agree(tr->comm, whole && (G || tr->rank) ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory"));
    if (rc == AIL_OK && tr->tp > 1) rc = shard_copy(tr, 1, split_cols, rows, cols, g, whole);
    else if (rc == AIL_OK) memcpy(whole, g, sizeof(real) * (size_t)m * n);
    if (rc == AIL_OK && tr->rank == 0) {
        for (size_t j = 0; j < (size_t)m * n; j++) G[j] = whole[j];
        rc = init_auto_scores_module(cache, t, G, &scored->candidates, &scored->scores, &scored->ncand);
        if (rc == AIL_OK) rc = init_auto_select(scored->ncand, scored->candidates, scored->scores, r, selected);
    }
    free(whole);
    free(G);
    AIL_CHECK(ail_error_agree(tr->comm, rc));
    MPI_Bcast(selected, r, MPI_INT, 0, tr->comm);
    return AIL_OK;
}

/* Rank 0, diagnostics on: the top and bottom diag_k singular vectors of every target
 * (updatediag.h), read once from the cache. */
static int read_spectrum_ends(Trainer *tr, hid_t cache) {
    const TrainConfig *c = tr->cfg;
    if (!c->diagnostics) return AIL_OK;
    int K = c->diagnostics_k > 0 ? c->diagnostics_k : c->rank;
    size_t total = 0;
    for (int i = 0; i < tr->ntargets; i++) {
        const TargetModule *t = &tr->targets[i];
        int k = t->m < t->n ? t->m : t->n;
        if (K > k)
            return AIL_ERROR(AIL_ERR_ARG, "diagnostics_k = %d exceeds min(m, n) = %d of %s", K, k, t->name);
        total += (size_t)2 * K * (t->m + t->n);
    }
    tr->ends = ail_calloc((size_t)tr->ntargets, sizeof *tr->ends);
    tr->ends_storage = ail_malloc(sizeof(double) * total);
    int *sel = ail_malloc(sizeof(int) * (size_t)K);
    double *rows = NULL;
    int rc = tr->ends && tr->ends_storage && sel ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for diagnostics");
    double *p = tr->ends_storage;
    char path[512];
    for (int i = 0; i < tr->ntargets && rc == AIL_OK; i++) {
        const TargetModule *t = &tr->targets[i];
        int m = t->m, n = t->n, k = m < n ? m : n;
        SpectrumEnds *e = &tr->ends[i];
        *e = (SpectrumEnds){.m = m, .n = n, .K = K, .u_top = p, .u_bottom = p + (size_t)m * K,
                            .v_top = p + (size_t)2 * m * K, .v_bottom = p + (size_t)2 * m * K + (size_t)n * K};
        p += (size_t)2 * K * (m + n);
        free(rows);
        rows = ail_malloc(sizeof(double) * (size_t)K * n);
        if (!rows) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for diagnostics");
        for (int end = 0; end < 2 && rc == AIL_OK; end++) {
            for (int j = 0; j < K; j++) sel[j] = end ? k - K + j : j;
            snprintf(path, sizeof path, "diagnostics_k = %d", K);  // a partial cache must hold both ends
            rc = svdcache_read_vectors(cache, t, path, K, sel, (double *)(end ? e->u_bottom : e->u_top), rows);
            double *v = (double *)(end ? e->v_bottom : e->v_top);                     // (n, K)
            for (int j = 0; j < K && rc == AIL_OK; j++)
                for (int q = 0; q < n; q++) v[(size_t)q * K + j] = rows[(size_t)j * n + q];
        }
    }
    free(rows);
    free(sel);
    if (rc == AIL_OK) tr->diag_k = K;
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
                             .max_rank_bytes = svd_default_rank_bytes(tr->comm), .keep = c->svd_keep};
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
    AIL_CHECK(ail_error_agree(tr->comm, svdcache_open(cache_path, tr->targets, tr->ntargets, &cache)));
    char(*fps)[FINGERPRINT_HEX] = ail_calloc((size_t)tr->ntargets + 1, sizeof *fps);
    tr->init = ail_calloc((size_t)tr->ntargets + 1, sizeof *tr->init);
    int rc = ail_error_agree(tr->comm, fps && tr->init ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory"));
    // the cache must come from these very weights (collective; before any residual is formed)
    if (rc == AIL_OK) rc = svdcache_verify(tr->comm, cache_path, cache, tr->targets, tr->ntargets, fps);
    int is_auto = spec.method == INIT_AUTO;
    char ckpt[1100];
    train_checkpoint_path(c->out, ckpt, sizeof ckpt);
    int *auto_sel = is_auto ? ail_malloc(sizeof(int) * (size_t)spec.rank) : NULL;
    if (rc == AIL_OK && is_auto) rc = ail_error_agree(tr->comm, auto_sel ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory"));
    if (rc == AIL_OK && is_auto && tr->start == START_FRESH) rc = ail_error_agree(tr->comm, auto_gradients(tr));
    for (int i = 0; i < tr->ntargets && rc == AIL_OK; i++) {
        const TargetModule *t = &tr->targets[i];
        ModuleInit *mi = &tr->init[i];
        if (is_auto) {
            ModuleInit scored = {0};
            rc = auto_choose(tr, cache, i, tr->start == START_CHECKPOINT ? ckpt : NULL, auto_sel, &scored);
            if (rc == AIL_OK) rc = init_module_selected(cache, t, &spec, auto_sel, mi);
            mi->ncand = scored.ncand, mi->candidates = scored.candidates, mi->scores = scored.scores;
            if (rc == AIL_OK && tr->rank == 0 && c->log_every > 0) {
                printf("auto: %s takes %d principal-half and %d minor-half triplets:", t->name, mi->p, spec.rank - mi->p);
                for (int j = 0; j < spec.rank; j++) printf(" %d", auto_sel[j]);
                printf("\n");
            }
        } else {
            rc = init_module_adapters(cache, t, &spec, mi);
        }
        memcpy(mi->fingerprint, fps[i], FINGERPRINT_HEX);
        if (rc == AIL_OK) rc = set_residual(tr, t, mi, spec.rank, spec.alpha / spec.rank);
        if (rc == AIL_OK)
            rc = llama_adapter_attach(&tr->llm, t->layer, llama_linear_index(t->suffix), spec.rank,
                                      spec.alpha / spec.rank, mi->A, mi->B);
        if (is_auto) rc = ail_error_agree(tr->comm, rc);  // auto_choose of the next target is collective
    }
    // every rank agrees here, also one whose loop above failed (it would leave the others waiting)
    rc = ail_error_agree(tr->comm, rc != AIL_OK ? rc : tr->rank == 0 ? read_spectrum_ends(tr, cache) : AIL_OK);
    free(auto_sel);
    free(tr->llm.grad_storage);  // auto's base gradient: adapters train alone from here
    tr->llm.grad_storage = NULL;
    H5Fclose(cache);
    free(fps);
    // reconstruction errors of whole modules, dealt over all ranks, then shared
    double *diag = ail_calloc((size_t)tr->ntargets * 3 + 1, sizeof *diag);
    int world;
    MPI_Comm_size(tr->comm, &world);
    rc = ail_error_agree(tr->comm, rc == AIL_OK && !diag ? AIL_ERROR(AIL_ERR_MEM, "out of memory") : rc);
    for (int i = tr->rank; i < tr->ntargets && rc == AIL_OK; i += world) {
        rc = residual_diagnostics(tr, &tr->targets[i], &spec, &tr->init[i]);
        const AdapterDiagnostics *d = &tr->init[i].diag;
        diag[3 * i] = d->energy, diag[3 * i + 1] = d->recon_err_f64, diag[3 * i + 2] = d->recon_err_rounded;
    }
    rc = ail_error_agree(tr->comm, rc);
    if (rc == AIL_OK) MPI_Allreduce(MPI_IN_PLACE, diag, 3 * tr->ntargets, MPI_DOUBLE, MPI_SUM, tr->comm);
    for (int i = 0; i < tr->ntargets && rc == AIL_OK; i++)
        tr->init[i].diag = (AdapterDiagnostics){diag[3 * i], diag[3 * i + 1], diag[3 * i + 2]};
    free(diag);
    return rc;
}

/* Reads tokens / labels / attention mask of this rank's part of micro-batch j of optimizer step s. */
static int fill_micro(const Trainer *tr, long step, int j, int *rows, int32_t *tok, int32_t *lab, int8_t *mask) {
    const TrainConfig *c = tr->cfg;
    long long base = (long long)step * c->batch_size + (long long)j * (c->batch_size / c->grad_accum) +
                     (long long)tr->dp_rank * tr->micro;
    for (int b = 0; b < tr->micro; b++) rows[b] = dataset_index(&tr->train, base + b, (uint64_t)c->seed, c->shuffle);
    return dataset_read_rows(&tr->train, rows, tr->micro, tok, lab, mask);
}

/* Scored tokens of the whole global batch of step s (every rank counts them all). */
static long global_scored(const Trainer *tr, long step) {
    long total = 0;
    for (int b = 0; b < tr->cfg->batch_size; b++)
        total += tr->train.scored[dataset_index(&tr->train, (long long)step * tr->cfg->batch_size + b,
                                                (uint64_t)tr->cfg->seed, tr->cfg->shuffle)];
    return total;
}

/* ---- evaluation (eval set and retention set) --------------------------------------- */

enum { GEN_ROWS = 8 };  /* prompts decoded together (llama_decode.h) */

/* What the scoring pass of a dataset does (besides the loss). */
enum { SCORE_NONE, SCORE_TOKEN_EM, SCORE_TEXT, SCORE_MC };

/* The decoding budget: the dataset's max_new_tokens attribute, else the train key. */
static int gen_budget(const Trainer *tr, const EvalData *x) { return x->max_new > 0 ? x->max_new : tr->cfg->max_new_tokens; }

static int score_mode(const Trainer *tr, const EvalData *x) {
    if (x->metric == METRIC_MC) return SCORE_MC;
    if (metric_generates(x->metric) && x->references) return SCORE_TEXT;
    if ((x->metric == METRIC_NONE || x->metric == METRIC_EXACT_MATCH) && gen_budget(tr, x) > 0) return SCORE_TOKEN_EM;
    return SCORE_NONE;
}

/* One evaluation of a dataset. */
typedef struct {
    double loss;                          /* mean token loss (NaN: nothing scored) */
    double em;                            /* exact match (token span, or the exact_match metric); NaN: none */
    int ncomp;
    const char *names[METRIC_MAX_COMPONENTS];
    double comp[METRIC_MAX_COMPONENTS];   /* means over the scored rows (mc: examples) */
    double scored, unfit;                 /* rows (mc: examples) scored; rows that did not fit */
    int measured;                         /* a scoring pass ran */
    EvalExamples ex;                      /* world rank 0, when asked */
} EvalResult;

/* One scored row (or mc example) of this rank. */
typedef struct {
    int row;
    int8_t unfit;
    double score[METRIC_MAX_COMPONENTS];
    char *pred;
} EvalRec;

/* The rows evaluated: the first eval_batches x dp x micro (all when 0). */
static int eval_limit(const Trainer *tr, const Dataset *d) {
    int limit = d->n;
    long long want = (long long)tr->cfg->eval_batches * tr->micro * tr->dp;  // eval_batches may be huge
    if (tr->cfg->eval_batches > 0 && want < limit) limit = (int)want;
    return limit;
}

/* Mean token loss over rows [0, limit), dealt round-robin in micro-batches. */
static int eval_loss(Trainer *tr, const Dataset *d, int limit, double *loss) {
    int32_t *tok = ail_malloc(sizeof(int32_t) * (size_t)tr->micro * d->T);
    int32_t *lab = ail_malloc(sizeof(int32_t) * (size_t)tr->micro * d->T);
    int8_t *mask = ail_malloc((size_t)tr->micro * d->T);
    double sums[2] = {0, 0};  // loss sum, scored
    int rc = tp_agree(tr, tok && lab && mask ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory"));
    for (int start = tr->dp_rank * tr->micro; start < limit && rc == AIL_OK; start += tr->micro * tr->dp) {
        int nb = limit - start < tr->micro ? limit - start : tr->micro, rows[tr->micro];
        for (int b = 0; b < tr->micro; b++) rows[b] = start + (b < nb ? b : 0);
        rc = tp_agree(tr, dataset_read_rows(d, rows, tr->micro, tok, lab, mask));
        for (size_t i = (size_t)nb * d->T; i < (size_t)tr->micro * d->T; i++) lab[i] = -100;  // padding rows
        if (rc != AIL_OK) break;
        double s;
        long count;
        rc = engine_forward(&tr->eng, tok, d->mask >= 0 ? mask : NULL, lab, &s, &count);
        sums[0] += s, sums[1] += (double)count;
    }
    free(tok), free(lab), free(mask);
    AIL_CHECK(ail_error_agree(tr->comm, rc));
    MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, tr->dp_comm);  // tp ranks hold the same sums
    *loss = sums[1] > 0 ? sums[0] / sums[1] : NAN;
    return AIL_OK;
}

static char *str_dup(const char *s) {
    char *d = ail_malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

/* The text of generated tokens: detokenized, or the ids when the set has no /detok. */
static char *gen_text(const EvalData *x, const int32_t *tok, int n) {
    size_t cap;
    if (x->detok_off) {
        cap = 1;
        for (int i = 0; i < n; i++)
            if (tok[i] >= 0 && tok[i] < x->detok_V) cap += (size_t)(x->detok_off[tok[i] + 1] - x->detok_off[tok[i]]);
    } else {
        cap = (size_t)n * 12 + 1;
    }
    char *s = ail_malloc(cap);
    if (!s) return NULL;
    if (x->detok_off) {
        metric_detok(x->detok_off, x->detok_bytes, x->detok_V, tok, n, s, cap);
    } else {
        size_t w = 0;
        s[0] = '\0';
        for (int i = 0; i < n; i++) w += (size_t)snprintf(s + w, cap - w, "%s%d", i ? " " : "", tok[i]);
    }
    return s;
}

/* Decodes rows [lo, hi) (this replica's share) in batches of GEN_ROWS fitting rows
 * and scores them: recs[row - lo]. Unfit rows (no prompt or span, a span beyond the
 * budget, or prompt + new tokens beyond max_position_embeddings) are not decoded. */
static int score_generate(Trainer *tr, const Dataset *d, const EvalData *x, int mode, int ncomp, int lo, int hi,
                          EvalRec *recs) {
    int T = d->T, budget = gen_budget(tr, x), maxpos = tr->llm.cfg.max_position_embeddings;
    int rc = AIL_OK;
    int32_t *ids = ail_malloc(sizeof(int32_t) * T), *lab = ail_malloc(sizeof(int32_t) * T);
    int32_t *pr = ail_malloc(sizeof(int32_t) * T), *prompts = ail_malloc(sizeof(int32_t) * GEN_ROWS * T);
    int32_t *ans = ail_malloc(sizeof(int32_t) * GEN_ROWS * (budget + 1)), *out = ail_malloc(sizeof(int32_t) * GEN_ROWS * budget);
    int8_t *mask = ail_malloc((size_t)GEN_ROWS * T);
    if (rc == AIL_OK && !(ids && lab && pr && prompts && ans && out && mask)) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    rc = tp_agree(tr, rc);
    char **refs = NULL;
    int nrefs = 0;
    for (int r = lo; r < hi && rc == AIL_OK;) {
        int nb = 0, plen[GEN_ROWS], want[GEN_ROWS], rowof[GEN_ROWS], P = 0, nnew = 0;
        while (r < hi && nb < GEN_ROWS && rc == AIL_OK) {
            rc = tp_agree(tr, dataset_read_rows(d, &r, 1, ids, lab, NULL));
            if (rc != AIL_OK) break;
            int pl, span;
            evaldata_prompt(x, r, ids, lab, pr, &pl, &span);
            int w = mode == SCORE_TOKEN_EM ? span : budget;
            EvalRec *rec = &recs[r - lo];
            rec->row = r;
            rec->unfit = !(pl >= 1 && w >= 1 && w <= budget && pl + w - 1 <= maxpos);
            for (int c = 0; c < ncomp; c++) rec->score[c] = mode == SCORE_TOKEN_EM ? 0.0 : NAN;  // token EM: a miss
            if (rec->unfit) {  // every tp rank reads the same rows: all agree here, or one would hang
                rec->pred = str_dup("");
                rc = tp_agree(tr, rec->pred ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory"));
                r++;
                continue;
            }
            memcpy(prompts + (size_t)nb * T, pr, sizeof(int32_t) * pl);
            if (mode == SCORE_TOKEN_EM) {
                int first = 1;
                while (lab[first] == -100) first++;
                memcpy(ans + (size_t)nb * (budget + 1), lab + first, sizeof(int32_t) * w);
            }
            plen[nb] = pl, want[nb] = w, rowof[nb] = r;
            P = pl > P ? pl : P, nnew = w > nnew ? w : nnew;
            nb++, r++;
        }
        if (rc != AIL_OK || nb == 0) continue;
        int32_t *batch = ail_malloc(sizeof(int32_t) * (size_t)nb * P);
        int8_t *bm = ail_malloc((size_t)nb * P);
        int out_len[GEN_ROWS];
        rc = tp_agree(tr, batch && bm ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory"));
        for (int b = 0; b < nb && rc == AIL_OK; b++)  // left padding
            for (int s = 0; s < P; s++) {
                int k = s - (P - plen[b]);
                batch[(size_t)b * P + s] = k >= 0 ? prompts[(size_t)b * T + k] : 0;
                bm[(size_t)b * P + s] = (int8_t)(k >= 0);
            }
        // on the engine's device (a GPU run decodes on the GPU); T + budget slots in every call
        if (rc == AIL_OK)
            rc = engine_generate_greedy(&tr->eng, nb, T + budget, batch, bm, P, nnew,
                                        mode == SCORE_TEXT ? x->eos : NULL, mode == SCORE_TEXT ? x->neos : 0, out,
                                        out_len);
        free(batch), free(bm);
        for (int b = 0; b < nb && rc == AIL_OK; b++) {
            EvalRec *rec = &recs[rowof[b] - lo];
            const int32_t *o = out + (size_t)b * nnew;
            int n = mode == SCORE_TOKEN_EM ? want[b] : out_len[b];
            int shown = n;  // the text stops before the EOS token
            for (int e = 0; mode == SCORE_TEXT && shown > 0 && e < x->neos; e++)
                if (o[shown - 1] == x->eos[e]) shown--, e = -1;
            if (!(rec->pred = gen_text(x, o, shown))) {
                rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
                break;
            }
            if (mode == SCORE_TOKEN_EM) {
                rec->score[0] = !memcmp(o, ans + (size_t)b * (budget + 1), sizeof(int32_t) * n);
            } else {
                rc = metric_references_parse(x->references[rec->row], &refs, &nrefs);
                if (rc == AIL_OK) rc = metric_score(x->metric, rec->pred, refs, nrefs, rec->score);
                metric_references_free(refs, nrefs);
                refs = NULL;
            }
        }
        rc = tp_agree(tr, rc);
    }
    engine_generate_end(&tr->eng);  // the cache's memory goes back to training
    free(ids), free(lab), free(pr), free(prompts), free(ans), free(out), free(mask);
    return rc;
}

/* Log-likelihood of each row's scored tokens (multiple choice), rows [lo, hi) into
 * ll[row] (ll zeroed by the caller), through the masked prefill (llama_decode.h):
 * the training forward's cross entropy, with the v2 attention mask. */
static int score_loglik(Trainer *tr, const Dataset *d, const EvalData *x, int lo, int hi, double *ll) {
    int T = d->T, V = tr->llm.V;
    LlamaKV kv;
    int rc = llama_kv_alloc(&tr->llm, 1, T, T, &kv);
    int32_t *ids = ail_malloc(sizeof(int32_t) * T), *lab = ail_malloc(sizeof(int32_t) * T);
    real *logits = ail_malloc(sizeof(real) * (size_t)T * V);
    if (rc == AIL_OK && !(ids && lab && logits)) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    rc = tp_agree(tr, rc);
    for (int r = lo; r < hi && rc == AIL_OK; r++) {
        rc = tp_agree(tr, dataset_read_rows(d, &r, 1, ids, lab, NULL));
        if (rc == AIL_OK) rc = llama_kv_prefill(&tr->llm, &kv, ids, x->mask ? x->mask + (size_t)r * T : NULL, T, 1, logits);
        double sum = 0;
        for (int t = 0; t + 1 < T && rc == AIL_OK; t++) {
            int target = lab[t + 1];
            if (target == -100) continue;
            const real *row = logits + (size_t)t * V;
            double mx = row[0], s = 0;
            for (int v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            for (int v = 0; v < V; v++) s += exp((double)row[v] - mx);
            sum += (double)row[target] - mx - log(s);
        }
        ll[r] = sum;
        rc = tp_agree(tr, rc);
    }
    llama_kv_free(&kv);
    free(ids), free(lab), free(logits);
    return rc;
}

/* Gathers the records of every replica (tp rank 0's) to world rank 0 into res->ex,
 * in row order. */
static int gather_examples(Trainer *tr, EvalRec *recs, int nrec, int ncomp, EvalResult *res) {
    size_t size = 0;
    for (int i = 0; i < nrec; i++) size += 4 + 1 + 8 * (size_t)ncomp + 4 + strlen(recs[i].pred);
    unsigned char *buf = ail_malloc(size + 1), *p = buf;
    int rc = buf ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int i = 0; i < nrec && buf; i++) {
        int32_t len = (int32_t)strlen(recs[i].pred), row = recs[i].row;
        memcpy(p, &row, 4), p += 4;
        *p++ = (unsigned char)recs[i].unfit;
        memcpy(p, recs[i].score, 8 * (size_t)ncomp), p += 8 * (size_t)ncomp;
        memcpy(p, &len, 4), p += 4;
        memcpy(p, recs[i].pred, (size_t)len), p += len;
    }
    AIL_CHECK(ail_error_agree(tr->comm, rc));
    int mine = (int)size, dp_rank0 = tr->dp_rank == 0;
    int *sizes = dp_rank0 ? ail_calloc((size_t)tr->dp, sizeof(int)) : NULL, *displ = dp_rank0 ? ail_calloc((size_t)tr->dp, sizeof(int)) : NULL;
    MPI_Gather(&mine, 1, MPI_INT, sizes, 1, MPI_INT, 0, tr->dp_comm);
    long long total = 0;
    for (int i = 0; dp_rank0 && sizes && displ && i < tr->dp; i++) displ[i] = (int)total, total += sizes[i];
    unsigned char *all = dp_rank0 ? ail_malloc((size_t)total + 1) : NULL;
    rc = dp_rank0 && (!sizes || !displ || !all) ? AIL_ERROR(AIL_ERR_MEM, "out of memory") : AIL_OK;
    rc = ail_error_agree(tr->comm, rc);
    if (rc == AIL_OK) MPI_Gatherv(buf, mine, MPI_BYTE, all, sizes, displ, MPI_BYTE, 0, tr->dp_comm);
    free(buf), free(sizes), free(displ);
    if (rc != AIL_OK || tr->rank != 0) {
        free(all);
        return rc;
    }
    EvalExamples *ex = &res->ex;
    int n = 0;
    for (unsigned char *q = all; q < all + total; n++) {
        int32_t len;
        memcpy(&len, q + 5 + 8 * ncomp, 4);
        q += 4 + 1 + 8 * ncomp + 4 + len;
    }
    ex->n = n, ex->ncomp = ncomp;
    for (int c = 0; c < ncomp; c++)
        snprintf(ex->components + strlen(ex->components), sizeof ex->components - strlen(ex->components), "%s%s",
                 c ? "," : "", res->names[c]);
    ex->row = ail_malloc(sizeof(int32_t) * (n + 1)), ex->unfit = ail_malloc((size_t)n + 1);
    ex->score = ail_malloc(sizeof(double) * ((size_t)n * ncomp + 1)), ex->prediction = ail_calloc((size_t)n + 1, sizeof(char *));
    rc = ex->row && ex->unfit && ex->score && ex->prediction ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    // each replica's rows are contiguous and in order, replicas in dp order: row order
    unsigned char *q = all;
    for (int i = 0; i < n && rc == AIL_OK; i++) {
        int32_t len;
        memcpy(&ex->row[i], q, 4), q += 4;
        ex->unfit[i] = (int8_t)*q++;
        memcpy(ex->score + (size_t)i * ncomp, q, 8 * (size_t)ncomp), q += 8 * (size_t)ncomp;
        memcpy(&len, q, 4), q += 4;
        if (!(ex->prediction[i] = ail_malloc((size_t)len + 1))) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
        else memcpy(ex->prediction[i], q, (size_t)len), ex->prediction[i][len] = '\0';
        q += len;
    }
    free(all);
    return rc;
}

/* Loss, and the dataset's metric (evaldata.h, metrics.h) over rows [0, limit).
 * Decoding runs on the engine's device (engine_generate_greedy); mc scoring on the
 * host model (a GPU engine syncs it first);
 * each replica takes a contiguous share of the rows. */
static int evaluate_set(Trainer *tr, const Dataset *d, const EvalData *x, int examples, EvalResult *res) {
    memset(res, 0, sizeof *res);
    res->em = NAN;
    int limit = eval_limit(tr, d), mode = score_mode(tr, x);
    AIL_CHECK(eval_loss(tr, d, limit, &res->loss));
    if (mode == SCORE_NONE) return AIL_OK;
    res->measured = 1;
    res->ncomp = mode == SCORE_TOKEN_EM ? 1 : metric_components(x->metric, res->names);
    if (mode == SCORE_TOKEN_EM) res->names[0] = "exact_match";
    AIL_CHECK(ail_error_agree(tr->comm, engine_sync(&tr->eng, 1)));  // mc scoring reads the host copies
    if (mode == SCORE_MC) {
        while (limit < d->n && limit > 0 && x->mc_example[limit] == x->mc_example[limit - 1]) limit++;  // whole examples
        double *ll = ail_calloc((size_t)limit + 1, sizeof(double));
        int8_t *chosen = ail_calloc((size_t)limit + 1, 1);
        int rc = ail_error_agree(tr->comm, ll && chosen ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory"));
        int lo = (int)((long long)limit * tr->dp_rank / tr->dp), hi = (int)((long long)limit * (tr->dp_rank + 1) / tr->dp);
        if (rc == AIL_OK) rc = ail_error_agree(tr->comm, score_loglik(tr, d, x, lo, hi, ll));
        if (rc == AIL_OK) MPI_Allreduce(MPI_IN_PLACE, ll, limit, MPI_DOUBLE, MPI_SUM, tr->dp_comm);
        double acc = 0, accn = 0;
        int nex = 0;
        if (rc == AIL_OK)
            rc = ail_error_agree(tr->comm, metric_mc(limit, x->mc_example, x->mc_gold, ll, x->mc_chars, &acc, &accn, &nex, chosen));
        res->comp[0] = nex ? acc / nex : NAN, res->comp[1] = nex ? accn / nex : NAN, res->scored = nex;
        if (rc == AIL_OK && examples && tr->rank == 0) {  // one record per example: the chosen option, acc, acc_norm
            EvalExamples *ex = &res->ex;
            ex->ncomp = 2;
            snprintf(ex->components, sizeof ex->components, "mc_acc,mc_acc_norm");
            ex->row = ail_malloc(sizeof(int32_t) * (nex + 1)), ex->unfit = ail_calloc((size_t)nex + 1, 1);
            ex->score = ail_malloc(sizeof(double) * (2 * (size_t)nex + 1)), ex->prediction = ail_calloc((size_t)nex + 1, sizeof(char *));
            if (!ex->row || !ex->unfit || !ex->score || !ex->prediction) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
            for (int i = 0; i < limit && rc == AIL_OK;) {
                int j = i, gold = i, pick = i, pickn = i;
                for (; j < limit && x->mc_example[j] == x->mc_example[i]; j++) {
                    if (x->mc_gold[j]) gold = j;
                    if (chosen[j]) pick = j;
                    if (ll[j] / x->mc_chars[j] > ll[pickn] / x->mc_chars[pickn]) pickn = j;
                }
                char text[32];
                snprintf(text, sizeof text, "%d", pick - i);
                ex->row[ex->n] = i, ex->score[2 * ex->n] = pick == gold, ex->score[2 * ex->n + 1] = pickn == gold;
                if (!(ex->prediction[ex->n++] = str_dup(text))) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
                i = j;
            }
        }
        free(ll), free(chosen);
        return ail_error_agree(tr->comm, rc);
    }
    int lo = (int)((long long)limit * tr->dp_rank / tr->dp), hi = (int)((long long)limit * (tr->dp_rank + 1) / tr->dp);
    EvalRec *recs = ail_calloc((size_t)(hi - lo) + 1, sizeof *recs);
    int rc = ail_error_agree(tr->comm, recs ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory"));
    if (rc == AIL_OK) rc = ail_error_agree(tr->comm, score_generate(tr, d, x, mode, res->ncomp, lo, hi, recs));
    double sums[METRIC_MAX_COMPONENTS + 2] = {0};  // components, scored, unfit
    for (int i = 0; rc == AIL_OK && i < hi - lo; i++) {
        if (recs[i].unfit) sums[res->ncomp + 1] += 1;
        if (recs[i].unfit && mode != SCORE_TOKEN_EM) continue;  // token EM: a miss, as always
        for (int c = 0; c < res->ncomp; c++) sums[c] += recs[i].score[c];
        sums[res->ncomp] += 1;
    }
    if (rc == AIL_OK) MPI_Allreduce(MPI_IN_PLACE, sums, res->ncomp + 2, MPI_DOUBLE, MPI_SUM, tr->dp_comm);
    for (int c = 0; c < res->ncomp; c++) res->comp[c] = sums[res->ncomp] > 0 ? sums[c] / sums[res->ncomp] : NAN;
    res->scored = sums[res->ncomp], res->unfit = sums[res->ncomp + 1];
    // every rank joins (the gathers run per tp slice); world rank 0 keeps the records
    if (rc == AIL_OK && examples) rc = gather_examples(tr, recs, hi - lo, res->ncomp, res);
    for (int i = 0; i < hi - lo; i++) free(recs[i].pred);
    free(recs);
    for (int c = 0; c < res->ncomp; c++)
        if (!strcmp(res->names[c], "exact_match")) res->em = res->comp[c];
    return ail_error_agree(tr->comm, rc);
}

static int save(Trainer *tr, int checkpoint) {
    int rc = ail_error_agree(tr->comm, engine_sync(&tr->eng, 1));
    if (rc == AIL_OK && tr->tp > 1) rc = whole_sync(tr, 1);
    if (rc == AIL_OK && tr->rank == 0) {
        // Checkpoint first, then the run file: each commit is atomic (fileio.h), and a
        // kill between the two leaves the older run file next to the newer checkpoint,
        // which holds everything the run file does; the resume rewrites the run file.
        // The other order could leave a finished run file beside an unfinished checkpoint.
        if (checkpoint) {
            char path[1100];
            train_checkpoint_path(tr->cfg->out, path, sizeof path);
            rc = runfile_write(path, &tr->st, 1);
        }
        if (rc == AIL_OK) rc = runfile_write(tr->cfg->out, &tr->st, 0);
    }
    return ail_error_agree(tr->comm, rc);
}

/* ---- the outputs of a run: never clobbered, never mixed ---------------------------- */

/* A model directory written by llama_save holds files only: with doit 0 checks that
 * (overwrite=true refuses anything else before it deletes anything), with doit 1
 * deletes the files and the directory. */
static int model_dir_remove(const char *dir, int doit) {
    DIR *d = opendir(dir);
    if (!d)
        return AIL_ERROR(AIL_ERR_IO, "overwrite=true: out_model %s is not a directory: remove it yourself", dir);
    struct dirent *e;
    char path[4200];
    int rc = AIL_OK;
    while (rc == AIL_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            rc = AIL_ERROR(AIL_ERR_IO, "overwrite=true: out_model %s holds %s, not only model files: remove it "
                           "yourself", dir, e->d_name);
        else if (doit && unlink(path) != 0)
            rc = AIL_ERROR(AIL_ERR_IO, "cannot remove %s", path);
    }
    closedir(d);
    if (rc == AIL_OK && doit && rmdir(dir) != 0) rc = AIL_ERROR(AIL_ERR_IO, "cannot remove %s", dir);
    return rc;
}

/* Rank 0: the refusals of outputs_check. Sets tr->start. */
static int outputs_decide(Trainer *tr) {
    const TrainConfig *c = tr->cfg;
    char ckpt[1100];
    train_checkpoint_path(c->out, ckpt, sizeof ckpt);
    int have_out = file_exists(c->out), have_ckpt = file_exists(ckpt);
    int have_model = c->train_base && file_exists(c->out_model);
    tr->start = START_FRESH;
    if (!c->resume) {
        if (c->overwrite && have_model) return model_dir_remove(c->out_model, 0);
        if (c->overwrite || !(have_out || have_ckpt || have_model)) return AIL_OK;
        return AIL_ERROR(AIL_ERR_ARG, "%s %s already exists: a fresh run never replaces a run (resume=true "
                         "continues it, overwrite=true deletes it first)", have_out ? "out" : have_ckpt ? "checkpoint" :
                         "out_model", have_out ? c->out : have_ckpt ? ckpt : c->out_model);
    }
    // resume: the checkpoint (and a run file beside it) must hold this run's config
    const char *paths[2] = {ckpt, c->out};
    int have[2] = {have_ckpt, have_out};
    long ckpt_steps = 0;
    for (int i = 0; i < 2; i++) {
        if (!have[i]) continue;
        char *stored = NULL, refused[1024];
        long done;
        int nrefused = 0;
        int rc = runfile_read_head(paths[i], &stored, &done);
        if (rc == AIL_OK)
            rc = runfile_config_diff(stored, c, refused, sizeof refused, i ? refused : tr->changed,
                                     i ? sizeof refused : sizeof tr->changed, &nrefused);
        if (rc == AIL_OK && nrefused)
            rc = AIL_ERROR(AIL_ERR_ARG, "resume=true: %s holds a run of another config: %s (a resume may change only "
                           "steps (constant schedule), log_every, eval_every, checkpoint_every, checkpoint_minutes, "
                           "preempt_at_step, out, tp, dp, grad_accum, and the device at the same precision; use "
                           "another out, or overwrite=true without resume)", paths[i], refused);
        if (rc == AIL_OK && i == 0) {
            ckpt_steps = done;
            free(tr->config_text);  // the run file keeps the config the run was started with
            tr->config_text = stored, stored = NULL;
        }
        free(stored);
        AIL_CHECK(rc);
    }
    if (have_ckpt && ckpt_steps > c->steps)
        return AIL_ERROR(AIL_ERR_ARG, "resume=true: %s is at step %ld, beyond steps = %d", ckpt, ckpt_steps, c->steps);
    if (have_model && (!have_ckpt || ckpt_steps < c->steps))
        return AIL_ERROR(AIL_ERR_ARG, "out_model %s already exists but the run in %s is not finished", c->out_model,
                         c->out);
    tr->start = have_ckpt ? START_CHECKPOINT : START_FRESH;
    return AIL_OK;
}

/* Decides, before anything is read or written, how the run starts (rank 0 looks,
 * every rank agrees):
 *  - resume=false: `out`, its checkpoint (and, train_base, out_model) must not exist,
 *    unless overwrite=true (outputs_clear deletes them once setup has succeeded);
 *  - resume=true: a checkpoint must hold the same config up to the keys a resume may
 *    change (runfile_config_diff), and so must a run file; without a checkpoint the
 *    run starts from scratch (a job requeued before its first checkpoint). */
static int outputs_check(Trainer *tr) {
    int rc = tr->rank == 0 ? outputs_decide(tr) : AIL_OK;
    AIL_CHECK(ail_error_agree(tr->comm, rc));
    MPI_Bcast(&tr->start, 1, MPI_INT, 0, tr->comm);
    return AIL_OK;
}

/* overwrite=true: deletes the previous run (checkpoint first, then the run file,
 * then out_model), so nothing of it can be mixed into this one. */
static int outputs_clear(Trainer *tr) {
    const TrainConfig *c = tr->cfg;
    int rc = AIL_OK;
    if (tr->rank == 0 && c->overwrite) {
        char ckpt[1100];
        train_checkpoint_path(c->out, ckpt, sizeof ckpt);
        const char *paths[2] = {ckpt, c->out};
        int deleted = 0;
        for (int i = 0; i < 2 && rc == AIL_OK; i++)
            if (file_exists(paths[i]) && ++deleted && remove(paths[i]) != 0)
                rc = AIL_ERROR(AIL_ERR_IO, "overwrite=true: cannot remove %s", paths[i]);
        if (rc == AIL_OK && c->train_base && file_exists(c->out_model) && ++deleted)
            rc = model_dir_remove(c->out_model, 1);
        if (rc == AIL_OK && deleted) printf("overwrite=true: deleted the previous run in %s\n", c->out);
    }
    return ail_error_agree(tr->comm, rc);
}

static void format_eta(double seconds, char *buf, size_t len) {
    long s = (long)(seconds + 0.5);
    snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

static int setup(Trainer *tr) {
    const TrainConfig *c = tr->cfg;
    AIL_CHECK(outputs_check(tr));
    AIL_CHECK(ail_error_agree(tr->comm, hfmodel_open(c->model, &tr->model)));
    AIL_CHECK(fingerprint_model(tr->comm, &tr->model, tr->model_fp));  // recorded in run files
    if (!c->train_base)
        AIL_CHECK(ail_error_agree(tr->comm, hfmodel_targets(&tr->model, c->targets, &tr->targets, &tr->ntargets)));
    AIL_CHECK(ail_error_agree(tr->comm, llama_load_tp(&tr->model, tr->tp_comm, &tr->llm)));
    if (c->train_base) AIL_CHECK(ail_error_agree(tr->comm, llama_enable_base_grads(&tr->llm)));
    AIL_CHECK(ail_error_agree(tr->comm, dataset_load(c->train_data, tr->llm.V, &tr->train)));
    if (c->eval_data[0]) AIL_CHECK(ail_error_agree(tr->comm, dataset_load(c->eval_data, tr->llm.V, &tr->eval)));
    if (tr->eval.n && tr->eval.T != tr->train.T)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s has sequences of %d tokens, %s of %d", c->eval_data, tr->eval.T,
                         c->train_data, tr->train.T);
    if (c->retention_data[0])
        AIL_CHECK(ail_error_agree(tr->comm, dataset_load(c->retention_data, tr->llm.V, &tr->retention)));
    if (tr->retention.n && tr->retention.T != tr->train.T)  // its loss runs through the training engine
        return AIL_ERROR(AIL_ERR_FORMAT, "retention_data %s has sequences of %d tokens, %s of %d", c->retention_data,
                         tr->retention.T, c->train_data, tr->train.T);
    const Dataset *sets[2] = {&tr->eval, &tr->retention};
    EvalData *extras[2] = {&tr->evx, &tr->retx};
    for (int i = 0; i < 2; i++) {
        if (!sets[i]->n) continue;
        AIL_CHECK(ail_error_agree(tr->comm, evaldata_load(sets[i]->path, sets[i]->n, sets[i]->T, tr->llm.V, extras[i])));
        int mode = score_mode(tr, extras[i]);
        if (mode == SCORE_TEXT && gen_budget(tr, extras[i]) <= 0)
            return AIL_ERROR(AIL_ERR_ARG, "%s: metric %s decodes: give max_new_tokens (train key or dataset attribute)",
                             sets[i]->path, metric_name(extras[i]->metric));
    }
    tr->micro = c->batch_size / (tr->dp * c->grad_accum);  // every tp rank of a replica reads the same rows
    if (!c->train_base) AIL_CHECK(ail_error_agree(tr->comm, setup_adapters(tr)));
    OptimConfig oc = c->optim;
    oc.total_steps = c->steps;
    AIL_CHECK(ail_error_agree(tr->comm, adamw_init(&tr->opt, &oc, &tr->llm)));
    if (tr->tp > 1) AIL_CHECK(ail_error_agree(tr->comm, whole_alloc(tr)));
    // run files and checkpoints always hold whole modules, whatever the layout
    tr->st = (RunState){.cfg = c, .config_text = tr->config_text, .targets = tr->targets,
                        .ntargets = tr->ntargets, .init = tr->init,
                        .llm = tr->tp > 1 ? &tr->whole : &tr->llm, .opt = tr->tp > 1 ? &tr->whole_opt : &tr->opt,
                        .tp = tr->tp, .dp = tr->dp, .model_fingerprint = tr->model_fp};
    diaglog_init(&tr->st.diag, c->diagnostics && !c->train_base ? tr->ntargets : 0, c->rank,
                 c->diagnostics_k > 0 ? c->diagnostics_k : c->rank);
    if (c->resume && tr->start == START_FRESH && tr->rank == 0)
        printf("resume=true: no checkpoint %s.ckpt.h5 yet: starting from scratch\n", c->out);
    if (tr->start == START_CHECKPOINT) {
        char path[1100];
        train_checkpoint_path(c->out, path, sizeof path);
        int rc = checkpoint_read(path, &tr->st);
        if (rc == AIL_OK && tr->tp > 1) rc = whole_sync(tr, 0);
        if (rc == AIL_OK && tr->rank == 0 && tr->st.step < c->steps)  // recorded apart from the stored config
            rc = runstate_add_resume(&tr->st, tr->st.step, tr->changed);
        AIL_CHECK(ail_error_agree(tr->comm, rc));
        if (tr->rank == 0)
            printf("resuming %s at step %ld%s%s\n", c->out, tr->st.step, tr->changed[0] ? "; changed: " : "",
                   tr->changed);
        if (tr->rank == 0 && (tr->st.ckpt_tp != tr->tp || tr->st.ckpt_dp != tr->dp))
            printf("note: the checkpoint was written on tp=%d x dp=%d, this run is tp=%d x dp=%d: the curve continues "
                   "equal up to float rounding, not bit for bit\n", tr->st.ckpt_tp, tr->st.ckpt_dp, tr->tp, tr->dp);
    }
    AIL_CHECK(engine_create(&tr->eng, c->device, c->precision, &tr->llm, &tr->opt, tr->comm, tr->tp_comm,
                            tr->dp_comm, tr->micro, tr->train.T));
    return outputs_clear(tr);  // the last step of setup: a failed setup deletes nothing
}

static void teardown(Trainer *tr) {
    engine_free(&tr->eng);
    for (int i = 0; tr->init && i < tr->ntargets; i++) module_init_free(&tr->init[i]);
    free(tr->init);
    trainlog_free(&tr->st.train);
    evallog_free(&tr->st.eval);
    diaglog_free(&tr->st.diag);
    free(tr->ends);
    free(tr->ends_storage);
    runstate_free_resumes(&tr->st);
    whole_free(tr);
    adamw_free(&tr->opt);
    dataset_free(&tr->train);
    dataset_free(&tr->eval);
    dataset_free(&tr->retention);
    evaldata_free(&tr->evx);
    evaldata_free(&tr->retx);
    curvelog_free(&tr->st.eval_curves);
    curvelog_free(&tr->st.retention);
    for (int i = 0; i < tr->st.nexamples; i++) evalexamples_free(&tr->st.examples[i]);
    free(tr->st.examples);
    llama_free(&tr->llm);
    free(tr->targets);
    if (tr->model.shards) hfmodel_close(&tr->model);
    free(tr->config_text);
}

/* Rank 0: the spectral diagnostics of every target's update (updatediag.h) from the
 * current whole-module adapters, appended to the run's log. */
static int diagnostics_compute(Trainer *tr, long step) {
    const RunState *st = &tr->st;
    UpdateDiag *d = ail_calloc((size_t)tr->ntargets, sizeof *d);
    double *A = NULL, *B = NULL;
    int rc = d ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for diagnostics");
    for (int i = 0; i < tr->ntargets && rc == AIL_OK; i++) {
        const TargetModule *t = &tr->targets[i];
        const LoraAdapter *ad = st->llm->layers[t->layer].lora[llama_linear_index(t->suffix)];
        free(A), free(B);
        A = ail_malloc(sizeof(double) * (size_t)ad->r * ad->n);
        B = ail_malloc(sizeof(double) * (size_t)ad->m * ad->r);
        rc = A && B ? updatediag_alloc(ad->r, &d[i]) : AIL_ERROR(AIL_ERR_MEM, "out of memory for diagnostics");
        if (rc != AIL_OK) break;
        for (size_t j = 0; j < (size_t)ad->r * ad->n; j++) A[j] = ad->A[j];
        for (size_t j = 0; j < (size_t)ad->m * ad->r; j++) B[j] = ad->B[j];
        rc = updatediag_compute(ad->m, ad->n, ad->r, ad->scale, A, B, tr->init[i].A, tr->init[i].B, &tr->ends[i], &d[i]);
    }
    if (rc == AIL_OK) rc = diaglog_append(&tr->st.diag, step, d);
    for (int i = 0; d && i < tr->ntargets; i++) updatediag_free(&d[i]);
    free(d), free(A), free(B);
    return rc;
}

static int record_diagnostics(Trainer *tr, long step) {
    if (!tr->st.diag.ntargets) return AIL_OK;
    int rc = ail_error_agree(tr->comm, engine_sync(&tr->eng, 1));  // adapters to the host
    if (rc == AIL_OK && tr->tp > 1) rc = whole_sync(tr, 1);         // whole modules on rank 0
    if (rc == AIL_OK && tr->rank == 0) rc = diagnostics_compute(tr, step);
    return ail_error_agree(tr->comm, rc);
}

/* The curves of one evaluation result: metric components (the exact_match headline
 * lives in /eval/exact_match), scored and unfit counts. */
static int result_curves(const EvalResult *r, const char **names, double *vals) {
    int n = 0;
    for (int c = 0; c < r->ncomp; c++)
        if (strcmp(r->names[c], "exact_match")) names[n] = r->names[c], vals[n++] = r->comp[c];
    if (r->measured) names[n] = "scored", vals[n++] = r->scored, names[n] = "unfit", vals[n++] = r->unfit;
    return n;
}

static void print_result(const char *what, long step, const EvalResult *r) {
    printf("%s step %ld | loss %.4f | ppl %.3f", what, step, r->loss, exp(r->loss));
    if (!isnan(r->em)) printf(" | exact match %.4f", r->em);
    for (int c = 0; c < r->ncomp; c++)
        if (strcmp(r->names[c], "exact_match")) printf(" | %s %.4f", r->names[c], r->comp[c]);
    if (r->measured) printf(" | scored %.0f", r->scored);
    if (r->unfit > 0) printf(" | %.0f rows did not fit the position budget (not scored)", r->unfit);
    printf("\n");
    fflush(stdout);
}

static int record_eval(Trainer *tr, long step) {
    if (!tr->eval.n) return record_diagnostics(tr, step);
    EvalResult r;
    AIL_CHECK(evaluate_set(tr, &tr->eval, &tr->evx, 1, &r));
    const char *names[CURVES_MAX];
    double vals[CURVES_MAX];
    int n = result_curves(&r, names, vals), rc = AIL_OK;
    if (tr->rank == 0) {
        print_result("eval", step, &r);
        if (n) rc = curvelog_append(&tr->st.eval_curves, n, names, vals);
        if (rc == AIL_OK && r.ex.n) {  // the per-example record of this evaluation
            EvalExamples *grown = ail_realloc(tr->st.examples, sizeof *grown * (size_t)(tr->st.nexamples + 1));
            if (!grown) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
            else tr->st.examples = grown, r.ex.step = step, tr->st.examples[tr->st.nexamples++] = r.ex;
            if (rc == AIL_OK) memset(&r.ex, 0, sizeof r.ex);  // moved into the run state
        }
    }
    evalexamples_free(&r.ex);
    AIL_CHECK(ail_error_agree(tr->comm, rc));
    AIL_CHECK(ail_error_agree(tr->comm, evallog_append(&tr->st.eval, step, r.loss, r.em)));
    return record_diagnostics(tr, step);
}

/* The retention set (retention_data): before training (step 0) and with every
 * evaluation, so that forgetting shows as /retention/loss (and the metric) rising. */
static int record_retention(Trainer *tr, long step) {
    if (!tr->retention.n) return AIL_OK;
    EvalResult r;
    AIL_CHECK(evaluate_set(tr, &tr->retention, &tr->retx, 0, &r));
    const char *names[CURVES_MAX] = {"step", "loss", "ppl", "exact_match"};
    double vals[CURVES_MAX] = {(double)step, r.loss, exp(r.loss), r.em};
    int n = 4 + result_curves(&r, names + 4, vals + 4), rc = AIL_OK;
    if (tr->rank == 0) {
        print_result("retention", step, &r);
        rc = curvelog_append(&tr->st.retention, n, names, vals);
    }
    return ail_error_agree(tr->comm, rc);
}

/* A resume of a finished checkpoint: rewrites a run file left behind by a kill
 * between the final commits (or deleted), and writes out_model if it is missing. */
static int finish_outputs(Trainer *tr) {
    const TrainConfig *c = tr->cfg;
    int rc = AIL_OK;
    if (tr->rank == 0) {
        char *text = NULL;
        long done = -1;
        if (file_exists(c->out) && runfile_read_head(c->out, &text, &done) != AIL_OK) ail_error_clear();
        free(text);
        if (done < c->steps) {
            rc = runfile_write(c->out, &tr->st, 0);
            if (rc == AIL_OK) printf("rewrote %s from its checkpoint\n", c->out);
        }
        if (rc == AIL_OK && c->train_base && !file_exists(c->out_model)) {
            rc = llama_save(&tr->llm, &tr->model, c->out_model);
            if (rc == AIL_OK) printf("wrote the trained model to %s\n", c->out_model);
        }
    }
    return ail_error_agree(tr->comm, rc);
}

static int train_loop(Trainer *tr, int *status) {
    const TrainConfig *c = tr->cfg;
    int T = tr->train.T;
    size_t per = (size_t)tr->micro * T;
    int32_t *tok = ail_malloc(sizeof(int32_t) * per), *lab = ail_malloc(sizeof(int32_t) * per);
    int8_t *mask = ail_malloc(per);
    int *rows = ail_malloc(sizeof(int) * (size_t)tr->micro);
    if (ail_error_agree(tr->comm, tok && lab && mask && rows ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory")) !=
        AIL_OK) {
        free(tok), free(lab), free(mask), free(rows);
        return ail_error_code();
    }
    double t_begin = MPI_Wtime(), t_ckpt = t_begin;
    long first = tr->st.step;
    int rc = AIL_OK;
    *status = TRAIN_DONE;
    if (first == 0) rc = record_retention(tr, 0);  // the base model's retention, before any step
    while (tr->st.step < c->steps && rc == AIL_OK) {
        long step = tr->st.step;
        double t0 = MPI_Wtime(), loss_sum = 0.0;
        long total = global_scored(tr, step);
        Engine *e = &tr->eng;
        rc = engine_zero_grads(e);
        for (int j = 0; j < c->grad_accum && rc == AIL_OK; j++) {
            rc = tp_agree(tr, fill_micro(tr, step, j, rows, tok, lab, mask));  // before the tp forward
            if (rc != AIL_OK) break;
            double s;
            long count;
            rc = engine_forward(e, tok, tr->train.mask >= 0 ? mask : NULL, lab, &s, &count);
            if (rc == AIL_OK && total > 0) rc = engine_backward(e, lab, 1.0 / total);
            loss_sum += s;
        }
        rc = ail_error_agree(tr->comm, rc);
        if (rc == AIL_OK) rc = ail_error_agree(tr->comm, engine_allreduce_grads(e));
        double norm = 0;
        if (rc == AIL_OK) rc = ail_error_agree(tr->comm, engine_grad_norm(e, &norm));
        if (rc != AIL_OK) break;
        MPI_Allreduce(MPI_IN_PLACE, &loss_sum, 1, MPI_DOUBLE, MPI_SUM, tr->dp_comm);
        double loss = total > 0 ? loss_sum / total : 0.0;
        double lr = optim_lr(&tr->opt.cfg, (int)tr->opt.step);
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
        rc = ail_error_agree(tr->comm, engine_adamw_step(e, norm));
        if (rc != AIL_OK) break;
        tr->st.step = step + 1;
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, tr->comm);  // the slowest rank sets the pace
        double tps = (double)c->batch_size * T / dt;
        rc = ail_error_agree(tr->comm, trainlog_append(&tr->st.train, tr->st.step, loss, lr, norm, tps));
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
        if (rc == AIL_OK && c->eval_every > 0 && done % c->eval_every == 0 && done < c->steps)
            rc = record_retention(tr, done);
        // stop: a signal on any rank; due: checkpoint_minutes passed on rank 0's clock.
        // One reduction, so every rank checkpoints at the same step.
        int flags[2] = {g_stop_signal ? g_stop_signal : (done == c->preempt_at_step ? SIGUSR1 : 0),
                        tr->rank == 0 && c->checkpoint_minutes > 0 &&
                            MPI_Wtime() - t_ckpt >= 60.0 * c->checkpoint_minutes};
        MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, tr->comm);
        int stop = flags[0];
        int ckpt = (c->checkpoint_every > 0 && done % c->checkpoint_every == 0) || stop || flags[1];
        // the last step is saved after the final evaluation below, so a checkpoint at
        // `steps` is always the finished run
        if (rc == AIL_OK && done < c->steps && (ckpt || done % c->log_every == 0)) rc = save(tr, ckpt);
        if (ckpt) t_ckpt = MPI_Wtime();
        if (rc == AIL_OK && stop && done < c->steps) {
            if (tr->rank == 0)
                fprintf(stderr, "ailora train: signal %d: checkpointed at step %ld; resume with resume=true\n", stop, done);
            *status = TRAIN_PREEMPTED;
            break;
        }
    }
    free(tok), free(lab), free(mask), free(rows);
    if (rc == AIL_OK && *status == TRAIN_DONE && first == c->steps) {
        if (tr->rank == 0) printf("%s already holds all %d steps: nothing to do\n", c->out, c->steps);
        rc = finish_outputs(tr);
    } else if (rc == AIL_OK && *status == TRAIN_DONE) {
        rc = record_eval(tr, tr->st.step);
        if (rc == AIL_OK) rc = record_retention(tr, tr->st.step);
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
    if (rc == AIL_OK && strcmp(cfg->device, "cuda") == 0) {  // before any file is written
        const char *why = gpu_unavailable_reason();  // loads the CUDA plugin
        if (why) rc = AIL_ERROR(AIL_ERR_ARG, "device = cuda: %s", why);
        else if (gpu_device_count() == 0) rc = AIL_ERROR(AIL_ERR_ARG, "device = cuda: no CUDA device visible");
        rc = ail_error_agree(comm, rc);
    }
    if (rc == AIL_OK && cfg->tp > 1 && cfg->train_base)
        rc = AIL_ERROR(AIL_ERR_ARG, "train_base = true supports tp = 1 only (tp = %d given)", cfg->tp);
    if (rc == AIL_OK) {
        // consecutive ranks form one model replica: tensor parallelism stays within a node
        tr.tp = cfg->tp, tr.dp = world / cfg->tp;
        tr.tp_rank = tr.rank % tr.tp, tr.dp_rank = tr.rank / tr.tp;
        MPI_Comm_split(comm, tr.dp_rank, tr.tp_rank, &tr.tp_comm);
        MPI_Comm_split(comm, tr.tp_rank, tr.dp_rank, &tr.dp_comm);
    }
    TrainConfig run = *cfg;  // the run's config, not how ailora was invoked this time
    run.resume = run.overwrite = 0;
    tr.config_text = config_dump(&run);
    if (rc == AIL_OK) rc = ail_error_agree(comm, tr.config_text ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory"));
    if (rc == AIL_OK) rc = setup(&tr);
    if (rc == AIL_OK) rc = train_loop(&tr, &status);
    teardown(&tr);
    if (tr.tp_comm != MPI_COMM_NULL) MPI_Comm_free(&tr.tp_comm);
    if (tr.dp_comm != MPI_COMM_NULL) MPI_Comm_free(&tr.dp_comm);
    return rc == AIL_OK ? status : TRAIN_ERROR;
}
