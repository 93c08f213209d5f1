/* cpu.c - pick BLIS's AVX-512 kernels where BLIS does not detect them (see cpu.h). */
#include "ailora/cpu.h"

#include <blis.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

const char *cpu_tune_blis(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (!getenv("BLIS_ARCH_TYPE") && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        setenv("BLIS_ARCH_TYPE", "skylakex", 0);
#endif
    bli_init();  // querying the architecture needs the kernel structure set up
    return bli_arch_string(bli_arch_query_id());
}

void cpu_tune_malloc(void) {
#ifdef __GLIBC__
    if (getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TRIM_THRESHOLD_") || getenv("GLIBC_TUNABLES"))
        return;  // the user's allocator settings win
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}
