/* fuzz_gguf.c - libFuzzer harness of the GGUF reader and importer (src/io/gguf.c,
 * src/io/gguf_import.c).
 *
 * The input is the whole file. It is parsed from memory (gguf_parse); when accepted,
 * every metadata value is read through the typed getters, every string array element
 * and every tensor of a supported type (up to 64 Ki values) dequantized, so a length or
 * extent the validation let through would be caught by ASan. Accepted inputs are then
 * imported from a file (gguf_import): a LLaMA directory or one error, and never a
 * DIR.partial left behind.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/fileio.h"
#include "ailora/gguf.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ail_error_clear();
    GGUFFile g;
    int rc = gguf_parse(data, size, "fuzz.gguf", &g);
    fuzz_check_error(rc);
    if (rc != AIL_OK) {
        FUZZ_ASSERT(g.kv == NULL && g.tensors == NULL && g.nkv == 0);
        return 0;
    }
    FUZZ_ASSERT(g.data_start <= size || g.ntensors == 0);
    for (int64_t i = 0; i < g.nkv; i++) {
        const GGUFKV *kv = &g.kv[i];
        FUZZ_ASSERT(gguf_kv(&g, kv->key) == kv);
        int64_t v;
        double d;
        int b, found;
        char *s = NULL;
        if (gguf_get_int_opt(&g, kv->key, &v, &found) != AIL_OK) ail_error_clear();
        if (gguf_get_num_opt(&g, kv->key, &d, &found) != AIL_OK) ail_error_clear();
        if (gguf_get_bool_opt(&g, kv->key, &b, &found) != AIL_OK) ail_error_clear();
        if (gguf_get_str_opt(&g, kv->key, &s, &found) != AIL_OK) ail_error_clear();
        free(s);
        if (kv->type != GGUF_ARRAY) continue;
        volatile uint64_t sum = 0;
        for (uint64_t k = 0; k < kv->count; k++) {
            if (kv->elem_type == GGUF_STRING) {
                uint64_t len;
                const char *p = gguf_array_str(kv, k, &len);
                FUZZ_ASSERT((const uint8_t *)p >= data && (const uint8_t *)p + len <= data + size);
                if (len) sum += (uint8_t)p[len - 1];
            } else if (kv->elem_type == GGUF_F32 || kv->elem_type == GGUF_F64) {
                sum += (uint64_t)(gguf_array_num(kv, k) != 0);
            } else {
                sum += (uint64_t)gguf_array_int(kv, k);
            }
        }
        (void)sum;
    }
    for (int64_t i = 0; i < g.ntensors; i++) {
        const GGUFTensor *t = &g.tensors[i];
        FUZZ_ASSERT(gguf_tensor(&g, t->name) == t);
        FUZZ_ASSERT(t->data >= data + g.data_start && t->data + t->nbytes <= data + size);
        if (!ggml_type_supported(t->type) || t->numel > 65536) continue;
        float *out = malloc(sizeof(float) * t->numel);
        FUZZ_ASSERT(out != NULL);
        int64_t rows = (int64_t)(t->numel / (size_t)t->ne[0]);
        FUZZ_ASSERT(gguf_tensor_rows_f32(t, 0, rows, out) == AIL_OK);
        volatile float sum = 0;
        for (size_t k = 0; k < t->numel; k++) sum += out[k];
        (void)sum;
        free(out);
    }
    gguf_close(&g);

    // the importer on the same bytes, from a file
    char path[600], out[600], partial[700], cmd[1400];
    fuzz_path(path, sizeof path, "in.gguf");
    fuzz_path(out, sizeof out, "out");
    fuzz_write(path, data, size);
    rc = gguf_import(path, out, &(GGUFImportOptions){.quiet = 1});
    fuzz_check_error(rc);
    file_partial_path(out, partial, sizeof partial);
    FUZZ_ASSERT(!file_exists(partial));
    FUZZ_ASSERT((rc == AIL_OK) == file_exists(out));
    if (rc == AIL_OK) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
        FUZZ_ASSERT(system(cmd) == 0);
    }
    ail_error_clear();
    return 0;
}
