/* test_dtype.c - closed-form checks of the float64 <-> F32/F16/BF16 conversions. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ailora/dtype.h"
#include "testutil.h"

static void test_names(void) {
    TU_CHECK(dtype_from_name("F64") == DTYPE_F64, "F64");
    TU_CHECK(dtype_from_name("F32") == DTYPE_F32, "F32");
    TU_CHECK(dtype_from_name("F16") == DTYPE_F16, "F16");
    TU_CHECK(dtype_from_name("BF16") == DTYPE_BF16, "BF16");
    TU_CHECK(dtype_from_name("I64") == DTYPE_I64 && dtype_size(DTYPE_I64) == 8, "I64");
    TU_CHECK(dtype_from_name("C64") == DTYPE_INVALID, "complex unsupported");
    TU_CHECK(!dtype_is_float(DTYPE_I32) && dtype_is_float(DTYPE_BF16), "dtype_is_float");
    {   // integers: exact round trip, sign extension, rounding and saturation
        const double in[5] = {-3.0, 2.6, -2.5, 1e30, -1e30};
        const double want8[5] = {-3.0, 3.0, -2.0, 127.0, -128.0};
        const double want64[5] = {-3.0, 3.0, -2.0, 9223372036854774784.0, -9223372036854775808.0};
        unsigned char buf[40];
        double out[5];
        dtype_from_f64(DTYPE_I8, in, 5, buf);
        dtype_to_f64(DTYPE_I8, buf, 5, out);
        for (int i = 0; i < 5; i++) TU_CHECK(out[i] == want8[i], "I8 %g -> %g", in[i], out[i]);
        dtype_from_f64(DTYPE_I64, in, 5, buf);
        dtype_to_f64(DTYPE_I64, buf, 5, out);
        for (int i = 0; i < 5; i++) TU_CHECK(out[i] == want64[i], "I64 %g -> %g", in[i], out[i]);
        TU_CHECK(dtype_round(DTYPE_I32, -7.4) == -7.0, "I32 round");
        TU_CHECK(dtype_round(DTYPE_U8, -5.0) == 0.0 && dtype_round(DTYPE_U8, 300.0) == 255.0, "U8 saturates");
    }
    TU_CHECK(dtype_from_name("bf16") == DTYPE_INVALID, "names are case-sensitive");
    TU_CHECK(dtype_from_name(NULL) == DTYPE_INVALID, "NULL");
    TU_CHECK(dtype_from_torch_name("bfloat16") == DTYPE_BF16, "bfloat16");
    TU_CHECK(dtype_from_torch_name("float16") == DTYPE_F16, "float16");
    TU_CHECK(dtype_from_torch_name("float32") == DTYPE_F32, "float32");
    TU_CHECK(dtype_from_torch_name("float64") == DTYPE_F64, "float64");
    TU_CHECK(dtype_from_torch_name("int8") == DTYPE_I8, "int8");
    TU_CHECK(strcmp(dtype_name(DTYPE_BF16), "BF16") == 0, "%s", dtype_name(DTYPE_BF16));
    TU_CHECK(strcmp(dtype_torch_name(DTYPE_F16), "float16") == 0, "%s", dtype_torch_name(DTYPE_F16));
    TU_CHECK(dtype_size(DTYPE_F64) == 8 && dtype_size(DTYPE_F32) == 4, "sizes");
    TU_CHECK(dtype_size(DTYPE_F16) == 2 && dtype_size(DTYPE_BF16) == 2, "sizes");
    TU_CHECK(dtype_size(DTYPE_INVALID) == 0, "invalid size");
}

#define CHECK_BITS(got, want, what) \
    TU_CHECK((got) == (want), "%s: got 0x%04x want 0x%04x", (what), (unsigned)(got), (unsigned)(want))

static void test_bf16_values(void) {
    CHECK_BITS(f64_to_bf16(1.0), 0x3f80, "1");
    CHECK_BITS(f64_to_bf16(-2.5), 0xc020, "-2.5");
    CHECK_BITS(f64_to_bf16(0.0), 0x0000, "+0");
    CHECK_BITS(f64_to_bf16(-0.0), 0x8000, "-0");
    CHECK_BITS(f64_to_bf16(INFINITY), 0x7f80, "+inf");
    CHECK_BITS(f64_to_bf16(-INFINITY), 0xff80, "-inf");
    CHECK_BITS(f64_to_bf16(1e39), 0x7f80, "overflow to +inf");
    CHECK_BITS(f64_to_bf16(-1e300), 0xff80, "overflow to -inf");
    CHECK_BITS(f64_to_bf16(3.4028234663852886e38), 0x7f80, "FLT_MAX rounds up to inf");
    CHECK_BITS(f64_to_bf16(3.3895313892515355e38), 0x7f7f, "largest finite bf16");
    TU_CHECK(bf16_to_f64(0x7f7f) == 3.3895313892515355e38, "largest finite");
    uint16_t nan = f64_to_bf16(NAN);
    TU_CHECK((nan & 0x7fff) > 0x7f80, "NaN stays NaN: 0x%04x", nan);
    TU_CHECK(isnan(bf16_to_f64(0x7fc0)) && isnan(bf16_to_f64(0xffc1)), "NaN decode");
    // one rounding from float64, not two through float32: 2^-40 off a tie is below half
    // a float32 ulp, so (float)x lands on the tie and ties-to-even picks the wrong side
    CHECK_BITS(f64_to_bf16(1.00390625 + 0x1p-40), 0x3f81, "just above the tie 1 + 2^-8 rounds up");
    CHECK_BITS(f64_to_bf16(1.01171875 - 0x1p-40), 0x3f81, "just below the tie 1 + 3 x 2^-8 rounds down");
    CHECK_BITS(f64_to_bf16(-(1.00390625 + 0x1p-40)), 0xbf81, "negative, just above the tie");
    CHECK_BITS(f64_to_bf16(1.00390625), 0x3f80, "an exact tie goes to even");
    CHECK_BITS(f64_to_bf16(1e-45 + 0x1p-160), 0x0000, "below half the smallest subnormal");
    CHECK_BITS(f64_to_f16(1.0 + 0x1p-11 + 0x1p-40), 0x3c01, "f16: just above the tie 1 + 2^-11 rounds up");
    CHECK_BITS(f64_to_f16(1.0 + 3 * 0x1p-11 - 0x1p-40), 0x3c01, "f16: just below the tie 1 + 3 x 2^-11 rounds down");
    TU_CHECK(dtype_round(DTYPE_BF16, 1.00390625 + 0x1p-40) == 1.0078125, "dtype_round BF16 rounds once");
    TU_CHECK(bf16_to_f64(0x7f80) == INFINITY && bf16_to_f64(0xff80) == -INFINITY, "inf decode");

    // ties to even: 1 + 2^-8 lies halfway between 1 (even) and 1 + 2^-7 (odd)
    CHECK_BITS(f64_to_bf16(1.0 + ldexp(1, -8)), 0x3f80, "tie down to even");
    CHECK_BITS(f64_to_bf16(1.0 + 3 * ldexp(1, -8)), 0x3f82, "tie up to even");
    CHECK_BITS(f64_to_bf16(1.0 + ldexp(1, -8) + ldexp(1, -20)), 0x3f81, "above tie");
    CHECK_BITS(f64_to_bf16(-(1.0 + ldexp(1, -8))), 0xbf80, "negative tie");
    // rounded once: 2^-40 above the tie is above it (torch's double -> float ->
    // bfloat16 loses it in the first step and gives the even 0x3f80)
    CHECK_BITS(f64_to_bf16(1.0 + ldexp(1, -8) + ldexp(1, -40)), 0x3f81, "one rounding, not two as torch");

    // subnormals: smallest is 2^-133
    TU_CHECK(bf16_to_f64(0x0001) == ldexp(1, -133), "smallest subnormal %g", bf16_to_f64(1));
    TU_CHECK(bf16_to_f64(0x007f) == 127 * ldexp(1, -133), "largest subnormal");
    CHECK_BITS(f64_to_bf16(ldexp(1, -133)), 0x0001, "smallest subnormal");
    CHECK_BITS(f64_to_bf16(ldexp(1, -134)), 0x0000, "half of it: tie to zero");
    CHECK_BITS(f64_to_bf16(3 * ldexp(1, -134)), 0x0002, "1.5 units: tie to 2");
    CHECK_BITS(f64_to_bf16(-ldexp(1, -133)), 0x8001, "negative subnormal");
}

static void test_f16_values(void) {
    CHECK_BITS(f64_to_f16(1.0), 0x3c00, "1");
    CHECK_BITS(f64_to_f16(-2.5), 0xc100, "-2.5");
    CHECK_BITS(f64_to_f16(65504.0), 0x7bff, "65504");
    CHECK_BITS(f64_to_f16(65519.99), 0x7bff, "just below the overflow tie");
    CHECK_BITS(f64_to_f16(65520.0), 0x7c00, "overflow tie to inf");
    CHECK_BITS(f64_to_f16(1e6), 0x7c00, "overflow");
    CHECK_BITS(f64_to_f16(-1e300), 0xfc00, "overflow -inf");
    CHECK_BITS(f64_to_f16(0.0), 0x0000, "+0");
    CHECK_BITS(f64_to_f16(-0.0), 0x8000, "-0");
    CHECK_BITS(f64_to_f16(INFINITY), 0x7c00, "inf");
    CHECK_BITS(f64_to_f16(-INFINITY), 0xfc00, "-inf");
    CHECK_BITS(f64_to_f16(NAN), 0x7e00, "NaN");
    TU_CHECK((f64_to_f16(-NAN) & 0x7fff) > 0x7c00, "-NaN stays NaN");
    TU_CHECK(isnan(f16_to_f64(0x7c01)) && isnan(f16_to_f64(0xfe00)), "NaN decode");
    TU_CHECK(f16_to_f64(0x7c00) == INFINITY && f16_to_f64(0xfc00) == -INFINITY, "inf decode");
    TU_CHECK(f16_to_f64(0x7bff) == 65504.0, "65504 decode");
    TU_CHECK(f16_to_f64(0x3555) == 0.333251953125, "1/3 decode %.17g", f16_to_f64(0x3555));
    CHECK_BITS(f64_to_f16(1.0 / 3.0), 0x3555, "1/3");

    // ties to even
    CHECK_BITS(f64_to_f16(1.0 + ldexp(1, -11)), 0x3c00, "tie down to even");
    CHECK_BITS(f64_to_f16(1.0 + 3 * ldexp(1, -11)), 0x3c02, "tie up to even");
    CHECK_BITS(f64_to_f16(2049.0), 0x6800, "2049 -> 2048");
    CHECK_BITS(f64_to_f16(2051.0), 0x6802, "2051 -> 2052");
    CHECK_BITS(f64_to_f16(2049.0 + ldexp(1, -10)), 0x6801, "above tie -> 2050");

    // subnormals: smallest 2^-24, largest 1023 * 2^-24, smallest normal 2^-14
    TU_CHECK(f16_to_f64(0x0001) == ldexp(1, -24), "smallest subnormal");
    TU_CHECK(f16_to_f64(0x03ff) == 1023 * ldexp(1, -24), "largest subnormal");
    TU_CHECK(f16_to_f64(0x0400) == ldexp(1, -14), "smallest normal");
    CHECK_BITS(f64_to_f16(ldexp(1, -24)), 0x0001, "smallest subnormal");
    CHECK_BITS(f64_to_f16(ldexp(1, -25)), 0x0000, "half of it: tie to zero");
    CHECK_BITS(f64_to_f16(ldexp(1, -25) * 1.0000001), 0x0001, "just above half");
    CHECK_BITS(f64_to_f16(3 * ldexp(1, -25)), 0x0002, "1.5 units: tie to 2");
    CHECK_BITS(f64_to_f16(ldexp(1, -30)), 0x0000, "underflow to zero");
    CHECK_BITS(f64_to_f16(-ldexp(1, -30)), 0x8000, "underflow to -0");
    CHECK_BITS(f64_to_f16(1023.5 * ldexp(1, -24)), 0x0400, "largest subnormal rounds up to normal");
    CHECK_BITS(f64_to_f16(ldexp(1, -14)), 0x0400, "smallest normal");
}

/* Every non-NaN bit pattern survives 16 -> f64 -> 16; and for each pair of
 * neighbours, their midpoint goes to the even one, points just off it to the
 * nearer one. */
static void test_exhaustive(const char *what, double (*to64)(uint16_t), uint16_t (*from64)(double),
                            uint16_t inf_bits) {
    int bad_trip = 0, bad_tie = 0, bad_nan = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double x = to64((uint16_t)h);
        if (isnan(x)) {
            if (!isnan(to64(from64(x)))) bad_nan++;
            continue;
        }
        if (from64(x) != h) bad_trip++;
        // neighbours h, h+1 of equal sign, both finite (the overflow tie is tested above)
        uint16_t mag = (uint16_t)(h & 0x7fff);
        if (mag + 1 >= inf_bits) continue;
        double y = to64((uint16_t)(h + 1));
        double mid = 0.5 * (x + y);  // exact: needs only one more bit
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        // float steps, since conversion goes via float; mid is exact in float too
        double below = nextafterf((float)mid, (float)x), above = nextafterf((float)mid, (float)y);
        if (from64(mid) != even || from64(below) != h || from64(above) != h + 1) {
            if (bad_tie++ < 3)
                fprintf(stderr, "%s: pair 0x%04x: mid %.17g -> 0x%04x\n", what, h, mid, from64(mid));
        }
    }
    TU_CHECK(bad_trip == 0, "%s: %d patterns did not round trip", what, bad_trip);
    TU_CHECK(bad_tie == 0, "%s: %d neighbour pairs rounded wrongly", what, bad_tie);
    TU_CHECK(bad_nan == 0, "%s: %d NaNs did not stay NaN", what, bad_nan);
}

static void test_arrays(void) {
    // odd offsets: the conversions must not assume alignment
    unsigned char buf[8 * 4 + 2];
    double src[4] = {1.0, -2.5, 65504.0, 0.1}, back[4];
    static const unsigned char one_le[4][8] = {
        {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f},  // F64
        {0x00, 0x00, 0x80, 0x3f},                          // F32
        {0x00, 0x3c},                                      // F16
        {0x80, 0x3f},                                      // BF16
    };
    DType dts[4] = {DTYPE_F64, DTYPE_F32, DTYPE_F16, DTYPE_BF16};
    for (int k = 0; k < 4; k++) {
        DType dt = dts[k];
        memset(buf, 0xaa, sizeof buf);
        dtype_from_f64(dt, src, 4, buf + 1);
        TU_CHECK(memcmp(buf + 1, one_le[k], dtype_size(dt)) == 0, "%s: 1.0 little-endian bytes",
                 dtype_name(dt));
        TU_CHECK(buf[0] == 0xaa && buf[1 + 4 * dtype_size(dt)] == 0xaa, "%s: wrote out of bounds",
                 dtype_name(dt));
        dtype_to_f64(dt, buf + 1, 4, back);
        for (int i = 0; i < 4; i++)
            TU_CHECK(back[i] == dtype_round(dt, src[i]), "%s[%d]: %.17g vs round %.17g",
                     dtype_name(dt), i, back[i], dtype_round(dt, src[i]));
    }
    TU_CHECK(dtype_round(DTYPE_F64, 0.1) == 0.1, "F64 identity");
    TU_CHECK(dtype_round(DTYPE_F32, 0.1) == (double)0.1f, "F32");
    TU_CHECK(dtype_round(DTYPE_BF16, 0.1) == 0.10009765625, "BF16 0.1 %.17g", dtype_round(DTYPE_BF16, 0.1));
    TU_CHECK(dtype_round(DTYPE_F16, 0.1) == 0.0999755859375, "F16 0.1 %.17g", dtype_round(DTYPE_F16, 0.1));
    TU_CHECK(dtype_round(DTYPE_F16, 1e5) == INFINITY, "F16 overflow");
}

/* dtype_round_array's branch-free BF16 loop against dtype_round, value by value:
 * random magnitudes over the whole float range, exact bf16 ties and the doubles
 * either side of them, float32 subnormals, FLT_MAX's neighbourhood, signed zeros;
 * then an Inf / NaN in the array (the scalar path). */
static void test_round_array(void) {
    enum { N = 200000 };
    double *x = malloc(sizeof(double) * N), *got = malloc(sizeof(double) * N);
    uint64_t state = 12345;
    for (int i = 0; i < N; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        double mant = 1.0 + (double)(state >> 11) * 0x1p-53;
        int e = (int)((state >> 3) % 280) - 150;  // 2^-150 .. 2^129: subnormal to overflow
        double v = ldexp(mant, e) * ((state & 1) ? -1.0 : 1.0);
        double tie = bf16_to_f64(f64_to_bf16(v)) + copysign(ldexp(1.0, (int)floor(log2(fabs(v) + 1e-300)) - 8), v);
        switch (i % 6) {
        case 1: v = tie; break;                              // exactly half a bf16 ulp
        case 2: v = nextafter(tie, 0.0); break;              // a hair below: rounds in
        case 4: v = nextafter(tie, copysign(INFINITY, v)); break;  // a hair above: out (the sticky bit)
        case 3: v = (double)FLT_MAX * (1.0 - (double)(state >> 40) * 0x1p-40); break;
        default: break;
        }
        x[i] = v;
    }
    x[0] = 0.0, x[1] = -0.0, x[2] = FLT_MAX, x[3] = -(double)FLT_MAX, x[4] = 0x1p-149, x[5] = 0x1p-150;
    for (int i = 0; i < N; i++) x[i] = fabs(x[i]) > FLT_MAX ? FLT_MAX : x[i];
    dtype_round_array(DTYPE_BF16, x, N, got);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        double want = dtype_round(DTYPE_BF16, x[i]);
        if (memcmp(&want, &got[i], sizeof want) != 0 && bad++ < 5)
            printf("  x = %.17g: array %.17g, scalar %.17g\n", x[i], got[i], want);
    }
    TU_CHECK(bad == 0, "dtype_round_array BF16 = dtype_round bit for bit (%d of %d differ)", bad, N);
    x[7] = INFINITY, x[8] = NAN, x[9] = 1e300;
    dtype_round_array(DTYPE_BF16, x, 16, got);
    TU_CHECK(got[7] == INFINITY && isnan(got[8]) && got[9] == INFINITY && got[0] == 0.0, "Inf, NaN, overflow");
    dtype_round_array(DTYPE_F16, x, 16, got);
    TU_CHECK(got[9] == INFINITY && got[2] == INFINITY, "F16 through dtype_round");
    free(x), free(got);
}

int main(void) {
    test_names();
    test_bf16_values();
    test_f16_values();
    test_exhaustive("bf16", bf16_to_f64, f64_to_bf16, 0x7f80);
    test_exhaustive("f16", f16_to_f64, f64_to_f16, 0x7c00);
    test_arrays();
    test_round_array();
    return tu_finish("test_dtype");
}
