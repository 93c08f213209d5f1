/* error.c - the pending-error record behind AIL_ERROR / AIL_CHECK. */
#include "ailora/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_code = AIL_OK;
static char g_message[1024];
static char g_site[256];
static int g_origin = -1;  /* world rank an agreed error came from; -1: this rank's own */

int ail_error_set(int code, const char *file, int line, const char *func, const char *fmt, ...) {
    if (g_code != AIL_OK) return code;  // keep the root cause
    g_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_message, sizeof g_message, fmt, ap);
    va_end(ap);
    // one line, always: newlines from library messages become spaces
    for (char *p = g_message; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    snprintf(g_site, sizeof g_site, "%s:%d (%s)", file, line, func);
    g_origin = -1;
    return code;
}

const char *ail_error_message(void) { return g_message; }
const char *ail_error_site(void) { return g_site; }
int ail_error_code(void) { return g_code; }

void ail_error_clear(void) {
    g_code = AIL_OK;
    g_message[0] = '\0';
    g_site[0] = '\0';
    g_origin = -1;
}

void ail_error_format(const char *prog, char *buf, int len) {
    snprintf(buf, (size_t)len, "%s: error: %s [at %s]", prog, g_message, g_site);
}

#ifndef AILORA_NO_MPI
static int world_rank(void) {
    int init = 0, fin = 0, rank = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

int ail_error_agree(MPI_Comm comm, int rc) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    // lowest failing rank, or size if none failed
    int mine = rc != AIL_OK ? rank : size, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == size) return AIL_OK;
    struct { int code, origin; char message[1024]; char site[256]; } err;
    if (rank == first) {
        err.code = g_code != AIL_OK ? g_code : rc;
        err.origin = g_origin >= 0 ? g_origin : world_rank();
        // a failure recorded here for the first time is named by its world rank once
        if (g_origin < 0 && err.origin != 0)
            snprintf(err.message, sizeof err.message, "rank %d: %.1000s", err.origin, g_message);
        else
            snprintf(err.message, sizeof err.message, "%s", g_message);
        snprintf(err.site, sizeof err.site, "%s", g_site);
    }
    MPI_Bcast(&err, (int)sizeof err, MPI_BYTE, first, comm);
    g_code = err.code;
    g_origin = err.origin;
    snprintf(g_message, sizeof g_message, "%s", err.message);
    snprintf(g_site, sizeof g_site, "%s", err.site);
    return g_code;
}

int ail_error_fatal(MPI_Comm comm, int rc) {
    if (rc == AIL_OK) return AIL_OK;
    if (g_code == AIL_OK) g_code = rc;
    // an agreed message names its rank already when that was not rank 0
    if (g_origin > 0)
        fprintf(stderr, "ailora: error: %s [at %s] (aborting the job)\n", g_message, g_site);
    else
        fprintf(stderr, "ailora: error: rank %d: %s [at %s] (aborting the job)\n",
                g_origin == 0 ? 0 : world_rank(), g_message, g_site);
    fflush(stderr);
    fflush(stdout);
    MPI_Abort(comm, 1);
    exit(1);  // MPI_Abort does not return; this keeps the compiler and analyzers sure of it
}

int ail_allreduce_sum(void *buf, size_t count, MPI_Datatype type, MPI_Comm comm) {
    int tsize;
    MPI_Type_size(type, &tsize);
    // MPI counts are int: larger buffers go in chunks of 2^30 elements
    for (size_t off = 0; off < count;) {
        int n = count - off > (size_t)1 << 30 ? 1 << 30 : (int)(count - off);
        if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * (size_t)tsize, n, type, MPI_SUM, comm) != MPI_SUCCESS)
            return AIL_ERROR(AIL_ERR_MPI, "all-reduce of %zu elements failed", count);
        off += (size_t)n;
    }
    return AIL_OK;
}
#endif

/* ---- fault injection ---- */

enum { FAULT_UNREAD, FAULT_OFF, FAULT_AT, FAULT_COUNT, FAULT_TRACE };
static int g_fault_mode = FAULT_UNREAD;
static long g_fault_passed = 0;   /* fault points this rank passed */
static long g_fault_index = 0;    /* FAULT_AT: the point to fail at (0: by site) */
static int g_fault_rank = -1;     /* FAULT_AT: the failing world rank */
static char g_fault_site[128];    /* FAULT_AT by site: substring of "kind file:line" */

static void fault_read_env(void) {
    const char *spec = getenv("AILORA_FAULT");
    g_fault_mode = FAULT_OFF;
    if (!spec || !*spec) return;
    if (strcmp(spec, "count") == 0) {
        g_fault_mode = FAULT_COUNT;
        return;
    }
    if (strcmp(spec, "trace") == 0) {
        g_fault_mode = FAULT_TRACE;
        return;
    }
    const char *colon = strrchr(spec, ':');
    char *end;
    long rank = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == spec || end == colon + 1 || *end || rank < 0) {
        fprintf(stderr, "ailora: warning: AILORA_FAULT=\"%s\" is not N:RANK, SITE:RANK, count or trace; ignored\n",
                spec);
        return;
    }
    g_fault_rank = (int)rank;
    long index = strtol(spec, &end, 10);
    if (end == colon && index > 0) {
        g_fault_index = index;
    } else {
        int len = (int)(colon - spec) < (int)sizeof g_fault_site - 1 ? (int)(colon - spec)
                                                                      : (int)sizeof g_fault_site - 1;
        memcpy(g_fault_site, spec, (size_t)len);
        g_fault_site[len] = '\0';
    }
    g_fault_mode = FAULT_AT;
}

static int fault_rank(void) {
#ifndef AILORA_NO_MPI
    return world_rank();
#else
    return 0;
#endif
}

int ail_fault_at(const char *kind, const char *file, int line) {
    if (g_fault_mode == FAULT_OFF) return 0;
    // fault points are passed by the thread that calls MPI (MPI_THREAD_FUNNELED)
    if (g_fault_mode == FAULT_UNREAD) fault_read_env();
    if (g_fault_mode == FAULT_OFF) return 0;
    long n = ++g_fault_passed;
    if (g_fault_mode == FAULT_COUNT) return 0;
    if (g_fault_mode == FAULT_TRACE) {
        fprintf(stderr, "ailora: fault point: rank %d: %ld %s %s:%d\n", fault_rank(), n, kind, file, line);
        return 0;
    }
    if (g_fault_index < 0 || fault_rank() != g_fault_rank) return 0;  // done, or not this rank
    int hit;
    if (g_fault_index > 0) {
        hit = n == g_fault_index;
    } else {
        char where[512];
        snprintf(where, sizeof where, "%s %s:%d", kind, file, line);
        hit = strstr(where, g_fault_site) != NULL;
        if (hit) g_fault_site[0] = '\0', g_fault_index = -1;  // once
    }
    return hit;
}

void *ail_malloc_at(size_t bytes, const char *file, int line) {
    return ail_fault_at("alloc", file, line) ? NULL : malloc(bytes);
}

void *ail_calloc_at(size_t count, size_t size, const char *file, int line) {
    return ail_fault_at("alloc", file, line) ? NULL : calloc(count, size);
}

void *ail_realloc_at(void *p, size_t bytes, const char *file, int line) {
    return ail_fault_at("alloc", file, line) ? NULL : realloc(p, bytes);
}

void ail_fault_report(void) {
    if (g_fault_mode == FAULT_UNREAD) fault_read_env();
    if (g_fault_mode == FAULT_COUNT || g_fault_mode == FAULT_TRACE) {
        fprintf(stderr, "ailora: fault points: rank %d: %ld\n", fault_rank(), g_fault_passed);
        fflush(stderr);
    }
}
