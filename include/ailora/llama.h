/* llama.h - a LLaMA-family decoder with LoRA adapters: forward and hand-written
 * backward on the CPU (BLIS GEMMs, OpenMP loops), llm.c style.
 *
 *   x = embed[tokens]                                      (B, T, H)
 *   per layer:
 *     h = rmsnorm(x) * ln1
 *     q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)   (+ s (h A^T) B^T if adapted)
 *     q, k = rope(q), rope(k)            HF rotate-half: pairs (i, i + hd/2), at position t
 *                                        (padded rows: max(cumsum(mask) - 1, 0), llama_acts_set_mask)
 *     y = causal softmax(q k^T / sqrt(hd)) v               grouped-query: kv head = h / (nh / nkv);
 *                                        padded rows: real keys only, a padding query sees itself
 *     x = x + y Wo^T (+bo)                                 LLaMA attention_bias: q, k, v and o biases
 *     h2 = rmsnorm(x) * ln2
 *     x = x + (silu(h2 Wg^T (+bg)) * (h2 Wu^T (+bu))) Wd^T (+bd)  LLaMA mlp_bias
 *   logits = rmsnorm(x) * norm  W_head^T                   (B, T, V), W_head = embed if tied
 *
 * Loss: labels aligned with tokens (HF convention): position t predicts
 * labels[t + 1]; -100 is not scored. llama_forward returns the SUM of the token
 * cross-entropies; callers divide by the scored-token count of the global batch,
 * which llama_backward takes as loss_scale = 1 / count, so data-parallel ranks
 * weight their shares exactly as one rank on the whole batch would.
 *
 * Only adapters get gradients (frozen weights cost no gradient memory), unless
 * llama_enable_base_grads turns on full-parameter training (pretraining): then
 * every base tensor gets a gradient at the same offset in grad_storage. Attention
 * keeps only the per-row log-sum-exp and recomputes probabilities in backward.
 *
 * Tensor parallelism (Megatron layout) over llm->tp_comm of tp_size ranks:
 *   column-parallel q, k, v, gate, up: each rank holds nh/tp query heads, nkv/tp kv
 *     heads, I/tp MLP columns (rows of W, and of B); A is replicated and its
 *     gradient is a partial sum over tp (llama_adapter_tp_partial says which)
 *   row-parallel o, down: each rank holds the matching columns of W (and of A);
 *     B and the biases (o, down) are replicated. Forward all-reduces the partial outputs (and
 *     the adapter's h A^T, so that B sees the whole projection), then adds the
 *     bias once
 *   backward all-reduces the input gradient of each column-parallel group (q,k,v
 *     and gate,up) before the RMSNorm backward; embeddings, norms and the LM head
 *     are replicated and computed by every rank.
 * nh, nkv and I below are this rank's LOCAL counts; cfg holds the model's.
 *
 * Build with -DAILORA_REAL_DOUBLE for a float64 copy (names end in _f64), used by
 * the finite-difference gradient tests.
 */
#ifndef AILORA_LLAMA_H
#define AILORA_LLAMA_H

#include <mpi.h>
#include <stdint.h>

#include "ailora/hfmodel.h"

#ifdef AILORA_REAL_DOUBLE
typedef double real;
#define llama_load llama_load_f64
#define llama_load_tp llama_load_tp_f64
#define llama_adapter_tp_sharded llama_adapter_tp_sharded_f64
#define llama_adapter_tp_partial llama_adapter_tp_partial_f64
#define llama_free llama_free_f64
#define llama_adapter_attach llama_adapter_attach_f64
#define llama_acts_alloc llama_acts_alloc_f64
#define llama_acts_free llama_acts_free_f64
#define llama_acts_set_mask llama_acts_set_mask_f64
#define llama_forward llama_forward_f64
#define llama_backward llama_backward_f64
#define llama_zero_grads llama_zero_grads_f64
#define llama_linear_index llama_linear_index_f64
#define eval_generate_greedy eval_generate_greedy_f64
#define llama_enable_base_grads llama_enable_base_grads_f64
#define llama_save llama_save_f64
#else
typedef float real;
#endif

/* The seven linear modules of a layer, in this order. */
enum { LIN_Q = 0, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, LIN_COUNT };
/* LIN_* index of a suffix ("q_proj" ...), -1 if none. */
int llama_linear_index(const char *suffix);
/* Row-parallel under tensor parallelism (o, down); the others are column-parallel. */
static inline int llama_row_parallel(int lin) { return lin == LIN_O || lin == LIN_DOWN; }

typedef struct {
    int m, n, r;     /* base weight (m, n); rank r */
    real scale;      /* alpha / r */
    real *A, *B;     /* (r, n), (m, r) trainable */
    real *dA, *dB;   /* gradients, same shapes */
} LoraAdapter;

typedef struct {
    real *ln1, *ln2;            /* (H) */
    real *w[LIN_COUNT];         /* (out, in) */
    real *bias[LIN_COUNT];      /* biases or NULL: column-parallel ones this rank's rows (out),
                                   row-parallel o, down whole (H) */
    LoraAdapter *lora[LIN_COUNT];  /* NULL where not adapted */
} LlamaLayer;

typedef struct {
    ModelConfig cfg;              /* max_position_embeddings: the longest sequence it runs
                                     (config.json's, or an active sliding_window) */
    int H, I, V, L, nh, nkv, hd;  /* hidden, intermediate (local), vocab, layers, heads (local), kv heads (local), head dim */
    int tp_size, tp_rank;         /* tensor-parallel layout: 1, 0 without */
    MPI_Comm tp_comm;             /* MPI_COMM_NULL without */
    real *embed;                  /* (V, H) */
    real *final_norm;             /* (H) */
    real *lm_head;                /* (V, H); == embed when tied */
    LlamaLayer *layers;
    real *rope_cos, *rope_sin;    /* (max_pos, hd/2) */
    real *storage;                /* one allocation behind every base tensor */
    size_t storage_size;          /* elements in storage */
    real *grad_storage;           /* same layout: base gradients, NULL unless enabled */
} Llama;

/* Activations of one forward pass over N = B * T tokens, kept for backward. */
typedef struct {
    int B, T;
    real *x;          /* (L + 1, N, H) residual stream entering each layer, and the final one */
    real *h1, *rstd1; /* (L, N, H), (L, N) */
    real *q, *k, *v;  /* (L, N, nh*hd), (L, N, nkv*hd) x 2: after rope */
    real *lse;        /* (L, B, nh, T) attention log-sum-exp */
    real *y;          /* (L, N, nh*hd) attention output */
    real *xm;         /* (L, N, H) residual after attention */
    real *h2, *rstd2; /* (L, N, H), (L, N) */
    real *g, *u;      /* (L, N, I) gate and up projections */
    real *xf, *rstdf; /* (N, H), (N) final norm */
    real *logits;     /* (N, V); softmax probabilities after the forward */
    real *lora_t;     /* (L, LIN_COUNT, N, rmax): h A^T of each adapter */
    int rmax;
    double *row_loss; /* (N) per-position cross entropy */
    real *row_lse;    /* (N) log-sum-exp of each logits row */
    real *act;        /* (N, I) silu(g) * u, rebuilt per layer */
    real *grad;       /* backward work space, allocated by the first backward */
    const int32_t *tokens;  /* the forward's tokens (for the embedding gradient) */
    real *scratch;    /* per-thread scratch for attention (2 T x T each) */
    real *tp_partial; /* (N, H) partial row-parallel output (tp > 1 only) */
    int nthreads;
    int8_t *mask;     /* (N) llama_acts_set_mask's copy: 1 real token, 0 padding */
    int32_t *pos;     /* (N) RoPE positions max(cumsum(mask) - 1, 0) per row */
    int masked, mask_T; /* a mask is set (for sequences of mask_T positions) */
} LlamaActs;

/* ---- I/O (llama_io.c) ---- */
/* Loads every frozen tensor of model (any dtype) into real precision. */
int llama_load(const HFModel *model, Llama *llm);
/* The same, as this rank's tensor-parallel shard over tp_comm (MPI_COMM_NULL: the
 * whole model): reads only the shard's rows or columns from the mapped files.
 * The heads, kv heads and intermediate size must divide by the tp size. */
int llama_load_tp(const HFModel *model, MPI_Comm tp_comm, Llama *llm);
void llama_free(Llama *llm);
/* Adds an adapter of rank r, scale s on layer `layer`, module lin; A and B are
 * the WHOLE module's (float64, (r, n) and (m, r)); this rank's shard is copied. */
int llama_adapter_attach(Llama *llm, int layer, int lin, int r, double scale, const double *A,
                         const double *B);
int llama_acts_alloc(const Llama *llm, int B, int T, LlamaActs *acts);
void llama_acts_free(LlamaActs *acts);

/* Padding (variable-length rows), HF semantics: mask (B, T) int8, 1 = real token,
 * 0 = padding (left or right). Copied into acts and used by every following
 * llama_forward / llama_backward on them until the next call; NULL (the state
 * after llama_acts_alloc) = every token real, exactly the unmasked model.
 *   position of token t of a row:  max(cumsum(mask)[t] - 1, 0)        (RoPE)
 *   query t sees key j iff j <= t and mask[j] = 1; a padding query sees only itself
 *   position t predicts labels[t + 1] only when mask[t] = mask[t + 1] = 1: a
 *   padding query is never scored (nor a label at a padded position)
 * Values other than 0 and 1 are an error. A padded row gives the same logits on its
 * real positions, loss and gradients as the same tokens unpadded. */
int llama_acts_set_mask(LlamaActs *acts, const int8_t *mask);

/* Forward over tokens (B, T). With labels, *loss_sum gets the summed cross
 * entropy over scored positions and *scored their count; labels may be NULL. */
int llama_forward(const Llama *llm, LlamaActs *acts, const int32_t *tokens, const int32_t *labels,
                  double *loss_sum, long *scored);
/* After llama_forward on the same acts: accumulates the adapter gradients of
 * loss_scale * loss_sum into dA, dB. */
int llama_backward(Llama *llm, LlamaActs *acts, const int32_t *labels, double loss_scale);
void llama_zero_grads(Llama *llm);
/* 1 when module lin's A gradient is a partial sum over tp ranks (column-parallel
 * with tp > 1): callers all-reduce it over tp_comm before the optimizer step. */
int llama_adapter_tp_partial(const Llama *llm, int lin);
/* 1 when module lin's A (which = 0) or B (which = 1) is split over tp ranks. */
int llama_adapter_tp_sharded(const Llama *llm, int lin, int which);
/* Full-parameter training: allocates (zeroed) gradients for every base tensor. */
int llama_enable_base_grads(Llama *llm);
/* Writes the base weights as an HF model directory (config.json from `model`,
 * model.safetensors in F32) through dir.partial + rename. */
int llama_save(const Llama *llm, const HFModel *model, const char *dir);

#endif
