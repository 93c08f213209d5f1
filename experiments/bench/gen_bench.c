/* gen_bench.c MODEL_DIR PROMPTS_TXT NEW [NOCACHE_ROWS] - greedy generation speed of
 * ailora's KV-cache decoder (llama_decode.h) against the no-cache path it replaced
 * (eval_generate_greedy: a forward over the whole sequence per new token), same
 * model, same prompts, same threads, in one process. PROMPTS_TXT: first line
 * "B P", then B lines of P token ids (left-padded with id -1 = padding).
 * Prints tokens/s of each and whether their tokens agree; writes the KV path's
 * tokens to PROMPTS_TXT.ailora (B lines of NEW ids) for the HF comparison. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/eval.h"
#include "ailora/llama_decode.h"

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (argc < 4) {
        fprintf(stderr, "usage: gen_bench MODEL_DIR PROMPTS_TXT NEW [NOCACHE_ROWS]\n");
        return 2;
    }
    int NEW = atoi(argv[3]), B, P;
    FILE *f = fopen(argv[2], "r");
    if (!f || fscanf(f, "%d %d", &B, &P) != 2) return 2;
    int nocache_rows = argc > 4 ? atoi(argv[4]) : B;
    int32_t *tok = malloc(sizeof(int32_t) * B * P), *out = malloc(sizeof(int32_t) * B * NEW);
    int8_t *mask = malloc((size_t)B * P);
    int *len = malloc(sizeof(int) * B);
    for (int i = 0; i < B * P; i++) {
        int v;
        if (fscanf(f, "%d", &v) != 1) return 2;
        tok[i] = v < 0 ? 0 : v, mask[i] = v >= 0;
    }
    fclose(f);
    HFModel model;
    Llama llm;
    if (hfmodel_open(argv[1], &model) != AIL_OK || llama_load(&model, &llm) != AIL_OK) {
        fprintf(stderr, "%s\n", ail_error_message());
        return 1;
    }
    LlamaKV kv;
    if (llama_kv_alloc(&llm, B, P + NEW, B * P, &kv) != AIL_OK) return 1;
    llama_generate_greedy(&llm, &kv, tok, mask, P, 2, NULL, 0, out, len);  // warm-up
    double t0 = MPI_Wtime();
    if (llama_generate_greedy(&llm, &kv, tok, mask, P, NEW, NULL, 0, out, len) != AIL_OK) {
        fprintf(stderr, "%s\n", ail_error_message());
        return 1;
    }
    double t_kv = MPI_Wtime() - t0;
    printf("ailora kv-cache: %d rows x %d new tokens in %.3f s: %.4g tokens/s\n", B, NEW, t_kv, B * NEW / t_kv);
    char path[2048];
    snprintf(path, sizeof path, "%s.ailora", argv[2]);
    FILE *o = fopen(path, "w");
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < NEW; i++) fprintf(o, "%d%c", out[b * NEW + i], i + 1 < NEW ? ' ' : '\n');
    }
    fclose(o);
    // no cache: one row at a time (the old evaluation), the first nocache_rows rows
    LlamaActs one;
    llama_acts_alloc(&llm, 1, P + NEW - 1, &one);
    int32_t *seq = malloc(sizeof(int32_t) * (P + NEW));
    int agree = 0, total = 0;
    t0 = MPI_Wtime();
    for (int b = 0; b < nocache_rows; b++) {
        int n = 0;
        for (int s = 0; s < P; s++)
            if (mask[b * P + s]) seq[n++] = tok[b * P + s];
        eval_generate_greedy(&llm, &one, seq, n, NEW);
        for (int i = 0; i < NEW; i++) agree += seq[n + i] == out[b * NEW + i], total++;
    }
    double t_nc = MPI_Wtime() - t0;
    printf("ailora no-cache: %d rows x %d new tokens in %.3f s: %.4g tokens/s\n", nocache_rows, NEW, t_nc,
           nocache_rows * NEW / t_nc);
    printf("kv-cache vs no-cache tokens: %d of %d equal\n", agree, total);
    printf("speedup kv-cache / no-cache: %.1fx\n", (B * NEW / t_kv) / (nocache_rows * NEW / t_nc));
    llama_acts_free(&one);
    llama_kv_free(&kv);
    llama_free(&llm);
    hfmodel_close(&model);
    free(tok), free(out), free(mask), free(len), free(seq);
    MPI_Finalize();
    return 0;
}
