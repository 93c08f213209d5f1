/* test_gpu_decode.c - greedy generation on the GPU (gpu_generate_greedy, gpu.h)
 * against the CPU KV-cache decoder it replaces in evaluation (llama_generate_greedy,
 * llama_decode.h), on the same model.
 *
 * Models (tests/reference): tiny_llama (the model of the GPU fixture gpu_tiny.bin:
 * GQA 4/2 heads, untied, no biases), bias_llama (biases on all seven linears),
 * train_qwen2 (q/k/v biases, tied embeddings); each with seeded random rank-3
 * adapters on all seven modules (B nonzero, so they change the output: column- and
 * row-parallel paths), the same on the CPU Llama and on the GpuModel built from it
 * as src/train/engine.c builds it. One batch of 4 prompts of 7, 3, 1 and 5 tokens,
 * left-padded to 7 slots; 12 new tokens; the cache exactly P + max_new - 1 slots.
 *
 * Checks, per model:
 *   fp32  tokens and out_len equal to the CPU's, token for token: without EOS, and
 *         with an EOS id (the token row 0 generates third: rows stop at different
 *         steps, the EOS kept and counted); then rows 2..3 alone in a smaller batch
 *         (the cache reused) and the whole batch with a larger cache (reallocated).
 *   bf16  tokens equal to the CPU's, token for token, until the first step where
 *         they differ; there the CPU's top-2 logit margin must be below MARGIN_TOL *
 *         max|logit| of that step (a near tie, which bf16 rounding may decide the
 *         other way; the row is not compared further). Why 5e-2: bf16 keeps 8
 *         significant bits (unit roundoff 2^-9 = 2e-3); each layer rounds its
 *         activations ~10 times and the errors add up roughly as a random walk,
 *         ~sqrt(20) * 2e-3 = 1e-2 of the logits' scale (test_gpu_train.c's
 *         argument; its bf16 gradient tolerance is 5e-2); a flip needs the top two
 *         logits to move apart by the margin, up to ~2e-2 of the scale; 5e-2 leaves
 *         a factor 2.5. At least a third of all generated tokens must be equal, so
 *         the check is never vacuous (the emulation gives 38, 48 and 48 of 48: the
 *         random tiny models have many near ties, so a device may part earlier).
 *   bad   S too small, max_new 0, a row without a real token (all padding), a
 *         token outside the vocabulary: an error code and one message, no crash.
 * Exit status: 0 all pass, 1 a failure, 77 no GPU (skip).
 * Built by tests/gpu_emu.sh against the CPU emulation (tests/gpu/cuda_emu.cpp) and
 * by experiments/bench/gpu.sh against the real backend in libailora.a.
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/gpu.h"
#include "ailora/hfmodel.h"
#include "ailora/llama.h"
#include "ailora/llama_decode.h"

enum { NB = 4, P = 7, NEW = 12, RANK = 3, S = P + NEW - 1 };
static const int lens[NB] = {7, 3, 1, 5};
static const double MARGIN_TOL = 5e-2;

static int failures;

static void check(int ok, const char *fmt, const char *a, const char *b) {
    printf("%s ", ok ? "PASS" : "FAIL");
    printf(fmt, a, b);
    printf("\n");
    failures += !ok;
}

static uint64_t lcg = 12345;
static double urand(void) {  // in [-1, 1)
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / (double)(1ULL << 52) - 1.0;
}

static int setup(const char *dir, HFModel *model, Llama *llm) {
    AIL_CHECK(hfmodel_open(dir, model));
    AIL_CHECK(llama_load_tp(model, MPI_COMM_NULL, llm));
    lcg = 777;
    int qd = llm->nh * llm->hd, kd = llm->nkv * llm->hd;
    const int out[7] = {qd, kd, kd, llm->H, llm->I, llm->I, llm->H};
    const int in[7] = {llm->H, llm->H, llm->H, qd, llm->H, llm->H, llm->I};
    for (int l = 0; l < llm->L; l++)
        for (int lin = 0; lin < LIN_COUNT; lin++) {
            int m = out[lin], n = in[lin];
            double *A = malloc(sizeof(double) * RANK * n), *B = malloc(sizeof(double) * m * RANK);
            if (!A || !B) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
            for (int i = 0; i < RANK * n; i++) A[i] = 0.3 * urand();
            for (int i = 0; i < m * RANK; i++) B[i] = 0.3 * urand();
            int rc = llama_adapter_attach(llm, l, lin, RANK, 1.5, A, B);
            free(A), free(B);
            AIL_CHECK(rc);
        }
    return AIL_OK;
}

/* The GpuModel of the CPU Llama (as src/train/engine.c's gpu_create_engine). */
static int gpu_of(const Llama *l, GpuPrecision prec, GpuModel **out) {
    GpuLayerSpec layers[16];
    memset(layers, 0, sizeof layers);
    if (l->L > 16) return AIL_ERROR(AIL_ERR_ARG, "test model of %d layers", l->L);
    for (int i = 0; i < l->L; i++) {
        const LlamaLayer *ly = &l->layers[i];
        layers[i].ln1 = ly->ln1, layers[i].ln2 = ly->ln2;
        for (int j = 0; j < LIN_COUNT; j++) {
            layers[i].w[j] = ly->w[j], layers[i].bias[j] = ly->bias[j];
            const LoraAdapter *ad = ly->lora[j];
            if (ad) layers[i].lora[j] = (GpuAdapterSpec){ad->m, ad->n, ad->r, ad->scale, ad->A, ad->B};
        }
    }
    GpuModelSpec spec = {.H = l->H, .I = l->I, .V = l->V, .L = l->L, .nh = l->nh, .nkv = l->nkv, .hd = l->hd,
                         .rms_eps = l->cfg.rms_norm_eps, .max_pos = l->cfg.max_position_embeddings,
                         .rope_cos = l->rope_cos, .rope_sin = l->rope_sin, .embed = l->embed,
                         .final_norm = l->final_norm, .lm_head = l->lm_head, .layers = layers,
                         .tp_size = 1, .tp_rank = 0};
    return gpu_model_create(&spec, prec, 2, 8, NULL, out);  // the training shape does not matter here
}

/* Number of rows b whose tokens and lengths differ; first row/step of a difference in *where. */
static int compare(const int32_t *a, const int *alen, const int32_t *b, const int *blen, int rows, int stride,
                   int *same_tokens) {
    int bad = 0;
    *same_tokens = 0;
    for (int r = 0; r < rows; r++) {
        int k = 0;
        while (k < alen[r] && k < blen[r] && a[r * stride + k] == b[r * stride + k]) k++;
        *same_tokens += k;
        bad += !(alen[r] == blen[r] && k == alen[r]);
    }
    return bad;
}

typedef struct {
    const char *what;
    int B, S, max_new;
    int8_t *mask;
    int32_t *tok;
} BadInput;

static void check_model(const char *srcdir, const char *name) {
    char dir[1024], what[256], detail[512];
    snprintf(dir, sizeof dir, "%s/tests/reference/%s", srcdir, name);
    HFModel model;
    Llama llm;
    if (setup(dir, &model, &llm) != AIL_OK) {
        check(0, "%s: setup: %s", name, ail_error_message());
        ail_error_clear();
        return;
    }
    int V = llm.V;
    int32_t tok[NB * P], cpu0[NB * NEW], cpu[NB * NEW], gpu[NB * NEW];
    int8_t mask[NB * P];
    int len0[NB], len[NB], glen[NB], same;
    lcg = 99;
    for (int b = 0; b < NB; b++)
        for (int s = 0; s < P; s++) {
            int real_tok = s >= P - lens[b];
            tok[b * P + s] = real_tok ? (int)((urand() + 1) * 0.5 * V) % V : 0;
            mask[b * P + s] = (int8_t)real_tok;
        }

    // the CPU reference: without EOS, then with the token row 0 generates third
    LlamaKV kv;
    int rc = llama_kv_alloc(&llm, NB, S, NB * P, &kv);
    if (rc == AIL_OK) rc = llama_generate_greedy(&llm, &kv, tok, mask, P, NEW, NULL, 0, cpu0, len0);
    int32_t eos = cpu0[2];
    if (rc == AIL_OK) rc = llama_generate_greedy(&llm, &kv, tok, mask, P, NEW, &eos, 1, cpu, len);
    llama_kv_free(&kv);
    if (rc != AIL_OK) {
        check(0, "%s: CPU decoding: %s", name, ail_error_message());
        ail_error_clear();
        llama_free(&llm), hfmodel_close(&model);
        return;
    }
    int stopped = 0;
    for (int b = 0; b < NB; b++) stopped += len[b] < NEW;

    // fp32: token for token
    GpuModel *m;
    if (gpu_of(&llm, GPU_FP32, &m) != AIL_OK) {
        check(0, "%s: fp32 create: %s", name, ail_error_message());
        ail_error_clear();
    } else {
        rc = gpu_generate_greedy(m, NB, S, tok, mask, P, NEW, NULL, 0, gpu, glen);
        snprintf(what, sizeof what, "%s fp32", name);
        snprintf(detail, sizeof detail, "%s", rc == AIL_OK ? "" : ail_error_message());
        int bad = rc == AIL_OK ? compare(gpu, glen, cpu0, len0, NB, NEW, &same) : NB;
        snprintf(detail + strlen(detail), sizeof detail - strlen(detail),
                 " (no EOS: %d of %d tokens equal, %d rows differ)", rc == AIL_OK ? same : 0, NB * NEW, bad);
        check(rc == AIL_OK && !bad, "%s: greedy tokens == llama_generate_greedy%s", what, detail);
        ail_error_clear();

        rc = gpu_generate_greedy(m, NB, S, tok, mask, P, NEW, &eos, 1, gpu, glen);
        bad = rc == AIL_OK ? compare(gpu, glen, cpu, len, NB, NEW, &same) : NB;
        snprintf(detail, sizeof detail, "%s (EOS %d stops %d of %d rows early; out_len %d %d %d %d vs CPU %d %d %d %d)",
                 rc == AIL_OK ? "" : ail_error_message(), eos, stopped, NB, glen[0], glen[1], glen[2], glen[3], len[0],
                 len[1], len[2], len[3]);
        check(rc == AIL_OK && !bad && stopped > 0 && stopped < NB, "%s: EOS stops rows, kept and counted%s", what,
              detail);
        ail_error_clear();

        int32_t sub[2 * NEW];
        int sublen[2];
        rc = gpu_generate_greedy(m, 2, S, tok + 2 * P, mask + 2 * P, P, NEW, &eos, 1, sub, sublen);
        bad = rc == AIL_OK ? compare(sub, sublen, cpu + 2 * NEW, len + 2, 2, NEW, &same) : 2;
        check(rc == AIL_OK && !bad, "%s: rows 2..3 alone (cache reused)%s", what, rc == AIL_OK ? "" : ail_error_message());
        ail_error_clear();

        int32_t big[NB * 20];
        int biglen[NB];
        rc = gpu_generate_greedy(m, NB, S + 12, tok, mask, P, NEW, NULL, 0, big, biglen);
        int32_t bigc[NB * NEW];
        for (int b = 0; b < NB; b++) memcpy(bigc + b * NEW, big + b * NEW, sizeof(int32_t) * NEW);
        bad = rc == AIL_OK ? compare(bigc, biglen, cpu0, len0, NB, NEW, &same) : NB;
        check(rc == AIL_OK && !bad, "%s: a larger cache (reallocated)%s", what, rc == AIL_OK ? "" : ail_error_message());
        ail_error_clear();

        // bad input: one error each, nothing generated
        BadInput bad_in[4];
        int8_t empty[NB * P];
        int32_t outside[NB * P];
        memcpy(empty, mask, sizeof mask);
        memset(empty + P, 0, P);  // row 1: no real token
        memcpy(outside, tok, sizeof tok);
        outside[P - 1] = V;
        bad_in[0] = (BadInput){"S too small", NB, S - 1, NEW, mask, tok};
        bad_in[1] = (BadInput){"max_new 0", NB, S, 0, mask, tok};
        bad_in[2] = (BadInput){"a row of padding only", NB, S, NEW, empty, tok};
        bad_in[3] = (BadInput){"a token outside the vocabulary", NB, S, NEW, mask, outside};
        for (int i = 0; i < 4; i++) {
            for (int b = 0; b < NB; b++) glen[b] = -1;
            rc = gpu_generate_greedy(m, bad_in[i].B, bad_in[i].S, bad_in[i].tok, bad_in[i].mask, P, bad_in[i].max_new,
                                     NULL, 0, gpu, glen);
            const char *msg = ail_error_message();
            int one_line = msg[0] && !strchr(msg, '\n');
            snprintf(detail, sizeof detail, "%s: \"%s\"", bad_in[i].what, msg);
            check(rc != AIL_OK && one_line && glen[0] == 0 && glen[NB - 1] == 0, "%s: bad input, %s", name, detail);
            ail_error_clear();
        }
        gpu_model_free(m);
    }

    // bf16: the CPU's tokens up to its first low-margin step
    if (gpu_of(&llm, GPU_BF16, &m) != AIL_OK) {
        check(0, "%s: bf16 create: %s", name, ail_error_message());
        ail_error_clear();
    } else {
        rc = gpu_generate_greedy(m, NB, S, tok, mask, P, NEW, NULL, 0, gpu, glen);
        int agree = 0, ties = 0, bad = rc != AIL_OK;
        double min_margin = INFINITY;  // the smallest relative CPU margin among the agreeing steps
        double part_margin = 0;        // the largest where a row parts
        for (int b = 0; b < NB && rc == AIL_OK; b++) {
            // CPU logits along the CPU's own tokens: one prefill of prompt + generated
            int n = lens[b] + NEW;
            int32_t seq[P + NEW];
            memcpy(seq, tok + b * P + P - lens[b], sizeof(int32_t) * lens[b]);
            memcpy(seq + lens[b], cpu0 + b * NEW, sizeof(int32_t) * NEW);
            real *lg = malloc(sizeof(real) * (size_t)n * V);
            LlamaKV one;
            if (!lg || llama_kv_alloc(&llm, 1, n, n, &one) != AIL_OK) {
                bad = 1;
                free(lg);
                break;
            }
            if (llama_kv_prefill(&llm, &one, seq, NULL, n, 1, lg) != AIL_OK) bad = 1;
            llama_kv_free(&one);
            for (int k = 0; k < NEW && !bad; k++) {
                const real *row = lg + (size_t)(lens[b] - 1 + k) * V;  // predicts generated token k
                double top = -INFINITY, second = -INFINITY, scale = 0;
                for (int v = 0; v < V; v++) {
                    double x = row[v];
                    scale = fabs(x) > scale ? fabs(x) : scale;
                    if (x > top) second = top, top = x;
                    else if (x > second) second = x;
                }
                double margin = (top - second) / (scale > 0 ? scale : 1);
                if (gpu[b * NEW + k] == cpu0[b * NEW + k]) {  // the same token: the sequences still agree
                    agree++;
                    min_margin = margin < min_margin ? margin : min_margin;
                    continue;
                }
                if (margin >= MARGIN_TOL) bad = 1;  // a clear choice decided differently
                else ties++, part_margin = margin > part_margin ? margin : part_margin;  // a near tie: may part
                break;
            }
            free(lg);
        }
        snprintf(what, sizeof what, "%s bf16", name);
        snprintf(detail, sizeof detail, "%s (%d of %d tokens equal, %d rows part at a near tie (CPU margin <= %.4f of "
                 "max|logit|); smallest CPU margin at an equal token %.4f; tolerance %.2f)",
                 rc == AIL_OK ? "" : ail_error_message(), agree, NB * NEW, ties, part_margin, min_margin, MARGIN_TOL);
        check(rc == AIL_OK && !bad && 3 * agree >= NB * NEW, "%s: greedy tokens == CPU's up to a near tie%s",
              what, detail);
        ail_error_clear();
        gpu_model_free(m);
    }
    llama_free(&llm);
    hfmodel_close(&model);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    const char *srcdir = argc > 1 ? argv[1] : ".";
    if (gpu_device_count() == 0) {
        printf("SKIP no CUDA device\n");
        MPI_Finalize();
        return 77;
    }
    if (gpu_select_device(0) != AIL_OK) {
        printf("FAIL select device: %s\n", ail_error_message());
        MPI_Finalize();
        return 1;
    }
    const char *models[] = {"tiny_llama", "bias_llama", "train_qwen2"};
    for (int i = 0; i < 3; i++) check_model(srcdir, models[i]);
    printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
    MPI_Finalize();
    return failures ? 1 : 0;
}
