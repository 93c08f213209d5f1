/* runfile.c - run files and checkpoints (see runfile.h). */
#include "ailora/runfile.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Where the run came from: the model and how its residuals were rounded. */
static int write_provenance_root(hid_t f, const RunState *st) {
    AIL_CHECK(h5io_attr_str(f, "model_fingerprint", st->model_fingerprint ? st->model_fingerprint : ""));
    AIL_CHECK(h5io_attr_str(f, "fingerprint_algorithm", FINGERPRINT_ALGORITHM));
    return h5io_attr_str(f, "residual_dtype", st->cfg->residual_dtype);
}

static int write_provenance_module(hid_t f, const RunState *st, int i) {
    const ModuleInit *mi = &st->init[i];
    const TargetModule *t = &st->targets[i];
    char path[256];
    snprintf(path, sizeof path, "/adapters/%s", t->name);
    hid_t g = H5Gopen2(f, path, H5P_DEFAULT);
    if (g < 0) return AIL_ERROR(AIL_ERR_IO, "cannot open group %s", path);
    int fp32 = strcmp(st->cfg->residual_dtype, "fp32") == 0;
    int rc = h5io_attr_str(g, "fingerprint", mi->fingerprint);
    if (rc == AIL_OK) rc = h5io_attr_str(g, "residual_dtype", dtype_name(fp32 ? DTYPE_F32 : t->dtype));
    if (rc == AIL_OK) rc = h5io_attr_double(g, "energy", mi->diag.energy);
    if (rc == AIL_OK) rc = h5io_attr_double(g, "recon_err_f64", mi->diag.recon_err_f64);
    if (rc == AIL_OK) rc = h5io_attr_double(g, "recon_err_rounded", mi->diag.recon_err_rounded);
    H5Gclose(g);
    return rc;
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
    AIL_CHECK(write_provenance_root(f, st));
    if (st->nresumes > 0) {
        AIL_CHECK(h5io_attr_ints(f, "resume_steps", st->nresumes, st->resume_steps));
        AIL_CHECK(h5io_attr_str(f, "resumes", st->resumes));
    }
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
        if (mi->ncand > 0) {  // method auto: every candidate's score
            hsize_t nc = (hsize_t)mi->ncand;
            long long *cand = ail_malloc(sizeof(long long) * nc);
            if (!cand) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
            for (int j = 0; j < mi->ncand; j++) cand[j] = mi->candidates[j];
            snprintf(path, sizeof path, "/adapters/%s/auto_candidates", name);
            int rc = write_array(f, path, H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, &nc, cand);
            free(cand);
            AIL_CHECK(rc);
            snprintf(path, sizeof path, "/adapters/%s/auto_scores", name);
            AIL_CHECK(write_array(f, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &nc, mi->scores));
        }
        hsize_t dA[2] = {(hsize_t)ad->r, (hsize_t)ad->n}, dB[2] = {(hsize_t)ad->m, (hsize_t)ad->r};
        snprintf(path, sizeof path, "/init/%s/lora_A", name);
        AIL_CHECK(write_array(f, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dA, mi->A));
        snprintf(path, sizeof path, "/init/%s/lora_B", name);
        AIL_CHECK(write_array(f, path, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dB, mi->B));
        snprintf(path, sizeof path, "/adapters/%s/lora_A", name);
        AIL_CHECK(write_real(f, path, ad->r, ad->n, ad->A));
        snprintf(path, sizeof path, "/adapters/%s/lora_B", name);
        AIL_CHECK(write_real(f, path, ad->m, ad->r, ad->B));
        AIL_CHECK(write_provenance_module(f, st, i));
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
    AIL_CHECK(diaglog_write(f, &st->diag, st->targets));
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
    const char *pause = getenv("AILORA_TEST_COMMIT_PAUSE_MS");  // test hook (runfile.h)
    if (pause && atoi(pause) > 0) {
        struct timespec ts = {.tv_sec = atoi(pause) / 1000, .tv_nsec = (long)(atoi(pause) % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
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

/* A scalar integer attribute; -1 when absent or anything else (callers check). */
static long long attr_int(hid_t f, const char *name) {
    long long v = -1;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    if (a < 0) return v;
    hid_t s = H5Aget_space(a), t = H5Aget_type(a);
    // exactly one integer: an array attribute would overflow v
    if (H5Sget_simple_extent_npoints(s) == 1 && H5Tget_class(t) == H5T_INTEGER &&
        H5Aread(a, H5T_NATIVE_LLONG, &v) < 0)
        v = -1;
    H5Tclose(t), H5Sclose(s), H5Aclose(a);
    return v;
}

/* A string attribute of any length (malloc'ed); NULL when absent. */
static char *attr_text(hid_t obj, const char *name) {
    if (H5Aexists(obj, name) <= 0) return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), ft = H5Aget_type(a);
    char *text = NULL;
    if (H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft)) {
        size_t size = H5Tget_size(ft);
        hid_t mt = H5Tcopy(ft);
        H5Tset_size(mt, size + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        text = ail_malloc(size + 1);
        if (text && H5Aread(a, mt, text) < 0) free(text), text = NULL;
        H5Tclose(mt);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return text;
}

static long long attr_int(hid_t f, const char *name);

int runfile_read_head(const char *path, char **config_text, long *steps_done) {
    hid_t f;
    AIL_CHECK(h5io_open_read(path, &f));
    *config_text = attr_text(f, "config");
    *steps_done = (long)attr_int(f, "steps_done");
    H5Fclose(f);
    if (!*config_text || *steps_done < 0) {
        free(*config_text), *config_text = NULL;
        return AIL_ERROR(AIL_ERR_FORMAT, "%s is not an ailora run file (no config or steps_done)", path);
    }
    return AIL_OK;
}

int runstate_add_resume(RunState *st, long step, const char *changed) {
    char line[1200];
    snprintf(line, sizeof line, "step %ld: %s\n", step, changed[0] ? changed : "same config");
    size_t old = st->resumes ? strlen(st->resumes) : 0;
    char *text = ail_realloc(st->resumes, old + strlen(line) + 1);
    long long *steps = ail_realloc(st->resume_steps, sizeof(long long) * (size_t)(st->nresumes + 1));
    if (text) st->resumes = text;
    if (steps) st->resume_steps = steps;
    if (!text || !steps) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    memcpy(text + old, line, strlen(line) + 1);
    steps[st->nresumes++] = step;
    return AIL_OK;
}

void runstate_free_resumes(RunState *st) {
    free(st->resumes), free(st->resume_steps);
    st->resumes = NULL, st->resume_steps = NULL, st->nresumes = 0;
}

/* Reads the resume record of a checkpoint into st (none: left empty). */
static int read_resumes(hid_t f, RunState *st) {
    runstate_free_resumes(st);
    if (H5Aexists(f, "resume_steps") <= 0) return AIL_OK;
    hid_t a = H5Aopen(f, "resume_steps", H5P_DEFAULT), sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int rc = AIL_OK;
    st->resume_steps = ail_malloc(sizeof(long long) * (size_t)(n > 0 ? n : 1));
    st->resumes = attr_text(f, "resumes");
    if (!st->resume_steps || !st->resumes || n <= 0 || H5Aread(a, H5T_NATIVE_LLONG, st->resume_steps) < 0)
        rc = AIL_ERROR(AIL_ERR_FORMAT, "unreadable resume record (resume_steps, resumes)");
    else
        st->nresumes = (int)n;
    H5Sclose(sp);
    H5Aclose(a);
    return rc;
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
    char have[64] = "", fp[64] = "";  // absent in checkpoints of older versions: not checked
    if (rc == AIL_OK && H5Aexists(f, "residual_dtype") > 0) rc = h5io_attr_read_str(f, "residual_dtype", have, sizeof have);
    if (rc == AIL_OK && have[0] && strcmp(have, st->cfg->residual_dtype) != 0)
        rc = AIL_ERROR(AIL_ERR_ARG, "%s was written with residual_dtype %s, the config says %s", path, have,
                       st->cfg->residual_dtype);
    if (rc == AIL_OK && H5Aexists(f, "model_fingerprint") > 0) rc = h5io_attr_read_str(f, "model_fingerprint", fp, sizeof fp);
    if (rc == AIL_OK && fp[0] && st->model_fingerprint && strcmp(fp, st->model_fingerprint) != 0)
        rc = AIL_ERROR(AIL_ERR_ARG, "%s was written for a different model (fingerprint %.12s.. != %.12s..)", path, fp,
                       st->model_fingerprint);
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
            // the exact shape: a transposed [n, r] has the right count and scrambles A
            hsize_t rows = (hsize_t)(ab ? ad->m : ad->r), cols = (hsize_t)(ab ? ad->r : ad->n);
            if (dims[0] != rows || dims[1] != cols)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s has shape [%llu, %llu], expected [%llu, %llu]", path, p,
                               (unsigned long long)dims[0], (unsigned long long)dims[1],
                               (unsigned long long)rows, (unsigned long long)cols);
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
        if (st->step < 0 || st->opt->step < 0)
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: attributes steps_done and optimizer_step missing or negative", path);
        // every curve of a log must be as long as its first (appending and writing assume it)
        const char *tnames[5] = {"/train/step", "/train/loss", "/train/lr", "/train/grad_norm", "/train/tokens_per_s"};
        double **tarrays[5] = {&t->step, &t->loss, &t->lr, &t->grad_norm, &t->tokens_per_s};
        const char *enames[4] = {"/eval/step", "/eval/loss", "/eval/ppl", "/eval/exact_match"};
        double **earrays[4] = {&e->step, &e->loss, &e->ppl, &e->exact_match};
        for (int i = 0; i < 9 && rc == AIL_OK; i++) {
            const char *name = i < 5 ? tnames[i] : enames[i - 5];
            int *count = i < 5 ? &t->count : &e->count, n;
            rc = read_log(f, name, &n, i < 5 ? tarrays[i] : earrays[i - 5]);
            if (rc == AIL_OK && (i == 0 || i == 5)) *count = n;
            else if (rc == AIL_OK && n != *count)
                rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s has %d entries, %s has %d", path, name, n,
                               i < 5 ? tnames[0] : enames[0], *count);
        }
        t->cap = t->count;
        e->cap = e->count;
    }
    if (rc == AIL_OK) rc = diaglog_read(f, path, &st->diag, st->targets);
    if (rc == AIL_OK) rc = read_resumes(f, st);
    H5Fclose(f);
    return rc;
}

/* ---- what a resume may change ---------------------------------------------------------- */

/* The value of key in config_dump text (into buf); 0 when the key is absent. */
static int config_lookup(const char *text, const char *key, char *buf, size_t len) {
    size_t kl = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, kl) || strncmp(line + kl, " = ", 3)) continue;
        const char *v = line + kl + 3, *end = strchr(v, '\n');
        snprintf(buf, len, "%.*s", (int)(end ? end - v : (long)strlen(v)), v);
        return 1;
    }
    return 0;
}

/* cpu computes in float32 whatever `precision` says; cuda in `precision`. */
static const char *compute_precision(const char *text, const char *fallback_text, char *buf, size_t len) {
    char device[64] = "cpu";
    if (!config_lookup(text, "device", device, sizeof device)) config_lookup(fallback_text, "device", device, sizeof device);
    if (strcmp(device, "cuda")) return "fp32";
    if (!config_lookup(text, "precision", buf, len)) config_lookup(fallback_text, "precision", buf, len);
    return buf;
}

static void list_add(char *list, size_t len, const char *key, const char *a, const char *b, const char *why) {
    size_t used = strlen(list);
    snprintf(list + used, len - used, "%s%s %s -> %s%s", used ? ", " : "", key, a[0] ? a : "\"\"",
             b[0] ? b : "\"\"", why);
}

int runfile_config_diff(const char *stored, const TrainConfig *cfg, char *refused, size_t rlen, char *changed,
                        size_t clen, int *nrefused) {
    // Keys that change neither the model, the data, the optimizer nor what is measured:
    // how far to go, how often to log / evaluate / checkpoint, where the files live,
    // and how the same global batch is spread over ranks and micro-batches.
    static const char *const may_change[] = {"steps", "log_every", "eval_every", "checkpoint_every",
                                             "checkpoint_minutes", "preempt_at_step", "out", "tp", "dp",
                                             "grad_accum", "device", "precision"};
    TrainConfig d;
    config_defaults(&d);
    char *now = config_dump(cfg), *defaults = config_dump(&d);
    refused[0] = changed[0] = '\0';
    if (!now || !defaults) {
        free(now), free(defaults);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    }
    char p_then[64] = "", p_now[64] = "";
    const char *prec_then = compute_precision(stored, defaults, p_then, sizeof p_then);
    const char *prec_now = compute_precision(now, defaults, p_now, sizeof p_now);
    *nrefused = 0;
    char key[128], a[1100], b[1100], why[128];
    for (const char *line = now; *line; line = strchr(line, '\n') + 1) {
        const char *eq = strstr(line, " = ");
        if (!eq || !strchr(line, '\n')) break;
        snprintf(key, sizeof key, "%.*s", (int)(eq - line), line);
        if (!strcmp(key, "resume") || !strcmp(key, "overwrite")) continue;  // how ailora was invoked
        config_lookup(now, key, b, sizeof b);
        if (!config_lookup(stored, key, a, sizeof a)) config_lookup(defaults, key, a, sizeof a);
        if (!strcmp(a, b)) continue;
        int ok = 0;
        why[0] = '\0';
        for (size_t i = 0; i < sizeof may_change / sizeof *may_change; i++) ok |= !strcmp(key, may_change[i]);
        if (!strcmp(key, "steps") && cfg->optim.schedule != SCHEDULE_CONSTANT) {
            ok = 0;  // the linear / cosine lr of every later step depends on steps
            snprintf(why, sizeof why, " (the %s schedule depends on it)", schedule_name(cfg->optim.schedule));
        }
        if ((!strcmp(key, "device") || !strcmp(key, "precision")) && strcmp(prec_then, prec_now)) {
            ok = 0;  // same numbers on either device only at the same precision
            snprintf(why, sizeof why, " (compute precision %s -> %s)", prec_then, prec_now);
        }
        if (ok) {
            list_add(changed, clen, key, a, b, why);
        } else {
            list_add(refused, rlen, key, a, b, why);
            (*nrefused)++;
        }
    }
    for (const char *line = stored; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *eq = strstr(line, " = ");
        if (!eq) break;
        snprintf(key, sizeof key, "%.*s", (int)(eq - line), line);
        if (config_lookup(now, key, b, sizeof b)) continue;
        config_lookup(stored, key, a, sizeof a);
        list_add(refused, rlen, key, a, "(a key this ailora does not know)", "");
        (*nrefused)++;
    }
    free(now), free(defaults);
    return AIL_OK;
}
