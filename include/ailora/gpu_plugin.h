/* gpu_plugin.h - the CUDA backend (gpu.h, gpu_svd.h) as a plugin loaded at run time.
 *
 * Why: linking cudart, cuBLAS, cuSOLVER and NCCL into ailora costs every run about
 * 0.1 s of start-up (the libraries are ~1 GB; an MPI hello on 2 ranks starts in
 * 0.34 s without them and 0.44 s with them: experiments/bench/launch_bench.sh,
 * logs/launch_20261203.txt), and a binary linked against them does not
 * start at all on CPU nodes where the CUDA libraries are not installed. So a CUDA
 * build puts the backend in libailora-cuda.so, and the first gpu_* call loads it:
 *
 *   ailora (libailora.a, gpu_loader.c)         libailora-cuda.so (gpu_plugin.c)
 *     gpu_forward(m, ...)                          gpu_forward(m, ...)  gpu_model.cu
 *       -> plugin ops->gpu_forward(m, ...)   <-  ailora_gpu_plugin(&host): the ops
 *
 * Where the plugin is looked for, first found wins:
 *   1. $AILORA_CUDA_PLUGIN (a path; if set, only this one)
 *   2. libailora-cuda.so next to the executable (the build tree's ./ailora)
 *   3. $(pkglibdir)/libailora-cuda.so (the installed one)
 *   4. the build tree's, for programs built in subdirectories (tests, benchmarks)
 * When none loads, gpu_device_count() and gpu_svd_available() are 0, the other
 * calls return one error line saying why (gpu_unavailable_reason), and the CPU
 * paths never notice. The plugin exports one symbol, GPU_PLUGIN_ENTRY; everything
 * else in it is local (src/cuda/gpu_plugin.map), so its own calls between gpu_*
 * functions never reach the loader's same-named wrappers. Errors raised inside the
 * plugin go to the host's error record, and its allocations through the host's
 * fault points (AILORA_FAULT), via GpuPluginHost.
 */
#ifndef AILORA_GPU_PLUGIN_H
#define AILORA_GPU_PLUGIN_H

#include "ailora/gpu.h"
#include "ailora/gpu_backend.h"  /* gpu_unavailable_reason, gpu_plugin_path */
#include "ailora/gpu_svd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bump when a signature below or GpuPluginOps changes: a stale plugin is refused. */
#define GPU_PLUGIN_ABI 2
#define GPU_PLUGIN_ENTRY "ailora_gpu_plugin"
#define GPU_PLUGIN_FILE "libailora-cuda.so"

/* The backend's calls, once: X(return type, name, (parameters), (arguments)).
 * CALLS return AIL_OK or an error code (an error without the plugin). */
#define GPU_PLUGIN_CALLS(X)                                                                      \
    X(int, gpu_select_device, (int local_rank), (local_rank))                                    \
    X(int, gpu_nccl_unique_id, (unsigned char id[128]), (id))                                    \
    X(int, gpu_comm_create, (const unsigned char id[128], int nranks, int rank, GpuComm **comm), \
      (id, nranks, rank, comm))                                                                  \
    X(int, gpu_model_create,                                                                     \
      (const GpuModelSpec *spec, GpuPrecision prec, int B, int T, GpuComm *tp, GpuModel **out),  \
      (spec, prec, B, T, tp, out))                                                               \
    X(int, gpu_forward, (GpuModel *m, const int32_t *tokens, const int32_t *labels,              \
                         double *loss_sum, long *scored), (m, tokens, labels, loss_sum, scored)) \
    X(int, gpu_set_mask, (GpuModel *m, const int8_t *mask), (m, mask))                           \
    X(int, gpu_backward, (GpuModel *m, double loss_scale), (m, loss_scale))                      \
    X(int, gpu_zero_grads, (GpuModel *m), (m))                                                   \
    X(int, gpu_grads_allreduce, (GpuModel *m, GpuComm *dp), (m, dp))                             \
    X(int, gpu_grad_norm, (GpuModel *m, double *norm), (m, norm))                                \
    X(int, gpu_adamw_step, (GpuModel *m, const GpuAdamW *cfg, long step, double grad_norm),      \
      (m, cfg, step, grad_norm))                                                                 \
    X(int, gpu_adapter_download, (GpuModel *m, int layer, int lin, float *A, float *B,           \
                                  float *mA, float *vA, float *mB, float *vB),                   \
      (m, layer, lin, A, B, mA, vA, mB, vB))                                                     \
    X(int, gpu_adapter_upload, (GpuModel *m, int layer, int lin, const float *A, const float *B, \
                                const float *mA, const float *vA, const float *mB,               \
                                const float *vB), (m, layer, lin, A, B, mA, vA, mB, vB))         \
    X(int, gpu_adapter_grads, (GpuModel *m, int layer, int lin, float *dA, float *dB),           \
      (m, layer, lin, dA, dB))                                                                   \
    X(int, gpu_generate_greedy, (GpuModel *m, int B, int S, const int32_t *prompts,              \
                                 const int8_t *mask, int P, int max_new, const int32_t *eos,     \
                                 int neos, int32_t *out, int *out_len),                          \
      (m, B, S, prompts, mask, P, max_new, eos, neos, out, out_len))                             \
    X(int, gpu_svd_set_device, (int device), (device))                                           \
    X(int, gpu_svd_f64, (int m, int n, const double *w, double *S, double *U, double *Vt),       \
      (m, n, w, S, U, Vt))                                                                       \
    X(int, gpu_svd_pipe_create, (int nslots, GpuSvdPipe **pipe), (nslots, pipe))                \
    X(int, gpu_svd_submit, (GpuSvdPipe *pipe, int slot, int m, int n, int nkept, const int *kept), \
      (pipe, slot, m, n, nkept, kept))                                                           \
    X(int, gpu_svd_wait, (GpuSvdPipe *pipe, int slot, GpuSvdResult *res), (pipe, slot, res))

/* QUERIES answer 0 (NULL) without the plugin. */
#define GPU_PLUGIN_QUERIES(X)                                          \
    X(int, gpu_device_count, (void), ())                               \
    X(double *, gpu_svd_input, (GpuSvdPipe *pipe, int slot, int m, int n), (pipe, slot, m, n)) \
    X(int, gpu_have_nccl, (void), ())                                  \
    X(int, gpu_comm_size, (const GpuComm *comm), (comm))               \
    X(size_t, gpu_model_bytes, (const GpuModel *m), (m))               \
    X(int, gpu_svd_available, (void), ())

/* RELEASES do nothing without the plugin (nothing can have been allocated). */
#define GPU_PLUGIN_RELEASES(X)                                         \
    X(void, gpu_comm_free, (GpuComm *comm), (comm))                    \
    X(void, gpu_model_free, (GpuModel *m), (m))                        \
    X(void, gpu_generate_free, (GpuModel *m), (m))                 \
    X(void, gpu_svd_pipe_free, (GpuSvdPipe *pipe), (pipe))

#define GPU_PLUGIN_FIELD(ret, name, params, args) ret(*name) params;
typedef struct {
    int abi;      /* GPU_PLUGIN_ABI of the plugin's build */
    size_t size;  /* sizeof(GpuPluginOps) of the plugin's build */
    GPU_PLUGIN_CALLS(GPU_PLUGIN_FIELD)
    GPU_PLUGIN_QUERIES(GPU_PLUGIN_FIELD)
    GPU_PLUGIN_RELEASES(GPU_PLUGIN_FIELD)
} GpuPluginOps;

/* What the host lends the plugin (error.h): its error record, and its allocation
 * and fault points, so AILORA_FAULT reaches inside the plugin too. */
typedef struct {
    int (*error_set)(int code, const char *file, int line, const char *func, const char *fmt, ...);
    int (*error_code)(void);
    int (*fault_at)(const char *kind, const char *file, int line);
    void *(*malloc_at)(size_t bytes, const char *file, int line);
    void *(*calloc_at)(size_t count, size_t size, const char *file, int line);
    void *(*realloc_at)(void *p, size_t bytes, const char *file, int line);
} GpuPluginHost;

typedef const GpuPluginOps *(*GpuPluginEntry)(const GpuPluginHost *host);

#ifdef __cplusplus
}
#endif

#endif
