/* error.c - the pending-error record behind AIL_ERROR / AIL_CHECK. */
#include "ailora/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int g_code = AIL_OK;
static char g_message[1024];
static char g_site[256];

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
    return code;
}

const char *ail_error_message(void) { return g_message; }
const char *ail_error_site(void) { return g_site; }
int ail_error_code(void) { return g_code; }

void ail_error_clear(void) {
    g_code = AIL_OK;
    g_message[0] = '\0';
    g_site[0] = '\0';
}

void ail_error_format(const char *prog, char *buf, int len) {
    snprintf(buf, (size_t)len, "%s: error: %s [at %s]", prog, g_message, g_site);
}

#ifndef AILORA_NO_MPI
int ail_error_agree(MPI_Comm comm, int rc) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    // lowest failing rank, or size if none failed
    int mine = rc != AIL_OK ? rank : size, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == size) return AIL_OK;
    struct { int code; char message[1024]; char site[256]; } err;
    if (rank == first) {
        err.code = g_code != AIL_OK ? g_code : rc;
        snprintf(err.message, sizeof err.message, "%s", g_message);
        snprintf(err.site, sizeof err.site, "%s", g_site);
    }
    MPI_Bcast(&err, (int)sizeof err, MPI_BYTE, first, comm);
    g_code = err.code;
    snprintf(g_message, sizeof g_message, "%s", err.message);
    snprintf(g_site, sizeof g_site, "%s", err.site);
    if (first != 0) {  // say where it came from when it was not rank 0
        snprintf(g_message, sizeof g_message, "rank %d: %.1000s", first, err.message);
    }
    return g_code;
}
#endif
