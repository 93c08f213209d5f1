/* cmd_train.c - `ailora train CONFIG [key=value ...]`. */
#include <stdio.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/train.h"
#include "cli.h"

static void train_help(FILE *out) {
    fprintf(out,
            "usage: [mpirun -np N] ailora train CONFIG [key=value ...]\n"
            "       [mpirun -np N] ailora train key=value ...\n"
            "\n"
            "Fine-tunes LoRA adapters initialized by `method` (SVD methods from the SVD\n"
            "cache) on a pre-tokenized HDF5 dataset, data-parallel over the MPI ranks, and\n"
            "writes one HDF5 run file (`out`) plus a checkpoint (`out`.ckpt.h5).\n"
            "\n"
            "exit status: 0 done, 1 error, 3 NaN/Inf loss (checkpoint of the last good\n"
            "step kept), 75 SIGTERM/SIGUSR1 received (checkpointed: rerun with resume=true)\n"
            "\n");
    config_help(out);
}

int cmd_train(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        if (cli_rank() == 0) train_help(stdout);
        return 0;
    }
    const char *path = argc > 1 && !strchr(argv[1], '=') ? argv[1] : NULL;
    int first = path ? 2 : 1;
    TrainConfig cfg;
    // every rank reads the config itself: a rank that could not must not leave alone
    int rc = ail_error_agree(MPI_COMM_WORLD, config_load(path, argc - first, argv + first, &cfg));
    if (rc != AIL_OK) return cli_fail("ailora train");
    train_install_signal_handlers();
    int status = train_run(MPI_COMM_WORLD, &cfg);
    if (status == TRAIN_ERROR) return cli_fail("ailora train");
    return status;
}
