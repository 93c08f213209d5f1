/* diaglog.c - the diagnostics log of a run (diaglog.h). */
#include "ailora/diaglog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/h5io.h"

/* Where each quantity sits in a module's row of DIAGLOG_WIDTH(r) values. */
typedef struct {
    const char *name;
    int offset, cols;  /* cols 0: a scalar per evaluation ([count]), else [count, cols] */
} DiagField;

static int fields_of(int r, DiagField f[10]) {
    const char *names[10] = {"sigma", "effective_rank", "energy_u_top", "energy_u_bottom", "energy_v_top",
                             "energy_v_bottom", "cos_u_top", "cos_u_bottom", "cos_v_top", "cos_v_bottom"};
    int offset = 0;
    for (int i = 0; i < 10; i++) {
        int cols = i == 0 ? 2 * r : i < 6 ? 0 : r;
        f[i] = (DiagField){names[i], offset, cols};
        offset += cols ? cols : 1;
    }
    return offset;  // == DIAGLOG_WIDTH(r)
}

void diaglog_init(DiagLog *log, int ntargets, int r, int K) {
    memset(log, 0, sizeof *log);
    log->ntargets = ntargets, log->r = r, log->K = K;
}

static int diaglog_reserve(DiagLog *log, int need) {
    if (need <= log->cap) return AIL_OK;
    int cap = log->cap ? 2 * log->cap : 16;
    if (cap < need) cap = need;
    size_t row = (size_t)log->ntargets * DIAGLOG_WIDTH(log->r);
    double *step = ail_realloc(log->step, sizeof(double) * (size_t)cap);
    if (step) log->step = step;
    double *values = step ? ail_realloc(log->values, sizeof(double) * (size_t)cap * row) : NULL;
    if (!values) return AIL_ERROR(AIL_ERR_MEM, "out of memory for the diagnostics log");
    log->values = values;
    log->cap = cap;
    return AIL_OK;
}

int diaglog_append(DiagLog *log, long step, const UpdateDiag *d) {
    if (!log->ntargets) return AIL_OK;
    AIL_CHECK(diaglog_reserve(log, log->count + 1));
    DiagField f[10];
    int width = fields_of(log->r, f), r = log->r;
    double *row = log->values + (size_t)log->count * log->ntargets * width;
    for (int i = 0; i < log->ntargets; i++, row += width) {
        const UpdateDiag *x = &d[i];
        const double scalars[5] = {x->effective_rank, x->energy_u_top, x->energy_u_bottom, x->energy_v_top,
                                   x->energy_v_bottom};
        const double *cos[4] = {x->cos_u_top, x->cos_u_bottom, x->cos_v_top, x->cos_v_bottom};
        memcpy(row + f[0].offset, x->sigma, sizeof(double) * 2 * (size_t)r);
        for (int j = 0; j < 5; j++) row[f[1 + j].offset] = scalars[j];
        for (int j = 0; j < 4; j++) memcpy(row + f[6 + j].offset, cos[j], sizeof(double) * (size_t)r);
    }
    log->step[log->count++] = (double)step;
    return AIL_OK;
}

static int write_2d(hid_t file, const char *path, hid_t ftype, hid_t mtype, int ndims, const hsize_t *dims,
                    const void *data) {
    hid_t d;
    AIL_CHECK(h5io_dataset_create(file, path, ftype, ndims, dims, &d));
    int rc = dims[0] ? h5io_write_all(d, mtype, data) : AIL_OK;
    H5Dclose(d);
    return rc;
}

int diaglog_write(hid_t file, const DiagLog *log, const TargetModule *targets) {
    if (!log->ntargets || !log->count) return AIL_OK;
    DiagField f[10];
    int width = fields_of(log->r, f), n = log->count;
    long long *steps = ail_malloc(sizeof(long long) * (size_t)n);
    double *col = ail_malloc(sizeof(double) * (size_t)n * 2 * log->r);
    int rc = steps && col ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory writing diagnostics");
    for (int i = 0; i < n && rc == AIL_OK; i++) steps[i] = (long long)log->step[i];
    hsize_t dim = (hsize_t)n;
    if (rc == AIL_OK) rc = write_2d(file, "/diagnostics/step", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, &dim, steps);
    hid_t g = rc == AIL_OK ? H5Gopen2(file, "/diagnostics", H5P_DEFAULT) : -1;
    if (rc == AIL_OK) rc = g >= 0 ? h5io_attr_int(g, "K", log->K) : AIL_ERROR(AIL_ERR_IO, "cannot open /diagnostics");
    if (rc == AIL_OK) rc = h5io_attr_int(g, "rank", log->r);
    if (g >= 0) H5Gclose(g);
    for (int t = 0; t < log->ntargets && rc == AIL_OK; t++)
        for (int q = 0; q < 10 && rc == AIL_OK; q++) {
            int cols = f[q].cols ? f[q].cols : 1;
            for (int i = 0; i < n; i++)  // gather the field's columns of every evaluation
                memcpy(col + (size_t)i * cols, log->values + ((size_t)i * log->ntargets + t) * width + f[q].offset,
                       sizeof(double) * (size_t)cols);
            char path[512];
            snprintf(path, sizeof path, "/diagnostics/%s/%s", targets[t].name, f[q].name);
            hsize_t dims[2] = {(hsize_t)n, (hsize_t)cols};
            rc = write_2d(file, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, f[q].cols ? 2 : 1, dims, col);
        }
    free(steps);
    free(col);
    return rc;
}

int diaglog_read(hid_t file, const char *path, DiagLog *log, const TargetModule *targets) {
    log->count = 0;
    if (!log->ntargets || H5Lexists(file, "/diagnostics", H5P_DEFAULT) <= 0) return AIL_OK;
    hsize_t dims[2];
    double *x = NULL;
    AIL_CHECK(h5io_read_f64(file, "/diagnostics/step", 1, dims, &x));
    int n = (int)dims[0];
    int rc = diaglog_reserve(log, n);
    if (rc == AIL_OK) memcpy(log->step, x, sizeof(double) * (size_t)n);
    free(x);
    DiagField f[10];
    int width = fields_of(log->r, f);
    for (int t = 0; t < log->ntargets && rc == AIL_OK; t++)
        for (int q = 0; q < 10 && rc == AIL_OK; q++) {
            char p[512];
            snprintf(p, sizeof p, "/diagnostics/%s/%s", targets[t].name, f[q].name);
            int cols = f[q].cols ? f[q].cols : 1;
            rc = h5io_read_f64(file, p, f[q].cols ? 2 : 1, dims, &x);
            if (rc == AIL_OK && (dims[0] != (hsize_t)n || (f[q].cols && dims[1] != (hsize_t)cols)))
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s has the wrong shape (rank %d, %d evaluations)", path, p,
                               log->r, n);
            for (int i = 0; i < n && rc == AIL_OK; i++)
                memcpy(log->values + ((size_t)i * log->ntargets + t) * width + f[q].offset, x + (size_t)i * cols,
                       sizeof(double) * (size_t)cols);
            free(x);
            x = NULL;
        }
    if (rc == AIL_OK) log->count = n;
    return rc;
}

void diaglog_free(DiagLog *log) {
    free(log->step);
    free(log->values);
    log->step = log->values = NULL;
    log->count = log->cap = 0;
}
