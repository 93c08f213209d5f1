/* fuzz_dataset.c - libFuzzer harness of the HDF5 token datasets (src/train/dataset.c).
 *
 * The input drives h5gen.h to write a dataset file (/input_ids, /labels and, when the
 * input says so, the optional /attention_mask; shapes,
 * types, storage and token values; see h5gen.h for why files are generated rather
 * than mutated), and the vocabulary size the reader validates against. An accepted
 * file is then used the way the trainer uses it: rows read in an input-chosen
 * order (dataset_read_rows, out-of-range rows included) and the epoch permutation
 * (dataset_index); every row read must satisfy what dataset_load promised.
 */
#include <stdint.h>
#include <stdlib.h>

#include "ailora/dataset.h"
#include "h5gen.h"

typedef struct {
    int vocab;
} Ctx;

static long long token(FuzzIn *in, size_t i, const void *ctx) {
    int vocab = ((const Ctx *)ctx)->vocab;
    (void)i;
    switch (in_u8(in) % 16) {
    case 0: return -100;
    case 1: return vocab;
    case 2: return vocab - 1;
    case 3: return -1;
    case 4: return -2147483648LL;
    case 5: return 2147483647LL;
    case 6: return 1LL << 40;   // beyond int32: HDF5 clips it on conversion
    case 7: return -101;
    default: return in_u8(in) % vocab;
    }
}

static long long mask_value(FuzzIn *in, size_t i, const void *ctx) {
    (void)i, (void)ctx;
    switch (in_u8(in) % 8) {
    case 0: return 0;
    case 1: return in_u8(in) % 2 ? 2 : -1;  // neither 0 nor 1: refused
    default: return 1;
    }
}

static double unused_f64(FuzzIn *in, size_t i, const void *ctx) { return (void)in, (void)i, (void)ctx, 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzIn in = {data, size};
    Ctx ctx = {(int)in_range(&in, 1, 300)};
    hsize_t dims[2];
    dims[0] = (hsize_t)in_range(&in, 0, 12);
    dims[1] = (hsize_t)in_range(&in, 0, 12);
    char path[600];
    fuzz_path(path, sizeof path, "data.h5");
    hid_t f = gen_file(path);
    gen_dataset(&in, f, "/input_ids", 2, dims, 1, unused_f64, token, &ctx);
    gen_dataset(&in, f, "/labels", 2, dims, 1, unused_f64, token, &ctx);
    if (in_u8(&in) % 2) gen_dataset(&in, f, "/attention_mask", 2, dims, 1, unused_f64, mask_value, &ctx);
    H5Fclose(f);

    ail_error_clear();
    Dataset ds;
    int rc = dataset_load(path, ctx.vocab, &ds);
    fuzz_check_error(rc);
    if (rc != AIL_OK) {
        FUZZ_ASSERT(ds.file < 0 && ds.ids < 0 && ds.labels < 0 && ds.mask < 0 && ds.scored == NULL);
        return 0;
    }
    FUZZ_ASSERT(ds.n >= 1 && ds.T >= 2);
    for (int i = 0; i < ds.n; i++) FUZZ_ASSERT(ds.scored[i] >= 0 && ds.scored[i] <= ds.T - 1);
    // a batch of rows as the trainer reads them
    int count = (int)in_range(&in, 1, 8), rows[8];
    int bad = 0;
    for (int i = 0; i < count; i++) {
        rows[i] = (int)in_range(&in, -2, ds.n + 1);
        bad |= rows[i] < 0 || rows[i] >= ds.n;
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)count * ds.T);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)count * ds.T);
    int8_t *mask = malloc((size_t)count * ds.T);
    FUZZ_ASSERT(ids && lab && mask);
    ail_error_clear();
    rc = dataset_read_rows(&ds, rows, count, ids, lab, mask);
    fuzz_check_error(rc);
    FUZZ_ASSERT((rc != AIL_OK) == bad);
    for (int b = 0; rc == AIL_OK && b < count; b++) {
        int real = 0, scored = 0;
        for (int t = 0; t < ds.T; t++) {
            size_t i = (size_t)b * ds.T + t;
            FUZZ_ASSERT(ids[i] >= 0 && ids[i] < ctx.vocab);
            FUZZ_ASSERT(lab[i] == -100 || (lab[i] >= 0 && lab[i] < ctx.vocab));
            FUZZ_ASSERT(mask[i] == 0 || mask[i] == 1);
            FUZZ_ASSERT(mask[i] || lab[i] == -100);  // no scored label at a padded position
            real += mask[i];
            scored += t >= 1 && lab[i] != -100 && mask[i - 1];
        }
        FUZZ_ASSERT(real > 0 && scored == ds.scored[rows[b]]);
    }
    free(ids), free(lab), free(mask);
    uint64_t seed = in_u64(&in);
    for (int k = 0; k < 4; k++) {
        long long pos = (long long)(in_u64(&in) >> 2);
        int i = dataset_index(&ds, pos, seed, k & 1);
        FUZZ_ASSERT(i >= 0 && i < ds.n);
    }
    dataset_free(&ds);
    return 0;
}
