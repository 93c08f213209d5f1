/* evaldata.c - the scoring extras of an evaluation dataset (see evaldata.h). */
#include "ailora/evaldata.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/h5io.h"

/* A dataset of rank 1 ([want0]) or 2 ([want0, want1]) read whole as mtype into *out
 * (malloc'ed); *out stays NULL when the item is absent. want0 -1: any length (*len). */
static int read_array(hid_t f, const char *file, const char *name, int ndims, long long want0, long long want1,
                      hid_t mtype, size_t esize, void **out, long long *len) {
    *out = NULL;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return AIL_OK;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return AIL_ERROR(AIL_ERR_FORMAT, "%s: %s is not a dataset", file, name);
    hid_t s = H5Dget_space(d), t = H5Dget_type(d);
    hsize_t dims[2] = {0, 0};
    int nd = H5Sget_simple_extent_ndims(s);
    if (nd == ndims) H5Sget_simple_extent_dims(s, dims, NULL);
    int rc = AIL_OK;
    if (nd != ndims || H5Tget_class(t) != H5T_INTEGER || (want0 >= 0 && dims[0] != (hsize_t)want0) ||
        (ndims == 2 && dims[1] != (hsize_t)want1))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s must be a %d-D integer array (%s)", file, name, ndims,
                       want0 >= 0 ? "one entry per row of /input_ids" : "any length");
    size_t count = (size_t)dims[0] * (ndims == 2 ? (size_t)dims[1] : 1);
    if (rc == AIL_OK && !(*out = ail_malloc(esize * (count ? count : 1)))) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK && count && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
        rc = AIL_ERROR(AIL_ERR_IO, "%s: cannot read %s", file, name);
    if (len) *len = (long long)dims[0];
    H5Tclose(t), H5Sclose(s), H5Dclose(d);
    if (rc != AIL_OK) free(*out), *out = NULL;
    return rc;
}

/* /references [n]: variable- or fixed-length strings, copied into malloc'ed C strings. */
static int read_strings(hid_t f, const char *file, const char *name, int n, char ***out) {
    *out = NULL;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return AIL_OK;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return AIL_ERROR(AIL_ERR_FORMAT, "%s: %s is not a dataset", file, name);
    hid_t s = H5Dget_space(d), t = H5Dget_type(d);
    hsize_t dim = 0;
    int rc = AIL_OK;
    if (H5Sget_simple_extent_ndims(s) != 1 || H5Tget_class(t) != H5T_STRING)
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s must be a 1-D string array", file, name);
    if (rc == AIL_OK) H5Sget_simple_extent_dims(s, &dim, NULL);
    if (rc == AIL_OK && dim != (hsize_t)n)
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s has %llu entries, /input_ids %d rows", file, name,
                       (unsigned long long)dim, n);
    char **strs = rc == AIL_OK ? ail_calloc((size_t)n + 1, sizeof *strs) : NULL;
    if (rc == AIL_OK && !strs) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK && H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        char **raw = ail_calloc((size_t)n + 1, sizeof *raw);
        if (!raw || (n && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) < 0))
            rc = AIL_ERROR(AIL_ERR_IO, "%s: cannot read %s", file, name);
        for (int i = 0; i < n && rc == AIL_OK; i++) {
            const char *v = raw[i] ? raw[i] : "";
            if (!(strs[i] = ail_malloc(strlen(v) + 1))) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
            else strcpy(strs[i], v);
        }
        if (raw && n && rc != AIL_ERR_IO) H5Dvlen_reclaim(mt, s, H5P_DEFAULT, raw);
        free(raw);
        H5Tclose(mt);
    } else if (rc == AIL_OK) {
        size_t size = H5Tget_size(t);
        char *buf = ail_malloc(size * (size_t)n + 1);
        hid_t mt = H5Tcopy(t);
        if (!buf || (n && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0))
            rc = AIL_ERROR(AIL_ERR_IO, "%s: cannot read %s", file, name);
        for (int i = 0; i < n && rc == AIL_OK; i++) {
            size_t len = strnlen(buf + (size_t)i * size, size);
            if (!(strs[i] = ail_malloc(len + 1))) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
            else memcpy(strs[i], buf + (size_t)i * size, len), strs[i][len] = '\0';
        }
        H5Tclose(mt);
        free(buf);
    }
    H5Tclose(t), H5Sclose(s), H5Dclose(d);
    if (rc != AIL_OK) {
        for (int i = 0; strs && i < n; i++) free(strs[i]);
        free(strs);
        return rc;
    }
    *out = strs;
    return AIL_OK;
}

/* The pending error again, naming the file (and where in it). */
static int rename_error(const char *path, const char *where) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ail_error_message());
    ail_error_clear();
    return AIL_ERROR(AIL_ERR_FORMAT, "%s%s: %s", path, where, msg);
}

/* A string attribute, variable-length (h5py's default) or fixed-length, into buf. */
static int attr_string(hid_t obj, const char *file, const char *name, char *buf, size_t len) {
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = H5Aget_type(a), s = H5Aget_space(a);
    int rc = AIL_OK;
    if (H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(s) != 1) {
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: attribute %s must be one string", file, name);
    } else if (H5Tis_variable_str(t) > 0) {
        char *v = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        if (H5Aread(a, mt, &v) < 0) rc = AIL_ERROR(AIL_ERR_IO, "%s: cannot read attribute %s", file, name);
        else snprintf(buf, len, "%s", v ? v : "");
        if (rc == AIL_OK) H5Dvlen_reclaim(mt, s, H5P_DEFAULT, &v);
        H5Tclose(mt);
    } else {
        size_t size = H5Tget_size(t);
        char *v = ail_calloc(size + 1, 1);
        hid_t mt = H5Tcopy(t);
        if (!v || H5Aread(a, mt, v) < 0) rc = AIL_ERROR(AIL_ERR_IO, "%s: cannot read attribute %s", file, name);
        else snprintf(buf, len, "%s", v);
        H5Tclose(mt);
        free(v);
    }
    H5Sclose(s), H5Tclose(t), H5Aclose(a);
    return rc;
}

int evaldata_load(const char *path, int n, int T, int V, EvalData *x) {
    memset(x, 0, sizeof *x);
    x->n = n, x->T = T;
    hid_t f;
    AIL_CHECK(h5io_open_read(path, &f));
    int rc = AIL_OK;
    char metric[64] = "";
    if (H5Aexists(f, "metric") > 0) {
        rc = attr_string(f, path, "metric", metric, sizeof metric);
        if (rc == AIL_OK && (rc = metric_parse(metric, &x->metric)) != AIL_OK) rc = rename_error(path, "");
    }
    if (rc == AIL_OK && H5Aexists(f, "eos_token_ids") > 0) {
        hid_t a = H5Aopen(f, "eos_token_ids", H5P_DEFAULT), s = H5Aget_space(a), t = H5Aget_type(a);
        hssize_t k = H5Sget_simple_extent_npoints(s);
        if (H5Tget_class(t) != H5T_INTEGER || k < 1 || k > 1024)
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: attribute eos_token_ids must hold 1 to 1024 integers", path);
        else if (!(x->eos = ail_malloc(sizeof(int32_t) * (size_t)k)))
            rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
        else if (H5Aread(a, H5T_NATIVE_INT32, x->eos) < 0)
            rc = AIL_ERROR(AIL_ERR_IO, "%s: cannot read eos_token_ids", path);
        else
            x->neos = (int)k;
        H5Tclose(t), H5Sclose(s), H5Aclose(a);
    }
    if (rc == AIL_OK && H5Aexists(f, "max_new_tokens") > 0) {
        hid_t a = H5Aopen(f, "max_new_tokens", H5P_DEFAULT), s = H5Aget_space(a), t = H5Aget_type(a);
        long long v = -1;
        if (H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(s) != 1 ||
            H5Aread(a, H5T_NATIVE_LLONG, &v) < 0 || v < 0 || v > 1000000)
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: attribute max_new_tokens must be one integer in [0, 1e6]", path);
        x->max_new = (int)v;
        H5Tclose(t), H5Sclose(s), H5Aclose(a);
    }
    long long len;
    if (rc == AIL_OK)
        rc = read_array(f, path, "/attention_mask", 2, n, T, H5T_NATIVE_INT8, 1, (void **)&x->mask, NULL);
    if (rc == AIL_OK)
        rc = read_array(f, path, "/prompt_len", 1, n, 0, H5T_NATIVE_INT32, 4, (void **)&x->prompt_len, NULL);
    if (rc == AIL_OK)
        rc = read_array(f, path, "/mc_example", 1, n, 0, H5T_NATIVE_INT32, 4, (void **)&x->mc_example, NULL);
    if (rc == AIL_OK) rc = read_array(f, path, "/mc_gold", 1, n, 0, H5T_NATIVE_INT8, 1, (void **)&x->mc_gold, NULL);
    if (rc == AIL_OK)
        rc = read_array(f, path, "/mc_chars", 1, n, 0, H5T_NATIVE_INT32, 4, (void **)&x->mc_chars, NULL);
    if (rc == AIL_OK && H5Lexists(f, "/detok", H5P_DEFAULT) > 0) {
        rc = read_array(f, path, "/detok/offsets", 1, -1, 0, H5T_NATIVE_INT64, 8, (void **)&x->detok_off, &len);
        if (rc == AIL_OK && (!x->detok_off || len < 1 || len - 1 > V))
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /detok/offsets must hold V + 1 <= %d entries", path, V + 1);
        long long nbytes = 0;
        if (rc == AIL_OK) {
            x->detok_V = (int)(len - 1);
            rc = read_array(f, path, "/detok/bytes", 1, -1, 0, H5T_NATIVE_UINT8, 1, (void **)&x->detok_bytes, &nbytes);
        }
        if (rc == AIL_OK && !x->detok_bytes) rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /detok/bytes missing", path);
        for (int i = 0; i < x->detok_V && rc == AIL_OK; i++)
            if (x->detok_off[i] < 0 || x->detok_off[i] > x->detok_off[i + 1] || x->detok_off[i + 1] > nbytes)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /detok/offsets not ascending within /detok/bytes at token %d", path, i);
        if (rc == AIL_OK && x->detok_off[0] != 0)
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /detok/offsets must start at 0", path);
    }
    if (rc == AIL_OK) rc = read_strings(f, path, "/references", n, &x->references);
    H5Fclose(f);
    // what the metric needs
    for (int i = 0; rc == AIL_OK && x->mask && i < n * T; i++)
        if (x->mask[i] != 0 && x->mask[i] != 1) rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /attention_mask holds %d", path, x->mask[i]);
    for (int i = 0; rc == AIL_OK && x->prompt_len && i < n; i++)
        if (x->prompt_len[i] < 1 || x->prompt_len[i] > T)
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /prompt_len[%d] = %d outside [1, %d]", path, i, x->prompt_len[i], T);
    int gen = metric_generates(x->metric) && !(x->metric == METRIC_EXACT_MATCH && !x->references);
    if (rc == AIL_OK && gen && (!x->references || !x->detok_off))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: metric %s needs /references and /detok", path, metric_name(x->metric));
    if (rc == AIL_OK && x->metric == METRIC_MC && (!x->mc_example || !x->mc_gold || !x->mc_chars))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: metric mc needs /mc_example, /mc_gold and /mc_chars", path);
    for (int i = 1; rc == AIL_OK && x->metric == METRIC_MC && i < n; i++)
        if (x->mc_example[i] != x->mc_example[i - 1]) {
            for (int j = 0; j < i - 1 && rc == AIL_OK; j++)  // examples contiguous: a new id never seen before
                if (x->mc_example[j] == x->mc_example[i])
                    rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: /mc_example %d is not contiguous", path, x->mc_example[i]);
        }
    for (int i = 0; rc == AIL_OK && x->references && i < n; i++) {  // parse once now: errors before training
        char **refs;
        int k;
        rc = metric_references_parse(x->references[i], &refs, &k);
        if (rc != AIL_OK) {
            char where[64];
            snprintf(where, sizeof where, " (/references[%d])", i);
            rc = rename_error(path, where);
        }
        else metric_references_free(refs, k);
    }
    if (rc != AIL_OK) evaldata_free(x);
    return rc;
}

void evaldata_free(EvalData *x) {
    for (int i = 0; x->references && i < x->n; i++) free(x->references[i]);
    free(x->references);
    free(x->eos), free(x->mask), free(x->prompt_len), free(x->mc_example), free(x->mc_gold), free(x->mc_chars);
    free(x->detok_off), free(x->detok_bytes);
    memset(x, 0, sizeof *x);
}

void evaldata_prompt(const EvalData *x, int row, const int32_t *ids, const int32_t *labels, int32_t *prompt,
                     int *plen, int *span) {
    int T = x->T, f = 0;
    const int8_t *m = x->mask ? x->mask + (size_t)row * T : NULL;
    while (m && f < T && !m[f]) f++;
    *plen = *span = 0;
    if (x->prompt_len) {
        for (int t = f; t < T && *plen < x->prompt_len[row]; t++)
            if (!m || m[t]) prompt[(*plen)++] = ids[t];
        return;
    }
    int first = -1, last = -1;
    for (int t = 1; t < T; t++)
        if (labels[t] != -100) {
            if (first < 0) first = t;
            last = t;
        }
    if (first < 0) return;
    for (int t = f; t < first; t++)
        if (!m || m[t]) prompt[(*plen)++] = ids[t];
    *span = last - first + 1;
}
