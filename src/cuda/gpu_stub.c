/* gpu_stub.c - gpu.h in builds without CUDA: no devices, and every other call is a
 * one-line error saying how to get the backend. */
#include "ailora/gpu.h"

#include "ailora/error.h"

#define NO_CUDA AIL_ERROR(AIL_ERR_ARG, "device = cuda: ailora was built without CUDA (configure --with-cuda)")

int gpu_device_count(void) { return 0; }
int gpu_select_device(int local_rank) { return (void)local_rank, NO_CUDA; }
int gpu_nccl_unique_id(unsigned char id[128]) { return (void)id, NO_CUDA; }
int gpu_comm_create(const unsigned char id[128], int nranks, int rank, GpuComm **comm) {
    (void)id, (void)nranks, (void)rank, (void)comm;
    return NO_CUDA;
}
void gpu_comm_free(GpuComm *comm) { (void)comm; }
int gpu_comm_size(const GpuComm *comm) { return (void)comm, 0; }
int gpu_model_create(const GpuModelSpec *spec, GpuPrecision prec, int B, int T, GpuComm *tp, GpuModel **out) {
    (void)spec, (void)prec, (void)B, (void)T, (void)tp, (void)out;
    return NO_CUDA;
}
void gpu_model_free(GpuModel *m) { (void)m; }
int gpu_forward(GpuModel *m, const int32_t *tokens, const int32_t *labels, double *loss_sum, long *scored) {
    (void)m, (void)tokens, (void)labels, (void)loss_sum, (void)scored;
    return NO_CUDA;
}
int gpu_set_mask(GpuModel *m, const int8_t *mask) { return (void)m, (void)mask, NO_CUDA; }
int gpu_backward(GpuModel *m, double loss_scale) { return (void)m, (void)loss_scale, NO_CUDA; }
int gpu_zero_grads(GpuModel *m) { return (void)m, NO_CUDA; }
int gpu_grads_allreduce(GpuModel *m, GpuComm *dp) { return (void)m, (void)dp, NO_CUDA; }
int gpu_grad_norm(GpuModel *m, double *norm) { return (void)m, (void)norm, NO_CUDA; }
int gpu_adamw_step(GpuModel *m, const GpuAdamW *cfg, long step, double grad_norm) {
    (void)m, (void)cfg, (void)step, (void)grad_norm;
    return NO_CUDA;
}
int gpu_adapter_download(GpuModel *m, int layer, int lin, float *A, float *B, float *mA, float *vA, float *mB,
                         float *vB) {
    (void)m, (void)layer, (void)lin, (void)A, (void)B, (void)mA, (void)vA, (void)mB, (void)vB;
    return NO_CUDA;
}
int gpu_adapter_upload(GpuModel *m, int layer, int lin, const float *A, const float *B, const float *mA,
                       const float *vA, const float *mB, const float *vB) {
    (void)m, (void)layer, (void)lin, (void)A, (void)B, (void)mA, (void)vA, (void)mB, (void)vB;
    return NO_CUDA;
}
int gpu_adapter_grads(GpuModel *m, int layer, int lin, float *dA, float *dB) {
    (void)m, (void)layer, (void)lin, (void)dA, (void)dB;
    return NO_CUDA;
}
int gpu_generate_greedy(GpuModel *m, int B, int S, const int32_t *prompts, const int8_t *mask, int P, int max_new,
                        const int32_t *eos, int neos, int32_t *out, int *out_len) {
    (void)m, (void)B, (void)S, (void)prompts, (void)mask, (void)P, (void)max_new, (void)eos, (void)neos, (void)out;
    (void)out_len;
    return NO_CUDA;
}
void gpu_generate_free(GpuModel *m) { (void)m; }
size_t gpu_model_bytes(const GpuModel *m) { return (void)m, 0; }
