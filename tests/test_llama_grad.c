/* test_llama_grad.c - finite-difference check of the LLaMA + LoRA backward, float64.
 *
 * Built against a float64 copy of src/model/llama.c (-DAILORA_REAL_DOUBLE). For tiny
 * models (GQA; no biases, Qwen2's q/k/v biases with tied embeddings, LLaMA's
 * attention_bias and mlp_bias: biases on all seven linears) with adapters
 * on all seven linear modules, every adapter gradient entry is compared with a
 * central difference (L(p + h) - L(p - h)) / 2h, h = 1e-5: truncation error
 * O(h^2) ~ 1e-10 and rounding ~ 1e-16 / h ~ 1e-11 relative to the loss, so
 * agreement to 1e-6 relative (of the largest gradient) is a real check of the
 * backward and fails on any wrong term. The padded variant runs the same checks on
 * a batch with an attention mask (llama_acts_set_mask: one left-padded row, one
 * right-padded row) and checks the closed-form invariance: the padded batch gives
 * the same loss, scored count, logits on real positions and every gradient
 * (adapters and base weights) as the same real tokens unpadded (a shorter batch,
 * no mask), to 1e-12 relative: only the summation order of zero rows differs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ailora/error.h"
#include "ailora/llama.h"
#include "ailora/rng.h"
#include "ailora/synth.h"
#include "llama_fixture.h"
#include "testutil.h"

enum { B = 2, T = 7 };

static double loss_of(const Llama *llm, LlamaActs *a, const int32_t *tok, const int32_t *lab) {
    double sum;
    long count;
    if (llama_forward(llm, a, tok, lab, &sum, &count) != AIL_OK) return NAN;
    return sum / count;
}

/* max |a - b| / max |b| over n entries */
static double rel_diff(const real *a, const real *b, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i])), m = fmax(m, fabs((double)b[i]));
    return m > 0 ? d / m : d;
}

enum { PAD = 2 };  // padded rows: row 0 has PAD padding tokens on the left, row 1 on the right

/* Padded batch (B, T) against the same real tokens unpadded (B, T - PAD): loss,
 * count, logits on real positions, adapter and base gradients. */
static void check_invariance(const char *label, Llama *llm, const int32_t *tok, const int32_t *lab,
                             const int8_t *mask) {
    enum { Tu = T - PAD };
    int32_t tu[B * Tu], lu[B * Tu];
    for (int b = 0; b < B; b++)
        for (int t = 0, k = 0; t < T; t++)
            if (mask[b * T + t]) tu[b * Tu + k] = tok[b * T + t], lu[b * Tu + k] = lab[b * T + t], k++;
    LlamaActs ap, au;
    TU_CHECK(llama_acts_alloc(llm, B, T, &ap) == AIL_OK && llama_acts_alloc(llm, B, Tu, &au) == AIL_OK, "%s",
             ail_error_message());
    TU_CHECK(llama_acts_set_mask(&ap, mask) == AIL_OK, "%s", ail_error_message());
    // RoPE scores depend only on position differences, so a constant shift of every
    // position is invisible here: the positions themselves are checked against HF's rule
    const int32_t want_pos[B * T] = {0, 0, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4, 4};
    TU_CHECK(T == 7 && B == 2 && PAD == 2 && !memcmp(ap.pos, want_pos, sizeof want_pos),
             "%s: positions are not max(cumsum(mask) - 1, 0)", label);
    size_t nstore = llm->storage_size, ngrad = 0;
    for (int l = 0; l < llm->L; l++)
        for (int lin = 0; lin < LIN_COUNT; lin++) {
            LoraAdapter *ad = llm->layers[l].lora[lin];
            ngrad += (size_t)ad->r * ad->n + (size_t)ad->m * ad->r;
        }
    real *g[2];
    double sum[2];
    long count[2];
    for (int k = 0; k < 2; k++) {
        LlamaActs *a = k ? &au : &ap;
        const int32_t *tk = k ? tu : tok, *lb = k ? lu : lab;
        llama_zero_grads(llm);
        TU_CHECK(llama_forward(llm, a, tk, lb, &sum[k], &count[k]) == AIL_OK, "%s", ail_error_message());
        TU_CHECK(llama_backward(llm, a, lb, 1.0 / count[k]) == AIL_OK, "%s", ail_error_message());
        g[k] = malloc(sizeof(real) * (ngrad + nstore));
        size_t o = 0;
        for (int l = 0; l < llm->L; l++)
            for (int lin = 0; lin < LIN_COUNT; lin++) {
                LoraAdapter *ad = llm->layers[l].lora[lin];
                memcpy(g[k] + o, ad->dA, sizeof(real) * ad->r * ad->n), o += (size_t)ad->r * ad->n;
                memcpy(g[k] + o, ad->dB, sizeof(real) * ad->m * ad->r), o += (size_t)ad->m * ad->r;
            }
        memcpy(g[k] + o, llm->grad_storage, sizeof(real) * nstore);
    }
    char what[200];
    TU_CHECK(count[0] == count[1] && count[0] > 0, "%s: padded batch scores %ld tokens, unpadded %ld", label,
             count[0], count[1]);
    snprintf(what, sizeof what, "%s: padded loss = unpadded loss", label);
    TU_CLOSE(sum[0] / count[0], sum[1] / count[1], 1e-12 * fabs(sum[1] / count[1]), what);
    double dl = 0, ml = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0, k = 0; t < T; t++)
            if (mask[b * T + t]) {
                double d = rel_diff(ap.logits + ((size_t)b * T + t) * llm->V, au.logits + ((size_t)b * Tu + k) * llm->V,
                                    llm->V);
                dl = fmax(dl, d), ml = 1, k++;
            }
    snprintf(what, sizeof what, "%s: logits on real positions, padded vs unpadded", label);
    TU_CLOSE(dl * ml, 0.0, 1e-12, what);
    double da = rel_diff(g[0], g[1], ngrad), db = rel_diff(g[0] + ngrad, g[1] + ngrad, nstore);
    snprintf(what, sizeof what, "%s: adapter gradients, padded vs unpadded", label);
    TU_CLOSE(da, 0.0, 1e-12, what);
    snprintf(what, sizeof what, "%s: base gradients, padded vs unpadded", label);
    TU_CLOSE(db, 0.0, 1e-12, what);
    printf("%s: padded = unpadded: loss %.15g vs %.15g, logits %.1e, adapter grads %.1e, base grads %.1e\n", label,
           sum[0] / count[0], sum[1] / count[1], dl, da, db);
    // a mask value other than 0 / 1 is refused
    int8_t bad[B * T];
    memcpy(bad, mask, sizeof bad);
    bad[3] = 2;
    TU_CHECK(llama_acts_set_mask(&ap, bad) != AIL_OK, "%s: mask value 2 accepted", label);
    ail_error_clear();
    free(g[0]), free(g[1]);
    llama_acts_free(&ap), llama_acts_free(&au);
}

/* type "llama": bias = attention_bias and mlp_bias (biases on all seven linears);
 * "qwen2": q, k, v biases; padded: the batch has a left- and a right-padded row */
static void check_model(const char *label, const char *type, int bias, int tie, int padded) {
    char dir[128] = "/tmp/ailora-test-grad-XXXXXX";
    if (!mkdtemp(dir)) return;
    SynthSpec spec = {.dtype = DTYPE_F64, .spectrum = SPECTRUM_GEOMETRIC, .decades = 1.0, .smax = 1.5, .seed = 9};
    spec.config = (ModelConfig){.hidden_size = 16, .intermediate_size = 24, .num_hidden_layers = 2,
                                .num_attention_heads = 4, .num_key_value_heads = 2, .head_dim = 4,
                                .vocab_size = 32, .max_position_embeddings = 16, .rms_norm_eps = 1e-5,
                                .rope_theta = 10000.0, .tie_word_embeddings = tie, .attention_bias = bias,
                                .o_proj_bias = bias && !strcmp(type, "llama"), .mlp_bias = bias && !strcmp(type, "llama")};
    snprintf(spec.config.model_type, sizeof spec.config.model_type, "%s", type);
    snprintf(spec.structured, sizeof spec.structured, "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj");
    HFModel model;
    Llama llm;
    TU_CHECK(synth_model_write(dir, &spec) == AIL_OK, "%s", ail_error_message());
    TU_CHECK(hfmodel_open(dir, &model) == AIL_OK, "%s", ail_error_message());
    TU_CHECK(llama_load(&model, &llm) == AIL_OK, "%s", ail_error_message());
    Rng rng;
    rng_init(&rng, 5, 1);
    TU_CHECK(model.config.o_proj_bias == spec.config.o_proj_bias && model.config.attention_bias == bias &&
                 model.config.mlp_bias == spec.config.mlp_bias,
             "%s: config.json read back with other biases", label);
    // biases of std 0.5 (not synth's 0.02) so that a bias used twice, or not at all, shows
    for (int l = 0; l < llm.L; l++)
        for (int lin = 0; lin < LIN_COUNT; lin++) {
            int n = lin == LIN_Q ? llm.nh * llm.hd : llama_row_parallel(lin) ? llm.H : lin <= LIN_V ? llm.nkv * llm.hd : llm.I;
            for (int i = 0; llm.layers[l].bias[lin] && i < n; i++) llm.layers[l].bias[lin][i] = 0.5 * rng_normal(&rng);
        }
    // embeddings of std 1 so that attention and the MLP matter
    for (int i = 0; i < llm.V * llm.H; i++) llm.embed[i] = rng_normal(&rng);
    int r = 3;
    for (int l = 0; l < llm.L; l++)
        for (int lin = 0; lin < LIN_COUNT; lin++) {
            int m = lin == LIN_Q ? llm.nh * llm.hd : lin <= LIN_V ? llm.nkv * llm.hd : lin == LIN_O || lin == LIN_DOWN ? llm.H : llm.I;
            int n = lin == LIN_O ? llm.nh * llm.hd : lin == LIN_DOWN ? llm.I : llm.H;
            double *A = malloc(sizeof(double) * r * n), *Bm = malloc(sizeof(double) * m * r);
            for (int i = 0; i < r * n; i++) A[i] = 0.3 * rng_normal(&rng);
            for (int i = 0; i < m * r; i++) Bm[i] = 0.3 * rng_normal(&rng);
            TU_CHECK(llama_adapter_attach(&llm, l, lin, r, 2.0, A, Bm) == AIL_OK, "%s", ail_error_message());
            free(A), free(Bm);
        }
    int32_t tok[B * T], lab[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = lab[i] = (int32_t)(rng_next_u64(&rng) % 32);
    lab[0] = lab[1] = lab[T + 4] = -100;  // unscored positions
    int8_t mask[B * T];
    for (int i = 0; i < B * T; i++) {
        int t = i % T;
        mask[i] = !padded || (i < T ? t >= PAD : t < T - PAD);
        if (!mask[i]) lab[i] = -100;  // never a scored label at a padded position
    }
    LlamaActs a;
    TU_CHECK(llama_acts_alloc(&llm, B, T, &a) == AIL_OK, "%s", ail_error_message());
    if (padded) TU_CHECK(llama_acts_set_mask(&a, mask) == AIL_OK, "%s", ail_error_message());
    double sum;
    long count;
    llama_zero_grads(&llm);
    TU_CHECK(llama_forward(&llm, &a, tok, lab, &sum, &count) == AIL_OK, "%s", ail_error_message());
    TU_CHECK(llama_backward(&llm, &a, lab, 1.0 / count) == AIL_OK, "%s", ail_error_message());
    double worst = 0.0, gmax = 0.0, h = 1e-5;
    int checked = 0;
    for (int l = 0; l < llm.L; l++)
        for (int lin = 0; lin < LIN_COUNT; lin++) {
            LoraAdapter *ad = llm.layers[l].lora[lin];
            for (int which = 0; which < 2; which++) {
                real *p = which ? ad->B : ad->A, *g = which ? ad->dB : ad->dA;
                int n = which ? ad->m * ad->r : ad->r * ad->n;
                for (int i = 0; i < n; i++) {
                    real keep = p[i];
                    p[i] = keep + h;
                    double up = loss_of(&llm, &a, tok, lab);
                    p[i] = keep - h;
                    double down = loss_of(&llm, &a, tok, lab);
                    p[i] = keep;
                    double fd = (up - down) / (2 * h);
                    worst = fmax(worst, fabs(fd - g[i]));
                    gmax = fmax(gmax, fabs(fd));
                    checked++;
                }
            }
        }
    char what[160];
    snprintf(what, sizeof what, "%s: max |dL/dp - finite difference| / max|grad| over %d entries", label, checked);
    TU_CLOSE(worst / gmax, 0.0, 1e-6, what);
    printf("%s: %d adapter gradient entries, worst relative error %.2e, max |grad| %.3g\n", label,
           checked, worst / gmax, gmax);

    // full-parameter training: every 7th entry of every base tensor (embedding,
    // norms, all linears, biases, head) and all of o_proj's bias, adapters still attached
    TU_CHECK(llama_enable_base_grads(&llm) == AIL_OK, "%s", ail_error_message());
    llama_zero_grads(&llm);
    llama_forward(&llm, &a, tok, lab, &sum, &count);
    TU_CHECK(llama_backward(&llm, &a, lab, 1.0 / count) == AIL_OK, "%s", ail_error_message());
    worst = gmax = 0.0;
    checked = 0;
    // every 7th entry, and every entry of the o_proj and down_proj biases (added after
    // the row-parallel sum)
    for (size_t i = 0; i < llm.storage_size; i++) {
        int in_obias = 0;
        for (int l = 0; l < llm.L; l++)
            for (int lin = LIN_O; lin < LIN_COUNT; lin += LIN_DOWN - LIN_O)
                in_obias |= llm.layers[l].bias[lin] && llm.storage + i >= llm.layers[l].bias[lin] &&
                            llm.storage + i < llm.layers[l].bias[lin] + llm.H;
        if (i % 7 && !in_obias) continue;
        real keep = llm.storage[i];
        llm.storage[i] = keep + h;
        double up = loss_of(&llm, &a, tok, lab);
        llm.storage[i] = keep - h;
        double down = loss_of(&llm, &a, tok, lab);
        llm.storage[i] = keep;
        double fd = (up - down) / (2 * h);
        worst = fmax(worst, fabs(fd - llm.grad_storage[i]));
        gmax = fmax(gmax, fabs(fd));
        checked++;
    }
    snprintf(what, sizeof what, "%s: base-weight gradients vs finite differences over %d entries", label, checked);
    TU_CLOSE(worst / gmax, 0.0, 1e-6, what);
    printf("%s: %d base gradient entries, worst relative error %.2e, max |grad| %.3g\n", label, checked,
           worst / gmax, gmax);
    if (padded) check_invariance(label, &llm, tok, lab, mask);
    llama_acts_free(&a);
    llama_free(&llm);
    hfmodel_close(&model);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* The float64 build against the generator's independent float64 reimplementation
 * (HF itself is not float64-clean): agreement to ~1e-12 says both compute the
 * same function, RoPE, GQA, RMSNorm and loss conventions included. */
static void check_f64_fixture(const char *srcdir) {
    Fixture f = {0};
    int rc = fixture_open(&f, srcdir, "llama", "lora.f64");
    TU_CHECK(rc == AIL_OK, "%s", ail_error_message());
    if (rc != AIL_OK) return;
    int T = f.data.T;
    LlamaActs a;
    TU_CHECK(llama_acts_alloc(&f.llm, 4, T, &a) == AIL_OK, "%s", ail_error_message());
    double sum, d, m, want;
    long count;
    llama_zero_grads(&f.llm);
    int32_t tok[4 * 64], lab[4 * 64];
    const int rows[4] = {0, 1, 2, 3};
    TU_CHECK(T <= 64 && dataset_read_rows(&f.data, rows, 4, tok, lab, NULL) == AIL_OK, "%s", ail_error_message());
    TU_CHECK(llama_forward(&f.llm, &a, tok, lab, &sum, &count) == AIL_OK, "%s", ail_error_message());
    llama_backward(&f.llm, &a, lab, 1.0 / count);
    fixture_diff(a.logits, fixture_tensor(&f, "logits", NULL, NULL), &d, &m);
    TU_CLOSE(d / m, 0.0, 1e-10, "float64 logits vs float64 reference");
    dtype_to_f64(DTYPE_F64, fixture_tensor(&f, "loss", NULL, NULL)->data, 1, &want);
    TU_CLOSE(sum / count, want, 1e-12 * want, "float64 loss vs float64 reference");
    for (int l = 0; l < f.llm.L; l++)
        for (int lin = LIN_Q; lin <= LIN_V; lin += LIN_V - LIN_Q) {
            LoraAdapter *ad = f.llm.layers[l].lora[lin];
            char module[128];
            snprintf(module, sizeof module, "model.layers.%d.self_attn.%s", l, lin == LIN_Q ? "q_proj" : "v_proj");
            fixture_diff(ad->dA, fixture_tensor(&f, "grad", module, "lora_A"), &d, &m);
            TU_CLOSE(d / m, 0.0, 1e-9, "float64 lora_A gradient vs float64 reference");
            fixture_diff(ad->dB, fixture_tensor(&f, "grad", module, "lora_B"), &d, &m);
            TU_CLOSE(d / m, 0.0, 1e-9, "float64 lora_B gradient vs float64 reference");
        }
    llama_acts_free(&a);
    fixture_close(&f);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    check_f64_fixture(getenv("top_srcdir") ? getenv("top_srcdir") : ".");
    check_model("llama (GQA, untied)", "llama", 0, 0, 0);
    check_model("qwen2 (q/k/v biases, tied embeddings)", "qwen2", 1, 1, 0);
    check_model("llama attention_bias + mlp_bias (biases on all seven linears, untied)", "llama", 1, 0, 0);
    check_model("llama, padded batch (left + right padding, GQA, all biases, tied)", "llama", 1, 1, 1);
    int status = tu_finish("test_llama_grad");
    MPI_Finalize();
    return status;
}
