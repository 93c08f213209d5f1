/* gpu_bench.c - LoRA fine-tuning throughput of the CUDA backend (gpu.h) on a
 * ~1B LLaMA with random weights, plus a plain cuBLAS bf16 GEMM for reference.
 *
 *   gpu_bench [B T steps warmup r precision(bf16|fp32) targets(qv|all)]
 *   defaults:  8 1024 10 3 16 bf16 qv   (GPU_BENCH_SHAPE=H,I,V,L,nh,nkv,hd overrides the
 *              TinyLlama-1.1B shape: H 2048, L 22,
 *              nh 32, nkv 4, hd 64, I 5632, V 32000; LoRA r on q_proj, v_proj,
 *              alpha 2r, as the PyTorch + PEFT baseline torch_gpu_lora.py)
 *
 * A step = zero grads, forward (loss), backward, grads allreduce (no-op), grad
 * norm, AdamW. Step time: host wall clock between cudaDeviceSynchronize calls;
 * the median of the timed steps is reported. FLOPs per step (gpu.h):
 *   N [4 P_lin + 6 P_lora + 4 V H + L 6 T hd nh],  N = B T,
 * MFU = FLOPs / step time / 989e12 (H200 dense bf16 peak).
 * Output ends with one line "RESULT key=value ..." for gpu.sh's summary.
 */
#define _POSIX_C_SOURCE 200809L
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ailora/error.h"
#include "ailora/gpu.h"

static const double PEAK = 989e12;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static unsigned long long rs = 88172645463325252ull;
static float urand(void) {  // uniform in [-1, 1)
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (float)((rs >> 40) * (1.0 / 8388608.0) - 1.0);
}

static float *fill(size_t n, float amp) {
    float *p = malloc(sizeof(float) * n);
    if (!p) {
        fprintf(stderr, "gpu_bench: out of host memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = amp * urand();
    return p;
}

/* TFLOP/s of a cuBLAS bf16 GEMM n x n x n (float32 accumulation), median of 10 */
static double gemm_tflops(int n) {
    void *a, *b, *c;
    cublasHandle_t h;
    size_t bytes = (size_t)n * n * 2;
    if (cudaMalloc(&a, bytes) || cudaMalloc(&b, bytes) || cudaMalloc(&c, bytes) || cublasCreate(&h)) return 0;
    uint16_t *host = malloc(bytes);  // random bf16 in [-1, 1): zeros would draw less power and flatter the peak
    if (!host) return 0;
    for (size_t i = 0; i < (size_t)n * n; i++) {
        float f = urand();
        uint32_t u;
        memcpy(&u, &f, 4);
        host[i] = (uint16_t)(u >> 16);
    }
    cudaMemcpy(a, host, bytes, cudaMemcpyHostToDevice);
    cudaMemcpy(b, host, bytes, cudaMemcpyHostToDevice);
    free(host);
    float one = 1, zero = 0;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    double t[10];
    for (int i = 0; i < 13; i++) {
        cudaEventRecord(e0, 0);
        cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n, &zero, c,
                     CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        cudaEventRecord(e1, 0);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        if (i >= 3) t[i - 3] = ms * 1e-3;
    }
    qsort(t, 10, sizeof *t, cmp);
    cublasDestroy(h);
    cudaFree(a), cudaFree(b), cudaFree(c);
    return 2.0 * n * (double)n * n / t[5] / 1e12;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);  // a timeout must not eat the log
    int B = argc > 1 ? atoi(argv[1]) : 8, T = argc > 2 ? atoi(argv[2]) : 1024;
    int steps = argc > 3 ? atoi(argv[3]) : 10, warmup = argc > 4 ? atoi(argv[4]) : 3;
    int r = argc > 5 ? atoi(argv[5]) : 16;
    GpuPrecision prec = argc > 6 && strcmp(argv[6], "fp32") == 0 ? GPU_FP32 : GPU_BF16;
    int all = argc > 7 && strcmp(argv[7], "all") == 0;
    if (steps < 1 || steps > 1000 || warmup < 0 || B < 1 || T < 2 || r < 1) {
        fprintf(stderr, "usage: gpu_bench [B T steps warmup r bf16|fp32 qv|all]\n");
        return 2;
    }
    if (gpu_device_count() == 0) {
        printf("SKIP gpu_bench: no CUDA device\n");
        return 77;
    }
    int H = 2048, I = 5632, V = 32000, L = 22, nh = 32, nkv = 4, hd = 64, maxpos = 2048;
    const char *shape = getenv("GPU_BENCH_SHAPE");  // "H,I,V,L,nh,nkv,hd": another model shape
    if (shape && sscanf(shape, "%d,%d,%d,%d,%d,%d,%d", &H, &I, &V, &L, &nh, &nkv, &hd) != 7) {
        fprintf(stderr, "gpu_bench: GPU_BENCH_SHAPE wants H,I,V,L,nh,nkv,hd\n");
        return 2;
    }
    if (T > maxpos) T = maxpos;
    printf("gpu_bench: %s shape H %d I %d V %d L %d nh %d nkv %d hd %d; B %d T %d; %s; LoRA r %d on %s\n",
           shape ? "custom" : "TinyLlama-1.1B", H,
           I, V, L, nh, nkv, hd, B, T, prec == GPU_BF16 ? "bf16" : "fp32", r, all ? "all 7 modules" : "q_proj,v_proj");
    int qd = nh * hd, kd = nkv * hd;
    int out[7] = {qd, kd, kd, H, I, I, H}, in[7] = {H, H, H, qd, H, H, I};
    // random weights (one host set shared by the layers: uploads are per layer anyway)
    double t0 = now();
    float *embed = fill((size_t)V * H, 0.02f * 1.732f), *head = fill((size_t)V * H, 0.02f * 1.732f);
    float *norm = malloc(sizeof(float) * H);
    for (int c = 0; c < H; c++) norm[c] = 1.f;
    float *w[7], *A[7], *Bm[7];
    for (int i = 0; i < 7; i++) {
        w[i] = fill((size_t)out[i] * in[i], 0.02f * 1.732f);
        A[i] = fill((size_t)r * in[i], 1.f / sqrtf((float)in[i]));
        Bm[i] = fill((size_t)out[i] * r, 1e-3f);
    }
    float *cs = malloc(sizeof(float) * maxpos * hd / 2), *sn = malloc(sizeof(float) * maxpos * hd / 2);
    for (int p = 0; p < maxpos; p++)
        for (int j = 0; j < hd / 2; j++) {
            float ang = (float)p / powf(10000.f, (float)(2 * j) / hd);
            cs[p * hd / 2 + j] = cosf(ang), sn[p * hd / 2 + j] = sinf(ang);
        }
    GpuLayerSpec *layers = calloc(L, sizeof *layers);
    double P_lin = 0, P_lora = 0;
    for (int i = 0; i < 7; i++) P_lin += (double)out[i] * in[i];
    P_lin *= L;
    for (int l = 0; l < L; l++) {
        layers[l].ln1 = norm, layers[l].ln2 = norm;
        for (int i = 0; i < 7; i++) {
            layers[l].w[i] = w[i];
            if (all || i == GPU_LIN_Q || i == GPU_LIN_V) {
                GpuAdapterSpec a = {out[i], in[i], r, 2.0, A[i], Bm[i]};
                layers[l].lora[i] = a;
                P_lora += (double)r * (in[i] + out[i]);
            }
        }
    }
    GpuModelSpec sp = {H, I, V, L, nh, nkv, hd, 1e-5, maxpos, cs, sn, embed, norm, head, layers, 1, 0};
    GpuModel *m;
    if (gpu_model_create(&sp, prec, B, T, NULL, &m) != AIL_OK) {
        printf("FAIL gpu_bench: %s\n", ail_error_message());
        return 1;
    }
    printf("setup %.1f s; model + activations %.2f GiB\n", now() - t0, gpu_model_bytes(m) / 1073741824.0);
    size_t N = (size_t)B * T;
    int32_t *tok = malloc(sizeof(int32_t) * N);
    for (size_t i = 0; i < N; i++) tok[i] = (int32_t)((urand() + 1.f) * 0.5f * (V - 1));
    GpuAdamW opt = {1e-4, 0.9, 0.999, 1e-8, 0.0, 1.0};
    double *times = malloc(sizeof(double) * (steps + warmup)), loss0 = 0, loss = 0;
    int rc = AIL_OK;
    for (int s = 0; s < steps + warmup && rc == AIL_OK; s++) {
        cudaDeviceSynchronize();
        double a = now(), sum, norm2;
        long count;
        rc = gpu_zero_grads(m);
        if (rc == AIL_OK) rc = gpu_forward(m, tok, tok, &sum, &count);
        if (rc == AIL_OK) rc = gpu_backward(m, 1.0 / count);
        if (rc == AIL_OK) rc = gpu_grads_allreduce(m, NULL);
        if (rc == AIL_OK) rc = gpu_grad_norm(m, &norm2);
        if (rc == AIL_OK) rc = gpu_adamw_step(m, &opt, s + 1, norm2);
        cudaDeviceSynchronize();
        times[s] = now() - a;
        loss = sum / count;
        if (s == 0) loss0 = loss;
        printf("step %2d %s %.1f ms loss %.5f grad norm %.4e\n", s, s < warmup ? "(warm-up)" : "", times[s] * 1e3,
               loss, norm2);
    }
    if (rc != AIL_OK) {
        printf("FAIL gpu_bench: %s at %s\n", ail_error_message(), ail_error_site());
        return 1;
    }
    size_t fr, tot;
    cudaMemGetInfo(&fr, &tot);
    qsort(times + warmup, steps, sizeof *times, cmp);
    double t = times[warmup + steps / 2];
    double flops = (double)N * (4 * P_lin + 6 * P_lora + 4.0 * V * H + L * 6.0 * T * hd * nh);
    double tps = N / t, tflops = flops / t / 1e12, mfu = flops / t / PEAK;
    gpu_model_free(m);
    int gn = getenv("GPU_BENCH_GEMM") ? atoi(getenv("GPU_BENCH_GEMM")) : 8192;
    double g = gemm_tflops(gn);
    printf("median step %.2f ms: %.0f tokens/s, %.1f TFLOP/s, MFU %.1f%% of 989 TFLOP/s\n", t * 1e3, tps, tflops,
           100 * mfu);
    printf("FLOPs per step %.4e (P_lin %.4e, P_lora %.4e); device memory in use %.2f GiB of %.2f\n", flops, P_lin,
           P_lora, (tot - fr) / 1073741824.0, tot / 1073741824.0);
    printf("cuBLAS bf16 %d^3 GEMM: %.1f TFLOP/s; the training step reaches %.1f%% of it\n", gn, g,
           g > 0 ? 100 * tflops / g : 0.0);
    int finite = isfinite(loss) && isfinite(loss0);
    printf("RESULT B=%d T=%d step_ms=%.2f tokens_per_s=%.0f tflops=%.1f mfu=%.3f gemm_tflops=%.1f gemm_frac=%.3f "
           "mem_gib=%.2f loss_first=%.4f loss_last=%.4f\n",
           B, T, t * 1e3, tps, tflops, mfu, g, g > 0 ? tflops / g : 0.0, (tot - fr) / 1073741824.0, loss0, loss);
    printf("%s gpu_bench (finite losses)\n", finite ? "PASS" : "FAIL");
    return finite ? 0 : 1;
}
