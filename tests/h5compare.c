/* h5compare.c - compare two ailora HDF5 files dataset by dataset.
 *
 *   h5compare A.h5 B.h5 [--tol T] [--svd] [--only SUBSTRING]
 *
 * Every dataset of A must exist in B with the same shape. Integer datasets must
 * match exactly. Float datasets must agree within T * max|A| (default 1e-10).
 * With --svd (SVD caches), singular vectors are compared with the bound their
 * spectral gap allows: for pair j, T * S[0] / gap_j (Wedin's theorem for a
 * backward error T * S[0]), capped at 2; S itself within T * S[0].
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
    int svd;
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

/* Gap-aware tolerance for singular pair j of a module's S. */
static double pair_tol(const double *S, int k, int j, double tol) {
    double gap = INFINITY;
    if (j > 0) gap = fmin(gap, S[j - 1] - S[j]);
    if (j < k - 1) gap = fmin(gap, S[j] - S[j + 1]);
    double t = gap > 0 ? tol * S[0] / gap : INFINITY;
    return fmin(t, 2.0);
}

static void compare_dataset(Ctx *c, const char *name) {
    if (c->only && !strstr(name, c->only)) return;
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
    double *S = NULL;
    int k = 0;
    if (vec) {  // the module's spectrum sets each pair's tolerance
        char spath[512];
        int ns, is;
        hsize_t ds[8];
        snprintf(spath, sizeof spath, "%.*sS", (int)(base - name), name);
        S = read_all(c->a, spath, &ns, ds, &is);
        k = (int)ds[0];
    }
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]) && isnan(y[i])) continue;  // "not measured" on both sides
        double d = fabs(x[i] - y[i]), allowed;
        if (ia) allowed = 0.0;
        else if (vec) {
            int j = strcmp(base, "U") == 0 ? (int)(i % da[1]) : (int)(i / da[1]);
            allowed = pair_tol(S, k, j, c->tol);
        } else if (c->svd && strcmp(base, "S") == 0) allowed = c->tol * x[0];
        else allowed = c->tol * scale;
        if (!(d <= allowed)) worst = fmax(worst, isnan(d) ? INFINITY : d / (allowed > 0 ? allowed : 1e-300));
    }
    if (worst > 1.0) {
        printf("DIFF %s: worst |a-b| / tolerance = %.3g\n", name, worst);
        c->failed++;
    }
    free(S);
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
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) c.only = argv[++i];
        else if (nf < 2) files[nf++] = argv[i];
    }
    if (nf != 2) {
        fprintf(stderr, "usage: h5compare A.h5 B.h5 [--tol T] [--svd]\n");
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
