/* cmd_init.c - `ailora init`: adapters for one method / rank / ratio -> INIT.h5. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/initfile.h"
#include "cli.h"

static const char *const init_usage =
    "usage: [mpirun -np N] ailora init [CONFIG] --model DIR --method M --rank R --out INIT.h5 [options]\n"
    "\n"
    "Builds LoRA adapters A [r, n], B [m, r] and the frozen residual W - s B A for every\n"
    "target module (s = alpha / r), from the SVD cache or from SVDs computed on the fly.\n"
    "Methods: lora (random A, B = 0), pissa (principal), milora (minor), ailora (q_proj\n"
    "principal, v_proj minor, other targets by ratio_other), ratio (p = floor(rho r + 1/2)\n"
    "principal + r - p minor). --residual-out DIR also writes an HF model directory with the\n"
    "residual weights and a PEFT adapter (adapter_config.json, adapter_model.safetensors).\n"
    "\n";

typedef struct {
    char model[1024], out[1024], targets[256], svd[1024], residual_out[1024], lora_init[16];
    InitMethod method;
    SvdBackend backend;
    int rank, quiet, threads;
    double alpha, ratio_q, ratio_v, ratio_other;
    long long seed;
} InitArgs;

static int method_parse(const char *text, void *field) { return init_method_parse(text, field); }
static const char *method_print(const void *field) { return init_method_name(*(const InitMethod *)field); }
static int backend_parse(const char *text, void *field) { return svd_backend_parse(text, field); }
static const char *backend_print(const void *field) { return svd_backend_name(*(const SvdBackend *)field); }

#define OPT_STRUCT InitArgs
static const Option init_opts[] = {
    OPT_STR("model", model, NULL, "HF model directory"),
    OPT_ENUM("method", method, NULL, method_parse, method_print, "lora | pissa | milora | ailora | ratio"),
    OPT_INT("rank", rank, NULL, "[1, 1048576]", "adapter rank r (at most min(m, n) of every target)"),
    OPT_STR("out", out, NULL, "INIT.h5 to write (FILE.partial, renamed when complete)"),
    OPT_DBL("alpha", alpha, "0", "[0, inf)", "LoRA alpha (0: r, i.e. s = 1)"),
    OPT_DBL("ratio_q", ratio_q, "1", "[0, 1]", "ratio: principal fraction of q_proj"),
    OPT_DBL("ratio_v", ratio_v, "0", "[0, 1]", "ratio: principal fraction of v_proj"),
    OPT_DBL("ratio_other", ratio_other, "1", "[0, 1]", "ailora/ratio: principal fraction of other targets"),
    OPT_STR("targets", targets, "q_proj,v_proj", "module suffixes"),
    OPT_STR("svd", svd, "", "SVD cache from `ailora svd` (empty: compute the SVDs now)"),
    OPT_ENUM("backend", backend, "auto", backend_parse, backend_print,
             "SVD backend when computing: auto | lapack | pdgesvd | cusolver"),
    OPT_ENUM("threads", threads, "auto", svd_threads_parse, svd_threads_print,
             "N | auto: BLIS threads per rank when computing SVDs (as `ailora svd --threads`)"),
    OPT_LLONG("seed", seed, "0", "[0, inf)", "seed of lora's random A"),
    OPT_CHOICE("lora_init", lora_init, "kaiming", "kaiming|gaussian", "lora: PEFT's kaiming-uniform A or normal, std 1/r"),
    OPT_STR("residual_out", residual_out, "", "also write the residual model + PEFT adapter here (HF directory)"),
    OPT_BOOL("quiet", quiet, "false", "no progress output"),
};
#undef OPT_STRUCT
static const OptionTable init_table = {"ailora init", init_opts, (int)(sizeof init_opts / sizeof *init_opts), 1};

int cmd_init(int argc, char **argv) {
    InitArgs a = {0};
    int status;
    if (!cli_options(&init_table, init_usage, &a, argc, argv, &status)) return status;
    InitOptions opt = {.verbose = !a.quiet, .svd_path = a.svd[0] ? a.svd : NULL,
                       .residual_dir = a.residual_out[0] ? a.residual_out : NULL};
    opt.spec = (InitSpec){.method = a.method, .rank = a.rank, .alpha = a.alpha, .ratio_q = a.ratio_q,
                          .ratio_v = a.ratio_v, .ratio_other = a.ratio_other, .seed = (uint64_t)a.seed,
                          .lora_gaussian = strcmp(a.lora_init, "gaussian") == 0};
    opt.svd = (SvdOptions){.backend = a.backend, .block_size = 64, .threads = a.threads};
    const char *model_dir = a.model, *out = a.out, *targets_csv = a.targets;
    int rc = init_spec_validate(&opt.spec);  // alpha 0 becomes r
    if (rc != AIL_OK) return cli_fail("ailora init");

    HFModel model;
    TargetModule *targets;
    int ntargets;
    if (cli_open_model(model_dir, targets_csv, &model, &targets, &ntargets) != AIL_OK)
        return cli_fail("ailora init");
    if (!opt.svd_path) opt.svd.max_rank_bytes = svd_default_rank_bytes(MPI_COMM_WORLD);
    rc = initfile_write(MPI_COMM_WORLD, &model, targets, ntargets, &opt, out);
    if (rc == AIL_OK && opt.verbose && cli_rank() == 0) printf("wrote %s\n", out);
    free(targets);
    hfmodel_close(&model);
    return rc == AIL_OK ? 0 : cli_fail("ailora init");
}
