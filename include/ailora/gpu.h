/* gpu.h - the CUDA training backend: the LLaMA + LoRA model of llama.h on one
 * NVIDIA GPU per rank, forward, hand-written backward and AdamW, with Megatron
 * tensor parallelism and data parallelism over NCCL.
 *
 * Plain C, no MPI / HDF5 / llama.h: the standalone GPU programs build with nvcc
 * alone (src/cuda/gpu_model.cu, src/cuda/gpu_kernels.cu, src/base/error.c with
 * -DAILORA_NO_MPI, -lcublas). NCCL is optional (-DAILORA_HAVE_NCCL -lnccl);
 * without it communicators of more than one rank are an error.
 *
 * Semantics are those of src/model/llama.c (see llama.h): same formulas, same loss
 * convention (sum over scored positions, labels[t + 1] predicted at t, -100 not
 * scored), same AdamW as src/train/optim.c.
 *
 * Precision
 *   GPU_FP32  everything float32; cuBLAS with CUBLAS_COMPUTE_32F, TF32 off.
 *   GPU_BF16  base weights, activations and activation gradients in bfloat16;
 *             every GEMM accumulates in float32 (CUBLAS_COMPUTE_32F); RMSNorm,
 *             RoPE, softmax, SwiGLU and the cross entropy (float32 logits)
 *             compute in float32 inside the kernels and round once on store;
 *             attention scores S = q k^T / sqrt(hd) and dP are stored in
 *             bfloat16, as HF's eager attention does (the softmax reads them
 *             into float32). Norm weights and RoPE tables stay
 *             float32. Adapters: float32 master A, B, gradients and AdamW
 *             moments; the adapter GEMMs read bfloat16 copies of A and B
 *             (refreshed by every AdamW step and upload) and bfloat16 t = x A^T,
 *             and write the adapter gradients dA, dB in float32 (beta = 1
 *             accumulation in float32).
 *   Residuals: spec.layers[l].w of an adapted module is the residual W - s B A
 *             exactly as the host formed and rounded it (train key residual_dtype,
 *             src/train/train.c); GPU_FP32 keeps those float32 values, GPU_BF16
 *             rounds them to bfloat16 on upload like every other weight.
 *
 * Tensor parallelism (Megatron, as the CPU engine): q, k, v, gate, up are
 * column-parallel (weight rows local: nh/tp query heads, nkv/tp kv heads, I/tp
 * MLP columns), o and down row-parallel (weight columns local). Embedding, norms
 * and lm_head are replicated; every rank computes the full logits and the same
 * loss. Adapters: column-parallel A (r, H) replicated, B (m_local, r) local;
 * row-parallel A (r, n_local) local, B (H, r) replicated.
 *
 * Data on the GPU: weights, activations, adapters, gradients and moments stay
 * resident; per step only tokens/labels go up and the loss (and the gradient
 * norm) come down. gpu_forward synchronizes once (for the loss).
 *
 * Attention probabilities of every layer are kept for the backward when they fit
 * in half of the device memory free at gpu_model_create (L * B * nh * T^2
 * activation elements); otherwise the backward recomputes them from q, k, lse.
 *
 * Environment: AILORA_GPU_ATTN_CHUNKS=C sets the number of block-causal chunks of
 * the attention GEMMs (default: 8 for T >= 1024, else 4, 2 or 1; it must divide T).
 * AILORA_GPU_STORE_P=0|1 forces recomputing / keeping the probabilities.
 * AILORA_GPU_PROFILE=1 records CUDA events at phase boundaries (from the third
 * forward on) and prints the time per phase and step at gpu_model_free.
 *
 * MFU convention (experiments/bench/gpu_bench): FLOPs per step
 *   = N * [ 4 * P_lin                    frozen linears: forward + input gradient
 *           + 6 * P_lora                 adapters: forward, input grad, weight grad
 *           + 2 * V * H * 2              lm_head: forward + input gradient
 *           + L * 12 * T * hd * nh / 2 ] causal attention: QK^T, PV forward (4 T hd nh),
 *                                        backward 8 T hd nh; halved for causality
 * with N = B * T tokens, P_lin = L * (sum of the 7 linear weights), P_lora = the
 * adapter parameters; divided by the step time and the H200 dense bf16 peak of
 * 989 TFLOP/s. (A recomputed QK^T in the backward is not counted.)
 *
 * Typical step (every rank):  gpu_zero_grads; gpu_forward; gpu_backward(1 / global
 * scored count); gpu_grads_allreduce(dp); gpu_grad_norm; gpu_adamw_step.
 * From a CPU Llama (llama.h, tp 1): spec.layers[l].w[i] = llm->layers[l].w[i],
 * lora[i] = {ad->m, ad->n, ad->r, ad->scale, ad->A, ad->B} of llm->layers[l].lora[i]
 * (r = 0 where NULL), rope tables, embed, final_norm, lm_head as they are.
 */
#ifndef AILORA_GPU_H
#define AILORA_GPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GPU_FP32 = 0, GPU_BF16 = 1 } GpuPrecision;

typedef struct GpuComm GpuComm;  /* an NCCL communicator (or a size-1 stand-in) */
typedef struct GpuModel GpuModel;

/* Linear modules, in llama.h's LIN_* order. */
enum { GPU_LIN_Q = 0, GPU_LIN_K, GPU_LIN_V, GPU_LIN_O, GPU_LIN_GATE, GPU_LIN_UP, GPU_LIN_DOWN,
       GPU_LIN_COUNT };

/* Number of visible GPUs; 0 when there is no driver or no GPU (never an error). */
int gpu_device_count(void);
/* cudaSetDevice(local_rank % count). */
int gpu_select_device(int local_rank);
/* NCCL unique id (rank 0 creates it, the caller broadcasts it over MPI). Without
 * NCCL the id is zeros, usable only for one-rank communicators. */
int gpu_nccl_unique_id(unsigned char id[128]);
/* Collective over the nranks callers, each after gpu_select_device (NCCL binds
 * the communicator to the current device). nranks 1 needs no NCCL (id ignored). */
int gpu_comm_create(const unsigned char id[128], int nranks, int rank, GpuComm **comm);
void gpu_comm_free(GpuComm *comm);
int gpu_comm_size(const GpuComm *comm);
/* 1 when built with NCCL (AILORA_HAVE_NCCL): communicators of any size. */
int gpu_have_nccl(void);

/* One adapter of this rank (shard): A (r, n), B (m, r) host float32, row-major,
 * with the local m, n of the module; scale = alpha / r. r = 0: not adapted. */
typedef struct {
    int m, n, r;
    double scale;
    const float *A, *B;
} GpuAdapterSpec;

typedef struct {
    const float *ln1, *ln2;       /* (H) */
    const float *w[7];            /* this rank's shard (out_local, in_local), row-major */
    const float *bias[7];         /* biases or NULL: column-parallel (out_local), o and down (H, whole) */
    GpuAdapterSpec lora[7];
} GpuLayerSpec;

typedef struct {
    int H, I, V, L, nh, nkv, hd;  /* nh, nkv, I: this rank's local counts (global / tp_size) */
    double rms_eps;
    int max_pos;                  /* rows of rope_cos / rope_sin */
    const float *rope_cos, *rope_sin;           /* (max_pos, hd/2), HF rotate-half */
    const float *embed, *final_norm, *lm_head;  /* (V, H), (H), (V, H); lm_head == embed if tied */
    const GpuLayerSpec *layers;   /* L of them */
    int tp_size, tp_rank;
} GpuModelSpec;

/* Uploads everything (host data is not referenced afterwards) and allocates the
 * activations for batches of B x T tokens (T <= max_pos). tp: the tensor-parallel
 * communicator (NULL when tp_size == 1). Collective over tp. */
int gpu_model_create(const GpuModelSpec *spec, GpuPrecision prec, int B, int T, GpuComm *tp,
                     GpuModel **out);
void gpu_model_free(GpuModel *m);

/* tokens, labels: host (B, T). labels may be NULL (no loss: *loss_sum = 0,
 * *scored = 0). Token and label ids are checked on the host. Returns the SUM of
 * the token cross entropies over the scored positions and their count. */
int gpu_forward(GpuModel *m, const int32_t *tokens, const int32_t *labels, double *loss_sum,
                long *scored);
/* Padding of the following forwards (and their backwards): mask host (B, T) int8,
 * 1 = real token, 0 = padding; NULL = none (the state after create). Semantics of
 * llama_acts_set_mask (llama.h): RoPE at max(cumsum(mask) - 1, 0), keys j <= t
 * with mask[j] = 1 (a padding query sees itself), only real-to-real predictions
 * scored. Copied; host-only (uploaded by the next gpu_forward). */
int gpu_set_mask(GpuModel *m, const int8_t *mask);
/* After gpu_forward with labels: accumulates the adapter gradients of
 * loss_scale * loss_sum (loss_scale = 1 / scored count of the global batch). */
int gpu_backward(GpuModel *m, double loss_scale);
int gpu_zero_grads(GpuModel *m);
/* tp: sums the column-parallel A gradients over the tp communicator (the model's);
 * then, when dp has more than one rank, sums every gradient over dp. dp may be NULL. */
int gpu_grads_allreduce(GpuModel *m, GpuComm *dp);
/* Global L2 norm of all adapter gradients (after gpu_grads_allreduce): sharded
 * tensors (column-parallel B, row-parallel A) summed over tp, replicated ones
 * (column-parallel A, row-parallel B) counted once. Same value on every rank. */
int gpu_grad_norm(GpuModel *m, double *norm);

/* lr is THIS step's learning rate (optim_lr of the schedule at step - 1). */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay, grad_clip;
} GpuAdamW;
/* torch AdamW with clip_grad_norm_ (factor min(1, clip / (norm + 1e-6)) when
 * grad_clip > 0), exactly as adamw_step in src/train/optim.c; step is the 1-based t. */
int gpu_adamw_step(GpuModel *m, const GpuAdamW *cfg, long step, double grad_norm);

/* Host copies of one adapter (this rank's shard) and its AdamW moments, and back
 * (for run files and checkpoints). NULL pointers are skipped. Not adapted: error. */
int gpu_adapter_download(GpuModel *m, int layer, int lin, float *A, float *B, float *mA, float *vA,
                         float *mB, float *vB);
int gpu_adapter_upload(GpuModel *m, int layer, int lin, const float *A, const float *B,
                       const float *mA, const float *vA, const float *mB, const float *vB);
/* Host copy of the adapter gradients dA (r, n), dB (m, r) (tests). */
int gpu_adapter_grads(GpuModel *m, int layer, int lin, float *dA, float *dB);

/* Greedy generation with a KV cache on the GPU, in the model's precision: the
 * semantics of llama_generate_greedy (llama_decode.h) on this model's current
 * weights and adapters.
 *
 *   prompts, mask   host (B, P), LEFT-padded: mask 1 = real token, 0 = padding
 *                   (mask NULL: all real); the last slot of every row must be real
 *   slots           s = 0 .. S-1 per row; the cache holds K (after RoPE), V of every
 *                   layer per slot: (L, B, S, nkv*hd) in the activation type
 *   positions       HF: max(cumsum(mask) - 1, 0) over the prompt, then one more per
 *                   generated token (slots are not positions: padding takes slots)
 *   prefill         the B*P prompt tokens in one pass; query slot t of row b sees
 *                   slots j <= t with a real token (a padding query sees only itself)
 *   step            one token per live row in slot P + step, attention over the row's
 *                   valid slots; logits (rows, V) float32 of the last real token
 *                   only, and their argmax (the first maximum) on the device: B ints
 *                   come back per step
 *   stop            a row stops at its first eos[0..neos) token (kept in out and
 *                   counted in out_len) or after max_new tokens
 *
 * out (B, max_new) host, row b's tokens in out[b * max_new .. + out_len[b]). Needs
 * S >= P + max_new - 1 (and S <= ~40k: the attention kernel keeps a row's scores
 * in shared memory), max_new >= 1, every position < max_pos (GpuModelSpec).
 * The cache and the decode work space (B x P tokens per pass) are allocated on the
 * first call and grown when a call needs more; freed by gpu_model_free.
 * bf16: weights, activations and the cache in bfloat16 as gpu_forward; the
 * attention scores and softmax in float32 (unlike the training forward's
 * bf16-stored scores). Tensor parallel: every rank of the model's tp communicator
 * calls it with the same arguments; the next tokens are broadcast from tp rank 0. */
int gpu_generate_greedy(GpuModel *m, int B, int S, const int32_t *prompts, const int8_t *mask, int P, int max_new,
                        const int32_t *eos, int neos, int32_t *out, int *out_len);
/* Frees the decoding cache and work space (the next gpu_generate_greedy allocates
 * them again): training gets the memory back between evaluations. */
void gpu_generate_free(GpuModel *m);

/* Device memory in use by this process's allocations for m, bytes. */
size_t gpu_model_bytes(const GpuModel *m);

#ifdef __cplusplus
}
#endif

#endif
