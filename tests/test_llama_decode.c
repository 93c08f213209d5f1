/* test_llama_decode.c - the KV-cache decoder (llama_decode.h) against the no-cache
 * path it replaces (eval_generate_greedy: one llama_forward over the growing
 * sequence per new token) and against llama_forward's logits.
 *
 * Models: tests/reference/train_llama (GQA), bias_llama (biases on all seven
 * linears), train_qwen2 (q/k/v biases, tied embeddings), each with seeded random
 * adapters on q, v, o, gate and down (column- and row-parallel, B nonzero so they
 * change the output). Prompts of lengths 6, 3, 1, 5 in one batch, left-padded.
 *
 * Checks, per model:
 *   - prefill logits at every real slot of a padded row == llama_forward on the
 *     unpadded row: the mask and the positions max(cumsum(mask) - 1, 0) work
 *     (float: 1e-4 absolute, the parity tests' logit tolerance, on logits of order
 *     1 whose float32 summation-order differences measure ~1e-6; float64 build
 *     (test_llama_decode_f64): 1e-10);
 *   - greedy tokens == eval_generate_greedy on each unpadded prompt, token for
 *     token, for 10 new tokens;
 *   - with an EOS id (the token row 0 generates third) every row stops right
 *     after its first EOS, its tokens up to there unchanged.
 * Under `mpirun -np 2` the model is split tp = 2 (each rank holds half the heads
 * and MLP columns): the decoder runs its shard with the all-reduces, and the
 * tokens must equal the no-cache greedy of the same tp = 2 model and of the whole
 * model on one rank.
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/eval.h"
#include "ailora/llama_decode.h"
#include "testutil.h"

#ifdef AILORA_REAL_DOUBLE
#define LOGIT_TOL 1e-10
#else
#define LOGIT_TOL 1e-4
#endif

enum { NB = 4, P = 6, NEW = 10, RANK = 3 };
static const int lens[NB] = {6, 3, 1, 5};

static uint64_t lcg = 12345;
static double urand(void) {  // in [-1, 1)
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / (double)(1ULL << 52) - 1.0;
}

/* The model of dir over comm (MPI_COMM_NULL: whole) with seeded adapters. */
static int setup(const char *dir, MPI_Comm comm, HFModel *model, Llama *llm) {
    AIL_CHECK(hfmodel_open(dir, model));
    AIL_CHECK(llama_load_tp(model, comm, llm));
    lcg = 777;  // the same adapters on every rank and for every layout
    const int lins[5] = {LIN_Q, LIN_V, LIN_O, LIN_GATE, LIN_DOWN};
    int tp = llm->tp_size;
    for (int l = 0; l < llm->L; l++)
        for (int j = 0; j < 5; j++) {
            int lin = lins[j], row_par = llama_row_parallel(lin);
            int m = (lin == LIN_O || lin == LIN_DOWN ? llm->H : lin == LIN_GATE ? llm->I * tp : llm->hd *
                     (lin == LIN_Q ? llm->nh : llm->nkv) * tp);
            int n = lin == LIN_O ? llm->nh * llm->hd * tp : lin == LIN_DOWN ? llm->I * tp : llm->H;
            (void)row_par;
            double *A = malloc(sizeof(double) * RANK * n), *B = malloc(sizeof(double) * m * RANK);
            for (int i = 0; i < RANK * n; i++) A[i] = 0.3 * urand();
            for (int i = 0; i < m * RANK; i++) B[i] = 0.3 * urand();
            int rc = llama_adapter_attach(llm, l, lin, RANK, 1.5, A, B);
            free(A), free(B);
            AIL_CHECK(rc);
        }
    return AIL_OK;
}

/* The prompts: row b has lens[b] real tokens, left-padded to P (padding id 0). */
static void prompts(int V, int32_t *tok, int8_t *mask) {
    lcg = 99;
    for (int b = 0; b < NB; b++)
        for (int s = 0; s < P; s++) {
            int real_tok = s >= P - lens[b];
            int id = (int)((urand() + 1) * 0.5 * V) % V;
            tok[b * P + s] = real_tok ? id : 0;
            mask[b * P + s] = (int8_t)real_tok;
        }
}

/* No-cache greedy of each unpadded prompt: ref (NB, NEW). */
static int nocache(const Llama *llm, const int32_t *tok, int32_t *ref) {
    LlamaActs one;
    AIL_CHECK(llama_acts_alloc(llm, 1, P + NEW - 1, &one));
    int rc = AIL_OK;
    for (int b = 0; b < NB && rc == AIL_OK; b++) {
        int32_t seq[P + NEW];
        memcpy(seq, tok + b * P + P - lens[b], sizeof(int32_t) * lens[b]);
        rc = eval_generate_greedy(llm, &one, seq, lens[b], NEW);
        memcpy(ref + b * NEW, seq + lens[b], sizeof(int32_t) * NEW);
    }
    llama_acts_free(&one);
    return rc;
}

static void check_model(const char *srcdir, const char *name, MPI_Comm tp_comm, int rank) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/reference/%s", srcdir, name);
    HFModel model;
    Llama llm;
    if (setup(dir, tp_comm, &model, &llm) != AIL_OK) {
        TU_CHECK(0, "%s: %s", name, ail_error_message());
        return;
    }
    int V = llm.V;
    int32_t tok[NB * P], ref[NB * NEW], out[NB * NEW];
    int8_t mask[NB * P];
    int out_len[NB];
    prompts(V, tok, mask);

    // prefill logits against llama_forward on each unpadded row
    LlamaKV kv;
    TU_CHECK(llama_kv_alloc(&llm, NB, P + NEW, NB * P, &kv) == AIL_OK, "%s", ail_error_message());
    real *all = malloc(sizeof(real) * NB * P * V);
    TU_CHECK(llama_kv_prefill(&llm, &kv, tok, mask, P, 1, all) == AIL_OK, "%s", ail_error_message());
    double worst = 0;
    for (int b = 0; b < NB; b++) {
        LlamaActs a;
        double s;
        long c;
        llama_acts_alloc(&llm, 1, lens[b], &a);
        TU_CHECK(llama_forward(&llm, &a, tok + b * P + P - lens[b], NULL, &s, &c) == AIL_OK, "%s", ail_error_message());
        for (int t = 0; t < lens[b]; t++)
            for (int v = 0; v < V; v++) {
                double d = fabs((double)all[((size_t)b * P + P - lens[b] + t) * V + v] - (double)a.logits[(size_t)t * V + v]);
                worst = d > worst || isnan(d) ? (isnan(d) ? INFINITY : d) : worst;
            }
        llama_acts_free(&a);
    }
    TU_CHECK(worst <= LOGIT_TOL, "%s: prefill logits differ from llama_forward by %.3e", name, worst);
    free(all);

    // greedy tokens against the no-cache path
    TU_CHECK(nocache(&llm, tok, ref) == AIL_OK, "%s", ail_error_message());
    TU_CHECK(llama_generate_greedy(&llm, &kv, tok, mask, P, NEW, NULL, 0, out, out_len) == AIL_OK, "%s",
             ail_error_message());
    int same = 1;
    for (int b = 0; b < NB; b++) {
        TU_CHECK(out_len[b] == NEW, "%s row %d: %d tokens", name, b, out_len[b]);
        for (int i = 0; i < NEW; i++) same &= out[b * NEW + i] == ref[b * NEW + i];
    }
    TU_CHECK(same, "%s: KV-cache greedy tokens differ from the no-cache greedy", name);
    if (rank == 0) {
        printf("%s (tp %d): prefill logits max |diff| %.2e; row 0 tokens", name, llm.tp_size, worst);
        for (int i = 0; i < NEW; i++) printf(" %d", out[i]);
        printf("\n");
    }

    // EOS: row 0's third token; every row stops after its first occurrence
    int32_t eos[2] = {V + 5, ref[2]};  // an id never generated, then the real one
    TU_CHECK(llama_generate_greedy(&llm, &kv, tok, mask, P, NEW, eos, 2, out, out_len) == AIL_OK, "%s",
             ail_error_message());
    for (int b = 0; b < NB; b++) {
        int want = NEW;
        for (int i = 0; i < NEW; i++)
            if (ref[b * NEW + i] == eos[1]) {
                want = i + 1;
                break;
            }
        TU_CHECK(out_len[b] == want, "%s row %d: stopped after %d tokens, want %d", name, b, out_len[b], want);
        TU_CHECK(!memcmp(out + b * NEW, ref + b * NEW, sizeof(int32_t) * (size_t)(want < out_len[b] ? want : out_len[b])),
                 "%s row %d: tokens before EOS differ", name, b);
    }
    TU_CHECK(out_len[0] <= 3, "%s: row 0 stopped after %d tokens, want <= 3", name, out_len[0]);

    // tp: the whole model on one rank gives the same tokens (rank 0 checks alone)
    if (llm.tp_size > 1 && rank == 0) {
        HFModel m1;
        Llama whole;
        int32_t ref1[NB * NEW];
        if (setup(dir, MPI_COMM_NULL, &m1, &whole) == AIL_OK && nocache(&whole, tok, ref1) == AIL_OK)
            TU_CHECK(!memcmp(ref1, ref, sizeof ref), "%s: tp = 2 tokens differ from one rank's", name);
        else
            TU_CHECK(0, "%s", ail_error_message());
        llama_free(&whole);
        hfmodel_close(&m1);
    }
    llama_kv_free(&kv);
    llama_free(&llm);
    hfmodel_close(&model);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int world, rank;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *srcdir = getenv("top_srcdir") ? getenv("top_srcdir") : ".";
    MPI_Comm tp = world > 1 ? MPI_COMM_WORLD : MPI_COMM_NULL;
    const char *models[3] = {"train_llama", "bias_llama", "train_qwen2"};
    for (int i = 0; i < 3; i++) check_model(srcdir, models[i], tp, rank);
    int failed = tu_failures;
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int rc = rank == 0 ? tu_finish(world > 1 ? "test_llama_decode (tp 2)" : "test_llama_decode") : 0;
    MPI_Finalize();
    return failed ? 1 : rc;
}
