/* test_gguf.c - GGUF reader, dequantization and import against the committed tiny
 * GGUF LLaMA of tests/reference/make_gguf_fixtures.py:
 *  - every imported tensor equals the independent numpy dequantization + un-permutation
 *    (expected.safetensors) exactly in F32 (both compute each d*q and + m once in
 *    float32, so there is nothing to tolerate), and exactly bf16(expected) in BF16 (one
 *    round-to-nearest-even of the same float32); q_proj / k_proj also equal
 *    transformers' own GGUF loading (hf_qk.safetensors) exactly;
 *  - config.json, tokenizer.json, tokenizer_config.json, generation_config.json;
 *  - tied embeddings; every truncation of the file and crafted bad headers are
 *    refused with an error, and a refused import leaves no directory behind. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ailora/dtype.h"
#include "ailora/error.h"
#include "ailora/fileio.h"
#include "ailora/gguf.h"
#include "ailora/hfmodel.h"
#include "ailora/safetensors.h"
#include "testutil.h"

static char dir[64], ref[1024];

static const char *path_in(const char *d, const char *name) {
    static char buf[4][1200];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", d, name);
    return p;
}

static cJSON *load_json(const char *path) {
    char *text;
    if (file_read_all(path, &text, NULL) != AIL_OK) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

/* Every tensor of want (float32) found in the directory's model.safetensors, exactly,
 * after rounding to dt. Returns the number compared. */
static int compare_dir(const char *model_dir, const char *want_file, DType dt, int skip_lm_head) {
    SafeTensors got, want;
    if (safetensors_open(path_in(model_dir, "model.safetensors"), &got) != AIL_OK) {
        TU_CHECK(0, "%s", ail_error_message());
        return 0;
    }
    TU_CHECK(safetensors_open(want_file, &want) == AIL_OK, "%s", ail_error_message());
    int n = 0;
    for (int i = 0; i < want.count; i++) {
        const SafeTensor *w = &want.tensors[i];
        if (skip_lm_head && !strcmp(w->name, "lm_head.weight")) continue;
        const SafeTensor *g = safetensors_find(&got, w->name);
        TU_CHECK(g != NULL, "%s missing in %s", w->name, model_dir);
        if (!g) continue;
        TU_CHECK(g->dtype == dt && g->ndim == w->ndim && g->numel == w->numel, "%s: dtype/shape", w->name);
        for (int d = 0; d < w->ndim && d < g->ndim; d++) TU_CHECK(g->shape[d] == w->shape[d], "%s dim %d", w->name, d);
        if (g->numel != w->numel) continue;
        double *a = malloc(sizeof *a * w->numel), *b = malloc(sizeof *b * w->numel);
        dtype_to_f64(DTYPE_F32, w->data, w->numel, a);
        dtype_to_f64(dt, g->data, g->numel, b);
        size_t bad = 0;
        for (size_t k = 0; k < w->numel; k++) bad += dtype_round(dt, a[k]) != b[k];
        TU_CHECK(bad == 0, "%s: %zu of %zu values differ (%s)", w->name, bad, w->numel, dtype_name(dt));
        free(a);
        free(b);
        n++;
    }
    TU_CHECK(got.count == n, "%s has %d tensors, compared %d", model_dir, got.count, n);
    safetensors_close(&got);
    safetensors_close(&want);
    return n;
}

static void *read_bytes(const char *path, size_t *len) {
    char *buf;
    if (file_read_all(path, &buf, len) != AIL_OK) return NULL;
    return buf;
}

static int write_bytes(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(buf, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* Offset of the first occurrence of s in buf, or -1. */
static long find(const unsigned char *buf, size_t len, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= len; i++)
        if (!memcmp(buf + i, s, n)) return (long)i;
    return -1;
}

/* Imports a patched copy; the import must fail with msg and leave nothing behind. */
static void expect_refused(const unsigned char *buf, size_t len, const char *msg, const char *what) {
    const char *gp = path_in(dir, "bad.gguf"), *out = path_in(dir, "bad_out");
    char partial[1300];
    TU_CHECK(write_bytes(gp, buf, len) == 0, "write %s", gp);
    ail_error_clear();
    int rc = gguf_import(gp, out, &(GGUFImportOptions){.quiet = 1});
    TU_CHECK(rc != AIL_OK && strstr(ail_error_message(), msg), "%s: rc %d, message \"%s\", want \"%s\"", what, rc,
             ail_error_message(), msg);
    file_partial_path(out, partial, sizeof partial);
    TU_CHECK(!file_exists(out) && !file_exists(partial), "%s: left %s behind", what, out);
    ail_error_clear();
}

int main(void) {
    const char *top = getenv("top_srcdir");
    snprintf(ref, sizeof ref, "%s/tests/reference/gguf", top && *top ? top : ".");
    snprintf(dir, sizeof dir, "/tmp/ailora-gguf-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    const char *tiny = path_in(ref, "tiny.gguf"), *expected = path_in(ref, "expected.safetensors");
    char tinyp[1200], expp[1200], qkp[1200], tiedp[1200];
    snprintf(tinyp, sizeof tinyp, "%s", tiny);
    snprintf(expp, sizeof expp, "%s", expected);
    snprintf(qkp, sizeof qkp, "%s/hf_qk.safetensors", ref);
    snprintf(tiedp, sizeof tiedp, "%s/tiny_tied.gguf", ref);

    // ---- reader + dequantization of rows (no permutation involved: v_proj, ffn_down)
    GGUFFile g;
    TU_CHECK(gguf_open(tinyp, &g) == AIL_OK, "%s", ail_error_message());
    TU_CHECK(g.version == 3 && g.ntensors == 21 && g.alignment == 32, "version %u, %lld tensors", g.version,
             (long long)g.ntensors);
    SafeTensors exp;
    TU_CHECK(safetensors_open(expp, &exp) == AIL_OK, "%s", ail_error_message());
    const char *pairs[][2] = {{"blk.1.ffn_down.weight", "model.layers.1.mlp.down_proj.weight"},   // F16
                              {"blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight"},  // Q8_0
                              {"blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight"}};  // Q4_0
    for (int p = 0; p < 3; p++) {
        const GGUFTensor *t = gguf_tensor(&g, pairs[p][0]);
        const SafeTensor *e = safetensors_find(&exp, pairs[p][1]);
        TU_CHECK(t && e, "%s", pairs[p][0]);
        if (!t || !e) continue;
        float rows[2 * 64];
        TU_CHECK(gguf_tensor_rows_f32(t, 3, 2, rows) == AIL_OK, "%s", ail_error_message());
        TU_CHECK(!memcmp(rows, (const float *)e->data + 3 * t->ne[0], sizeof(float) * 2 * (size_t)t->ne[0]),
                 "%s rows 3..4 differ", pairs[p][0]);
        TU_CHECK(gguf_tensor_rows_f32(t, t->ne[1] - 1, 2, rows) != AIL_OK, "rows past the end accepted");
        ail_error_clear();
    }
    safetensors_close(&exp);
    int64_t v;
    TU_CHECK(gguf_get_int(&g, "llama.block_count", &v) == AIL_OK && v == 2, "block_count");
    TU_CHECK(gguf_get_int(&g, "llama.no_such_key", &v) != AIL_OK &&
             strstr(ail_error_message(), "missing metadata key llama.no_such_key"), "%s", ail_error_message());
    ail_error_clear();
    char *tmpl = NULL;
    TU_CHECK(gguf_get_str(&g, "tokenizer.chat_template", &tmpl) == AIL_OK, "chat template");

    // ---- every proper prefix of the file is refused (header, metadata, infos or data cut)
    size_t len;
    unsigned char *buf = read_bytes(tinyp, &len);
    TU_CHECK(buf && len == g.size, "read %s", tinyp);
    int accepted = 0;
    for (size_t n = 0; buf && n < len; n += (n < g.data_start + 64 ? 1 : 97)) {
        GGUFFile h;
        if (gguf_parse(buf, n, "prefix", &h) == AIL_OK) {
            accepted++;
            gguf_close(&h);
        }
        ail_error_clear();
    }
    TU_CHECK(accepted == 0, "%d truncated copies accepted", accepted);

    // ---- import F32, BF16, tied
    const char *f32 = path_in(dir, "f32");
    char f32d[1200], bf16d[1200], tiedd[1200];
    snprintf(f32d, sizeof f32d, "%s", f32);
    snprintf(bf16d, sizeof bf16d, "%s/bf16", dir);
    snprintf(tiedd, sizeof tiedd, "%s/tied", dir);
    TU_CHECK(gguf_import(tinyp, f32d, &(GGUFImportOptions){.dtype = DTYPE_F32, .quiet = 1}) == AIL_OK, "%s",
             ail_error_message());
    TU_CHECK(gguf_import(tinyp, bf16d, &(GGUFImportOptions){.quiet = 1}) == AIL_OK, "%s", ail_error_message());
    TU_CHECK(gguf_import(tiedp, tiedd, &(GGUFImportOptions){.quiet = 1}) == AIL_OK, "%s", ail_error_message());
    TU_CHECK(compare_dir(f32d, expp, DTYPE_F32, 0) == 21, "f32: not all tensors compared");
    TU_CHECK(compare_dir(bf16d, expp, DTYPE_BF16, 0) == 21, "bf16: not all tensors compared");
    TU_CHECK(compare_dir(tiedd, expp, DTYPE_BF16, 1) == 20, "tied: not all tensors compared");
    {
        SafeTensors got, qk;
        TU_CHECK(safetensors_open(path_in(f32d, "model.safetensors"), &got) == AIL_OK, "open");
        TU_CHECK(safetensors_open(qkp, &qk) == AIL_OK, "%s", ail_error_message());
        TU_CHECK(qk.count == 4, "hf_qk has %d tensors", qk.count);
        for (int i = 0; i < qk.count; i++) {
            const SafeTensor *a = &qk.tensors[i], *b = safetensors_find(&got, a->name);
            TU_CHECK(b && b->nbytes == a->nbytes && !memcmp(a->data, b->data, a->nbytes),
                     "%s differs from transformers' GGUF loading", a->name);
        }
        safetensors_close(&got);
        safetensors_close(&qk);
    }

    // ---- config.json (through ailora's own loader) and the other files
    ModelConfig c;
    TU_CHECK(model_config_load(path_in(bf16d, "config.json"), &c) == AIL_OK, "%s", ail_error_message());
    TU_CHECK(c.hidden_size == 32 && c.intermediate_size == 64 && c.num_hidden_layers == 2 &&
             c.num_attention_heads == 4 && c.num_key_value_heads == 2 && c.head_dim == 8 && c.vocab_size == 273 &&
             c.max_position_embeddings == 256 && c.rms_norm_eps == 1e-5 && c.rope_theta == 10000.0 &&
             !c.tie_word_embeddings && c.torch_dtype == DTYPE_BF16 && c.rope_type == ROPE_DEFAULT,
             "config: hidden %d ff %d layers %d heads %d/%d hd %d vocab %d ctx %d eps %g theta %g tie %d",
             c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
             c.head_dim, c.vocab_size, c.max_position_embeddings, c.rms_norm_eps, c.rope_theta, c.tie_word_embeddings);
    TU_CHECK(model_config_load(path_in(tiedd, "config.json"), &c) == AIL_OK && c.tie_word_embeddings, "tied config");
    TU_CHECK(model_config_load(path_in(f32d, "config.json"), &c) == AIL_OK && c.torch_dtype == DTYPE_F32, "f32 config");
    // RoPE scaling: linear from the metadata; Llama 3.1 recovered from rope_freqs.weight
    // (divisors 1, 1.2625, 7.3142, 8 of factor 8, low 1, high 64, L 8192: low and high
    // come out of a least-squares fit of float32 data, snapped to 3 decimals)
    char lin[1200], l3[1200];
    snprintf(lin, sizeof lin, "%s/linear", dir);
    snprintf(l3, sizeof l3, "%s/llama3", dir);
    TU_CHECK(gguf_import(path_in(ref, "tiny_linear.gguf"), lin, &(GGUFImportOptions){.quiet = 1}) == AIL_OK, "%s",
             ail_error_message());
    TU_CHECK(model_config_load(path_in(lin, "config.json"), &c) == AIL_OK && c.rope_type == ROPE_LINEAR &&
             c.rope_factor == 2.0, "linear rope: type %d factor %g", (int)c.rope_type, c.rope_factor);
    TU_CHECK(gguf_import(path_in(ref, "tiny_llama3.gguf"), l3, &(GGUFImportOptions){.quiet = 1}) == AIL_OK, "%s",
             ail_error_message());
    TU_CHECK(model_config_load(path_in(l3, "config.json"), &c) == AIL_OK && c.rope_type == ROPE_LLAMA3 &&
             c.rope_factor == 8.0 && c.rope_low_freq_factor == 1.0 && c.rope_high_freq_factor == 64.0 &&
             c.rope_original_max_pos == 8192 && c.rope_theta == 500000.0,
             "llama3 rope: type %d factor %g low %g high %g orig %d theta %g", (int)c.rope_type, c.rope_factor,
             c.rope_low_freq_factor, c.rope_high_freq_factor, c.rope_original_max_pos, c.rope_theta);
    TU_CHECK(compare_dir(l3, expp, DTYPE_BF16, 1) == 20, "llama3: not all tensors compared");

    cJSON *tok = load_json(path_in(bf16d, "tokenizer.json"));
    TU_CHECK(tok != NULL, "tokenizer.json is not JSON");
    if (tok) {
        cJSON *model = cJSON_GetObjectItem(tok, "model");
        cJSON *vocab = cJSON_GetObjectItem(model, "vocab"), *merges = cJSON_GetObjectItem(model, "merges");
        TU_CHECK(cJSON_GetArraySize(vocab) == 273 && cJSON_GetArraySize(merges) == 13, "vocab %d merges %d",
                 cJSON_GetArraySize(vocab), cJSON_GetArraySize(merges));
        cJSON *sp = cJSON_GetObjectItem(vocab, "\xc4\xa0");  // U+0120 'Ġ' = byte 32, token 3 + 32
        TU_CHECK(sp && sp->valuedouble == 35, "byte-level space token");
        cJSON *m0 = cJSON_GetArrayItem(merges, 0);
        TU_CHECK(m0 && !strcmp(cJSON_GetArrayItem(m0, 0)->valuestring, "\xc4\xa0") &&
                 !strcmp(cJSON_GetArrayItem(m0, 1)->valuestring, "t"), "first merge");
        cJSON *added = cJSON_GetObjectItem(tok, "added_tokens");
        TU_CHECK(cJSON_GetArraySize(added) == 4, "added tokens %d", cJSON_GetArraySize(added));
        cJSON *a2 = cJSON_GetArrayItem(added, 2), *a3 = cJSON_GetArrayItem(added, 3);
        TU_CHECK(a2 && !strcmp(cJSON_GetObjectItem(a2, "content")->valuestring, "<|im_end|>") &&
                 cJSON_IsTrue(cJSON_GetObjectItem(a2, "special")), "control token");
        TU_CHECK(a3 && !strcmp(cJSON_GetObjectItem(a3, "content")->valuestring, "<think>") &&
                 cJSON_IsFalse(cJSON_GetObjectItem(a3, "special")), "user-defined token");
        cJSON *pre = cJSON_GetObjectItem(tok, "pre_tokenizer");
        TU_CHECK(!strcmp(cJSON_GetObjectItem(pre, "type")->valuestring, "ByteLevel"), "pre-tokenizer");
        cJSON_Delete(tok);
    }
    // the whole tokenizer.json equals the one transformers builds from the same GGUF
    // (byte-level BPE; and SentencePiece with merges derived from the scores)
    char spd[1200];
    snprintf(spd, sizeof spd, "%s/sp", dir);
    TU_CHECK(gguf_import(path_in(ref, "tiny_sp.gguf"), spd, &(GGUFImportOptions){.quiet = 1}) == AIL_OK, "%s",
             ail_error_message());
    const char *pairs_tok[][2] = {{bf16d, "hf_tokenizer_tiny.json"}, {spd, "hf_tokenizer_sp.json"}};
    for (int k = 0; k < 2; k++) {
        cJSON *ours = load_json(path_in(pairs_tok[k][0], "tokenizer.json")), *hf = load_json(path_in(ref, pairs_tok[k][1]));
        TU_CHECK(ours && hf, "%s: tokenizer.json missing or not JSON", pairs_tok[k][1]);
        for (cJSON *item = hf ? hf->child : NULL; item; item = item->next)
            TU_CHECK(cJSON_Compare(item, cJSON_GetObjectItemCaseSensitive(ours, item->string), 1),
                     "tokenizer.json \"%s\" differs from transformers' (%s)", item->string, pairs_tok[k][1]);
        TU_CHECK(ours && hf && cJSON_GetArraySize(ours) == cJSON_GetArraySize(hf), "tokenizer.json keys");
        cJSON_Delete(ours);
        cJSON_Delete(hf);
    }
    cJSON *spc = load_json(path_in(spd, "tokenizer_config.json"));
    TU_CHECK(spc && cJSON_IsTrue(cJSON_GetObjectItem(spc, "add_bos_token")), "sentencepiece: add_bos_token");
    cJSON_Delete(spc);

    cJSON *tc = load_json(path_in(bf16d, "tokenizer_config.json"));
    TU_CHECK(tc && tmpl && !strcmp(cJSON_GetObjectItem(tc, "chat_template")->valuestring, tmpl) &&
             !strcmp(cJSON_GetObjectItem(tc, "eos_token")->valuestring, "<|im_end|>") &&
             !strcmp(cJSON_GetObjectItem(tc, "bos_token")->valuestring, "<|im_start|>") &&
             !strcmp(cJSON_GetObjectItem(tc, "pad_token")->valuestring, "<|im_end|>"), "tokenizer_config.json");
    cJSON_Delete(tc);
    cJSON *gc = load_json(path_in(bf16d, "generation_config.json"));
    TU_CHECK(gc && cJSON_GetObjectItem(gc, "eos_token_id")->valuedouble == 2 &&
             cJSON_GetObjectItem(gc, "bos_token_id")->valuedouble == 1, "generation_config.json");
    cJSON_Delete(gc);
    free(tmpl);

    // ---- refusals: existing output, bad files; nothing left behind
    TU_CHECK(gguf_import(tinyp, f32d, &(GGUFImportOptions){.quiet = 1}) != AIL_OK &&
             strstr(ail_error_message(), "exists"), "existing output: %s", ail_error_message());
    ail_error_clear();
    if (buf) {
        unsigned char *bad = malloc(len);
        memcpy(bad, buf, len);
        memcpy(bad, "GGUX", 4);
        expect_refused(bad, len, "not a GGUF file", "bad magic");
        memcpy(bad, buf, len);
        bad[4] = 1;
        expect_refused(bad, len, "GGUF version 1 is not supported", "version 1");
        bad[4] = 0, bad[7] = 3;
        expect_refused(bad, len, "a big-endian GGUF file: not supported", "big-endian");
        expect_refused(buf, len - 1, "extends past the end of the file", "truncated data");
        expect_refused(buf, 100, "truncated", "truncated header");
        memcpy(bad, buf, len);
        long at = find(bad, len, "llama.block_count");
        TU_CHECK(at > 0, "key");
        bad[at + 6] = 'X';
        expect_refused(bad, len, "missing metadata key llama.block_count", "missing key");
        memcpy(bad, buf, len);
        at = find(bad, len, "general.architecture");
        memcpy(bad + at + 20 + 4 + 8, "mamba", 5);
        expect_refused(bad, len, "architecture \"mamba\" is not supported", "architecture");
        // output_norm.weight: F32 [32] (128 bytes) -> Q5_0 (22 bytes): still inside its extent
        memcpy(bad, buf, len);
        at = find(bad, len, "output_norm.weight");
        long ty = at + 18 + 4 + 8;
        TU_CHECK(bad[ty] == 0, "output_norm type");
        bad[ty] = 6;
        expect_refused(bad, len, "tensor output_norm.weight has type Q5_0", "unsupported type");
        free(bad);
    }
    free(buf);
    gguf_close(&g);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return tu_finish("test_gguf");
}
