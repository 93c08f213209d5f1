/* gpu_backend.h - is the CUDA backend here? CUDA builds put it in a plugin,
 * libailora-cuda.so, loaded by the first GPU call (gpu_plugin.h says why and where
 * it is looked for); a CPU build, or a CPU node without the CUDA libraries, has
 * none, and the GPU calls of gpu.h / gpu_svd.h then fail with the reason below. */
#ifndef AILORA_GPU_BACKEND_H
#define AILORA_GPU_BACKEND_H

#ifdef __cplusplus
extern "C" {
#endif

/* NULL when the backend is loaded (or loads now); otherwise why not, one line
 * ("built without CUDA (configure --with-cuda)", a dlopen error, ...). */
const char *gpu_unavailable_reason(void);
/* The path the plugin was loaded from ("" when none). */
const char *gpu_plugin_path(void);

#ifdef __cplusplus
}
#endif

#endif
