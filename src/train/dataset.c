/* dataset.c - HDF5 token datasets and the seeded epoch permutation. */
#include "ailora/dataset.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/h5io.h"
#include "ailora/rng.h"

static int open_2d(const Dataset *ds, const char *name, hid_t *dset, hsize_t *dims) {
    if (H5Lexists(ds->file, name, H5P_DEFAULT) <= 0)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: dataset %s not found", ds->path, name);
    *dset = H5Dopen2(ds->file, name, H5P_DEFAULT);
    hid_t s = H5Dget_space(*dset), t = H5Dget_type(*dset);
    int nd = H5Sget_simple_extent_ndims(s), is_int = H5Tget_class(t) == H5T_INTEGER;
    if (nd == 2) H5Sget_simple_extent_dims(s, dims, NULL);
    H5Tclose(t), H5Sclose(s);
    if (nd != 2 || !is_int) return AIL_ERROR(AIL_ERR_FORMAT, "%s: %s must be a 2-D integer array", ds->path, name);
    return AIL_OK;
}

/* rows [first, first + count) of dset into out */
static int read_block(const Dataset *ds, hid_t dset, int first, int count, int32_t *out) {
    hid_t fs = H5Dget_space(dset);
    hsize_t start[2] = {(hsize_t)first, 0}, cnt[2] = {(hsize_t)count, (hsize_t)ds->T};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    hid_t ms = H5Screate_simple(2, cnt, NULL);
    herr_t st = AIL_FAULT("read") ? -1 : H5Dread(dset, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, out);
    H5Sclose(ms), H5Sclose(fs);
    return st < 0 ? AIL_ERROR(AIL_ERR_IO, "%s: read failed", ds->path) : AIL_OK;
}

/* one row of /attention_mask (validated 0/1 at load) as int8; ones without it */
static int read_mask_row(const Dataset *ds, int row, int8_t *out) {
    if (ds->mask < 0) {
        memset(out, 1, (size_t)ds->T);
        return AIL_OK;
    }
    hid_t fs = H5Dget_space(ds->mask);
    hsize_t start[2] = {(hsize_t)row, 0}, cnt[2] = {1, (hsize_t)ds->T};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    hid_t ms = H5Screate_simple(2, cnt, NULL);
    herr_t st = AIL_FAULT("read") ? -1 : H5Dread(ds->mask, H5T_NATIVE_INT8, ms, fs, H5P_DEFAULT, out);
    H5Sclose(ms), H5Sclose(fs);
    return st < 0 ? AIL_ERROR(AIL_ERR_IO, "%s: read failed", ds->path) : AIL_OK;
}

int dataset_load(const char *path, int vocab, Dataset *ds) {
    memset(ds, 0, sizeof *ds);
    ds->file = ds->ids = ds->labels = ds->mask = -1;
    snprintf(ds->path, sizeof ds->path, "%s", path);
    AIL_CHECK(h5io_open_read(path, &ds->file));
    hsize_t di[2], dl[2];
    int rc = open_2d(ds, "/input_ids", &ds->ids, di);
    if (rc == AIL_OK) rc = open_2d(ds, "/labels", &ds->labels, dl);
    if (rc == AIL_OK && (di[0] != dl[0] || di[1] != dl[1]))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /input_ids and /labels differ in shape", path);
    // optional /attention_mask (dataset v2): absent = every token real
    if (rc == AIL_OK && H5Lexists(ds->file, "/attention_mask", H5P_DEFAULT) > 0) {
        hsize_t dm[2];
        rc = open_2d(ds, "/attention_mask", &ds->mask, dm);
        if (rc == AIL_OK && (dm[0] != di[0] || dm[1] != di[1]))
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /attention_mask and /input_ids differ in shape", path);
    }
    if (rc == AIL_OK && (di[0] == 0 || di[1] < 2 || di[0] > 0x7fffffff || di[1] > 0x7fffffff))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: needs 1 to 2^31 sequences of at least 2 tokens", path);
    if (rc == AIL_OK) {
        ds->n = (int)di[0], ds->T = (int)di[1];
        if (!(ds->scored = ail_calloc((size_t)ds->n, sizeof *ds->scored)))
            rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for %s", path);
    }
    // one streaming pass: validate every id and label, count scored positions
    int chunk = rc == AIL_OK ? (int)(1048576 / ds->T + 1) : 0;
    int32_t *ids = NULL, *lab = NULL, *msk = NULL;
    size_t csz = (size_t)chunk * ds->T;
    if (rc == AIL_OK && (!(ids = ail_malloc(sizeof(int32_t) * csz)) || !(lab = ail_malloc(sizeof(int32_t) * csz)) ||
                         !(msk = ail_malloc(sizeof(int32_t) * csz))))
        rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for %s", path);
    for (int first = 0; first < ds->n && rc == AIL_OK; first += chunk) {
        int count = ds->n - first < chunk ? ds->n - first : chunk;
        rc = read_block(ds, ds->ids, first, count, ids);
        if (rc == AIL_OK) rc = read_block(ds, ds->labels, first, count, lab);
        if (rc == AIL_OK && ds->mask >= 0) rc = read_block(ds, ds->mask, first, count, msk);
        for (size_t i = 0; i < (size_t)count * ds->T && rc == AIL_OK; i++) {
            int row = first + (int)(i / ds->T), t = (int)(i % ds->T);
            int m = ds->mask >= 0 ? msk[i] : 1, mprev = t >= 1 && ds->mask >= 0 ? msk[i - 1] : 1;
            if (ids[i] < 0 || ids[i] >= vocab)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: token id %d at sequence %d outside the vocabulary (%d)",
                               path, ids[i], row, vocab);
            else if (lab[i] != -100 && (lab[i] < 0 || lab[i] >= vocab))
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: label %d at sequence %d is neither -100 nor a token id",
                               path, lab[i], row);
            else if (m != 0 && m != 1)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /attention_mask value %d at sequence %d (0 or 1 expected)",
                               path, m, row);
            else if (m == 0 && lab[i] != -100)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: sequence %d has a scored label at padded position %d",
                               path, row, t);
            else if (t >= 1 && lab[i] != -100 && mprev)  // a label after padding has no real predictor
                ds->scored[row]++;
            if (rc == AIL_OK && t == ds->T - 1 && ds->mask >= 0) {
                int real = 0;
                for (int j = 0; j < ds->T; j++) real |= msk[i - (size_t)(ds->T - 1) + j];
                if (!real) rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: sequence %d has no real token (all padding)", path, row);
            }
        }
    }
    free(ids), free(lab), free(msk);
    if (rc != AIL_OK) dataset_free(ds);
    return rc;
}

void dataset_free(Dataset *ds) {
    if (ds->ids >= 0) H5Dclose(ds->ids);
    if (ds->labels >= 0) H5Dclose(ds->labels);
    if (ds->mask >= 0) H5Dclose(ds->mask);
    if (ds->file >= 0) H5Fclose(ds->file);
    free(ds->scored);
    memset(ds, 0, sizeof *ds);
    ds->file = ds->ids = ds->labels = ds->mask = -1;
}

int dataset_read_rows(const Dataset *ds, const int *rows, int count, int32_t *ids, int32_t *labels,
                      int8_t *mask) {
    // HDF5 returns a union of rows in file order; read them one by one into place
    // (rows of one batch are few, and the chunk cache keeps this cheap)
    int rc = AIL_OK;
    for (int i = 0; i < count && rc == AIL_OK; i++) {
        if (rows[i] < 0 || rows[i] >= ds->n)
            return AIL_ERROR(AIL_ERR_ARG, "%s: row %d out of range", ds->path, rows[i]);
        if (ids) rc = read_block(ds, ds->ids, rows[i], 1, ids + (size_t)i * ds->T);
        if (rc == AIL_OK && labels) rc = read_block(ds, ds->labels, rows[i], 1, labels + (size_t)i * ds->T);
        if (rc == AIL_OK && mask) rc = read_mask_row(ds, rows[i], mask + (size_t)i * ds->T);
    }
    return rc;
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
        int *p = ail_realloc(perm, sizeof(int) * (size_t)ds->n);
        if (!p)  // no error return here, and another order would be silently wrong: end the job
            ail_error_fatal(MPI_COMM_WORLD, AIL_ERROR(AIL_ERR_MEM, "out of memory for the order of %s (%d rows)",
                                                      ds->path, ds->n));
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
