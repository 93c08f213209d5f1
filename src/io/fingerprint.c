/* fingerprint.c - XXH3-128 fingerprints of tensors and model directories (see fingerprint.h). */
#include "ailora/fingerprint.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ailora/error.h"
#include "ailora/fileio.h"

static void hex_of(XXH128_hash_t h, char hex[FINGERPRINT_HEX]) {
    XXH128_canonical_t c;  // big-endian bytes: the digits read as the 128-bit number
    XXH128_canonicalFromHash(&c, h);
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", c.digest[i]);
}

static void put_i64(XXH3_state_t *s, int64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)v >> (8 * i));
    XXH3_128bits_update(s, b, 8);
}

void fingerprint_tensor(const SafeTensor *t, char hex[FINGERPRINT_HEX]) {
    XXH3_state_t *s = XXH3_createState();
    XXH3_128bits_reset(s);
    XXH3_128bits_update(s, t->name, strlen(t->name) + 1);
    const char *dt = dtype_name(t->dtype);
    XXH3_128bits_update(s, dt, strlen(dt) + 1);
    put_i64(s, t->ndim);
    for (int d = 0; d < t->ndim; d++) put_i64(s, t->shape[d]);
    XXH3_128bits_update(s, t->data, t->nbytes);
    hex_of(XXH3_128bits_digest(s), hex);
    XXH3_freeState(s);
}

int fingerprint_tensors(MPI_Comm comm, const SafeTensor *const *tensors, int count,
                        char (*hex)[FINGERPRINT_HEX]) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    memset(hex, 0, sizeof *hex * (size_t)(count > 0 ? count : 0));
    for (int i = rank; i < count; i += size) fingerprint_tensor(tensors[i], hex[i]);
    // every entry was written by exactly one rank, the others hold zeros
    if (count > 0 &&
        MPI_Allreduce(MPI_IN_PLACE, hex, count * FINGERPRINT_HEX, MPI_UNSIGNED_CHAR, MPI_BOR, comm) != MPI_SUCCESS)
        return AIL_ERROR(AIL_ERR_MPI, "sharing tensor fingerprints failed");
    return AIL_OK;
}

int fingerprint_model(MPI_Comm comm, const HFModel *model, char hex[FINGERPRINT_HEX]) {
    int total = 0;
    for (int s = 0; s < model->nshards; s++) total += model->shards[s].count;
    const SafeTensor **all = ail_malloc(sizeof *all * (size_t)(total ? total : 1));
    char(*fps)[FINGERPRINT_HEX] = ail_malloc(sizeof *fps * (size_t)(total ? total : 1));
    char path[4096], *config = NULL;
    size_t config_len = 0;
    snprintf(path, sizeof path, "%s/config.json", model->dir);
    int rc = all && fps ? file_read_all(path, &config, &config_len)
                        : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    rc = ail_error_agree(comm, rc);
    for (int s = 0, i = 0; s < model->nshards && rc == AIL_OK; s++)
        for (int j = 0; j < model->shards[s].count; j++) all[i++] = &model->shards[s].tensors[j];
    if (rc == AIL_OK) rc = fingerprint_tensors(comm, all, total, fps);
    if (rc == AIL_OK) {
        XXH3_state_t *st = XXH3_createState();
        XXH3_128bits_reset(st);
        XXH3_128bits_update(st, config, config_len);
        for (int s = 0; s < model->nshards; s++) {
            XXH3_128bits_update(st, model->shard_files[s], strlen(model->shard_files[s]) + 1);
            XXH3_128bits_update(st, model->shards[s].map, model->shards[s].data_start);
        }
        for (int i = 0; i < total; i++) {  // the 16 bytes behind each hex string
            unsigned char b[16];
            for (int k = 0; k < 16; k++) {
                unsigned v;
                sscanf(fps[i] + 2 * k, "%2x", &v);
                b[k] = (unsigned char)v;
            }
            XXH3_128bits_update(st, b, 16);
        }
        hex_of(XXH3_128bits_digest(st), hex);
        XXH3_freeState(st);
    }
    free(config);
    free(all);
    free(fps);
    return rc;
}
