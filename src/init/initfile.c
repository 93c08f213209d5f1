/* initfile.c - build adapters for every target and write INIT.h5 / residual dir. */
#include "ailora/initfile.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ailora/error.h"
#include "ailora/fileio.h"
#include "ailora/h5io.h"
#include "config.h"

void module_init_free(ModuleInit *mi) {
    free(mi->selected);
    free(mi->S);
    free(mi->A);
    free(mi->B);
    free(mi->W_res);
    free(mi->candidates);
    free(mi->scores);
    memset(mi, 0, sizeof *mi);
}

/* Everything that can be wrong with the request, checked identically on all ranks
 * before anything is computed or written. */
static int validate(const TargetModule *targets, int ntargets, const InitOptions *opt) {
    for (int i = 0; i < ntargets; i++) {
        int k = targets[i].m < targets[i].n ? targets[i].m : targets[i].n;
        if (opt->spec.rank > k)
            return AIL_ERROR(AIL_ERR_ARG, "rank %d exceeds min(m, n) = %d of %s (%dx%d)",
                             opt->spec.rank, k, targets[i].name, targets[i].m, targets[i].n);
    }
    if (opt->svd_path && !file_exists(opt->svd_path))
        return AIL_ERROR(AIL_ERR_IO, "SVD cache %s does not exist", opt->svd_path);
    if (opt->residual_dir) {
        char partial[4096];
        file_partial_path(opt->residual_dir, partial, sizeof partial);
        if (file_exists(opt->residual_dir))
            return AIL_ERROR(AIL_ERR_IO, "residual directory %s already exists", opt->residual_dir);
        if (file_exists(partial))
            return AIL_ERROR(AIL_ERR_IO, "%s exists (left by an interrupted run?): remove it", partial);
    }
    return AIL_OK;
}

/* S of t from the cache into mi (k checked against the shape). */
static int read_spectrum(hid_t cache, const TargetModule *t, ModuleInit *mi) {
    char path[256];
    hsize_t dims[2];
    snprintf(path, sizeof path, "/modules/%s/S", t->name);
    AIL_CHECK(h5io_read_f64(cache, path, 1, dims, &mi->S));
    mi->k = (int)dims[0];
    // the selection indexes S up to k - 1 (svdcache_open checked U, Vt and kept)
    if (mi->k != (t->m < t->n ? t->m : t->n))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: %s has %d singular values, expected min(m, n) = %d", t->name, path,
                         mi->k, t->m < t->n ? t->m : t->n);
    return AIL_OK;
}

/* A, B from the triplets mi->selected [mi->nsel] (read from the cache). */
static int adapters_from_selection(hid_t cache, const TargetModule *t, const InitSpec *spec, ModuleInit *mi) {
    int m = t->m, n = t->n, r = spec->rank;
    double scale = spec->alpha / spec->rank;
    double *S_I, *U_I, *Vt_I;
    AIL_MALLOC(S_I, r);
    for (int j = 0; j < r; j++) S_I[j] = mi->S[mi->selected[j]];
    U_I = ail_malloc(sizeof(double) * (size_t)m * r);
    Vt_I = ail_malloc(sizeof(double) * (size_t)r * n);
    int rc = (U_I && Vt_I) ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for %s", t->name);
    char what[96];
    if (spec->method == INIT_RATIO)
        snprintf(what, sizeof what, "ratio %g rank %d", mi->rho, r);
    else
        snprintf(what, sizeof what, "%s rank %d", init_method_name(spec->method), r);
    // only the selected vectors are read; a partial cache (--keep) must hold them
    if (rc == AIL_OK) rc = svdcache_read_vectors(cache, t, what, r, mi->selected, U_I, Vt_I);
    if (rc == AIL_OK) adapter_from_svd(m, n, r, scale, S_I, U_I, Vt_I, mi->A, mi->B);
    free(S_I);
    free(U_I);
    free(Vt_I);
    return rc;
}

/* S, the selection and the adapters of one module, from the cache. */
int init_module_adapters(hid_t cache, const TargetModule *t, const InitSpec *spec, ModuleInit *mi) {
    memset(mi, 0, sizeof *mi);
    int m = t->m, n = t->n, r = spec->rank;
    if (spec->method == INIT_AUTO)
        return AIL_ERROR(AIL_ERR_ARG, "method auto chooses triplets from gradients of the training data: only "
                         "`ailora train` runs it");
    AIL_CHECK(read_spectrum(cache, t, mi));
    AIL_MALLOC(mi->A, (size_t)r * n);
    AIL_MALLOC(mi->B, (size_t)m * r);
    if (spec->method == INIT_LORA) {
        adapter_lora_random(spec, t->name, m, n, mi->A, mi->B);
        return AIL_OK;
    }
    mi->rho = init_principal_fraction(spec, t->suffix);
    mi->p = init_principal_count(mi->rho, r);
    mi->nsel = r;
    AIL_MALLOC(mi->selected, r);
    init_select(mi->k, r, mi->p, mi->selected);
    return adapters_from_selection(cache, t, spec, mi);
}

int init_module_selected(hid_t cache, const TargetModule *t, const InitSpec *spec, const int *selected,
                         ModuleInit *mi) {
    memset(mi, 0, sizeof *mi);
    int m = t->m, n = t->n, r = spec->rank;
    AIL_CHECK(read_spectrum(cache, t, mi));
    for (int j = 0; j < r; j++)
        if (selected[j] < 0 || selected[j] >= mi->k || (j && selected[j] <= selected[j - 1]))
            return AIL_ERROR(AIL_ERR_ARG, "%s: selection index %d out of range or unsorted", t->name, selected[j]);
    AIL_MALLOC(mi->A, (size_t)r * n);
    AIL_MALLOC(mi->B, (size_t)m * r);
    AIL_MALLOC(mi->selected, r);
    memcpy(mi->selected, selected, sizeof(int) * (size_t)r);
    mi->nsel = r;
    for (int j = 0; j < r; j++) mi->p += selected[j] < (mi->k + 1) / 2;  // "principal": the upper half
    mi->rho = (double)mi->p / r;
    return adapters_from_selection(cache, t, spec, mi);
}

int init_auto_scores_module(hid_t cache, const TargetModule *t, const double *G, int **candidates,
                            double **scores, int *ncand) {
    int m = t->m, n = t->n, k;
    char path[256];
    // the candidates are the triplets the cache holds: all k, or a partial cache's kept set
    int *cand = NULL;
    AIL_CHECK(svdcache_kept(cache, t, &k, &cand));
    double *sc = ail_malloc(sizeof(double) * (size_t)k), *U = NULL, *Vt = NULL;
    int rc = sc ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory scoring %s", t->name);
    hsize_t dims[2];
    snprintf(path, sizeof path, "/modules/%s/U", t->name);
    if (rc == AIL_OK) rc = h5io_read_f64(cache, path, 2, dims, &U);  // [m, k] (svdcache_open checked it)
    snprintf(path, sizeof path, "/modules/%s/Vt", t->name);
    if (rc == AIL_OK) rc = h5io_read_f64(cache, path, 2, dims, &Vt);  // [k, n]
    if (rc == AIL_OK) init_auto_scores(m, n, G, k, U, Vt, sc);
    free(U);
    free(Vt);
    if (rc != AIL_OK) {
        free(cand);
        free(sc);
        return rc;
    }
    *candidates = cand, *scores = sc, *ncand = k;
    return AIL_OK;
}

int init_module_residual(const TargetModule *t, const InitSpec *spec, DType round_to, int keep_residual,
                         ModuleInit *mi) {
    int m = t->m, n = t->n, r = spec->rank;
    double scale = spec->alpha / spec->rank;
    double *W, *W_res;
    AIL_MALLOC(W, (size_t)m * n);
    W_res = ail_malloc(sizeof(double) * (size_t)m * n);
    if (!W_res) {
        free(W);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for the residual of %s", t->name);
    }
    dtype_to_f64(t->dtype, t->weight->data, (size_t)m * n, W);
    adapter_residual(m, n, r, scale, W, mi->A, mi->B, W_res);
    adapter_diagnostics(m, n, r, scale, W, W_res, mi->A, mi->B, round_to, mi->S, mi->k,
                        mi->selected, &mi->diag);
    if (keep_residual) mi->W_res = W_res;
    else free(W_res);
    free(W);
    return AIL_OK;
}

int init_module(hid_t cache, const TargetModule *t, const InitSpec *spec, int keep_residual,
                ModuleInit *mi) {
    AIL_CHECK(init_module_adapters(cache, t, spec, mi));
    return init_module_residual(t, spec, t->dtype, keep_residual, mi);
}

typedef struct {
    hid_t group, A, B, sel, S;
} InitSets;

static int create_sets(hid_t file, const TargetModule *t, int r, int nsel, InitSets *s) {
    char path[256];
    hsize_t k = (hsize_t)(t->m < t->n ? t->m : t->n);
    hsize_t dA[2] = {(hsize_t)r, (hsize_t)t->n}, dB[2] = {(hsize_t)t->m, (hsize_t)r};
    hsize_t dsel[1] = {(hsize_t)nsel}, dS[1] = {k};
    snprintf(path, sizeof path, "/adapters/%s/lora_A", t->name);
    AIL_CHECK(h5io_dataset_create(file, path, H5T_IEEE_F64LE, 2, dA, &s->A));
    snprintf(path, sizeof path, "/adapters/%s/lora_B", t->name);
    AIL_CHECK(h5io_dataset_create(file, path, H5T_IEEE_F64LE, 2, dB, &s->B));
    snprintf(path, sizeof path, "/adapters/%s/selected", t->name);
    AIL_CHECK(h5io_dataset_create(file, path, H5T_STD_I64LE, 1, dsel, &s->sel));
    snprintf(path, sizeof path, "/spectra/%s/S", t->name);
    AIL_CHECK(h5io_dataset_create(file, path, H5T_IEEE_F64LE, 1, dS, &s->S));
    snprintf(path, sizeof path, "/adapters/%s", t->name);
    s->group = H5Gopen2(file, path, H5P_DEFAULT);
    return s->group < 0 ? AIL_ERROR(AIL_ERR_IO, "cannot open group %s", path) : AIL_OK;
}

static void close_sets(InitSets *s) {
    hid_t ids[4] = {s->A, s->B, s->sel, s->S};
    for (int i = 0; i < 4; i++)
        if (ids[i] > 0) H5Dclose(ids[i]);
    if (s->group > 0) H5Gclose(s->group);
    memset(s, 0, sizeof *s);
}

static int write_module(const ModuleInit *mi, InitSets *s) {
    AIL_CHECK(h5io_write_all(s->A, H5T_NATIVE_DOUBLE, mi->A));
    AIL_CHECK(h5io_write_all(s->B, H5T_NATIVE_DOUBLE, mi->B));
    AIL_CHECK(h5io_write_all(s->S, H5T_NATIVE_DOUBLE, mi->S));
    if (mi->nsel > 0) {
        long long sel[mi->nsel];
        for (int j = 0; j < mi->nsel; j++) sel[j] = mi->selected[j];
        AIL_CHECK(h5io_write_all(s->sel, H5T_NATIVE_LLONG, sel));
    }
    return AIL_OK;
}

/* Per-module numbers every rank needs for the (collective) attribute writes. */
enum { D_ENERGY, D_ERR64, D_ERRROUND, D_P, D_RHO, D_COUNT };

static int write_attributes(hid_t file, const HFModel *model, const TargetModule *targets,
                            int ntargets, const InitOptions *opt, const double *diag,
                            InitSets *sets, const char *model_fp, char (*fps)[FINGERPRINT_HEX]) {
    const InitSpec *spec = &opt->spec;
    char targets_csv[256];
    target_suffixes(targets, ntargets, targets_csv, sizeof targets_csv);
    AIL_CHECK(h5io_attr_str(file, "format", INITFILE_FORMAT));
    AIL_CHECK(h5io_attr_str(file, "version", PACKAGE_VERSION));
    AIL_CHECK(h5io_attr_str(file, "method", init_method_name(spec->method)));
    AIL_CHECK(h5io_attr_int(file, "rank", spec->rank));
    AIL_CHECK(h5io_attr_double(file, "alpha", spec->alpha));
    AIL_CHECK(h5io_attr_double(file, "scale", spec->alpha / spec->rank));
    AIL_CHECK(h5io_attr_double(file, "ratio_q", spec->ratio_q));
    AIL_CHECK(h5io_attr_double(file, "ratio_v", spec->ratio_v));
    AIL_CHECK(h5io_attr_double(file, "ratio_other", spec->ratio_other));
    AIL_CHECK(h5io_attr_int(file, "seed", (long long)spec->seed));
    AIL_CHECK(h5io_attr_str(file, "lora_init", spec->lora_gaussian ? "gaussian" : "kaiming"));
    AIL_CHECK(h5io_attr_str(file, "model", model->dir));
    AIL_CHECK(h5io_attr_str(file, "targets", targets_csv));
    AIL_CHECK(h5io_attr_str(file, "svd_cache", opt->svd_path ? opt->svd_path : "(computed)"));
    AIL_CHECK(h5io_attr_str(file, "model_fingerprint", model_fp));
    AIL_CHECK(h5io_attr_str(file, "fingerprint_algorithm", FINGERPRINT_ALGORITHM));
    for (int i = 0; i < ntargets; i++) {
        const double *d = diag + (size_t)i * D_COUNT;
        hid_t g = sets[i].group;
        AIL_CHECK(h5io_attr_int(g, "m", targets[i].m));
        AIL_CHECK(h5io_attr_int(g, "n", targets[i].n));
        AIL_CHECK(h5io_attr_int(g, "k", targets[i].m < targets[i].n ? targets[i].m : targets[i].n));
        AIL_CHECK(h5io_attr_int(g, "n_principal", (long long)d[D_P]));
        AIL_CHECK(h5io_attr_double(g, "principal_fraction", d[D_RHO]));
        AIL_CHECK(h5io_attr_double(g, "energy", d[D_ENERGY]));
        AIL_CHECK(h5io_attr_double(g, "recon_err_f64", d[D_ERR64]));
        AIL_CHECK(h5io_attr_double(g, "recon_err_rounded", d[D_ERRROUND]));
        AIL_CHECK(h5io_attr_str(g, "residual_dtype", dtype_name(targets[i].dtype)));
        AIL_CHECK(h5io_attr_str(g, "fingerprint", fps[i]));
    }
    return AIL_OK;
}

/* ---- residual model directory --------------------------------------------------- */

/* Rank 0 writes the header; each rank pwrites the tensors it owns (owner[i] ==
 * rank, data in specs[i].data). Collective over comm. */
static int write_safetensors_parallel(MPI_Comm comm, const char *path, int count,
                                      const SafeTensorSpec *specs, const int *owner, int nmeta,
                                      const char *const *keys, const char *const *values) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    size_t *offsets = ail_malloc(sizeof(size_t) * (size_t)count), size = 0;
    int rc = offsets ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK && rank == 0)
        rc = safetensors_write_header(path, count, specs, nmeta, keys, values, offsets, &size);
    rc = ail_error_agree(comm, rc);
    if (rc == AIL_OK) {
        MPI_Bcast(offsets, count * (int)sizeof(size_t), MPI_BYTE, 0, comm);
        int fd = open(path, O_WRONLY);
        if (fd < 0) rc = AIL_ERROR(AIL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        for (int i = 0; i < count && rc == AIL_OK; i++) {
            if (owner[i] != rank) continue;
            size_t nbytes = dtype_size(specs[i].dtype);
            for (int d = 0; d < specs[i].ndim; d++) nbytes *= (size_t)specs[i].shape[d];
            const char *p = specs[i].data;
            for (size_t done = 0; done < nbytes && rc == AIL_OK;) {
                ssize_t w = pwrite(fd, p + done, nbytes - done, (off_t)(offsets[i] + done));
                if (w <= 0) rc = AIL_ERROR(AIL_ERR_IO, "write to %s failed: %s", path, strerror(errno));
                else done += (size_t)w;
            }
        }
        if (fd >= 0 && (fsync(fd) != 0 || close(fd) != 0) && rc == AIL_OK)
            rc = AIL_ERROR(AIL_ERR_IO, "cannot finish %s: %s", path, strerror(errno));
    }
    free(offsets);
    return ail_error_agree(comm, rc);
}

static int copy_file(const char *from, const char *to) {
    char *buf;
    size_t len;
    AIL_CHECK(file_read_all(from, &buf, &len));
    int rc = file_write_atomic(to, buf, len);
    free(buf);
    return rc;
}

static int write_peft_config(const char *path, const char *base_dir, const TargetModule *targets,
                             int ntargets, const InitSpec *spec) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "peft_type", "LORA");
    cJSON_AddStringToObject(root, "task_type", "CAUSAL_LM");
    cJSON_AddStringToObject(root, "base_model_name_or_path", base_dir);
    cJSON_AddNumberToObject(root, "r", spec->rank);
    cJSON_AddNumberToObject(root, "lora_alpha", spec->alpha);
    cJSON_AddNumberToObject(root, "lora_dropout", 0.0);
    cJSON_AddStringToObject(root, "bias", "none");
    cJSON_AddBoolToObject(root, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(root, "use_rslora", 0);
    cJSON_AddBoolToObject(root, "init_lora_weights", 1);
    cJSON *tm = cJSON_AddArrayToObject(root, "target_modules");
    char csv[256];
    target_suffixes(targets, ntargets, csv, sizeof csv);
    for (char *tok = strtok(csv, ","); tok; tok = strtok(NULL, ","))
        cJSON_AddItemToArray(tm, cJSON_CreateString(tok));
    int rc = json_file_write(path, root);
    cJSON_Delete(root);
    return rc;
}

static int write_residual_dir(MPI_Comm comm, const HFModel *model, const TargetModule *targets,
                              int ntargets, const InitOptions *opt, ModuleInit *mods,
                              const char *dir, const char *final_dir) {
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    int rc = AIL_OK;
    if (rank == 0 && mkdir(dir, 0755) != 0)
        rc = AIL_ERROR(AIL_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    AIL_CHECK(ail_error_agree(comm, rc));

    // model.safetensors: every tensor of every shard; targets replaced by W_res
    int total = 0;
    for (int s = 0; s < model->nshards; s++) total += model->shards[s].count;
    SafeTensorSpec *specs = ail_calloc((size_t)total, sizeof *specs);
    int *owner = ail_calloc((size_t)total, sizeof *owner);
    void **owned = ail_calloc((size_t)total, sizeof *owned);  // residual bytes this rank writes
    if (!specs || !owner || !owned) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int s = 0, i = 0; s < model->nshards && rc == AIL_OK; s++) {
        for (int j = 0; j < model->shards[s].count; j++, i++) {
            const SafeTensor *t = &model->shards[s].tensors[j];
            specs[i] = (SafeTensorSpec){.name = t->name, .dtype = t->dtype, .ndim = t->ndim, .data = t->data};
            memcpy(specs[i].shape, t->shape, sizeof t->shape);
            owner[i] = 0;
            for (int k = 0; k < ntargets; k++)
                if (targets[k].weight == t) {
                    owner[i] = k % nranks;
                    specs[i].data = NULL;  // filled below on the owning rank
                    if (owner[i] != rank) continue;
                    size_t count = (size_t)targets[k].m * targets[k].n;
                    void *bytes = ail_malloc(count * dtype_size(t->dtype));
                    if (!bytes) {
                        rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for the residual of %s", targets[k].name);
                        break;
                    }
                    dtype_from_f64(t->dtype, mods[k].W_res, count, bytes);  // one rounding
                    specs[i].data = bytes;
                    owned[i] = bytes;
                }
        }
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = ail_error_agree(comm, rc);
    if (rc == AIL_OK) rc = write_safetensors_parallel(comm, path, total, specs, owner, 0, NULL, NULL);
    for (int i = 0; owned && i < total; i++) free(owned[i]);
    free(owned);
    free(specs);
    free(owner);
    AIL_CHECK(rc);

    // adapter_model.safetensors in PEFT's naming, float32
    specs = ail_calloc((size_t)(2 * ntargets), sizeof *specs);
    owner = ail_calloc((size_t)(2 * ntargets), sizeof *owner);
    char(*names)[200] = ail_calloc((size_t)(2 * ntargets), sizeof *names);
    float **data = ail_calloc((size_t)(2 * ntargets), sizeof *data);
    if (!specs || !owner || !names || !data) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    int r = opt->spec.rank;
    for (int k = 0; k < ntargets && rc == AIL_OK; k++) {
        for (int ab = 0; ab < 2; ab++) {
            int i = 2 * k + ab;
            snprintf(names[i], sizeof names[i], "base_model.model.%s.lora_%c.weight", targets[k].name,
                     ab ? 'B' : 'A');
            specs[i] = (SafeTensorSpec){.name = names[i], .dtype = DTYPE_F32, .ndim = 2};
            specs[i].shape[0] = ab ? targets[k].m : r;
            specs[i].shape[1] = ab ? r : targets[k].n;
            owner[i] = k % nranks;
            if (owner[i] != rank) continue;
            size_t count = (size_t)specs[i].shape[0] * (size_t)specs[i].shape[1];
            if (!(data[i] = ail_malloc(sizeof(float) * count))) {
                rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
                break;
            }
            dtype_from_f64(DTYPE_F32, ab ? mods[k].B : mods[k].A, count, data[i]);
            specs[i].data = data[i];
        }
    }
    rc = ail_error_agree(comm, rc);
    // the adapter lives in its own folder: transformers treats a model directory
    // holding adapter_config.json as "base model + adapter" and loads the original base
    snprintf(path, sizeof path, "%s/adapter", dir);
    if (rc == AIL_OK && rank == 0 && mkdir(path, 0755) != 0)
        rc = AIL_ERROR(AIL_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    rc = ail_error_agree(comm, rc);
    snprintf(path, sizeof path, "%s/adapter/adapter_model.safetensors", dir);
    if (rc == AIL_OK)
        rc = write_safetensors_parallel(comm, path, 2 * ntargets, specs, owner, 0, NULL, NULL);
    for (int i = 0; data && i < 2 * ntargets; i++) free(data[i]);
    free(data);
    free(names);
    free(specs);
    free(owner);
    AIL_CHECK(rc);

    if (rank == 0) {
        char from[4096];
        snprintf(from, sizeof from, "%s/config.json", model->dir);
        snprintf(path, sizeof path, "%s/config.json", dir);
        rc = copy_file(from, path);
        snprintf(path, sizeof path, "%s/adapter/adapter_config.json", dir);
        if (rc == AIL_OK) rc = write_peft_config(path, final_dir, targets, ntargets, &opt->spec);
    }
    return ail_error_agree(comm, rc);
}

/* Removes a residual directory left incomplete (only files we write there). */
static void remove_residual_dir(const char *dir) {
    const char *files[] = {"model.safetensors", "config.json", "adapter/adapter_model.safetensors",
                           "adapter/adapter_config.json", "adapter"};
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        remove(path);  // removes the empty adapter folder too
    }
    rmdir(dir);
}

/* ---- driver ------------------------------------------------------------------------ */

int initfile_write(MPI_Comm comm, const HFModel *model, const TargetModule *targets, int ntargets,
                   const InitOptions *opt_in, const char *out_path) {
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    InitOptions opt = *opt_in;
    AIL_CHECK(ail_error_agree(comm, init_spec_validate(&opt.spec)));
    AIL_CHECK(ail_error_agree(comm, validate(targets, ntargets, &opt)));

    // No cache given: compute one next to the output and delete it afterwards. Every
    // method reads at most the r largest and r smallest triplets, so only those are
    // computed (keep r: the selected-vector route where `auto` finds it faster)
    char tmp_cache[4096] = "";
    if (!opt.svd_path) {
        if (opt.svd.keep == 0) opt.svd.keep = opt.spec.rank;
        snprintf(tmp_cache, sizeof tmp_cache, "%s.svd-tmp.h5", out_path);
        AIL_CHECK(svdcache_write(comm, model, targets, ntargets, &opt.svd, tmp_cache));
        opt.svd_path = tmp_cache;
    }
    hid_t cache = -1;
    int rc = ail_error_agree(comm, svdcache_open(opt.svd_path, targets, ntargets, &cache));

    ModuleInit *mods = ail_calloc((size_t)ntargets, sizeof *mods);
    InitSets *sets = ail_calloc((size_t)ntargets, sizeof *sets);
    double *diag = ail_calloc((size_t)ntargets * D_COUNT, sizeof *diag);
    char(*fps)[FINGERPRINT_HEX] = ail_calloc((size_t)ntargets + 1, sizeof *fps);
    char model_fp[FINGERPRINT_HEX] = "";
    if (rc == AIL_OK && (!mods || !sets || !diag || !fps)) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    rc = ail_error_agree(comm, rc);
    // the cache must come from these very weights (before anything is built or written);
    // one written just now from the same mapping records their fingerprints already
    if (rc == AIL_OK && tmp_cache[0])
        rc = ail_error_agree(comm, svdcache_fingerprints(cache, targets, ntargets, fps, model_fp));
    else if (rc == AIL_OK) {
        rc = svdcache_verify(comm, opt.svd_path, cache, targets, ntargets, fps);
        if (rc == AIL_OK) rc = fingerprint_model(comm, model, model_fp);
    }
    // modules dealt round-robin: adapters are cheap next to the SVDs
    for (int i = 0; i < ntargets && rc == AIL_OK; i++) {
        if (i % nranks != rank) continue;
        rc = init_module(cache, &targets[i], &opt.spec, opt.residual_dir != NULL, &mods[i]);
        double *d = diag + (size_t)i * D_COUNT;
        d[D_ENERGY] = mods[i].diag.energy;
        d[D_ERR64] = mods[i].diag.recon_err_f64;
        d[D_ERRROUND] = mods[i].diag.recon_err_rounded;
        d[D_P] = mods[i].p;
        d[D_RHO] = mods[i].rho;
    }
    if (cache >= 0) H5Fclose(cache);
    rc = ail_error_agree(comm, rc);

    char partial[4096];
    file_partial_path(out_path, partial, sizeof partial);
    hid_t file = -1;
    if (rc == AIL_OK) rc = ail_error_agree(comm, h5io_create_parallel(partial, comm, &file));
    int nsel = opt.spec.method == INIT_LORA ? 0 : opt.spec.rank;
    for (int i = 0; i < ntargets && rc == AIL_OK; i++)
        rc = create_sets(file, &targets[i], opt.spec.rank, nsel, &sets[i]);
    rc = ail_error_agree(comm, rc);
    for (int i = 0; i < ntargets && rc == AIL_OK; i++)
        if (i % nranks == rank) rc = write_module(&mods[i], &sets[i]);
    rc = ail_error_agree(comm, rc);
    if (rc == AIL_OK) {
        MPI_Allreduce(MPI_IN_PLACE, diag, ntargets * D_COUNT, MPI_DOUBLE, MPI_SUM, comm);
        rc = ail_error_agree(comm, write_attributes(file, model, targets, ntargets, &opt, diag, sets,
                                                    model_fp, fps));
    }
    for (int i = 0; sets && i < ntargets; i++) close_sets(&sets[i]);
    if (file >= 0 && H5Fclose(file) < 0 && rc == AIL_OK)
        rc = AIL_ERROR(AIL_ERR_IO, "closing %s failed", partial);
    rc = ail_error_agree(comm, rc);

    char res_partial[4096] = "";
    if (rc == AIL_OK && opt.residual_dir) {
        file_partial_path(opt.residual_dir, res_partial, sizeof res_partial);
        rc = write_residual_dir(comm, model, targets, ntargets, &opt, mods, res_partial,
                                opt.residual_dir);
    }
    if (rank == 0) {
        if (rc == AIL_OK && opt.residual_dir) rc = file_commit(opt.residual_dir);
        if (rc == AIL_OK) rc = file_commit(out_path);
        if (rc != AIL_OK) {
            remove(partial);
            if (res_partial[0]) remove_residual_dir(res_partial);
        }
        if (tmp_cache[0]) remove(tmp_cache);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, comm);
    if (rc != AIL_OK) rc = ail_error_agree(comm, rc);

    if (rc == AIL_OK && opt.verbose && rank == 0) {
        printf("%-42s %6s %5s %10s %12s %14s\n", "module", "p/r", "rho", "energy", "err_f64",
               "err_rounded");
        for (int i = 0; i < ntargets; i++) {
            const double *d = diag + (size_t)i * D_COUNT;
            printf("%-42s %3d/%-3d %5.2f %10.3e %12.3e %14.3e (%s)\n", targets[i].name, (int)d[D_P],
                   opt.spec.rank, d[D_RHO], d[D_ENERGY], d[D_ERR64], d[D_ERRROUND],
                   dtype_name(targets[i].dtype));
        }
    }
    for (int i = 0; mods && i < ntargets; i++) module_init_free(&mods[i]);
    free(mods);
    free(sets);
    free(diag);
    free(fps);
    return rc;
}
