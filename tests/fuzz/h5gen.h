/* h5gen.h - structurally valid HDF5 files generated from fuzz input.
 *
 * Why not mutate HDF5 bytes: a byte-level mutation of an HDF5 container almost
 * always breaks a checksum or a B-tree signature, so libhdf5 rejects it in H5Fopen
 * and the fuzzer spends its time in libhdf5's own parser, never reaching ailora's
 * readers (what is ours to fix). Instead the harnesses write a real file through
 * the HDF5 API and let the input choose, for every dataset and attribute a reader
 * expects: present or missing, a group or a dangling link in its place, the
 * shape (right, off by one, zero, wrong rank, scalar, null, huge with unwritten
 * chunks), the type (the expected one, other widths and byte orders, float
 * instead of integer, strings, compounds, opaque), the storage (contiguous,
 * chunked, compressed, compact, fill value only) and the values (in range, at and
 * past the edges, NaN, Inf, raw bit patterns).
 *
 * Declared sizes are kept so that a reader which checks the shape before
 * allocating never allocates more than a few MB: a "huge" dimension is 2^31 or
 * more (beyond every int ailora uses: readers must refuse it before allocating),
 * and a plausible but large shape (say [2^31 - 1, 2]) is not generated: ailora
 * trusts sizes within int and allocates for them, which would be slow, not wrong,
 * and a failed allocation is a clean AIL_ERR_MEM.
 */
#ifndef AILORA_FUZZ_H5GEN_H
#define AILORA_FUZZ_H5GEN_H

#include <hdf5.h>

#include "fuzz_common.h"

/* Makes the parent groups of path (like h5py's create_dataset). */
static hid_t gen_lcpl(void) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    return lcpl;
}

/* The file type: usually the expected one, otherwise another class, width or byte order. */
static hid_t gen_type(FuzzIn *in, int is_int, int *numeric) {
    const hid_t ints[] = {H5T_STD_I32LE, H5T_STD_I8LE, H5T_STD_U8LE, H5T_STD_I16BE,
                                 H5T_STD_I64LE, H5T_STD_U64LE, H5T_STD_U32BE, H5T_STD_I64BE};
    const hid_t floats[] = {H5T_IEEE_F64LE, H5T_IEEE_F32LE, H5T_IEEE_F64BE, H5T_IEEE_F32BE};
    int c = in_u8(in) % 24;
    *numeric = 1;
    if (c < 14) return H5Tcopy(is_int ? H5T_STD_I32LE : H5T_IEEE_F64LE);
    if (c < 18) return H5Tcopy(ints[in_u8(in) % 8]);
    if (c < 21) return H5Tcopy(floats[in_u8(in) % 4]);
    *numeric = 0;
    if (c == 21) {  // fixed-length string
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 1 + in_u8(in) % 16);
        return t;
    }
    if (c == 22) {  // compound of one int, as some writers wrap values
        hid_t t = H5Tcreate(H5T_COMPOUND, 8);
        H5Tinsert(t, "x", 0, H5T_STD_I64LE);
        return t;
    }
    return H5Tcreate(H5T_OPAQUE, 1 + in_u8(in) % 8);
}

static const hsize_t gen_huge[] = {2147483648ULL, 4294967297ULL, 1ULL << 40, 1ULL << 62};

/* A dataset at path whose reader expects rank ndims, shape dims and an integer
 * (is_int) or floating class; the input decides how far the file departs from
 * that. value(in, i, ctx) gives the i-th value the file should hold (as a double
 * for floats, an int64 for integers). */
typedef double (*GenF64)(FuzzIn *in, size_t i, const void *ctx);
typedef long long (*GenI64)(FuzzIn *in, size_t i, const void *ctx);

static void gen_dataset(FuzzIn *in, hid_t file, const char *path, int ndims, const hsize_t *want,
                        int is_int, GenF64 fval, GenI64 ival, const void *ctx) {
    hsize_t dims[4] = {0, 0, 0, 0}, maxdims[4];
    int nd = ndims;
    for (int i = 0; i < ndims; i++) dims[i] = want[i];
    int huge = 0, space_class = H5S_SIMPLE;
    int mode = in_u8(in) % 40;
    hid_t lcpl = gen_lcpl();
    if (mode >= 28 && mode < 31) {  // something else under the name
        if (mode == 28) H5Gclose(H5Gcreate2(file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT));
        if (mode == 29) H5Lcreate_soft("/nowhere/at/all", file, path, lcpl, H5P_DEFAULT);
        H5Pclose(lcpl);
        return;  // mode 30: missing
    }
    int d = ndims > 0 ? (int)(in_u8(in) % ndims) : 0;
    switch (mode) {
    case 31: space_class = H5S_SCALAR; break;
    case 32: space_class = H5S_NULL; break;
    case 33: if (nd < 3) dims[nd++] = in_u8(in) % 3; break;  // one rank more
    case 34: if (nd > 0) nd--; break;                          // one rank less
    case 35: if (ndims) dims[d] = in_u8(in) % 10; break;
    case 36: if (ndims) dims[d] = dims[d] + 1; break;
    case 37: if (ndims && dims[d]) dims[d] = dims[d] - 1; break;
    case 38: if (ndims) dims[d] = 0; break;
    case 39: if (ndims) dims[d] = gen_huge[in_u8(in) % 4], huge = 1; break;
    default: break;  // 0..27: the expected shape
    }
    hid_t type = -1;
    int numeric;
    type = gen_type(in, is_int, &numeric);
    hsize_t total = 1;
    for (int i = 0; i < nd; i++) total = dims[i] && total > (hsize_t)-1 / dims[i] ? (hsize_t)-1 : total * dims[i];
    if (space_class != H5S_SIMPLE) total = space_class == H5S_SCALAR ? 1 : 0;
    int layout = in_u8(in) % 8;  // 0-3 contiguous, 4-5 chunked, 6 chunked + deflate, 7 compact
    if (huge) layout = 4;        // only chunked storage can declare more than it stores
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t space;
    if (space_class == H5S_SIMPLE) {
        for (int i = 0; i < nd; i++) maxdims[i] = layout >= 4 && layout < 7 ? H5S_UNLIMITED : dims[i];
        space = H5Screate_simple(nd, dims, maxdims);
    } else {
        space = H5Screate(space_class);
    }
    if (layout >= 4 && layout < 7 && space_class == H5S_SIMPLE && nd > 0) {
        hsize_t chunk[4];
        for (int i = 0; i < nd; i++) chunk[i] = 1 + (dims[i] > 1 && !huge ? in_u8(in) % dims[i] : 0);
        H5Pset_chunk(dcpl, nd, chunk);
        if (layout == 6) H5Pset_deflate(dcpl, 1);
    } else if (layout == 7 && total * H5Tget_size(type) < 32768) {
        H5Pset_layout(dcpl, H5D_COMPACT);
    }
    hid_t dset = H5Dcreate2(file, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    // values only for modest numeric datasets; otherwise the fill value stands (zeros)
    int write = dset >= 0 && numeric && !huge && total > 0 && total <= 65536 && in_u8(in) % 8 != 0;
    if (write) {
        if (is_int) {
            long long *v = malloc(sizeof *v * total);
            FUZZ_ASSERT(v != NULL);
            for (hsize_t i = 0; i < total; i++) v[i] = ival(in, i, ctx);
            H5Dwrite(dset, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
            free(v);
        } else {
            double *v = malloc(sizeof *v * total);
            FUZZ_ASSERT(v != NULL);
            for (hsize_t i = 0; i < total; i++) v[i] = fval(in, i, ctx);
            H5Dwrite(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
            free(v);
        }
    }
    if (dset >= 0) H5Dclose(dset);
    H5Sclose(space);
    H5Pclose(dcpl);
    H5Tclose(type);
    H5Pclose(lcpl);
}

/* A string attribute that should read good; the input may drop it, change it,
 * store it the way other writers do (NUL-terminated, variable-length), or make it
 * something else entirely. */
static void gen_attr_str(FuzzIn *in, hid_t obj, const char *name, const char *good) {
    static const char *others[] = {"", "lora", "pissa", "milora", "ailora", "ratio", "full",
                                   "ailora-svd-cache/0", "ailora-run/1", "ailora-init/1"};
    char text[160];
    int mode = in_u8(in) % 16;
    if (mode == 8) return;  // missing
    snprintf(text, sizeof text, "%s", good);
    if (mode == 9) snprintf(text, sizeof text, "%s", others[in_u8(in) % 10]);
    if (mode == 10) memset(text, 'x', 150), text[150] = '\0';  // longer than any buffer
    if (mode == 11) {  // a number instead
        long long v = (long long)in_u64(in);
        hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_LLONG, &v), H5Aclose(a);
        H5Sclose(sp);
        return;
    }
    hid_t type = H5Tcopy(H5T_C_S1);
    if (mode == 12) {  // variable-length, as h5py writes str by default
        H5Tset_size(type, H5T_VARIABLE);
        const char *p = text;
        hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, type, &p), H5Aclose(a);
        H5Sclose(sp), H5Tclose(type);
        return;
    }
    size_t len = strlen(text);
    H5Tset_size(type, len + (mode == 13 ? 1 + in_u8(in) % 4 : 0) + (len == 0));
    H5Tset_strpad(type, mode == 13 ? H5T_STR_NULLTERM : mode == 14 ? H5T_STR_SPACEPAD : H5T_STR_NULLPAD);
    H5Tset_cset(type, mode == 14 ? H5T_CSET_ASCII : H5T_CSET_UTF8);
    char buf[200] = "";
    memcpy(buf, text, len);
    hsize_t two = 2;
    hid_t sp = mode == 15 ? H5Screate_simple(1, &two, NULL) : H5Screate(H5S_SCALAR);
    char buf2[400] = "";
    if (mode == 15) memcpy(buf2, buf, len), memcpy(buf2 + H5Tget_size(type), buf, len);
    hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) H5Awrite(a, type, mode == 15 ? buf2 : buf), H5Aclose(a);
    H5Sclose(sp), H5Tclose(type);
}

/* An integer attribute: good, missing, another value, a double, a string or an array. */
static void gen_attr_int(FuzzIn *in, hid_t obj, const char *name, long long good) {
    static const long long edge[] = {0, -1, 1, 2, 2147483647LL, 2147483648LL, -2147483648LL,
                                     (long long)(~0ULL >> 1), (long long)(1ULL << 63)};
    int mode = in_u8(in) % 16;
    if (mode == 8) return;
    long long v = good;
    if (mode == 9) v = edge[in_u8(in) % 9];
    if (mode == 10) v = good + (long long)(in_u8(in) % 5) - 2;
    hid_t sp;
    if (mode == 11) {
        double x = in_double(in);
        sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(obj, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, H5T_NATIVE_DOUBLE, &x), H5Aclose(a);
        H5Sclose(sp);
        return;
    }
    if (mode == 12) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, 4);
        sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) H5Awrite(a, t, "7\0\0\0"), H5Aclose(a);
        H5Sclose(sp), H5Tclose(t);
        return;
    }
    hsize_t n = mode == 13 ? 3 : 1;
    long long vals[3] = {v, v, v};
    sp = mode == 13 ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
    hid_t ft = mode == 14 ? H5T_STD_I8LE : mode == 15 ? H5T_STD_U64BE : H5T_STD_I64LE;
    hid_t a = H5Acreate2(obj, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) H5Awrite(a, H5T_NATIVE_LLONG, vals), H5Aclose(a);
    H5Sclose(sp);
}

/* Creates the scratch file; HDF5's error printing is off for the whole process
 * (the readers report through ailora's error record). */
static hid_t gen_file(const char *path) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    FUZZ_ASSERT(f >= 0);
    return f;
}

#endif
