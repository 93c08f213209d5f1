/* cmd_svd.c - `ailora svd`: full spectra of the target weights into an SVD cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/hfmodel.h"
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
    "\n";

typedef struct {
    char model[1024], out[1024], targets[256];
    SvdBackend backend;
    int block, grid_ranks, quiet, keep;
    double max_rank_mem;
} SvdArgs;

static int backend_parse(const char *text, void *field) { return svd_backend_parse(text, field); }
static const char *backend_print(const void *field) { return svd_backend_name(*(const SvdBackend *)field); }

#define OPT_STRUCT SvdArgs
static const Option svd_opts[] = {
    OPT_STR("model", model, NULL, "HF model directory (config.json + *.safetensors)"),
    OPT_STR("out", out, NULL, "SVD cache to write (written as FILE.partial, then renamed)"),
    OPT_STR("targets", targets, "q_proj,v_proj", "comma-separated module suffixes"),
    OPT_ENUM("backend", backend, "auto", backend_parse, backend_print, "auto | lapack | pdgesvd | cusolver | select (see above)"),
    OPT_ENUM("keep", keep, "all", svd_keep_parse, svd_keep_print,
             "K | all: singular vectors [0, K) and [k-K, k) only (S always whole)"),
    OPT_INT("block", block, "64", "[1, 4096]", "ScaLAPACK block size"),
    OPT_INT("grid_ranks", grid_ranks, "0", "[0, 1048576]",
            "auto: pdgesvd on sub-grids of G ranks (0: when ranks outnumber matrices 16x)"),
    OPT_DBL("max_rank_mem", max_rank_mem, "0", "[0, inf)",
            "GiB one rank may use for one dgesdd (0: half the node memory / ranks)"),
    OPT_BOOL("quiet", quiet, "false", "no progress output"),
};
#undef OPT_STRUCT
static const OptionTable svd_table = {"ailora svd", svd_opts, (int)(sizeof svd_opts / sizeof *svd_opts), 1};

int cmd_svd(int argc, char **argv) {
    SvdArgs a = {0};
    int status;
    if (!cli_options(&svd_table, svd_usage, &a, argc, argv, &status)) return status;
    SvdOptions opt = {.backend = a.backend, .block_size = a.block, .group_ranks = a.grid_ranks,
                      .verbose = !a.quiet, .keep = a.keep};
    const char *model_dir = a.model, *out = a.out;
    int rc;

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
