/* svd_rates.c - per-core speed of the SVD routes, for planning (svd.h), and the
 * kept index set of `--keep`.
 *
 * The table (svd.h, SVD_RATE_*) is the output of experiments/bench/bench_select_rates
 * on the development machine (see experiments/bench/README.md); AILORA_SVD_RATES=FILE
 * replaces entries with lines "name seconds_per_unit" (# comments allowed), e.g.
 * a table measured on the cluster's own nodes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/svd.h"

/* bench_select_rates, 1 core (BLIS skx kernels, reference LAPACK 3.11): 1024 x 1024,
 * 1024 x 256, 256 x 1024; pdgesvd from the 1024^2 figure of the SVD benchmark (16x
 * dgesdd per core, experiments/bench/README.md). */
static const SvdRates default_rates = {
    .gesdd = SVD_RATE_GESDD,
    .select_brd = SVD_RATE_SELECT_BRD,
    .select_vec = SVD_RATE_SELECT_VEC,
    .pdgesvd = SVD_RATE_PDGESVD,
    .dist_select = SVD_RATE_DIST_SELECT,
    .gesdd_eff2 = SVD_RATE_GESDD_EFF2,
    .select_eff2 = SVD_RATE_SELECT_EFF2,
    // the distributed selected route in detail: svd_cost.c, measured with
    // experiments/bench/svd_rates_dist.sh (date and machine there)
    .dist_step = SVD_RATE_DIST_STEP,
    .net_step = SVD_RATE_NET_STEP,
    .dist_back = SVD_RATE_DIST_BACK,
    .bd_values = SVD_RATE_BD_VALUES,
    .bd_vectors = SVD_RATE_BD_VECTORS,
    .bd_all = SVD_RATE_BD_ALL,
    .read = SVD_RATE_READ,
    .write = SVD_RATE_WRITE,
    .startup = SVD_RATE_STARTUP,
    .source = "built-in table (include/ailora/svd.h, measured 2026-12-03)",
};

int svd_rates_get(SvdRates *rates) {
    *rates = default_rates;
    const char *path = getenv("AILORA_SVD_RATES");
    if (!path || !*path) return AIL_OK;
    FILE *f = fopen(path, "r");
    if (!f) return AIL_ERROR(AIL_ERR_IO, "AILORA_SVD_RATES: cannot open %s: %s", path, strerror(errno));
    char line[256];
    int lineno = 0, rc = AIL_OK;
    while (rc == AIL_OK && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char name[64], extra[8];
        double v;
        int got = sscanf(line, "%63s %lf %7s", name, &v, extra);
        if (got <= 0) continue;  // blank or comment
        double *field = !strcmp(name, "gesdd")         ? &rates->gesdd
                        : !strcmp(name, "select_brd")  ? &rates->select_brd
                        : !strcmp(name, "select_vec")  ? &rates->select_vec
                        : !strcmp(name, "pdgesvd")     ? &rates->pdgesvd
                        : !strcmp(name, "dist_select") ? &rates->dist_select
                        : !strcmp(name, "dist_step")   ? &rates->dist_step
                        : !strcmp(name, "net_step")    ? &rates->net_step
                        : !strcmp(name, "dist_back")   ? &rates->dist_back
                        : !strcmp(name, "bd_values")   ? &rates->bd_values
                        : !strcmp(name, "bd_vectors")  ? &rates->bd_vectors
                        : !strcmp(name, "bd_all")      ? &rates->bd_all
                        : !strcmp(name, "read")        ? &rates->read
                        : !strcmp(name, "write")       ? &rates->write
                        : !strcmp(name, "startup")     ? &rates->startup
                        : !strcmp(name, "gesdd_eff2")  ? &rates->gesdd_eff2
                        : !strcmp(name, "select_eff2") ? &rates->select_eff2
                                                       : NULL;
        // per-unit rates are below a second; start-up is seconds per run (0 allowed);
        // an efficiency at 2 threads is a speedup in [1, 2], halved
        int is_startup = field == &rates->startup;
        int is_eff = field == &rates->gesdd_eff2 || field == &rates->select_eff2;
        int ok = is_startup ? v >= 0 && v < 3600.0 : is_eff ? v >= 0.5 && v <= 1.0 : v > 0 && v < 1.0;
        if (got != 2 || !field || !ok)
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s:%d: expected \"gesdd|select_brd|select_vec|pdgesvd|"
                           "dist_select|dist_step|net_step|dist_back|bd_values|bd_vectors|bd_all|read|write "
                           "SECONDS\" with 0 < SECONDS < 1, \"startup SECONDS\" with 0 <= SECONDS < 3600, "
                           "or \"gesdd_eff2|select_eff2 EFFICIENCY\" with 0.5 <= EFFICIENCY <= 1",
                           path, lineno);
        else
            *field = v;
    }
    fclose(f);
    rates->source = path;
    return rc;
}

double svd_cost_gesdd(const SvdRates *r, int m, int n) {
    double k = m < n ? m : n;
    return r->gesdd * (double)m * n * k;
}

double svd_cost_select(const SvdRates *r, int m, int n, int nsel) {
    double k = m < n ? m : n;
    return r->select_brd * (double)m * n * k + r->select_vec * ((double)m + n) * k * nsel;
}

double svd_thread_speedup(double eff2, int threads) {
    if (threads <= 1) return 1.0;
    double f = eff2 > 0.5 ? 1.0 / (eff2 > 1.0 ? 1.0 : eff2) - 1.0 : 1.0;  // serial fraction
    return 1.0 / (f + (1.0 - f) / threads);
}

int svd_kept_indices(int k, int keep, int *kept) {
    if (keep <= 0 || 2 * (long)keep >= k) {
        for (int j = 0; j < k; j++) kept[j] = j;
        return k;
    }
    for (int j = 0; j < keep; j++) kept[j] = j, kept[keep + j] = k - keep + j;
    return 2 * keep;
}

int svd_keep_parse(const char *text, void *keep) {
    if (strcmp(text, "all") == 0) {
        *(int *)keep = 0;
        return AIL_OK;
    }
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end || errno || v < 1 || v > 1 << 30)
        return AIL_ERROR(AIL_ERR_ARG, "keep \"%s\": expected all or a count of singular vectors >= 1 "
                         "at each end of the spectrum", text);
    *(int *)keep = (int)v;
    return AIL_OK;
}

const char *svd_keep_print(const void *keep) {
    static _Thread_local char buf[16];
    int v = *(const int *)keep;
    if (v <= 0) return "all";
    snprintf(buf, sizeof buf, "%d", v);
    return buf;
}
