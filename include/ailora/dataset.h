/* dataset.h - pre-tokenized datasets, read row by row, and the deterministic order.
 *
 * File: HDF5 with /input_ids [N, T] and /labels [N, T], integers (any HDF5 integer
 * type, read as int32), exactly as HF causal LMs take them: labels aligned with
 * input_ids, -100 = not scored (the model shifts). Optional /attention_mask [N, T]
 * (any integer type, values 0 / 1; dataset v2): 1 = real token, 0 = padding, left or
 * right (llama.h: llama_acts_set_mask); absent = all ones. A row must have a real
 * token, and no scored label at a padded position. A label right after padding
 * (the first real token of a left-padded row) has no real predictor and is not
 * counted, like labels[0].
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
    hid_t mask;               /* /attention_mask, -1 when absent */
    int32_t *scored;          /* (n) scored positions per row: labels[t] != -100, t >= 1,
                                 mask[t - 1] = mask[t] = 1 */
    char path[1024];
} Dataset;

/* Opens and validates path: equal shapes, T >= 2, token ids in [0, vocab), labels in
 * [0, vocab) or -100. */
int dataset_load(const char *path, int vocab, Dataset *ds);
void dataset_free(Dataset *ds);

/* Reads rows[0..count) (any order, repeats allowed) into ids, labels and mask (count, T);
 * any output may be NULL (mask: all ones when the file has none). */
int dataset_read_rows(const Dataset *ds, const int *rows, int count, int32_t *ids, int32_t *labels,
                      int8_t *mask);

/* Index of the sequence at global stream position pos. */
int dataset_index(const Dataset *ds, long long pos, uint64_t seed, int shuffle);

#endif
