/* llama_fixture.h - set up a model of tests/reference/train_fixtures.safetensors
 * (made by tests/reference/make_train_fixtures.py) in either precision, and
 * compare our tensors with the stored ones. Included by the float parity test
 * and the float64 gradient test. */
#ifndef AILORA_LLAMA_FIXTURE_H
#define AILORA_LLAMA_FIXTURE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ailora/dataset.h"
#include "ailora/error.h"
#include "ailora/llama.h"
#include "ailora/safetensors.h"

#define FIXTURE_RANK 4
#define FIXTURE_SCALE 2.0 /* lora_alpha 8 / r 4 */

typedef struct {
    HFModel model;
    Llama llm;
    SafeTensors fx;
    Dataset data;
    char prefix[64];  /* e.g. "llama.pissa" */
} Fixture;

static const SafeTensor *fixture_tensor(const Fixture *f, const char *what, const char *module,
                                        const char *leaf) {
    char name[256];
    snprintf(name, sizeof name, "%s.%s%s%s%s%s", f->prefix, what, module ? "." : "", module ? module : "",
             leaf ? "." : "", leaf ? leaf : "");
    return safetensors_find(&f->fx, name);
}

static double *fixture_f64(const SafeTensor *t) {
    double *x = malloc(sizeof(double) * (t->numel ? t->numel : 1));
    dtype_to_f64(t->dtype, t->data, t->numel, x);
    return x;
}

/* model: "llama" | "qwen2"; adapters: "lora" | "pissa"; fixture_case: e.g. "lora" or "lora.f64" */
static int fixture_open(Fixture *f, const char *srcdir, const char *model, const char *fixture_case) {
    char path[1024];
    snprintf(f->prefix, sizeof f->prefix, "%s.%s", model, fixture_case);
    snprintf(path, sizeof path, "%s/tests/reference/train_%s", srcdir, model);
    AIL_CHECK(hfmodel_open(path, &f->model));
    AIL_CHECK(llama_load(&f->model, &f->llm));
    snprintf(path, sizeof path, "%s/tests/reference/train_fixtures.safetensors", srcdir);
    AIL_CHECK(safetensors_open(path, &f->fx));
    snprintf(path, sizeof path, "%s/tests/reference/train_data.h5", srcdir);
    AIL_CHECK(dataset_load(path, f->llm.V, &f->data));
    // the f64 case shares its initial adapters with the float case
    char init_prefix[64];
    snprintf(init_prefix, sizeof init_prefix, "%s.%.*s", model, (int)strcspn(fixture_case, "."), fixture_case);
    const int lins[2] = {LIN_Q, LIN_V};
    for (int l = 0; l < f->llm.L; l++)
        for (int j = 0; j < 2; j++) {
            char module[128], name[256];
            snprintf(module, sizeof module, "model.layers.%d.self_attn.%s", l, lins[j] == LIN_Q ? "q_proj" : "v_proj");
            snprintf(name, sizeof name, "%s.residual.%s.weight", init_prefix, module);
            const SafeTensor *res = safetensors_find(&f->fx, name);
            if (res) {  // PiSSA: the base weight is PEFT's residual
                double *w = fixture_f64(res);
                for (size_t i = 0; i < res->numel; i++) f->llm.layers[l].w[lins[j]][i] = (real)w[i];
                free(w);
            }
            snprintf(name, sizeof name, "%s.init.%s.lora_A", init_prefix, module);
            const SafeTensor *ta = safetensors_find(&f->fx, name);
            snprintf(name, sizeof name, "%s.init.%s.lora_B", init_prefix, module);
            const SafeTensor *tb = safetensors_find(&f->fx, name);
            if (!ta || !tb) return AIL_ERROR(AIL_ERR_FORMAT, "fixture %s lacks adapters", name);
            double *A = fixture_f64(ta), *B = fixture_f64(tb);
            int rc = llama_adapter_attach(&f->llm, l, lins[j], FIXTURE_RANK, FIXTURE_SCALE, A, B);
            free(A), free(B);
            AIL_CHECK(rc);
        }
    return AIL_OK;
}

static void fixture_close(Fixture *f) {
    dataset_free(&f->data);
    safetensors_close(&f->fx);
    llama_free(&f->llm);
    hfmodel_close(&f->model);
}

/* max |got - ref| and max |ref| over a tensor */
static void fixture_diff(const real *got, const SafeTensor *ref, double *maxdiff, double *maxref) {
    double *r = fixture_f64(ref);
    *maxdiff = *maxref = 0;
    for (size_t i = 0; i < ref->numel; i++) {
        double d = fabs((double)got[i] - r[i]);
        *maxdiff = isnan(d) || d > *maxdiff ? (isnan(d) ? INFINITY : d) : *maxdiff;
        *maxref = fabs(r[i]) > *maxref ? fabs(r[i]) : *maxref;
    }
    free(r);
}

#endif
