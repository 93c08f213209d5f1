/* dataset.c - HDF5 token datasets and the seeded epoch permutation. */
#include "ailora/dataset.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/h5io.h"
#include "ailora/rng.h"

static int read_ints(hid_t file, const char *path, const char *name, hsize_t *dims, int32_t **out) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: dataset %s not found", path, name);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT), s = H5Dget_space(d), t = H5Dget_type(d);
    int nd = H5Sget_simple_extent_ndims(s), is_int = H5Tget_class(t) == H5T_INTEGER;
    if (nd == 2) H5Sget_simple_extent_dims(s, dims, NULL);
    H5Tclose(t), H5Sclose(s);
    int rc = AIL_OK;
    if (nd != 2 || !is_int) rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s must be a 2-D integer array", path, name);
    else if (!(*out = malloc(sizeof(int32_t) * (size_t)(dims[0] * dims[1] > 0 ? dims[0] * dims[1] : 1))))
        rc = AIL_ERROR(AIL_ERR_MEM, "out of memory reading %s", path);
    else if (H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
        rc = AIL_ERROR(AIL_ERR_IO, "%s: cannot read %s", path, name);
    H5Dclose(d);
    return rc;
}

int dataset_load(const char *path, int vocab, Dataset *ds) {
    memset(ds, 0, sizeof *ds);
    hid_t file;
    AIL_CHECK(h5io_open_read(path, &file));
    hsize_t di[2], dl[2];
    int rc = read_ints(file, path, "/input_ids", di, &ds->input_ids);
    if (rc == AIL_OK) rc = read_ints(file, path, "/labels", dl, &ds->labels);
    H5Fclose(file);
    if (rc == AIL_OK && (di[0] != dl[0] || di[1] != dl[1]))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /input_ids and /labels differ in shape", path);
    if (rc == AIL_OK && (di[0] == 0 || di[1] < 2))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: needs at least one sequence of 2 tokens", path);
    if (rc == AIL_OK) {
        ds->n = (int)di[0], ds->T = (int)di[1];
        for (size_t i = 0; i < (size_t)(di[0] * di[1]) && rc == AIL_OK; i++) {
            if (ds->input_ids[i] < 0 || ds->input_ids[i] >= vocab)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: token id %d at sequence %zu outside the vocabulary (%d)",
                               path, ds->input_ids[i], i / (size_t)di[1], vocab);
            else if (ds->labels[i] != -100 && (ds->labels[i] < 0 || ds->labels[i] >= vocab))
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: label %d at sequence %zu is neither -100 nor a token id",
                               path, ds->labels[i], i / (size_t)di[1]);
        }
    }
    if (rc != AIL_OK) dataset_free(ds);
    return rc;
}

void dataset_free(Dataset *ds) {
    free(ds->input_ids);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

int dataset_index(const Dataset *ds, long long pos, uint64_t seed, int shuffle) {
    long long epoch = pos / ds->n;
    int i = (int)(pos % ds->n);
    if (!shuffle) return i;
    // Position i of the epoch's permutation, by a Fisher-Yates shuffle replayed
    // from the epoch seed: O(n) per call, so callers cache a whole epoch when n is large.
    static __thread int *perm = NULL, perm_n = 0;
    static __thread long long perm_epoch = -1;
    static __thread uint64_t perm_seed = 0;
    if (perm_n != ds->n || perm_epoch != epoch || perm_seed != seed) {
        int *p = realloc(perm, sizeof(int) * (size_t)ds->n);
        if (!p) return i;  // cannot happen for sane n; falls back to the identity
        perm = p, perm_n = ds->n, perm_epoch = epoch, perm_seed = seed;
        Rng rng;
        rng_init(&rng, seed, 0x5eed0000ULL + (uint64_t)epoch);
        for (int k = 0; k < ds->n; k++) perm[k] = k;
        for (int k = ds->n - 1; k > 0; k--) {
            int j = (int)(rng_next_u64(&rng) % (uint64_t)(k + 1));
            int tmp = perm[k];
            perm[k] = perm[j], perm[j] = tmp;
        }
    }
    return perm[i];
}

int dataset_scored(const Dataset *ds, int index) {
    const int32_t *lab = ds->labels + (size_t)index * ds->T;
    int count = 0;
    for (int t = 1; t < ds->T; t++) count += lab[t] != -100;
    return count;
}
