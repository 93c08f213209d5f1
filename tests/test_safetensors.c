/* test_safetensors.c - writer/reader round trips, and every malformed header
 * crafted byte by byte must fail with a message naming the problem. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L  // mmap, pwrite, fsync, mkdtemp, strdup
#endif
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ailora/dtype.h"
#include "ailora/error.h"
#include "ailora/safetensors.h"
#include "testutil.h"

static char g_dir[64];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int next = 0;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static size_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (size_t)sb.st_size : 0;
}

static void *read_file(const char *path, size_t *len) {
    *len = file_size(path);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(*len + 1);
    if (buf && fread(buf, 1, *len, f) != *len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* A file made of an 8-byte little-endian length field (hlen), the header text,
 * then data_len zero bytes. hlen is separate from strlen(json) to lie about it. */
static void write_raw(const char *path, uint64_t hlen, const char *json, size_t data_len) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(json, 1, strlen(json), f);
    for (size_t i = 0; i < data_len; i++) fputc(0, f);
    fclose(f);
}

static void write_json(const char *path, const char *json, size_t data_len) {
    write_raw(path, strlen(json), json, data_len);
}

/* safetensors_open must fail, leave st empty, and say `needle` and the file name. */
static void expect_fail_at(const char *path, const char *needle, int line) {
    ail_error_clear();
    SafeTensors st;
    memset(&st, 0x5a, sizeof st);  // garbage in: open must reset it
    int rc = safetensors_open(path, &st);
    const char *msg = ail_error_message();
    TU_CHECK(rc != 0, "line %d: open of malformed %s succeeded", line, path);
    TU_CHECK(rc == ail_error_code(), "line %d: rc %d vs recorded %d", line, rc, ail_error_code());
    TU_CHECK(strstr(msg, needle) != NULL, "line %d: message '%s' lacks '%s'", line, msg, needle);
    TU_CHECK(strstr(msg, path) != NULL, "line %d: message '%s' does not name the file", line, msg);
    TU_CHECK(st.map == NULL && st.tensors == NULL && st.count == 0 && st.metadata_keys == NULL &&
                 st.path == NULL,
             "line %d: state left behind after failure", line);
    if (rc == 0) safetensors_close(&st);
    ail_error_clear();
    unlink(path);
}
#define EXPECT_FAIL(path, needle) expect_fail_at((path), (needle), __LINE__)

// one F32 scalar-vector entry, to build small headers
#define F32_1(name, b, e) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[" #b "," #e "]}"

static void test_malformed(void) {
    const char *p = tmp_path("bad.safetensors");

    // file too short to hold the length field
    FILE *f = fopen(p, "wb");
    fwrite("\x02\0\0\0\0", 1, 5, f);
    fclose(f);
    EXPECT_FAIL(p, "shorter than 8 bytes");

    write_raw(p, 1000, "{}", 0);
    EXPECT_FAIL(p, "exceeds the file size");

    // header length within the file but absurd: a sparse 100 MB file costs nothing
    write_raw(p, 100000001, "{}", 0);
    TU_CHECK(truncate(p, 8 + 100000001) == 0, "truncate");
    EXPECT_FAIL(p, "absurd");

    write_json(p, "{\"a\": ", 0);
    EXPECT_FAIL(p, "not valid JSON");
    write_json(p, "", 0);
    EXPECT_FAIL(p, "not valid JSON");
    write_json(p, "{} x", 0);
    EXPECT_FAIL(p, "garbage after");
    write_json(p, "[1, 2]", 0);
    EXPECT_FAIL(p, "not a JSON object");
    write_json(p, "{\"a\": 5}", 0);
    EXPECT_FAIL(p, "'a': entry is not a JSON object");

    write_json(p, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    EXPECT_FAIL(p, "non-string dtype");
    write_json(p, "{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    EXPECT_FAIL(p, "non-string dtype");
    write_json(p, "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
    EXPECT_FAIL(p, "unknown dtype 'C64'");
    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4);
    EXPECT_FAIL(p, "non-array shape");
    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
    EXPECT_FAIL(p, "negative shape dim");
    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4);
    EXPECT_FAIL(p, "not a non-negative integer");
    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4);
    EXPECT_FAIL(p, "not a non-negative integer");
    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4);
    EXPECT_FAIL(p, "9 dims");
    write_json(p,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
               "\"data_offsets\":[0,4]}}",
               4);
    EXPECT_FAIL(p, "overflows");

    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4);
    EXPECT_FAIL(p, "data_offsets must be");
    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4);
    EXPECT_FAIL(p, "data_offsets must be");
    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4);
    EXPECT_FAIL(p, "data_offsets must be");
    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e30]}}", 4);
    EXPECT_FAIL(p, "data_offsets must be");
    write_json(p, "{" F32_1("a", 4, 0) "}", 4);
    EXPECT_FAIL(p, "begin 4 > end 0");

    // shape says 8 bytes, offsets span 4
    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
    EXPECT_FAIL(p, "does not match shape");
    write_json(p, "{\"a\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4);
    EXPECT_FAIL(p, "does not match shape");

    write_json(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," F32_1("b", 4, 8) "}", 8);
    EXPECT_FAIL(p, "'b': data_offsets [4, 8] overlap");
    write_json(p, "{" F32_1("a", 0, 4) "," F32_1("b", 0, 4) "}", 4);
    EXPECT_FAIL(p, "overlap");
    // an empty tensor inside another one is an overlap too (HF's reader agrees)
    write_json(p,
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
               8);
    EXPECT_FAIL(p, "'e'");
    write_json(p, "{" F32_1("a", 0, 4) "," F32_1("b", 8, 12) "}", 12);
    EXPECT_FAIL(p, "'b': hole of 4 bytes");
    write_json(p, "{" F32_1("b", 4, 8) "}", 8);
    EXPECT_FAIL(p, "hole of 4 bytes");
    write_json(p, "{" F32_1("a", 0, 4) "}", 7);
    EXPECT_FAIL(p, "3 trailing bytes");
    write_json(p, "{}", 1);
    EXPECT_FAIL(p, "1 trailing bytes");
    write_json(p, "{" F32_1("a", 0, 4) "}", 2);
    EXPECT_FAIL(p, "beyond the data buffer");
    write_json(p, "{" F32_1("a", 0, 4) "," F32_1("b", 4, 8) "}", 6);
    EXPECT_FAIL(p, "'b': data_offsets end 8 beyond the data buffer");
    write_json(p, "{" F32_1("a", 0, 4) "," F32_1("a", 4, 8) "}", 8);
    EXPECT_FAIL(p, "duplicate tensor name 'a'");

    write_json(p, "{\"__metadata__\": 5}", 0);
    EXPECT_FAIL(p, "__metadata__ is not a JSON object");
    write_json(p, "{\"__metadata__\": {\"k\": 1}}", 0);
    EXPECT_FAIL(p, "value of 'k' is not a string");
    write_json(p, "{\"__metadata__\": {\"k\": \"1\", \"k\": \"2\"}}", 0);
    EXPECT_FAIL(p, "duplicate __metadata__ key 'k'");
    write_json(p, "{\"__metadata__\": {}, \"__metadata__\": {}}", 0);
    EXPECT_FAIL(p, "duplicate __metadata__ entry");

    // not a file at all
    ail_error_clear();
    SafeTensors st;
    TU_CHECK(safetensors_open(tmp_path("missing.safetensors"), &st) == AIL_ERR_IO, "missing file");
    TU_CHECK(strstr(ail_error_message(), "missing.safetensors") != NULL, "%s", ail_error_message());
    ail_error_clear();
    TU_CHECK(safetensors_open(g_dir, &st) == AIL_ERR_IO, "directory");
    TU_CHECK(strstr(ail_error_message(), "not a regular file") != NULL, "%s", ail_error_message());
    ail_error_clear();
}

/* Valid files written by hand: padding after the JSON, no metadata, no tensors. */
static void test_valid_crafted(void) {
    const char *p = tmp_path("ok.safetensors");
    SafeTensors st;
    write_json(p, "{}", 0);
    TU_CHECK(safetensors_open(p, &st) == 0, "empty header: %s", ail_error_message());
    TU_CHECK(st.count == 0 && st.metadata_count == 0, "empty");
    TU_CHECK(safetensors_find(&st, "a") == NULL, "find in empty");
    safetensors_close(&st);

    write_json(p, "{" F32_1("b", 4, 8) "," F32_1("a", 0, 4) "}   \n ", 8);
    TU_CHECK(safetensors_open(p, &st) == 0, "padded header: %s", ail_error_message());
    TU_CHECK(st.count == 2 && strcmp(st.tensors[0].name, "a") == 0, "sorted by name");
    TU_CHECK(st.data_start == file_size(p) - 8, "data_start %zu", st.data_start);  // 8 data bytes
    const SafeTensor *b = safetensors_find(&st, "b");
    TU_CHECK(b && (const char *)b->data == (const char *)st.map + st.data_start + 4, "b's data");
    safetensors_close(&st);
    TU_CHECK(st.map == NULL && st.tensors == NULL, "close resets");
    unlink(p);
}

#define NT 6

static void fill(double *x, size_t n, double seed) {
    for (size_t i = 0; i < n; i++) x[i] = sin(seed + 0.7 * (double)i) * (1.0 + (double)i);
}

static void test_roundtrip(void) {
    // names out of order; one of every dtype, a 0-d and a 3-d tensor, an empty one
    const char *names[NT] = {"model.w_f64", "a.scalar", "z.cube_f16", "m.bf16", "e.empty", "b.f32"};
    DType dts[NT] = {DTYPE_F64, DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_F32, DTYPE_F32};
    int ndims[NT] = {2, 0, 3, 1, 2, 1};
    int64_t shapes[NT][3] = {{2, 3}, {0}, {2, 3, 4}, {5}, {0, 3}, {7}};
    SafeTensorSpec specs[NT];
    double *vals[NT];
    void *raw[NT];
    size_t total = 0;
    for (int i = 0; i < NT; i++) {
        size_t n = 1;
        for (int d = 0; d < ndims[i]; d++) n *= (size_t)shapes[i][d];
        vals[i] = malloc((n ? n : 1) * sizeof(double));
        raw[i] = malloc((n ? n : 1) * dtype_size(dts[i]));
        fill(vals[i], n, i);
        dtype_from_f64(dts[i], vals[i], n, raw[i]);
        total += n * dtype_size(dts[i]);
        memset(&specs[i], 0, sizeof specs[i]);
        specs[i].name = names[i];
        specs[i].dtype = dts[i];
        specs[i].ndim = ndims[i];
        for (int d = 0; d < ndims[i]; d++) specs[i].shape[d] = shapes[i][d];
        specs[i].data = n ? raw[i] : NULL;
    }
    const char *keys[2] = {"step", "note"};
    const char *values[2] = {"12", "quotes \" and \\ and\nnewline, \xc3\xa9"};

    const char *p = tmp_path("rt.safetensors");
    ail_error_clear();
    int rc = safetensors_write(p, NT, specs, 2, keys, values);
    TU_CHECK(rc == 0, "write: %s", ail_error_message());
    TU_CHECK(!file_exists(tmp_path("rt.safetensors.partial")), "tmp file left behind");

    SafeTensors st;
    rc = safetensors_open(p, &st);
    TU_CHECK(rc == 0, "open: %s", ail_error_message());
    if (rc == 0) {
        TU_CHECK(st.data_start % 8 == 0, "data_start %zu not a multiple of 8", st.data_start);
        TU_CHECK(st.map_size == st.data_start + total, "size %zu vs %zu", st.map_size, st.data_start + total);
        const char *hdr = (const char *)st.map + 8;
        TU_CHECK(hdr[0] == '{', "header starts with {");
        TU_CHECK(st.count == NT, "count %d", st.count);
        for (int k = 1; k < st.count; k++)
            TU_CHECK(strcmp(st.tensors[k - 1].name, st.tensors[k].name) < 0, "sorted");
        // contiguous in name order
        const char *expect = (const char *)st.map + st.data_start;
        for (int k = 0; k < st.count; k++) {
            TU_CHECK((const char *)st.tensors[k].data == expect, "%s not contiguous", st.tensors[k].name);
            expect += st.tensors[k].nbytes;
        }
        for (int i = 0; i < NT; i++) {
            const SafeTensor *t = safetensors_find(&st, names[i]);
            TU_CHECK(t != NULL, "find %s", names[i]);
            if (!t) continue;
            TU_CHECK(t->dtype == dts[i] && t->ndim == ndims[i], "%s: dtype/ndim", names[i]);
            size_t n = 1;
            for (int d = 0; d < ndims[i]; d++) {
                TU_CHECK(t->shape[d] == shapes[i][d], "%s: dim %d", names[i], d);
                n *= (size_t)shapes[i][d];
            }
            TU_CHECK(t->numel == n && t->nbytes == n * dtype_size(dts[i]), "%s: numel %zu", names[i], t->numel);
            TU_CHECK(memcmp(t->data, raw[i], t->nbytes) == 0, "%s: bytes differ", names[i]);
            double *back = malloc((n ? n : 1) * sizeof(double));
            dtype_to_f64(t->dtype, t->data, n, back);
            int bad = 0;
            for (size_t j = 0; j < n; j++) bad += back[j] != dtype_round(dts[i], vals[i][j]);
            TU_CHECK(bad == 0, "%s: %d values differ from the rounded originals", names[i], bad);
            free(back);
        }
        // tensor-parallel shard reads: every (rows, cols) block of the 2 x 3 F64
        // tensor equals the same block of the whole, and a 1-D tensor reads as (d, 1)
        const SafeTensor *w = safetensors_find(&st, "model.w_f64");
        for (int r0 = 0; w && r0 < 2; r0++)
            for (int c0 = 0; c0 < 3; c0++)
                for (int nr = 1; r0 + nr <= 2; nr++)
                    for (int nc = 1; c0 + nc <= 3; nc++) {
                        double blk[6];
                        safetensor_block_f64(w, r0, nr, c0, nc, blk);
                        for (int i = 0; i < nr; i++)
                            for (int j = 0; j < nc; j++)
                                TU_CHECK(blk[i * nc + j] == vals[0][(r0 + i) * 3 + c0 + j], "block (%d+%d, %d+%d)",
                                         r0, nr, c0, nc);
                    }
        const SafeTensor *v = safetensors_find(&st, "b.f32");
        double col[3];
        if (v) safetensor_block_f64(v, 2, 3, 0, 1, col);
        for (int i = 0; v && i < 3; i++)
            TU_CHECK(col[i] == dtype_round(DTYPE_F32, vals[5][2 + i]), "1-D block element %d", i);
        TU_CHECK(safetensors_find(&st, "zz") == NULL && safetensors_find(&st, "") == NULL, "absent");
        const char *fmt = safetensors_metadata(&st, "format");
        TU_CHECK(fmt && strcmp(fmt, "pt") == 0, "format=pt");
        const char *step = safetensors_metadata(&st, "step");
        TU_CHECK(step && strcmp(step, "12") == 0, "step");
        const char *note = safetensors_metadata(&st, "note");
        TU_CHECK(note && strcmp(note, values[1]) == 0, "note escaped and back: '%s'", note ? note : "");
        TU_CHECK(safetensors_metadata(&st, "nope") == NULL, "absent metadata");
        safetensors_close(&st);
    }

    // the header-only writer lays out the same file: fill its data with pwrite
    const char *q = tmp_path("hdr.safetensors");
    size_t offsets[NT], fsize = 0;
    rc = safetensors_write_header(q, NT, specs, 2, keys, values, offsets, &fsize);
    TU_CHECK(rc == 0, "write_header: %s", ail_error_message());
    TU_CHECK(fsize == file_size(q) && fsize == file_size(p), "sized %zu / %zu / %zu", fsize,
             file_size(q), file_size(p));
    int fd = open(q, O_WRONLY);
    for (int i = 0; i < NT && fd >= 0; i++) {
        size_t nb = 1;
        for (int d = 0; d < ndims[i]; d++) nb *= (size_t)shapes[i][d];
        nb *= dtype_size(dts[i]);
        // no alignment promise: contiguous packing in name order forbids padding
        TU_CHECK(offsets[i] >= 8 && offsets[i] + nb <= fsize, "%s offset %zu", names[i], offsets[i]);
        if (nb) TU_CHECK(pwrite(fd, raw[i], nb, (off_t)offsets[i]) == (ssize_t)nb, "pwrite");
    }
    if (fd >= 0) close(fd);
    size_t la, lb;
    char *fa = read_file(p, &la), *fb = read_file(q, &lb);
    TU_CHECK(fa && fb && la == lb && memcmp(fa, fb, la) == 0, "write and write_header+pwrite differ");
    free(fa);
    free(fb);

    // overwrite: the target is replaced as a whole
    rc = safetensors_write(p, 1, &specs[5], 0, NULL, NULL);
    TU_CHECK(rc == 0, "rewrite: %s", ail_error_message());
    rc = safetensors_open(p, &st);
    TU_CHECK(rc == 0 && st.count == 1 && st.metadata_count == 1, "rewritten file");
    if (rc == 0) safetensors_close(&st);

    // a caller-given format replaces the default
    const char *fk[1] = {"format"}, *fv[1] = {"np"};
    rc = safetensors_write(p, 0, NULL, 1, fk, fv);
    TU_CHECK(rc == 0, "format override: %s", ail_error_message());
    if (safetensors_open(p, &st) == 0) {
        TU_CHECK(st.metadata_count == 1 && strcmp(safetensors_metadata(&st, "format"), "np") == 0,
                 "format override");
        safetensors_close(&st);
    }

    unlink(p);
    unlink(q);
    for (int i = 0; i < NT; i++) {
        free(vals[i]);
        free(raw[i]);
    }
}

static void test_write_failures(void) {
    float x[2] = {1, 2};
    SafeTensorSpec s[2] = {{.name = "a", .dtype = DTYPE_F32, .ndim = 1, .shape = {2}, .data = x},
                           {.name = "a", .dtype = DTYPE_F32, .ndim = 1, .shape = {2}, .data = x}};
    const char *p = tmp_path("fail.safetensors");

    ail_error_clear();
    TU_CHECK(safetensors_write(p, 2, s, 0, NULL, NULL) == AIL_ERR_ARG, "duplicate names");
    TU_CHECK(strstr(ail_error_message(), "duplicate tensor name 'a'") != NULL, "%s", ail_error_message());
    TU_CHECK(!file_exists(p) && !file_exists(tmp_path("fail.safetensors.partial")), "nothing written");

    ail_error_clear();
    s[1].name = "b";
    s[1].shape[0] = -2;
    TU_CHECK(safetensors_write(p, 2, s, 0, NULL, NULL) == AIL_ERR_ARG, "negative dim");
    TU_CHECK(strstr(ail_error_message(), "negative shape dim") != NULL, "%s", ail_error_message());
    s[1].shape[0] = 2;

    ail_error_clear();
    s[1].dtype = DTYPE_INVALID;
    TU_CHECK(safetensors_write(p, 2, s, 0, NULL, NULL) == AIL_ERR_ARG, "invalid dtype");
    TU_CHECK(strstr(ail_error_message(), "'b': invalid dtype") != NULL, "%s", ail_error_message());
    s[1].dtype = DTYPE_F32;

    ail_error_clear();
    const char *k[2] = {"x", "x"}, *v[2] = {"1", "2"};
    TU_CHECK(safetensors_write(p, 2, s, 2, k, v) == AIL_ERR_ARG, "duplicate metadata");
    TU_CHECK(strstr(ail_error_message(), "duplicate metadata key 'x'") != NULL, "%s", ail_error_message());
    TU_CHECK(!file_exists(p), "nothing written");

    // directory missing: fails cleanly, nothing created
    ail_error_clear();
    const char *nodir = tmp_path("no/such/dir/x.safetensors");
    TU_CHECK(safetensors_write(nodir, 2, s, 0, NULL, NULL) == AIL_ERR_IO, "missing directory");
    TU_CHECK(strstr(ail_error_message(), "x.safetensors") != NULL, "%s", ail_error_message());
    TU_CHECK(!file_exists(nodir), "no file");
    ail_error_clear();
    TU_CHECK(safetensors_write_header(nodir, 2, s, 0, NULL, NULL, (size_t[2]){0}, &(size_t){0}) ==
                 AIL_ERR_IO,
             "header writer, missing directory");
    ail_error_clear();

    // rename onto an existing directory fails after the tmp file was written:
    // the tmp file must be gone and the directory untouched
    const char *d = tmp_path("adir");
    TU_CHECK(mkdir(d, 0755) == 0, "mkdir");
    TU_CHECK(safetensors_write(d, 2, s, 0, NULL, NULL) == AIL_ERR_IO, "rename onto a directory");
    TU_CHECK(strstr(ail_error_message(), "rename") != NULL, "%s", ail_error_message());
    TU_CHECK(!file_exists(tmp_path("adir.partial")), "tmp file left behind after failed rename");
    struct stat sb;
    TU_CHECK(stat(d, &sb) == 0 && S_ISDIR(sb.st_mode), "directory untouched");
    rmdir(d);
    ail_error_clear();
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/ailora_test_st_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_malformed();
    test_valid_crafted();
    test_roundtrip();
    test_write_failures();

    // everything the tests made must be gone
    DIR *dir = opendir(g_dir);
    int left = 0;
    for (struct dirent *e; dir && (e = readdir(dir));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            fprintf(stderr, "left behind: %s\n", e->d_name);
            left++;
            unlink(tmp_path(e->d_name));
        }
    if (dir) closedir(dir);
    TU_CHECK(left == 0, "%d files left in %s", left, g_dir);
    rmdir(g_dir);
    return tu_finish("test_safetensors");
}
