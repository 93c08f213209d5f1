/* synth.c - synthetic LLaMA models with prescribed spectra (see synth.h). */
#include "ailora/synth.h"

#include <blis.h>
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ailora/error.h"
#include "ailora/rng.h"
#include "ailora/safetensors.h"
#include "base/lapack.h"

int spectrum_parse(const char *name, SpectrumKind *kind) {
    if (strcmp(name, "geometric") == 0) *kind = SPECTRUM_GEOMETRIC;
    else if (strcmp(name, "cluster") == 0) *kind = SPECTRUM_CLUSTER;
    else if (strcmp(name, "zeros") == 0) *kind = SPECTRUM_ZEROS;
    else return AIL_ERROR(AIL_ERR_ARG, "unknown spectrum \"%s\" (geometric, cluster, zeros)", name);
    return AIL_OK;
}

void spectrum_fill(SpectrumKind kind, int k, double smax, double decades, double *S) {
    int ngeo = kind == SPECTRUM_CLUSTER ? (k + 1) / 2 : kind == SPECTRUM_ZEROS ? k - k / 4 : k;
    for (int i = 0; i < ngeo; i++)
        S[i] = smax * pow(10.0, -decades * (ngeo > 1 ? (double)i / (ngeo - 1) : 0.0));
    for (int i = ngeo; i < k; i++) {
        if (kind == SPECTRUM_ZEROS) S[i] = 0.0;
        else S[i] = smax * pow(10.0, -decades) * (1.0 - 1e-6 * (i - ngeo + 1));  // descending cluster
    }
}

int synth_orthonormal(int rows, int cols, uint64_t seed, uint64_t stream, double *Q) {
    if (cols > rows) return AIL_ERROR(AIL_ERR_ARG, "orthonormal %dx%d: cols > rows", rows, cols);
    Rng rng;
    rng_init(&rng, seed, stream);
    double *a, *tau, query, *work;
    AIL_MALLOC(a, (size_t)rows * cols);  // column-major for LAPACK
    for (size_t i = 0; i < (size_t)rows * cols; i++) a[i] = rng_normal(&rng);
    AIL_MALLOC(tau, cols);
    int lwork = -1, info;
    dgeqrf_(&rows, &cols, a, &rows, tau, &query, &lwork, &info);
    lwork = (int)query + cols;
    AIL_MALLOC(work, lwork);
    dgeqrf_(&rows, &cols, a, &rows, tau, work, &lwork, &info);
    // Haar measure: Q's column j is multiplied by sign(R_jj)
    double *sign;
    AIL_MALLOC(sign, cols);
    for (int j = 0; j < cols; j++) sign[j] = a[(size_t)j * rows + j] < 0 ? -1.0 : 1.0;
    if (info == 0) dorgqr_(&rows, &cols, &cols, a, &rows, tau, work, &lwork, &info);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) Q[(size_t)i * cols + j] = sign[j] * a[(size_t)j * rows + i];
    free(sign);
    free(work);
    free(tau);
    free(a);
    if (info != 0) return AIL_ERROR(AIL_ERR_LIB, "QR of a %dx%d Gaussian failed (info %d)", rows, cols, info);
    return AIL_OK;
}

int synth_matrix(int m, int n, const double *S, uint64_t seed, uint64_t stream, double *W,
                 double *U_out, double *Vt_out) {
    int k = m < n ? m : n;
    double *U, *V;
    AIL_MALLOC(U, (size_t)m * k);
    AIL_MALLOC(V, (size_t)n * k);
    int rc = synth_orthonormal(m, k, seed, 2 * stream, U);
    if (rc == AIL_OK) rc = synth_orthonormal(n, k, seed, 2 * stream + 1, V);
    if (rc == AIL_OK) {
        if (U_out) memcpy(U_out, U, sizeof(double) * (size_t)m * k);
        if (Vt_out)
            for (int l = 0; l < k; l++)
                for (int j = 0; j < n; j++) Vt_out[(size_t)l * n + j] = V[(size_t)j * k + l];
        for (int i = 0; i < m; i++)
            for (int l = 0; l < k; l++) U[(size_t)i * k + l] *= S[l];
        // W [m, n] = (U S) [m, k] * V^T, V^T read from row-major V through strides
        double one = 1.0, zero = 0.0;
        bli_dgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, U, k, 1, V, 1, k, &zero, W,
                  n, 1);
    }
    free(U);
    free(V);
    return rc;
}

/* ---- model writer ------------------------------------------------------------- */

typedef struct {
    int count, cap;
    SafeTensorSpec *specs;
    char **names;
    void **buffers;
} TensorList;

static int list_add(TensorList *list, const char *name, DType dtype, int ndim, int64_t d0,
                    int64_t d1, const double *values) {
    if (list->count == list->cap) {
        int cap = list->cap ? 2 * list->cap : 64;
        SafeTensorSpec *specs = ail_realloc(list->specs, sizeof *specs * (size_t)cap);
        if (specs) list->specs = specs;
        char **names = ail_realloc(list->names, sizeof *names * (size_t)cap);
        if (names) list->names = names;
        void **buffers = ail_realloc(list->buffers, sizeof *buffers * (size_t)cap);
        if (buffers) list->buffers = buffers;
        if (!specs || !names || !buffers) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
        list->cap = cap;
    }
    size_t numel = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    void *buf = ail_malloc(numel * dtype_size(dtype));
    char *copy = strdup(name);
    if (!buf || !copy) {
        free(buf);
        free(copy);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for tensor %s", name);
    }
    dtype_from_f64(dtype, values, numel, buf);
    SafeTensorSpec *s = &list->specs[list->count];
    memset(s, 0, sizeof *s);
    s->name = copy;
    s->dtype = dtype;
    s->ndim = ndim;
    s->shape[0] = d0;
    s->shape[1] = d1;
    s->data = buf;
    list->names[list->count] = copy;
    list->buffers[list->count] = buf;
    list->count++;
    return AIL_OK;
}

static void list_free(TensorList *list) {
    for (int i = 0; i < list->count; i++) {
        free(list->names[i]);
        free(list->buffers[i]);
    }
    free(list->specs);
    free(list->names);
    free(list->buffers);
    memset(list, 0, sizeof *list);
}

static int suffix_listed(const char *csv, const char *suffix) {
    size_t len = strlen(suffix);
    for (const char *p = csv; (p = strstr(p, suffix)); p += len)
        if ((p == csv || p[-1] == ',') && (p[len] == ',' || p[len] == '\0')) return 1;
    return 0;
}

/* One linear weight [m, n]: prescribed spectrum if structured, else N(0, 1/n). */
static int add_linear(TensorList *list, const SynthSpec *spec, const char *name,
                      const char *suffix, int m, int n, double *scratch) {
    uint64_t stream = rng_stream_id(name);
    if (suffix_listed(spec->structured, suffix)) {
        int k = m < n ? m : n;
        double *S;
        AIL_MALLOC(S, k);
        spectrum_fill(spec->spectrum, k, spec->smax, spec->decades, S);
        int rc = synth_matrix(m, n, S, spec->seed, stream, scratch, NULL, NULL);
        free(S);
        AIL_CHECK(rc);
    } else {
        Rng rng;
        rng_init(&rng, spec->seed, stream);
        double sd = 1.0 / sqrt((double)n);
        for (size_t i = 0; i < (size_t)m * n; i++) scratch[i] = sd * rng_normal(&rng);
    }
    return list_add(list, name, spec->dtype, 2, m, n, scratch);
}

static int add_filled(TensorList *list, const SynthSpec *spec, const char *name, int64_t d0,
                      int64_t d1, int ndim, double value_or_std, int gaussian, double *scratch) {
    Rng rng;
    rng_init(&rng, spec->seed, rng_stream_id(name));
    size_t numel = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    for (size_t i = 0; i < numel; i++)
        scratch[i] = gaussian ? value_or_std * rng_normal(&rng) : value_or_std;
    return list_add(list, name, spec->dtype, ndim, d0, d1, scratch);
}

static int build_tensors(const SynthSpec *spec, TensorList *list) {
    const ModelConfig *c = &spec->config;
    int H = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    int qd = c->num_attention_heads * c->head_dim, kvd = c->num_key_value_heads * c->head_dim;
    size_t biggest = (size_t)V * H;
    int dims[] = {qd, kvd, I};
    for (int i = 0; i < 3; i++)
        if ((size_t)dims[i] * H > biggest) biggest = (size_t)dims[i] * H;
    double *scratch;
    AIL_MALLOC(scratch, biggest);
    char name[160];
    int rc = add_filled(list, spec, "model.embed_tokens.weight", V, H, 2, 0.02, 1, scratch);
    for (int l = 0; l < c->num_hidden_layers && rc == AIL_OK; l++) {
        const struct { const char *block, *suffix; int m, n; } lin[] = {
            {"self_attn", "q_proj", qd, H},  {"self_attn", "k_proj", kvd, H},
            {"self_attn", "v_proj", kvd, H}, {"self_attn", "o_proj", H, qd},
            {"mlp", "gate_proj", I, H},      {"mlp", "up_proj", I, H},
            {"mlp", "down_proj", H, I}};
        for (size_t t = 0; t < sizeof lin / sizeof *lin && rc == AIL_OK; t++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.%s.weight", l, lin[t].block, lin[t].suffix);
            rc = add_linear(list, spec, name, lin[t].suffix, lin[t].m, lin[t].n, scratch);
            if (rc == AIL_OK && ((c->attention_bias && t < 3) || (c->o_proj_bias && t == 3) || (c->mlp_bias && t > 3))) {
                snprintf(name, sizeof name, "model.layers.%d.%s.%s.bias", l, lin[t].block, lin[t].suffix);
                rc = add_filled(list, spec, name, lin[t].m, 0, 1, 0.02, 1, scratch);
            }
        }
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        if (rc == AIL_OK) rc = add_filled(list, spec, name, H, 0, 1, 1.0, 0, scratch);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        if (rc == AIL_OK) rc = add_filled(list, spec, name, H, 0, 1, 1.0, 0, scratch);
    }
    if (rc == AIL_OK) rc = add_filled(list, spec, "model.norm.weight", H, 0, 1, 1.0, 0, scratch);
    if (rc == AIL_OK && !c->tie_word_embeddings)
        rc = add_filled(list, spec, "lm_head.weight", V, H, 2, 0.02, 1, scratch);
    free(scratch);
    return rc;
}

/* The biases must be those transformers' class of the model type builds: LLaMA's
 * attention_bias means q, k, v and o biases, Qwen2 always has q, k, v biases and no
 * o bias, Mistral none. */
static int check_arch(const ModelConfig *c) {
    const char *type = c->model_type[0] ? c->model_type : "llama";
    int llama = !strcmp(type, "llama"), qwen2 = !strcmp(type, "qwen2");
    if (!llama && !qwen2 && strcmp(type, "mistral") != 0)
        return AIL_ERROR(AIL_ERR_ARG, "synthetic models are llama, mistral or qwen2, not \"%s\"", type);
    if ((llama && c->attention_bias != c->o_proj_bias) || (qwen2 && (!c->attention_bias || c->o_proj_bias)) ||
        (!llama && !qwen2 && (c->attention_bias || c->o_proj_bias)) || (!llama && c->mlp_bias))
        return AIL_ERROR(AIL_ERR_ARG, "a %s model cannot have %sq/k/v biases, %s o_proj bias and %sMLP biases", type,
                         c->attention_bias ? "" : "no ", c->o_proj_bias ? "an" : "no", c->mlp_bias ? "" : "no ");
    return AIL_OK;
}

static int write_config(const char *dir, const SynthSpec *spec) {
    const ModelConfig *c = &spec->config;
    cJSON *root = cJSON_CreateObject();
    const char *type = c->model_type[0] ? c->model_type : "llama";
    int llama = !strcmp(type, "llama"), qwen2 = !strcmp(type, "qwen2");
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(llama ? "LlamaForCausalLM" : qwen2 ? "Qwen2ForCausalLM"
                                                                                   : "MistralForCausalLM"));
    cJSON_AddStringToObject(root, "model_type", type);
    cJSON_AddNumberToObject(root, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(root, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(root, "num_hidden_layers", c->num_hidden_layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", c->num_attention_heads);
    cJSON_AddNumberToObject(root, "num_key_value_heads", c->num_key_value_heads);
    cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(root, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNumberToObject(root, "rope_theta", c->rope_theta);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tie_word_embeddings);
    if (!llama) cJSON_AddNullToObject(root, "sliding_window");  // full causal attention
    if (llama) cJSON_AddBoolToObject(root, "attention_bias", c->attention_bias);
    if (llama) cJSON_AddBoolToObject(root, "mlp_bias", c->mlp_bias);
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddNumberToObject(root, "initializer_range", 0.02);
    cJSON_AddNumberToObject(root, "bos_token_id", 1);
    cJSON_AddNumberToObject(root, "eos_token_id", 2);
    cJSON_AddStringToObject(root, "torch_dtype", dtype_torch_name(spec->dtype));
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = json_file_write(path, root);
    cJSON_Delete(root);
    return rc;
}

/* Sharded layout: tensors dealt to shards in name order, plus the index file. */
static int write_shards(const char *dir, const SynthSpec *spec, const TensorList *list) {
    int nshard = spec->shards;
    char path[4096];
    cJSON *index = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(index, "metadata");
    cJSON *map = cJSON_AddObjectToObject(index, "weight_map");
    size_t total = 0;
    int rc = AIL_OK;
    SafeTensorSpec *subset = ail_malloc(sizeof *subset * (size_t)list->count);
    if (!subset) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int s = 0; s < nshard && rc == AIL_OK; s++) {
        char file[64];
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, nshard);
        int n = 0;
        for (int i = s; i < list->count; i += nshard) {
            subset[n++] = list->specs[i];
            size_t numel = 1;
            for (int d = 0; d < list->specs[i].ndim; d++) numel *= (size_t)list->specs[i].shape[d];
            total += numel * dtype_size(list->specs[i].dtype);
            cJSON_AddStringToObject(map, list->specs[i].name, file);
        }
        snprintf(path, sizeof path, "%s/%s", dir, file);
        rc = safetensors_write(path, n, subset, 0, NULL, NULL);
    }
    free(subset);
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (rc == AIL_OK) rc = json_file_write(path, index);
    cJSON_Delete(index);
    return rc;
}

int synth_model_write(const char *dir, const SynthSpec *spec) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return AIL_ERROR(AIL_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    if (spec->dtype == DTYPE_INVALID) return AIL_ERROR(AIL_ERR_ARG, "invalid dtype");
    AIL_CHECK(check_arch(&spec->config));
    TensorList list = {0};
    int rc = build_tensors(spec, &list);
    char path[4096];
    if (rc == AIL_OK && spec->shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = safetensors_write(path, list.count, list.specs, 0, NULL, NULL);
    } else if (rc == AIL_OK) {
        rc = write_shards(dir, spec, &list);
    }
    if (rc == AIL_OK) rc = write_config(dir, spec);
    list_free(&list);
    return rc;
}
