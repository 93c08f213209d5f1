/* gpu_plugin.c - the entry of libailora-cuda.so (see gpu_plugin.h): the table of
 * the backend's operations, and the error record borrowed from the host. */
#include "ailora/gpu_plugin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ailora/error.h"

static const GpuPluginHost *g_host;

/* The plugin's side of error.h, forwarded to the host's (these symbols are local to
 * the plugin, gpu_plugin.map). Before the entry is called there is no host: plain
 * stderr and malloc. */
int ail_error_set(int code, const char *file, int line, const char *func, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (!g_host) {
        fprintf(stderr, "ailora: error: %s [at %s:%d (%s)]\n", message, file, line, func);
        return code;
    }
    return g_host->error_set(code, file, line, func, "%s", message);
}

int ail_error_code(void) { return g_host ? g_host->error_code() : 0; }
int ail_fault_at(const char *kind, const char *file, int line) {
    return g_host ? g_host->fault_at(kind, file, line) : 0;
}
void *ail_malloc_at(size_t bytes, const char *file, int line) {
    return g_host ? g_host->malloc_at(bytes, file, line) : malloc(bytes);
}
void *ail_calloc_at(size_t count, size_t size, const char *file, int line) {
    return g_host ? g_host->calloc_at(count, size, file, line) : calloc(count, size);
}
void *ail_realloc_at(void *p, size_t bytes, const char *file, int line) {
    return g_host ? g_host->realloc_at(p, bytes, file, line) : realloc(p, bytes);
}

#define OPS_ENTRY(ret, name, params, args) .name = name,
static const GpuPluginOps ops = {
    .abi = GPU_PLUGIN_ABI,
    .size = sizeof(GpuPluginOps),
    GPU_PLUGIN_CALLS(OPS_ENTRY) GPU_PLUGIN_QUERIES(OPS_ENTRY) GPU_PLUGIN_RELEASES(OPS_ENTRY)};

const GpuPluginOps *ailora_gpu_plugin(const GpuPluginHost *host);
const GpuPluginOps *ailora_gpu_plugin(const GpuPluginHost *host) {
    g_host = host;
    return &ops;
}
