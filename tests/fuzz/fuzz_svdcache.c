/* fuzz_svdcache.c - libFuzzer harness of the SVD cache readers: svdcache_open
 * (src/svd/svdcache.c) and init_module_adapters (src/init/initfile.c), the path
 * `ailora init --svd` and `ailora train svd_cache=` take.
 *
 * Three fixed targets (tall 6x4, wide 3x5 as GQA's v_proj, square 4x4 of another
 * suffix). The input drives h5gen.h to write the cache (format attribute, and per
 * module /modules/<name>/S [k], U [m, k], Vt [k, n] with input-chosen departures,
 * see h5gen.h; or, as `ailora svd --keep K` writes it, a partial cache: kept [nk]
 * int64, usually [0, K) and [k-K, k), and U [m, nk], Vt [nk, n]) and picks the init spec (method, rank 1..k as the CLI allows,
 * alpha, ratios). Accepted modules must come back with adapters of the right
 * shape, selected indices inside the spectrum, and no memory error.
 */
#include <stdint.h>
#include <stdlib.h>

#include "ailora/initfile.h"
#include "ailora/svdcache.h"
#include "h5gen.h"

#define NT 3
static TargetModule targets[NT] = {
    {.name = "model.layers.0.self_attn.q_proj", .suffix = "q_proj", .layer = 0, .m = 6, .n = 4, .dtype = DTYPE_F32},
    {.name = "model.layers.0.self_attn.v_proj", .suffix = "v_proj", .layer = 0, .m = 3, .n = 5, .dtype = DTYPE_F32},
    {.name = "model.layers.1.mlp.up_proj", .suffix = "up_proj", .layer = 1, .m = 4, .n = 4, .dtype = DTYPE_F32},
};

static double value(FuzzIn *in, size_t i, const void *ctx) { return (void)i, (void)ctx, in_double(in); }
static long long unused_i64(FuzzIn *in, size_t i, const void *ctx) { return (void)in, (void)i, (void)ctx, 0; }

/* S: usually a proper spectrum (descending, non-negative), else anything. */
static double spectrum(FuzzIn *in, size_t i, const void *ctx) {
    (void)ctx;
    return in_u8(in) % 4 ? 10.0 / (double)(i + 1) : in_double(in);
}

/* kept[i] of a partial cache: ctx = {k, nk}; usually [0, nk/2) and [k - nk/2, k). */
static long long kept_index(FuzzIn *in, size_t i, const void *ctx) {
    const int *kn = ctx;
    int k = kn[0], nk = kn[1], h = nk / 2;
    if (in_u8(in) % 8 == 0) return (long long)in_range(in, 0, 2 * k) - k / 2;
    return (long long)i < h ? (long long)i : k - nk + (long long)i;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzIn in = {data, size};
    char path[600];
    fuzz_path(path, sizeof path, "svd.h5");
    hid_t f = gen_file(path);
    gen_attr_str(&in, f, "format", SVDCACHE_FORMAT);
    for (int t = 0; t < NT; t++) {
        int m = targets[t].m, n = targets[t].n, k = m < n ? m : n;
        int nk = k, kn[2];
        char p[256];
        if (in_u8(&in) % 3 == 0) {  // a partial cache
            nk = (int)in_range(&in, 1, k);
            kn[0] = k, kn[1] = nk;
            hsize_t dK[1] = {(hsize_t)nk};
            snprintf(p, sizeof p, "/modules/%s/kept", targets[t].name);
            gen_dataset(&in, f, p, 1, dK, 1, value, kept_index, kn);
        }
        hsize_t dS[1] = {(hsize_t)k}, dU[2] = {(hsize_t)m, (hsize_t)nk}, dVt[2] = {(hsize_t)nk, (hsize_t)n};
        snprintf(p, sizeof p, "/modules/%s/S", targets[t].name);
        gen_dataset(&in, f, p, 1, dS, 0, spectrum, unused_i64, NULL);
        snprintf(p, sizeof p, "/modules/%s/U", targets[t].name);
        gen_dataset(&in, f, p, 2, dU, 0, value, unused_i64, NULL);
        snprintf(p, sizeof p, "/modules/%s/Vt", targets[t].name);
        gen_dataset(&in, f, p, 2, dVt, 0, value, unused_i64, NULL);
    }
    H5Fclose(f);

    InitSpec spec;  // one statement per draw: the order of initializer expressions is unspecified
    spec.method = (InitMethod)(in_u8(&in) % 5);
    spec.rank = (int)in_range(&in, 1, 3);
    spec.alpha = in_u8(&in) % 4 ? 0 : in_double(&in);
    spec.ratio_q = in_u8(&in) / 255.0;
    spec.ratio_v = in_u8(&in) / 255.0;
    spec.ratio_other = in_u8(&in) / 255.0;
    spec.seed = in_u8(&in);
    spec.lora_gaussian = in_u8(&in) & 1;
    ail_error_clear();
    if (init_spec_validate(&spec) != AIL_OK) return 0;  // the CLI stops there
    hid_t cache;
    int rc = svdcache_open(path, targets, NT, &cache);
    fuzz_check_error(rc);
    if (rc != AIL_OK) return 0;
    for (int t = 0; t < NT && rc == AIL_OK; t++) {
        ModuleInit mi;
        rc = init_module_adapters(cache, &targets[t], &spec, &mi);
        fuzz_check_error(rc);
        if (rc == AIL_OK) {
            int m = targets[t].m, n = targets[t].n, r = spec.rank;
            FUZZ_ASSERT(mi.A && mi.B && mi.S && mi.k == (m < n ? m : n));
            for (int j = 0; j < mi.nsel; j++) FUZZ_ASSERT(mi.selected[j] >= 0 && mi.selected[j] < mi.k);
            volatile double sum = 0;
            for (size_t j = 0; j < (size_t)r * n; j++) sum += mi.A[j];
            for (size_t j = 0; j < (size_t)m * r; j++) sum += mi.B[j];
            (void)sum;
        }
        module_init_free(&mi);
    }
    H5Fclose(cache);
    return 0;
}
