/* fuzz_checkpoint.c - libFuzzer harness of the checkpoint reader (checkpoint_read,
 * src/train/runfile.c), the file `ailora train resume=true` continues from.
 *
 * Once per process: the tiny LLaMA of tests/reference/train_llama with rank-2
 * adapters on q_proj and v_proj and an AdamW state, as the trainer sets them up
 * (config method pissa, rank 2). Per input: h5gen.h writes a checkpoint (root
 * attributes method, rank, tp, dp, optimizer_step, steps_done; /adapters/<module>/
 * lora_A [r, n] and lora_B [m, r]; /optimizer/<i>/m, v; the /train and /eval
 * curves with input-chosen lengths), checkpoint_read restores it, and what was
 * restored is then used as the training loop uses it: the step counters start the
 * loop, and every curve is walked to its count (runfile_write writes them out).
 */
#include <stdint.h>
#include <stdlib.h>

#include "ailora/hfmodel.h"
#include "ailora/llama.h"
#include "ailora/runfile.h"
#include "h5gen.h"

#define RANK 2
static HFModel model;
static Llama llm;
static AdamW opt;
static TrainConfig cfg;
static TargetModule *targets;
static int ntargets;

static void setup_or_die(int rc) {
    if (rc == AIL_OK) return;
    fprintf(stderr, "fuzz_checkpoint setup: %s\n", ail_error_message());
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *src = getenv("AILORA_SRCDIR") ? getenv("AILORA_SRCDIR") : FUZZ_SRCDIR;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/reference/train_llama", src);
    setup_or_die(hfmodel_open(dir, &model));
    setup_or_die(llama_load(&model, &llm));
    setup_or_die(hfmodel_targets(&model, "q_proj,v_proj", &targets, &ntargets));
    for (int i = 0; i < ntargets; i++) {
        int m = targets[i].m, n = targets[i].n;
        double *A = calloc((size_t)RANK * n, sizeof *A), *B = calloc((size_t)m * RANK, sizeof *B);
        setup_or_die(llama_adapter_attach(&llm, targets[i].layer, llama_linear_index(targets[i].suffix),
                                          RANK, 1.0, A, B));
        free(A), free(B);
    }
    config_defaults(&cfg);
    setup_or_die(config_set(&cfg, "method", "pissa"));
    setup_or_die(config_set(&cfg, "rank", "2"));
    setup_or_die(adamw_init(&opt, &cfg.optim, &llm));
    return 0;
}

static double value(FuzzIn *in, size_t i, const void *ctx) { return (void)i, (void)ctx, in_double(in); }
static double step_value(FuzzIn *in, size_t i, const void *ctx) {
    (void)ctx;
    return in_u8(in) % 4 ? (double)(i + 1) : in_double(in);
}
static long long unused_i64(FuzzIn *in, size_t i, const void *ctx) { return (void)in, (void)i, (void)ctx, 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzIn in = {data, size};
    char path[600], p[256];
    fuzz_path(path, sizeof path, "run.h5.ckpt");
    hid_t f = gen_file(path);
    long long steps_done = in_range(&in, 0, 20);
    gen_attr_str(&in, f, "method", "pissa");
    gen_attr_int(&in, f, "rank", RANK);
    gen_attr_int(&in, f, "tp", 1);
    gen_attr_int(&in, f, "dp", 1);
    gen_attr_int(&in, f, "optimizer_step", steps_done);
    gen_attr_int(&in, f, "steps_done", steps_done);
    for (int i = 0; i < ntargets; i++) {
        hsize_t dA[2] = {RANK, (hsize_t)targets[i].n}, dB[2] = {(hsize_t)targets[i].m, RANK};
        snprintf(p, sizeof p, "/adapters/%s/lora_A", targets[i].name);
        gen_dataset(&in, f, p, 2, dA, 0, value, unused_i64, NULL);
        snprintf(p, sizeof p, "/adapters/%s/lora_B", targets[i].name);
        gen_dataset(&in, f, p, 2, dB, 0, value, unused_i64, NULL);
    }
    for (int i = 0; i < opt.count; i++) {
        hsize_t dn[1] = {(hsize_t)opt.params[i].n};
        snprintf(p, sizeof p, "/optimizer/%d/m", i);
        gen_dataset(&in, f, p, 1, dn, 0, value, unused_i64, NULL);
        snprintf(p, sizeof p, "/optimizer/%d/v", i);
        gen_dataset(&in, f, p, 1, dn, 0, value, unused_i64, NULL);
    }
    static const char *train_logs[] = {"/train/step", "/train/loss", "/train/lr", "/train/grad_norm",
                                       "/train/tokens_per_s"};
    static const char *eval_logs[] = {"/eval/step", "/eval/loss", "/eval/ppl", "/eval/exact_match"};
    hsize_t ltrain[1] = {(hsize_t)in_range(&in, 0, 6)}, leval[1] = {(hsize_t)in_range(&in, 0, 3)};
    for (int i = 0; i < 5; i++) gen_dataset(&in, f, train_logs[i], 1, ltrain, 0, i ? value : step_value, unused_i64, NULL);
    for (int i = 0; i < 4; i++) gen_dataset(&in, f, eval_logs[i], 1, leval, 0, i ? value : step_value, unused_i64, NULL);
    H5Fclose(f);

    RunState st = {.cfg = &cfg, .config_text = "", .targets = targets, .ntargets = ntargets, .llm = &llm,
                   .opt = &opt, .tp = 1, .dp = 1};
    ail_error_clear();
    int rc = checkpoint_read(path, &st);
    fuzz_check_error(rc);
    if (rc == AIL_OK) {
        // the loop runs steps st.step .. steps-1 and indexes data and schedule by them
        FUZZ_ASSERT(st.step >= 0 && opt.step >= 0);
        volatile double sum = 0;
        for (int i = 0; i < st.train.count; i++)
            sum += st.train.step[i] + st.train.loss[i] + st.train.lr[i] + st.train.grad_norm[i] +
                   st.train.tokens_per_s[i];
        for (int i = 0; i < st.eval.count; i++)
            sum += st.eval.step[i] + st.eval.loss[i] + st.eval.ppl[i] + st.eval.exact_match[i];
        (void)sum;
        // the next step appends to the curves (the arrays must be as long as count says)
        if (st.step < cfg.steps) {
            FUZZ_ASSERT(trainlog_append(&st.train, st.step + 1, 1.0, 1e-3, 1.0, 1.0) == AIL_OK);
            FUZZ_ASSERT(evallog_append(&st.eval, st.step + 1, 1.0, 0.0) == AIL_OK);
        }
    }
    trainlog_free(&st.train);
    evallog_free(&st.eval);
    return 0;
}
