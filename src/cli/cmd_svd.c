/* cmd_svd.c - `ailora svd`: full spectra of the target weights into an SVD cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/hfmodel.h"
#include "ailora/svdcache.h"
#include "cli.h"

static const char *const svd_help =
    "usage: [mpirun -np N] ailora svd --model DIR --out SVD.h5 [options]\n"
    "\n"
    "Full float64 SVD (every singular value and vector) of each target weight of an\n"
    "HF model directory, written to an HDF5 SVD cache that `ailora init` and\n"
    "`ailora train` reuse.\n"
    "\n"
    "  --model DIR           HF model directory (config.json + *.safetensors)\n"
    "  --out FILE            SVD cache to write (written as FILE.partial, then renamed)\n"
    "  --targets LIST        comma-separated module suffixes (default q_proj,v_proj)\n"
    "  --backend NAME        auto (default): dgesdd per rank, sub-grids / pdgesvd where\n"
    "                        that is faster or a matrix does not fit one rank;\n"
    "                        lapack: dgesdd, matrices spread over ranks;\n"
    "                        pdgesvd: ScaLAPACK on a grid of all ranks, one matrix at a time;\n"
    "                        cusolver: cuSOLVER gesvd on the GPUs, one GPU per rank (ranks\n"
    "                        of a node share its GPUs in turn), matrices spread over ranks\n"
    "                        (needs a CUDA build and a visible GPU)\n"
    "  --block NB            ScaLAPACK block size (default 64)\n"
    "  --grid-ranks G        auto: run pdgesvd on sub-grids of G ranks, several matrices\n"
    "                        at once (default: only when ranks outnumber matrices by\n"
    "                        more than pdgesvd's slowdown, 16x)\n"
    "  --max-rank-mem GIB    memory one rank may use for one dgesdd (default: half of\n"
    "                        the node's memory / ranks on the node)\n"
    "  --quiet               no progress output\n";

int cmd_svd(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"out", required_argument, 0, 'o'},
        {"targets", required_argument, 0, 't'}, {"backend", required_argument, 0, 'b'},
        {"block", required_argument, 0, 'B'},   {"max-rank-mem", required_argument, 0, 'M'},
        {"grid-ranks", required_argument, 0, 'g'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *model_dir = NULL, *out = NULL, *targets_csv = "q_proj,v_proj";
    SvdOptions opt = {.backend = SVD_BACKEND_AUTO, .block_size = 64, .verbose = 1};
    double max_gib = 0.0;
    long long v;
    int c, rc = AIL_OK;
    optind = 1;
    opterr = 0;
    while (rc == AIL_OK && (c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'o': out = optarg; break;
        case 't': targets_csv = optarg; break;
        case 'b': rc = svd_backend_parse(optarg, &opt.backend); break;
        case 'B':
            rc = cli_int("--block", optarg, 1, 4096, &v);
            opt.block_size = (int)v;
            break;
        case 'M':
            rc = cli_double("--max-rank-mem", optarg, &max_gib);
            if (rc == AIL_OK && max_gib <= 0) rc = AIL_ERROR(AIL_ERR_ARG, "--max-rank-mem must be positive");
            break;
        case 'g':
            rc = cli_int("--grid-ranks", optarg, 1, 1 << 20, &v);
            opt.group_ranks = (int)v;
            break;
        case 'q': opt.verbose = 0; break;
        case 'h':
            if (cli_rank() == 0) fputs(svd_help, stdout);
            return 0;
        default: rc = cli_bad_option("ailora svd", argv);
        }
    }
    if (rc == AIL_OK) rc = cli_no_positional(argc, argv);
    if (rc == AIL_OK) rc = cli_require(model_dir, "--model");
    if (rc == AIL_OK) rc = cli_require(out, "--out");
    if (rc != AIL_OK) return cli_fail("ailora svd");

    HFModel model;
    TargetModule *targets;
    int ntargets;
    if (cli_open_model(model_dir, targets_csv, &model, &targets, &ntargets) != AIL_OK)
        return cli_fail("ailora svd");
    opt.max_rank_bytes = max_gib > 0 ? max_gib * 1073741824.0 : svd_default_rank_bytes(MPI_COMM_WORLD);
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
