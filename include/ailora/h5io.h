/* h5io.h - HDF5 helpers: parallel creation, independent writes of whole
 * datasets, attributes, and reads of whole or selected rows and columns.
 *
 * Parallel HDF5 rule: creating files, groups, datasets and attributes is collective
 * (every rank, same arguments, same order); raw data may then be written
 * independently by whichever rank holds it. Output files are written under
 * "<path>.partial" and committed once complete (fileio.h), so a reader never sees
 * half a file.
 */
#ifndef AILORA_H5IO_H
#define AILORA_H5IO_H

#include <hdf5.h>
#include <mpi.h>

/* Silences HDF5's own error stack printing: failures become ailora errors. */
void h5io_quiet(void);

/* Collective over comm: creates (truncates) path with the MPI-IO driver. */
int h5io_create_parallel(const char *path, MPI_Comm comm, hid_t *file);
/* Serial read-only open; error names the path if missing or not HDF5. */
int h5io_open_read(const char *path, hid_t *file);

/* Creates the dataset at path (e.g. "/modules/x/U"), making parent groups. */
int h5io_dataset_create(hid_t file, const char *path, hid_t type, int ndims,
                        const hsize_t *dims, hid_t *dset);
/* Independent write of a whole dataset from buf (memory type memtype). */
int h5io_write_all(hid_t dset, hid_t memtype, const void *buf);

/* Attributes on any object (collective in parallel files). */
int h5io_attr_str(hid_t obj, const char *name, const char *value);
int h5io_attr_double(hid_t obj, const char *name, double value);
int h5io_attr_int(hid_t obj, const char *name, long long value);
int h5io_attr_ints(hid_t obj, const char *name, int count, const long long *values);
int h5io_attr_read_str(hid_t obj, const char *name, char *buf, size_t len);

/* Reads dataset path of rank ndims into a malloc'ed float64 buffer; dims receive
 * the shape; an error names the file and path if absent or of another rank. */
int h5io_read_f64(hid_t file, const char *path, int ndims, hsize_t *dims, double **buf);
/* Reads the listed rows (nsel ascending indices) of a 2-D float64 dataset [R, C]
 * into out [nsel, C], or with columns=1 the listed columns into out [R, nsel]. */
int h5io_read_selected(hid_t file, const char *path, int columns, int nsel, const int *sel,
                       double *out);

#endif
