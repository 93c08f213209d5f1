/* test_resume_config.c - what resume=true may change (runfile_config_diff): every
 * other key is refused, named with both values; a key missing from a stored config
 * (added to ailora later) counts as its default; the steps only under a constant
 * schedule; the device only at the same compute precision. */
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/runfile.h"
#include "testutil.h"

/* The config text a run was started with: the defaults plus key=value settings. */
static char *stored_with(const char *const *set, int n) {
    TrainConfig c;
    config_defaults(&c);
    for (int i = 0; i < n; i++) {
        char key[64];
        const char *eq = strchr(set[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - set[i]), set[i]);
        config_set(&c, key, eq + 1);
    }
    return config_dump(&c);
}

/* Diff of stored against the defaults plus now[]: expects refused and changed exactly. */
static void expect(const char *what, const char *stored, const char *const *now, int n, const char *want_refused,
                   const char *want_changed) {
    TrainConfig c;
    config_defaults(&c);
    for (int i = 0; i < n; i++) {
        char key[64];
        const char *eq = strchr(now[i], '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq - now[i]), now[i]);
        TU_CHECK(config_set(&c, key, eq + 1) == AIL_OK, "%s: set %s", what, now[i]);
    }
    char refused[1024], changed[1024];
    int nrefused = -1;
    TU_CHECK(runfile_config_diff(stored, &c, refused, sizeof refused, changed, sizeof changed, &nrefused) == AIL_OK,
             "%s", what);
    TU_CHECK(!strcmp(refused, want_refused), "%s: refused \"%s\", want \"%s\"", what, refused, want_refused);
    TU_CHECK(!strcmp(changed, want_changed), "%s: changed \"%s\", want \"%s\"", what, changed, want_changed);
    TU_CHECK((nrefused > 0) == (want_refused[0] != 0), "%s: %d refused", what, nrefused);
}

int main(void) {
    const char *base[] = {"lr=0.002", "out=run.h5", "steps=10"};
    char *stored = stored_with(base, 3);
    expect("same", stored, base, 3, "", "");
    const char *invoked[] = {"lr=0.002", "out=run.h5", "steps=10", "resume=true", "overwrite=true"};
    expect("resume and overwrite are how ailora was invoked", stored, invoked, 5, "", "");
    const char *numerics[] = {"lr=0.001", "out=run.h5", "steps=10", "seed=3", "alpha=2", "batch_size=16",
                              "eval_batches=2", "max_new_tokens=4", "targets=q_proj", "train_data=other.h5"};
    expect("numerics, data and measurements", stored, numerics, 10,
           "train_data \"\" -> other.h5, targets q_proj,v_proj -> q_proj, alpha 0 -> 2, seed 0 -> 3, "
           "batch_size 8 -> 16, lr 0.002 -> 0.001, eval_batches 0 -> 2, max_new_tokens 0 -> 4", "");
    const char *cadence[] = {"lr=0.002", "out=moved/run.h5", "steps=20", "grad_accum=2", "log_every=1", "eval_every=5",
                             "checkpoint_every=4", "checkpoint_minutes=5", "tp=2", "dp=2", "preempt_at_step=3"};
    expect("steps, cadence, layout, files", stored, cadence, 11, "",
           "out run.h5 -> moved/run.h5, steps 10 -> 20, grad_accum 1 -> 2, log_every 10 -> 1, eval_every 0 -> 5, "
           "checkpoint_every 0 -> 4, tp 1 -> 2, dp 0 -> 2, preempt_at_step 0 -> 3, checkpoint_minutes 30 -> 5");
    free(stored);

    // the linear / cosine lr of every later step depends on steps
    const char *cos[] = {"schedule=cosine", "steps=10"}, *cos_more[] = {"schedule=cosine", "steps=12"};
    stored = stored_with(cos, 2);
    expect("steps under cosine", stored, cos_more, 2, "steps 10 -> 12 (the cosine schedule depends on it)", "");
    free(stored);

    // cpu computes in fp32 whatever precision says; cuda in precision
    const char *cpu[] = {"device=cpu"}, *bf16[] = {"device=cuda"}, *fp32[] = {"device=cuda", "precision=fp32"},
               *cpu_fp32[] = {"precision=fp32"};
    stored = stored_with(cpu, 1);
    expect("cpu -> cuda bf16", stored, bf16, 1, "device cpu -> cuda (compute precision fp32 -> bf16)", "");
    expect("cpu -> cuda fp32", stored, fp32, 2, "", "device cpu -> cuda, precision bf16 -> fp32");
    expect("precision on cpu", stored, cpu_fp32, 1, "", "precision bf16 -> fp32");
    free(stored);
    stored = stored_with(bf16, 1);
    expect("cuda bf16 -> cuda fp32", stored, fp32, 2, "precision bf16 -> fp32 (compute precision bf16 -> fp32)", "");
    free(stored);

    // a stored config from an older ailora: missing keys are their defaults, unknown keys refused
    const char *none[] = {"out=run.h5"}, *newer[] = {"out=run.h5", "max_new_tokens=5"};
    stored = stored_with(none, 1);
    char old[16384] = "bogus = 1\n";
    for (const char *line = stored; *line; line = strchr(line, '\n') + 1)  // drop max_new_tokens, checkpoint_minutes
        if (strncmp(line, "max_new_tokens ", 15) && strncmp(line, "checkpoint_minutes ", 19))
            strncat(old, line, strcspn(line, "\n") + 1);
    expect("older run file, same config", old, none, 1, "bogus 1 -> (a key this ailora does not know)", "");
    expect("older run file, new key set", old, newer, 2,
           "max_new_tokens 0 -> 5, bogus 1 -> (a key this ailora does not know)", "");
    free(stored);
    return tu_finish("test_resume_config");
}
