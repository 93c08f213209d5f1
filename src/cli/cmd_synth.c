/* cmd_synth.c - `ailora synth`: a LLaMA-shaped model with prescribed spectra. */
#include <stdio.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/synth.h"
#include "cli.h"

static const char *const synth_help =
    "usage: ailora synth --out DIR [options]\n"
    "\n"
    "Writes an HF LLaMA model directory (config.json + safetensors) whose target\n"
    "weights are U diag(S) V^T with random orthonormal U, V and a chosen spectrum S:\n"
    "ground truth for tests and benchmarks, loadable by HF transformers.\n"
    "\n"
    "  --out DIR               output directory (created)\n"
    "  --hidden H              hidden_size (default 64)\n"
    "  --intermediate I        intermediate_size (default 128)\n"
    "  --layers L              num_hidden_layers (default 2)\n"
    "  --heads N               num_attention_heads (default 4)\n"
    "  --kv-heads K            num_key_value_heads (default 2)\n"
    "  --vocab V               vocab_size (default 256)\n"
    "  --dtype D               F32 (default), BF16, F16 or F64\n"
    "  --spectrum S            geometric (default), cluster or zeros\n"
    "  --decades X             spectrum span in powers of ten (default 3)\n"
    "  --smax X                largest singular value (default 1)\n"
    "  --structured LIST       modules given the spectrum (default q_proj,v_proj)\n"
    "  --seed N                random seed (default 0)\n"
    "  --shards N              number of safetensors shards (default 1)\n"
    "  --tie                   tie_word_embeddings = true\n"
    "  --bias                  attention_bias = true: q, k, v and o_proj biases (llama)\n"
    "  --mlp-bias              mlp_bias = true: gate, up and down_proj biases (llama)\n"
    "  --model-type T          llama (default), mistral or qwen2 (q/k/v biases, no o_proj bias)\n";

int cmd_synth(int argc, char **argv) {
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},      {"hidden", required_argument, 0, 'H'},
        {"intermediate", required_argument, 0, 'I'}, {"layers", required_argument, 0, 'L'},
        {"heads", required_argument, 0, 'N'},    {"kv-heads", required_argument, 0, 'K'},
        {"vocab", required_argument, 0, 'V'},    {"dtype", required_argument, 0, 'd'},
        {"spectrum", required_argument, 0, 's'}, {"decades", required_argument, 0, 'x'},
        {"smax", required_argument, 0, 'S'},     {"structured", required_argument, 0, 'T'},
        {"seed", required_argument, 0, 'r'},     {"shards", required_argument, 0, 'p'},
        {"tie", no_argument, 0, 't'},            {"bias", no_argument, 0, 'b'},
        {"model-type", required_argument, 0, 'm'}, {"mlp-bias", no_argument, 0, 'M'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    SynthSpec spec = {.dtype = DTYPE_F32, .spectrum = SPECTRUM_GEOMETRIC, .decades = 3.0,
                      .smax = 1.0, .shards = 1};
    ModelConfig *cfg = &spec.config;
    *cfg = (ModelConfig){.hidden_size = 64, .intermediate_size = 128, .num_hidden_layers = 2,
                         .num_attention_heads = 4, .num_key_value_heads = 2, .vocab_size = 256,
                         .max_position_embeddings = 512, .rms_norm_eps = 1e-6, .rope_theta = 10000.0};
    snprintf(spec.structured, sizeof spec.structured, "q_proj,v_proj");
    const char *out = NULL;
    long long v;
    int c, rc = AIL_OK;
    optind = 1;
    opterr = 0;
    while (rc == AIL_OK && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        int *field = NULL;
        const char *name = NULL;
        switch (c) {
        case 'o': out = optarg; break;
        case 'H': field = &cfg->hidden_size, name = "--hidden"; break;
        case 'I': field = &cfg->intermediate_size, name = "--intermediate"; break;
        case 'L': field = &cfg->num_hidden_layers, name = "--layers"; break;
        case 'N': field = &cfg->num_attention_heads, name = "--heads"; break;
        case 'K': field = &cfg->num_key_value_heads, name = "--kv-heads"; break;
        case 'V': field = &cfg->vocab_size, name = "--vocab"; break;
        case 'p': field = &spec.shards, name = "--shards"; break;
        case 'd':
            spec.dtype = dtype_from_name(optarg);
            if (spec.dtype == DTYPE_INVALID) rc = AIL_ERROR(AIL_ERR_ARG, "unknown --dtype \"%s\"", optarg);
            break;
        case 's': rc = spectrum_parse(optarg, &spec.spectrum); break;
        case 'x': rc = cli_double("--decades", optarg, &spec.decades); break;
        case 'S': rc = cli_double("--smax", optarg, &spec.smax); break;
        case 'T': snprintf(spec.structured, sizeof spec.structured, "%s", optarg); break;
        case 'r':
            rc = cli_int("--seed", optarg, 0, (1LL << 62), &v);
            spec.seed = (uint64_t)v;
            break;
        case 't': cfg->tie_word_embeddings = 1; break;
        case 'b': cfg->attention_bias = cfg->o_proj_bias = 1; break;
        case 'M': cfg->mlp_bias = 1; break;
        case 'm': snprintf(cfg->model_type, sizeof cfg->model_type, "%s", optarg); break;
        case 'h':
            if (cli_rank() == 0) fputs(synth_help, stdout);
            return 0;
        default: rc = cli_bad_option("ailora synth", argv);
        }
        if (field) {
            rc = cli_int(name, optarg, 1, 1 << 20, &v);
            *field = (int)v;
        }
    }
    if (rc == AIL_OK) rc = cli_require(out, "--out");
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
