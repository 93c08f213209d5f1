/* h5compare.c - compare two ailora HDF5 files dataset by dataset.
 *
 *   h5compare A.h5 B.h5 [--tol T] [--svd] [--only SUBSTRING] [--nan-equal]
 *
 * Every dataset of A must exist in B with the same shape. Integer datasets must
 * match exactly. Float datasets must agree within T * max|A| (default 1e-10).
 * A NaN in either file is a difference; with --nan-equal, NaN in both files at
 * the same position counts as equal (for "not measured" entries such as
 * /eval/exact_match with max_new_tokens = 0), and a NaN opposite a number is
 * still a difference.
 *
 * With --svd (SVD caches), S must agree within T * S[0], and singular vectors with
 * the bound their spectral gap allows (Wedin's theorem for a backward error
 * T * S[0]). The spectrum of A is cut into clusters: neighbours j, j+1 share a
 * cluster when T * S[0] / (S[j] - S[j+1]) > 1e-2, i.e. when their vectors are not
 * determined to 1e-2 one by one. Rectangular sides (U of a tall matrix, Vt of a
 * wide one) also have the null space as singular value 0.
 *  - a vector alone in its cluster: |a - b| <= T * S[0] / gap elementwise
 *    (gap: distance of S[j] to the rest of the spectrum; signs canonical)
 *  - a cluster of several: b's vectors of the cluster are orthonormal and lie in
 *    the span of a's within T * (S[0] / gap + 1) (sin of the largest angle, per
 *    vector; the + 1 is the rounding floor of orthonormal factors). A cluster
 *    joined to the null space, or not kept whole, is checked the other way: b's
 *    vectors are orthogonal to a's vectors outside the cluster.
 * Files written with --keep K hold the vectors of S indices [0, K) and [k-K, k).
 * Prints one line per dataset over tolerance; exit 0 if all agree, 1 otherwise.
 *
 *   h5compare --attr FILE OBJECT NAME   prints a numeric attribute (for shell tests)
 *   h5compare --value FILE DATASET I    prints element I of a dataset (-1: the last)
 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hid_t a, b;
    double tol;
    int svd, nan_equal;
    const char *only;  /* compare only dataset paths containing this */
    int compared, failed;
} Ctx;

static double *read_all(hid_t file, const char *name, int *ndims, hsize_t *dims, int *is_int) {
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return NULL;
    hid_t s = H5Dget_space(d), t = H5Dget_type(d);
    *ndims = H5Sget_simple_extent_ndims(s);
    H5Sget_simple_extent_dims(s, dims, NULL);
    *is_int = H5Tget_class(t) == H5T_INTEGER;
    size_t n = 1;
    for (int i = 0; i < *ndims; i++) n *= dims[i];
    double *buf = malloc(sizeof(double) * (n ? n : 1));
    if (n) H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(d);
    return buf;
}

#define CLUSTER_BOUND 1e-2 /* pair bounds above this: compare the cluster's subspace */

/* Element i of stored vector c: U [len, kv] holds vectors as columns, Vt [kv, len] as rows. */
static double vec_at(const double *x, int is_u, int kv, int len, int c, int i) {
    return is_u ? x[(size_t)i * kv + c] : x[(size_t)c * len + i];
}

/* Worst |a-b| / bound over the singular vectors of one module (see the top comment).
 * x, y: the vectors of A and B; S [k] of A; len: vector length. */
static double compare_vectors(const char *name, const double *x, const double *y, int is_u, int kv, int len,
                              const double *S, int k, double tol) {
    int *idx = malloc(sizeof(int) * (size_t)(kv ? kv : 1)), *col = malloc(sizeof(int) * (size_t)k);
    int *cl = malloc(sizeof(int) * (size_t)(k + 1));
    double *r = malloc(sizeof(double) * (size_t)(len ? len : 1));
    double worst = 0.0, s0 = k > 0 ? S[0] : 0.0;
    if (kv != k && (kv % 2 || kv > k)) {
        printf("SHAPE %s: %d vectors for %d singular values\n", name, kv, k);
        free(idx), free(col), free(cl), free(r);
        return INFINITY;
    }
    for (int j = 0; j < k; j++) col[j] = -1;
    for (int c = 0; c < kv; c++) {  // --keep K: the first K and the last K
        idx[c] = kv == k || c < kv / 2 ? c : k - kv + c;
        col[idx[c]] = c;
    }
    // clusters over 0..k-1, plus the null space (index k, value 0) on a rectangular side
    int has_null = len > k;
    int kk = k + has_null;
    double *Sx = malloc(sizeof(double) * (size_t)(kk ? kk : 1));
    for (int j = 0; j < k; j++) Sx[j] = S[j];
    if (has_null) Sx[k] = 0.0;
    cl[0] = 0;
    for (int j = 0; j + 1 < kk; j++) {
        double gap = Sx[j] - Sx[j + 1];
        cl[j + 1] = cl[j] + (gap > 0 && tol * s0 / gap <= CLUSTER_BOUND);
    }
    for (int lo = 0, hi; lo < k; lo = hi) {
        for (hi = lo; hi < kk && cl[hi] == cl[lo]; hi++) {}
        // indices [lo, hi) form a cluster; hi == kk with has_null: joined to the null space
        double gap = INFINITY;
        if (lo > 0) gap = fmin(gap, Sx[lo - 1] - Sx[lo]);
        if (hi < kk) gap = fmin(gap, Sx[hi - 1] - Sx[hi]);
        int null_joined = has_null && hi == kk, top = hi > k ? k : hi;
        if (top - lo == 1 && !null_joined) {  // a single vector: elementwise, signs canonical
            int c = col[lo];
            if (c < 0) continue;
            double bound = tol * s0 / gap;
            for (int i = 0; i < len; i++) {
                double d = fabs(vec_at(x, is_u, kv, len, c, i) - vec_at(y, is_u, kv, len, c, i));
                if (!(d <= bound)) worst = fmax(worst, isnan(d) ? INFINITY : d / (bound > 0 ? bound : 1e-300));
            }
            continue;
        }
        double bound = tol * (s0 / gap + 1.0);
        int whole = 1;
        for (int j = lo; j < top; j++) whole &= col[j] >= 0;
        for (int j = lo; j < top; j++) {
            int c = col[j];
            if (c < 0) continue;
            // orthonormal within the cluster
            for (int j2 = lo; j2 < top; j2++) {
                int c2 = col[j2];
                if (c2 < 0) continue;
                double dot = 0.0;
                for (int i = 0; i < len; i++) dot += vec_at(y, is_u, kv, len, c, i) * vec_at(y, is_u, kv, len, c2, i);
                double d = fabs(dot - (c == c2));
                if (!(d <= bound)) worst = fmax(worst, isnan(d) ? INFINITY : d / (bound > 0 ? bound : 1e-300));
            }
            // in a's span: ||b - P b|| over a's cluster; else orthogonal to a's other vectors
            double res = 0.0;
            if (whole && !null_joined) {  // the residual itself: 1 - sum dot^2 cancels to sqrt(eps)
                for (int i = 0; i < len; i++) r[i] = vec_at(y, is_u, kv, len, c, i);
                for (int j2 = lo; j2 < top; j2++) {
                    double dot = 0.0;
                    for (int i = 0; i < len; i++) dot += vec_at(x, is_u, kv, len, col[j2], i) * vec_at(y, is_u, kv, len, c, i);
                    for (int i = 0; i < len; i++) r[i] -= dot * vec_at(x, is_u, kv, len, col[j2], i);
                }
                for (int i = 0; i < len; i++) res += r[i] * r[i];
                res = sqrt(res);
            } else {
                for (int c2 = 0; c2 < kv; c2++) {
                    if (idx[c2] >= lo && idx[c2] < top) continue;
                    double dot = 0.0;
                    for (int i = 0; i < len; i++) dot += vec_at(x, is_u, kv, len, c2, i) * vec_at(y, is_u, kv, len, c, i);
                    res += dot * dot;
                }
                res = sqrt(res);
            }
            if (!(res <= bound)) worst = fmax(worst, isnan(res) ? INFINITY : res / (bound > 0 ? bound : 1e-300));
        }
    }
    free(idx), free(col), free(cl), free(Sx), free(r);
    return worst;
}

/* The strings of a 1-D variable-length string dataset (malloc'ed, joined by '\n'
 * with each entry's length first, so that any difference shows); NULL if not one. */
static char *read_strings(hid_t file, const char *name) {
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return NULL;
    hid_t s = H5Dget_space(d), t = H5Dget_type(d), mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));
    hssize_t n = H5Sget_simple_extent_npoints(s);
    char **v = calloc((size_t)n + 1, sizeof *v), *out = NULL;
    if (H5Tis_variable_str(t) > 0 && (n == 0 || H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0)) {
        size_t len = 1;
        for (hssize_t i = 0; i < n; i++) len += (v[i] ? strlen(v[i]) : 0) + 24;
        out = calloc(len, 1);
        for (hssize_t i = 0, w = 0; i < n; i++)
            w += snprintf(out + w, len - (size_t)w, "%zu:%s\n", v[i] ? strlen(v[i]) : 0, v[i] ? v[i] : "");
        if (n) H5Dvlen_reclaim(mt, s, H5P_DEFAULT, v);
    }
    free(v);
    H5Tclose(mt), H5Tclose(t), H5Sclose(s), H5Dclose(d);
    return out;
}

static void compare_dataset(Ctx *c, const char *name) {
    if (c->only && !strstr(name, c->only)) return;
    hid_t d = H5Dopen2(c->a, name, H5P_DEFAULT), t = d >= 0 ? H5Dget_type(d) : -1;
    int is_str = t >= 0 && H5Tget_class(t) == H5T_STRING;
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    if (is_str) {  // text (e.g. generated predictions): equal or not, whatever the tolerance
        char *x = read_strings(c->a, name);
        char *y = H5Lexists(c->b, name, H5P_DEFAULT) > 0 ? read_strings(c->b, name) : NULL;
        c->compared++;
        if (!x || !y || strcmp(x, y)) {
            printf("%s %s\n", y ? "DIFF (strings)" : "MISSING", name);
            c->failed++;
        }
        free(x), free(y);
        return;
    }
    int na, nb, ia, ib;
    hsize_t da[8], db[8];
    double *x = read_all(c->a, name, &na, da, &ia);
    double *y = H5Lexists(c->b, name, H5P_DEFAULT) > 0 ? read_all(c->b, name, &nb, db, &ib) : NULL;
    c->compared++;
    if (!y) {
        printf("MISSING %s in second file\n", name);
        c->failed++;
        free(x);
        return;
    }
    size_t n = 1;
    int same = na == nb;
    for (int i = 0; i < na && same; i++) same = da[i] == db[i], n *= da[i];
    if (!same) {
        printf("SHAPE %s differs\n", name);
        c->failed++;
        free(x);
        free(y);
        return;
    }
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(x[i]));
    const char *base = strrchr(name, '/') + 1;
    int vec = c->svd && (strcmp(base, "U") == 0 || strcmp(base, "Vt") == 0);
    if (vec) {  // the module's spectrum sets each vector's tolerance
        char spath[512];
        int ns, is;
        hsize_t ds[8];
        snprintf(spath, sizeof spath, "%.*sS", (int)(base - name), name);
        double *S = H5Lexists(c->a, spath, H5P_DEFAULT) > 0 ? read_all(c->a, spath, &ns, ds, &is) : NULL;
        int u = strcmp(base, "U") == 0;
        if (!S || na != 2) worst = INFINITY, printf("MISSING %s for %s\n", spath, name);
        else worst = compare_vectors(name, x, y, u, (int)(u ? da[1] : da[0]), (int)(u ? da[0] : da[1]), S,
                                     (int)ds[0], c->tol);
        free(S);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (c->nan_equal && isnan(x[i]) && isnan(y[i])) continue;  // "not measured" on both sides
            double d = fabs(x[i] - y[i]), allowed;
            if (ia) allowed = 0.0;
            else if (c->svd && strcmp(base, "S") == 0) allowed = c->tol * x[0];
            else allowed = c->tol * scale;
            if (!(d <= allowed)) worst = fmax(worst, isnan(d) ? INFINITY : d / (allowed > 0 ? allowed : 1e-300));
        }
    }
    if (worst > 1.0) {
        printf("DIFF %s: worst |a-b| / tolerance = %.3g\n", name, worst);
        c->failed++;
    }
    free(x);
    free(y);
}

#if H5_VERSION_GE(1, 12, 0)
typedef H5O_info2_t ObjInfo;
#define VISIT(file, fn, data) H5Ovisit3(file, H5_INDEX_NAME, H5_ITER_INC, fn, data, H5O_INFO_BASIC)
#else
typedef H5O_info_t ObjInfo;
#define VISIT(file, fn, data) H5Ovisit(file, H5_INDEX_NAME, H5_ITER_INC, fn, data)
#endif

static herr_t visit(hid_t obj, const char *name, const ObjInfo *info, void *data) {
    if (info->type == H5O_TYPE_DATASET) {
        char full[1024];
        snprintf(full, sizeof full, "/%s", name);
        compare_dataset(data, full);
    }
    return 0;
}

static int print_attr(const char *file, const char *obj, const char *name) {
    hid_t f = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t a = f >= 0 ? H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT) : -1;
    double v;
    int ok = a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0;
    if (ok) printf("%.17g\n", v);
    else fprintf(stderr, "h5compare: no numeric attribute %s on %s in %s\n", name, obj, file);
    if (a >= 0) H5Aclose(a);
    if (f >= 0) H5Fclose(f);
    return ok ? 0 : 2;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--value") == 0) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        hid_t f = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
        int nd, isint;
        hsize_t dims[8];
        double *x = f >= 0 ? read_all(f, argv[3], &nd, dims, &isint) : NULL;
        long n = 1, i = atol(argv[4]);
        for (int d = 0; x && d < nd; d++) n *= (long)dims[d];
        if (i < 0) i += n;
        int ok = x && i >= 0 && i < n;
        if (ok) printf("%.17g\n", x[i]);
        else fprintf(stderr, "h5compare: no element %s of %s in %s\n", argv[4], argv[3], argv[2]);
        free(x);
        if (f >= 0) H5Fclose(f);
        return ok ? 0 : 2;
    }
    if (argc == 5 && strcmp(argv[1], "--attr") == 0) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        return print_attr(argv[2], argv[3], argv[4]);
    }
    Ctx c = {.tol = 1e-10};
    const char *files[2] = {NULL, NULL};
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc) c.tol = atof(argv[++i]);
        else if (strcmp(argv[i], "--svd") == 0) c.svd = 1;
        else if (strcmp(argv[i], "--nan-equal") == 0) c.nan_equal = 1;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) c.only = argv[++i];
        else if (strncmp(argv[i], "--", 2) == 0 || nf == 2) nf = 3;  // unknown option or a third file
        else files[nf++] = argv[i];
    }
    if (nf != 2) {
        fprintf(stderr, "usage: h5compare A.h5 B.h5 [--tol T] [--svd] [--only SUBSTRING] [--nan-equal]\n");
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    c.a = H5Fopen(files[0], H5F_ACC_RDONLY, H5P_DEFAULT);
    c.b = H5Fopen(files[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (c.a < 0 || c.b < 0) {
        fprintf(stderr, "h5compare: cannot open %s\n", c.a < 0 ? files[0] : files[1]);
        return 2;
    }
    VISIT(c.a, visit, &c);
    printf("h5compare %s %s: %d datasets, %d differ (tol %g%s)\n", files[0], files[1], c.compared,
           c.failed, c.tol, c.svd ? ", gap-aware" : "");
    H5Fclose(c.a);
    H5Fclose(c.b);
    return c.failed || c.compared == 0 ? 1 : 0;
}
