/* svd_cost.c - the cost model of svd_cost.h and the measured default rates. */
#include "ailora/svd_cost.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/fileio.h"

/* Measured with experiments/bench/svd_rates.sh on the development machine,
 * 2026-12-02: Intel Xeon (2 cores, AVX-512, shared with other jobs), Debian 12's
 * reference LAPACK 3.11 and ScaLAPACK 2.2.1 over BLIS 0.9 (skx kernels), one
 * thread per rank; kernels on a 2048 x 2048 matrix, keep 64. net_step_s is not
 * measured (one node here): 20 us per column and log2(P), a few small
 * collectives at InfiniBand latency. */
static const SvdRates measured = {
    .gesdd_gflops = 36.0,
    .gebrd_gflops = 4.0,
    .ormbr_gflops = 20.0,
    .bdsvdx_val_ns = 30.0,
    .bdsvdx_vec_ns = 60.0,
    .bdsdc_gflops = 10.0,
    .pdgesvd_gflops = 1.9,
    .step_s = 5e-6,
    .net_step_s = 20e-6,
    .read_gbs = 1.0,
    .write_gbs = 0.5,
};

void svd_rates_default(SvdRates *rates) { *rates = measured; }

static const struct {
    const char *name;
    size_t offset;
} rate_keys[] = {
    {"gesdd_gflops", offsetof(SvdRates, gesdd_gflops)},
    {"gebrd_gflops", offsetof(SvdRates, gebrd_gflops)},
    {"ormbr_gflops", offsetof(SvdRates, ormbr_gflops)},
    {"bdsvdx_val_ns", offsetof(SvdRates, bdsvdx_val_ns)},
    {"bdsvdx_vec_ns", offsetof(SvdRates, bdsvdx_vec_ns)},
    {"bdsdc_gflops", offsetof(SvdRates, bdsdc_gflops)},
    {"pdgesvd_gflops", offsetof(SvdRates, pdgesvd_gflops)},
    {"step_s", offsetof(SvdRates, step_s)},
    {"net_step_s", offsetof(SvdRates, net_step_s)},
    {"read_gbs", offsetof(SvdRates, read_gbs)},
    {"write_gbs", offsetof(SvdRates, write_gbs)},
};
#define NKEYS ((int)(sizeof rate_keys / sizeof *rate_keys))

int svd_rates_load(const char *path, SvdRates *rates) {
    FILE *f = fopen(path, "r");
    if (!f) return AIL_ERROR(AIL_ERR_IO, "cannot open rates file %s: %s", path, strerror(errno));
    char line[512];
    int lineno = 0, rc = AIL_OK;
    while (rc == AIL_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s:%d: line too long", path, lineno);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char name[64], extra[2];
        double v;
        int got = sscanf(line, "%63s %lf %1s", name, &v, extra);
        if (got <= 0) continue;
        int key = -1;
        for (int i = 0; i < NKEYS && got >= 1; i++)
            if (strcmp(name, rate_keys[i].name) == 0) key = i;
        if (key < 0)
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s:%d: unknown rate \"%s\"", path, lineno, name);
        else if (got != 2 || !(v > 0 && v < 1e12))
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s:%d: %s needs one positive finite number", path, lineno, name);
        else
            *(double *)((char *)rates + rate_keys[key].offset) = v;
    }
    fclose(f);
    return rc;
}

int svd_rates_save(const char *path, const SvdRates *rates, const char *comment) {
    char text[4096];
    int len = snprintf(text, sizeof text, "# ailora SVD rates per core (svd_cost.h)%s%s\n",
                       comment ? ": " : "", comment ? comment : "");
    for (int i = 0; i < NKEYS && len < (int)sizeof text; i++)
        len += snprintf(text + len, sizeof text - (size_t)len, "%-15s %.6g\n", rate_keys[i].name,
                        *(const double *)((const char *)rates + rate_keys[i].offset));
    return file_write_atomic(path, text, (size_t)len);
}

double svd_flops_gesdd(int m, int n) {
    double k = m < n ? m : n, big = m > n ? m : n;
    return 4.0 * big * big * k + 8.0 * big * k * k + 9.0 * k * k * k;
}

double svd_flops_gebrd(int m, int n) {
    double M = m > n ? m : n, N = m < n ? m : n;
    return 4.0 * M * N * N - 4.0 / 3.0 * N * N * N;
}

double svd_flops_ormbr(int m, int n, int p) {
    double k = m < n ? m : n;
    return 4.0 * p * k * ((double)m + n - k);
}

double svd_flops_bdsdc(int k) { return 8.0 / 3.0 * (double)k * k * k; }

int svd_kept_count(int k, int keep) { return keep <= 0 || 2L * keep >= k ? k : 2 * keep; }

void svd_cost_matrix(const SvdRates *r, SvdBackend route, int m, int n, int keep, int P,
                     int node_cores, SvdCost *c) {
    memset(c, 0, sizeof *c);
    int k = m < n ? m : n;
    double mn = (double)m * n;
    if (P < 1) P = 1;
    if (route == SVD_BACKEND_LAPACK || route == SVD_BACKEND_CUSOLVER) P = 1, keep = 0;
    if (route == SVD_BACKEND_PDGESVD) keep = 0;  // pdgesvd computes every vector
    int p = svd_kept_count(k, keep);
    c->read_s = 8.0 * mn / P / (r->read_gbs * 1e9);
    c->out_bytes = 8.0 * ((double)k + ((double)m + n) * p);
    c->write_s = c->out_bytes / (r->write_gbs * 1e9);
    if (route == SVD_BACKEND_PDGEBRD) {
        double steps = P > 1 ? (double)k * log2((double)P) : 0.0;
        double step = node_cores > 0 && P > node_cores ? r->net_step_s : r->step_s;
        c->compute_s = svd_flops_gebrd(m, n) / (P * r->gebrd_gflops * 1e9) + steps * step;
        c->values_s = p == k ? 0.0 : 1e-9 * r->bdsvdx_val_ns * (double)k * k;
        c->vectors_s = p == k ? svd_flops_bdsdc(k) / (r->bdsdc_gflops * 1e9)
                              : 1e-9 * r->bdsvdx_vec_ns * (double)k * p;
        c->back_s = svd_flops_ormbr(m, n, p) / (P * r->ormbr_gflops * 1e9);
        // a's blocks and the vectors; the redundant solve (svd.h DistSelSvd)
        double dist = 8.0 * (mn + 2.0 * ((double)m + n) * p) / P;
        double solve = p == k ? 8.0 * 7.0 * (double)k * k : 8.0 * (2.0 * k * (k + 1.0) + 2.0 * (double)k * p);
        c->rank_bytes = dist + solve;
    } else if (route == SVD_BACKEND_PDGESVD) {
        c->compute_s = svd_flops_gesdd(m, n) / (P * r->pdgesvd_gflops * 1e9);
        c->rank_bytes = 8.0 * (mn + ((double)m + n) * k) / P * 1.5;  // + pdgesvd's workspace
    } else {
        c->compute_s = svd_flops_gesdd(m, n) / (r->gesdd_gflops * 1e9);
        c->rank_bytes = svd_lapack_bytes(m, n);
    }
    c->seconds = c->read_s + c->compute_s + c->values_s + c->vectors_s + c->back_s + c->write_s;
}

static void human_bytes(double b, char *buf, size_t len) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024.0 && u < 4) b /= 1024.0, u++;
    snprintf(buf, len, "%.1f %s", b, unit[u]);
}

double svd_cost_plan(const SvdRates *r, const SvdPlan *plan, const TargetModule *targets,
                     int ntargets, int keep, int node_cores, FILE *out) {
    double total = 0.0, out_total = 0.0;
    for (int ph = 0; ph < plan->nphases; ph++) {
        const SvdPhase *phase = &plan->phases[ph];
        double *load = calloc((size_t)phase->ngroups + 1, sizeof *load);
        if (!load) return -1.0;
        SvdCost sum = {0};
        double peak = 0.0, outb = 0.0;
        int count = 0;
        SvdBackend route = SVD_BACKEND_LAPACK;
        for (int i = 0; i < ntargets; i++) {
            const SvdTask *t = &plan->tasks[i];
            if (t->phase != ph) continue;
            SvdCost c;
            svd_cost_matrix(r, t->backend, targets[i].m, targets[i].n, keep, phase->group_size, node_cores, &c);
            load[t->group] += c.seconds;
            sum.read_s += c.read_s, sum.compute_s += c.compute_s, sum.values_s += c.values_s;
            sum.vectors_s += c.vectors_s, sum.back_s += c.back_s, sum.write_s += c.write_s;
            peak = fmax(peak, c.rank_bytes);
            outb += c.out_bytes;
            route = t->backend;
            count++;
        }
        double slowest = 0.0;
        for (int g = 0; g < phase->ngroups; g++) slowest = fmax(slowest, load[g]);
        free(load);
        total += slowest;
        out_total += outb;
        if (out) {
            char mem[32], ob[32];
            human_bytes(peak, mem, sizeof mem);
            human_bytes(outb, ob, sizeof ob);
            fprintf(out, "phase %d: %d matrices, %d group(s) of %d rank(s), %s\n", ph, count,
                    phase->ngroups, phase->group_size, svd_backend_name(route));
            fprintf(out, "  predicted %.3g s (slowest group); memory per rank %s; output %s\n", slowest, mem, ob);
            fprintf(out, "  summed over matrices: read %.3g s, %s %.3g s", sum.read_s,
                    route == SVD_BACKEND_PDGEBRD ? "bidiagonalize" : "svd", sum.compute_s);
            if (route == SVD_BACKEND_PDGEBRD)
                fprintf(out, ", values %.3g s, vectors %.3g s, back-transform %.3g s", sum.values_s,
                        sum.vectors_s, sum.back_s);
            fprintf(out, ", write %.3g s\n", sum.write_s);
        }
    }
    if (out) {
        char ob[32];
        human_bytes(out_total, ob, sizeof ob);
        fprintf(out, "total: predicted %.3g s, cache %s\n", total, ob);
    }
    return total;
}
