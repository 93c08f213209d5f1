/* gpu_plugin.c - the entry of libailora-cuda.so (see gpu_plugin.h): the table of
 * the backend's operations, and the error record borrowed from the host. */
#include "ailora/gpu_plugin.h"

#include <stdarg.h>
#include <stdio.h>

#include "ailora/error.h"

static const GpuPluginHost *g_host;

/* The plugin's AIL_ERROR: formatted here, recorded in the host's record (this
 * symbol is local to the plugin, gpu_plugin.map). */
int ail_error_set(int code, const char *file, int line, const char *func, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (!g_host) {  // not entered through ailora_gpu_plugin: no record to write to
        fprintf(stderr, "ailora: error: %s [at %s:%d (%s)]\n", message, file, line, func);
        return code;
    }
    return g_host->error_set(code, file, line, func, "%s", message);
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
