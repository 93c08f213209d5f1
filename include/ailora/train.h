/* train.h - `ailora train`: LoRA fine-tuning with SVD-initialized adapters,
 * data-parallel over MPI, with run files, checkpoints and preemption handling.
 *
 * Exit statuses of the program (train_run's return value maps onto them):
 *   0   finished: the run file holds the whole curve and the final adapters
 *   1   error (bad config, missing files, a run in `out` that a fresh run would replace
 *       or a resume would mix with another config, ...): one line on stderr
 *   3   the loss became NaN or infinite: stopped; the checkpoint holds the last good step
 *   75  SIGTERM or SIGUSR1 (Slurm preemption / time limit): checkpointed at the step
 *       boundary; rerun with resume=true to continue
 */
#ifndef AILORA_TRAIN_H
#define AILORA_TRAIN_H

#include <mpi.h>

#include "ailora/trainconfig.h"

enum { TRAIN_DONE = 0, TRAIN_ERROR = 1, TRAIN_NAN = 3, TRAIN_PREEMPTED = 75 };

/* Collective over comm. config_text: the resolved configuration for the run file. */
int train_run(MPI_Comm comm, const TrainConfig *cfg);
/* "<out>.ckpt.h5" */
void train_checkpoint_path(const char *out, char *buf, size_t len);
/* Installs the SIGTERM / SIGUSR1 handlers that request a checkpoint-and-exit. */
void train_install_signal_handlers(void);

#endif
