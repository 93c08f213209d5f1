/* dtype.c - storage dtypes and their conversion to/from float64.
 *
 * Rounding to F16/BF16 goes through float32 (double -> float -> half), both steps
 * round-to-nearest-even: that is what torch's .to(dtype) does (its Half and BFloat16
 * types are constructed from float), so our files match torch bit for bit. The two
 * steps differ from one direct rounding only for doubles within 2^-29 relative of a
 * half/bfloat16 tie.
 *
 * Bytes are assembled explicitly as little-endian, so neither host byte order nor
 * alignment of the source matters.
 */
#include "ailora/dtype.h"

#include <float.h>
#include <math.h>
#include <string.h>

static const struct {
    DType dt;
    const char *name;
    const char *torch_name;
    size_t size;
} dtype_table[] = {
    {DTYPE_F64, "F64", "float64", 8},
    {DTYPE_F32, "F32", "float32", 4},
    {DTYPE_F16, "F16", "float16", 2},
    {DTYPE_BF16, "BF16", "bfloat16", 2},
    {DTYPE_I64, "I64", "int64", 8},
    {DTYPE_I32, "I32", "int32", 4},
    {DTYPE_I16, "I16", "int16", 2},
    {DTYPE_I8, "I8", "int8", 1},
    {DTYPE_U8, "U8", "uint8", 1},
    {DTYPE_BOOL, "BOOL", "bool", 1},
};
#define DTYPE_COUNT (int)(sizeof dtype_table / sizeof dtype_table[0])

DType dtype_from_name(const char *name) {
    if (!name) return DTYPE_INVALID;
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (strcmp(name, dtype_table[i].name) == 0) return dtype_table[i].dt;
    return DTYPE_INVALID;
}

const char *dtype_name(DType dt) {
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (dtype_table[i].dt == dt) return dtype_table[i].name;
    return "INVALID";
}

DType dtype_from_torch_name(const char *name) {
    if (!name) return DTYPE_INVALID;
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (strcmp(name, dtype_table[i].torch_name) == 0) return dtype_table[i].dt;
    return DTYPE_INVALID;
}

const char *dtype_torch_name(DType dt) {
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (dtype_table[i].dt == dt) return dtype_table[i].torch_name;
    return "invalid";
}

int dtype_is_float(DType dt) {
    return dt == DTYPE_F64 || dt == DTYPE_F32 || dt == DTYPE_F16 || dt == DTYPE_BF16;
}

size_t dtype_size(DType dt) {
    for (int i = 0; i < DTYPE_COUNT; i++)
        if (dtype_table[i].dt == dt) return dtype_table[i].size;
    return 0;
}

// ----------------------------------------------------------------------------
// bit-level helpers

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint64_t load_le(const unsigned char *p, int nbytes) {
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void store_le(unsigned char *p, uint64_t v, int nbytes) {
    for (int i = 0; i < nbytes; i++, v >>= 8) p[i] = (unsigned char)(v & 0xff);
}

// float32 -> bfloat16: keep the top 16 bits, rounding the dropped 16 to nearest even.
static uint16_t f32_to_bf16_bits(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;  // any NaN -> canonical, as torch
    u += 0x7fffu + ((u >> 16) & 1u);  // a carry may reach the exponent: overflow gives Inf
    return (uint16_t)(u >> 16);
}

// float32 -> IEEE binary16, round-to-nearest-even, subnormals included.
static uint16_t f32_to_f16_bits(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;  // NaN: signed canonical, as torch
    if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 (tie above 65504, odd) -> Inf
    int e = (int)(a >> 23) - 127;
    uint32_t mant = a & 0x7fffffu;
    uint32_t h, rem, half;
    if (e >= -14) {  // normal half: drop 13 mantissa bits
        h = ((uint32_t)(e + 15) << 10) | (mant >> 13);
        rem = mant & 0x1fffu;
        half = 0x1000u;
    } else {  // subnormal half, in units of 2^-24
        if (e < -25) return sign;  // below half the smallest subnormal: +-0
        mant |= 0x800000u;         // implicit bit; value = mant * 2^(e-23)
        int shift = -e - 1;        // 14..24
        h = mant >> shift;
        rem = mant & ((1u << shift) - 1u);
        half = 1u << (shift - 1);
    }
    if (rem > half || (rem == half && (h & 1u))) h++;  // carry into exponent is correct
    return (uint16_t)(sign | h);
}

static float f16_bits_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (e == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mant << 13));  // Inf/NaN
    float mag = e == 0 ? ldexpf((float)mant, -24) : ldexpf((float)(mant | 0x400u), (int)e - 25);
    return sign ? -mag : mag;
}

/* float64 -> float32 rounded to odd: truncated toward zero, the last bit set when
 * anything was dropped. Rounding that to a format at least 2 bits narrower (bf16,
 * f16) gives x rounded once to nearest even; through a plain (float)x a value just
 * off a bf16 tie could round twice, to the wrong side (half an ulp + a hair). */
static float f64_to_f32_odd(double x) {
    float f = (float)x;
    if (isnan(x) || isinf(x) || (double)f == x) return f;
    // truncate: one step toward zero is the magnitude's bits less one (Inf -> FLT_MAX)
    if (fabs((double)f) > fabs(x)) f = f32_from_bits(f32_bits(f) - 1u);
    if ((double)f != x) f = f32_from_bits(f32_bits(f) | 1u);
    return f;
}

uint16_t f64_to_bf16(double x) { return f32_to_bf16_bits(f64_to_f32_odd(x)); }
double bf16_to_f64(uint16_t h) { return (double)f32_from_bits((uint32_t)h << 16); }
uint16_t f64_to_f16(double x) { return f32_to_f16_bits(f64_to_f32_odd(x)); }
double f16_to_f64(uint16_t h) { return (double)f16_bits_to_f32(h); }

double dtype_round(DType dt, double x) {
    switch (dt) {
    case DTYPE_F32: return (double)(float)x;
    case DTYPE_F16: return f16_to_f64(f64_to_f16(x));
    case DTYPE_BF16: return bf16_to_f64(f64_to_bf16(x));
    case DTYPE_F64: return x;
    default: {
        double v;
        dtype_from_f64(dt, &x, 1, &v);  // an 8-byte scratch holds any integer dtype
        dtype_to_f64(dt, &v, 1, &x);
        return x;
    }
    }
}

/* f64_to_f32_odd then f32_to_bf16_bits, for finite x, without branches: the
 * truncation step and the sticky bit as 0/1 arithmetic on the float's bits. */
static double bf16_round_finite(double x) {
    float f = (float)x;
    uint32_t u = f32_bits(f);
    u -= (uint32_t)(fabs((double)f) > fabs(x));  // one step toward zero: truncated
    u |= (uint32_t)((double)f != x);             // round to odd: something was dropped
    u += 0x7fffu + ((u >> 16) & 1u);             // to nearest even at bf16
    return (double)f32_from_bits(u & 0xffff0000u);
}

void dtype_round_array(DType dt, const double *x, size_t count, double *out) {
    if (dt != DTYPE_BF16) {
        for (size_t i = 0; i < count; i++) out[i] = dtype_round(dt, x[i]);
        return;
    }
    int finite = 1;
    for (size_t i = 0; i < count; i++) finite &= isfinite(x[i]) && fabs(x[i]) <= FLT_MAX;
    if (!finite) {
        for (size_t i = 0; i < count; i++) out[i] = dtype_round(dt, x[i]);
        return;
    }
    for (size_t i = 0; i < count; i++) out[i] = bf16_round_finite(x[i]);
}

// ----------------------------------------------------------------------------
// array conversion

void dtype_to_f64(DType dt, const void *src, size_t count, double *dst) {
    const unsigned char *p = src;
    switch (dt) {
    case DTYPE_F64:
        for (size_t i = 0; i < count; i++) {
            uint64_t u = load_le(p + 8 * i, 8);
            memcpy(&dst[i], &u, 8);
        }
        break;
    case DTYPE_F32:
        for (size_t i = 0; i < count; i++) dst[i] = f32_from_bits((uint32_t)load_le(p + 4 * i, 4));
        break;
    case DTYPE_F16:
        for (size_t i = 0; i < count; i++) dst[i] = f16_to_f64((uint16_t)load_le(p + 2 * i, 2));
        break;
    case DTYPE_BF16:
        for (size_t i = 0; i < count; i++) dst[i] = bf16_to_f64((uint16_t)load_le(p + 2 * i, 2));
        break;
    case DTYPE_I64: case DTYPE_I32: case DTYPE_I16: case DTYPE_I8: {
        int size = (int)dtype_size(dt), shift = 64 - 8 * size;
        for (size_t i = 0; i < count; i++)  // sign-extend through the top bits
            dst[i] = (double)((int64_t)(load_le(p + (size_t)size * i, size) << shift) >> shift);
        break;
    }
    case DTYPE_U8: case DTYPE_BOOL:
        for (size_t i = 0; i < count; i++) dst[i] = (double)p[i];
        break;
    default: break;
    }
}

/* Nearest integer, saturated to [lo, hi] (NaN -> 0). */
static int64_t to_int(double x, double lo, double hi) {
    if (isnan(x)) return 0;
    x = nearbyint(x);
    return (int64_t)(x < lo ? lo : x > hi ? hi : x);
}

void dtype_from_f64(DType dt, const double *src, size_t count, void *dst) {
    unsigned char *p = dst;
    switch (dt) {
    case DTYPE_F64:
        for (size_t i = 0; i < count; i++) {
            uint64_t u;
            memcpy(&u, &src[i], 8);
            store_le(p + 8 * i, u, 8);
        }
        break;
    case DTYPE_F32:
        for (size_t i = 0; i < count; i++) store_le(p + 4 * i, f32_bits((float)src[i]), 4);
        break;
    case DTYPE_F16:
        for (size_t i = 0; i < count; i++) store_le(p + 2 * i, f64_to_f16(src[i]), 2);
        break;
    case DTYPE_BF16:
        for (size_t i = 0; i < count; i++) store_le(p + 2 * i, f64_to_bf16(src[i]), 2);
        break;
    case DTYPE_I64: case DTYPE_I32: case DTYPE_I16: case DTYPE_I8: {
        int size = (int)dtype_size(dt);
        double hi = ldexp(1.0, 8 * size - 1), lo = -hi;
        if (size == 8) hi = 9223372036854774784.0;  // largest double below 2^63
        else hi -= 1.0;
        for (size_t i = 0; i < count; i++) store_le(p + (size_t)size * i, (uint64_t)to_int(src[i], lo, hi), size);
        break;
    }
    case DTYPE_U8:
        for (size_t i = 0; i < count; i++) p[i] = (unsigned char)to_int(src[i], 0, 255);
        break;
    case DTYPE_BOOL:
        for (size_t i = 0; i < count; i++) p[i] = src[i] != 0.0;
        break;
    default: break;
    }
}
