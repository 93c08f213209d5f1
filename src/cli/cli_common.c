/* cli_common.c - error reporting and argument parsing shared by the subcommands. */
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

int cli_options(const OptionTable *t, const char *usage, void *obj, int argc, char **argv, int *status) {
    int action;
    int rc = ail_error_agree(MPI_COMM_WORLD, options_parse_args(t, obj, argc, argv, &action));
    if (rc != AIL_OK) {
        *status = cli_fail(t->command);
        return 0;
    }
    if (action == OPTIONS_RUN) return 1;
    *status = 0;
    if (cli_rank() != 0) return 0;
    if (action == OPTIONS_HELP) {
        fputs(usage, stdout);
        options_help(t, stdout);
        return 0;
    }
    char *text = options_dump(t, obj);
    if (text) fputs(text, stdout);
    else *status = 1;
    free(text);
    return 0;
}

int cli_open_model(const char *dir, const char *targets_csv, HFModel *model,
                   TargetModule **targets, int *count) {
    AIL_CHECK(ail_error_agree(MPI_COMM_WORLD, hfmodel_open(dir, model)));
    int rc = ail_error_agree(MPI_COMM_WORLD, hfmodel_targets(model, targets_csv, targets, count));
    if (rc != AIL_OK) hfmodel_close(model);
    return rc;
}
