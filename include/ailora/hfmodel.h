/* hfmodel.h - a Hugging Face model directory: config.json + safetensors shards.
 *
 * Supports the LLaMA family (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM
 * shapes): a single model.safetensors, or shards model-0000X-of-0000Y.safetensors
 * listed by model.safetensors.index.json ("weight_map": tensor -> shard file).
 * Every shard is mapped read-only; tensors are looked up by their HF name.
 */
#ifndef AILORA_HFMODEL_H
#define AILORA_HFMODEL_H

#include "ailora/dtype.h"
#include "ailora/safetensors.h"

/* RoPE inverse frequencies: theta^(-2j/d), divided by factor (linear), or Llama 3.1's
 * rescaling (llama3: low frequencies / factor, high ones kept, a smooth band between). */
typedef enum { ROPE_DEFAULT = 0, ROPE_LINEAR, ROPE_LLAMA3 } RopeType;

typedef struct {
    int hidden_size;
    int intermediate_size;
    int num_hidden_layers;
    int num_attention_heads;
    int num_key_value_heads;  /* defaults to num_attention_heads */
    int head_dim;             /* defaults to hidden_size / num_attention_heads */
    int vocab_size;
    int max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    RopeType rope_type;
    double rope_factor;                       /* linear, llama3 */
    double rope_low_freq_factor, rope_high_freq_factor;  /* llama3 */
    int rope_original_max_pos;                /* llama3: original_max_position_embeddings */
    int sliding_window;       /* 0, or an active window < max_position_embeddings: the model
                                 then runs sequences of at most this many tokens (where the
                                 window masks nothing, so attention is exact) */
    int tie_word_embeddings;  /* 0/1, default 0 */
    int attention_bias;       /* 0/1: q/k/v biases (LLaMA's attention_bias; Qwen2 always) */
    int o_proj_bias;          /* 0/1: o_proj bias (LLaMA's attention_bias; never in Qwen2) */
    int mlp_bias;             /* 0/1: gate, up and down biases (LLaMA's mlp_bias) */
    DType torch_dtype;        /* storage dtype named in config.json, default F32 */
    char model_type[32];      /* "llama", "mistral" or "qwen2" (inferred from architectures, else llama) */
} ModelConfig;

typedef struct {
    char *dir;
    ModelConfig config;
    int nshards;
    SafeTensors *shards;
    char **shard_files;  /* file names relative to dir */
} HFModel;

/* Parses config.json (missing required keys are an error naming the key) and maps
 * every shard. On error nothing stays open.
 *
 * config.json is held to what the engine computes exactly as transformers does:
 * model_type / architectures llama (LlamaForCausalLM), mistral, qwen2; SiLU MLP
 * (with biases: LLaMA's mlp_bias); RoPE of type default, linear or llama3 on whole heads; full
 * causal attention (an active sliding window limits sequences to its length);
 * no soft-capping, attention dropout, quantization or remote code; a float
 * torch_dtype. Anything else is one error line naming the key and its value.
 * (An odd head_dim, which transformers cannot run either, is refused by llama_load:
 * the SVD of such a model's matrices is still well defined.) */
int hfmodel_open(const char *dir, HFModel *model);
void hfmodel_close(HFModel *model);
/* Parses a config.json file only. */
int model_config_load(const char *path, ModelConfig *cfg);

/* Finds a tensor by HF name; AIL_ERR_FORMAT naming the tensor and directory if absent. */
int hfmodel_tensor(const HFModel *model, const char *name, const SafeTensor **tensor);
/* Index of the shard holding name, -1 if absent. */
int hfmodel_shard_of(const HFModel *model, const char *name);

/* A target linear module: "model.layers.{i}.self_attn.q_proj" with its weight
 * "<module>.weight" of shape [m, n] (out x in). */
typedef struct {
    char name[128];     /* module name, e.g. model.layers.3.self_attn.v_proj */
    char suffix[32];    /* q_proj, v_proj, ... */
    int layer;
    int m, n;           /* out, in */
    DType dtype;
    const SafeTensor *weight;
} TargetModule;

/* Expands a comma-separated suffix list ("q_proj,v_proj") into the target modules
 * of every layer, in layer order then list order. Unknown suffixes and missing or
 * non-2-D weights are errors. *targets is malloc'ed. */
int hfmodel_targets(const HFModel *model, const char *suffix_csv, TargetModule **targets,
                    int *count);
struct cJSON;
/* Writes a JSON document to path (through path.tmp + rename), as HF tools write
 * config files. */
int json_file_write(const char *path, const struct cJSON *root);

/* The distinct suffixes of targets, in first-seen order, as "q_proj,v_proj". */
void target_suffixes(const TargetModule *targets, int count, char *buf, size_t len);

#endif
