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

#endif
