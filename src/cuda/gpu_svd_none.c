/* gpu_svd_none.c - gpu_svd.h in builds without CUDA: no devices, clear errors. */
#include "ailora/gpu_svd.h"

#include "ailora/error.h"

int gpu_svd_available(void) { return 0; }

int gpu_svd_set_device(int device) {
    return AIL_ERROR(AIL_ERR_ARG, "built without CUDA (configure --with-cuda)");
}

int gpu_svd_f64(int m, int n, const double *w, double *S, double *U, double *Vt) {
    return AIL_ERROR(AIL_ERR_ARG, "built without CUDA (configure --with-cuda)");
}
