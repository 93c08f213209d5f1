/* gguf.c - GGUF reader and dequantization (see gguf.h). */
#define _POSIX_C_SOURCE 200809L

#include "ailora/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ailora/error.h"

/* ---- ggml types: block size (weights) and bytes per block ---------------------------- */
typedef struct {
    const char *name;
    int blck, bytes;
} TypeInfo;

static const TypeInfo type_info[] = {
    [0] = {"F32", 1, 4},       [1] = {"F16", 1, 2},       [2] = {"Q4_0", 32, 18},
    [3] = {"Q4_1", 32, 20},    [6] = {"Q5_0", 32, 22},    [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},    [9] = {"Q8_1", 32, 36},    [10] = {"Q2_K", 256, 84},
    [11] = {"Q3_K", 256, 110}, [12] = {"Q4_K", 256, 144}, [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210}, [15] = {"Q8_K", 256, 292}, [16] = {"IQ2_XXS", 256, 66},
    [17] = {"IQ2_XS", 256, 74}, [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18}, [21] = {"IQ3_S", 256, 110}, [22] = {"IQ2_S", 256, 82},
    [23] = {"IQ4_XS", 256, 136}, [24] = {"I8", 1, 1},     [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},      [27] = {"I64", 1, 8},      [28] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 56}, [30] = {"BF16", 1, 2},     [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66}, [39] = {"MXFP4", 32, 17},
};
#define NTYPES (uint32_t)(sizeof type_info / sizeof *type_info)

const char *ggml_type_name(uint32_t type) {
    static _Thread_local char buf[32];
    if (type < NTYPES && type_info[type].name) return type_info[type].name;
    snprintf(buf, sizeof buf, "type %u", type);
    return buf;
}

int ggml_type_supported(uint32_t type) {
    return type == GGML_F32 || type == GGML_F16 || type == GGML_BF16 || type == GGML_Q8_0 ||
           type == GGML_Q4_0 || type == GGML_Q4_1;
}

/* ---- little-endian reads (any alignment) ------------------------------------------ */
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static size_t scalar_size(uint32_t t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    default: return 0;
    }
}

static const char *value_type_name(uint32_t t) {
    static const char *const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool",
                                        "string", "array", "u64", "i64", "f64"};
    return t < 13 ? names[t] : "unknown";
}

/* ---- parsing ------------------------------------------------------------------------ */
typedef struct {
    const uint8_t *base;
    size_t size, pos;
    const char *name;
} Cursor;

static int need(Cursor *c, size_t n, const char *what) {
    if (n > c->size - c->pos)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: truncated: %s at byte %zu needs %zu bytes, %zu left", c->name, what,
                         c->pos, n, c->size - c->pos);
    return AIL_OK;
}

static int get_u32(Cursor *c, uint32_t *v, const char *what) {
    AIL_CHECK(need(c, 4, what));
    *v = rd32(c->base + c->pos);
    c->pos += 4;
    return AIL_OK;
}

static int get_u64(Cursor *c, uint64_t *v, const char *what) {
    AIL_CHECK(need(c, 8, what));
    *v = rd64(c->base + c->pos);
    c->pos += 8;
    return AIL_OK;
}

/* A string: checks the length against the bytes left; *s points into the buffer. */
static int get_str(Cursor *c, const uint8_t **s, uint64_t *len, const char *what) {
    AIL_CHECK(get_u64(c, len, what));
    if (*len > c->size - c->pos)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: %s at byte %zu has length %llu, past the end of the file", c->name,
                         what, c->pos - 8, (unsigned long long)*len);
    *s = c->base + c->pos;
    c->pos += (size_t)*len;
    return AIL_OK;
}

static int dup_name(const Cursor *c, const uint8_t *s, uint64_t len, const char *what, char **out) {
    if (len == 0) return AIL_ERROR(AIL_ERR_FORMAT, "%s: empty %s", c->name, what);
    if (len > 65535) return AIL_ERROR(AIL_ERR_FORMAT, "%s: %s of %llu bytes", c->name, what, (unsigned long long)len);
    if (memchr(s, 0, (size_t)len)) return AIL_ERROR(AIL_ERR_FORMAT, "%s: %s contains a NUL byte", c->name, what);
    *out = ail_malloc((size_t)len + 1);
    if (!*out) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    memcpy(*out, s, (size_t)len);
    (*out)[len] = '\0';
    return AIL_OK;
}

static int parse_value(Cursor *c, GGUFKV *kv) {
    AIL_CHECK(get_u32(c, &kv->type, "value type"));
    kv->count = 1;
    if (kv->type == GGUF_STRING) {
        const uint8_t *s;
        uint64_t len;
        kv->data = c->base + c->pos;
        return get_str(c, &s, &len, kv->key);
    }
    if (kv->type != GGUF_ARRAY) {
        size_t n = scalar_size(kv->type);
        if (!n) return AIL_ERROR(AIL_ERR_FORMAT, "%s: key %s has unknown value type %u", c->name, kv->key, kv->type);
        AIL_CHECK(need(c, n, kv->key));
        kv->data = c->base + c->pos;
        c->pos += n;
        return AIL_OK;
    }
    AIL_CHECK(get_u32(c, &kv->elem_type, "array type"));
    AIL_CHECK(get_u64(c, &kv->count, "array length"));
    kv->data = c->base + c->pos;
    if (kv->elem_type == GGUF_STRING) {
        // each element needs at least its 8-byte length: bounds the index before allocating
        if (kv->count > (c->size - c->pos) / 8)
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: array %s of %llu strings is longer than the file", c->name, kv->key,
                             (unsigned long long)kv->count);
        AIL_MALLOC(kv->str_offset, kv->count ? kv->count : 1);
        for (uint64_t i = 0; i < kv->count; i++) {
            const uint8_t *s;
            uint64_t len;
            kv->str_offset[i] = (uint64_t)(c->base + c->pos - kv->data);
            AIL_CHECK(get_str(c, &s, &len, kv->key));
        }
        return AIL_OK;
    }
    size_t n = scalar_size(kv->elem_type);
    if (!n)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: array %s has element type %s (%u): only scalars and strings", c->name,
                         kv->key, value_type_name(kv->elem_type), kv->elem_type);
    if (kv->count > (c->size - c->pos) / n)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: array %s of %llu elements runs past the end of the file", c->name,
                         kv->key, (unsigned long long)kv->count);
    c->pos += (size_t)kv->count * n;
    return AIL_OK;
}

static int cmp_str_ptr(const void *a, const void *b) { return strcmp(**(char *const *const *)a, **(char *const *const *)b); }

/* Duplicate names: sort pointers to the name fields. */
static int check_unique(char **const *names, int64_t n, const char *file, const char *what) {
    if (n < 2) return AIL_OK;
    char ***sorted;
    AIL_MALLOC(sorted, n);
    for (int64_t i = 0; i < n; i++) sorted[i] = (char **)names[i];
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str_ptr);
    int rc = AIL_OK;
    for (int64_t i = 1; i < n && rc == AIL_OK; i++)
        if (!strcmp(*sorted[i], *sorted[i - 1]))
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s \"%s\" appears twice", file, what, *sorted[i]);
    free(sorted);
    return rc;
}

static int cmp_offset(const void *a, const void *b) {
    const GGUFTensor *x = *(const GGUFTensor *const *)a, *y = *(const GGUFTensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int parse_tensor_info(Cursor *c, GGUFTensor *t) {
    const uint8_t *s;
    uint64_t len;
    AIL_CHECK(get_str(c, &s, &len, "tensor name"));
    AIL_CHECK(dup_name(c, s, len, "tensor name", &t->name));
    uint32_t nd;
    AIL_CHECK(get_u32(c, &nd, t->name));
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor %s has %u dimensions (1 to %d)", c->name, t->name, nd, GGUF_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t ne;
        AIL_CHECK(get_u64(c, &ne, t->name));
        if (ne < 1 || ne > ((uint64_t)1 << 40) || numel > (((uint64_t)1 << 50) / ne))
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor %s has dimension %d of size %llu (too large or zero)", c->name,
                             t->name, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        numel *= ne;
    }
    AIL_CHECK(get_u32(c, &t->type, t->name));
    AIL_CHECK(get_u64(c, &t->offset, t->name));
    if (t->type >= NTYPES || !type_info[t->type].name)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor %s has unknown ggml type %u", c->name, t->name, t->type);
    const TypeInfo *ti = &type_info[t->type];
    if (t->ne[0] % ti->blck)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor %s (%s) has %lld values per row, not a multiple of the block size %d",
                         c->name, t->name, ti->name, (long long)t->ne[0], ti->blck);
    t->numel = (size_t)numel;
    t->nbytes = (size_t)(numel / (uint64_t)ti->blck * (uint64_t)ti->bytes);
    return AIL_OK;
}

static int parse(Cursor *c, GGUFFile *g) {
    const char *f = c->name;
    uint32_t magic;
    AIL_CHECK(get_u32(c, &magic, "magic"));
    if (magic != 0x46554747u)  // "GGUF"
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: not a GGUF file (bad magic 0x%08x)", f, magic);
    AIL_CHECK(get_u32(c, &g->version, "version"));
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: a big-endian GGUF file: not supported (little-endian only)", f);
    if (g->version != 2 && g->version != 3)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: GGUF version %u is not supported (2 or 3)", f, g->version);
    uint64_t nt, nkv;
    AIL_CHECK(get_u64(c, &nt, "tensor count"));
    AIL_CHECK(get_u64(c, &nkv, "metadata count"));
    // a key-value pair takes at least 8 + 1 + 4 + 1 bytes, a tensor info 8 + 1 + 4 + 8 + 4 + 8
    if (nkv > (c->size - c->pos) / 14)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: truncated: %llu metadata entries cannot fit in the file", f, (unsigned long long)nkv);
    if (nt > (c->size - c->pos) / 33)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: truncated: %llu tensors cannot fit in the file", f, (unsigned long long)nt);
    AIL_CALLOC(g->kv, nkv ? nkv : 1);
    g->nkv = (int64_t)nkv;
    for (int64_t i = 0; i < g->nkv; i++) {
        const uint8_t *s;
        uint64_t len;
        AIL_CHECK(get_str(c, &s, &len, "metadata key"));
        AIL_CHECK(dup_name(c, s, len, "metadata key", &g->kv[i].key));
        AIL_CHECK(parse_value(c, &g->kv[i]));
    }
    {
        char ***names;
        AIL_MALLOC(names, g->nkv ? g->nkv : 1);
        for (int64_t i = 0; i < g->nkv; i++) names[i] = &g->kv[i].key;
        int rc = check_unique((char **const *)names, g->nkv, f, "metadata key");
        free(names);
        AIL_CHECK(rc);
    }
    g->alignment = 32;
    const GGUFKV *al = gguf_kv(g, "general.alignment");
    if (al) {
        if (al->type != GGUF_U32) return AIL_ERROR(AIL_ERR_FORMAT, "%s: general.alignment is not a u32", f);
        g->alignment = rd32(al->data);
        if (g->alignment == 0 || (g->alignment & (g->alignment - 1)) || g->alignment > 65536)
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: general.alignment %llu is not a power of two up to 65536", f,
                             (unsigned long long)g->alignment);
    }
    AIL_CALLOC(g->tensors, nt ? nt : 1);
    g->ntensors = (int64_t)nt;
    for (int64_t i = 0; i < g->ntensors; i++) AIL_CHECK(parse_tensor_info(c, &g->tensors[i]));
    {
        char ***names;
        AIL_MALLOC(names, g->ntensors ? g->ntensors : 1);
        for (int64_t i = 0; i < g->ntensors; i++) names[i] = &g->tensors[i].name;
        int rc = check_unique((char **const *)names, g->ntensors, f, "tensor");
        free(names);
        AIL_CHECK(rc);
    }
    size_t start = c->pos + (size_t)((g->alignment - c->pos % g->alignment) % g->alignment);
    if (g->ntensors && start > c->size)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: truncated: the tensor data would start at byte %zu of %zu", f, start,
                         c->size);
    g->data_start = start;
    size_t avail = start <= c->size ? c->size - start : 0;
    for (int64_t i = 0; i < g->ntensors; i++) {
        GGUFTensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor %s: offset %llu is not a multiple of the alignment %llu", f,
                             t->name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return AIL_ERROR(AIL_ERR_FORMAT,
                             "%s: tensor %s (%zu bytes at data offset %llu) extends past the end of the file "
                             "(%zu data bytes)", f, t->name, t->nbytes, (unsigned long long)t->offset, avail);
        t->data = c->base + start + t->offset;
    }
    if (g->ntensors > 1) {
        GGUFTensor **order;
        AIL_MALLOC(order, g->ntensors);
        for (int64_t i = 0; i < g->ntensors; i++) order[i] = &g->tensors[i];
        qsort(order, (size_t)g->ntensors, sizeof *order, cmp_offset);
        int rc = AIL_OK;
        for (int64_t i = 1; i < g->ntensors && rc == AIL_OK; i++)
            if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: tensors %s and %s overlap", f, order[i - 1]->name, order[i]->name);
        free(order);
        AIL_CHECK(rc);
    }
    return AIL_OK;
}

int gguf_parse(const void *buf, size_t size, const char *name, GGUFFile *g) {
    memset(g, 0, sizeof *g);
    g->map = (void *)buf;
    g->size = size;
    Cursor c = {buf, size, 0, name};
    int rc = parse(&c, g);
    if (rc != AIL_OK) gguf_close(g);
    return rc;
}

int gguf_open(const char *path, GGUFFile *g) {
    memset(g, 0, sizeof *g);
    if (AIL_FAULT("read")) return AIL_ERROR(AIL_ERR_IO, "%s: injected read fault (AILORA_FAULT)", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return AIL_ERROR(AIL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return AIL_ERROR(AIL_ERR_IO, "%s is not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: empty file, not GGUF", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return AIL_ERROR(AIL_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    int rc = gguf_parse(map, size, path, g);
    if (rc != AIL_OK) {
        munmap(map, size);
        return rc;
    }
    g->owns_map = 1;
    size_t plen = strlen(path);
    g->path = ail_malloc(plen + 1);
    if (g->path) memcpy(g->path, path, plen + 1);
    if (!g->path) {
        gguf_close(g);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    }
    return AIL_OK;
}

void gguf_close(GGUFFile *g) {
    if (g->kv)
        for (int64_t i = 0; i < g->nkv; i++) {
            free(g->kv[i].key);
            free(g->kv[i].str_offset);
        }
    if (g->tensors)
        for (int64_t i = 0; i < g->ntensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->path);
    if (g->owns_map && g->map) munmap(g->map, g->size);
    memset(g, 0, sizeof *g);
}

const GGUFKV *gguf_kv(const GGUFFile *g, const char *key) {
    for (int64_t i = 0; i < g->nkv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const GGUFTensor *gguf_tensor(const GGUFFile *g, const char *name) {
    for (int64_t i = 0; i < g->ntensors; i++)
        if (g->tensors[i].name && !strcmp(g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

/* ---- typed metadata ---------------------------------------------------------------- */
static const char *fname(const GGUFFile *g) { return g->path ? g->path : "GGUF"; }

static int scalar_int(uint32_t type, const uint8_t *p, int64_t *out) {
    switch (type) {
    case GGUF_U8: *out = p[0]; return 1;
    case GGUF_I8: *out = (int8_t)p[0]; return 1;
    case GGUF_U16: *out = rd16(p); return 1;
    case GGUF_I16: *out = (int16_t)rd16(p); return 1;
    case GGUF_U32: *out = rd32(p); return 1;
    case GGUF_I32: *out = (int32_t)rd32(p); return 1;
    case GGUF_U64: if (rd64(p) > (uint64_t)INT64_MAX) return 0; *out = (int64_t)rd64(p); return 1;
    case GGUF_I64: *out = (int64_t)rd64(p); return 1;
    default: return 0;
    }
}

static double scalar_num(uint32_t type, const uint8_t *p) {
    int64_t i;
    if (type == GGUF_F32) {
        uint32_t u = rd32(p);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    if (type == GGUF_F64) {
        uint64_t u = rd64(p);
        double d;
        memcpy(&d, &u, 8);
        return d;
    }
    if (type == GGUF_U64) return (double)rd64(p);
    return scalar_int(type, p, &i) ? (double)i : 0.0;
}

int gguf_get_int_opt(const GGUFFile *g, const char *key, int64_t *out, int *found) {
    const GGUFKV *kv = gguf_kv(g, key);
    *found = kv != NULL;
    if (!kv) return AIL_OK;
    if (!scalar_int(kv->type, kv->data, out))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: metadata %s is a %s, expected an integer", fname(g), key,
                         value_type_name(kv->type));
    return AIL_OK;
}

int gguf_get_int(const GGUFFile *g, const char *key, int64_t *out) {
    int found;
    AIL_CHECK(gguf_get_int_opt(g, key, out, &found));
    if (!found) return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing metadata key %s", fname(g), key);
    return AIL_OK;
}

int gguf_get_num_opt(const GGUFFile *g, const char *key, double *out, int *found) {
    const GGUFKV *kv = gguf_kv(g, key);
    *found = kv != NULL;
    if (!kv) return AIL_OK;
    if (!scalar_size(kv->type) || kv->type == GGUF_BOOL)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: metadata %s is a %s, expected a number", fname(g), key,
                         value_type_name(kv->type));
    *out = scalar_num(kv->type, kv->data);
    return AIL_OK;
}

int gguf_get_bool_opt(const GGUFFile *g, const char *key, int *out, int *found) {
    const GGUFKV *kv = gguf_kv(g, key);
    *found = kv != NULL;
    if (!kv) return AIL_OK;
    if (kv->type != GGUF_BOOL)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: metadata %s is a %s, expected a bool", fname(g), key,
                         value_type_name(kv->type));
    *out = kv->data[0] != 0;
    return AIL_OK;
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i];
        if (b < 0x80) { i++; continue; }
        size_t k = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 0;
        if (!k || b > 0xF4 || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        if (b == 0xE0 && s[i + 1] < 0xA0) return 0;
        if (b == 0xED && s[i + 1] >= 0xA0) return 0;
        if (b == 0xF0 && s[i + 1] < 0x90) return 0;
        if (b == 0xF4 && s[i + 1] >= 0x90) return 0;
        i += k;
    }
    return 1;
}

int gguf_get_str_opt(const GGUFFile *g, const char *key, char **out, int *found) {
    const GGUFKV *kv = gguf_kv(g, key);
    *found = kv != NULL;
    *out = NULL;
    if (!kv) return AIL_OK;
    if (kv->type != GGUF_STRING)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: metadata %s is a %s, expected a string", fname(g), key,
                         value_type_name(kv->type));
    uint64_t len = rd64(kv->data);
    const uint8_t *s = kv->data + 8;
    if (memchr(s, 0, (size_t)len) || !utf8_valid(s, (size_t)len))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: metadata %s is not valid UTF-8 text", fname(g), key);
    *out = ail_malloc((size_t)len + 1);
    if (!*out) return AIL_ERROR(AIL_ERR_MEM, "out of memory reading %s", key);
    memcpy(*out, s, (size_t)len);
    (*out)[len] = '\0';
    return AIL_OK;
}

int gguf_get_str(const GGUFFile *g, const char *key, char **out) {
    int found;
    AIL_CHECK(gguf_get_str_opt(g, key, out, &found));
    if (!found) return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing metadata key %s", fname(g), key);
    return AIL_OK;
}

const char *gguf_array_str(const GGUFKV *kv, uint64_t i, uint64_t *len) {
    const uint8_t *p = kv->data + kv->str_offset[i];
    *len = rd64(p);
    return (const char *)p + 8;
}

int64_t gguf_array_int(const GGUFKV *kv, uint64_t i) {
    int64_t v = 0;
    scalar_int(kv->elem_type, kv->data + i * scalar_size(kv->elem_type), &v);
    return v;
}

double gguf_array_num(const GGUFKV *kv, uint64_t i) {
    return scalar_num(kv->elem_type, kv->data + i * scalar_size(kv->elem_type));
}

/* ---- dequantization ----------------------------------------------------------------- */
static float h2f(uint16_t h) { return (float)f16_to_f64(h); }

/* One row of n values. Each product and sum is its own statement: float32 rounding
 * per operation as gguf-py's numpy does (a compiler may not fuse them into an FMA). */
static void row_f32(uint32_t type, const uint8_t *src, int64_t n, float *out) {
    switch (type) {
    case GGML_F32:
        for (int64_t j = 0; j < n; j++) {
            uint32_t u = rd32(src + 4 * j);
            memcpy(&out[j], &u, 4);
        }
        break;
    case GGML_F16:
        for (int64_t j = 0; j < n; j++) out[j] = h2f(rd16(src + 2 * j));
        break;
    case GGML_BF16:
        for (int64_t j = 0; j < n; j++) {
            uint32_t u = (uint32_t)rd16(src + 2 * j) << 16;
            memcpy(&out[j], &u, 4);
        }
        break;
    case GGML_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = src + 34 * b;
            float d = h2f(rd16(blk));
            for (int j = 0; j < 32; j++) out[32 * b + j] = d * (float)(int8_t)blk[2 + j];
        }
        break;
    case GGML_Q4_0:
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = src + 18 * b;
            float d = h2f(rd16(blk));
            for (int j = 0; j < 16; j++) {
                out[32 * b + j] = d * (float)((blk[2 + j] & 0x0F) - 8);
                out[32 * b + j + 16] = d * (float)((blk[2 + j] >> 4) - 8);
            }
        }
        break;
    case GGML_Q4_1:
        for (int64_t b = 0; b < n / 32; b++) {
            const uint8_t *blk = src + 20 * b;
            float d = h2f(rd16(blk)), m = h2f(rd16(blk + 2));
            for (int j = 0; j < 16; j++) {
                volatile float lo = d * (float)(blk[4 + j] & 0x0F), hi = d * (float)(blk[4 + j] >> 4);
                out[32 * b + j] = lo + m;
                out[32 * b + j + 16] = hi + m;
            }
        }
        break;
    }
}

int gguf_tensor_rows_f32(const GGUFTensor *t, int64_t r0, int64_t nr, float *out) {
    if (!ggml_type_supported(t->type))
        return AIL_ERROR(AIL_ERR_FORMAT, "tensor %s has type %s: only F32, F16, BF16, Q8_0, Q4_0 and Q4_1 are supported",
                         t->name, ggml_type_name(t->type));
    int64_t n = t->ne[0], rows = (int64_t)(t->numel / (size_t)n);
    if (r0 < 0 || nr < 0 || r0 + nr > rows)
        return AIL_ERROR(AIL_ERR_ARG, "tensor %s: rows [%lld, %lld) out of range (%lld rows)", t->name, (long long)r0,
                         (long long)(r0 + nr), (long long)rows);
    size_t row_bytes = (size_t)(n / type_info[t->type].blck) * (size_t)type_info[t->type].bytes;
#pragma omp parallel for schedule(static) if (nr * n > 65536)
    for (int64_t r = 0; r < nr; r++) row_f32(t->type, t->data + (size_t)(r0 + r) * row_bytes, n, out + r * n);
    return AIL_OK;
}
