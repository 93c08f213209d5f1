/* dataset.h - pre-tokenized datasets and the deterministic batch order.
 *
 * File: HDF5 with /input_ids [N, T] and /labels [N, T], integers (stored as any
 * HDF5 integer type, read as int32), exactly as HF causal LMs take them: labels
 * aligned with input_ids, -100 = not scored (the model shifts).
 *
 * Order: epoch e visits the N sequences in a permutation seeded by (seed, e)
 * (identity when shuffle is off). Optimizer step s uses the global sample
 * positions s * batch .. (s + 1) * batch - 1 of that endless stream, so the data
 * position is a pure function of the step: resuming needs no extra state, and
 * any rank layout sees the same global batch.
 */
#ifndef AILORA_DATASET_H
#define AILORA_DATASET_H

#include <stdint.h>

typedef struct {
    int n, T;
    int32_t *input_ids;  /* (n, T) */
    int32_t *labels;     /* (n, T) */
} Dataset;

/* Reads and validates path (shapes equal, token ids in [0, vocab), labels in
 * [0, vocab) or -100). */
int dataset_load(const char *path, int vocab, Dataset *ds);
void dataset_free(Dataset *ds);

/* Index of the sequence at global stream position pos. */
int dataset_index(const Dataset *ds, long long pos, uint64_t seed, int shuffle);
/* Scored positions of a sequence (labels[t + 1] != -100 for t < T - 1). */
int dataset_scored(const Dataset *ds, int index);

#endif
