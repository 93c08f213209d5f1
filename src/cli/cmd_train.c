/* cmd_train.c - `ailora train CONFIG [key=value ...]`. */
#include <stdio.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/train.h"
#include "cli.h"

static const char *const train_usage =
    "usage: [mpirun -np N] ailora train CONFIG [key=value ...]\n"
    "       [mpirun -np N] ailora train key=value ...\n"
    "\n"
    "Fine-tunes LoRA adapters initialized by `method` (SVD methods from the SVD\n"
    "cache) on a pre-tokenized HDF5 dataset, data-parallel over the MPI ranks, and\n"
    "writes one HDF5 run file (`out`) plus a checkpoint (`out`.ckpt.h5).\n"
    "CONFIG: key = value lines ([sections] ignored; \";\" and \"#\" start comments).\n"
    "\n"
    "exit status: 0 done, 1 error, 3 NaN/Inf loss (checkpoint of the last good\n"
    "step kept), 75 SIGTERM/SIGUSR1 received (checkpointed: rerun with resume=true)\n"
    "\n"
    "A run is never replaced or mixed: a fresh run onto an existing `out` is refused\n"
    "(overwrite=true deletes it first); resume=true continues it only under the same\n"
    "config up to steps, output cadence, layout and device (README: Training), and\n"
    "starts from scratch when there is no checkpoint yet.\n"
    "\n";

int cmd_train(int argc, char **argv) {
    TrainConfig cfg;
    config_defaults(&cfg);
    int status;
    if (!cli_options(config_options(), train_usage, &cfg, argc, argv, &status)) return status;
    train_install_signal_handlers();
    status = train_run(MPI_COMM_WORLD, &cfg);
    if (status == TRAIN_ERROR) return cli_fail("ailora train");
    return status;
}
