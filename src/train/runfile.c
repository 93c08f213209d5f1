/* runfile.c - run files and checkpoints (see runfile.h). */
#include "ailora/runfile.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/fileio.h"
#include "ailora/h5io.h"
#include "config.h"

#define RUNFILE_FORMAT "ailora-run/1"

static int grow(int *cap, int count, double **arrays[], int narrays) {
    if (count < *cap) return AIL_OK;
    int ncap = *cap ? 2 * *cap : 256;
    for (int i = 0; i < narrays; i++) {
        double *p = ail_realloc(*arrays[i], sizeof(double) * (size_t)ncap);
        if (!p) return AIL_ERROR(AIL_ERR_MEM, "out of memory for metrics");
        *arrays[i] = p;
    }
    *cap = ncap;
    return AIL_OK;
}

int trainlog_append(TrainLog *log, long step, double loss, double lr, double grad_norm, double tps) {
    double **arrays[] = {&log->step, &log->loss, &log->lr, &log->grad_norm, &log->tokens_per_s};
    AIL_CHECK(grow(&log->cap, log->count, arrays, 5));
    int i = log->count++;
    log->step[i] = (double)step, log->loss[i] = loss, log->lr[i] = lr;
    log->grad_norm[i] = grad_norm, log->tokens_per_s[i] = tps;
    return AIL_OK;
}

int evallog_append(EvalLog *log, long step, double loss, double exact_match) {
    double **arrays[] = {&log->step, &log->loss, &log->ppl, &log->exact_match};
    AIL_CHECK(grow(&log->cap, log->count, arrays, 4));
    int i = log->count++;
    log->step[i] = (double)step, log->loss[i] = loss, log->ppl[i] = exp(loss);
    log->exact_match[i] = exact_match;
    return AIL_OK;
}

void trainlog_free(TrainLog *log) {
    free(log->step), free(log->loss), free(log->lr), free(log->grad_norm), free(log->tokens_per_s);
    memset(log, 0, sizeof *log);
}

void evallog_free(EvalLog *log) {
    free(log->step), free(log->loss), free(log->ppl), free(log->exact_match);
    memset(log, 0, sizeof *log);
}

/* ---- writing ------------------------------------------------------------------------ */

static int write_array(hid_t file, const char *path, hid_t ftype, hid_t mtype, int ndims,
                       const hsize_t *dims, const void *data) {
    hid_t d;
    AIL_CHECK(h5io_dataset_create(file, path, ftype, ndims, dims, &d));
    size_t n = 1;
    for (int i = 0; i < ndims; i++) n *= dims[i];
    int rc = n ? h5io_write_all(d, mtype, data) : AIL_OK;
    H5Dclose(d);
    return rc;
}

static int write_doubles(hid_t file, const char *path, int count, const double *x) {
    hsize_t dim = (hsize_t)count;
    return write_array(file, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &dim, x);
}

static int write_steps(hid_t file, const char *path, int count, const double *x) {
    long long *v = ail_malloc(sizeof(long long) * (size_t)(count ? count : 1));
    if (!v) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int i = 0; i < count; i++) v[i] = (long long)x[i];
    hsize_t dim = (hsize_t)count;
    int rc = write_array(file, path, H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, &dim, v);
    free(v);
    return rc;
}

/* A real (float) array widened to float64: exact, so checkpoints restore bit for bit. */
static int write_real(hid_t file, const char *path, int rows, int cols, const real *x) {
    size_t n = (size_t)rows * cols;
    double *v = ail_malloc(sizeof(double) * (n ? n : 1));
    if (!v) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (size_t i = 0; i < n; i++) v[i] = x[i];
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    int rc = write_array(file, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dims, v);
    free(v);
    return rc;
}

static LoraAdapter *adapter_of(const RunState *st, int i) {
    int lin = llama_linear_index(st->targets[i].suffix);
    return st->llm->layers[st->targets[i].layer].lora[lin];
}

static int write_contents(hid_t f, const RunState *st, int with_optimizer) {
    const TrainConfig *c = st->cfg;
    char path[256], targets_csv[256];
    target_suffixes(st->targets, st->ntargets, targets_csv, sizeof targets_csv);
    AIL_CHECK(h5io_attr_str(f, "format", RUNFILE_FORMAT));
    AIL_CHECK(h5io_attr_str(f, "version", PACKAGE_VERSION));
    AIL_CHECK(h5io_attr_str(f, "method", config_method_name(c)));
    AIL_CHECK(h5io_attr_int(f, "rank", c->rank));
    AIL_CHECK(h5io_attr_double(f, "alpha", c->alpha > 0 ? c->alpha : c->rank));
    AIL_CHECK(h5io_attr_double(f, "ratio_q", c->ratio_q));
    AIL_CHECK(h5io_attr_double(f, "ratio_v", c->ratio_v));
    AIL_CHECK(h5io_attr_double(f, "ratio_other", c->ratio_other));
    AIL_CHECK(h5io_attr_int(f, "seed", c->seed));
    AIL_CHECK(h5io_attr_str(f, "task", c->task));
    AIL_CHECK(h5io_attr_str(f, "model", c->model));
    AIL_CHECK(h5io_attr_str(f, "targets", targets_csv));
    AIL_CHECK(h5io_attr_int(f, "steps_done", st->step));
    AIL_CHECK(h5io_attr_str(f, "config", st->config_text));
    for (int i = 0; i < st->ntargets; i++) {
        const ModuleInit *mi = &st->init[i];
        const char *name = st->targets[i].name;
        LoraAdapter *ad = adapter_of(st, i);
        snprintf(path, sizeof path, "/spectra/%s/S", name);
        AIL_CHECK(write_doubles(f, path, mi->k, mi->S));
        long long sel[mi->nsel > 0 ? mi->nsel : 1];
        for (int j = 0; j < mi->nsel; j++) sel[j] = mi->selected[j];
        hsize_t dim = (hsize_t)mi->nsel;
        snprintf(path, sizeof path, "/adapters/%s/selected", name);
        AIL_CHECK(write_array(f, path, H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, &dim, sel));
        hsize_t dA[2] = {(hsize_t)ad->r, (hsize_t)ad->n}, dB[2] = {(hsize_t)ad->m, (hsize_t)ad->r};
        snprintf(path, sizeof path, "/init/%s/lora_A", name);
        AIL_CHECK(write_array(f, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dA, mi->A));
        snprintf(path, sizeof path, "/init/%s/lora_B", name);
        AIL_CHECK(write_array(f, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dB, mi->B));
        snprintf(path, sizeof path, "/adapters/%s/lora_A", name);
        AIL_CHECK(write_real(f, path, ad->r, ad->n, ad->A));
        snprintf(path, sizeof path, "/adapters/%s/lora_B", name);
        AIL_CHECK(write_real(f, path, ad->m, ad->r, ad->B));
    }
    const TrainLog *t = &st->train;
    AIL_CHECK(write_steps(f, "/train/step", t->count, t->step));
    AIL_CHECK(write_doubles(f, "/train/loss", t->count, t->loss));
    AIL_CHECK(write_doubles(f, "/train/lr", t->count, t->lr));
    AIL_CHECK(write_doubles(f, "/train/grad_norm", t->count, t->grad_norm));
    AIL_CHECK(write_doubles(f, "/train/tokens_per_s", t->count, t->tokens_per_s));
    const EvalLog *e = &st->eval;
    AIL_CHECK(write_steps(f, "/eval/step", e->count, e->step));
    AIL_CHECK(write_doubles(f, "/eval/loss", e->count, e->loss));
    AIL_CHECK(write_doubles(f, "/eval/ppl", e->count, e->ppl));
    AIL_CHECK(write_doubles(f, "/eval/exact_match", e->count, e->exact_match));
    if (!with_optimizer) return AIL_OK;
    if (st->llm->grad_storage) {  // full-parameter training: the weights themselves
        hsize_t dim = st->llm->storage_size;
        AIL_CHECK(write_array(f, "/base/weights", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &dim, st->llm->storage));
    }
    AIL_CHECK(h5io_attr_int(f, "optimizer_step", st->opt->step));
    AIL_CHECK(h5io_attr_int(f, "tp", st->tp));
    AIL_CHECK(h5io_attr_int(f, "dp", st->dp));
    for (int i = 0; i < st->opt->count; i++) {
        const OptimParam *q = &st->opt->params[i];
        hsize_t dim = q->n;
        snprintf(path, sizeof path, "/optimizer/%d/m", i);
        AIL_CHECK(write_array(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &dim, q->m));
        snprintf(path, sizeof path, "/optimizer/%d/v", i);
        AIL_CHECK(write_array(f, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &dim, q->v));
    }
    return AIL_OK;
}

int runfile_write(const char *path, const RunState *st, int with_optimizer) {
    char partial[4096];
    file_partial_path(path, partial, sizeof partial);
    hid_t f = H5Fcreate(partial, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return AIL_ERROR(AIL_ERR_IO, "cannot create %s", partial);
    int rc = write_contents(f, st, with_optimizer);
    if (H5Fclose(f) < 0 && rc == AIL_OK) rc = AIL_ERROR(AIL_ERR_IO, "cannot close %s", partial);
    if (rc == AIL_OK) rc = file_commit(path);
    if (rc != AIL_OK) remove(partial);
    return rc;
}

/* ---- reading a checkpoint ------------------------------------------------------------ */

static int read_log(hid_t f, const char *path, int *count, double **out) {
    hsize_t dims[1];
    double *x;
    AIL_CHECK(h5io_read_f64(f, path, 1, dims, &x));
    *out = x;
    *count = (int)dims[0];
    return AIL_OK;
}

/* A float32 dataset of exactly n elements into out. */
static int read_floats(hid_t f, const char *file, const char *path, float *out, size_t n) {
    char group[64];
    snprintf(group, sizeof group, "%.*s", (int)(strchr(path + 1, '/') - path), path);
    hid_t d = H5Lexists(f, group, H5P_DEFAULT) > 0 && H5Lexists(f, path, H5P_DEFAULT) > 0
                  ? H5Dopen2(f, path, H5P_DEFAULT) : -1;
    hid_t s = d >= 0 ? H5Dget_space(d) : -1;
    int rc = AIL_OK;
    if (d < 0 || (size_t)H5Sget_simple_extent_npoints(s) != n ||
        H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s missing or of the wrong size", file, path);
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    return rc;
}

static long long attr_int(hid_t f, const char *name) {
    long long v = -1;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a >= 0) H5Aread(a, H5T_NATIVE_LLONG, &v), H5Aclose(a);
    return v;
}

int checkpoint_read(const char *path, RunState *st) {
    hid_t f;
    AIL_CHECK(h5io_open_read(path, &f));
    char method[32] = "";
    int rc = h5io_attr_read_str(f, "method", method, sizeof method);
    long long tp = attr_int(f, "tp"), dp = attr_int(f, "dp"), rank = attr_int(f, "rank");
    if (rc == AIL_OK && strcmp(method, config_method_name(st->cfg)) != 0)
        rc = AIL_ERROR(AIL_ERR_ARG, "%s was written with method %s, the config says %s", path, method,
                       config_method_name(st->cfg));
    if (rc == AIL_OK && rank != st->cfg->rank)
        rc = AIL_ERROR(AIL_ERR_ARG, "%s was written with rank %lld, the config says %d", path, rank, st->cfg->rank);
    st->ckpt_tp = (int)tp, st->ckpt_dp = (int)dp;  // whole modules: any layout may resume it
    char p[256];
    for (int i = 0; i < st->ntargets && rc == AIL_OK; i++) {
        LoraAdapter *ad = adapter_of(st, i);
        for (int ab = 0; ab < 2 && rc == AIL_OK; ab++) {
            snprintf(p, sizeof p, "/adapters/%s/lora_%c", st->targets[i].name, ab ? 'B' : 'A');
            hsize_t dims[2];
            double *x;
            rc = h5io_read_f64(f, p, 2, dims, &x);
            if (rc != AIL_OK) break;
            size_t n = (size_t)(ab ? ad->m * ad->r : ad->r * ad->n);
            if (dims[0] * dims[1] != n) rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s has the wrong shape", path, p);
            for (size_t j = 0; j < n && rc == AIL_OK; j++) (ab ? ad->B : ad->A)[j] = (real)x[j];
            free(x);
        }
    }
    if (rc == AIL_OK && st->llm->grad_storage)
        rc = read_floats(f, path, "/base/weights", st->llm->storage, st->llm->storage_size);
    for (int i = 0; i < st->opt->count && rc == AIL_OK; i++) {
        OptimParam *q = &st->opt->params[i];
        for (int mv = 0; mv < 2 && rc == AIL_OK; mv++) {
            snprintf(p, sizeof p, "/optimizer/%d/%c", i, mv ? 'v' : 'm');
            rc = read_floats(f, path, p, mv ? q->v : q->m, q->n);
        }
    }
    if (rc == AIL_OK) {
        st->opt->step = attr_int(f, "optimizer_step");
        st->step = attr_int(f, "steps_done");
        TrainLog *t = &st->train;
        EvalLog *e = &st->eval;
        trainlog_free(t);
        evallog_free(e);
        rc = read_log(f, "/train/step", &t->count, &t->step);
        if (rc == AIL_OK) rc = read_log(f, "/train/loss", &t->count, &t->loss);
        if (rc == AIL_OK) rc = read_log(f, "/train/lr", &t->count, &t->lr);
        if (rc == AIL_OK) rc = read_log(f, "/train/grad_norm", &t->count, &t->grad_norm);
        if (rc == AIL_OK) rc = read_log(f, "/train/tokens_per_s", &t->count, &t->tokens_per_s);
        t->cap = t->count;
        if (rc == AIL_OK) rc = read_log(f, "/eval/step", &e->count, &e->step);
        if (rc == AIL_OK) rc = read_log(f, "/eval/loss", &e->count, &e->loss);
        if (rc == AIL_OK) rc = read_log(f, "/eval/ppl", &e->count, &e->ppl);
        if (rc == AIL_OK) rc = read_log(f, "/eval/exact_match", &e->count, &e->exact_match);
        e->cap = e->count;
    }
    H5Fclose(f);
    return rc;
}
