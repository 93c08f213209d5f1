/* gguf_import.c - a GGUF LLaMA model as an HF model directory (see gguf.h). */
#define _XOPEN_SOURCE 700  // nftw, pwrite

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ailora/error.h"
#include "ailora/fileio.h"
#include "ailora/gguf.h"
#include "ailora/hfmodel.h"
#include "ailora/safetensors.h"

typedef struct {
    int64_t layers, hidden, ff, heads, kv_heads, head_dim, vocab, ctx;
    double eps, theta;
    int tied;
    /* rope_scaling: 0 none, 1 linear, 2 llama3 */
    int rope_kind;
    double rope_factor, rope_low, rope_high;
    int64_t rope_orig;
} ImportConfig;

/* One output tensor: the GGUF tensor it comes from, its HF name and how rows move. */
typedef struct {
    const GGUFTensor *src;
    char name[96];
    int permute_heads;  /* > 0: undo llama.cpp's Q/K row permutation over this many heads */
} Mapping;

/* The shortest decimal that reads back as the same float32 (GGUF stores 1e-5 as the
 * float nearest to it; config.json should say 1e-05, as the original did). */
static double float_shortest(double x) {
    float f = (float)x;
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) return strtod(buf, NULL);
    }
    return (double)f;
}

static int need_int(const GGUFFile *g, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    AIL_CHECK(gguf_get_int(g, key, out));
    if (*out < lo || *out > hi)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: metadata %s = %lld outside [%lld, %lld]", g->path, key, (long long)*out,
                         (long long)lo, (long long)hi);
    return AIL_OK;
}

/* Llama 3.1-style RoPE: llama.cpp stores the per-frequency divisors as rope_freqs.weight
 * (1 for high frequencies, factor for low ones, 1 / ((1 - s) / factor + s) between,
 * s = (L / wavelen - low) / (high - low)). Recover factor, low and high (for a given
 * L = original_max_position_embeddings: only L / low and L / high are determined) and
 * check that they reproduce every divisor. */
static int rope_from_freqs(const GGUFFile *g, const GGUFTensor *t, ImportConfig *c) {
    int64_t half = c->head_dim / 2;
    if (t->type != GGML_F32 || t->ndim != 1 || t->ne[0] != half)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: rope_freqs.weight must be F32 of %lld values", g->path, (long long)half);
    float *f;
    AIL_MALLOC(f, half);
    int rc = gguf_tensor_rows_f32(t, 0, 1, f);
    double factor = 0;
    for (int64_t i = 0; i < half && rc == AIL_OK; i++) factor = f[i] > factor ? f[i] : factor;
    // least squares s_i = A / wavelen_i + B over the band entries
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int nb = 0;
    for (int64_t i = 0; i < half && rc == AIL_OK; i++) {
        double wavelen = 2 * M_PI * pow(c->theta, 2.0 * (double)i / (double)c->head_dim);
        if (f[i] > 1 + 1e-6 && f[i] < factor * (1 - 1e-6)) {
            double s = (1 / f[i] - 1 / factor) / (1 - 1 / factor), x = 1 / wavelen;
            sx += x, sy += s, sxx += x * x, sxy += x * s, nb++;
        }
    }
    if (rc == AIL_OK && (nb < 2 || !(factor > 1)))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: rope_freqs.weight is not a Llama 3 RoPE scaling (factor %g, %d values "
                       "in the smooth band; 2 needed)", g->path, factor, nb);
    if (rc == AIL_OK) {
        double A = (nb * sxy - sx * sy) / (nb * sxx - sx * sx), B = (sy - A * sx) / nb;
        double L = c->rope_orig > 0 ? (double)c->rope_orig : 8192;  // Llama 3's, when the file does not say
        double lo = -B * L / A, hi = lo + L / A;
        // snap to 3 decimals (the published values are round), when that still fits
        double slo = round(lo * 1000) / 1000, shi = round(hi * 1000) / 1000;
        for (int attempt = 0; attempt < 2; attempt++) {
            double l = attempt == 0 ? slo : lo, h = attempt == 0 ? shi : hi, worst = 0;
            for (int64_t i = 0; i < half; i++) {
                double wavelen = 2 * M_PI * pow(c->theta, 2.0 * (double)i / (double)c->head_dim), want;
                if (wavelen < L / h) want = 1;
                else if (wavelen > L / l) want = factor;
                else {
                    double s = (L / wavelen - l) / (h - l);
                    want = 1 / ((1 - s) / factor + s);
                }
                worst = fmax(worst, fabs(want - f[i]) / f[i]);
            }
            if (worst <= 1e-5) {  // float32 storage of the divisors, with margin
                c->rope_kind = 2, c->rope_factor = factor, c->rope_low = l, c->rope_high = h, c->rope_orig = (int64_t)L;
                break;
            }
            if (attempt == 1)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: rope_freqs.weight does not fit Llama 3 RoPE scaling "
                               "(relative error %.2e)", g->path, worst);
        }
    }
    free(f);
    return rc;
}

static int read_config(const GGUFFile *g, ImportConfig *c) {
    char *arch = NULL;
    AIL_CHECK(gguf_get_str(g, "general.architecture", &arch));
    int llama = !strcmp(arch, "llama");
    if (!llama) {
        int rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: architecture \"%s\" is not supported (only llama)", g->path, arch);
        free(arch);
        return rc;
    }
    free(arch);
    const int64_t big = (int64_t)1 << 24;
    AIL_CHECK(need_int(g, "llama.block_count", 1, 65536, &c->layers));
    AIL_CHECK(need_int(g, "llama.embedding_length", 1, big, &c->hidden));
    AIL_CHECK(need_int(g, "llama.feed_forward_length", 1, big, &c->ff));
    AIL_CHECK(need_int(g, "llama.attention.head_count", 1, c->hidden, &c->heads));
    AIL_CHECK(need_int(g, "llama.context_length", 1, (int64_t)1 << 30, &c->ctx));
    int found;
    c->kv_heads = c->heads;
    AIL_CHECK(gguf_get_int_opt(g, "llama.attention.head_count_kv", &c->kv_heads, &found));
    if (c->kv_heads < 1 || c->heads % c->kv_heads)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: llama.attention.head_count_kv = %lld does not divide head_count %lld",
                         g->path, (long long)c->kv_heads, (long long)c->heads);
    if (c->hidden % c->heads)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: embedding_length %lld is not a multiple of head_count %lld", g->path,
                         (long long)c->hidden, (long long)c->heads);
    c->head_dim = c->hidden / c->heads;
    int64_t v;
    AIL_CHECK(gguf_get_int_opt(g, "llama.attention.key_length", &v, &found));
    if (found) c->head_dim = v;
    int64_t vlen = c->head_dim;
    AIL_CHECK(gguf_get_int_opt(g, "llama.attention.value_length", &vlen, &found));
    if (c->head_dim < 2 || c->head_dim % 2 || vlen != c->head_dim)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: head size %lld (key) / %lld (value): need equal, even sizes", g->path,
                         (long long)c->head_dim, (long long)vlen);
    AIL_CHECK(gguf_get_int_opt(g, "llama.rope.dimension_count", &v, &found));
    if (found && v != c->head_dim)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: llama.rope.dimension_count = %lld: RoPE on part of a head (%lld) is not "
                         "supported", g->path, (long long)v, (long long)c->head_dim);
    AIL_CHECK(gguf_get_num_opt(g, "llama.attention.layer_norm_rms_epsilon", &c->eps, &found));
    if (!found) return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing metadata key llama.attention.layer_norm_rms_epsilon", g->path);
    if (!(c->eps > 0 && c->eps < 1))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: llama.attention.layer_norm_rms_epsilon = %g", g->path, c->eps);
    c->eps = float_shortest(c->eps);
    c->theta = 10000.0;
    AIL_CHECK(gguf_get_num_opt(g, "llama.rope.freq_base", &c->theta, &found));
    if (!(c->theta > 1 && isfinite(c->theta)))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: llama.rope.freq_base = %g", g->path, c->theta);
    c->theta = float_shortest(c->theta);

    // RoPE scaling: "none", "linear" (factor), "llama3" (factor, low/high frequency factors)
    char *type = NULL;
    AIL_CHECK(gguf_get_str_opt(g, "llama.rope.scaling.type", &type, &found));
    double scale_linear = 0;
    int have_linear;
    AIL_CHECK(gguf_get_num_opt(g, "llama.rope.scale_linear", &scale_linear, &have_linear));  // older files
    AIL_CHECK(gguf_get_int_opt(g, "llama.rope.scaling.original_context_length", &c->rope_orig, &found));
    int rc = AIL_OK;
    if (type && strcmp(type, "none") && strcmp(type, "linear") && strcmp(type, "llama3"))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: llama.rope.scaling.type \"%s\" is not supported (none, linear, llama3)",
                       g->path, type);
    if (rc == AIL_OK && type && strcmp(type, "none")) {
        c->rope_kind = strcmp(type, "linear") ? 2 : 1;
        rc = gguf_get_num_opt(g, "llama.rope.scaling.factor", &c->rope_factor, &found);
        if (rc == AIL_OK && (!found || !(c->rope_factor >= 1 && isfinite(c->rope_factor))))
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: llama.rope.scaling.factor missing or below 1", g->path);
        if (rc == AIL_OK && c->rope_kind == 2) {
            int f1 = 0, f2 = 0;
            c->rope_low = 1, c->rope_high = 4;
            rc = gguf_get_num_opt(g, "llama.rope.scaling.low_freq_factor", &c->rope_low, &f1);
            if (rc == AIL_OK) rc = gguf_get_num_opt(g, "llama.rope.scaling.high_freq_factor", &c->rope_high, &f2);
            if (rc == AIL_OK && (!f1 || !f2 || c->rope_orig < 1 || !(c->rope_high > c->rope_low)))
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: llama3 RoPE scaling needs llama.rope.scaling.low_freq_factor < "
                               "high_freq_factor and original_context_length", g->path);
        }
    } else if (rc == AIL_OK && !type && have_linear && scale_linear != 1.0) {
        c->rope_kind = 1, c->rope_factor = scale_linear;
        if (!(scale_linear >= 1 && isfinite(scale_linear)))
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: llama.rope.scale_linear = %g", g->path, scale_linear);
    }
    free(type);
    AIL_CHECK(rc);
    const GGUFTensor *rf = gguf_tensor(g, "rope_freqs.weight");
    if (rf && c->rope_kind) return AIL_ERROR(AIL_ERR_FORMAT, "%s: both rope_freqs.weight and llama.rope.scaling.type", g->path);
    if (rf) AIL_CHECK(rope_from_freqs(g, rf, c));
    return AIL_OK;
}

/* n bytes of s as a NUL-terminated copy (ail_malloc: a fault point like every allocation). */
static char *dup_n(const char *s, size_t n) {
    char *p = ail_malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* GGUF -> HF names and the shape each must have (GGUF order: ne[0] first). */
static int add_mapping(const GGUFFile *g, Mapping *m, int *n, const char *gname, const char *hname, int64_t ne0,
                       int64_t ne1, int permute, int optional) {
    const GGUFTensor *t = gguf_tensor(g, gname);
    if (!t) {
        if (optional) return AIL_OK;
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing tensor %s", g->path, gname);
    }
    int want_nd = ne1 ? 2 : 1;
    int nd = t->ndim;
    while (nd > 1 && t->ne[nd - 1] == 1) nd--;  // trailing unit dimensions
    if (nd != want_nd || t->ne[0] != ne0 || (ne1 && t->ne[1] != ne1))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor %s has shape [%lld, %lld] (GGUF order), expected [%lld, %lld]",
                         g->path, gname, (long long)t->ne[0], (long long)(t->ndim > 1 ? t->ne[1] : 1),
                         (long long)ne0, (long long)(ne1 ? ne1 : 1));
    if (!ggml_type_supported(t->type))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor %s has type %s: only F32, F16, BF16, Q8_0, Q4_0 and Q4_1 are "
                         "supported", g->path, gname, ggml_type_name(t->type));
    m[*n].src = t;
    snprintf(m[*n].name, sizeof m[*n].name, "%s", hname);
    m[*n].permute_heads = permute;
    (*n)++;
    return AIL_OK;
}

static int build_mappings(const GGUFFile *g, const ImportConfig *c, Mapping **out, int *count) {
    int cap = (int)(9 * c->layers + 3);
    Mapping *m;
    AIL_CALLOC(m, cap);
    int n = 0, rc = AIL_OK;
    int64_t H = c->hidden, q = c->heads * c->head_dim, kv = c->kv_heads * c->head_dim;
    rc = add_mapping(g, m, &n, "token_embd.weight", "model.embed_tokens.weight", H, c->vocab, 0, 0);
    for (int64_t l = 0; l < c->layers && rc == AIL_OK; l++) {
        struct { const char *g, *h; int64_t ne0, ne1; int perm; } rows[] = {
            {"attn_norm", "input_layernorm", H, 0, 0},
            {"attn_q", "self_attn.q_proj", H, q, (int)c->heads},
            {"attn_k", "self_attn.k_proj", H, kv, (int)c->kv_heads},
            {"attn_v", "self_attn.v_proj", H, kv, 0},
            {"attn_output", "self_attn.o_proj", q, H, 0},
            {"ffn_norm", "post_attention_layernorm", H, 0, 0},
            {"ffn_gate", "mlp.gate_proj", H, c->ff, 0},
            {"ffn_up", "mlp.up_proj", H, c->ff, 0},
            {"ffn_down", "mlp.down_proj", c->ff, H, 0},
        };
        for (size_t r = 0; r < sizeof rows / sizeof *rows && rc == AIL_OK; r++) {
            char gn[96], hn[96];
            snprintf(gn, sizeof gn, "blk.%lld.%s.weight", (long long)l, rows[r].g);
            snprintf(hn, sizeof hn, "model.layers.%lld.%s.weight", (long long)l, rows[r].h);
            rc = add_mapping(g, m, &n, gn, hn, rows[r].ne0, rows[r].ne1, rows[r].perm, 0);
        }
    }
    if (rc == AIL_OK) rc = add_mapping(g, m, &n, "output_norm.weight", "model.norm.weight", H, 0, 0, 0);
    int before = n;
    if (rc == AIL_OK) rc = add_mapping(g, m, &n, "output.weight", "lm_head.weight", H, c->vocab, 0, 1);
    *count = n;
    *out = m;
    if (rc != AIL_OK) return rc;
    // every tensor of the file has a place (rope_freqs became config.json's rope_scaling)
    int64_t used = n + (gguf_tensor(g, "rope_freqs.weight") ? 1 : 0);
    if (used != g->ntensors)
        for (int64_t i = 0; i < g->ntensors; i++) {
            int seen = !strcmp(g->tensors[i].name, "rope_freqs.weight");
            for (int k = 0; k < n && !seen; k++) seen = m[k].src == &g->tensors[i];
            if (!seen)
                return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor %s is not part of a LLaMA model (attention or MLP biases "
                                 "and other extras are not supported)", g->path, g->tensors[i].name);
        }
    (void)before;
    return AIL_OK;
}

/* ---- tokenizer ----------------------------------------------------------------------- */
/* GPT-2's byte alphabet: bytes 33..126, 161..172, 174..255 stand for themselves, the
 * others for U+0100 onwards in order. */
static int in_byte_alphabet(uint32_t cp) {
    return (cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255) || (cp >= 256 && cp < 256 + 68);
}

static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
    unsigned char b = s[*i];
    int k = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    if (*i + (size_t)k > n) k = (int)(n - *i);
    uint32_t cp = k == 1 ? b : k == 2 ? b & 0x1F : k == 3 ? b & 0x0F : b & 0x07;
    for (int j = 1; j < k; j++) cp = cp << 6 | (s[*i + j] & 0x3F);
    *i += (size_t)k;
    return cp;
}

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    out[0] = (char)(0xE0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
}

/* A token as the vocabulary spells it: unchanged when every character is in the byte
 * alphabet, else each UTF-8 byte respelled (as transformers' GGUF reader does). */
static char *byte_level_spelling(const char *s, uint64_t len) {
    int ok = 1;
    for (size_t i = 0; i < len && ok;) ok = in_byte_alphabet(utf8_next((const unsigned char *)s, len, &i));
    char *out = ail_malloc(ok ? len + 1 : 3 * len + 1);
    if (!out) return NULL;
    if (ok) {
        memcpy(out, s, len);
        out[len] = '\0';
        return out;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned b = (unsigned char)s[i];
        uint32_t cp = b;
        if (!in_byte_alphabet(b)) {
            uint32_t k = 0;  // rank of b among the bytes outside the printable ranges
            for (unsigned x = 0; x < b; x++) k += !in_byte_alphabet(x);
            cp = 256 + k;
        }
        o += utf8_put(cp, out + o);
    }
    out[o] = '\0';
    return out;
}

static int valid_text(const char *s, uint64_t len) {
    if (memchr(s, 0, (size_t)len)) return 0;
    for (size_t i = 0; i < len;) {
        unsigned char b = (unsigned char)s[i];
        size_t k = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 0;
        if (!k || b > 0xF4 || i + k > len) return 0;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

/* Split patterns of tokenizer.ggml.pre values (as llama.cpp and transformers use them). */
static const char *const llama3_split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static cJSON *byte_level(int use_regex, int prefix_space) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", prefix_space);
    cJSON_AddBoolToObject(o, "trim_offsets", 1);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

typedef struct {
    int64_t bos, eos, pad, unk;  /* -1: absent */
    int add_bos, add_eos;
    char *bos_s, *eos_s, *pad_s, *unk_s;
} Special;

static cJSON *template_processing(const Special *sp) {
    cJSON *pp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(pp, "single"), *pair = cJSON_AddArrayToObject(pp, "pair");
    cJSON *specials = cJSON_AddObjectToObject(pp, "special_tokens");
    for (int part = 0; part < 2; part++) {
        cJSON *arr = part ? pair : single;
        for (int s = 0; s <= part; s++) {
            if (sp->add_bos && sp->bos_s) {
                cJSON *e = cJSON_CreateObject(), *in = cJSON_AddObjectToObject(e, "SpecialToken");
                cJSON_AddStringToObject(in, "id", sp->bos_s);
                cJSON_AddNumberToObject(in, "type_id", s);
                cJSON_AddItemToArray(arr, e);
            }
            cJSON *e = cJSON_CreateObject(), *in = cJSON_AddObjectToObject(e, "Sequence");
            cJSON_AddStringToObject(in, "id", s ? "B" : "A");
            cJSON_AddNumberToObject(in, "type_id", s);
            cJSON_AddItemToArray(arr, e);
            if (sp->add_eos && sp->eos_s) {
                cJSON *x = cJSON_CreateObject(), *xi = cJSON_AddObjectToObject(x, "SpecialToken");
                cJSON_AddStringToObject(xi, "id", sp->eos_s);
                cJSON_AddNumberToObject(xi, "type_id", s);
                cJSON_AddItemToArray(arr, x);
            }
        }
    }
    int64_t ids[2] = {sp->add_bos ? sp->bos : -1, sp->add_eos ? sp->eos : -1};
    char *names[2] = {sp->bos_s, sp->eos_s};
    for (int k = 0; k < 2; k++) {
        if (ids[k] < 0 || !names[k] || cJSON_GetObjectItemCaseSensitive(specials, names[k])) continue;
        cJSON *o = cJSON_AddObjectToObject(specials, names[k]);
        cJSON_AddStringToObject(o, "id", names[k]);
        cJSON_AddItemToObject(o, "ids", cJSON_CreateIntArray((const int[]){(int)ids[k]}, 1));
        cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
        cJSON_AddItemToArray(toks, cJSON_CreateString(names[k]));
    }
    return pp;
}

static int write_json(const char *dir, const char *file, cJSON *root) {
    if (!root) return AIL_ERROR(AIL_ERR_MEM, "out of memory building %s", file);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc = json_file_write(path, root);
    cJSON_Delete(root);
    return rc;
}

/* ---- SentencePiece BPE (tokenizer.ggml.model = llama) ------------------------------
 * The file has tokens and scores but (usually) no merges: as transformers does, every
 * split of a token into two vocabulary pieces is a merge, ranked by the token's score
 * (higher first), then longer left and right pieces first, ties in vocabulary order. */
typedef struct {
    const char *s;
    uint64_t len;
    int64_t idx;  /* the last token with this spelling, -1: empty slot */
    int seen;     /* merges of this spelling generated */
} Slot;

typedef struct {
    Slot *slots;
    uint64_t mask;
} Vocab;

static uint64_t hash_bytes(const char *s, uint64_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static Slot *vocab_slot(const Vocab *v, const char *s, uint64_t n) {
    for (uint64_t h = hash_bytes(s, n) & v->mask;; h = (h + 1) & v->mask) {
        Slot *e = &v->slots[h];
        if (e->idx < 0 || (e->len == n && !memcmp(e->s, s, n))) return e;
    }
}

typedef struct {
    int64_t l, r, seq;
    double score;
    int len_l, len_r;
} Merge;

static int cmp_local(const void *a, const void *b) {
    const Merge *x = a, *y = b;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

static int cmp_rank(const void *a, const void *b) {
    const Merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->len_l != y->len_l) return x->len_l > y->len_l ? -1 : 1;
    if (x->len_r != y->len_r) return x->len_r > y->len_r ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);  // stable: earlier first
}

static int utf8_count(const char *s, uint64_t n) {
    int k = 0;
    for (uint64_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static int sp_merges(const GGUFFile *g, const GGUFKV *tok, const GGUFKV *scores, cJSON *merges) {
    uint64_t n = tok->count, cap = 16;
    while (cap < 2 * n) cap <<= 1;
    Vocab v = {0};
    v.mask = cap - 1;
    AIL_MALLOC(v.slots, cap);
    for (uint64_t i = 0; i < cap; i++) v.slots[i].idx = -1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len;
        const char *s = gguf_array_str(tok, i, &len);
        Slot *e = vocab_slot(&v, s, len);
        *e = (Slot){s, len, (int64_t)i, 0};
    }
    Merge *m = NULL;
    size_t nm = 0, mcap = 0;
    int rc = AIL_OK;
    for (uint64_t i = 0; i < n && rc == AIL_OK; i++) {
        uint64_t len;
        const char *s = gguf_array_str(tok, i, &len);
        Slot *self = vocab_slot(&v, s, len);
        // a repeated spelling keeps its first place (a Python dict), with the last score
        if (self->seen) continue;
        self->seen = 1;
        size_t start = nm;
        double score = gguf_array_num(scores, (uint64_t)self->idx);
        for (uint64_t k = 1; k < len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue;  // split at characters
            Slot *l = vocab_slot(&v, s, k), *r = vocab_slot(&v, s + k, len - k);
            if (l->idx < 0 || r->idx < 0) continue;
            if (nm == mcap) {
                mcap = mcap ? 2 * mcap : 1024;
                Merge *t = ail_realloc(m, sizeof *m * mcap);
                if (!t) {
                    rc = AIL_ERROR(AIL_ERR_MEM, "out of memory generating merges");
                    break;
                }
                m = t;
            }
            m[nm] = (Merge){l->idx, r->idx, 0, score, utf8_count(s, k), utf8_count(s + k, len - k)};
            nm++;
        }
        if (nm > start) qsort(m + start, nm - start, sizeof *m, cmp_local);
    }
    for (size_t k = 0; k < nm; k++) m[k].seq = (int64_t)k;
    if (rc == AIL_OK && nm) qsort(m, nm, sizeof *m, cmp_rank);
    for (size_t k = 0; k < nm && rc == AIL_OK; k++) {
        cJSON *pair = cJSON_CreateArray();
        uint64_t ll, lr;
        const char *ls = gguf_array_str(tok, (uint64_t)m[k].l, &ll), *rs = gguf_array_str(tok, (uint64_t)m[k].r, &lr);
        char *a = dup_n(ls, (size_t)ll), *b = dup_n(rs, (size_t)lr);
        if (!pair || !a || !b) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
        else {
            cJSON_AddItemToArray(pair, cJSON_CreateString(a));
            cJSON_AddItemToArray(pair, cJSON_CreateString(b));
            cJSON_AddItemToArray(merges, pair);
        }
        free(a);
        free(b);
    }
    free(m);
    free(v.slots);
    (void)g;
    return rc;
}

static int write_sp_tokenizer(const GGUFFile *g, const char *dir, Special *sp) {
    const GGUFKV *tok = gguf_kv(g, "tokenizer.ggml.tokens"), *sc = gguf_kv(g, "tokenizer.ggml.scores");
    const GGUFKV *tt = gguf_kv(g, "tokenizer.ggml.token_type");
    if (!tok || tok->type != GGUF_ARRAY || tok->elem_type != GGUF_STRING)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing metadata key tokenizer.ggml.tokens (an array of strings)", g->path);
    if (!sc || sc->type != GGUF_ARRAY || sc->elem_type != GGUF_F32 || sc->count != tok->count)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing metadata key tokenizer.ggml.scores (f32, one per token)", g->path);
    if (tt && (tt->type != GGUF_ARRAY || !(tt->elem_type == GGUF_I32 || tt->elem_type == GGUF_U32) ||
               tt->count != tok->count))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tokenizer.ggml.token_type is not an i32 array of one entry per token",
                         g->path);
    if (gguf_kv(g, "tokenizer.ggml.merges"))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: a SentencePiece vocabulary with tokenizer.ggml.merges is not supported",
                         g->path);
    int rc = AIL_OK;
    for (uint64_t i = 0; i < tok->count && rc == AIL_OK; i++) {
        uint64_t len;
        const char *s = gguf_array_str(tok, i, &len);
        if (!valid_text(s, len) || len == 0)
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: token %llu is empty or not valid UTF-8 text", g->path,
                           (unsigned long long)i);
    }
    AIL_CHECK(rc);
    cJSON *root = cJSON_CreateObject();
    if (!root) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Metaspace");
    cJSON_AddStringToObject(pre, "replacement", "\xe2\x96\x81");
    cJSON_AddStringToObject(pre, "prepend_scheme", "first");
    cJSON_AddBoolToObject(pre, "split", 0);
    cJSON_AddItemToObject(root, "post_processor", template_processing(sp));
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder"), *list = cJSON_AddArrayToObject(dec, "decoders");
    cJSON_AddStringToObject(dec, "type", "Sequence");
    cJSON *d1 = cJSON_CreateObject(), *pat = cJSON_AddObjectToObject(d1, "pattern");
    cJSON_AddStringToObject(d1, "type", "Replace");
    cJSON_AddStringToObject(pat, "String", "\xe2\x96\x81");
    cJSON_AddStringToObject(d1, "content", " ");
    cJSON_AddItemToArray(list, d1);
    const char *plain[] = {"ByteFallback", "Fuse"};
    for (int k = 0; k < 2; k++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "type", plain[k]);
        cJSON_AddItemToArray(list, d);
    }
    cJSON *d4 = cJSON_CreateObject();
    cJSON_AddStringToObject(d4, "type", "Strip");
    cJSON_AddStringToObject(d4, "content", " ");
    cJSON_AddNumberToObject(d4, "start", 1);
    cJSON_AddNumberToObject(d4, "stop", 0);
    cJSON_AddItemToArray(list, d4);
    cJSON *bpe = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(bpe, "type", "BPE");
    cJSON_AddNullToObject(bpe, "dropout");
    cJSON_AddNullToObject(bpe, "unk_token");
    cJSON_AddNullToObject(bpe, "continuing_subword_prefix");
    cJSON_AddNullToObject(bpe, "end_of_word_suffix");
    cJSON_AddBoolToObject(bpe, "fuse_unk", 1);
    cJSON_AddBoolToObject(bpe, "byte_fallback", 1);
    cJSON_AddBoolToObject(bpe, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(bpe, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(bpe, "merges");
    for (uint64_t i = 0; i < tok->count && rc == AIL_OK; i++) {
        uint64_t len;
        const char *raw = gguf_array_str(tok, i, &len);
        char *s = dup_n(raw, (size_t)len);
        if (!s) {
            rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
            break;
        }
        cJSON *old = cJSON_GetObjectItemCaseSensitive(vocab, s);
        if (old) cJSON_SetNumberValue(old, (double)i);  // a repeated spelling: the last id
        else cJSON_AddNumberToObject(vocab, s, (double)i);
        // bos / eos / unk / pad and control tokens: special; user-defined ones: plain added
        int type = tt ? (int)gguf_array_int(tt, i) : 1;
        int64_t id = (int64_t)i;
        int special = type == 3 || id == sp->bos || id == sp->eos || id == sp->unk || id == sp->pad;
        if (special || type == 4) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", s);
            cJSON_AddBoolToObject(a, "single_word", 0);
            cJSON_AddBoolToObject(a, "lstrip", 0);
            cJSON_AddBoolToObject(a, "rstrip", 0);
            cJSON_AddBoolToObject(a, "normalized", 0);
            cJSON_AddBoolToObject(a, "special", special);
            cJSON_AddItemToArray(added, a);
        }
        free(s);
    }
    if (rc == AIL_OK) rc = sp_merges(g, tok, sc, merges);
    if (rc != AIL_OK) {
        cJSON_Delete(root);
        return rc;
    }
    return write_json(dir, "tokenizer.json", root);
}

static int write_tokenizer(const GGUFFile *g, const ImportConfig *c, const char *dir, Special *sp) {
    char *model = NULL, *pre = NULL;
    int found;
    AIL_CHECK(gguf_get_str(g, "tokenizer.ggml.model", &model));
    int gpt2 = !strcmp(model, "gpt2"), llama = !strcmp(model, "llama");
    int rc = gpt2 || llama ? AIL_OK
                           : AIL_ERROR(AIL_ERR_FORMAT, "%s: tokenizer.ggml.model \"%s\" is not supported (gpt2: "
                                       "byte-level BPE, llama: SentencePiece BPE)", g->path, model);
    free(model);
    AIL_CHECK(rc);
    if (llama) return write_sp_tokenizer(g, dir, sp);
    AIL_CHECK(gguf_get_str_opt(g, "tokenizer.ggml.pre", &pre, &found));
    int split = 0;  // 0: GPT-2's byte-level regex, 1: Llama 3's split pattern
    if (pre && (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") ||
                !strcmp(pre, "smaug-bpe") || !strcmp(pre, "falcon3") || !strcmp(pre, "dbrx")))
        split = 1;
    else if (pre && strcmp(pre, "default") && strcmp(pre, "gpt2") && strcmp(pre, "gpt-2") && strcmp(pre, "smollm"))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: tokenizer.ggml.pre \"%s\" is not supported (default, gpt2, smollm, "
                       "llama-bpe and its aliases)", g->path, pre);
    free(pre);
    AIL_CHECK(rc);
    const GGUFKV *tok = gguf_kv(g, "tokenizer.ggml.tokens"), *mer = gguf_kv(g, "tokenizer.ggml.merges");
    const GGUFKV *tt = gguf_kv(g, "tokenizer.ggml.token_type");
    if (!tok || tok->type != GGUF_ARRAY || tok->elem_type != GGUF_STRING)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing metadata key tokenizer.ggml.tokens (an array of strings)", g->path);
    if (!mer || mer->type != GGUF_ARRAY || mer->elem_type != GGUF_STRING)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing metadata key tokenizer.ggml.merges (an array of strings)", g->path);
    if (tt && (tt->type != GGUF_ARRAY || !(tt->elem_type == GGUF_I32 || tt->elem_type == GGUF_U32) ||
               tt->count != tok->count))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tokenizer.ggml.token_type is not an i32 array of one entry per token",
                         g->path);

    cJSON *root = cJSON_CreateObject();
    if (!root) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON_AddNullToObject(root, "normalizer");
    if (split) {
        cJSON *seq = cJSON_CreateObject(), *list = cJSON_CreateArray(), *sp1 = cJSON_CreateObject();
        cJSON_AddStringToObject(seq, "type", "Sequence");
        cJSON_AddStringToObject(sp1, "type", "Split");
        cJSON *pat = cJSON_AddObjectToObject(sp1, "pattern");
        cJSON_AddStringToObject(pat, "Regex", llama3_split);
        cJSON_AddStringToObject(sp1, "behavior", "Isolated");
        cJSON_AddBoolToObject(sp1, "invert", 0);
        cJSON_AddItemToArray(list, sp1);
        cJSON_AddItemToArray(list, byte_level(0, 0));
        cJSON_AddItemToObject(seq, "pretokenizers", list);
        cJSON_AddItemToObject(root, "pre_tokenizer", seq);
    } else {
        cJSON_AddItemToObject(root, "pre_tokenizer", byte_level(1, 0));
    }
    cJSON_AddItemToObject(root, "post_processor", template_processing(sp));
    cJSON_AddItemToObject(root, "decoder", byte_level(1, 1));
    cJSON *bpe = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(bpe, "type", "BPE");
    cJSON_AddNullToObject(bpe, "dropout");
    cJSON_AddNullToObject(bpe, "unk_token");
    cJSON_AddStringToObject(bpe, "continuing_subword_prefix", "");
    cJSON_AddStringToObject(bpe, "end_of_word_suffix", "");
    cJSON_AddBoolToObject(bpe, "fuse_unk", 0);
    cJSON_AddBoolToObject(bpe, "byte_fallback", 0);
    cJSON_AddBoolToObject(bpe, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(bpe, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(bpe, "merges");
    for (uint64_t i = 0; i < tok->count && rc == AIL_OK; i++) {
        uint64_t len;
        const char *s = gguf_array_str(tok, i, &len);
        if (!valid_text(s, len)) {
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: token %llu is not valid UTF-8 text", g->path, (unsigned long long)i);
            break;
        }
        char *spelled = byte_level_spelling(s, len);
        if (!spelled) {
            rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
            break;
        }
        cJSON_AddNumberToObject(vocab, spelled, (double)i);
        int type = tt ? (int)gguf_array_int(tt, i) : 1;
        // control tokens whose spelling is byte-level become special added tokens,
        // user-defined ones plain added tokens (as transformers' GGUF reader does)
        int byte_spelled = strlen(spelled) == len && !memcmp(spelled, s, (size_t)len);
        if ((type == 3 && byte_spelled) || type == 4) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", spelled);
            cJSON_AddBoolToObject(a, "single_word", 0);
            cJSON_AddBoolToObject(a, "lstrip", 0);
            cJSON_AddBoolToObject(a, "rstrip", 0);
            cJSON_AddBoolToObject(a, "normalized", 0);
            cJSON_AddBoolToObject(a, "special", type == 3);
            cJSON_AddItemToArray(added, a);
        }
        free(spelled);
    }
    for (uint64_t i = 0; i < mer->count && rc == AIL_OK; i++) {
        uint64_t len;
        const char *s = gguf_array_str(mer, i, &len);
        const char *space = memchr(s, ' ', (size_t)len);
        if (!space || space == s || space == s + len - 1 || memchr(space + 1, ' ', (size_t)(s + len - space - 1)) ||
            !valid_text(s, len)) {
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: merge %llu is not \"LEFT RIGHT\"", g->path, (unsigned long long)i);
            break;
        }
        cJSON *pair = cJSON_CreateArray();
        char *l = dup_n(s, (size_t)(space - s)), *r = dup_n(space + 1, (size_t)(s + len - space - 1));
        if (!pair || !l || !r) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
        else {
            cJSON_AddItemToArray(pair, cJSON_CreateString(l));
            cJSON_AddItemToArray(pair, cJSON_CreateString(r));
            cJSON_AddItemToArray(merges, pair);
        }
        free(l);
        free(r);
    }
    if (rc != AIL_OK) {
        cJSON_Delete(root);
        return rc;
    }
    (void)c;
    return write_json(dir, "tokenizer.json", root);
}

static int read_special(const GGUFFile *g, const ImportConfig *c, Special *sp) {
    const GGUFKV *tok = gguf_kv(g, "tokenizer.ggml.tokens");
    if (!tok || tok->type != GGUF_ARRAY || tok->elem_type != GGUF_STRING)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing metadata key tokenizer.ggml.tokens (an array of strings)", g->path);
    const char *keys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                           "tokenizer.ggml.padding_token_id", "tokenizer.ggml.unknown_token_id"};
    int64_t *ids[4] = {&sp->bos, &sp->eos, &sp->pad, &sp->unk};
    char **names[4] = {&sp->bos_s, &sp->eos_s, &sp->pad_s, &sp->unk_s};
    for (int k = 0; k < 4; k++) {
        int found;
        *ids[k] = -1;
        AIL_CHECK(gguf_get_int_opt(g, keys[k], ids[k], &found));
        if (!found) {
            *ids[k] = -1;
            continue;
        }
        if (*ids[k] < 0 || (uint64_t)*ids[k] >= tok->count)
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: %s = %lld is not a token id (vocabulary of %llu)", g->path, keys[k],
                             (long long)*ids[k], (unsigned long long)tok->count);
        uint64_t len;
        const char *s = gguf_array_str(tok, (uint64_t)*ids[k], &len);
        if (!valid_text(s, len)) return AIL_ERROR(AIL_ERR_FORMAT, "%s: token %lld is not valid UTF-8", g->path, (long long)*ids[k]);
        *names[k] = dup_n(s, (size_t)len);
        if (!*names[k]) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    }
    int found;
    // llama.cpp adds BOS to a SentencePiece vocabulary unless the file says otherwise
    char *model = NULL;
    AIL_CHECK(gguf_get_str_opt(g, "tokenizer.ggml.model", &model, &found));
    sp->add_bos = model && !strcmp(model, "llama"), sp->add_eos = 0;
    free(model);
    AIL_CHECK(gguf_get_bool_opt(g, "tokenizer.ggml.add_bos_token", &sp->add_bos, &found));
    AIL_CHECK(gguf_get_bool_opt(g, "tokenizer.ggml.add_eos_token", &sp->add_eos, &found));
    (void)c;
    return AIL_OK;
}

static int write_tokenizer_config(const GGUFFile *g, const ImportConfig *c, const char *dir, const Special *sp) {
    char *tmpl = NULL;
    int found;
    AIL_CHECK(gguf_get_str_opt(g, "tokenizer.chat_template", &tmpl, &found));
    cJSON *root = cJSON_CreateObject();
    cJSON_AddBoolToObject(root, "add_bos_token", sp->add_bos);
    cJSON_AddBoolToObject(root, "add_eos_token", sp->add_eos);
    const char *keys[4] = {"bos_token", "eos_token", "pad_token", "unk_token"};
    const char *vals[4] = {sp->bos_s, sp->eos_s, sp->pad_s, sp->unk_s};
    for (int k = 0; k < 4; k++)
        if (vals[k]) cJSON_AddStringToObject(root, keys[k], vals[k]);
    if (tmpl) cJSON_AddStringToObject(root, "chat_template", tmpl);
    cJSON_AddBoolToObject(root, "clean_up_tokenization_spaces", 0);
    cJSON_AddNumberToObject(root, "model_max_length", (double)c->ctx);
    cJSON_AddStringToObject(root, "tokenizer_class", "PreTrainedTokenizerFast");
    free(tmpl);
    return write_json(dir, "tokenizer_config.json", root);
}

static int write_configs(const ImportConfig *c, const char *dir, const Special *sp, DType dtype) {
    cJSON *root = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(root, "model_type", "llama");
    cJSON_AddNumberToObject(root, "hidden_size", (double)c->hidden);
    cJSON_AddNumberToObject(root, "intermediate_size", (double)c->ff);
    cJSON_AddNumberToObject(root, "num_hidden_layers", (double)c->layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", (double)c->heads);
    cJSON_AddNumberToObject(root, "num_key_value_heads", (double)c->kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", (double)c->head_dim);
    cJSON_AddNumberToObject(root, "vocab_size", (double)c->vocab);
    cJSON_AddNumberToObject(root, "max_position_embeddings", (double)c->ctx);
    cJSON_AddNumberToObject(root, "rms_norm_eps", c->eps);
    cJSON_AddNumberToObject(root, "rope_theta", c->theta);
    if (c->rope_kind) {
        cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", c->rope_kind == 1 ? "linear" : "llama3");
        cJSON_AddNumberToObject(rs, "factor", c->rope_factor);
        if (c->rope_kind == 2) {
            cJSON_AddNumberToObject(rs, "low_freq_factor", c->rope_low);
            cJSON_AddNumberToObject(rs, "high_freq_factor", c->rope_high);
            cJSON_AddNumberToObject(rs, "original_max_position_embeddings", (double)c->rope_orig);
        }
    }
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tied);
    cJSON_AddBoolToObject(root, "attention_bias", 0);
    cJSON_AddBoolToObject(root, "mlp_bias", 0);
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddNumberToObject(root, "initializer_range", 0.02);
    if (sp->bos >= 0) cJSON_AddNumberToObject(root, "bos_token_id", (double)sp->bos);
    if (sp->eos >= 0) cJSON_AddNumberToObject(root, "eos_token_id", (double)sp->eos);
    if (sp->pad >= 0) cJSON_AddNumberToObject(root, "pad_token_id", (double)sp->pad);
    cJSON_AddStringToObject(root, "torch_dtype", dtype_torch_name(dtype));
    AIL_CHECK(write_json(dir, "config.json", root));
    cJSON *gen = cJSON_CreateObject();
    if (sp->bos >= 0) cJSON_AddNumberToObject(gen, "bos_token_id", (double)sp->bos);
    if (sp->eos >= 0) cJSON_AddNumberToObject(gen, "eos_token_id", (double)sp->eos);
    if (sp->pad >= 0) cJSON_AddNumberToObject(gen, "pad_token_id", (double)sp->pad);
    return write_json(dir, "generation_config.json", gen);
}

/* ---- weights --------------------------------------------------------------------------- */
static int write_weights(const GGUFFile *g, const Mapping *m, int n, const char *dir, DType dtype, int quiet) {
    char path[4300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafeTensorSpec *specs;
    size_t *offsets, file_size, most = 0, most_perm = 0;  // value buffers: the largest tensor (of q/k)
    AIL_CALLOC(specs, n);
    offsets = ail_malloc(sizeof *offsets * (size_t)n);
    if (!offsets) {
        free(specs);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        const GGUFTensor *t = m[i].src;
        specs[i].name = m[i].name;
        specs[i].dtype = dtype;
        int nd = t->ndim;
        while (nd > 1 && t->ne[nd - 1] == 1) nd--;
        specs[i].ndim = nd;
        for (int d = 0; d < nd; d++) specs[i].shape[d] = t->ne[nd - 1 - d];  // reversed: (rows, cols)
        most = t->numel > most ? t->numel : most;
        if (m[i].permute_heads && t->numel > most_perm) most_perm = t->numel;
    }
    const char *mk[] = {"source"}, *mv[] = {"gguf"};
    int rc = safetensors_write_header(path, n, specs, 1, mk, mv, offsets, &file_size);
    float *f = NULL, *perm = NULL;
    void *out = NULL;
    if (rc == AIL_OK) {
        f = ail_malloc(sizeof *f * most);
        perm = most_perm ? ail_malloc(sizeof *perm * most_perm) : NULL;
        out = ail_malloc(dtype_size(dtype) * most);
        if (!f || (most_perm && !perm) || !out) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory (%zu values)", most);
    }
    int fd = rc == AIL_OK ? open(path, O_WRONLY) : -1;
    if (rc == AIL_OK && fd < 0) rc = AIL_ERROR(AIL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    double t0 = (double)clock();
    for (int i = 0; i < n && rc == AIL_OK; i++) {
        const GGUFTensor *t = m[i].src;
        int64_t cols = t->ne[0], rows = (int64_t)(t->numel / (size_t)cols);
        rc = gguf_tensor_rows_f32(t, 0, rows, f);
        if (rc != AIL_OK) break;
        const float *src = f;
        if (m[i].permute_heads > 0) {
            // GGUF row h*d + 2i + s holds HF row h*d + s*d/2 + i
            int64_t d = rows / m[i].permute_heads, half = d / 2;
            for (int64_t h = 0; h < m[i].permute_heads; h++)
                for (int64_t k = 0; k < half; k++)
                    for (int s = 0; s < 2; s++)
                        memcpy(perm + (h * d + s * half + k) * cols, f + (h * d + 2 * k + s) * cols,
                               sizeof *f * (size_t)cols);
            src = perm;
        }
        if (dtype == DTYPE_F32) {
            memcpy(out, src, sizeof *f * t->numel);
        } else {
            uint16_t *o = out;
            size_t over = 0;
            for (size_t k = 0; k < t->numel; k++) {
                o[k] = dtype == DTYPE_BF16 ? f64_to_bf16((double)src[k]) : f64_to_f16((double)src[k]);
                over += dtype == DTYPE_F16 && isfinite(src[k]) && fabsf(src[k]) > 65504.0f;
            }
            if (over) {  // F16 would turn them into infinities: the model would not be this one
                rc = AIL_ERROR(AIL_ERR_ARG, "tensor %s: %zu values beyond the F16 range (use --dtype BF16 or F32)",
                               m[i].name, over);
                break;
            }
        }
        size_t nbytes = dtype_size(dtype) * t->numel, done = 0;
        while (done < nbytes && rc == AIL_OK) {
            ssize_t w = pwrite(fd, (char *)out + done, nbytes - done, (off_t)(offsets[i] + done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) rc = AIL_ERROR(AIL_ERR_IO, "%s: write: %s", path, w < 0 ? strerror(errno) : "no progress");
            else done += (size_t)w;
        }
        if (!quiet && rc == AIL_OK && (i % 50 == 49 || i == n - 1))
            printf("import: %d / %d tensors (%.1f s CPU)\n", i + 1, n, ((double)clock() - t0) / CLOCKS_PER_SEC);
    }
    if (fd >= 0 && close(fd) != 0 && rc == AIL_OK) rc = AIL_ERROR(AIL_ERR_IO, "%s: close: %s", path, strerror(errno));
    free(f);
    free(perm);
    free(out);
    free(specs);
    free(offsets);
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

int gguf_import(const char *gguf_path, const char *out_dir, const GGUFImportOptions *opt) {
    DType dtype = opt && opt->dtype ? opt->dtype : DTYPE_BF16;
    if (dtype != DTYPE_BF16 && dtype != DTYPE_F16 && dtype != DTYPE_F32)
        return AIL_ERROR(AIL_ERR_ARG, "import writes BF16, F16 or F32, not %s", dtype_name(dtype));
    if (file_exists(out_dir)) return AIL_ERROR(AIL_ERR_ARG, "%s exists: refusing to overwrite it", out_dir);
    char partial[4200];
    file_partial_path(out_dir, partial, sizeof partial);
    if (file_exists(partial))
        return AIL_ERROR(AIL_ERR_ARG, "%s exists (an interrupted import?): remove it first", partial);
    GGUFFile g;
    AIL_CHECK(gguf_open(gguf_path, &g));
    ImportConfig c = {0};
    Special sp = {0};
    Mapping *m = NULL;
    int n = 0, made = 0;
    int rc = read_config(&g, &c);
    const GGUFKV *tok = gguf_kv(&g, "tokenizer.ggml.tokens");
    if (rc == AIL_OK && !(tok && tok->type == GGUF_ARRAY && tok->elem_type == GGUF_STRING && tok->count > 0))
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: missing metadata key tokenizer.ggml.tokens (an array of strings)", g.path);
    if (rc == AIL_OK) {
        c.vocab = (int64_t)tok->count;
        int64_t v;
        int found;
        rc = gguf_get_int_opt(&g, "llama.vocab_size", &v, &found);
        if (rc == AIL_OK && found && v != c.vocab)
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: llama.vocab_size = %lld but the tokenizer has %lld tokens", g.path,
                           (long long)v, (long long)c.vocab);
    }
    if (rc == AIL_OK) rc = build_mappings(&g, &c, &m, &n);
    if (rc == AIL_OK) c.tied = gguf_tensor(&g, "output.weight") == NULL;
    if (rc == AIL_OK) rc = read_special(&g, &c, &sp);
    if (rc == AIL_OK) {
        if (mkdir(partial, 0755) != 0) rc = AIL_ERROR(AIL_ERR_IO, "cannot create %s: %s", partial, strerror(errno));
        else made = 1;
    }
    if (rc == AIL_OK) rc = write_configs(&c, partial, &sp, dtype);
    if (rc == AIL_OK) rc = write_tokenizer(&g, &c, partial, &sp);
    if (rc == AIL_OK) rc = write_tokenizer_config(&g, &c, partial, &sp);
    if (rc == AIL_OK) rc = write_weights(&g, m, n, partial, dtype, opt && opt->quiet);
    if (rc == AIL_OK) rc = file_commit(out_dir);
    if (rc != AIL_OK && made) nftw(partial, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(m);
    free(sp.bos_s), free(sp.eos_s), free(sp.pad_s), free(sp.unk_s);
    gguf_close(&g);
    return rc;
}
