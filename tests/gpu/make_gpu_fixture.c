/* make_gpu_fixture.c - writes tests/reference/gpu_tiny.bin (layout: gpu_fixture.h)
 * from ailora's own CPU engine: tests/reference/tiny_llama (GQA 4/2 heads, no
 * biases), r = 4 adapters on all 7 modules of both layers, two inits, 20 AdamW
 * steps on random token batches.
 *
 * Build (after configure + make libailora.a in a VPATH dir, here /tmp/gpubuild):
 *   mpicc -O2 -std=c11 -Iinclude -I/tmp/gpubuild -I/usr/include/hdf5/openmpi \
 *     tests/gpu/make_gpu_fixture.c /tmp/gpubuild/libailora.a $(the AILORA_LIBS of Makefile) -o /tmp/mkfix
 *   /tmp/mkfix tests/reference/tiny_llama tests/reference/gpu_tiny.bin
 * (tests/gpu/make_gpu_fixture.sh does exactly this.)
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lapack.h"
#include "ailora/adapter.h"
#include "ailora/error.h"
#include "ailora/hfmodel.h"
#include "ailora/llama.h"
#include "ailora/optim.h"
#include "gpu_fixture.h"

enum { B = 4, T = 32, STEPS = 20, R = 4 };
static const double ALPHA = 8.0;

static const char *const suffix[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

static void die(const char *what) {
    fprintf(stderr, "make_gpu_fixture: %s: %s\n", what, ail_error_message());
    exit(1);
}

static void put(FILE *f, const void *p, size_t size, size_t n) {
    if (fwrite(p, size, n, f) != n) {
        fprintf(stderr, "make_gpu_fixture: write failed\n");
        exit(1);
    }
}

/* SVD-initialized adapter of W (m, n) float: ailora selection (q_proj principal,
 * v_proj minor, others principal); W is replaced by its residual W - s B A. */
static void svd_init(float *W, int m, int n, int lin, double scale, double *A, double *Bm) {
    int k = m < n ? m : n, lwork = -1, info;
    double *Wc = malloc(sizeof(double) * m * n), *S = malloc(sizeof(double) * k);
    double *U = malloc(sizeof(double) * m * k), *VT = malloc(sizeof(double) * k * n), wq;
    int *iwork = malloc(sizeof(int) * 8 * k);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) Wc[i + (size_t)j * m] = W[(size_t)i * n + j];  // column-major copy
    dgesdd_("S", &m, &n, Wc, &m, S, U, &m, VT, &k, &wq, &lwork, iwork, &info, 1);
    lwork = (int)wq;
    double *work = malloc(sizeof(double) * lwork);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) Wc[i + (size_t)j * m] = W[(size_t)i * n + j];
    dgesdd_("S", &m, &n, Wc, &m, S, U, &m, VT, &k, work, &lwork, iwork, &info, 1);
    if (info != 0) {
        fprintf(stderr, "make_gpu_fixture: dgesdd info %d\n", info);
        exit(1);
    }
    int sel[R], p = lin == 2 ? 0 : R;  // v_proj minor, the rest principal
    init_select(k, R, p, sel);
    double S_I[R], *U_I = malloc(sizeof(double) * m * R), *Vt_I = malloc(sizeof(double) * R * n);
    for (int c = 0; c < R; c++) {
        S_I[c] = S[sel[c]];
        for (int i = 0; i < m; i++) U_I[(size_t)i * R + c] = U[i + (size_t)sel[c] * m];
        for (int j = 0; j < n; j++) Vt_I[(size_t)c * n + j] = VT[sel[c] + (size_t)j * k];
    }
    adapter_from_svd(m, n, R, scale, S_I, U_I, Vt_I, A, Bm);
    double *Wd = malloc(sizeof(double) * m * n), *Wr = malloc(sizeof(double) * m * n);
    for (size_t i = 0; i < (size_t)m * n; i++) Wd[i] = W[i];
    adapter_residual(m, n, R, scale, Wd, A, Bm, Wr);
    for (size_t i = 0; i < (size_t)m * n; i++) W[i] = (float)Wr[i];
    free(Wc), free(S), free(U), free(VT), free(iwork), free(work), free(U_I), free(Vt_I), free(Wd), free(Wr);
}

static void put_adapters(FILE *f, const Llama *llm, int grads) {
    for (int l = 0; l < llm->L; l++)
        for (int i = 0; i < 7; i++) {
            const LoraAdapter *ad = llm->layers[l].lora[i];
            put(f, grads ? ad->dA : ad->A, sizeof(float), (size_t)ad->r * ad->n);
            put(f, grads ? ad->dB : ad->B, sizeof(float), (size_t)ad->m * ad->r);
        }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc != 3) {
        fprintf(stderr, "usage: make_gpu_fixture MODEL_DIR OUT.bin\n");
        return 2;
    }
    HFModel model;
    if (hfmodel_open(argv[1], &model) != AIL_OK) die("open");
    Llama llm;
    if (llama_load(&model, &llm) != AIL_OK) die("load");
    if (llm.cfg.attention_bias || llm.cfg.tie_word_embeddings) {
        fprintf(stderr, "make_gpu_fixture: want an untied model without biases\n");
        return 1;
    }
    FILE *f = fopen(argv[2], "wb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    int hdr[GF_NHDR] = {llm.H, llm.I, llm.V, llm.L, llm.nh, llm.nkv, llm.hd, llm.cfg.max_position_embeddings, B,
                        T, STEPS, R, 2};
    OptimConfig oc = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01,
                      .grad_clip = 1.0, .schedule = SCHEDULE_CONSTANT, .total_steps = STEPS};
    double scale = ALPHA / R;
    double hyp[GF_NHYP] = {llm.cfg.rms_norm_eps, scale, oc.lr, oc.beta1, oc.beta2, oc.eps, oc.weight_decay,
                           oc.grad_clip};
    put(f, "AILGPU1", 1, 8);
    put(f, hdr, sizeof(int), GF_NHDR);
    put(f, hyp, sizeof(double), GF_NHYP);
    size_t rope = (size_t)hdr[GF_MAXPOS] * (llm.hd / 2);
    put(f, llm.rope_cos, sizeof(float), rope);
    put(f, llm.rope_sin, sizeof(float), rope);
    // token batches (two, alternating): uniform ids, labels = tokens (HF), the first two and ~1/8 at random unscored
    size_t ntok = (size_t)STEPS * B * T;
    int32_t *tok = malloc(sizeof(int32_t) * ntok), *lab = malloc(sizeof(int32_t) * ntok);
    unsigned long long s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < ntok; i++) {
        if (i >= 2 * (size_t)B * T) {  // two batches, alternating: the adapters can memorize them
            tok[i] = tok[i - 2 * (size_t)B * T], lab[i] = lab[i - 2 * (size_t)B * T];
            continue;
        }
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        tok[i] = (int32_t)((s >> 11) % (unsigned)llm.V);
        lab[i] = (i % T) < 2 || ((s >> 40) & 7) == 0 ? -100 : tok[i];
    }
    put(f, tok, sizeof(int32_t), ntok);
    put(f, lab, sizeof(int32_t), ntok);
    llama_free(&llm);

    int out[7], in[7];
    gf_shapes(hdr, out, in);
    for (int init = 0; init < 2; init++) {
        if (llama_load(&model, &llm) != AIL_OK) die("load");
        InitSpec spec = {.method = INIT_LORA, .rank = R, .alpha = ALPHA, .ratio_other = 1.0, .seed = 1234};
        for (int l = 0; l < llm.L; l++)
            for (int i = 0; i < 7; i++) {
                double *A = malloc(sizeof(double) * R * in[i]), *Bm = malloc(sizeof(double) * out[i] * R);
                char name[128];
                snprintf(name, sizeof name, "model.layers.%d.%s.%s", l, i < 4 ? "self_attn" : "mlp", suffix[i]);
                if (init == 0) adapter_lora_random(&spec, name, out[i], in[i], A, Bm);
                else svd_init(llm.layers[l].w[i], out[i], in[i], i, scale, A, Bm);
                if (llama_adapter_attach(&llm, l, i, R, scale, A, Bm) != AIL_OK) die("attach");
                free(A), free(Bm);
            }
        put(f, llm.embed, sizeof(float), (size_t)llm.V * llm.H);
        put(f, llm.final_norm, sizeof(float), llm.H);
        put(f, llm.lm_head, sizeof(float), (size_t)llm.V * llm.H);
        for (int l = 0; l < llm.L; l++) {
            put(f, llm.layers[l].ln1, sizeof(float), llm.H);
            put(f, llm.layers[l].ln2, sizeof(float), llm.H);
            for (int i = 0; i < 7; i++) put(f, llm.layers[l].w[i], sizeof(float), (size_t)out[i] * in[i]);
        }
        put_adapters(f, &llm, 0);
        LlamaActs a;
        AdamW opt;
        if (llama_acts_alloc(&llm, B, T, &a) != AIL_OK || adamw_init(&opt, &oc, &llm) != AIL_OK) die("alloc");
        double losses[STEPS], norms[STEPS];
        float *g1 = NULL;
        size_t ng = 0;
        for (int step = 0; step < STEPS; step++) {
            const int32_t *tk = tok + (size_t)step * B * T, *lb = lab + (size_t)step * B * T;
            double sum;
            long count;
            llama_zero_grads(&llm);
            if (llama_forward(&llm, &a, tk, lb, &sum, &count) != AIL_OK) die("forward");
            if (llama_backward(&llm, &a, lb, 1.0 / count) != AIL_OK) die("backward");
            losses[step] = sum / count;
            norms[step] = adamw_grad_norm(&opt);
            if (step == 0) {  // keep the step-1 gradients
                for (int k = 0; k < opt.count; k++) ng += opt.params[k].n;
                g1 = malloc(sizeof(float) * ng);
                size_t o = 0;
                for (int k = 0; k < opt.count; k++)
                    memcpy(g1 + o, opt.params[k].g, sizeof(float) * opt.params[k].n), o += opt.params[k].n;
            }
            adamw_step(&opt, norms[step]);
            printf("init %d step %2d loss %.7f grad norm %.6e\n", init, step, losses[step], norms[step]);
        }
        put(f, losses, sizeof(double), STEPS);
        put(f, norms, sizeof(double), STEPS);
        put(f, g1, sizeof(float), ng);  // adamw_init's order: layer, module, A then B
        put_adapters(f, &llm, 0);
        free(g1);
        adamw_free(&opt);
        llama_acts_free(&a);
        llama_free(&llm);
    }
    free(tok), free(lab);
    fclose(f);
    hfmodel_close(&model);
    MPI_Finalize();
    return 0;
}
