/* gguf.h - reader of GGUF files (llama.cpp's model format), dequantization, and the
 * import of a GGUF LLaMA model as a Hugging Face model directory.
 *
 * Format (little-endian, versions 2 and 3):
 *     "GGUF"  u32 version  u64 tensor_count  u64 kv_count
 *     kv_count x  { string key, u32 value_type, value }
 *     tensor_count x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *     padding to general.alignment (u32, default 32), then the data region
 * A string is u64 length + bytes (no NUL); an array value is u32 element type, u64
 * count, elements. ne[0] is the innermost (fastest) dimension: a GGUF matrix with
 * ne = [n, m] is the row-major HF tensor of shape (m, n) (out x in). Tensor offsets
 * are relative to the data region and multiples of the alignment.
 *
 * The reader validates every field before touching tensor data: magic, version,
 * counts against the bytes left, string lengths, value types, duplicate keys and
 * tensor names, dimensions (1..4, positive, no overflow, ne[0] a multiple of the
 * type's block), type, alignment (a power of two), offsets aligned, extents inside
 * the file and tensors not overlapping.
 *
 * Dequantization (blocks of 32 weights along ne[0], f16 scales; values in float32
 * as llama.cpp and gguf-py compute them, one rounding per operation, no FMA):
 *     Q8_0  34 bytes: f16 d, int8 q[32]              w[j] = d * q[j]
 *     Q4_0  18 bytes: f16 d, u8 qs[16]               w[j] = d * (lo(qs[j]) - 8),
 *                                                    w[j + 16] = d * (hi(qs[j]) - 8)
 *     Q4_1  20 bytes: f16 d, f16 m, u8 qs[16]        w[j] = d * lo(qs[j]) + m,
 *                                                    w[j + 16] = d * hi(qs[j]) + m
 * (lo = low nibble, hi = high nibble, j < 16) and F32, F16, BF16 converted exactly.
 */
#ifndef AILORA_GGUF_H
#define AILORA_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "ailora/dtype.h"

#define GGUF_MAX_DIMS 4

/* GGUF metadata value types. */
typedef enum {
    GGUF_U8 = 0, GGUF_I8 = 1, GGUF_U16 = 2, GGUF_I16 = 3, GGUF_U32 = 4, GGUF_I32 = 5,
    GGUF_F32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_U64 = 10,
    GGUF_I64 = 11, GGUF_F64 = 12
} GGUFValueType;

/* ggml tensor types ailora converts (others are named in errors, see ggml_type_name). */
enum { GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q8_0 = 8, GGML_BF16 = 30 };

typedef struct {
    char *key;
    uint32_t type;        /* GGUFValueType */
    uint32_t elem_type;   /* arrays: the element type */
    uint64_t count;       /* arrays: element count; scalars: 1 */
    const uint8_t *data;  /* the value (arrays: the first element) in the mapping */
    uint64_t *str_offset; /* string arrays: byte offset of element i's length field from data */
} GGUFKV;

typedef struct {
    char *name;
    int ndim;
    int64_t ne[GGUF_MAX_DIMS];  /* ne[0] innermost; unused dimensions are 1 */
    uint32_t type;              /* ggml type */
    uint64_t offset;            /* from the start of the data region */
    size_t numel, nbytes;
    const uint8_t *data;        /* in the mapping */
} GGUFTensor;

typedef struct {
    char *path;
    void *map;            /* the whole file (gguf_open) or the caller's buffer */
    size_t size;
    int owns_map;
    uint32_t version;
    uint64_t alignment;
    size_t data_start;
    int64_t nkv;
    GGUFKV *kv;           /* in file order */
    int64_t ntensors;
    GGUFTensor *tensors;  /* in file order */
} GGUFFile;

/* Maps and validates path. On error nothing stays mapped or allocated (g zeroed). */
int gguf_open(const char *path, GGUFFile *g);
/* Validates buf[size] (kept, not copied: it must outlive g); name is used in errors. */
int gguf_parse(const void *buf, size_t size, const char *name, GGUFFile *g);
void gguf_close(GGUFFile *g);

/* Lookups: NULL when absent. */
const GGUFKV *gguf_kv(const GGUFFile *g, const char *key);
const GGUFTensor *gguf_tensor(const GGUFFile *g, const char *name);

/* Typed metadata. A missing key is AIL_ERR_FORMAT "missing metadata key K" unless the
 * _opt form is used (then *found = 0 and *out untouched). Integers of any width and
 * sign convert to int64 (u64 beyond INT64_MAX is an error); numbers of any type to
 * double; a string is returned as a malloc'ed NUL-terminated copy (an embedded NUL
 * or invalid UTF-8 is an error). */
int gguf_get_int(const GGUFFile *g, const char *key, int64_t *out);
int gguf_get_int_opt(const GGUFFile *g, const char *key, int64_t *out, int *found);
int gguf_get_num_opt(const GGUFFile *g, const char *key, double *out, int *found);
int gguf_get_bool_opt(const GGUFFile *g, const char *key, int *out, int *found);
int gguf_get_str(const GGUFFile *g, const char *key, char **out);
int gguf_get_str_opt(const GGUFFile *g, const char *key, char **out, int *found);
/* Element i of an array: a string (pointer into the mapping, not NUL-terminated), an
 * integer, a number. The kv's element type must fit (checked by the caller). */
const char *gguf_array_str(const GGUFKV *kv, uint64_t i, uint64_t *len);
int64_t gguf_array_int(const GGUFKV *kv, uint64_t i);
double gguf_array_num(const GGUFKV *kv, uint64_t i);

/* "Q4_K", "F32", ...; "type N" for numbers ggml does not define. */
const char *ggml_type_name(uint32_t type);
/* 1 for F32, F16, BF16, Q8_0, Q4_0, Q4_1. */
int ggml_type_supported(uint32_t type);
/* Dequantizes rows [r0, r0 + nr) of t (a row is ne[0] values) to float32 out (nr, ne[0]).
 * AIL_ERR_FORMAT naming the tensor and its type when the type is not supported. */
int gguf_tensor_rows_f32(const GGUFTensor *t, int64_t r0, int64_t nr, float *out);

/* ---- import ---------------------------------------------------------------------
 * gguf_import writes out_dir (refused if it exists; built as out_dir.partial and
 * committed with file_commit, removed on failure) holding an HF LlamaForCausalLM:
 *   config.json              from llama.* metadata (rope scaling: linear, llama3)
 *   model.safetensors        every tensor in dtype, HF names, attn_q / attn_k rows
 *                            un-permuted from llama.cpp's RoPE layout: GGUF row
 *                            h*d + 2i + s is HF row h*d + s*d/2 + i (head h of n heads,
 *                            head_dim d, i < d/2, s in {0, 1}; n = kv heads for attn_k)
 *   tokenizer.json           tokenizer.ggml.model "gpt2": byte-level BPE (tokens,
 *                            merges; control tokens (token_type 3) as special added
 *                            tokens), pre-tokenizer from tokenizer.ggml.pre; "llama":
 *                            SentencePiece BPE (Metaspace, byte fallback), merges
 *                            derived from the scores; the JSON transformers' GGUF
 *                            loader builds from the same metadata
 *   tokenizer_config.json    chat template, bos / eos / pad / unk tokens
 *   generation_config.json   bos / eos / pad token ids
 * Only LLaMA architectures ("llama") with F32/F16/BF16/Q8_0/Q4_0/Q4_1 tensors; anything
 * else is one error line naming the key, tensor or type. */
typedef struct {
    DType dtype;    /* DTYPE_BF16 (default), DTYPE_F16 or DTYPE_F32 */
    int quiet;      /* no progress lines on stdout */
} GGUFImportOptions;

int gguf_import(const char *gguf_path, const char *out_dir, const GGUFImportOptions *opt);

#endif
