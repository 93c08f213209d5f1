/* fuzz_safetensors.c - libFuzzer harness of the safetensors reader (src/io/safetensors.c).
 *
 * The input is the whole file: 8-byte header length, JSON header, data. The reader
 * maps a path, so the input is written to the scratch directory first. When the
 * file is accepted, every tensor is looked up by name and read whole through
 * safetensor_block_f64 (the path the SVD and the model loader take), so a data
 * pointer or size the validation let through would be caught by ASan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/safetensors.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[600];
    fuzz_path(path, sizeof path, "model.safetensors");
    fuzz_write(path, data, size);
    ail_error_clear();
    SafeTensors st;
    int rc = safetensors_open(path, &st);
    fuzz_check_error(rc);
    if (rc != AIL_OK) {
        FUZZ_ASSERT(st.map == NULL && st.tensors == NULL && st.count == 0);
        return 0;
    }
    FUZZ_ASSERT(st.map_size == size && st.data_start >= 8 && st.data_start <= size);
    size_t covered = 0;
    for (int i = 0; i < st.count; i++) {
        const SafeTensor *t = &st.tensors[i];
        FUZZ_ASSERT(safetensors_find(&st, t->name) == t);
        FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= SAFETENSORS_MAX_DIMS);
        FUZZ_ASSERT(t->nbytes == t->numel * dtype_size(t->dtype));
        const char *begin = (const char *)st.map + st.data_start, *end = (const char *)st.map + size;
        FUZZ_ASSERT((const char *)t->data >= begin && (const char *)t->data + t->nbytes <= end);
        covered += t->nbytes;
        // read it as the loaders do: 1-D as (d, 1), 2-D as (rows, cols); bounded for speed
        if (t->numel == 0 || t->numel > 65536 || t->ndim < 1 || t->ndim > 2) continue;
        int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 1;
        double *out = malloc(sizeof(double) * t->numel);
        FUZZ_ASSERT(out != NULL);
        safetensor_block_f64(t, 0, rows, 0, cols, out);
        volatile double sum = 0;
        for (size_t j = 0; j < t->numel; j++) sum += out[j];
        (void)sum;
        free(out);
    }
    FUZZ_ASSERT(covered == size - st.data_start);  // no holes, no overlaps
    for (int i = 0; i < st.metadata_count; i++)
        FUZZ_ASSERT(safetensors_metadata(&st, st.metadata_keys[i]) != NULL);
    // a name no tensor has is not found (libFuzzer learns string constants, so check first)
    const char *absent = "\x01 not a tensor";
    int have = 0;
    for (int i = 0; i < st.count; i++) have |= strcmp(st.tensors[i].name, absent) == 0;
    FUZZ_ASSERT(have || safetensors_find(&st, absent) == NULL);
    safetensors_close(&st);
    return 0;
}
