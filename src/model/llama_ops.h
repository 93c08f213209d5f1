/* llama_ops.h - llama.c's kernels that the KV-cache decoder (llama_decode.c) shares,
 * so both compute each layer with the same code (private to src/model).
 *   llama_op_gemm            C (M, N) = alpha A (M, K) B (K, N) + beta C, any strides
 *   llama_op_rmsnorm         out = x / sqrt(mean(x^2) + eps) * w per row of (N, C)
 *   llama_op_adapted_linear  out (N, m) = in W^T (+ bias) + s (in A^T) B^T; t (N, r) = in A^T
 *   llama_op_row_parallel    out (N, H) += row-parallel o / down of in (N, n) with the tp
 *                            all-reduce, the bias added once; part (N, H) work space (tp > 1)
 */
#ifndef AILORA_LLAMA_OPS_H
#define AILORA_LLAMA_OPS_H

#include "ailora/llama.h"

#ifdef AILORA_REAL_DOUBLE
#define llama_op_gemm llama_op_gemm_f64
#define llama_op_rmsnorm llama_op_rmsnorm_f64
#define llama_op_adapted_linear llama_op_adapted_linear_f64
#define llama_op_row_parallel llama_op_row_parallel_f64
#endif

void llama_op_gemm(int M, int N, int K, real alpha, const real *A, long rsa, long csa, const real *B, long rsb,
                   long csb, real beta, real *C, long rsc, long csc, int single);
void llama_op_rmsnorm(real *out, real *rstd, const real *x, const real *w, int N, int C, double eps);
void llama_op_adapted_linear(const LlamaLayer *ly, int lin, const real *in, real *out, real *t, int N, int m, int n);
int llama_op_row_parallel(const Llama *llm, real *part, const LlamaLayer *ly, int lin, const real *in, real *out,
                          real *t, int N, int n);

#endif
