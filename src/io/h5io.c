/* h5io.c - HDF5 helpers (see h5io.h). */
#include "ailora/h5io.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "ailora/error.h"

void h5io_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

int h5io_create_parallel(const char *path, MPI_Comm comm, hid_t *file) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
    // many small datasets: keep the metadata cache writes collective and few
    H5Pset_coll_metadata_write(fapl, 1);
    *file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (*file < 0) return AIL_ERROR(AIL_ERR_IO, "cannot create HDF5 file %s", path);
    return AIL_OK;
}

int h5io_open_read(const char *path, hid_t *file) {
    if (AIL_FAULT("read")) return AIL_ERROR(AIL_ERR_IO, "%s: injected read fault (AILORA_FAULT)", path);
    FILE *f = fopen(path, "rb");
    if (!f) return AIL_ERROR(AIL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    fclose(f);
    if (H5Fis_hdf5(path) <= 0)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s is not an HDF5 file", path);
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) return AIL_ERROR(AIL_ERR_FORMAT, "cannot open HDF5 file %s", path);
    return AIL_OK;
}

int h5io_dataset_create(hid_t file, const char *path, hid_t type, int ndims,
                        const hsize_t *dims, hid_t *dset) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = H5Screate_simple(ndims, dims, NULL);
    *dset = H5Dcreate2(file, path, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    H5Pclose(lcpl);
    if (*dset < 0) return AIL_ERROR(AIL_ERR_IO, "cannot create HDF5 dataset %s", path);
    return AIL_OK;
}

int h5io_write_all(hid_t dset, hid_t memtype, const void *buf) {
    if (H5Dwrite(dset, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        return AIL_ERROR(AIL_ERR_IO, "HDF5 write failed");
    return AIL_OK;
}

static int attr_write(hid_t obj, const char *name, hid_t type, hid_t space, const void *value) {
    hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t st = attr < 0 ? -1 : H5Awrite(attr, type, value);
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    if (st < 0) return AIL_ERROR(AIL_ERR_IO, "cannot write HDF5 attribute %s", name);
    return AIL_OK;
}

int h5io_attr_str(hid_t obj, const char *name, const char *value) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) > 0 ? strlen(value) : 1);
    H5Tset_strpad(type, H5T_STR_NULLPAD);  // exactly strlen bytes, as h5py writes
    H5Tset_cset(type, H5T_CSET_UTF8);
    int rc = attr_write(obj, name, type, H5Screate(H5S_SCALAR), strlen(value) ? value : "");
    H5Tclose(type);
    return rc;
}

int h5io_attr_double(hid_t obj, const char *name, double value) {
    return attr_write(obj, name, H5T_NATIVE_DOUBLE, H5Screate(H5S_SCALAR), &value);
}

int h5io_attr_int(hid_t obj, const char *name, long long value) {
    return attr_write(obj, name, H5T_NATIVE_LLONG, H5Screate(H5S_SCALAR), &value);
}

int h5io_attr_ints(hid_t obj, const char *name, int count, const long long *values) {
    hsize_t dim = (hsize_t)count;
    return attr_write(obj, name, H5T_NATIVE_LLONG, H5Screate_simple(1, &dim, NULL), values);
}

int h5io_attr_read_str(hid_t obj, const char *name, char *buf, size_t len) {
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (attr < 0) return AIL_ERROR(AIL_ERR_FORMAT, "missing HDF5 attribute %s", name);
    hid_t ftype = H5Aget_type(attr);
    size_t size = H5Tget_size(ftype);
    int rc = AIL_OK;
    if (H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) || size + 1 > len) {
        rc = AIL_ERROR(AIL_ERR_FORMAT, "HDF5 attribute %s is not a short fixed-length string", name);
    } else {
        hid_t mtype = H5Tcopy(ftype);  // same character set, one byte more for the NUL
        H5Tset_size(mtype, size + 1);
        H5Tset_strpad(mtype, H5T_STR_NULLTERM);
        if (H5Aread(attr, mtype, buf) < 0) rc = AIL_ERROR(AIL_ERR_IO, "cannot read attribute %s", name);
        H5Tclose(mtype);
    }
    H5Tclose(ftype);
    H5Aclose(attr);
    return rc;
}

static int open_dataset(hid_t file, const char *path, int ndims, hsize_t *dims, hid_t *dset) {
    // H5Lexists is negative (not 0) when an intermediate group is missing
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0) {
        char fname[1024] = "";
        H5Fget_name(file, fname, sizeof fname);
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: dataset %s not found", fname, path);
    }
    *dset = H5Dopen2(file, path, H5P_DEFAULT);
    hid_t space = *dset >= 0 ? H5Dget_space(*dset) : -1;
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (nd == ndims) H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0) H5Sclose(space);
    if (nd != ndims) {
        if (*dset >= 0) H5Dclose(*dset);
        return AIL_ERROR(AIL_ERR_FORMAT, "dataset %s has %d dimensions, expected %d", path, nd, ndims);
    }
    return AIL_OK;
}

int h5io_read_f64(hid_t file, const char *path, int ndims, hsize_t *dims, double **buf) {
    hid_t dset;
    AIL_CHECK(open_dataset(file, path, ndims, dims, &dset));
    // ailora's sizes are ints; a larger dimension (or a byte count past size_t) is a
    // corrupt file, refused before anything is allocated from it
    size_t count = 1;
    for (int i = 0; i < ndims; i++) {
        if (dims[i] > INT_MAX || (dims[i] && count > SIZE_MAX / sizeof(double) / dims[i])) {
            H5Dclose(dset);
            return AIL_ERROR(AIL_ERR_FORMAT, "dataset %s: dimension %d of %llu is too large", path, i,
                             (unsigned long long)dims[i]);
        }
        count *= dims[i];
    }
    *buf = ail_malloc(sizeof(double) * (count ? count : 1));
    int rc = AIL_OK;
    if (!*buf) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory reading %s", path);
    else if (count && (AIL_FAULT("read") || H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *buf) < 0))
        rc = AIL_ERROR(AIL_ERR_IO, "cannot read dataset %s", path);
    H5Dclose(dset);
    if (rc != AIL_OK) {
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

int h5io_read_selected(hid_t file, const char *path, int columns, int nsel, const int *sel,
                       double *out) {
    hid_t dset;
    hsize_t dims[2];
    AIL_CHECK(open_dataset(file, path, 2, dims, &dset));
    int axis = columns ? 1 : 0;
    for (int i = 0; i < nsel; i++)
        if (sel[i] < 0 || (hsize_t)sel[i] >= dims[axis] || (i > 0 && sel[i] <= sel[i - 1])) {
            H5Dclose(dset);
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: selection index %d out of range or unsorted",
                             path, sel[i]);
        }
    hid_t fspace = H5Dget_space(dset);
    H5Sselect_none(fspace);
    for (int i = 0; i < nsel; i++) {
        hsize_t start[2] = {0, 0}, count[2] = {dims[0], dims[1]};
        start[axis] = (hsize_t)sel[i];
        count[axis] = 1;
        H5Sselect_hyperslab(fspace, H5S_SELECT_OR, start, NULL, count, NULL);
    }
    hsize_t mdims[2] = {dims[0], dims[1]};
    mdims[axis] = (hsize_t)nsel;
    hid_t mspace = H5Screate_simple(2, mdims, NULL);
    herr_t st = AIL_FAULT("read") ? -1 : nsel ? H5Dread(dset, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, out) : 0;
    H5Sclose(mspace);
    H5Sclose(fspace);
    H5Dclose(dset);
    if (st < 0) return AIL_ERROR(AIL_ERR_IO, "cannot read dataset %s", path);
    return AIL_OK;
}
