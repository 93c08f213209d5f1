/* dataset.h - pre-tokenized datasets, read row by row, and the deterministic order.
 *
 * File: HDF5 with /input_ids [N, T] and /labels [N, T], integers (any HDF5 integer
 * type, read as int32), exactly as HF causal LMs take them: labels aligned with
 * input_ids, -100 = not scored (the model shifts).
 *
 * Opening streams through the file once in chunks (validating every id and label
 * and counting each row's scored positions) and keeps the file open; batches are
 * then read row by row, so a rank holds only what it trains on, whatever the size
 * of the corpus.
 *
 * Order: epoch e visits the N sequences in a permutation seeded by (seed, e)
 * (identity when shuffle is off). Optimizer step s uses the global sample
 * positions s * batch .. (s + 1) * batch - 1 of that endless stream, so the data
 * position is a pure function of the step: resuming needs no extra state, and
 * any rank layout sees the same global batch.
 */
#ifndef AILORA_DATASET_H
#define AILORA_DATASET_H

#include <hdf5.h>
#include <stdint.h>

typedef struct {
    int n, T;
    hid_t file, ids, labels;  /* open read-only */
    int32_t *scored;          /* (n) scored positions per row: labels[t] != -100, t >= 1 */
    char path[1024];
} Dataset;

/* Opens and validates path: equal shapes, T >= 2, token ids in [0, vocab), labels in
 * [0, vocab) or -100. */
int dataset_load(const char *path, int vocab, Dataset *ds);
void dataset_free(Dataset *ds);

/* Reads rows[0..count) (any order, repeats allowed) into ids and labels (count, T);
 * either output may be NULL. */
int dataset_read_rows(const Dataset *ds, const int *rows, int count, int32_t *ids, int32_t *labels);

/* Index of the sequence at global stream position pos. */
int dataset_index(const Dataset *ds, long long pos, uint64_t seed, int shuffle);

#endif
