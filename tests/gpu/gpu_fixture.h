/* gpu_fixture.h - layout of tests/reference/gpu_tiny.bin, the CPU-versus-GPU
 * parity fixture written by tests/gpu/make_gpu_fixture.c (ailora's CPU engine,
 * float32) and read by tests/gpu/test_gpu_train.c. Little-endian, no padding:
 *
 *   char    magic[8]          "AILGPU1"
 *   int32   hdr[GF_NHDR]      H, I, V, L, nh, nkv, hd, max_pos, B, T, steps, r, ninit
 *   double  hyp[GF_NHYP]      rms_eps, lora scale, lr, beta1, beta2, eps, weight_decay, grad_clip
 *   float   rope_cos[max_pos * hd/2], rope_sin[...]
 *   int32   tokens[steps * B * T], labels[steps * B * T]
 *   per init (0: lora = random A, zero B; 1: ailora = q principal, v minor, others
 *   principal, with the residual weights):
 *     float  embed[V*H], final_norm[H], lm_head[V*H]
 *     per layer: ln1[H], ln2[H], w[7][m*n] (q, k, v, o, gate, up, down)
 *     per layer, per module (all 7 adapted): A[r*n], B[m*r]        initial adapters
 *     double losses[steps] (sum / count), grad_norms[steps] (pre-clip)
 *     per layer, per module: dA[r*n], dB[m*r]                        gradients of step 1
 *     per layer, per module: A[r*n], B[m*r]                          after the last step
 */
#ifndef AILORA_GPU_FIXTURE_H
#define AILORA_GPU_FIXTURE_H

enum { GF_NHDR = 13, GF_NHYP = 8 };
enum { GF_H, GF_I, GF_V, GF_L, GF_NH, GF_NKV, GF_HD, GF_MAXPOS, GF_B, GF_T, GF_STEPS, GF_R, GF_NINIT };
enum { GF_EPS_RMS, GF_SCALE, GF_LR, GF_B1, GF_B2, GF_EPS, GF_WD, GF_CLIP };

/* (out, in) of the 7 linear modules */
static inline void gf_shapes(const int *h, int out[7], int in[7]) {
    int qd = h[GF_NH] * h[GF_HD], kd = h[GF_NKV] * h[GF_HD], H = h[GF_H], I = h[GF_I];
    int o[7] = {qd, kd, kd, H, I, I, H}, n[7] = {H, H, H, qd, H, H, I};
    for (int i = 0; i < 7; i++) out[i] = o[i], in[i] = n[i];
}

#endif
