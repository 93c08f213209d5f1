/* export.c - a run's adapters as HF / PEFT directories (see export.h). */
#include "ailora/export.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ailora/adapter.h"
#include "ailora/error.h"
#include "ailora/fileio.h"
#include "ailora/fingerprint.h"
#include "ailora/h5io.h"
#include "ailora/hfmodel.h"
#include "ailora/safetensors.h"
#include "config.h"

/* What the run file says about itself. */
typedef struct {
    char model[1024], method[32], targets[256], fingerprint[FINGERPRINT_HEX + 8], residual_dtype[16];
    long long rank, steps_done;
    double alpha;
} RunHead;

/* One adapted module: its weight and the run's adapters, float64. */
typedef struct {
    const TargetModule *t;
    double *A0, *B0, *A, *B;  /* (r, n), (m, r), (r, n), (m, r) */
    DType rd;                 /* the dtype the run rounded W_res to */
} ExportModule;

/* Files of a model directory that travel with its weights (those present). */
static const char *const side_files[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
    "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja",
    "chat_template.json"};
/* Everything export writes at the top of DIR (a stale DIR.partial holding only these is ours). */
static const char *const out_entries[] = {"residual", "adapter", "lora_for_original", "merged", "export.json",
                                          "export.json.partial"};

/* ---- reading the run file ------------------------------------------------------------ */

static int attr_num(hid_t obj, const char *file, const char *name, hid_t mtype, void *out) {
    if (H5Aexists(obj, name) <= 0) return AIL_ERROR(AIL_ERR_FORMAT, "%s has no attribute %s", file, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    int rc = a >= 0 && H5Aread(a, mtype, out) >= 0 ? AIL_OK
                                                   : AIL_ERROR(AIL_ERR_FORMAT, "%s: cannot read attribute %s", file, name);
    if (a >= 0) H5Aclose(a);
    return rc;
}

static int attr_text(hid_t obj, const char *file, const char *name, char *buf, size_t len) {
    if (H5Aexists(obj, name) <= 0) return AIL_ERROR(AIL_ERR_FORMAT, "%s has no attribute %s", file, name);
    return h5io_attr_read_str(obj, name, buf, len);
}

static int read_head(hid_t f, const char *path, RunHead *h) {
    char format[64];
    AIL_CHECK(attr_text(f, path, "format", format, sizeof format));
    if (strncmp(format, "ailora-run/", 11) != 0)
        return AIL_ERROR(AIL_ERR_FORMAT, "%s is not an ailora run file (format \"%s\")", path, format);
    AIL_CHECK(attr_text(f, path, "model", h->model, sizeof h->model));
    AIL_CHECK(attr_text(f, path, "method", h->method, sizeof h->method));
    AIL_CHECK(attr_text(f, path, "targets", h->targets, sizeof h->targets));
    AIL_CHECK(attr_text(f, path, "residual_dtype", h->residual_dtype, sizeof h->residual_dtype));
    AIL_CHECK(attr_num(f, path, "rank", H5T_NATIVE_LLONG, &h->rank));
    AIL_CHECK(attr_num(f, path, "alpha", H5T_NATIVE_DOUBLE, &h->alpha));
    AIL_CHECK(attr_num(f, path, "steps_done", H5T_NATIVE_LLONG, &h->steps_done));
    if (H5Aexists(f, "model_fingerprint") <= 0 ||
        attr_text(f, path, "model_fingerprint", h->fingerprint, sizeof h->fingerprint) != AIL_OK ||
        strlen(h->fingerprint) != FINGERPRINT_HEX - 1) {
        ail_error_clear();
        return AIL_ERROR(AIL_ERR_FORMAT, "%s records no model fingerprint (written by an older ailora): "
                         "cannot check its model", path);
    }
    if (h->rank < 1 || !(h->alpha > 0))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: rank %lld, alpha %g", path, h->rank, h->alpha);
    return AIL_OK;
}

/* Trained adapters: an /adapters group with at least one module, and steps done. */
static int check_trained(hid_t f, const char *path, const RunHead *h) {
    hsize_t n = 0;
    if (H5Lexists(f, "/adapters", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "/adapters", H5P_DEFAULT);
        H5G_info_t info;
        if (g >= 0 && H5Gget_info(g, &info) >= 0) n = info.nlinks;
        if (g >= 0) H5Gclose(g);
    }
    if (n == 0) return AIL_ERROR(AIL_ERR_ARG, "%s has no trained adapters (no /adapters: a train_base run?)", path);
    if (h->steps_done <= 0)
        return AIL_ERROR(AIL_ERR_ARG, "%s has no trained adapters (steps_done = %lld)", path, h->steps_done);
    return AIL_OK;
}

static int read_matrix(hid_t f, const char *run, const char *path, hsize_t rows, hsize_t cols, double **out) {
    hsize_t dims[2];
    AIL_CHECK(h5io_read_f64(f, path, 2, dims, out));
    if (dims[0] != rows || dims[1] != cols) {
        free(*out), *out = NULL;
        return AIL_ERROR(AIL_ERR_FORMAT, "%s: %s is [%llu, %llu], the model needs [%llu, %llu]", run, path,
                         (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)rows,
                         (unsigned long long)cols);
    }
    return AIL_OK;
}

static int read_module(hid_t f, const char *run, const RunHead *h, const TargetModule *t, ExportModule *e) {
    char path[256];
    int r = (int)h->rank;
    e->t = t;
    snprintf(path, sizeof path, "/init/%s/lora_A", t->name);
    AIL_CHECK(read_matrix(f, run, path, r, t->n, &e->A0));
    snprintf(path, sizeof path, "/init/%s/lora_B", t->name);
    AIL_CHECK(read_matrix(f, run, path, t->m, r, &e->B0));
    snprintf(path, sizeof path, "/adapters/%s/lora_A", t->name);
    AIL_CHECK(read_matrix(f, run, path, r, t->n, &e->A));
    snprintf(path, sizeof path, "/adapters/%s/lora_B", t->name);
    AIL_CHECK(read_matrix(f, run, path, t->m, r, &e->B));
    // the dtype the run rounded this residual to (runfile.h), else from the root key
    e->rd = strcmp(h->residual_dtype, "fp32") == 0 ? DTYPE_F32 : t->dtype;
    snprintf(path, sizeof path, "/adapters/%s", t->name);
    hid_t g = H5Gopen2(f, path, H5P_DEFAULT);
    char name[16];
    if (g >= 0 && H5Aexists(g, "residual_dtype") > 0 && h5io_attr_read_str(g, "residual_dtype", name, sizeof name) == AIL_OK) {
        DType d = dtype_from_name(name);
        if (!dtype_is_float(d)) {
            H5Gclose(g);
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: %s has residual_dtype \"%s\"", run, path, name);
        }
        e->rd = d;
    }
    if (g >= 0) H5Gclose(g);
    for (size_t i = 0; i < (size_t)r * t->n; i++)
        if (!isfinite(e->A[i]) || !isfinite(e->A0[i]))
            return AIL_ERROR(AIL_ERR_NUMERIC, "%s: adapter A of %s is not finite", run, t->name);
    for (size_t i = 0; i < (size_t)t->m * r; i++)
        if (!isfinite(e->B[i]) || !isfinite(e->B0[i]))
            return AIL_ERROR(AIL_ERR_NUMERIC, "%s: adapter B of %s is not finite", run, t->name);
    return AIL_OK;
}

static void modules_free(ExportModule *mods, int n) {
    for (int i = 0; mods && i < n; i++) free(mods[i].A0), free(mods[i].B0), free(mods[i].A), free(mods[i].B);
    free(mods);
}

/* ---- writing ------------------------------------------------------------------------- */

static int pwrite_all(int fd, const void *data, size_t n, size_t offset, const char *path) {
    const char *p = data;
    for (size_t done = 0; done < n;) {
        ssize_t w = pwrite(fd, p + done, n - done, (off_t)(offset + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return AIL_ERROR(AIL_ERR_IO, "write to %s failed: %s", path, strerror(errno));
        done += (size_t)w;
    }
    return AIL_OK;
}

/* A non-target tensor in dtype out, converted in chunks (exact when out is wider). */
static int write_converted(int fd, const SafeTensor *t, DType out, size_t offset, const char *path) {
    if (out == t->dtype) return pwrite_all(fd, t->data, t->nbytes, offset, path);
    enum { CHUNK = 1 << 20 };
    size_t es = dtype_size(t->dtype), os = dtype_size(out);
    double *x = ail_malloc(sizeof(double) * CHUNK);
    void *y = ail_malloc(os * CHUNK);
    int rc = x && y ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory converting %s", t->name);
    for (size_t i = 0; i < t->numel && rc == AIL_OK; i += CHUNK) {
        size_t n = t->numel - i < CHUNK ? t->numel - i : CHUNK;
        dtype_to_f64(t->dtype, (const char *)t->data + i * es, n, x);
        dtype_from_f64(out, x, n, y);
        rc = pwrite_all(fd, y, n * os, offset + i * os, path);
    }
    free(x), free(y);
    return rc;
}

/* The module's weight as the export writes it, float64: W_res = round_rd(W - s B0 A0)
 * (as the run formed it), plus s B A when merged. */
static int module_weight(const ExportModule *e, int r, double s, int merged, double **out) {
    const TargetModule *t = e->t;
    size_t count = (size_t)t->m * t->n;
    double *W = ail_malloc(sizeof(double) * count), *R = ail_malloc(sizeof(double) * count);
    if (!W || !R) {
        free(W), free(R);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for %s", t->name);
    }
    dtype_to_f64(t->dtype, t->weight->data, count, W);
    adapter_residual(t->m, t->n, r, s, W, e->A0, e->B0, R);
    for (size_t j = 0; j < count; j++) R[j] = dtype_round(e->rd, R[j]);
    if (merged) adapter_residual(t->m, t->n, r, -s, R, e->A, e->B, W);  // W = R + s B A
    else memcpy(W, R, sizeof(double) * count);
    free(R);
    *out = W;
    return AIL_OK;
}

/* config.json of the model with the dtype keys naming out ("dtype" of transformers 5,
 * "torch_dtype" before; whichever the file has, torch_dtype if neither). */
static int write_config(const HFModel *model, const char *dir, DType out) {
    char path[4400], *text;
    snprintf(path, sizeof path, "%s/config.json", model->dir);
    AIL_CHECK(file_read_all(path, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return AIL_ERROR(AIL_ERR_FORMAT, "%s: not valid JSON", path);
    int have = 0;
    const char *keys[] = {"dtype", "torch_dtype"};
    for (int i = 0; i < 2; i++)
        if (cJSON_GetObjectItemCaseSensitive(root, keys[i])) {
            cJSON_ReplaceItemInObjectCaseSensitive(root, keys[i], cJSON_CreateString(dtype_torch_name(out)));
            have = 1;
        }
    if (!have) cJSON_AddStringToObject(root, "torch_dtype", dtype_torch_name(out));
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = json_file_write(path, root);
    cJSON_Delete(root);
    return rc;
}

static int copy_file(const char *from, const char *to) {
    char *buf;
    size_t len;
    AIL_CHECK(file_read_all(from, &buf, &len));
    int rc = file_write_atomic(to, buf, len);
    free(buf);
    return rc;
}

static int copy_side_files(const HFModel *model, const char *dir) {
    char from[4400], to[4400];
    for (size_t i = 0; i < sizeof side_files / sizeof *side_files; i++) {
        snprintf(from, sizeof from, "%s/%s", model->dir, side_files[i]);
        if (!file_exists(from)) continue;
        snprintf(to, sizeof to, "%s/%s", dir, side_files[i]);
        AIL_CHECK(copy_file(from, to));
    }
    return AIL_OK;
}

static int make_dir(const char *dir) {
    if (mkdir(dir, 0755) != 0) return AIL_ERROR(AIL_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    return AIL_OK;
}

/* An HF model directory: every tensor of every shard in one model.safetensors (targets
 * replaced by W_res, or by the merged weight), written one tensor at a time. */
static int write_model_dir(const char *dir, const HFModel *model, const ExportModule *mods, int nmods, int r,
                           double s, int merged, DType out) {
    AIL_CHECK(make_dir(dir));
    int total = 0;
    for (int k = 0; k < model->nshards; k++) total += model->shards[k].count;
    SafeTensorSpec *specs = ail_calloc((size_t)total, sizeof *specs);
    const SafeTensor **src = ail_calloc((size_t)total, sizeof *src);
    size_t *offsets = ail_calloc((size_t)total, sizeof *offsets), size = 0;
    int rc = specs && src && offsets ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int k = 0, i = 0; k < model->nshards && rc == AIL_OK; k++)
        for (int j = 0; j < model->shards[k].count; j++, i++) {
            const SafeTensor *t = &model->shards[k].tensors[j];
            src[i] = t;
            specs[i] = (SafeTensorSpec){.name = t->name, .dtype = dtype_is_float(t->dtype) ? out : t->dtype,
                                        .ndim = t->ndim, .data = t->data};
            memcpy(specs[i].shape, t->shape, sizeof t->shape);
        }
    char path[4400];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (rc == AIL_OK) rc = safetensors_write_header(path, total, specs, 0, NULL, NULL, offsets, &size);
    int fd = rc == AIL_OK ? open(path, O_WRONLY) : -1;
    if (rc == AIL_OK && fd < 0) rc = AIL_ERROR(AIL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    for (int i = 0; i < total && rc == AIL_OK; i++) {
        const ExportModule *e = NULL;
        for (int k = 0; k < nmods; k++)
            if (mods[k].t->weight == src[i]) e = &mods[k];
        if (!e) {
            rc = write_converted(fd, src[i], specs[i].dtype, offsets[i], path);
            continue;
        }
        double *w = NULL;
        rc = module_weight(e, r, s, merged, &w);
        void *bytes = rc == AIL_OK ? ail_malloc(src[i]->numel * dtype_size(out)) : NULL;
        if (rc == AIL_OK && !bytes) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory for %s", e->t->name);
        if (rc == AIL_OK) {
            dtype_from_f64(out, w, src[i]->numel, bytes);  // one rounding to the output dtype
            rc = pwrite_all(fd, bytes, src[i]->numel * dtype_size(out), offsets[i], path);
        }
        free(bytes);
        free(w);
    }
    if (fd >= 0 && close(fd) != 0 && rc == AIL_OK) rc = AIL_ERROR(AIL_ERR_IO, "cannot close %s: %s", path, strerror(errno));
    free(specs), free(src), free(offsets);
    AIL_CHECK(rc);
    AIL_CHECK(write_config(model, dir, out));
    return copy_side_files(model, dir);
}

/* adapter_config.json as PEFT's LoraConfig saves it (the keys that matter for loading;
 * init_lora_weights = true, so loading never re-initializes from the base). */
static int write_peft_config(const char *path, const char *base, int r, double alpha, const char *targets_csv) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "peft_type", "LORA");
    cJSON_AddStringToObject(root, "task_type", "CAUSAL_LM");
    cJSON_AddStringToObject(root, "base_model_name_or_path", base);
    cJSON_AddNumberToObject(root, "r", r);
    cJSON_AddNumberToObject(root, "lora_alpha", alpha);
    cJSON_AddNumberToObject(root, "lora_dropout", 0.0);
    cJSON_AddStringToObject(root, "bias", "none");
    cJSON_AddBoolToObject(root, "fan_in_fan_out", 0);
    cJSON_AddBoolToObject(root, "use_rslora", 0);
    cJSON_AddBoolToObject(root, "use_dora", 0);
    cJSON_AddBoolToObject(root, "init_lora_weights", 1);
    cJSON_AddBoolToObject(root, "inference_mode", 1);
    cJSON_AddObjectToObject(root, "rank_pattern");
    cJSON_AddObjectToObject(root, "alpha_pattern");
    cJSON_AddNullToObject(root, "modules_to_save");
    cJSON_AddNullToObject(root, "layers_to_transform");
    cJSON *tm = cJSON_AddArrayToObject(root, "target_modules");
    char csv[256];
    snprintf(csv, sizeof csv, "%s", targets_csv);
    for (char *save = NULL, *tok = strtok_r(csv, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        cJSON_AddItemToArray(tm, cJSON_CreateString(tok));
    int rc = json_file_write(path, root);
    cJSON_Delete(root);
    return rc;
}

/* A PEFT adapter directory. doubled: A' = [A; A0] (2r, n), B' = [B, -B0] (m, 2r) with
 * r and alpha doubled (PEFT's PiSSA-to-LoRA conversion); else the trained A, B. */
static int write_adapter_dir(const char *dir, const char *base, const ExportModule *mods, int nmods, int r,
                             double alpha, int doubled, const char *targets_csv) {
    AIL_CHECK(make_dir(dir));
    int ro = doubled ? 2 * r : r;
    SafeTensorSpec *specs = ail_calloc((size_t)2 * nmods, sizeof *specs);
    char(*names)[200] = ail_calloc((size_t)2 * nmods, sizeof *names);
    float **data = ail_calloc((size_t)2 * nmods, sizeof *data);
    int rc = specs && names && data ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int k = 0; k < nmods && rc == AIL_OK; k++) {
        const ExportModule *e = &mods[k];
        int m = e->t->m, n = e->t->n;
        for (int ab = 0; ab < 2 && rc == AIL_OK; ab++) {
            int i = 2 * k + ab;
            size_t count = (size_t)ro * (ab ? m : n);
            double *x = ail_malloc(sizeof(double) * count);
            data[i] = ail_malloc(sizeof(float) * count);
            if (!x || !data[i]) {
                free(x);
                rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
                break;
            }
            if (!ab) {  // rows of A, then of A0
                memcpy(x, e->A, sizeof(double) * (size_t)r * n);
                if (doubled) memcpy(x + (size_t)r * n, e->A0, sizeof(double) * (size_t)r * n);
            } else {  // each row of B: B's r columns, then -B0's
                for (int row = 0; row < m; row++)
                    for (int c = 0; c < ro; c++)
                        x[(size_t)row * ro + c] = c < r ? e->B[(size_t)row * r + c] : -e->B0[(size_t)row * r + c - r];
            }
            dtype_from_f64(DTYPE_F32, x, count, data[i]);
            free(x);
            snprintf(names[i], sizeof names[i], "base_model.model.%s.lora_%c.weight", e->t->name, ab ? 'B' : 'A');
            specs[i] = (SafeTensorSpec){.name = names[i], .dtype = DTYPE_F32, .ndim = 2, .data = data[i]};
            specs[i].shape[0] = ab ? m : ro;
            specs[i].shape[1] = ab ? ro : n;
        }
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (rc == AIL_OK) rc = safetensors_write(path, 2 * nmods, specs, 0, NULL, NULL);
    for (int i = 0; data && i < 2 * nmods; i++) free(data[i]);
    free(data), free(names), free(specs);
    AIL_CHECK(rc);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    return write_peft_config(path, base, ro, doubled ? 2 * alpha : alpha, targets_csv);
}

/* Absolute form of path (which need not exist yet; its parent must). */
static int absolute_path(const char *path, char *out, size_t len) {
    char *a = strdup(path), *b = strdup(path), parent[PATH_MAX];
    int rc = a && b ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK && !realpath(dirname(a), parent))
        rc = AIL_ERROR(AIL_ERR_IO, "cannot resolve the folder of %s: %s", path, strerror(errno));
    if (rc == AIL_OK) {
        const char *base = basename(b);
        if (strcmp(parent, "/") == 0) snprintf(out, len, "/%s", base);
        else snprintf(out, len, "%s/%s", parent, base);
    }
    free(a), free(b);
    return rc;
}

static int write_manifest(const char *path, const RunHead *h, const char *model_abs,
                          const char *run_abs, DType res_out, DType merged_out, int doubled) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", EXPORT_FORMAT);
    cJSON_AddStringToObject(root, "ailora_version", PACKAGE_VERSION);
    cJSON_AddStringToObject(root, "run", run_abs);
    cJSON_AddStringToObject(root, "model", model_abs);
    cJSON_AddStringToObject(root, "model_fingerprint", h->fingerprint);
    cJSON_AddStringToObject(root, "fingerprint_algorithm", FINGERPRINT_ALGORITHM);
    cJSON_AddStringToObject(root, "method", h->method);
    cJSON_AddNumberToObject(root, "rank", (double)h->rank);
    cJSON_AddNumberToObject(root, "alpha", h->alpha);
    cJSON_AddNumberToObject(root, "scale", h->alpha / (double)h->rank);
    cJSON_AddStringToObject(root, "targets", h->targets);
    cJSON_AddNumberToObject(root, "steps_done", (double)h->steps_done);
    cJSON_AddStringToObject(root, "residual_dtype", h->residual_dtype);
    cJSON_AddStringToObject(root, "residual_model_dtype", dtype_name(res_out));
    cJSON_AddStringToObject(root, "merged_model_dtype", dtype_name(merged_out));
    cJSON_AddStringToObject(root, "adapter_dtype", "F32");
    cJSON_AddStringToObject(root, "lora_for_original",
                            doubled ? "PiSSA-to-LoRA conversion: [A; A0], [B, -B0], r and alpha doubled"
                                    : "the trained adapter (every B0 = 0)");
    int rc = json_file_write(path, root);
    cJSON_Delete(root);
    return rc;
}

/* DIR.partial from an earlier export that stopped: ours if it holds only our entries. */
static int clear_stale_partial(const char *partial) {
    struct stat sb;
    if (lstat(partial, &sb) != 0) return AIL_OK;
    int ours = S_ISDIR(sb.st_mode);
    DIR *d = ours ? opendir(partial) : NULL;
    for (struct dirent *ent; d && (ent = readdir(d));) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        int known = 0;
        for (size_t i = 0; i < sizeof out_entries / sizeof *out_entries; i++) known |= !strcmp(ent->d_name, out_entries[i]);
        ours &= known;
    }
    if (d) closedir(d);
    if (!ours) return AIL_ERROR(AIL_ERR_IO, "%s exists and is not an unfinished ailora export: remove it", partial);
    return file_remove_tree(partial);
}

/* DIR must not exist, or (overwrite) be an earlier export. */
static int check_out_dir(const ExportOptions *opt) {
    const char *dir = opt->out_dir;
    char abs[PATH_MAX + 256];
    AIL_CHECK(absolute_path(dir, abs, sizeof abs));  // its folder must exist
    if (!file_exists(dir)) return AIL_OK;
    if (!opt->overwrite) return AIL_ERROR(AIL_ERR_IO, "%s exists already (--overwrite replaces an earlier export)", dir);
    char manifest[4400];
    snprintf(manifest, sizeof manifest, "%s/export.json", dir);
    struct stat sb;
    if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode) || !file_exists(manifest))
        return AIL_ERROR(AIL_ERR_IO, "%s exists and is not an ailora export (no export.json): not replaced", dir);
    return AIL_OK;
}

/* Everything under DIR.partial, then the commit (rank 0). */
static int write_all(const ExportOptions *opt, const HFModel *model, const RunHead *h, ExportModule *mods,
                     int nmods, const char *partial) {
    int r = (int)h->rank;
    double s = h->alpha / (double)r;
    DType model_dt = model->config.torch_dtype;
    DType merged_out = opt->dtype != DTYPE_INVALID ? opt->dtype : model_dt;
    DType res_out = merged_out;
    int doubled = 0;
    for (int k = 0; k < nmods; k++) {
        // the residual the run held, exactly, unless a dtype was asked for
        if (opt->dtype == DTYPE_INVALID && dtype_size(mods[k].rd) > dtype_size(res_out)) res_out = mods[k].rd;
        for (size_t i = 0; i < (size_t)mods[k].t->m * r; i++) doubled |= mods[k].B0[i] != 0.0;
    }
    char model_abs[PATH_MAX], run_abs[PATH_MAX + 256], out_abs[PATH_MAX + 256], res_abs[PATH_MAX + 300];
    if (!realpath(model->dir, model_abs))
        return AIL_ERROR(AIL_ERR_IO, "cannot resolve %s: %s", model->dir, strerror(errno));
    AIL_CHECK(absolute_path(opt->run_path, run_abs, sizeof run_abs));
    AIL_CHECK(absolute_path(opt->out_dir, out_abs, sizeof out_abs));
    snprintf(res_abs, sizeof res_abs, "%s/residual", out_abs);
    const char *targets_csv = h->targets;  // suffixes ("q_proj,v_proj"): every layer's

    AIL_CHECK(make_dir(partial));
    char path[4400];
    snprintf(path, sizeof path, "%s/residual", partial);
    AIL_CHECK(write_model_dir(path, model, mods, nmods, r, s, 0, res_out));
    snprintf(path, sizeof path, "%s/adapter", partial);
    AIL_CHECK(write_adapter_dir(path, res_abs, mods, nmods, r, h->alpha, 0, targets_csv));
    snprintf(path, sizeof path, "%s/lora_for_original", partial);
    AIL_CHECK(write_adapter_dir(path, model_abs, mods, nmods, r, h->alpha, doubled, targets_csv));
    snprintf(path, sizeof path, "%s/merged", partial);
    AIL_CHECK(write_model_dir(path, model, mods, nmods, r, s, 1, merged_out));
    snprintf(path, sizeof path, "%s/export.json", partial);
    AIL_CHECK(write_manifest(path, h, model_abs, run_abs, res_out, merged_out, doubled));
    if (opt->verbose) {
        printf("ailora export: %s (%s, r = %lld, alpha = %g, %d modules, %lld steps)\n", opt->run_path, h->method,
               h->rank, h->alpha, nmods, h->steps_done);
        printf("  residual/ (%s) + adapter/ (r = %d), lora_for_original/ (r = %d, alpha = %g), merged/ (%s)\n",
               dtype_name(res_out), r, doubled ? 2 * r : r, doubled ? 2 * h->alpha : h->alpha,
               dtype_name(merged_out));
        if (opt->dtype != DTYPE_INVALID)
            for (int k = 0; k < nmods; k++)
                if (dtype_size(mods[k].rd) > dtype_size(res_out)) {
                    printf("  note: the run held its residuals in %s; residual/ rounds them to %s\n",
                           dtype_name(mods[k].rd), dtype_name(res_out));
                    break;
                }
    }
    return opt->overwrite ? file_commit_replace(opt->out_dir) : file_commit(opt->out_dir);
}

int export_run(MPI_Comm comm, const ExportOptions *opt) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    char partial[4200];
    file_partial_path(opt->out_dir, partial, sizeof partial);
    int rc = AIL_OK;
    if (rank == 0) {
        rc = check_out_dir(opt);
        if (rc == AIL_OK) rc = clear_stale_partial(partial);
    }
    AIL_CHECK(ail_error_agree(comm, rc));

    // the run file: every rank reads the (small) adapters serially
    RunHead h = {0};
    hid_t f = -1;
    if (!file_exists(opt->run_path)) rc = AIL_ERROR(AIL_ERR_IO, "run file %s does not exist", opt->run_path);
    if (rc == AIL_OK) rc = h5io_open_read(opt->run_path, &f);
    if (rc == AIL_OK) rc = read_head(f, opt->run_path, &h);
    if (rc == AIL_OK) rc = check_trained(f, opt->run_path, &h);
    const char *model_dir = opt->model_dir && opt->model_dir[0] ? opt->model_dir : h.model;
    struct stat sb;
    if (rc == AIL_OK && (stat(model_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        rc = AIL_ERROR(AIL_ERR_IO, "model directory %s of %s is missing (--model gives its new place)", model_dir,
                       opt->run_path);
    rc = ail_error_agree(comm, rc);
    if (rc != AIL_OK) {
        if (f >= 0) H5Fclose(f);
        return rc;
    }
    HFModel model;
    rc = ail_error_agree(comm, hfmodel_open(model_dir, &model));
    if (rc != AIL_OK) {
        H5Fclose(f);
        return rc;
    }
    char fp[FINGERPRINT_HEX];
    rc = fingerprint_model(comm, &model, fp);
    if (rc == AIL_OK && strcmp(fp, h.fingerprint) != 0)
        rc = AIL_ERROR(AIL_ERR_ARG, "model directory %s is not the model %s was trained on (fingerprint %.12s.. != %.12s..)",
                       model_dir, opt->run_path, fp, h.fingerprint);
    TargetModule *targets = NULL;
    int ntargets = 0;
    if (rc == AIL_OK) rc = hfmodel_targets(&model, h.targets, &targets, &ntargets);
    ExportModule *mods = rc == AIL_OK ? ail_calloc((size_t)ntargets, sizeof *mods) : NULL;
    if (rc == AIL_OK && !mods) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int k = 0; k < ntargets && rc == AIL_OK; k++) rc = read_module(f, opt->run_path, &h, &targets[k], &mods[k]);
    H5Fclose(f);
    rc = ail_error_agree(comm, rc);
    if (rc == AIL_OK && rank == 0) {
        rc = write_all(opt, &model, &h, mods, ntargets, partial);
        if (rc != AIL_OK) file_remove_tree(partial);  // nothing half-written stays behind
    }
    rc = ail_error_agree(comm, rc);
    modules_free(mods, ntargets);
    free(targets);
    hfmodel_close(&model);
    return rc;
}
