/* dtype.h - storage dtypes of model tensors and their conversion to/from float64.
 *
 * All numerics in ailora's SVD and init path run in float64; tensors are stored
 * as F32, F16, BF16 or F64 (safetensors names). Rounding float64 -> storage dtype
 * is round-to-nearest-even, ONCE: the value is rounded as if directly (float64 ->
 * bf16/f16 goes through float32 rounded to odd). torch's float64 .to(bfloat16)
 * rounds twice (through float32) and differs from this only for values within 2^-24
 * (relative) of a tie; what ailora documents as "rounded once" (residuals, exported
 * and merged weights) is this single rounding.
 */
#ifndef AILORA_DTYPE_H
#define AILORA_DTYPE_H

#include <stddef.h>
#include <stdint.h>

/* Floating dtypes hold weights; integer dtypes appear as buffers in some checkpoints
 * (and as index fixtures) and convert exactly to float64 up to 2^53. */
typedef enum {
    DTYPE_INVALID = 0,
    DTYPE_F64, DTYPE_F32, DTYPE_F16, DTYPE_BF16,
    DTYPE_I64, DTYPE_I32, DTYPE_I16, DTYPE_I8, DTYPE_U8, DTYPE_BOOL
} DType;

/* "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL" <-> DType;
 * DTYPE_INVALID for anything else. */
DType dtype_from_name(const char *name);
const char *dtype_name(DType dt);
/* torch_dtype strings of HF config.json: "float32", "bfloat16", "float16", "float64". */
DType dtype_from_torch_name(const char *name);
const char *dtype_torch_name(DType dt);
size_t dtype_size(DType dt);  /* bytes per element, 0 for invalid */

/* Convert count elements at src (dtype dt, little-endian, any alignment) to float64. */
void dtype_to_f64(DType dt, const void *src, size_t count, double *dst);
int dtype_is_float(DType dt);
/* Round count float64 values to dtype dt (integers: nearest, saturating) and store them at dst (little-endian). */
void dtype_from_f64(DType dt, const double *src, size_t count, void *dst);
/* The float64 value of x after one rounding to dt (identity for F64). */
double dtype_round(DType dt, double x);
/* out[i] = dtype_round(dt, x[i]) for count values (out may be x). BF16, the
 * dtype of most checkpoints, takes a branch-free loop the compiler vectorizes
 * (finite inputs; any Inf or NaN goes through dtype_round). */
void dtype_round_array(DType dt, const double *x, size_t count, double *out);

uint16_t f64_to_bf16(double x);
double bf16_to_f64(uint16_t h);
uint16_t f64_to_f16(double x);
double f16_to_f64(uint16_t h);

#endif
