/* gpu_svd_none.c - gpu_svd.h in builds without CUDA: no devices, clear errors. */
#include "ailora/gpu_svd.h"

#include <stddef.h>

#include "ailora/error.h"

#define NO_CUDA AIL_ERROR(AIL_ERR_ARG, "built without CUDA (configure --with-cuda)")

int gpu_svd_available(void) { return 0; }

int gpu_svd_set_device(int device) { return (void)device, NO_CUDA; }

int gpu_svd_f64(int m, int n, const double *w, double *S, double *U, double *Vt) {
    (void)m, (void)n, (void)w, (void)S, (void)U, (void)Vt;
    return NO_CUDA;
}

int gpu_svd_pipe_create(int nslots, GpuSvdPipe **pipe) {
    (void)nslots;
    *pipe = NULL;
    return NO_CUDA;
}

void gpu_svd_pipe_free(GpuSvdPipe *pipe) { (void)pipe; }

double *gpu_svd_input(GpuSvdPipe *pipe, int slot, int m, int n) {
    (void)pipe, (void)slot, (void)m, (void)n;
    NO_CUDA;
    return NULL;
}

int gpu_svd_submit(GpuSvdPipe *pipe, int slot, int m, int n, int nkept, const int *kept) {
    (void)pipe, (void)slot, (void)m, (void)n, (void)nkept, (void)kept;
    return NO_CUDA;
}

int gpu_svd_wait(GpuSvdPipe *pipe, int slot, GpuSvdResult *res) {
    (void)pipe, (void)slot, (void)res;
    return NO_CUDA;
}
