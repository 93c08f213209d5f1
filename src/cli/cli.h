/* cli.h - shared pieces of the `ailora` subcommands. */
#ifndef AILORA_CLI_H
#define AILORA_CLI_H

#include <getopt.h>
#include <mpi.h>

#include "ailora/hfmodel.h"
#include "ailora/options.h"

int cmd_svd(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);

/* Prints the pending error as one line ("ailora svd: error: ...") from rank 0 of
 * MPI_COMM_WORLD (errors are agreed on by all ranks first) and returns exit status 1. */
int cli_fail(const char *prog);
/* A command's options from its table (options.h): defaults, CONFIG, then the
 * arguments, agreed over MPI_COMM_WORLD. Returns 1 when the command goes on;
 * 0 when it is done, with *status its exit status: --help (usage, then the table's
 * help, from rank 0), --print-config (the resolved values) or an error (printed). */
int cli_options(const OptionTable *t, const char *usage, void *obj, int argc, char **argv, int *status);
int cli_rank(void);
/* Opens an HF model directory and expands the target list on every rank, errors
 * agreed across ranks; on failure nothing stays open. */
int cli_open_model(const char *dir, const char *targets_csv, HFModel *model,
                   TargetModule **targets, int *count);

#endif
