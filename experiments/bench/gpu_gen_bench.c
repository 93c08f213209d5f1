/* gpu_gen_bench.c MODEL_DIR B P NEW [REPS] - greedy generation speed on the GPU
 * (gpu_generate_greedy, gpu.h) against the host decoder (llama_generate_greedy,
 * llama_decode.h, every OpenMP thread) on the same model, prompts, batch and
 * adapters, in one process: the evaluation path of a device=cuda run before and
 * after issue 12 item 3.
 *
 * Prompts: B rows of 1 + (b * 37) % P real tokens (seeded random ids), left-padded
 * to P slots; NEW new tokens per row, no EOS (every row runs the whole budget, so
 * tokens/s = B * NEW / time). Adapters: rank 16 on q_proj and v_proj (seeded, B
 * nonzero), as experiments/bench/gpu_bench's "qv". Each path runs once to warm up
 * (cuBLAS heuristics, lazy kernel loading, the cache allocation), then REPS times
 * (default 3); the best time counts. Prints the tokens/s of host, GPU bf16 and GPU
 * fp32, the speedups, and how many tokens each GPU run shares with the host's
 * (fp32: all expected, up to near ties of float summation order; bf16: until a
 * near tie), and one RESULT line. Issue 12's bar: GPU >= 5x host tokens/s.
 * Build: make experiments/bench/gpu_gen_bench (a CUDA build); run by
 * experiments/bench/gpu_gen_bench.sh. Exit status 77 without a GPU. */
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/gpu.h"
#include "ailora/hfmodel.h"
#include "ailora/llama.h"
#include "ailora/llama_decode.h"

static uint64_t lcg = 2024;
static double urand(void) {  // in [-1, 1)
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / (double)(1ULL << 52) - 1.0;
}

static void die(const char *what) {
    fprintf(stderr, "gpu_gen_bench: %s: %s\n", what, ail_error_message());
    exit(1);
}

static int gpu_of(const Llama *l, GpuPrecision prec, GpuModel **out) {
    GpuLayerSpec *layers = calloc((size_t)l->L, sizeof *layers);
    if (!layers) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
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
    int rc = gpu_model_create(&spec, prec, 1, 16, NULL, out);  // a small training shape: decoding has its own buffers
    free(layers);
    return rc;
}

/* Best of reps timed runs after one warm-up; gpu NULL: the host decoder. */
static double best_time(const Llama *llm, LlamaKV *kv, GpuModel *gpu, int B, int S, const int32_t *tok,
                        const int8_t *mask, int P, int NEW, int reps, int32_t *out, int *len) {
    double best = 1e30;
    for (int i = 0; i <= reps; i++) {
        double t0 = MPI_Wtime();
        int rc = gpu ? gpu_generate_greedy(gpu, B, S, tok, mask, P, NEW, NULL, 0, out, len)
                     : llama_generate_greedy(llm, kv, tok, mask, P, NEW, NULL, 0, out, len);
        if (rc != AIL_OK) die(gpu ? "gpu_generate_greedy" : "llama_generate_greedy");
        double t = MPI_Wtime() - t0;
        if (i > 0 && t < best) best = t;  // i = 0: warm-up
    }
    return best;
}

/* Tokens of a that equal b's, per row up to the first difference. */
static int shared(const int32_t *a, const int32_t *b, int B, int NEW) {
    int n = 0;
    for (int r = 0; r < B; r++)
        for (int k = 0; k < NEW && a[r * NEW + k] == b[r * NEW + k]; k++) n++;
    return n;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc < 5) {
        fprintf(stderr, "usage: gpu_gen_bench MODEL_DIR B P NEW [REPS]\n");
        return 2;
    }
    int B = atoi(argv[2]), P = atoi(argv[3]), NEW = atoi(argv[4]), reps = argc > 5 ? atoi(argv[5]) : 3;
    if (B < 1 || P < 1 || NEW < 1 || reps < 1) {
        fprintf(stderr, "gpu_gen_bench: B, P, NEW, REPS must be positive\n");
        return 2;
    }
    if (gpu_device_count() == 0) {
        printf("SKIP gpu_gen_bench: no CUDA device\n");
        MPI_Finalize();
        return 77;
    }
    if (gpu_select_device(0) != AIL_OK) die("select device");
    HFModel model;
    Llama llm;
    if (hfmodel_open(argv[1], &model) != AIL_OK || llama_load(&model, &llm) != AIL_OK) die(argv[1]);
    const int lins[2] = {LIN_Q, LIN_V}, r = 16;
    for (int l = 0; l < llm.L; l++)
        for (int j = 0; j < 2; j++) {
            int m = (lins[j] == LIN_Q ? llm.nh : llm.nkv) * llm.hd, n = llm.H;
            double *A = malloc(sizeof(double) * r * n), *Bm = malloc(sizeof(double) * m * r);
            if (!A || !Bm) die("out of memory");
            for (int i = 0; i < r * n; i++) A[i] = 0.02 * urand();
            for (int i = 0; i < m * r; i++) Bm[i] = 0.02 * urand();
            if (llama_adapter_attach(&llm, l, lins[j], r, 2.0, A, Bm) != AIL_OK) die("adapter");
            free(A), free(Bm);
        }
    int S = P + NEW - 1;
    int32_t *tok = malloc(sizeof(int32_t) * B * P), *host = malloc(sizeof(int32_t) * B * NEW);
    int32_t *gbf = malloc(sizeof(int32_t) * B * NEW), *g32 = malloc(sizeof(int32_t) * B * NEW);
    int8_t *mask = malloc((size_t)B * P);
    int *len = malloc(sizeof(int) * B);
    if (!tok || !host || !gbf || !g32 || !mask || !len) die("out of memory");
    for (int b = 0; b < B; b++) {
        int real_n = 1 + (b * 37) % P;
        for (int s = 0; s < P; s++) {
            int real_tok = s >= P - real_n;
            tok[b * P + s] = real_tok ? (int)((urand() + 1) * 0.5 * llm.V) % llm.V : 0;
            mask[b * P + s] = (int8_t)real_tok;
        }
    }
    printf("model %s: H %d I %d L %d heads %d/%d V %d; batch %d x %d prompt slots, %d new tokens, q/v adapters r %d; "
           "host threads %d\n", argv[1], llm.H, llm.I, llm.L, llm.nh, llm.nkv, llm.V, B, P, NEW, r,
           omp_get_max_threads());
    fflush(stdout);

    LlamaKV kv;
    if (llama_kv_alloc(&llm, B, S, B * P, &kv) != AIL_OK) die("KV cache");
    double t_host = best_time(&llm, &kv, NULL, B, S, tok, mask, P, NEW, reps, host, len);
    llama_kv_free(&kv);
    double host_tps = B * NEW / t_host;
    printf("host  llama_generate_greedy: %.4f s, %.1f tokens/s\n", t_host, host_tps);
    fflush(stdout);

    double tps[2];
    int same[2];
    const GpuPrecision precs[2] = {GPU_BF16, GPU_FP32};
    const char *names[2] = {"bf16", "fp32"};
    int32_t *outs[2] = {gbf, g32};
    for (int k = 0; k < 2; k++) {
        GpuModel *g;
        if (gpu_of(&llm, precs[k], &g) != AIL_OK) die("gpu_model_create");
        double t = best_time(&llm, NULL, g, B, S, tok, mask, P, NEW, reps, outs[k], len);
        tps[k] = B * NEW / t;
        same[k] = shared(outs[k], host, B, NEW);
        printf("gpu %s gpu_generate_greedy: %.4f s, %.1f tokens/s, %.2fx host; %d of %d tokens as the host's "
               "(per row up to the first difference); device memory %.1f MiB (model, training buffers, KV cache)\n",
               names[k], t, tps[k], tps[k] / host_tps, same[k], B * NEW, gpu_model_bytes(g) / 1048576.0);
        fflush(stdout);
        gpu_model_free(g);
    }
    printf("RESULT gpu_gen_bench B=%d P=%d NEW=%d host_tokens_per_s=%.1f gpu_bf16_tokens_per_s=%.1f "
           "gpu_fp32_tokens_per_s=%.1f speedup_bf16=%.2f speedup_fp32=%.2f fp32_same=%d/%d bf16_same=%d/%d %s\n", B,
           P, NEW, host_tps, tps[0], tps[1], tps[0] / host_tps, tps[1] / host_tps, same[1], B * NEW, same[0], B * NEW,
           tps[0] >= 5 * host_tps ? "PASS(bf16 >= 5x host)" : "BELOW(bf16 < 5x host)");
    llama_free(&llm);
    hfmodel_close(&model);
    free(tok), free(host), free(gbf), free(g32), free(mask), free(len);
    MPI_Finalize();
    return 0;
}
