/* llama_io.c - the CPU model's I/O: reading (this rank's shard of) every base
 * tensor from an HF directory, and writing the model back as one (see llama.h).
 * Compiled twice, like llama.c (float for the library, double for the tests). */
#include "ailora/llama.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>

#include "ailora/error.h"
#include "ailora/fileio.h"

/* Copies config.json into dir with "torch_dtype"/"dtype" set to float32. */
static int config_json_rewrite(const char *from, const char *dir) {
    char *text;
    AIL_CHECK(file_read_all(from, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return AIL_ERROR(AIL_ERR_FORMAT, "%s: not valid JSON", from);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "dtype");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "torch_dtype");
    cJSON_AddStringToObject(root, "torch_dtype", "float32");
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = json_file_write(path, root);
    cJSON_Delete(root);
    return rc;
}

static const char *const lin_suffix[LIN_COUNT] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                  "gate_proj", "up_proj", "down_proj"};

int llama_linear_index(const char *suffix) {
    for (int i = 0; i < LIN_COUNT; i++)
        if (strcmp(suffix, lin_suffix[i]) == 0) return i;
    return -1;
}

/* Every base tensor: its HF name, whole shape (D1 = 0 for vectors), this rank's
 * block of it (rows r0.. r0 + d0, columns c0.. c0 + d1) and its place in storage. */
typedef struct {
    char name[160];
    real *p;
    int64_t d0, d1, D0, D1, r0, c0;
} TensorSlot;

/* Copies this rank's block of tensor slot->name into slot->p, converting dtypes. */
static int load_tensor(const HFModel *model, const TensorSlot *slot) {
    const SafeTensor *t;
    AIL_CHECK(hfmodel_tensor(model, slot->name, &t));
    int ok = slot->D1 ? (t->ndim == 2 && t->shape[0] == slot->D0 && t->shape[1] == slot->D1)
                      : (t->ndim == 1 && t->shape[0] == slot->D0);
    if (!ok)
        return AIL_ERROR(AIL_ERR_FORMAT, "tensor \"%s\" in %s has the wrong shape for config.json",
                         slot->name, model->dir);
    if (!dtype_is_float(t->dtype))
        return AIL_ERROR(AIL_ERR_FORMAT, "tensor \"%s\" in %s is not floating point", slot->name, model->dir);
    int64_t cols = slot->D1 ? slot->d1 : 1;
    double *row = ail_malloc(sizeof(double) * (size_t)cols);
    if (!row) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int64_t i = 0; i < slot->d0; i++) {  // row by row: only the shard's bytes are read
        safetensor_block_f64(t, slot->r0 + i, 1, slot->c0, cols, row);
        for (int64_t j = 0; j < cols; j++) slot->p[i * cols + j] = (real)row[j];
    }
    free(row);
    return AIL_OK;
}

/* Lays the tensors out in llm->storage (setting llm's pointers) and, when slots is
 * not NULL, lists them; *count gets the number of distinct tensors. */
static int tensor_slots(Llama *llm, const ModelConfig *c, TensorSlot *slots, int *count) {
    int H = llm->H, I = llm->I, V = llm->V, hd = llm->hd, nh = llm->nh, nkv = llm->nkv, n = 0;
    int tp = llm->tp_size, rk = llm->tp_rank;
    const int64_t out[LIN_COUNT] = {nh * hd, nkv * hd, nkv * hd, H, I, I, H};  // this rank's (out, in)
    const int64_t in[LIN_COUNT] = {H, H, H, nh * hd, H, H, I};
    real *p = llm->storage;
#define SLOT(ptr, d0_, d1_, D0_, D1_, r0_, c0_, ...)                                      \
    do {                                                                                  \
        (ptr) = p, p += (size_t)(d0_) * ((d1_) ? (size_t)(d1_) : 1);                     \
        if (slots) {                                                                      \
            slots[n] = (TensorSlot){.p = (ptr), .d0 = (d0_), .d1 = (d1_), .D0 = (D0_),    \
                                    .D1 = (D1_), .r0 = (r0_), .c0 = (c0_)};               \
            snprintf(slots[n].name, sizeof slots[n].name, __VA_ARGS__);                   \
        }                                                                                 \
        n++;                                                                              \
    } while (0)
    SLOT(llm->embed, V, H, V, H, 0, 0, "model.embed_tokens.weight");
    SLOT(llm->final_norm, H, 0, H, 0, 0, 0, "model.norm.weight");
    if (c->tie_word_embeddings) llm->lm_head = llm->embed;
    else SLOT(llm->lm_head, V, H, V, H, 0, 0, "lm_head.weight");
    for (int l = 0; l < llm->L; l++) {
        LlamaLayer *ly = &llm->layers[l];
        SLOT(ly->ln1, H, 0, H, 0, 0, 0, "model.layers.%d.input_layernorm.weight", l);
        SLOT(ly->ln2, H, 0, H, 0, 0, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        for (int i = 0; i < LIN_COUNT; i++) {
            const char *block = i < LIN_GATE ? "self_attn" : "mlp";
            if (llama_row_parallel(i))  // this rank's columns
                SLOT(ly->w[i], out[i], in[i], out[i], in[i] * tp, 0, in[i] * rk, "model.layers.%d.%s.%s.weight", l,
                     block, lin_suffix[i]);
            else  // this rank's rows
                SLOT(ly->w[i], out[i], in[i], out[i] * tp, in[i], out[i] * rk, 0, "model.layers.%d.%s.%s.weight", l,
                     block, lin_suffix[i]);
            int has_bias = i <= LIN_V ? c->attention_bias : i == LIN_O ? c->o_proj_bias : c->mlp_bias;
            if (has_bias && llama_row_parallel(i))  // the whole bias on every rank, added once
                SLOT(ly->bias[i], H, 0, H, 0, 0, 0, "model.layers.%d.%s.%s.bias", l, block, lin_suffix[i]);
            else if (has_bias)  // this rank's rows
                SLOT(ly->bias[i], out[i], 0, out[i] * tp, 0, out[i] * rk, 0, "model.layers.%d.%s.%s.bias", l, block,
                     lin_suffix[i]);
        }
    }
#undef SLOT
    *count = n;
    return (size_t)(p - llm->storage) == llm->storage_size
               ? AIL_OK
               : AIL_ERROR(AIL_ERR_FORMAT, "internal: tensor layout does not fill the storage");
}

/* Inverse frequency j (< hd/2) of c's RoPE, in real precision with transformers'
 * operations (float32 there, like HF; float64 in the float64 build). */
static real rope_inv_freq(const ModelConfig *c, int j, int hd) {
#ifdef AILORA_REAL_DOUBLE
    real inv = 1.0 / pow(c->rope_theta, (double)(2 * j) / hd);
#else
    real inv = 1.0f / powf((float)c->rope_theta, (float)(2 * j) / (float)hd);
#endif
    real factor = (real)c->rope_factor;
    if (c->rope_type == ROPE_LINEAR) return inv / factor;
    if (c->rope_type != ROPE_LLAMA3) return inv;
    // Llama 3.1: wavelengths above old / low are slowed by factor, those below
    // old / high kept, and the band between interpolated smoothly
    real lo = (real)c->rope_low_freq_factor, hi = (real)c->rope_high_freq_factor;
    real old = (real)c->rope_original_max_pos;
    real low_wavelen = (real)(c->rope_original_max_pos / c->rope_low_freq_factor);
    real high_wavelen = (real)(c->rope_original_max_pos / c->rope_high_freq_factor);
    real wavelen = (real)(2 * 3.14159265358979323846) / inv;
    real scaled = wavelen > low_wavelen ? inv / factor : inv;
    real smooth = (old / wavelen - lo) / (hi - lo);
    if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) scaled = (1 - smooth) * scaled / factor + smooth * scaled;
    return scaled;
}

int llama_load(const HFModel *model, Llama *llm) { return llama_load_tp(model, MPI_COMM_NULL, llm); }

int llama_load_tp(const HFModel *model, MPI_Comm tp_comm, Llama *llm) {
    memset(llm, 0, sizeof *llm);
    const ModelConfig *c = &model->config;
    llm->cfg = *c;
    // an active sliding window masks nothing on sequences up to its length: the
    // engine runs those exactly and refuses longer ones (llama_acts_alloc, the GPU)
    if (c->sliding_window) llm->cfg.max_position_embeddings = c->sliding_window;
    llm->tp_comm = tp_comm;
    llm->tp_size = 1;
    if (tp_comm != MPI_COMM_NULL) {
        MPI_Comm_size(tp_comm, &llm->tp_size);
        MPI_Comm_rank(tp_comm, &llm->tp_rank);
    }
    int tp = llm->tp_size;
    if (c->num_attention_heads % tp || c->num_key_value_heads % tp || c->intermediate_size % tp)
        return AIL_ERROR(AIL_ERR_ARG, "tp = %d must divide num_attention_heads (%d), num_key_value_heads (%d) "
                         "and intermediate_size (%d) of %s", tp, c->num_attention_heads, c->num_key_value_heads,
                         c->intermediate_size, model->dir);
    int H = llm->H = c->hidden_size, I = llm->I = c->intermediate_size / tp, V = llm->V = c->vocab_size;
    int L = llm->L = c->num_hidden_layers, hd = llm->hd = c->head_dim;
    int nh = llm->nh = c->num_attention_heads / tp, nkv = llm->nkv = c->num_key_value_heads / tp;
    if (hd % 2) return AIL_ERROR(AIL_ERR_FORMAT, "%s: head_dim %d is odd (RoPE needs pairs)", model->dir, hd);
    const int64_t out[LIN_COUNT] = {nh * hd, nkv * hd, nkv * hd, H, I, I, H};
    const int64_t in[LIN_COUNT] = {H, H, H, nh * hd, H, H, I};  // (out, in) of each linear shard
    size_t per_layer = 2 * (size_t)H + (c->attention_bias ? (size_t)(nh + 2 * nkv) * hd : 0) +
                       (c->o_proj_bias ? (size_t)H : 0) + (c->mlp_bias ? 2 * (size_t)I + H : 0);
    for (int i = 0; i < LIN_COUNT; i++) per_layer += (size_t)out[i] * in[i];
    size_t total = (size_t)V * H * (c->tie_word_embeddings ? 1 : 2) + H + (size_t)L * per_layer;
    AIL_MALLOC(llm->storage, total);
    llm->storage_size = total;
    llm->layers = ail_calloc((size_t)L, sizeof *llm->layers);
    if (!llm->layers) {
        llama_free(llm);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    }
    int count, rc = tensor_slots(llm, c, NULL, &count);
    TensorSlot *slots = ail_malloc(sizeof *slots * (size_t)count);
    if (!slots) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK) tensor_slots(llm, c, slots, &count);
    for (int i = 0; i < count && rc == AIL_OK; i++) rc = load_tensor(model, &slots[i]);
    free(slots);
    // RoPE tables as HF computes them: inverse frequencies and angles in float32
    // (the float64 build computes them in float64, like a true float64 reference)
    int P = llm->cfg.max_position_embeddings, half = hd / 2;
    llm->rope_cos = ail_malloc(sizeof(real) * (size_t)P * half);
    llm->rope_sin = ail_malloc(sizeof(real) * (size_t)P * half);
    if (rc == AIL_OK && (!llm->rope_cos || !llm->rope_sin)) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int j = 0; j < half && rc == AIL_OK; j++) {
        real inv = rope_inv_freq(c, j, hd);
        for (int pos = 0; pos < P; pos++) {
#ifdef AILORA_REAL_DOUBLE
            double ang = pos * inv;
            llm->rope_cos[(size_t)pos * half + j] = cos(ang);
            llm->rope_sin[(size_t)pos * half + j] = sin(ang);
#else
            float ang = (float)pos * inv;
            llm->rope_cos[(size_t)pos * half + j] = cosf(ang);
            llm->rope_sin[(size_t)pos * half + j] = sinf(ang);
#endif
        }
    }
    if (rc != AIL_OK) llama_free(llm);
    return rc;
}

int llama_save(const Llama *llm, const HFModel *model, const char *dir) {
    if (llm->tp_size > 1)
        return AIL_ERROR(AIL_ERR_ARG, "saving a tensor-parallel model (tp = %d) is not supported", llm->tp_size);
    char partial[4096], path[4200];
    file_partial_path(dir, partial, sizeof partial);
    if (mkdir(partial, 0755) != 0 && errno != EEXIST)
        return AIL_ERROR(AIL_ERR_IO, "cannot create %s: %s", partial, strerror(errno));
    int count, rc = tensor_slots((Llama *)llm, &llm->cfg, NULL, &count);
    TensorSlot *slots = ail_malloc(sizeof *slots * (size_t)count);
    SafeTensorSpec *specs = ail_calloc((size_t)count, sizeof *specs);
    float **data = ail_calloc((size_t)count, sizeof *data);
    if (!slots || !specs || !data) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK) {
        // tensor_slots only re-derives the pointers llama_load set: same layout
        Llama copy = *llm;
        tensor_slots(&copy, &llm->cfg, slots, &count);
    }
    for (int i = 0; i < count && rc == AIL_OK; i++) {
        size_t n = (size_t)slots[i].d0 * (slots[i].d1 ? (size_t)slots[i].d1 : 1);
        if (!(data[i] = ail_malloc(sizeof(float) * n))) {
            rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
            break;
        }
        for (size_t j = 0; j < n; j++) data[i][j] = (float)slots[i].p[j];
        specs[i] = (SafeTensorSpec){.name = slots[i].name, .dtype = DTYPE_F32, .ndim = slots[i].d1 ? 2 : 1,
                                    .data = data[i]};
        specs[i].shape[0] = slots[i].d0, specs[i].shape[1] = slots[i].d1;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", partial);
    if (rc == AIL_OK) rc = safetensors_write(path, count, specs, 0, NULL, NULL);
    if (rc == AIL_OK) {  // the original config.json, with the dtype we wrote
        char cfgpath[4200];
        snprintf(cfgpath, sizeof cfgpath, "%s/config.json", model->dir);
        rc = config_json_rewrite(cfgpath, partial);
    }
    for (int i = 0; data && i < count; i++) free(data[i]);
    free(data), free(specs), free(slots);
    if (rc == AIL_OK && file_exists(dir)) rc = AIL_ERROR(AIL_ERR_IO, "%s exists already", dir);
    if (rc == AIL_OK) rc = file_commit(dir);
    return rc;
}
