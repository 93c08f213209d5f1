/* safetensors.c - mmap reader and atomic writer of the safetensors format.
 *
 * The reader trusts nothing: every header field is checked before a data pointer
 * is formed, so a truncated or hostile file fails with one line naming the file
 * and the tensor, never with a crash. The writer emits exactly what the reader
 * (and HF's safetensors) accepts: tensors sorted by name, contiguous, header
 * space-padded to a multiple of 8 bytes.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L  // mmap, pwrite, fsync, mkdtemp, strdup
#endif
#include "ailora/safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ailora/error.h"
#include "ailora/fileio.h"

// HF's safetensors refuses headers above 100 MB; a larger length is corruption.
#define HEADER_MAX ((uint64_t)100000000)
// cJSON numbers are doubles: integers beyond 2^53 are not exact any more.
#define JSON_INT_MAX 9007199254740992.0

// ----------------------------------------------------------------------------
// reader

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const SafeTensor *)a)->name, ((const SafeTensor *)b)->name);
}

// Begin/end offsets of one tensor, kept beside its index for the coverage check.
typedef struct {
    size_t begin, end;
    const char *name;
    int index;  // into st->tensors, before sorting by name
} Span;

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

// A JSON number that is a non-negative integer exactly representable in a double.
static int json_get_size(const cJSON *item, size_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    if (!(d >= 0.0) || d >= JSON_INT_MAX || d != (double)(uint64_t)d) return 0;
    if ((uint64_t)d > SIZE_MAX) return 0;
    *out = (size_t)d;
    return 1;
}

static int parse_metadata(const char *path, const cJSON *meta, SafeTensors *st) {
    if (!cJSON_IsObject(meta))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: __metadata__ is not a JSON object", path);
    int n = cJSON_GetArraySize(meta);
    AIL_CALLOC(st->metadata_keys, n);
    AIL_CALLOC(st->metadata_values, n);
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string",
                             path, kv->string);
        for (int i = 0; i < st->metadata_count; i++)
            if (strcmp(st->metadata_keys[i], kv->string) == 0)
                return AIL_ERROR(AIL_ERR_FORMAT, "%s: duplicate __metadata__ key '%s'", path,
                                 kv->string);
        int i = st->metadata_count++;
        st->metadata_keys[i] = strdup(kv->string);
        st->metadata_values[i] = strdup(kv->valuestring);
        if (!st->metadata_keys[i] || !st->metadata_values[i])
            return AIL_ERROR(AIL_ERR_MEM, "%s: out of memory copying metadata", path);
    }
    return AIL_OK;
}

// Fills t from one header entry; offsets go to *span (relative to the data buffer).
static int parse_tensor(const char *path, const cJSON *entry, SafeTensor *t, Span *span) {
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", path, name);

    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(dtype))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor '%s': missing or non-string dtype", path, name);
    t->dtype = dtype_from_name(dtype->valuestring);
    if (t->dtype == DTYPE_INVALID)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s' (F64, F32, F16, BF16)",
                         path, name, dtype->valuestring);

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (!cJSON_IsArray(shape))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor '%s': missing or non-array shape", path, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > SAFETENSORS_MAX_DIMS)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor '%s': %d dims, at most %d supported", path,
                         name, ndim, SAFETENSORS_MAX_DIMS);
    t->ndim = ndim;
    int has_zero = 0;
    int d = 0;
    for (const cJSON *dim = shape->child; dim; dim = dim->next, d++) {
        size_t v;
        if (!json_get_size(dim, &v)) {
            if (cJSON_IsNumber(dim) && dim->valuedouble < 0)
                return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor '%s': negative shape dim %d (%g)",
                                 path, name, d, dim->valuedouble);
            return AIL_ERROR(AIL_ERR_FORMAT,
                             "%s: tensor '%s': shape dim %d is not a non-negative integer", path,
                             name, d);
        }
        t->shape[d] = (int64_t)v;
        if (v == 0) has_zero = 1;
    }
    // numel with overflow checks; any zero dim makes the product zero regardless
    size_t numel = 1;
    for (d = 0; d < ndim && !has_zero; d++) {
        size_t v = (size_t)t->shape[d];
        if (numel > SIZE_MAX / v)
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor '%s': shape overflows size_t", path, name);
        numel *= v;
    }
    if (has_zero) numel = 0;
    size_t esize = dtype_size(t->dtype);
    if (numel > SIZE_MAX / esize)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor '%s': byte size overflows size_t", path, name);
    t->numel = numel;
    t->nbytes = numel * esize;

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_get_size(offs->child, &span->begin) || !json_get_size(offs->child->next, &span->end))
        return AIL_ERROR(AIL_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets must be [begin, end] non-negative integers",
                         path, name);
    if (span->begin > span->end)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor '%s': data_offsets begin %zu > end %zu", path,
                         name, span->begin, span->end);
    if (span->end - span->begin != t->nbytes)
        return AIL_ERROR(AIL_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets span %zu bytes does not match shape "
                         "(%zu elements of %s = %zu bytes)",
                         path, name, span->end - span->begin, numel, dtype_name(t->dtype),
                         t->nbytes);
    span->name = name;
    return AIL_OK;
}

// The tensors, sorted by begin, must tile [0, data_size) exactly.
static int check_coverage(const char *path, Span *spans, int n, size_t data_size) {
    if (n > 1) qsort(spans, (size_t)n, sizeof *spans, cmp_span);
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (spans[i].end > data_size)
            return AIL_ERROR(AIL_ERR_FORMAT,
                             "%s: tensor '%s': data_offsets end %zu beyond the data buffer (%zu bytes)",
                             path, spans[i].name, spans[i].end, data_size);
        if (spans[i].begin < pos)
            return AIL_ERROR(AIL_ERR_FORMAT,
                             "%s: tensor '%s': data_offsets [%zu, %zu] overlap the previous tensor "
                             "(ending at %zu)",
                             path, spans[i].name, spans[i].begin, spans[i].end, pos);
        if (spans[i].begin > pos)
            return AIL_ERROR(AIL_ERR_FORMAT,
                             "%s: tensor '%s': hole of %zu bytes in the data buffer before it", path,
                             spans[i].name, spans[i].begin - pos);
        pos = spans[i].end;
    }
    if (pos != data_size)
        return AIL_ERROR(AIL_ERR_FORMAT,
                         "%s: %zu trailing bytes in the data buffer not covered by any tensor", path,
                         data_size - pos);
    return AIL_OK;
}

static int parse_header(const char *path, const cJSON *root, SafeTensors *st) {
    if (!cJSON_IsObject(root))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: header is not a JSON object", path);
    int n = 0;
    int have_meta = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") != 0) {
            n++;
        } else if (have_meta++) {
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: duplicate __metadata__ entry", path);
        } else {
            AIL_CHECK(parse_metadata(path, e, st));
        }
    }

    Span *spans;
    AIL_CALLOC(st->tensors, n);
    AIL_MALLOC(spans, n);
    int rc = AIL_OK;
    for (const cJSON *e = root->child; e && rc == AIL_OK; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        SafeTensor *t = &st->tensors[st->count];
        spans[st->count].index = st->count;
        rc = parse_tensor(path, e, t, &spans[st->count]);
        if (rc == AIL_OK) {
            t->name = strdup(e->string);
            if (!t->name) rc = AIL_ERROR(AIL_ERR_MEM, "%s: out of memory copying names", path);
            else st->count++;
        }
    }
    if (rc == AIL_OK) rc = check_coverage(path, spans, n, st->map_size - st->data_start);
    // data pointers are formed only now that every span is known to be inside the map
    for (int i = 0; rc == AIL_OK && i < n; i++)
        st->tensors[spans[i].index].data = (const char *)st->map + st->data_start + spans[i].begin;
    free(spans);
    AIL_CHECK(rc);
    return AIL_OK;
}

int safetensors_open(const char *path, SafeTensors *st) {
    memset(st, 0, sizeof *st);
    if (AIL_FAULT("read")) return AIL_ERROR(AIL_ERR_IO, "%s: injected read fault (AILORA_FAULT)", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return AIL_ERROR(AIL_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int rc = AIL_ERROR(AIL_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return AIL_ERROR(AIL_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: file of %lld bytes is shorter than 8 bytes", path,
                         (long long)sb.st_size);
    }
    size_t size = (size_t)sb.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);  // the mapping keeps the file alive
    if (map == MAP_FAILED) return AIL_ERROR(AIL_ERR_IO, "%s: mmap: %s", path, strerror(errno));
    st->map = map;
    st->map_size = size;

    int rc = AIL_OK;
    const unsigned char *p = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > size - 8)
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: header length %llu exceeds the file size (%zu bytes)",
                       path, (unsigned long long)hlen, size);
    else if (hlen > HEADER_MAX)
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: header length %llu is absurd (limit %llu)", path,
                       (unsigned long long)hlen, (unsigned long long)HEADER_MAX);
    if (rc == AIL_OK) {
        st->data_start = 8 + (size_t)hlen;
        const char *json = (const char *)p + 8;
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(json, (size_t)hlen, &end, 0);
        if (!root) {
            size_t at = end && end >= json ? (size_t)(end - json) : 0;
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu)", path, at);
        } else {
            // only padding may follow the JSON value
            for (const char *q = end; q < json + hlen && rc == AIL_OK; q++)
                if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
                    rc = AIL_ERROR(AIL_ERR_FORMAT,
                                   "%s: header is not valid JSON (garbage after the object at byte %zu)",
                                   path, (size_t)(q - json));
            if (rc == AIL_OK) rc = parse_header(path, root, st);
            cJSON_Delete(root);
        }
    }
    if (rc == AIL_OK) {
        if (st->count > 1) qsort(st->tensors, (size_t)st->count, sizeof *st->tensors, cmp_tensor_name);
        for (int i = 1; i < st->count && rc == AIL_OK; i++)
            if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: duplicate tensor name '%s'", path,
                               st->tensors[i].name);
    }
    if (rc == AIL_OK) {
        st->path = strdup(path);
        if (!st->path) rc = AIL_ERROR(AIL_ERR_MEM, "%s: out of memory", path);
    }
    if (rc != AIL_OK) safetensors_close(st);
    return rc;
}

void safetensors_close(SafeTensors *st) {
    if (!st) return;
    if (st->map) munmap(st->map, st->map_size);
    for (int i = 0; i < st->count; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->metadata_count; i++) {
        free(st->metadata_keys[i]);
        free(st->metadata_values[i]);
    }
    free(st->metadata_keys);
    free(st->metadata_values);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const SafeTensor *safetensors_find(const SafeTensors *st, const char *name) {
    int lo = 0, hi = st->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char *safetensors_metadata(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->metadata_count; i++)
        if (strcmp(st->metadata_keys[i], key) == 0) return st->metadata_values[i];
    return NULL;
}

// ----------------------------------------------------------------------------
// writer

// What both writers need: the padded header text, each spec's data offset
// relative to the buffer, and the order in which data lies in the file.
typedef struct {
    char *header;   // header_len bytes, space padded, not NUL-terminated in the file
    size_t header_len;
    size_t data_size;
    size_t *offsets;  // per spec index, relative to the data buffer
    int *order;       // spec indices sorted by name
    size_t *nbytes;   // per spec index
} Layout;

static void layout_free(Layout *l) {
    free(l->header);
    free(l->offsets);
    free(l->order);
    free(l->nbytes);
    memset(l, 0, sizeof *l);
}

static int cmp_spec_ptr(const void *a, const void *b) {
    return strcmp((*(const SafeTensorSpec *const *)a)->name, (*(const SafeTensorSpec *const *)b)->name);
}

// Spec indices in name order; qsort has no context argument, so sort pointers.
static int layout_sort(int count, const SafeTensorSpec *specs, int *order) {
    const SafeTensorSpec **ptrs;
    AIL_MALLOC(ptrs, count);
    for (int i = 0; i < count; i++) ptrs[i] = &specs[i];
    if (count > 1) qsort(ptrs, (size_t)count, sizeof *ptrs, cmp_spec_ptr);
    for (int k = 0; k < count; k++) order[k] = (int)(ptrs[k] - specs);
    free(ptrs);
    return AIL_OK;
}

static int layout_check_specs(const char *path, int count, const SafeTensorSpec *specs,
                              size_t *nbytes) {
    for (int i = 0; i < count; i++) {
        const SafeTensorSpec *s = &specs[i];
        if (!s->name)
            return AIL_ERROR(AIL_ERR_ARG, "%s: tensor %d has no name", path, i);
        if (strcmp(s->name, "__metadata__") == 0)
            return AIL_ERROR(AIL_ERR_ARG, "%s: '__metadata__' is not a valid tensor name", path);
        size_t esize = dtype_size(s->dtype);
        if (esize == 0)
            return AIL_ERROR(AIL_ERR_ARG, "%s: tensor '%s': invalid dtype", path, s->name);
        if (s->ndim < 0 || s->ndim > SAFETENSORS_MAX_DIMS)
            return AIL_ERROR(AIL_ERR_ARG, "%s: tensor '%s': ndim %d outside [0, %d]", path,
                             s->name, s->ndim, SAFETENSORS_MAX_DIMS);
        size_t n = esize;
        for (int d = 0; d < s->ndim; d++) {
            if (s->shape[d] < 0)
                return AIL_ERROR(AIL_ERR_ARG, "%s: tensor '%s': negative shape dim %d", path,
                                 s->name, d);
            if (s->shape[d] >= (int64_t)JSON_INT_MAX)
                return AIL_ERROR(AIL_ERR_ARG, "%s: tensor '%s': shape dim %d too large", path,
                                 s->name, d);
        }
        for (int d = 0; d < s->ndim && n; d++) {
            size_t v = (size_t)s->shape[d];
            if (v && n > SIZE_MAX / v)
                return AIL_ERROR(AIL_ERR_ARG, "%s: tensor '%s': size overflows size_t", path, s->name);
            n *= v;
        }
        nbytes[i] = n;
    }
    return AIL_OK;
}

static int layout_metadata(const char *path, cJSON *root, int metadata_count,
                           const char *const *keys, const char *const *values) {
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    if (!meta || !cJSON_AddStringToObject(meta, "format", "pt"))
        return AIL_ERROR(AIL_ERR_MEM, "%s: out of memory building the header", path);
    for (int i = 0; i < metadata_count; i++) {
        if (!keys[i] || !values[i])
            return AIL_ERROR(AIL_ERR_ARG, "%s: metadata pair %d is NULL", path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(keys[i], keys[j]) == 0)
                return AIL_ERROR(AIL_ERR_ARG, "%s: duplicate metadata key '%s'", path, keys[i]);
        cJSON *v = cJSON_CreateString(values[i]);
        if (!v) return AIL_ERROR(AIL_ERR_MEM, "%s: out of memory building the header", path);
        // a caller-given "format" replaces the default
        if (strcmp(keys[i], "format") == 0) cJSON_ReplaceItemInObjectCaseSensitive(meta, "format", v);
        else cJSON_AddItemToObject(meta, keys[i], v);
    }
    return AIL_OK;
}

// Builds the JSON object. Numbers are inserted as raw text because cJSON prints
// doubles with %.15g, which would turn sizes >= 1e15 into exponent notation.
static int layout_json(const char *path, int count, const SafeTensorSpec *specs, Layout *l,
                       cJSON *root) {
    size_t pos = 0;
    for (int k = 0; k < count; k++) {
        int i = l->order[k];
        const SafeTensorSpec *s = &specs[i];
        if (k > 0 && strcmp(specs[l->order[k - 1]].name, s->name) == 0)
            return AIL_ERROR(AIL_ERR_ARG, "%s: duplicate tensor name '%s'", path, s->name);
        l->offsets[i] = pos;
        if (l->nbytes[i] > SIZE_MAX - pos)
            return AIL_ERROR(AIL_ERR_ARG, "%s: total size overflows size_t", path);
        pos += l->nbytes[i];

        char shape[SAFETENSORS_MAX_DIMS * 21 + 3], offs[48];
        int len = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < s->ndim; d++)
            len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%lld", d ? "," : "",
                            (long long)s->shape[d]);
        snprintf(shape + len, sizeof shape - (size_t)len, "]");
        snprintf(offs, sizeof offs, "[%zu,%zu]", l->offsets[i], pos);

        cJSON *entry = cJSON_AddObjectToObject(root, s->name);
        if (!entry || !cJSON_AddStringToObject(entry, "dtype", dtype_name(s->dtype)) ||
            !cJSON_AddRawToObject(entry, "shape", shape) ||
            !cJSON_AddRawToObject(entry, "data_offsets", offs))
            return AIL_ERROR(AIL_ERR_MEM, "%s: out of memory building the header", path);
    }
    l->data_size = pos;
    return AIL_OK;
}

static int layout_build(const char *path, int count, const SafeTensorSpec *specs,
                        int metadata_count, const char *const *keys, const char *const *values,
                        Layout *l) {
    memset(l, 0, sizeof *l);
    if (count < 0 || metadata_count < 0)
        return AIL_ERROR(AIL_ERR_ARG, "%s: negative tensor or metadata count", path);
    AIL_MALLOC(l->offsets, count);
    AIL_MALLOC(l->order, count);
    AIL_MALLOC(l->nbytes, count);
    AIL_CHECK(layout_check_specs(path, count, specs, l->nbytes));
    AIL_CHECK(layout_sort(count, specs, l->order));

    cJSON *root = cJSON_CreateObject();
    if (!root) return AIL_ERROR(AIL_ERR_MEM, "%s: out of memory building the header", path);
    int rc = layout_metadata(path, root, metadata_count, keys, values);
    if (rc == AIL_OK) rc = layout_json(path, count, specs, l, root);
    char *text = rc == AIL_OK ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    AIL_CHECK(rc);
    if (!text) return AIL_ERROR(AIL_ERR_MEM, "%s: out of memory printing the header", path);

    // pad with spaces so the data buffer starts 8-byte aligned in the file
    size_t n = strlen(text);
    size_t padded = (n + 7) / 8 * 8;
    l->header = ail_realloc(text, padded + 1);
    if (!l->header) {
        free(text);
        return AIL_ERROR(AIL_ERR_MEM, "%s: out of memory padding the header", path);
    }
    memset(l->header + n, ' ', padded - n);
    l->header[padded] = '\0';
    l->header_len = padded;
    return AIL_OK;
}

// write() all of buf at offset, retrying short writes and EINTR.
static int write_all(int fd, const void *buf, size_t len, off_t off, const char *path) {
    const char *p = buf;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t w = pwrite(fd, p, chunk, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return AIL_ERROR(AIL_ERR_IO, "%s: write: %s", path, w < 0 ? strerror(errno) : "no progress");
        p += w;
        off += w;
        len -= (size_t)w;
    }
    return AIL_OK;
}

// Length prefix and header text at the start of fd.
static int write_prefix(int fd, const Layout *l, const char *path) {
    unsigned char len8[8];
    uint64_t v = l->header_len;
    for (int i = 0; i < 8; i++, v >>= 8) len8[i] = (unsigned char)(v & 0xff);
    AIL_CHECK(write_all(fd, len8, 8, 0, path));
    return write_all(fd, l->header, l->header_len, 8, path);
}

static int write_data(int fd, int count, const SafeTensorSpec *specs, const Layout *l,
                      const char *path) {
    off_t start = (off_t)(8 + l->header_len);
    for (int k = 0; k < count; k++) {
        int i = l->order[k];
        AIL_CHECK(write_all(fd, specs[i].data, l->nbytes[i], start + (off_t)l->offsets[i], path));
    }
    if (fsync(fd) != 0) return AIL_ERROR(AIL_ERR_IO, "%s: fsync: %s", path, strerror(errno));
    return AIL_OK;
}

int safetensors_write(const char *path, int count, const SafeTensorSpec *specs,
                      int metadata_count, const char *const *metadata_keys,
                      const char *const *metadata_values) {
    // the header-only writer takes specs without data; this one needs it all
    for (int i = 0; i < count; i++)
        if (!specs[i].data && specs[i].name) {
            size_t numel = 1;
            for (int d = 0; d < specs[i].ndim; d++) numel *= (size_t)specs[i].shape[d];
            if (numel) return AIL_ERROR(AIL_ERR_ARG, "%s: tensor '%s': no data", path, specs[i].name);
        }
    Layout l;
    int rc = layout_build(path, count, specs, metadata_count, metadata_keys, metadata_values, &l);
    if (rc != AIL_OK) {
        layout_free(&l);
        return rc;
    }
    size_t tlen = strlen(path) + 16;
    char *tmp = ail_malloc(tlen);
    if (!tmp) {
        layout_free(&l);
        return AIL_ERROR(AIL_ERR_MEM, "%s: out of memory", path);
    }
    file_partial_path(path, tmp, tlen);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        rc = AIL_ERROR(AIL_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    } else {
        rc = write_prefix(fd, &l, tmp);
        if (rc == AIL_OK) rc = write_data(fd, count, specs, &l, tmp);
        if (close(fd) != 0 && rc == AIL_OK)
            rc = AIL_ERROR(AIL_ERR_IO, "%s: close: %s", tmp, strerror(errno));
        if (rc == AIL_OK) rc = file_commit(path);
        if (rc != AIL_OK) unlink(tmp);
    }
    free(tmp);
    layout_free(&l);
    return rc;
}

int safetensors_write_header(const char *path, int count, const SafeTensorSpec *specs,
                             int metadata_count, const char *const *metadata_keys,
                             const char *const *metadata_values, size_t *offsets,
                             size_t *file_size) {
    Layout l;
    int rc = layout_build(path, count, specs, metadata_count, metadata_keys, metadata_values, &l);
    if (rc != AIL_OK) {
        layout_free(&l);
        return rc;
    }
    size_t start = 8 + l.header_len;
    size_t total = start + l.data_size;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        rc = AIL_ERROR(AIL_ERR_IO, "%s: %s", path, strerror(errno));
    } else {
        rc = write_prefix(fd, &l, path);
        if (rc == AIL_OK && ftruncate(fd, (off_t)total) != 0)
            rc = AIL_ERROR(AIL_ERR_IO, "%s: ftruncate to %zu bytes: %s", path, total, strerror(errno));
        if (close(fd) != 0 && rc == AIL_OK)
            rc = AIL_ERROR(AIL_ERR_IO, "%s: close: %s", path, strerror(errno));
        if (rc != AIL_OK) unlink(path);  // we truncated it: what is left is garbage
    }
    if (rc == AIL_OK) {
        for (int i = 0; i < count; i++) offsets[i] = start + l.offsets[i];
        *file_size = total;
    }
    layout_free(&l);
    return rc;
}

void safetensor_block_f64(const SafeTensor *t, int64_t r0, int64_t nr, int64_t c0, int64_t nc, double *out) {
    int64_t cols = t->ndim == 2 ? t->shape[1] : 1;
    size_t es = dtype_size(t->dtype);
    for (int64_t i = 0; i < nr; i++)
        dtype_to_f64(t->dtype, (const char *)t->data + ((size_t)(r0 + i) * (size_t)cols + (size_t)c0) * es, (size_t)nc,
                     out + (size_t)i * (size_t)nc);
}
