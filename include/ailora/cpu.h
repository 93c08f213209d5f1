/* cpu.h - CPU setup done once at program start, before any BLIS call. */
#ifndef AILORA_CPU_H
#define AILORA_CPU_H

/* BLIS picks its kernels from the CPU model; on CPUs it does not recognize (for
 * example virtual machines reporting a generic "Intel Xeon Processor") it falls
 * back to the AVX2 "haswell" kernels even when AVX-512 is there, halving GEMM
 * throughput. If BLIS_ARCH_TYPE is unset and the CPU has AVX-512 F/DQ/BW/VL, this
 * sets BLIS_ARCH_TYPE=skylakex. An explicit BLIS_ARCH_TYPE is left alone. Returns
 * the kernel family BLIS then uses. */
const char *cpu_tune_blis(void);

/* glibc returns freed memory above 128 KiB to the kernel at once (munmap, or a
 * heap trim), so a loop that allocates and frees a matrix's workspace per matrix
 * (the SVD routes: 60 matrices for SmolLM2's q, v) takes page faults on every
 * page each time (the kernel's page-fault path was the largest single item of a
 * `perf` profile of `ailora init`). Blocks up to 64 MiB
 * come from the heap instead, and up to 256 MiB of freed heap stays mapped for the
 * next matrix. Larger blocks still go back at once. No-op off glibc, and where
 * MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / GLIBC_TUNABLES are set. */
void cpu_tune_malloc(void);

#endif
