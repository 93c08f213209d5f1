/* cli_common.c - error reporting and argument parsing shared by the subcommands. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ailora/error.h"
#include "cli.h"

int cli_rank(void) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

int cli_fail(const char *prog) {
    if (cli_rank() == 0) {
        char line[1536];
        ail_error_format(prog, line, sizeof line);
        fprintf(stderr, "%s\n", line);
    }
    return 1;
}

int cli_int(const char *opt, const char *text, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi)
        return AIL_ERROR(AIL_ERR_ARG, "%s expects an integer in [%lld, %lld], got \"%s\"", opt, lo, hi,
                         text);
    *out = v;
    return AIL_OK;
}

int cli_double(const char *opt, const char *text, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v))
        return AIL_ERROR(AIL_ERR_ARG, "%s expects a number, got \"%s\"", opt, text);
    *out = v;
    return AIL_OK;
}

int cli_bad_option(const char *prog, char **argv) {
    const char *arg = argv[optind - 1] ? argv[optind - 1] : "";
    return AIL_ERROR(AIL_ERR_ARG, "bad option \"%s\" (see %s --help)", arg, prog);
}

int cli_no_positional(int argc, char **argv) {
    if (optind < argc) return AIL_ERROR(AIL_ERR_ARG, "unexpected argument \"%s\"", argv[optind]);
    return AIL_OK;
}

int cli_require(const char *value, const char *opt) {
    if (!value || !*value) return AIL_ERROR(AIL_ERR_ARG, "missing required option %s", opt);
    return AIL_OK;
}

int cli_open_model(const char *dir, const char *targets_csv, HFModel *model,
                   TargetModule **targets, int *count) {
    AIL_CHECK(ail_error_agree(MPI_COMM_WORLD, hfmodel_open(dir, model)));
    int rc = ail_error_agree(MPI_COMM_WORLD, hfmodel_targets(model, targets_csv, targets, count));
    if (rc != AIL_OK) hfmodel_close(model);
    return rc;
}
