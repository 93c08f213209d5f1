/* hfmodel.c - config.json parsing and safetensors shard mapping for HF model dirs. */
#include "ailora/hfmodel.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ailora/error.h"
#include "ailora/fileio.h"

static int json_load(const char *path, cJSON **root) {
    char *text;
    AIL_CHECK(file_read_all(path, &text, NULL));
    *root = cJSON_Parse(text);
    free(text);
    if (!*root || !cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: not a valid JSON object", path);
    }
    return AIL_OK;
}

/* Positive integer key: required ones are an error when missing. */
static int json_int(const cJSON *root, const char *path, const char *key, int required,
                    int fallback, int *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item)) {
        if (required) return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing required key \"%s\"", path, key);
        *out = fallback;
        return AIL_OK;
    }
    double v = item->valuedouble;
    // range first: converting a double outside int's range to int is undefined
    if (!cJSON_IsNumber(item) || !(v >= 1 && v <= INT_MAX) || v != (double)(int)v)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: \"%s\" must be a positive integer", path, key);
    *out = (int)v;
    return AIL_OK;
}

static int json_double(const cJSON *root, const char *path, const char *key, double fallback,
                       double *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item)) {
        *out = fallback;
        return AIL_OK;
    }
    if (!cJSON_IsNumber(item) || !(item->valuedouble > 0) || !isfinite(item->valuedouble))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: \"%s\" must be a positive number", path, key);
    *out = item->valuedouble;
    return AIL_OK;
}

static int json_bool(const cJSON *root, const char *path, const char *key, int fallback, int *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item)) {
        *out = fallback;
        return AIL_OK;
    }
    if (!cJSON_IsBool(item))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: \"%s\" must be true or false", path, key);
    *out = cJSON_IsTrue(item);
    return AIL_OK;
}

/* One line naming a config.json key and its value that the engine does not compute. */
static int refuse(const char *path, const char *key, const cJSON *item, const char *why) {
    char *v = item ? cJSON_PrintUnformatted(item) : NULL;
    int rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: unsupported \"%s\": %s (%s)", path, key, v ? v : "?", why);
    free(v);
    return rc;
}

static const cJSON *key_of(const cJSON *root, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    return item && !cJSON_IsNull(item) ? item : NULL;
}

/* The architectures ailora's engine computes exactly as transformers does, and the
 * model class each one names in "architectures". */
static const struct { const char *type, *arch; } known_arch[] = {
    {"llama", "LlamaForCausalLM"}, {"mistral", "MistralForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}};
enum { KNOWN_ARCH = sizeof known_arch / sizeof *known_arch };

/* model_type and architectures: one of known_arch, consistent with each other. */
static int check_architecture(const cJSON *root, const char *path, ModelConfig *c) {
    const cJSON *mt = key_of(root, "model_type"), *arch = key_of(root, "architectures");
    if (arch && (!cJSON_IsArray(arch) || cJSON_GetArraySize(arch) == 0))
        return refuse(path, "architectures", arch, "expected a list of model classes");
    const char *type = NULL;
    if (mt) {
        if (!cJSON_IsString(mt)) return refuse(path, "model_type", mt, "expected a string");
        for (int i = 0; i < KNOWN_ARCH; i++)
            if (strcmp(mt->valuestring, known_arch[i].type) == 0) type = known_arch[i].type;
        if (!type) return refuse(path, "model_type", mt, "ailora computes llama, mistral and qwen2 models only");
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, arch) {
        int k = -1;
        for (int i = 0; i < KNOWN_ARCH && cJSON_IsString(a); i++)
            if (strcmp(a->valuestring, known_arch[i].arch) == 0) k = i;
        if (k < 0)
            return refuse(path, "architectures", a,
                          "ailora computes LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM only");
        if (type && strcmp(type, known_arch[k].type) != 0)
            return refuse(path, "architectures", a, "does not match model_type");
        type = known_arch[k].type;  // no model_type: the class says what it is
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", type ? type : "llama");
    return AIL_OK;
}

/* RoPE as transformers 5 resolves it: a non-empty rope_scaling (transformers 4's
 * key) replaces rope_parameters; rope_theta comes from that object, else the top
 * level, else 10000; a missing type is "default". Implemented exactly (inverse
 * frequencies, llama_io.c): "default", "linear" (divided by factor) and "llama3"
 * (Llama 3.1's banded rescaling); anything else is refused. */
static int parse_rope(const cJSON *root, const char *path, ModelConfig *c) {
    const cJSON *scaling = key_of(root, "rope_scaling");
    int use_scaling = scaling && !(cJSON_IsObject(scaling) && !scaling->child);
    const char *key = use_scaling ? "rope_scaling" : "rope_parameters";
    const cJSON *rope = use_scaling ? scaling : key_of(root, "rope_parameters");
    c->rope_type = ROPE_DEFAULT;
    c->rope_factor = 1.0;
    AIL_CHECK(json_double(root, path, "rope_theta", 10000.0, &c->rope_theta));
    if (!rope) return AIL_OK;
    if (!cJSON_IsObject(rope)) return refuse(path, key, rope, "expected an object");
    char name[96];
    const cJSON *item, *type = NULL;
    cJSON_ArrayForEach(item, rope) {
        snprintf(name, sizeof name, "%s.%s", key, item->string);
        if (cJSON_IsObject(item))  // per-layer-type parameters (Gemma 3 and the like)
            return refuse(path, name, item, "per-layer RoPE parameters are not implemented");
        if (!strcmp(item->string, "partial_rotary_factor") && !(cJSON_IsNumber(item) && item->valuedouble == 1.0))
            return refuse(path, name, item, "RoPE on every dimension of a head only");
        if (!strcmp(item->string, "rope_type") || (!type && !strcmp(item->string, "type"))) type = item;
    }
    if (cJSON_GetObjectItemCaseSensitive(rope, "rope_theta"))
        AIL_CHECK(json_double(rope, path, "rope_theta", 10000.0, &c->rope_theta));
    if (!type || cJSON_IsNull(type) || (cJSON_IsString(type) && !strcmp(type->valuestring, "default")))
        return AIL_OK;
    snprintf(name, sizeof name, "%s.%s", key, type->string);
    int linear = cJSON_IsString(type) && !strcmp(type->valuestring, "linear");
    int llama3 = cJSON_IsString(type) && !strcmp(type->valuestring, "llama3");
    if (!linear && !llama3)
        return refuse(path, name, type, "RoPE types implemented: default, linear, llama3");
    c->rope_type = linear ? ROPE_LINEAR : ROPE_LLAMA3;
    const char *need[] = {"factor", "low_freq_factor", "high_freq_factor"};
    double *into[] = {&c->rope_factor, &c->rope_low_freq_factor, &c->rope_high_freq_factor};
    for (int i = 0; i < (llama3 ? 3 : 1); i++) {
        item = cJSON_GetObjectItemCaseSensitive(rope, need[i]);
        snprintf(name, sizeof name, "%s.%s", key, need[i]);
        if (!cJSON_IsNumber(item) || !(item->valuedouble > 0))
            return refuse(path, name, item ? item : type, "needs a positive number");
        *into[i] = item->valuedouble;
    }
    if (llama3) {
        if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
            return refuse(path, name, item, "high_freq_factor must exceed low_freq_factor");
        // transformers prefers a top-level original_max_position_embeddings (Phi-3 style),
        // then the RoPE object's, then max_position_embeddings
        const cJSON *top = key_of(root, "original_max_position_embeddings");
        AIL_CHECK(json_int(top ? root : rope, path, "original_max_position_embeddings", 0,
                           c->max_position_embeddings, &c->rope_original_max_pos));
    }
    return AIL_OK;
}

/* Keys that change what the network computes and that ailora does not implement:
 * refused with the key and value rather than computed as a plain LLaMA. */
static int check_unsupported(const cJSON *root, const char *path, ModelConfig *c) {
    const cJSON *item;
    // activation: LlamaConfig's hidden_act (Gemma's hidden_activation); "swish" is SiLU in HF
    const char *act_keys[] = {"hidden_act", "hidden_activation"};
    for (int i = 0; i < 2; i++)
        if ((item = key_of(root, act_keys[i])) &&
            !(cJSON_IsString(item) && (!strcmp(item->valuestring, "silu") || !strcmp(item->valuestring, "swish"))))
            return refuse(path, act_keys[i], item, "the engine's MLP is SiLU-gated only");
    if ((item = key_of(root, "partial_rotary_factor")) && !(cJSON_IsNumber(item) && item->valuedouble == 1.0))
        return refuse(path, "partial_rotary_factor", item, "RoPE on every dimension of a head only");
    // keys of related architectures (Granite, Gemma 2, OLMo, Falcon, ...) that change their
    // math: transformers' LLaMA would ignore them, so the config describes another network
    const char *foreign[] = {"embedding_multiplier", "attention_multiplier", "residual_multiplier",
                             "logits_scaling", "query_pre_attn_scalar", "use_qk_norm", "qk_layernorm",
                             "clip_qkv", "parallel_attn", "parallel_residual", "use_parallel_residual"};
    for (size_t i = 0; i < sizeof foreign / sizeof *foreign; i++)
        if ((item = key_of(root, foreign[i])) && !cJSON_IsFalse(item) &&
            !(cJSON_IsNumber(item) && item->valuedouble == 1.0))
            return refuse(path, foreign[i], item, "a key of another architecture, which computes differently");
    const char *softcap[] = {"attn_logit_softcapping", "final_logit_softcapping"};
    for (int i = 0; i < 2; i++)
        if ((item = key_of(root, softcap[i])))
            return refuse(path, softcap[i], item, "logit soft-capping is not implemented");
    // transformers LLaMA's pretraining_tp > 1 only slices the same products (equal math)
    if ((item = key_of(root, "pretraining_tp")) &&
        !(cJSON_IsNumber(item) && item->valuedouble >= 1 && item->valuedouble <= INT_MAX &&
          item->valuedouble == floor(item->valuedouble)))  // range first: (int) of a huge double is UB
        return refuse(path, "pretraining_tp", item, "expected a positive integer");
    if ((item = key_of(root, "attention_dropout")) && !(cJSON_IsNumber(item) && item->valuedouble == 0.0))
        return refuse(path, "attention_dropout", item, "attention dropout is not implemented");
    if ((item = key_of(root, "quantization_config")))
        return refuse(path, "quantization_config", item, "quantized checkpoints are not supported");
    const cJSON *automap = key_of(root, "auto_map");
    if ((item = cJSON_GetObjectItemCaseSensitive(automap, "AutoModelForCausalLM")))
        return refuse(path, "auto_map.AutoModelForCausalLM", item, "remote model code is not what ailora computes");
    // sliding-window attention (transformers: query q sees key k iff q - k < window) equals
    // full causal attention on sequences of at most window tokens: an active window
    // shorter than max_position_embeddings limits the sequences (llama_load), longer
    // ones are refused there. Mistral and Qwen2 default to a 4096 window when the key is
    // absent (null: none); Qwen2 uses it only with use_sliding_window; transformers'
    // LLaMA ignores the key, but a LLaMA config that sets one is held to it too
    const cJSON *win = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    const cJSON *use = key_of(root, "use_sliding_window");
    if (use && !cJSON_IsBool(use)) return refuse(path, "use_sliding_window", use, "expected true or false");
    double window = !win ? (strcmp(c->model_type, "llama") ? 4096 : INFINITY)
                         : cJSON_IsNull(win) ? INFINITY : cJSON_IsNumber(win) ? win->valuedouble : -1;
    if (!strcmp(c->model_type, "qwen2") && !cJSON_IsTrue(use)) window = INFINITY;
    if (!(window >= 1) || (isfinite(window) && window != (double)(int)window))
        return refuse(path, "sliding_window", win, "expected a positive integer or null");
    if (window < c->max_position_embeddings) c->sliding_window = (int)window;
    const cJSON *types = key_of(root, "layer_types");
    cJSON_ArrayForEach(item, types)
        if (!cJSON_IsString(item) || strcmp(item->valuestring, "full_attention") != 0)
            return refuse(path, "layer_types", item, "every layer must use full causal attention");
    return AIL_OK;
}

static int parse_config(const cJSON *root, const char *path, ModelConfig *c) {
    memset(c, 0, sizeof *c);
    AIL_CHECK(check_architecture(root, path, c));
    AIL_CHECK(json_int(root, path, "hidden_size", 1, 0, &c->hidden_size));
    AIL_CHECK(json_int(root, path, "intermediate_size", 1, 0, &c->intermediate_size));
    AIL_CHECK(json_int(root, path, "num_hidden_layers", 1, 0, &c->num_hidden_layers));
    AIL_CHECK(json_int(root, path, "num_attention_heads", 1, 0, &c->num_attention_heads));
    // defaults of transformers' config classes where config.json is silent
    int llama = !strcmp(c->model_type, "llama"), qwen2 = !strcmp(c->model_type, "qwen2");
    AIL_CHECK(json_int(root, path, "num_key_value_heads", 0, llama ? c->num_attention_heads : qwen2 ? 32 : 8,
                       &c->num_key_value_heads));
    if (!key_of(root, "head_dim") && c->hidden_size % c->num_attention_heads)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: no \"head_dim\" and hidden_size %d is not a multiple of "
                         "num_attention_heads %d", path, c->hidden_size, c->num_attention_heads);
    AIL_CHECK(json_int(root, path, "head_dim", 0, c->hidden_size / c->num_attention_heads,
                       &c->head_dim));
    if (c->head_dim <= 0)  // the default when num_attention_heads > hidden_size
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: hidden_size %d / num_attention_heads %d gives head_dim 0: set \"head_dim\"",
                         path, c->hidden_size, c->num_attention_heads);
    AIL_CHECK(json_int(root, path, "vocab_size", 1, 0, &c->vocab_size));
    AIL_CHECK(json_int(root, path, "max_position_embeddings", 0, llama ? 2048 : qwen2 ? 32768 : 131072,
                       &c->max_position_embeddings));
    AIL_CHECK(json_double(root, path, "rms_norm_eps", 1e-6, &c->rms_norm_eps));
    // transformers >= 5 nests rope_theta in "rope_parameters"; older files keep it on top
    AIL_CHECK(parse_rope(root, path, c));
    AIL_CHECK(json_bool(root, path, "tie_word_embeddings", 0, &c->tie_word_embeddings));
    // biases as transformers builds them: LLaMA's attention_bias puts one on q, k, v
    // AND o; Qwen2 always has q, k, v biases and never an o bias (it has no such key);
    // Mistral has none
    int bias, mlp_bias;
    AIL_CHECK(json_bool(root, path, "attention_bias", 0, &bias));
    AIL_CHECK(json_bool(root, path, "mlp_bias", 0, &mlp_bias));
    if (!strcmp(c->model_type, "llama")) c->attention_bias = c->o_proj_bias = bias, c->mlp_bias = mlp_bias;
    else if (!strcmp(c->model_type, "qwen2")) c->attention_bias = 1;
    else if (bias) return refuse(path, "attention_bias", key_of(root, "attention_bias"),
                                 "transformers' Mistral has no attention biases and would drop them");
    if (strcmp(c->model_type, "llama") && mlp_bias)
        return refuse(path, "mlp_bias", key_of(root, "mlp_bias"),
                      "only transformers' LLaMA has MLP biases; this class would drop them");
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return AIL_ERROR(AIL_ERR_FORMAT,
                         "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
                         path, c->num_attention_heads, c->num_key_value_heads);
    c->torch_dtype = DTYPE_F32;
    // "torch_dtype" before transformers 5, "dtype" since
    const char *dkey = key_of(root, "torch_dtype") ? "torch_dtype" : "dtype";
    const cJSON *td = key_of(root, dkey);
    if (td) {
        c->torch_dtype = cJSON_IsString(td) ? dtype_from_torch_name(td->valuestring) : DTYPE_INVALID;
        if (!dtype_is_float(c->torch_dtype))
            return refuse(path, dkey, td, "float32, bfloat16, float16 or float64");
    }
    return check_unsupported(root, path, c);
}

int model_config_load(const char *path, ModelConfig *cfg) {
    cJSON *root;
    AIL_CHECK(json_load(path, &root));
    int rc = parse_config(root, path, cfg);
    cJSON_Delete(root);
    return rc;
}

static int regular_file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Shard file names from model.safetensors.index.json, deduplicated, in first-seen order. */
static int index_shard_files(const char *index_path, char ***files, int *count) {
    cJSON *root;
    AIL_CHECK(json_load(index_path, &root));
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: missing \"weight_map\" object", index_path);
    }
    int cap = cJSON_GetArraySize(map), n = 0;
    char **names = ail_calloc((size_t)(cap > 0 ? cap : 1), sizeof *names);
    if (!names) {
        cJSON_Delete(root);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory reading %s", index_path);
    }
    int rc = AIL_OK;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, map) {
        if (!cJSON_IsString(entry) || strchr(entry->valuestring, '/')) {
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: weight_map entry \"%s\" is not a file name",
                           index_path, entry->string);
            break;
        }
        int seen = 0;
        for (int i = 0; i < n && !seen; i++) seen = strcmp(names[i], entry->valuestring) == 0;
        if (!seen) names[n++] = strdup(entry->valuestring);
    }
    cJSON_Delete(root);
    if (rc == AIL_OK && n == 0) rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: empty weight_map", index_path);
    if (rc != AIL_OK) {
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
        return rc;
    }
    *files = names;
    *count = n;
    return AIL_OK;
}

/* The checkpoint against config.json: every layer tensor present has the shape the
 * config implies, and the biases present are exactly those transformers' class
 * builds (a bias the config does not declare would be dropped by transformers and
 * by ailora alike, a declared one that is missing initialized at random: refused,
 * since the config then mislabels the model). */
static int check_tensors(const HFModel *model) {
    const ModelConfig *c = &model->config;
    int H = c->hidden_size, I = c->intermediate_size, qd = c->num_attention_heads * c->head_dim;
    int kd = c->num_key_value_heads * c->head_dim;
    const struct { const char *name; int out, in, bias; } mods[] = {
        {"self_attn.q_proj", qd, H, c->attention_bias}, {"self_attn.k_proj", kd, H, c->attention_bias},
        {"self_attn.v_proj", kd, H, c->attention_bias}, {"self_attn.o_proj", H, qd, c->o_proj_bias},
        {"mlp.gate_proj", I, H, c->mlp_bias}, {"mlp.up_proj", I, H, c->mlp_bias}, {"mlp.down_proj", H, I, c->mlp_bias}};
    char name[160];
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", c->num_hidden_layers);
    if (hfmodel_shard_of(model, name) >= 0)  // transformers would drop the extra layers
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor \"%s\" exists but config.json says num_hidden_layers %d",
                         model->dir, name, c->num_hidden_layers);
    for (int l = 0; l < c->num_hidden_layers; l++)
        for (size_t i = 0; i < sizeof mods / sizeof *mods; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, mods[i].name);
            int shard = hfmodel_shard_of(model, name);
            const SafeTensor *t = shard < 0 ? NULL : safetensors_find(&model->shards[shard], name);
            if (t && !(t->ndim == 2 && t->shape[0] == mods[i].out && t->shape[1] == mods[i].in))
                return AIL_ERROR(AIL_ERR_FORMAT,
                                 "%s: tensor \"%s\" is not [%d, %d] as config.json implies (hidden_size %d, "
                                 "intermediate_size %d, heads %d, kv heads %d, head_dim %d)",
                                 model->dir, name, mods[i].out, mods[i].in, H, I, c->num_attention_heads,
                                 c->num_key_value_heads, c->head_dim);
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, mods[i].name);
            if (t && mods[i].bias && hfmodel_shard_of(model, name) < 0)  // transformers: a random bias
                return AIL_ERROR(AIL_ERR_FORMAT, "%s: tensor \"%s\" is missing but config.json (model_type \"%s\"%s) "
                                 "implies it", model->dir, name, c->model_type,
                                 !strcmp(c->model_type, "llama") ? (i < 4 ? ", attention_bias true" : ", mlp_bias true")
                                                                 : "");
            if (!mods[i].bias && hfmodel_shard_of(model, name) >= 0)
                return AIL_ERROR(AIL_ERR_FORMAT,
                                 "%s: tensor \"%s\" exists but model_type \"%s\" with this config.json has no "
                                 "such bias (transformers would drop it)", model->dir, name, c->model_type);
        }
    return AIL_OK;
}

int hfmodel_open(const char *dir, HFModel *model) {
    memset(model, 0, sizeof *model);
    char path[4096];
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return AIL_ERROR(AIL_ERR_IO, "model directory %s does not exist", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    AIL_CHECK(model_config_load(path, &model->config));

    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (regular_file_exists(path)) {
        AIL_CHECK(index_shard_files(path, &model->shard_files, &model->nshards));
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (!regular_file_exists(path))
            return AIL_ERROR(AIL_ERR_IO,
                             "%s: neither model.safetensors nor model.safetensors.index.json found",
                             dir);
        model->nshards = 1;
        model->shard_files = ail_malloc(sizeof(char *));
        if (!model->shard_files) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
        model->shard_files[0] = strdup("model.safetensors");
    }
    model->dir = strdup(dir);
    model->shards = ail_calloc((size_t)model->nshards, sizeof(SafeTensors));
    if (!model->dir || !model->shards) {
        hfmodel_close(model);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    }
    for (int i = 0; i < model->nshards; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, model->shard_files[i]);
        int rc = safetensors_open(path, &model->shards[i]);
        if (rc != AIL_OK) {
            hfmodel_close(model);
            return rc;
        }
    }
    int rc = check_tensors(model);
    if (rc != AIL_OK) hfmodel_close(model);
    return rc;
}

void hfmodel_close(HFModel *model) {
    if (model->shards)
        for (int i = 0; i < model->nshards; i++)
            if (model->shards[i].map) safetensors_close(&model->shards[i]);
    if (model->shard_files)
        for (int i = 0; i < model->nshards; i++) free(model->shard_files[i]);
    free(model->shards);
    free(model->shard_files);
    free(model->dir);
    memset(model, 0, sizeof *model);
}

int hfmodel_shard_of(const HFModel *model, const char *name) {
    for (int i = 0; i < model->nshards; i++)
        if (safetensors_find(&model->shards[i], name)) return i;
    return -1;
}

int hfmodel_tensor(const HFModel *model, const char *name, const SafeTensor **tensor) {
    int shard = hfmodel_shard_of(model, name);
    if (shard < 0)
        return AIL_ERROR(AIL_ERR_FORMAT, "tensor \"%s\" not found in model %s", name, model->dir);
    *tensor = safetensors_find(&model->shards[shard], name);
    return AIL_OK;
}

/* The HF module path of a target suffix, or NULL if the suffix is not a linear
 * module of a LLaMA-family layer. */
static const char *module_block(const char *suffix) {
    static const char *const attn[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    static const char *const mlp[] = {"gate_proj", "up_proj", "down_proj"};
    for (size_t i = 0; i < sizeof attn / sizeof *attn; i++)
        if (strcmp(suffix, attn[i]) == 0) return "self_attn";
    for (size_t i = 0; i < sizeof mlp / sizeof *mlp; i++)
        if (strcmp(suffix, mlp[i]) == 0) return "mlp";
    return NULL;
}

int hfmodel_targets(const HFModel *model, const char *suffix_csv, TargetModule **targets,
                    int *count) {
    char suffixes[16][32];
    int nsuffix = 0;
    const char *p = suffix_csv;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof suffixes[0] || nsuffix == 16)
            return AIL_ERROR(AIL_ERR_ARG, "bad target list \"%s\"", suffix_csv);
        memcpy(suffixes[nsuffix], p, len);
        suffixes[nsuffix][len] = '\0';
        if (!module_block(suffixes[nsuffix]))
            return AIL_ERROR(AIL_ERR_ARG,
                             "unknown target module \"%s\" (known: q_proj k_proj v_proj o_proj "
                             "gate_proj up_proj down_proj)",
                             suffixes[nsuffix]);
        for (int i = 0; i < nsuffix; i++)
            if (strcmp(suffixes[i], suffixes[nsuffix]) == 0)
                return AIL_ERROR(AIL_ERR_ARG, "target \"%s\" listed twice", suffixes[i]);
        nsuffix++;
        p += len + (comma ? 1 : 0);
    }
    if (nsuffix == 0) return AIL_ERROR(AIL_ERR_ARG, "empty target list");

    int L = model->config.num_hidden_layers;
    TargetModule *t = ail_calloc((size_t)(L * nsuffix), sizeof *t);
    if (!t) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int layer = 0; layer < L; layer++) {
        for (int s = 0; s < nsuffix; s++) {
            TargetModule *tm = &t[layer * nsuffix + s];
            snprintf(tm->name, sizeof tm->name, "model.layers.%d.%s.%.31s", layer,
                     module_block(suffixes[s]), suffixes[s]);
            snprintf(tm->suffix, sizeof tm->suffix, "%.31s", suffixes[s]);
            tm->layer = layer;
            char wname[160];
            snprintf(wname, sizeof wname, "%s.weight", tm->name);
            int rc = hfmodel_tensor(model, wname, &tm->weight);
            if (rc == AIL_OK && tm->weight->ndim != 2)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "tensor \"%s\" in %s has %d dimensions, expected 2",
                               wname, model->dir, tm->weight->ndim);
            if (rc == AIL_OK && !dtype_is_float(tm->weight->dtype))
                rc = AIL_ERROR(AIL_ERR_FORMAT, "tensor \"%s\" in %s has integer dtype %s", wname,
                               model->dir, dtype_name(tm->weight->dtype));
            if (rc == AIL_OK && (tm->weight->shape[0] <= 0 || tm->weight->shape[1] <= 0 ||
                                 tm->weight->shape[0] > (1 << 30) || tm->weight->shape[1] > (1 << 30)))
                rc = AIL_ERROR(AIL_ERR_FORMAT, "tensor \"%s\" in %s has an unusable shape", wname,
                               model->dir);
            if (rc != AIL_OK) {
                free(t);
                return rc;
            }
            tm->m = (int)tm->weight->shape[0];
            tm->n = (int)tm->weight->shape[1];
            tm->dtype = tm->weight->dtype;
        }
    }
    *targets = t;
    *count = L * nsuffix;
    return AIL_OK;
}

void target_suffixes(const TargetModule *targets, int count, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < count; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = strcmp(targets[j].suffix, targets[i].suffix) == 0;
        if (!seen && used < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "", targets[i].suffix);
    }
}

int json_file_write(const char *path, const cJSON *root) {
    char *text = cJSON_Print(root);
    if (!text) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    size_t n = strlen(text);
    int rc = file_write_atomic(path, text, n);
    free(text);
    return rc;
}

