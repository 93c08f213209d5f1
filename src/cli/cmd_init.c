/* cmd_init.c - `ailora init`: adapters for one method / rank / ratio -> INIT.h5. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/initfile.h"
#include "cli.h"

static const char *const init_help =
    "usage: [mpirun -np N] ailora init --model DIR --method M --rank R --out INIT.h5 [options]\n"
    "\n"
    "Builds LoRA adapters A [r, n], B [m, r] and the frozen residual W - s B A for every\n"
    "target module (s = alpha / r), from the SVD cache or from SVDs computed on the fly.\n"
    "\n"
    "  --model DIR          HF model directory\n"
    "  --method M           lora | pissa | milora | ailora | ratio\n"
    "                       (ailora: q_proj principal, v_proj minor, other targets by\n"
    "                       --ratio-other; ratio: p = floor(rho r + 1/2) principal + r - p minor)\n"
    "  --rank R             adapter rank r (1 <= r <= min(m, n) of every target)\n"
    "  --out FILE           INIT.h5 to write (FILE.partial, renamed when complete)\n"
    "  --alpha A            LoRA alpha (default r, i.e. s = 1)\n"
    "  --ratio-q X          ratio: principal fraction of q_proj, in [0, 1] (default 1)\n"
    "  --ratio-v Y          ratio: principal fraction of v_proj, in [0, 1] (default 0)\n"
    "  --ratio-other Z      ailora/ratio: principal fraction of other targets (default 1)\n"
    "  --targets LIST       module suffixes (default q_proj,v_proj)\n"
    "  --svd FILE           SVD cache from `ailora svd` (default: compute the SVDs now)\n"
    "  --backend NAME       SVD backend when computing: auto | lapack | pdgesvd | cusolver\n"
    "  --seed N             seed of lora's random A (default 0)\n"
    "  --lora-init KIND     lora: kaiming (default, PEFT's) or gaussian (std 1/r, PEFT's)\n"
    "  --residual-out DIR   also write an HF model directory with the residual weights\n"
    "                       and a PEFT adapter (adapter_config.json, adapter_model.safetensors)\n"
    "  --quiet              no progress output\n";

int cmd_init(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},       {"method", required_argument, 0, 'M'},
        {"rank", required_argument, 0, 'r'},        {"out", required_argument, 0, 'o'},
        {"alpha", required_argument, 0, 'a'},       {"ratio-q", required_argument, 0, 'q'},
        {"ratio-v", required_argument, 0, 'v'},     {"ratio-other", required_argument, 0, 'O'},
        {"targets", required_argument, 0, 't'},     {"svd", required_argument, 0, 's'},
        {"backend", required_argument, 0, 'b'},     {"seed", required_argument, 0, 'S'},
        {"lora-init", required_argument, 0, 'l'},   {"residual-out", required_argument, 0, 'R'},
        {"quiet", no_argument, 0, 'Q'},             {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model_dir = NULL, *out = NULL, *method = NULL, *targets_csv = "q_proj,v_proj";
    InitOptions opt = {.verbose = 1};
    opt.spec = (InitSpec){.ratio_q = 1.0, .ratio_v = 0.0, .ratio_other = 1.0, .alpha = -1.0};
    opt.svd = (SvdOptions){.backend = SVD_BACKEND_AUTO, .block_size = 64};
    long long v;
    int c, rc = AIL_OK;
    optind = 1;
    opterr = 0;
    while (rc == AIL_OK && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'M': method = optarg; break;
        case 'o': out = optarg; break;
        case 't': targets_csv = optarg; break;
        case 's': opt.svd_path = optarg; break;
        case 'R': opt.residual_dir = optarg; break;
        case 'r':
            rc = cli_int("--rank", optarg, 1, 1 << 20, &v);
            opt.spec.rank = (int)v;
            break;
        case 'a':
            rc = cli_double("--alpha", optarg, &opt.spec.alpha);
            if (rc == AIL_OK && opt.spec.alpha <= 0) rc = AIL_ERROR(AIL_ERR_ARG, "--alpha must be positive");
            break;
        case 'q': rc = cli_double("--ratio-q", optarg, &opt.spec.ratio_q); break;
        case 'v': rc = cli_double("--ratio-v", optarg, &opt.spec.ratio_v); break;
        case 'O': rc = cli_double("--ratio-other", optarg, &opt.spec.ratio_other); break;
        case 'b': rc = svd_backend_parse(optarg, &opt.svd.backend); break;
        case 'S':
            rc = cli_int("--seed", optarg, 0, (1LL << 62), &v);
            opt.spec.seed = (uint64_t)v;
            break;
        case 'l':
            if (strcmp(optarg, "kaiming") == 0) opt.spec.lora_gaussian = 0;
            else if (strcmp(optarg, "gaussian") == 0) opt.spec.lora_gaussian = 1;
            else rc = AIL_ERROR(AIL_ERR_ARG, "--lora-init must be kaiming or gaussian, got \"%s\"", optarg);
            break;
        case 'Q': opt.verbose = 0; break;
        case 'h':
            if (cli_rank() == 0) fputs(init_help, stdout);
            return 0;
        default: rc = cli_bad_option("ailora init", argv);
        }
    }
    if (rc == AIL_OK) rc = cli_no_positional(argc, argv);
    if (rc == AIL_OK) rc = cli_require(model_dir, "--model");
    if (rc == AIL_OK) rc = cli_require(method, "--method");
    if (rc == AIL_OK) rc = cli_require(out, "--out");
    if (rc == AIL_OK && opt.spec.rank == 0) rc = AIL_ERROR(AIL_ERR_ARG, "missing required option --rank");
    if (rc == AIL_OK) rc = init_method_parse(method, &opt.spec.method);
    if (rc == AIL_OK) rc = init_spec_validate(&opt.spec);
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
