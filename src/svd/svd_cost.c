/* svd_cost.c - the cost model of svd_cost.h and the measured default rates. */
#include "ailora/svd_cost.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/fileio.h"

int svd_rates_save(const char *path, const SvdRates *r, const char *comment) {
    const struct {
        const char *name;
        double v;
    } e[] = {{"gesdd", r->gesdd},         {"select_brd", r->select_brd}, {"select_vec", r->select_vec},
             {"pdgesvd", r->pdgesvd},     {"dist_select", r->dist_select}, {"dist_step", r->dist_step},
             {"net_step", r->net_step},   {"dist_back", r->dist_back},   {"bd_values", r->bd_values},
             {"bd_vectors", r->bd_vectors}, {"bd_all", r->bd_all},       {"read", r->read},
             {"write", r->write},         {"startup", r->startup},       {"gesdd_eff2", r->gesdd_eff2},
             {"select_eff2", r->select_eff2}};
    char text[2048];
    int len = snprintf(text, sizeof text, "# ailora SVD rates, seconds per unit on one core (svd.h)%s%s\n",
                       comment ? ": " : "", comment ? comment : "");
    for (size_t i = 0; i < sizeof e / sizeof *e && len < (int)sizeof text; i++)
        len += snprintf(text + len, sizeof text - (size_t)len, "%-12s %.4g\n", e[i].name, e[i].v);
    return file_write_atomic(path, text, (size_t)len);
}

int svd_kept_count(int k, int keep) { return keep <= 0 || 2L * keep >= k ? k : 2 * keep; }

void svd_cost_matrix(const SvdRates *r, SvdBackend route, int m, int n, int keep, int P,
                     int node_cores, SvdCost *c) {
    svd_cost_matrix_threads(r, route, m, n, keep, P, 1, node_cores, c);
}

void svd_cost_matrix_threads(const SvdRates *r, SvdBackend route, int m, int n, int keep, int P,
                             int threads, int node_cores, SvdCost *c) {
    memset(c, 0, sizeof *c);
    double k = m < n ? m : n, mn = (double)m * n;
    if (P < 1 || (route != SVD_BACKEND_PDGEBRD && route != SVD_BACKEND_PDGESVD)) P = 1;
    if (route != SVD_BACKEND_PDGEBRD && route != SVD_BACKEND_SELECT) keep = 0;  // every vector
    double p = svd_kept_count((int)k, keep);
    c->read_s = r->read * mn / P;
    c->out_bytes = 8.0 * (k + ((double)m + n) * p);
    c->write_s = r->write * (k + ((double)m + n) * p);
    if (route == SVD_BACKEND_PDGEBRD) {
        double step = node_cores > 0 && P > node_cores ? r->net_step : r->dist_step;
        c->compute_s = r->dist_select * mn * k / P + (P > 1 ? step * k * log2((double)P) : 0.0);
        c->values_s = p == k ? 0.0 : r->bd_values * k * k;
        c->vectors_s = p == k ? r->bd_all * k * k * k : r->bd_vectors * k * p;
        c->back_s = r->dist_back * ((double)m + n) * k * p / P;
        // a's blocks and the vectors, distributed; the redundant solve (DistSelSvd)
        double dist = 8.0 * (mn + 2.0 * ((double)m + n) * p) / P;
        double solve = p == k ? 8.0 * 7.0 * k * k : 8.0 * (2.0 * k * (k + 1.0) + 2.0 * k * p);
        c->rank_bytes = dist + solve;
    } else if (route == SVD_BACKEND_PDGESVD) {
        c->compute_s = r->pdgesvd * mn * k / P;
        c->rank_bytes = 8.0 * (mn + ((double)m + n) * k) / P * 1.5;  // + pdgesvd's workspace
    } else if (route == SVD_BACKEND_SELECT) {
        double s = svd_thread_speedup(r->select_eff2, threads);
        c->compute_s = r->select_brd * mn * k / s;
        c->vectors_s = r->select_vec * ((double)m + n) * k * p / s;
        c->rank_bytes = 8.0 * (2.0 * mn + ((double)m + n) * p + 2.0 * k * (k + 1.0));
    } else {
        // dgesdd (cuSOLVER is priced as dgesdd: no GPU rates here)
        c->compute_s = r->gesdd * mn * k / svd_thread_speedup(r->gesdd_eff2, threads);
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
                     int ntargets, int keep, int vector_bytes, int node_cores, FILE *out) {
    double total = 0.0, out_total = 0.0;
    for (int ph = 0; ph < plan->nphases; ph++) {
        const SvdPhase *phase = &plan->phases[ph];
        double *load = calloc((size_t)phase->ngroups + 1, sizeof *load);
        if (!load) return -1.0;
        SvdCost sum = {0};
        double peak = 0.0, outb = 0.0;
        int count = 0, by_route[8] = {0}, threaded = 0;
        for (int i = 0; i < ntargets; i++) {
            const SvdTask *t = &plan->tasks[i];
            if (t->phase != ph) continue;
            SvdCost c;
            svd_cost_matrix_threads(r, t->backend, targets[i].m, targets[i].n, keep, phase->group_size,
                                    plan->threads > 1 ? plan->threads : 1, node_cores, &c);
            load[t->group] += c.seconds;
            sum.read_s += c.read_s, sum.compute_s += c.compute_s, sum.values_s += c.values_s;
            sum.vectors_s += c.vectors_s, sum.back_s += c.back_s, sum.write_s += c.write_s;
            peak = fmax(peak, c.rank_bytes);
            // the cache holds S (float64) and the kept vectors, whatever the route computed
            int k = targets[i].m < targets[i].n ? targets[i].m : targets[i].n;
            outb += 8.0 * k + (double)vector_bytes * ((double)targets[i].m + targets[i].n) * svd_kept_count(k, keep);
            if ((int)t->backend >= 0 && (int)t->backend < 8) by_route[t->backend]++;
            threaded |= t->backend != SVD_BACKEND_PDGEBRD && t->backend != SVD_BACKEND_PDGESVD;
            count++;
        }
        double slowest = 0.0;
        for (int g = 0; g < phase->ngroups; g++) slowest = fmax(slowest, load[g]);
        free(load);
        total += slowest;
        out_total += outb;
        if (!out) continue;
        char mem[32], ob[32], routes[128] = "";
        human_bytes(peak, mem, sizeof mem);
        human_bytes(outb, ob, sizeof ob);
        for (int b = 0, len = 0; b < 8; b++)
            if (by_route[b])
                len += snprintf(routes + len, sizeof routes - (size_t)len, "%s%d %s", len ? ", " : "",
                                by_route[b], svd_backend_name((SvdBackend)b));
        // one-rank routes run the plan's threads, grid routes one per rank (svd.h)
        int th = threaded && plan->threads > 1 ? plan->threads : 1;
        fprintf(out, "phase %d: %d matrices (%s) on %d group(s) of %d rank(s), %d thread(s) per rank\n", ph,
                count, routes, phase->ngroups, phase->group_size, th);
        fprintf(out, "  predicted %.3g s (the slowest group); memory per rank %s; output %s\n", slowest, mem, ob);
        fprintf(out, "  summed over its matrices: read %.3g s, factorize %.3g s, values %.3g s, vectors %.3g s, "
                "back-transform %.3g s, write %.3g s\n",
                sum.read_s, sum.compute_s, sum.values_s, sum.vectors_s, sum.back_s, sum.write_s);
    }
    total += r->startup;  // once per run
    if (out) {
        char ob[32];
        human_bytes(out_total, ob, sizeof ob);
        fprintf(out, "start-up (mpirun, MPI): %.3g s\n", r->startup);
        fprintf(out, "total: predicted %.3g s, cache %s\n", total, ob);
    }
    return total;
}
