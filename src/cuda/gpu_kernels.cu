/* gpu_kernels.cu - element-wise and reduction kernels of the CUDA backend (see
 * gpu_kernels.cuh). Templates over the activation type T (float or bf16); all
 * arithmetic is float32 (double where the CPU engine sums in double), rounded
 * once on store. The formulas follow src/model/llama.c operation for operation.
 */
#include "gpu_kernels.cuh"

#include <cuda_bf16.h>
#include <math.h>

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float ld(const float *p, size_t i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16 *p, size_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void st(float *p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16 *p, size_t i, float v) { p[i] = __float2bfloat16(v); }

/* Two consecutive elements (index i even, 4- or 8-byte aligned): one 32-bit load
 * per lane for bf16, so a warp reads 128 contiguous bytes. */
__device__ __forceinline__ void ld2(const float *p, size_t i, float &a, float &b) {
    float2 v = *(const float2 *)(p + i);
    a = v.x, b = v.y;
}
__device__ __forceinline__ void ld2(const bf16 *p, size_t i, float &a, float &b) {
    __nv_bfloat162 v = *(const __nv_bfloat162 *)(p + i);
    a = __low2float(v), b = __high2float(v);
}
__device__ __forceinline__ void st2(float *p, size_t i, float a, float b) { *(float2 *)(p + i) = make_float2(a, b); }
__device__ __forceinline__ void st2(bf16 *p, size_t i, float a, float b) {
    *(__nv_bfloat162 *)(p + i) = __floats2bfloat162_rn(a, b);
}

#define DISPATCH(bf, kernel, grid, block, s, ...)                                  \
    do {                                                                           \
        if (bf) kernel<bf16><<<(grid), (block), 0, (s)>>>(__VA_ARGS__);            \
        else kernel<float><<<(grid), (block), 0, (s)>>>(__VA_ARGS__);              \
    } while (0)

// the same for kernels templated on the type and a compile-time size K
#define DISPATCH_K(bf, kernel, K, grid, block, s, ...)                             \
    do {                                                                           \
        if (bf) kernel<bf16, K><<<(grid), (block), 0, (s)>>>(__VA_ARGS__);         \
        else kernel<float, K><<<(grid), (block), 0, (s)>>>(__VA_ARGS__);           \
    } while (0)

static unsigned blocks_for(size_t n, int threads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : (b > 1048576 ? 1048576 : b));  // grid-stride loops cover the rest
}

/* ---- block reductions (blockDim.x a multiple of 32, at most 1024) ------------------ */

template <typename A>
__device__ A block_sum(A v) {
    __shared__ A sh[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();  // sh may still be read by a previous call
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (A)0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;  // every thread holds the total
}

__device__ float block_max(float v) {
    __shared__ float sh[32];
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* ---- embedding, RMSNorm, bias, add ------------------------------------------------ */

template <typename T>
__global__ void embed_kernel(void *xv, const void *tv, const int32_t *tokens, int N, int C) {
    T *x = (T *)xv;
    const T *table = (const T *)tv;
    size_t total = (size_t)N * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / C, c = i % C;
        x[i] = table[(size_t)tokens[n] * C + c];
    }
}

void k_embed(int bf, void *x, const void *table, const int32_t *tokens, int N, int C, cudaStream_t s) {
    DISPATCH(bf, embed_kernel, blocks_for((size_t)N * C, 256), 256, s, x, table, tokens, N, C);
}

// one block per row: (N, C)
template <typename T>
__global__ void rmsnorm_fwd_kernel(void *ov, float *rstd, const void *xv, const float *w, int C, float eps) {
    const T *x = (const T *)xv + (size_t)blockIdx.x * C;
    T *out = (T *)ov + (size_t)blockIdx.x * C;
    float ss = 0.f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = ld(x, c);
        ss += v * v;
    }
    ss = block_sum(ss);
    float r = 1.0f / sqrtf(ss / C + eps);
    if (threadIdx.x == 0) rstd[blockIdx.x] = r;
    for (int c = threadIdx.x; c < C; c += blockDim.x) st(out, c, ld(x, c) * r * w[c]);
}

void k_rmsnorm_fwd(int bf, void *out, float *rstd, const void *x, const float *w, int N, int C,
                   float eps, cudaStream_t s) {
    DISPATCH(bf, rmsnorm_fwd_kernel, N, 256, s, out, rstd, x, w, C, eps);
}

template <typename T>
__global__ void rmsnorm_bwd_kernel(void *dxv, const void *dresv, const void *doutv, const void *xv,
                                   const float *rstd, const float *w, int C) {
    size_t o = (size_t)blockIdx.x * C;
    const T *x = (const T *)xv + o, *d = (const T *)doutv + o;
    const T *dres = dresv ? (const T *)dresv + o : NULL;
    T *dx = (T *)dxv + o;
    float r = rstd[blockIdx.x], dot = 0.f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dot += w[c] * ld(d, c) * ld(x, c);
    dot = block_sum(dot);
    float k = dot * r * r * r / C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float g = r * w[c] * ld(d, c) - k * ld(x, c);
        st(dx, c, dres ? ld(dres, c) + g : g);  // same index read then written: aliasing is safe
    }
}

void k_rmsnorm_bwd(int bf, void *dx, const void *dres, const void *dout, const void *x,
                   const float *rstd, const float *w, int N, int C, cudaStream_t s) {
    DISPATCH(bf, rmsnorm_bwd_kernel, N, 256, s, dx, dres, dout, x, rstd, w, C);
}

template <typename T>
__global__ void add_bias_kernel(void *ov, const float *bias, int N, int m) {
    T *out = (T *)ov;
    size_t total = (size_t)N * m;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        st(out, i, ld(out, i) + bias[i % m]);
}

void k_add_bias(int bf, void *out, const float *bias, int N, int m, cudaStream_t s) {
    DISPATCH(bf, add_bias_kernel, blocks_for((size_t)N * m, 256), 256, s, out, bias, N, m);
}

template <typename T>
__global__ void add_kernel(void *ov, const void *av, const void *bv, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        st((T *)ov, i, ld((const T *)av, i) + ld((const T *)bv, i));
}

void k_add(int bf, void *out, const void *a, const void *b, size_t n, cudaStream_t s) {
    DISPATCH(bf, add_kernel, blocks_for(n, 256), 256, s, out, a, b, n);
}

/* ---- RoPE and head transposes ------------------------------------------------------ */

// offset of (batch b, head h, position t) in the grouped head-major layout
__device__ __forceinline__ size_t head_off(size_t b, int h, size_t t, int nheads, int T_, int hd, int group) {
    return ((b * (nheads / group) + h / group) * T_ + t) * (size_t)group * hd + (size_t)(h % group) * hd;
}

// one thread per rotation pair (token n, head h, j < hd/2)
template <typename T>
__global__ void tok_to_heads_kernel(void *hv, const void *tv, const float *cs, const float *sn,
                                    const int32_t *pos, int B, int T_, int nheads, int hd, int group, int rope) {
    int half = hd / 2;
    size_t total = (size_t)B * T_ * nheads * half;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(i % half);
        size_t rest = i / half;
        int h = (int)(rest % nheads);
        size_t n = rest / nheads;
        size_t b = n / T_, t = n % T_;
        const T *in = (const T *)tv + n * nheads * hd + (size_t)h * hd;
        T *out = (T *)hv + head_off(b, h, t, nheads, T_, hd, group);
        float a = ld(in, j), c = ld(in, j + half);
        if (rope) {
            size_t p = pos ? (size_t)pos[n] : t;
            float co = cs[p * half + j], si = sn[p * half + j];
            st(out, j, a * co - c * si);
            st(out, j + half, c * co + a * si);
        } else {
            st(out, j, a);
            st(out, j + half, c);
        }
    }
}

void k_tok_to_heads(int bf, void *heads, const void *tok, const float *cos, const float *sin,
                    const int32_t *pos, int B, int T, int nheads, int hd, int group, int rope, cudaStream_t s) {
    DISPATCH(bf, tok_to_heads_kernel, blocks_for((size_t)B * T * nheads * (hd / 2), 256), 256, s, heads,
             tok, cos, sin, pos, B, T, nheads, hd, group, rope);
}

template <typename T>
__global__ void heads_to_tok_kernel(void *tv, const void *hv, const float *cs, const float *sn,
                                    const int32_t *pos, int B, int T_, int nheads, int hd, int group, int rope) {
    int half = hd / 2;
    size_t total = (size_t)B * T_ * nheads * half;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(i % half);
        size_t rest = i / half;
        int h = (int)(rest % nheads);
        size_t n = rest / nheads;
        size_t b = n / T_, t = n % T_;
        const T *in = (const T *)hv + head_off(b, h, t, nheads, T_, hd, group);
        T *out = (T *)tv + n * nheads * hd + (size_t)h * hd;
        float a = ld(in, j), c = ld(in, j + half);
        if (rope) {  // transposed rotation: sin -> -sin
            size_t p = pos ? (size_t)pos[n] : t;
            float co = cs[p * half + j], si = -sn[p * half + j];
            st(out, j, a * co - c * si);
            st(out, j + half, c * co + a * si);
        } else {
            st(out, j, a);
            st(out, j + half, c);
        }
    }
}

void k_heads_to_tok(int bf, void *tok, const void *heads, const float *cos, const float *sin,
                    const int32_t *pos, int B, int T, int nheads, int hd, int group, int rope, cudaStream_t s) {
    DISPATCH(bf, heads_to_tok_kernel, blocks_for((size_t)B * T * nheads * (hd / 2), 256), 256, s, tok,
             heads, cos, sin, pos, B, T, nheads, hd, group, rope);
}

/* ---- padding mask ------------------------------------------------------------------ */

// one thread per (row, key j <= t): a key hidden by the mask gets score -inf
template <typename T>
__global__ void attn_mask_kernel(void *Sv, const int8_t *mask, long rows, int T_, int group, int nh) {
    size_t total = (size_t)rows * T_;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / T_;
        int j = (int)(i % T_), t = (int)((row / group) % T_);
        if (j > t) continue;
        const int8_t *m = mask + (row / ((size_t)nh * T_)) * T_;
        if (!(m[t] ? m[j] : j == t)) st((T *)Sv, i, -INFINITY);
    }
}

void k_attn_mask(int bf, void *S, const int8_t *mask, long rows, int T, int group, int nh, cudaStream_t s) {
    DISPATCH(bf, attn_mask_kernel, blocks_for((size_t)rows * T, 256), 256, s, S, mask, rows, T, group, nh);
}

/* ---- causal softmax ---------------------------------------------------------------- */

static int row_threads(int n) { return n >= 1024 ? 256 : (n >= 256 ? 128 : 32); }

// one block per row of stride T; only j <= t is read, only j < jend written. In
// place: every element is read in the first two passes (block reductions order
// them) and then read and written by the same thread in the third.
template <typename T>
__global__ void softmax_fwd_kernel(void *SPv, float *lse, int T_, int group, int Tc) {
    size_t row = blockIdx.x;
    int t = (int)((row / group) % T_), jend = (t / Tc + 1) * Tc;
    T *sp = (T *)SPv + row * T_;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) mx = fmaxf(mx, ld(sp, j));
    mx = block_max(mx);
    float sum = 0.f;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) sum += expf(ld(sp, j) - mx);
    sum = block_sum(sum);
    float inv = 1.0f / sum;
    for (int j = threadIdx.x; j < jend; j += blockDim.x) st(sp, j, j <= t ? expf(ld(sp, j) - mx) * inv : 0.f);
    if (threadIdx.x == 0) lse[row] = mx + logf(sum);
}

/* Rows of up to 32 * K elements: one warp per row, the row held in registers
 * (read once, written once; shuffles only, no block barriers). Lane l holds
 * columns l, l + 32, ... */
template <typename T, int K>
__global__ void softmax_fwd_warp_kernel(void *SPv, float *lse, long rows, int T_, int group, int Tc) {
    long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    int t = (int)((row / group) % T_), jend = (t / Tc + 1) * Tc;
    T *sp = (T *)SPv + (size_t)row * T_;
    float v[K], mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < K; k++) {
        int j = lane + 32 * k;
        v[k] = j <= t ? ld(sp, j) : -INFINITY;
        mx = fmaxf(mx, v[k]);
    }
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        v[k] = lane + 32 * k <= t ? expf(v[k] - mx) : 0.f;
        sum += v[k];
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float inv = 1.0f / sum;
#pragma unroll
    for (int k = 0; k < K; k++)
        if (lane + 32 * k < jend) st(sp, lane + 32 * k, v[k] * inv);
    if (lane == 0) lse[row] = mx + logf(sum);
}

/* The same over element pairs (T and Tc even): lane l holds columns 2 (l + 32 k)
 * and the next one, K pairs; a chunk end jend is even, so a pair never straddles it. */
template <typename T, int K>
__global__ void softmax_fwd_pair_kernel(void *SPv, float *lse, long rows, int T_, int group, int Tc) {
    long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    int t = (int)((row / group) % T_), jend = (t / Tc + 1) * Tc;
    T *sp = (T *)SPv + (size_t)row * T_;
    float v[2 * K], mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < K; k++) {
        int j = 2 * (lane + 32 * k);
        float a = -INFINITY, b = -INFINITY;
        if (j <= t) ld2(sp, j, a, b);  // j + 1 < jend <= T: inside the row
        v[2 * k] = a, v[2 * k + 1] = j + 1 <= t ? b : -INFINITY;
        mx = fmaxf(mx, fmaxf(v[2 * k], v[2 * k + 1]));
    }
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < 2 * K; k++) {
        int j = 2 * (lane + 32 * (k >> 1)) + (k & 1);
        v[k] = j <= t ? expf(v[k] - mx) : 0.f;
        sum += v[k];
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float inv = 1.0f / sum;
#pragma unroll
    for (int k = 0; k < K; k++) {
        int j = 2 * (lane + 32 * k);
        if (j < jend) st2(sp, j, v[2 * k] * inv, v[2 * k + 1] * inv);
    }
    if (lane == 0) lse[row] = mx + logf(sum);
}

template <typename T, int K>
__global__ void softmax_bwd_p_pair_kernel(const void *Pv, void *dPSv, long rows, int T_, int group, int Tc) {
    long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    int t = (int)((row / group) % T_), jend = (t / Tc + 1) * Tc;
    const T *pr = (const T *)Pv + (size_t)row * T_;
    T *dps = (T *)dPSv + (size_t)row * T_;
    float p[2 * K], dp[2 * K], dot = 0.f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        int j = 2 * (lane + 32 * k);
        float pa = 0.f, pb = 0.f, da = 0.f, db = 0.f;
        if (j <= t) ld2(pr, j, pa, pb), ld2(dps, j, da, db);
        bool second = j + 1 <= t;
        p[2 * k] = pa, p[2 * k + 1] = second ? pb : 0.f;
        dp[2 * k] = da, dp[2 * k + 1] = second ? db : 0.f;
        dot += p[2 * k] * dp[2 * k] + p[2 * k + 1] * dp[2 * k + 1];
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
#pragma unroll
    for (int k = 0; k < K; k++) {
        int j = 2 * (lane + 32 * k);
        if (j < jend) st2(dps, j, p[2 * k] * (dp[2 * k] - dot), p[2 * k + 1] * (dp[2 * k + 1] - dot));
    }
}

void k_softmax_fwd(int bf, void *SP, float *lse, long rows, int T, int group, int Tc, cudaStream_t s) {
    unsigned blocks = (unsigned)((rows + 7) / 8);  // 8 warps (rows) per block
    if (T % 2 == 0 && Tc % 2 == 0 && T <= 1024)
        DISPATCH_K(bf, softmax_fwd_pair_kernel, 16, blocks, 256, s, SP, lse, rows, T, group, Tc);
    else if (T % 2 == 0 && Tc % 2 == 0 && T <= 2048)
        DISPATCH_K(bf, softmax_fwd_pair_kernel, 32, blocks, 256, s, SP, lse, rows, T, group, Tc);
    else if (T <= 1024) DISPATCH_K(bf, softmax_fwd_warp_kernel, 32, blocks, 256, s, SP, lse, rows, T, group, Tc);
    else if (T <= 2048) DISPATCH_K(bf, softmax_fwd_warp_kernel, 64, blocks, 256, s, SP, lse, rows, T, group, Tc);
    else DISPATCH(bf, softmax_fwd_kernel, (unsigned)rows, row_threads(T), s, SP, lse, T, group, Tc);
}

// P recomputed from S and lse; dS = P (dP - rowsum(P dP)); both in place
template <typename T>
__global__ void softmax_bwd_kernel(void *SPv, void *dPSv, const float *lse, int T_, int group, int Tc) {
    size_t row = blockIdx.x;
    int t = (int)((row / group) % T_), jend = (t / Tc + 1) * Tc;
    T *sp = (T *)SPv + row * T_, *dps = (T *)dPSv + row * T_;
    float l = lse[row], dot = 0.f;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) dot += expf(ld(sp, j) - l) * ld(dps, j);
    dot = block_sum(dot);
    for (int j = threadIdx.x; j < jend; j += blockDim.x) {
        float p = j <= t ? expf(ld(sp, j) - l) : 0.f;
        float ds = j <= t ? p * (ld(dps, j) - dot) : 0.f;
        st(sp, j, p);
        st(dps, j, ds);
    }
}

/* The backward with one warp per row, P and dP held in registers. */
template <typename T, int K>
__global__ void softmax_bwd_warp_kernel(void *SPv, void *dPSv, const float *lse, long rows, int T_, int group,
                                        int Tc) {
    long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    int t = (int)((row / group) % T_), jend = (t / Tc + 1) * Tc;
    T *sp = (T *)SPv + (size_t)row * T_, *dps = (T *)dPSv + (size_t)row * T_;
    float l = lse[row], p[K], dp[K], dot = 0.f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        int j = lane + 32 * k;
        p[k] = j <= t ? expf(ld(sp, j) - l) : 0.f;
        dp[k] = j <= t ? ld(dps, j) : 0.f;
        dot += p[k] * dp[k];
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
#pragma unroll
    for (int k = 0; k < K; k++) {
        int j = lane + 32 * k;
        if (j < jend) {
            st(sp, j, p[k]);
            st(dps, j, p[k] * (dp[k] - dot));
        }
    }
}

void k_softmax_bwd(int bf, void *SP, void *dPS, const float *lse, long rows, int T, int group, int Tc,
                   cudaStream_t s) {
    unsigned blocks = (unsigned)((rows + 7) / 8);
    if (T <= 1024) DISPATCH_K(bf, softmax_bwd_warp_kernel, 32, blocks, 256, s, SP, dPS, lse, rows, T, group, Tc);
    else if (T <= 2048)
        DISPATCH_K(bf, softmax_bwd_warp_kernel, 64, blocks, 256, s, SP, dPS, lse, rows, T, group, Tc);
    else DISPATCH(bf, softmax_bwd_kernel, (unsigned)rows, row_threads(T), s, SP, dPS, lse, T, group, Tc);
}

/* dS from stored P: one warp per row (rows up to 32 K), or one block per row. */
template <typename T, int K>
__global__ void softmax_bwd_p_warp_kernel(const void *Pv, void *dPSv, long rows, int T_, int group, int Tc) {
    long row = (long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    int t = (int)((row / group) % T_), jend = (t / Tc + 1) * Tc;
    const T *pr = (const T *)Pv + (size_t)row * T_;
    T *dps = (T *)dPSv + (size_t)row * T_;
    float p[K], dp[K], dot = 0.f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        int j = lane + 32 * k;
        p[k] = j <= t ? ld(pr, j) : 0.f;
        dp[k] = j <= t ? ld(dps, j) : 0.f;
        dot += p[k] * dp[k];
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
#pragma unroll
    for (int k = 0; k < K; k++)
        if (lane + 32 * k < jend) st(dps, lane + 32 * k, p[k] * (dp[k] - dot));
}

template <typename T>
__global__ void softmax_bwd_p_kernel(const void *Pv, void *dPSv, int T_, int group, int Tc) {
    size_t row = blockIdx.x;
    int t = (int)((row / group) % T_), jend = (t / Tc + 1) * Tc;
    const T *pr = (const T *)Pv + row * T_;
    T *dps = (T *)dPSv + row * T_;
    float dot = 0.f;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) dot += ld(pr, j) * ld(dps, j);
    dot = block_sum(dot);
    for (int j = threadIdx.x; j < jend; j += blockDim.x) st(dps, j, j <= t ? ld(pr, j) * (ld(dps, j) - dot) : 0.f);
}

void k_softmax_bwd_p(int bf, const void *P, void *dPS, long rows, int T, int group, int Tc, cudaStream_t s) {
    unsigned blocks = (unsigned)((rows + 7) / 8);
    if (T % 2 == 0 && Tc % 2 == 0 && T <= 1024)
        DISPATCH_K(bf, softmax_bwd_p_pair_kernel, 16, blocks, 256, s, P, dPS, rows, T, group, Tc);
    else if (T % 2 == 0 && Tc % 2 == 0 && T <= 2048)
        DISPATCH_K(bf, softmax_bwd_p_pair_kernel, 32, blocks, 256, s, P, dPS, rows, T, group, Tc);
    else if (T <= 1024) DISPATCH_K(bf, softmax_bwd_p_warp_kernel, 32, blocks, 256, s, P, dPS, rows, T, group, Tc);
    else if (T <= 2048) DISPATCH_K(bf, softmax_bwd_p_warp_kernel, 64, blocks, 256, s, P, dPS, rows, T, group, Tc);
    else DISPATCH(bf, softmax_bwd_p_kernel, (unsigned)rows, row_threads(T), s, P, dPS, T, group, Tc);
}

/* ---- SwiGLU ------------------------------------------------------------------------ */

template <typename T>
__global__ void swiglu_fwd_kernel(void *av, const void *gv, const void *uv, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float g = ld((const T *)gv, i);
        st((T *)av, i, g / (1.0f + expf(-g)) * ld((const T *)uv, i));
    }
}

// pairs of elements per thread (n even): 32-bit bf16 loads, half the instructions
template <typename T>
__global__ void swiglu_fwd_pair_kernel(void *av, const void *gv, const void *uv, size_t pairs) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < pairs; i += (size_t)gridDim.x * blockDim.x) {
        float g0, g1, u0, u1;
        ld2((const T *)gv, 2 * i, g0, g1);
        ld2((const T *)uv, 2 * i, u0, u1);
        st2((T *)av, 2 * i, g0 / (1.0f + expf(-g0)) * u0, g1 / (1.0f + expf(-g1)) * u1);
    }
}

void k_swiglu_fwd(int bf, void *act, const void *g, const void *u, size_t n, cudaStream_t s) {
    if (n % 2 == 0) DISPATCH(bf, swiglu_fwd_pair_kernel, blocks_for(n / 2, 256), 256, s, act, g, u, n / 2);
    else DISPATCH(bf, swiglu_fwd_kernel, blocks_for(n, 256), 256, s, act, g, u, n);
}

template <typename T>
__global__ void swiglu_bwd_kernel(void *dgv, void *duv, const void *gv, const void *uv, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float da = ld((const T *)dgv, i), g = ld((const T *)gv, i), u = ld((const T *)uv, i);
        float sig = 1.0f / (1.0f + expf(-g));
        st((T *)duv, i, da * g * sig);
        st((T *)dgv, i, da * u * sig * (1.0f + g * (1.0f - sig)));
    }
}

template <typename T>
__global__ void swiglu_bwd_pair_kernel(void *dgv, void *duv, const void *gv, const void *uv, size_t pairs) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < pairs; i += (size_t)gridDim.x * blockDim.x) {
        float da[2], g[2], u[2], dgo[2], duo[2];
        ld2((const T *)dgv, 2 * i, da[0], da[1]);
        ld2((const T *)gv, 2 * i, g[0], g[1]);
        ld2((const T *)uv, 2 * i, u[0], u[1]);
        for (int k = 0; k < 2; k++) {
            float sig = 1.0f / (1.0f + expf(-g[k]));
            duo[k] = da[k] * g[k] * sig;
            dgo[k] = da[k] * u[k] * sig * (1.0f + g[k] * (1.0f - sig));
        }
        st2((T *)duv, 2 * i, duo[0], duo[1]);
        st2((T *)dgv, 2 * i, dgo[0], dgo[1]);
    }
}

void k_swiglu_bwd(int bf, void *dg, void *du, const void *g, const void *u, size_t n, cudaStream_t s) {
    if (n % 2 == 0) DISPATCH(bf, swiglu_bwd_pair_kernel, blocks_for(n / 2, 256), 256, s, dg, du, g, u, n / 2);
    else DISPATCH(bf, swiglu_bwd_kernel, blocks_for(n, 256), 256, s, dg, du, g, u, n);
}

/* ---- cross entropy ------------------------------------------------------------------- */

__device__ __forceinline__ int target_of(const int32_t *labels, int n, int T) {
    return (n % T) + 1 < T ? labels[n + 1] : -100;
}

// one block per row; labels were range-checked on the host
template <typename T>
__global__ void cross_entropy_kernel(void *dlv, double *row_loss, const float *logits, const int32_t *labels,
                                     int T_, int V) {
    int n = blockIdx.x, target = target_of(labels, n, T_);
    const float *row = logits + (size_t)n * V;
    T *d = (T *)dlv + (size_t)n * V;
    if (target == -100) {
        for (int j = threadIdx.x; j < V; j += blockDim.x) st(d, j, 0.f);
        if (threadIdx.x == 0) row_loss[n] = 0.0;
        return;
    }
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, row[j]);
    mx = block_max(mx);
    double s = 0.0;  // the CPU engine sums the exponentials in double
    for (int j = threadIdx.x; j < V; j += blockDim.x) s += (double)expf(row[j] - mx);
    s = block_sum(s);
    float lse = mx + (float)log(s);
    for (int j = threadIdx.x; j < V; j += blockDim.x) st(d, j, expf(row[j] - lse) - (j == target ? 1.f : 0.f));
    if (threadIdx.x == 0) row_loss[n] = (double)mx + log(s) - row[target];
}

void k_cross_entropy(int bf, void *dlogits, double *row_loss, const float *logits,
                     const int32_t *labels, int N, int T, int V, cudaStream_t s) {
    DISPATCH(bf, cross_entropy_kernel, N, V >= 4096 ? 1024 : 128, s, dlogits, row_loss, logits, labels, T, V);
}

__global__ void loss_reduce_kernel(double *out, const double *row_loss, const int32_t *labels, int N, int T) {
    double sum = 0.0, count = 0.0;
    for (int n = threadIdx.x; n < N; n += blockDim.x)
        if (target_of(labels, n, T) != -100) sum += row_loss[n], count += 1.0;
    sum = block_sum(sum);
    count = block_sum(count);
    if (threadIdx.x == 0) out[0] = sum, out[1] = count;
}

void k_loss_reduce(double *out, const double *row_loss, const int32_t *labels, int N, int T, cudaStream_t s) {
    loss_reduce_kernel<<<1, 1024, 0, s>>>(out, row_loss, labels, N, T);
}

/* ---- gradient norm, AdamW ------------------------------------------------------------ */

enum { SUMSQ_BLOCKS = 256 };

__global__ void sumsq_kernel(double *partials, const float *x, size_t n) {
    double acc = 0.0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        acc += (double)x[i] * x[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void sum_partials_kernel(double *out, const double *partials, int count) {
    double acc = threadIdx.x < count ? partials[threadIdx.x] : 0.0;
    acc = block_sum(acc);
    if (threadIdx.x == 0) out[0] = acc;
}

void k_sumsq(double *out, double *partials, const float *x, size_t n, cudaStream_t s) {
    sumsq_kernel<<<SUMSQ_BLOCKS, 256, 0, s>>>(partials, x, n);  // fixed grid: deterministic sums
    sum_partials_kernel<<<1, SUMSQ_BLOCKS, 0, s>>>(out, partials, SUMSQ_BLOCKS);
}

// src/train/optim.c's adamw_step, element by element, in float
__global__ void adamw_kernel(float *p, bf16 *copy, const float *g, float *m, float *v, size_t n, float clip,
                             float decay, float b1, float b2, float eps, float step_size, float bc2_sqrt) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i] * clip, pi = p[i] * decay;
        float mi = b1 * m[i] + (1 - b1) * gi;
        float vi = b2 * v[i] + (1 - b2) * gi * gi;
        pi -= step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
        p[i] = pi, m[i] = mi, v[i] = vi;
        if (copy) copy[i] = __float2bfloat16(pi);
    }
}

void k_adamw(int bf, float *p, void *copy, const float *g, float *m, float *v, size_t n, float clip,
             float decay, float b1, float b2, float eps, float step_size, float bc2_sqrt,
             cudaStream_t s) {
    if (n == 0) return;
    adamw_kernel<<<blocks_for(n, 256), 256, 0, s>>>(p, bf ? (bf16 *)copy : NULL, g, m, v, n, clip, decay, b1,
                                                    b2, eps, step_size, bc2_sqrt);
}

__global__ void to_bf16_kernel(bf16 *copy, const float *p, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        copy[i] = __float2bfloat16(p[i]);
}

void k_to_bf16(void *copy, const float *p, size_t n, cudaStream_t s) {
    if (n == 0) return;
    to_bf16_kernel<<<blocks_for(n, 256), 256, 0, s>>>((bf16 *)copy, p, n);
}

template <typename T>
__global__ void from_float_kernel(void *dv, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        st((T *)dv, i, src[i]);
}

void k_from_float(int bf, void *dst, const float *src, size_t n, cudaStream_t s) {
    if (n == 0) return;
    DISPATCH(bf, from_float_kernel, blocks_for(n, 256), 256, s, dst, src, n);
}

/* ---- greedy decoding with a KV cache ------------------------------------------------ */

// one thread per rotation pair (token i, head h, j < hd/2), in place
template <typename T>
__global__ void rope_rows_kernel(void *xv, const float *cs, const float *sn, const int32_t *pos, int n, int nheads,
                                 int hd) {
    int half = hd / 2;
    size_t total = (size_t)n * nheads * half;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(i % half);
        size_t tok_head = i / half;  // = token * nheads + head
        T *x = (T *)xv + tok_head * hd;
        size_t p = (size_t)pos[tok_head / nheads];
        float a = ld(x, j), c = ld(x, j + half), co = cs[p * half + j], si = sn[p * half + j];
        st(x, j, a * co - c * si);
        st(x, j + half, c * co + a * si);
    }
}

void k_rope_rows(int bf, void *x, const float *cos, const float *sin, const int32_t *pos, int n, int nheads,
                 int hd, cudaStream_t s) {
    if (n == 0) return;
    DISPATCH(bf, rope_rows_kernel, blocks_for((size_t)n * nheads * (hd / 2), 256), 256, s, x, cos, sin, pos, n,
             nheads, hd);
}

template <typename T>
__global__ void kv_store_kernel(void *kcv, void *vcv, const void *kv, const void *vv, const int32_t *row,
                                const int32_t *slot, int n, int S, int kd) {
    size_t total = (size_t)n * kd;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        size_t i = e / kd, c = e % kd, dst = ((size_t)row[i] * S + slot[i]) * kd + c;
        ((T *)kcv)[dst] = ((const T *)kv)[e];
        ((T *)vcv)[dst] = ((const T *)vv)[e];
    }
}

void k_kv_store(int bf, void *kc, void *vc, const void *k, const void *v, const int32_t *row,
                const int32_t *slot, int n, int S, int kd, cudaStream_t s) {
    if (n == 0) return;
    DISPATCH(bf, kv_store_kernel, blocks_for((size_t)n * kd, 256), 256, s, kc, vc, k, v, row, slot, n, S, kd);
}

/* One block per (token i, head h), blockIdx.x = i * nh + h. Shared memory: the query
 * (hd floats), then the scores / probabilities of slots 0..t. Scores: one warp per
 * key (lanes split hd: coalesced reads of the cached key); max and sum over the
 * block; output: one thread per column c, summing over the keys (coalesced reads of
 * the cached values). Keys a query may not see get probability 0 and are skipped
 * (their slots may hold anything). */
template <typename T>
__global__ void decode_attn_kernel(void *yv, const void *qv, const void *kcv, const void *vcv, const int8_t *valid,
                                   const int32_t *row, const int32_t *slot, int S, int nh, int nkv, int hd,
                                   float scale) {
    extern __shared__ float smem[];
    float *qs = smem, *p = smem + hd;
    int i = blockIdx.x / nh, h = blockIdx.x % nh, b = row[i], t = slot[i], kd = nkv * hd;
    const T *q = (const T *)qv + ((size_t)i * nh + h) * hd;
    size_t base = (size_t)b * S * kd + (size_t)(h / (nh / nkv)) * hd;  // kv head of query head h
    const T *K = (const T *)kcv + base, *V = (const T *)vcv + base;
    const int8_t *ok = valid + (size_t)b * S;
    int self_only = !ok[t];  // a padding query
    for (int c = threadIdx.x; c < hd; c += blockDim.x) qs[c] = ld(q, c);
    __syncthreads();
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int j = w; j <= t; j += nw) {
        int seen = self_only ? j == t : ok[j] != 0;
        float d = 0.f;
        if (seen)
            for (int c = lane; c < hd; c += 32) d += qs[c] * ld(K + (size_t)j * kd, c);
        for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
        if (lane == 0) p[j] = seen ? d * scale : -INFINITY;
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) mx = fmaxf(mx, p[j]);
    mx = block_max(mx);  // finite: slot t itself is always seen
    float sum = 0.f;
    for (int j = threadIdx.x; j <= t; j += blockDim.x) {
        float e = p[j] == -INFINITY ? 0.f : expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    sum = block_sum(sum);  // its barriers also publish p
    float inv = 1.0f / sum;
    T *y = (T *)yv + ((size_t)i * nh + h) * hd;
    for (int c = threadIdx.x; c < hd; c += blockDim.x) {
        float acc = 0.f;
        for (int j = 0; j <= t; j++)
            if (p[j] != 0.f) acc += p[j] * ld(V + (size_t)j * kd, c);
        st(y, c, acc * inv);
    }
}

void k_decode_attn(int bf, void *y, const void *q, const void *kc, const void *vc, const int8_t *valid,
                   const int32_t *row, const int32_t *slot, int n, int S, int nh, int nkv, int hd, float scale,
                   cudaStream_t s) {
    if (n == 0) return;
    size_t smem = sizeof(float) * ((size_t)hd + S);
    if (smem > 48 * 1024) {  // beyond the default: opt in (up to the device's limit, 227 KiB on sm_90)
        if (bf) cudaFuncSetAttribute(decode_attn_kernel<bf16>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        else cudaFuncSetAttribute(decode_attn_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    }
    unsigned grid = (unsigned)((size_t)n * nh);
    if (bf) decode_attn_kernel<bf16><<<grid, 128, smem, s>>>(y, q, kc, vc, valid, row, slot, S, nh, nkv, hd, scale);
    else decode_attn_kernel<float><<<grid, 128, smem, s>>>(y, q, kc, vc, valid, row, slot, S, nh, nkv, hd, scale);
}

// (value, index) pairs: the larger value wins, the smaller index on ties
__device__ __forceinline__ void arg_better(float &v, int &k, float v2, int k2) {
    if (v2 > v || (v2 == v && k2 < k)) v = v2, k = k2;
}

// one block per row
__global__ void argmax_kernel(int32_t *out, const float *logits, int V) {
    __shared__ float sv[32];
    __shared__ int sk[32];
    const float *row = logits + (size_t)blockIdx.x * V;
    float v = -INFINITY;
    int k = V;
    for (int j = threadIdx.x; j < V; j += blockDim.x) arg_better(v, k, row[j], j);
    for (int o = 16; o > 0; o >>= 1) arg_better(v, k, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, k, o));
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    if (lane == 0) sv[w] = v, sk[w] = k;
    __syncthreads();
    if (w == 0) {
        v = lane < nw ? sv[lane] : -INFINITY, k = lane < nw ? sk[lane] : V;
        for (int o = 16; o > 0; o >>= 1)
            arg_better(v, k, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, k, o));
        if (lane == 0) out[blockIdx.x] = k < V ? k : 0;  // 0 when every logit is NaN or -inf
    }
}

void k_argmax(int32_t *out, const float *logits, int n, int V, cudaStream_t s) {
    if (n == 0) return;
    argmax_kernel<<<n, 256, 0, s>>>(out, logits, V);
}
