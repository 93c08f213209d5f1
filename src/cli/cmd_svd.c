/* cmd_svd.c - `ailora svd`: full spectra of the target weights into an SVD cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ailora/error.h"
#include "ailora/hfmodel.h"
#include "ailora/svd_cost.h"
#include "ailora/svdcache.h"
#include "cli.h"

static const char *const svd_usage =
    "usage: [mpirun -np N] ailora svd [CONFIG] --model DIR --out SVD.h5 [options]\n"
    "\n"
    "Full float64 SVD (every singular value and vector) of each target weight of an\n"
    "HF model directory, written to an HDF5 SVD cache that `ailora init` and\n"
    "`ailora train` reuse. Backends: auto: dgesdd per rank, sub-grids / pdgesvd where\n"
    "that is faster or a matrix does not fit one rank; lapack: dgesdd, matrices spread\n"
    "over ranks; pdgesvd: ScaLAPACK on a grid of all ranks, one matrix at a time;\n"
    "cusolver: cuSOLVER gesvd on the GPUs, one GPU per rank (ranks of a node share its\n"
    "GPUs in turn), matrices spread over ranks (needs a CUDA build and a visible GPU);\n"
    "select: all singular values, only the kept vectors (dgebrd + dbdsvdx), one rank a matrix.\n"
    "--keep K stores S whole but U, Vt only for indices [0, K) and [k-K, k) (a partial\n"
    "cache: init and train refuse a rank / ratio that needs vectors it lacks); auto then\n"
    "picks dgesdd or the selected-vector route per matrix from measured per-core rates.\n"
    "pdgebrd: the selected-vector route on a grid of ranks (pdgebrd, the bidiagonal solved\n"
    "on every rank, pdormbr of the kept vectors only); auto uses it for matrices too\n"
    "large for one rank and, on sub-grids, when ranks outnumber matrices.\n"
    "--vectors float32 stores U and Vt rounded once to float32 (S stays float64): half\n"
    "the cache; init's W = W_res + s B A stays exact in float64 (W_res is formed from the\n"
    "same rounded vectors), the adapters are principal / minor to ~1e-7 instead of 1e-12.\n"
    "--plan prints, computing nothing, the plan and each phase's predicted time, memory\n"
    "per rank and output size for --ranks ranks (a model directory may then hold only\n"
    "config.json), from per-core rates (built in, or --rates FILE as\n"
    "experiments/bench/svd_rates_dist.sh writes it).\n"
    "--threads N|auto: BLIS threads per rank for the one-rank routes (dgesdd, select);\n"
    "auto: BLIS_NUM_THREADS / OMP_NUM_THREADS if set, else the CPUs bound to the rank\n"
    "(`mpirun --map-by slot:PE=N`, Slurm --cpus-per-task); N overrides the environment.\n"
    "Grid routes run one thread per rank. --plan also compares ranks x threads layouts\n"
    "(with --ranks N, auto plans the environment's count, else one thread per rank).\n"
    "\n";

typedef struct {
    char model[1024], out[1024], targets[256];
    SvdBackend backend;
    int block, grid_ranks, quiet, keep, plan, ranks, node_cores, threads;
    double max_rank_mem;
    char rates[1024], vectors[16];
} SvdArgs;

static int backend_parse(const char *text, void *field) { return svd_backend_parse(text, field); }
static const char *backend_print(const void *field) { return svd_backend_name(*(const SvdBackend *)field); }

#define OPT_STRUCT SvdArgs
static const Option svd_opts[] = {
    OPT_STR("model", model, NULL, "HF model directory (config.json + *.safetensors)"),
    OPT_STR("out", out, "", "SVD cache to write (written as FILE.partial, then renamed); required without --plan"),
    OPT_STR("targets", targets, "q_proj,v_proj", "comma-separated module suffixes"),
    OPT_ENUM("backend", backend, "auto", backend_parse, backend_print, "auto | lapack | pdgesvd | cusolver | select | pdgebrd (see above)"),
    OPT_ENUM("keep", keep, "all", svd_keep_parse, svd_keep_print,
             "K | all: singular vectors [0, K) and [k-K, k) only (S always whole)"),
    OPT_ENUM("threads", threads, "auto", svd_threads_parse, svd_threads_print,
             "N | auto: BLIS threads per rank for dgesdd / select (auto: BLIS_NUM_THREADS, OMP_NUM_THREADS, else the rank's bound CPUs)"),
    OPT_CHOICE("vectors", vectors, "float64", "float64|float32", "storage type of the cached U and Vt (S is float64)"),
    OPT_INT("block", block, "64", "[1, 4096]", "ScaLAPACK block size"),
    OPT_INT("grid_ranks", grid_ranks, "0", "[0, 1048576]",
            "auto: pdgebrd on sub-grids of G ranks (0: where ranks outnumber matrices and the cost model says faster)"),
    OPT_DBL("max_rank_mem", max_rank_mem, "0", "[0, inf)",
            "GiB one rank may use for one dgesdd (0: half the node memory / ranks)"),
    OPT_BOOL("quiet", quiet, "false", "no progress output"),
    OPT_BOOL("plan", plan, "false", "print the plan with predicted time, memory per rank and output size; compute nothing"),
    OPT_INT("ranks", ranks, "0", "[0, 1048576]", "--plan: ranks to plan for (0: this run's)"),
    OPT_INT("node_cores", node_cores, "0", "[0, 1048576]",
            "--plan: ranks per node (0: one node); grids wider than a node pay the network's latency"),
    OPT_STR("rates", rates, "", "per-core rates file (svd.h SvdRates names; default: built in, or AILORA_SVD_RATES)"),
};
#undef OPT_STRUCT
static const OptionTable svd_table = {"ailora svd", svd_opts, (int)(sizeof svd_opts / sizeof *svd_opts), 1};

/* The shape [m, n] of a target from config.json alone (no weights needed). */
static int config_shape(const ModelConfig *c, const char *suffix, int *m, int *n) {
    int q = c->num_attention_heads * c->head_dim, kv = c->num_key_value_heads * c->head_dim;
    int h = c->hidden_size, f = c->intermediate_size;
    const struct { const char *s; int m, n; } shapes[] = {
        {"q_proj", q, h}, {"k_proj", kv, h}, {"v_proj", kv, h}, {"o_proj", h, q},
        {"gate_proj", f, h}, {"up_proj", f, h}, {"down_proj", h, f}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        if (strcmp(suffix, shapes[i].s) == 0) {
            *m = shapes[i].m, *n = shapes[i].n;
            return AIL_OK;
        }
    return AIL_ERROR(AIL_ERR_ARG, "unknown target module \"%s\" (known: q_proj k_proj v_proj o_proj "
                     "gate_proj up_proj down_proj)", suffix);
}

/* Targets from config.json only: every layer, in layer order then list order. */
static int config_targets(const char *dir, const char *csv, TargetModule **targets, int *count) {
    char path[1100], list[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    ModelConfig c;
    AIL_CHECK(model_config_load(path, &c));
    snprintf(list, sizeof list, "%s", csv);
    int ns = 1;
    for (const char *p = list; *p; p++) ns += *p == ',';
    *count = 0;
    AIL_CALLOC(*targets, (size_t)ns * (size_t)c.num_hidden_layers + 1);
    for (int l = 0; l < c.num_hidden_layers; l++) {
        snprintf(list, sizeof list, "%s", csv);
        for (char *save = NULL, *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
            TargetModule *t = &(*targets)[(*count)++];
            int rc = config_shape(&c, s, &t->m, &t->n);
            if (rc != AIL_OK) {
                free(*targets);
                return rc;
            }
            snprintf(t->suffix, sizeof t->suffix, "%s", s);
            snprintf(t->name, sizeof t->name, "model.layers.%d.%s.%s", l,
                     strstr(s, "_proj") && (s[0] == 'q' || s[0] == 'k' || s[0] == 'v' || s[0] == 'o') ? "self_attn" : "mlp", s);
            t->layer = l;
            t->dtype = c.torch_dtype;
        }
    }
    return AIL_OK;
}

/* --plan: the same cores as other ranks x threads layouts, priced by the same
 * model (svd_plan_make_threads): what to launch. Memory per rank grows with its
 * threads (fewer ranks share the node). */
static void print_layouts(const SvdArgs *a, const TargetModule *targets, int ntargets, int nranks,
                          int threads, double rank_bytes, const SvdRates *rates) {
    int cores = nranks * threads, best_t = 0, shown = 0;
    double best = 0.0;
    printf("layouts of the same %d core(s), ranks x threads:", cores);
    for (int t = 1; t <= cores && shown < 8; t++) {
        if (cores % t || (a->grid_ranks > cores / t)) continue;
        SvdPlan plan;
        if (svd_plan_make_threads(a->backend, targets, ntargets, cores / t, t, rank_bytes / threads * t,
                                  a->grid_ranks, a->keep, &plan) != AIL_OK) {
            ail_error_clear();
            continue;
        }
        double s = svd_cost_plan(rates, &plan, targets, ntargets, a->keep,
                                 strcmp(a->vectors, "float32") == 0 ? 4 : 8, a->node_cores, NULL);
        svd_plan_free(&plan);
        printf("%s %d x %d: %.4g s", shown ? ";" : "", cores / t, t, s);
        if (!best_t || s < best) best = s, best_t = t;
        shown++;
    }
    if (best_t)
        printf("\n  fastest: mpirun -np %d --map-by slot:PE=%d ailora svd --threads %d\n", cores / best_t, best_t,
               best_t);
    else
        printf(" none\n");
}

/* --plan: the schedule and its predicted cost, printed by rank 0; nothing computed. */
static int svd_print_plan(const SvdArgs *a) {
    int nranks, rc;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (a->ranks > 0) nranks = a->ranks;
    HFModel model;
    TargetModule *targets = NULL;
    int ntargets = 0, have_weights = 0;
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/config.json", a->model);
    // the weights when the directory has them (exact shapes), else config.json alone
    if (hfmodel_open(a->model, &model) == AIL_OK) {
        have_weights = 1;
        rc = hfmodel_targets(&model, a->targets, &targets, &ntargets);
    } else {
        ail_error_clear();
        rc = config_targets(a->model, a->targets, &targets, &ntargets);
    }
    SvdRates rates;
    SvdPlan plan = {0};
    if (rc == AIL_OK) rc = svd_rates_get(&rates);
    double ranks_per_node = a->node_cores > 0 && a->node_cores < nranks ? a->node_cores : nranks;
    double rank_bytes = a->max_rank_mem > 0
                            ? a->max_rank_mem * 1073741824.0
                            : 0.5 * (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / ranks_per_node;
    // auto: what this run would use; planning for other ranks (--ranks), this
    // machine's CPUs say nothing: the environment's count, else one per rank
    int threads = 1, requested = a->threads, env = svd_threads_env();
    if (requested == SVD_THREADS_AUTO && a->ranks > 0) requested = env ? env : 1;
    if (rc == AIL_OK) rc = svd_threads_resolve(MPI_COMM_WORLD, requested, &threads);
    if (rc == AIL_OK)
        rc = svd_plan_make_threads(a->backend, targets, ntargets, nranks, threads, rank_bytes, a->grid_ranks,
                                   a->keep, &plan);
    if (rc == AIL_OK && cli_rank() == 0) {
        printf("ailora svd --plan: %d target matrices of %s (%s), %d rank(s)", ntargets, a->model,
               have_weights ? "weights" : "config.json only", nranks);
        if (a->node_cores > 0) printf(", %d per node", a->node_cores);
        printf(", %d thread(s) per rank = %d core(s)", threads, nranks * threads);
        printf(", backend %s, keep %s, block %d\nrates: %s (threads: dgesdd %.2f, select %.2f efficiency at 2)\n",
               svd_backend_name(a->backend), svd_keep_print(&a->keep), a->block, rates.source,
               rates.gesdd_eff2, rates.select_eff2);
        svd_cost_plan(&rates, &plan, targets, ntargets, a->keep, strcmp(a->vectors, "float32") == 0 ? 4 : 8,
                      a->node_cores, stdout);
        print_layouts(a, targets, ntargets, nranks, threads, rank_bytes, &rates);
    }
    svd_plan_free(&plan);
    free(targets);
    if (have_weights) hfmodel_close(&model);
    return rc == AIL_OK ? 0 : cli_fail("ailora svd");
}

int cmd_svd(int argc, char **argv) {
    SvdArgs a = {0};
    int status;
    if (!cli_options(&svd_table, svd_usage, &a, argc, argv, &status)) return status;
    SvdOptions opt = {.backend = a.backend, .block_size = a.block, .group_ranks = a.grid_ranks,
                      .verbose = !a.quiet, .keep = a.keep, .vectors_f32 = strcmp(a.vectors, "float32") == 0,
                      .threads = a.threads};
    const char *model_dir = a.model, *out = a.out;
    int rc;
    if (a.rates[0]) setenv("AILORA_SVD_RATES", a.rates, 1);  // svd_rates_get reads it
    if (a.plan) return svd_print_plan(&a);
    if (!out[0]) {
        AIL_ERROR(AIL_ERR_ARG, "missing required option --out");
        return cli_fail("ailora svd");
    }

    HFModel model;
    TargetModule *targets;
    int ntargets;
    if (cli_open_model(model_dir, a.targets, &model, &targets, &ntargets) != AIL_OK)
        return cli_fail("ailora svd");
    opt.max_rank_bytes = a.max_rank_mem > 0 ? a.max_rank_mem * 1073741824.0 : svd_default_rank_bytes(MPI_COMM_WORLD);
    int nranks;
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    if (opt.verbose && cli_rank() == 0)
        printf("ailora svd: %d target matrices of %s on %d rank(s), backend %s\n", ntargets,
               model_dir, nranks, svd_backend_name(opt.backend));
    rc = svdcache_write(MPI_COMM_WORLD, &model, targets, ntargets, &opt, out);
    if (rc == AIL_OK && opt.verbose && cli_rank() == 0) printf("wrote %s\n", out);
    free(targets);
    hfmodel_close(&model);
    return rc == AIL_OK ? 0 : cli_fail("ailora svd");
}
