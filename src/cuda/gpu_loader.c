/* gpu_loader.c - gpu.h and gpu_svd.h for ailora: each call goes to the CUDA plugin,
 * loaded on first use (see gpu_plugin.h for why and where it is looked for). */
#include "ailora/gpu_plugin.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ailora/error.h"
#include "config.h"

static const GpuPluginOps *g_ops;
static int g_tried;
static char g_reason[768] = "";
static char g_path[4096] = "";

/* dlopen + entry + ABI check of one candidate; 1 when loaded, else g_reason says why. */
static int try_load(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(g_reason, sizeof g_reason, "cannot load the CUDA backend: %s", dlerror());
        return 0;
    }
    GpuPluginEntry entry;
    *(void **)&entry = dlsym(lib, GPU_PLUGIN_ENTRY);  // POSIX's way to a function pointer
    static const GpuPluginHost host = {.error_set = ail_error_set, .error_code = ail_error_code,
                                       .fault_at = ail_fault_at, .malloc_at = ail_malloc_at,
                                       .calloc_at = ail_calloc_at, .realloc_at = ail_realloc_at};
    const GpuPluginOps *ops = entry ? entry(&host) : NULL;
    if (!ops || ops->abi != GPU_PLUGIN_ABI || ops->size != sizeof(GpuPluginOps)) {
        snprintf(g_reason, sizeof g_reason,
                 "%s is not a CUDA backend of this ailora (%s; rebuild it with this version)", path,
                 !entry ? "no " GPU_PLUGIN_ENTRY : !ops ? "no operations" : "different plugin ABI");
        dlclose(lib);
        return 0;
    }
    g_ops = ops;
    snprintf(g_path, sizeof g_path, "%s", path);
    return 1;
}

static int exists(const char *path) { return access(path, R_OK) == 0; }

static void load_once(void) {
    if (g_tried) return;
    g_tried = 1;
    const char *env = getenv("AILORA_CUDA_PLUGIN");
    if (env && env[0]) {  // explicit: this one or none
        try_load(env);
        return;
    }
#ifdef AILORA_HAVE_CUDA
    char candidates[3][4096] = {"", "", ""};
    char exe[3800];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(candidates[0], sizeof candidates[0], "%s/" GPU_PLUGIN_FILE, exe);
    }
    snprintf(candidates[1], sizeof candidates[1], "%s/" GPU_PLUGIN_FILE, AILORA_PKGLIBDIR);
    snprintf(candidates[2], sizeof candidates[2], "%s/" GPU_PLUGIN_FILE, AILORA_BUILDDIR);
    for (int i = 0; i < 3; i++)
        if (candidates[i][0] && exists(candidates[i])) {
            try_load(candidates[i]);  // if broken, report that one, not a later one's absence
            return;
        }
    snprintf(g_reason, sizeof g_reason, "the CUDA backend %s is not installed (looked in %s, %s)",
             GPU_PLUGIN_FILE, AILORA_PKGLIBDIR, candidates[0][0] ? "the executable's directory" : "-");
#else
    snprintf(g_reason, sizeof g_reason, "built without CUDA (configure --with-cuda)");
#endif
}

const char *gpu_unavailable_reason(void) {
    load_once();
    return g_ops ? NULL : g_reason;
}

const char *gpu_plugin_path(void) {
    load_once();
    return g_path;
}

#define FORWARD_CALL(ret, name, params, args)                                         \
    ret name params {                                                                 \
        load_once();                                                                  \
        if (!g_ops) return AIL_ERROR(AIL_ERR_ARG, "%s", g_reason);                    \
        return g_ops->name args;                                                      \
    }
#define FORWARD_QUERY(ret, name, params, args)                                        \
    ret name params {                                                                 \
        load_once();                                                                  \
        return g_ops ? g_ops->name args : (ret)0;                                     \
    }
#define FORWARD_RELEASE(ret, name, params, args)                                      \
    ret name params {                                                                 \
        if (g_ops) g_ops->name args; /* not loaded: nothing was allocated */          \
    }
GPU_PLUGIN_CALLS(FORWARD_CALL)
GPU_PLUGIN_QUERIES(FORWARD_QUERY)
GPU_PLUGIN_RELEASES(FORWARD_RELEASE)
