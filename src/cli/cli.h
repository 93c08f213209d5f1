/* cli.h - shared pieces of the `ailora` subcommands. */
#ifndef AILORA_CLI_H
#define AILORA_CLI_H

#include <getopt.h>
#include <mpi.h>

#include "ailora/hfmodel.h"

int cmd_svd(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_train(int argc, char **argv);

/* Prints the pending error as one line ("ailora svd: error: ...") from rank 0 of
 * MPI_COMM_WORLD (errors are agreed on by all ranks first) and returns exit status 1. */
int cli_fail(const char *prog);
/* Strict number parsing; errors name the option. */
int cli_int(const char *opt, const char *text, long long lo, long long hi, long long *out);
int cli_double(const char *opt, const char *text, double *out);
/* Records "unknown option" / "missing argument" for getopt's '?' and ':' results. */
int cli_bad_option(const char *prog, char **argv);
/* Error for a positional argument left after the options (getopt's optind). */
int cli_no_positional(int argc, char **argv);
/* Error for a required option that was not given. */
int cli_require(const char *value, const char *opt);
int cli_rank(void);
/* Opens an HF model directory and expands the target list on every rank, errors
 * agreed across ranks; on failure nothing stays open. */
int cli_open_model(const char *dir, const char *targets_csv, HFModel *model,
                   TargetModule **targets, int *count);

#endif
