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

#ifdef GF_LOADER
/* The reader (test programs): fills the globals below; exits on a bad file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void get(FILE *f, void *p, size_t size, size_t n) {
    if (fread(p, size, n, f) != n) {
        printf("FAIL fixture: truncated\n");
        exit(1);
    }
}

static void *grab(FILE *f, size_t size, size_t n) {
    void *p = malloc(size * (n ? n : 1));
    if (!p) exit(1);
    get(f, p, size, n);
    return p;
}

typedef struct {
    float *embed, *final_norm, *lm_head;
    float *ln1[8], *ln2[8], *w[8][7];
    float *A[8][7], *B[8][7], *gA[8][7], *gB[8][7], *fA[8][7], *fB[8][7];
    double *losses, *norms;
} Init;

static int hdr[GF_NHDR];
static double hyp[GF_NHYP];
static float *rope_cos, *rope_sin;
static int32_t *tokens, *labels;
static Init inits[2];
static int out_[7], in_[7];

static void load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("FAIL fixture: cannot open %s\n", path);
        exit(1);
    }
    char magic[8];
    get(f, magic, 1, 8);
    if (memcmp(magic, "AILGPU1", 8) != 0) {
        printf("FAIL fixture: bad magic in %s\n", path);
        exit(1);
    }
    get(f, hdr, sizeof(int), GF_NHDR);
    get(f, hyp, sizeof(double), GF_NHYP);
    if (hdr[GF_L] > 8 || hdr[GF_NINIT] != 2) {
        printf("FAIL fixture: unexpected header\n");
        exit(1);
    }
    gf_shapes(hdr, out_, in_);
    size_t rope = (size_t)hdr[GF_MAXPOS] * (hdr[GF_HD] / 2), ntok = (size_t)hdr[GF_STEPS] * hdr[GF_B] * hdr[GF_T];
    rope_cos = grab(f, sizeof(float), rope);
    rope_sin = grab(f, sizeof(float), rope);
    tokens = grab(f, sizeof(int32_t), ntok);
    labels = grab(f, sizeof(int32_t), ntok);
    int H = hdr[GF_H], V = hdr[GF_V], L = hdr[GF_L], r = hdr[GF_R], S = hdr[GF_STEPS];
    for (int k = 0; k < 2; k++) {
        Init *in = &inits[k];
        in->embed = grab(f, sizeof(float), (size_t)V * H);
        in->final_norm = grab(f, sizeof(float), H);
        in->lm_head = grab(f, sizeof(float), (size_t)V * H);
        for (int l = 0; l < L; l++) {
            in->ln1[l] = grab(f, sizeof(float), H);
            in->ln2[l] = grab(f, sizeof(float), H);
            for (int i = 0; i < 7; i++) in->w[l][i] = grab(f, sizeof(float), (size_t)out_[i] * in_[i]);
        }
        for (int l = 0; l < L; l++)
            for (int i = 0; i < 7; i++) {
                in->A[l][i] = grab(f, sizeof(float), (size_t)r * in_[i]);
                in->B[l][i] = grab(f, sizeof(float), (size_t)out_[i] * r);
            }
        in->losses = grab(f, sizeof(double), S);
        in->norms = grab(f, sizeof(double), S);
        for (int l = 0; l < L; l++)
            for (int i = 0; i < 7; i++) {
                in->gA[l][i] = grab(f, sizeof(float), (size_t)r * in_[i]);
                in->gB[l][i] = grab(f, sizeof(float), (size_t)out_[i] * r);
            }
        for (int l = 0; l < L; l++)
            for (int i = 0; i < 7; i++) {
                in->fA[l][i] = grab(f, sizeof(float), (size_t)r * in_[i]);
                in->fB[l][i] = grab(f, sizeof(float), (size_t)out_[i] * r);
            }
    }
    fclose(f);
}

#endif

#endif
