/* cmd_synth.c - `ailora synth`: a LLaMA-shaped model with prescribed spectra. */
#include <stdio.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/synth.h"
#include "cli.h"

static const char *const synth_usage =
    "usage: ailora synth [CONFIG] --out DIR [options]\n"
    "\n"
    "Writes an HF LLaMA model directory (config.json + safetensors) whose target\n"
    "weights are U diag(S) V^T with random orthonormal U, V and a chosen spectrum S:\n"
    "ground truth for tests and benchmarks, loadable by HF transformers.\n"
    "\n";

typedef struct {
    char out[1024], structured[128];
    int hidden, intermediate, layers, heads, kv_heads, vocab, shards, tie, bias, mlp_bias;
    char model_type[16];
    DType dtype;
    SpectrumKind spectrum;
    double decades, smax;
    long long seed;
} SynthArgs;

static int dtype_parse(const char *text, void *field) {
    DType dt = dtype_from_name(text);
    if (dt == DTYPE_INVALID) return AIL_ERROR(AIL_ERR_ARG, "unknown --dtype \"%s\" (F32, BF16, F16 or F64)", text);
    *(DType *)field = dt;
    return AIL_OK;
}
static const char *dtype_print(const void *field) { return dtype_name(*(const DType *)field); }
static int spectrum_parse_field(const char *text, void *field) { return spectrum_parse(text, field); }
static const char *spectrum_print(const void *field) {
    static const char *const names[] = {"geometric", "cluster", "zeros"};
    return names[*(const SpectrumKind *)field];
}

#define OPT_STRUCT SynthArgs
static const Option synth_opts[] = {
    OPT_STR("out", out, NULL, "output directory (created)"),
    OPT_INT("hidden", hidden, "64", "[1, 1048576]", "hidden_size"),
    OPT_INT("intermediate", intermediate, "128", "[1, 1048576]", "intermediate_size"),
    OPT_INT("layers", layers, "2", "[1, 1048576]", "num_hidden_layers"),
    OPT_INT("heads", heads, "4", "[1, 1048576]", "num_attention_heads"),
    OPT_INT("kv_heads", kv_heads, "2", "[1, 1048576]", "num_key_value_heads"),
    OPT_INT("vocab", vocab, "256", "[1, 1048576]", "vocab_size"),
    OPT_ENUM("dtype", dtype, "F32", dtype_parse, dtype_print, "F32 | BF16 | F16 | F64"),
    OPT_ENUM("spectrum", spectrum, "geometric", spectrum_parse_field, spectrum_print, "geometric | cluster | zeros"),
    OPT_DBL("decades", decades, "3", "[0, 300]", "spectrum span in powers of ten"),
    OPT_DBL("smax", smax, "1", "(0, 1e300]", "largest singular value"),
    OPT_STR("structured", structured, "q_proj,v_proj", "modules given the spectrum"),
    OPT_LLONG("seed", seed, "0", "[0, inf)", "random seed"),
    OPT_INT("shards", shards, "1", "[1, 1048576]", "number of safetensors shards"),
    OPT_BOOL("tie", tie, "false", "tie_word_embeddings = true"),
    OPT_BOOL("bias", bias, "false", "attention_bias = true: q, k, v and o_proj biases (llama)"),
    OPT_BOOL("mlp_bias", mlp_bias, "false", "mlp_bias = true: gate, up and down_proj biases (llama)"),
    OPT_CHOICE("model_type", model_type, "llama", "llama|mistral|qwen2",
               "model_type (qwen2: q/k/v biases, no o_proj bias)"),
};
#undef OPT_STRUCT
static const OptionTable synth_table = {"ailora synth", synth_opts, (int)(sizeof synth_opts / sizeof *synth_opts), 1};

int cmd_synth(int argc, char **argv) {
    SynthArgs a = {0};
    int status;
    if (!cli_options(&synth_table, synth_usage, &a, argc, argv, &status)) return status;
    SynthSpec spec = {.dtype = a.dtype, .spectrum = a.spectrum, .decades = a.decades, .smax = a.smax,
                      .shards = a.shards, .seed = (uint64_t)a.seed};
    snprintf(spec.structured, sizeof spec.structured, "%s", a.structured);
    ModelConfig *cfg = &spec.config;
    *cfg = (ModelConfig){.hidden_size = a.hidden, .intermediate_size = a.intermediate,
                         .num_hidden_layers = a.layers, .num_attention_heads = a.heads,
                         .num_key_value_heads = a.kv_heads, .vocab_size = a.vocab,
                         .max_position_embeddings = 512, .rms_norm_eps = 1e-6, .rope_theta = 10000.0,
                         .tie_word_embeddings = a.tie, .attention_bias = a.bias,
                         .o_proj_bias = a.bias, .mlp_bias = a.mlp_bias};
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", a.model_type);
    const char *out = a.out;
    int rc = AIL_OK;
    if (rc == AIL_OK && cfg->hidden_size % cfg->num_attention_heads)
        rc = AIL_ERROR(AIL_ERR_ARG, "--hidden must be a multiple of --heads");
    if (rc == AIL_OK && cfg->num_attention_heads % cfg->num_key_value_heads)
        rc = AIL_ERROR(AIL_ERR_ARG, "--heads must be a multiple of --kv-heads");
    cfg->head_dim = cfg->hidden_size / cfg->num_attention_heads;
    if (rc == AIL_OK && !strcmp(cfg->model_type, "qwen2")) {  // Qwen2's q/k/v biases are not optional
        if (cfg->o_proj_bias) rc = AIL_ERROR(AIL_ERR_ARG, "--bias is for llama models (qwen2 always has q/k/v biases)");
        cfg->attention_bias = 1;
    }
    // one writer: the model is small and synth runs before the MPI jobs
    if (rc == AIL_OK && cli_rank() == 0) rc = synth_model_write(out, &spec);
    rc = ail_error_agree(MPI_COMM_WORLD, rc);
    if (rc != AIL_OK) return cli_fail("ailora synth");
    if (cli_rank() == 0) printf("wrote %s\n", out);
    return 0;
}
