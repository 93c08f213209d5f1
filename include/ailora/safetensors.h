/* safetensors.h - reader (mmap) and writer of the safetensors format.
 *
 * Format: 8-byte little-endian header length N, then N bytes of JSON
 *   { "__metadata__": {"k": "v", ...},
 *     "<name>": {"dtype": "F32", "shape": [d0, d1], "data_offsets": [begin, end]}, ... }
 * then the data buffer; offsets are relative to the buffer start. The reader
 * validates every field before touching data: header length within the file,
 * valid JSON object, known dtype, non-negative integer shape, begin <= end,
 * end - begin == numel * dtype_size, offsets inside the buffer, tensors neither
 * overlapping nor leaving holes, and the buffer fully covered.
 */
#ifndef AILORA_SAFETENSORS_H
#define AILORA_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ailora/dtype.h"

#define SAFETENSORS_MAX_DIMS 8

typedef struct {
    char *name;
    DType dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const void *data;  /* points into the mapping; valid until safetensors_close */
} SafeTensor;

typedef struct {
    char *path;
    void *map;          /* the whole file, read-only */
    size_t map_size;
    size_t data_start;  /* 8 + header length */
    int count;
    SafeTensor *tensors;  /* sorted by name */
    int metadata_count;
    char **metadata_keys;
    char **metadata_values;
} SafeTensors;

/* Maps and validates path. On error nothing stays mapped or allocated. */
int safetensors_open(const char *path, SafeTensors *st);
void safetensors_close(SafeTensors *st);
/* NULL when absent. */
const SafeTensor *safetensors_find(const SafeTensors *st, const char *name);
/* Rows [r0, r0 + nr) x columns [c0, c0 + nc) of a 2-D floating-point tensor (a
 * 1-D tensor of length d reads as (d, 1)) converted
 * to float64 into out (nr, nc). Touches only those rows' bytes of the mapping. */
void safetensor_block_f64(const SafeTensor *t, int64_t r0, int64_t nr, int64_t c0, int64_t nc, double *out);
/* NULL when absent. */
const char *safetensors_metadata(const SafeTensors *st, const char *key);

/* One tensor to write: data is already in dtype (little-endian), numel elements. */
typedef struct {
    const char *name;
    DType dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    const void *data;
} SafeTensorSpec;

/* Writes a file that HF transformers / safetensors load: tensors sorted by name,
 * contiguous, header padded with spaces to a multiple of 8 bytes, metadata
 * {"format": "pt"} plus the given pairs. Writes to "<path>.tmp" and renames, so
 * path is either complete or untouched. */
int safetensors_write(const char *path, int count, const SafeTensorSpec *specs,
                      int metadata_count, const char *const *metadata_keys,
                      const char *const *metadata_values);

/* Header-only variant for writers that fill the data region themselves
 * (several ranks writing their tensors with pwrite): computes the layout and
 * writes header bytes; offsets[i] receives the absolute file offset of specs[i]'s data
 * and *file_size the total size. The file is created (truncated) and sized. */
int safetensors_write_header(const char *path, int count, const SafeTensorSpec *specs,
                             int metadata_count, const char *const *metadata_keys,
                             const char *const *metadata_values, size_t *offsets,
                             size_t *file_size);

#endif
