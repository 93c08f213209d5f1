/* error.h - one error convention for all of ailora.
 *
 * Every fallible function returns an int: AIL_OK (0) on success, or one of the
 * AilErrorCode values. The first failure records a one-line message together with
 * its call site; callers propagate with AIL_CHECK, which appends nothing but keeps
 * the original message, so the user sees the root cause, not the unwinding.
 *
 *     int safetensors_open(const char *path, SafeTensors *st) {
 *         if (fd < 0) return AIL_ERROR(AIL_ERR_IO, "%s: %s", path, strerror(errno));
 *         AIL_CHECK(parse_header(st));
 *         return AIL_OK;
 *     }
 *
 * Programs print ail_error_message() (and the site with ail_error_site()) and exit
 * with a non-zero status.
 */
#ifndef AILORA_ERROR_H
#define AILORA_ERROR_H

/* AILORA_NO_MPI: the error record alone, for code built where there is no MPI
 * (the standalone GPU checks of experiments/bench/gpu.sh). */
#ifndef AILORA_NO_MPI
#include <mpi.h>
#endif

#include <stddef.h>

#ifdef __cplusplus  /* CUDA sources (nvcc compiles them as C++) share the record */
extern "C" {
#endif

typedef enum {
    AIL_OK = 0,
    AIL_ERR_ARG = 2,     /* bad argument, option or config value */
    AIL_ERR_IO = 3,      /* file missing, unreadable, unwritable */
    AIL_ERR_FORMAT = 4,  /* malformed file contents (safetensors, JSON, HDF5) */
    AIL_ERR_MEM = 5,     /* allocation failed */
    AIL_ERR_LIB = 6,     /* a library call failed (LAPACK, ScaLAPACK, HDF5) */
    AIL_ERR_MPI = 7,     /* an MPI call failed or another rank reported an error */
    AIL_ERR_NUMERIC = 8  /* NaN/Inf or a numerical breakdown */
} AilErrorCode;

/* Records the error (only if none is pending) and returns code. */
int ail_error_set(int code, const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

const char *ail_error_message(void);  /* "" when no error is pending */
const char *ail_error_site(void);     /* "src/file.c:123 (function)" */
int ail_error_code(void);
void ail_error_clear(void);

/* Fills buf with "<prog>: error: <message> [at <site>]" for printing. */
void ail_error_format(const char *prog, char *buf, int len);

#define AIL_ERROR(code, ...) ail_error_set((code), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define AIL_CHECK(call)                 \
    do {                                \
        int ail_rc_ = (call);           \
        if (ail_rc_ != AIL_OK) return ail_rc_; \
    } while (0)

/* ---- fault injection ---------------------------------------------------------------
 * Every allocation (ail_malloc / ail_calloc / ail_realloc, AIL_MALLOC / AIL_CALLOC)
 * and every file read of the I/O helpers is a fault point. AILORA_FAULT, read once,
 * makes one rank fail at one point, so tests/fault_inject.sh can prove that one
 * rank's failure never hangs or crashes the job:
 *     AILORA_FAULT=N:R      world rank R fails at its N-th fault point (from 1)
 *     AILORA_FAULT=SITE:R   rank R fails at the first point whose "kind file:line"
 *                           contains SITE (e.g. "read", "svd.c:")
 *     AILORA_FAULT=count    every rank prints how many points it passed (ail_fault_report)
 *     AILORA_FAULT=trace    every rank prints each point as it passes it
 * An allocation fault returns NULL, a read fault makes the helper report an I/O
 * error. Unset, a fault point costs one predictable branch. New library code
 * allocates with these (not malloc) so that its failure paths are tested too.
 * Fault points are counted on the thread that calls MPI (the counter is plain):
 * no allocation happens inside an OpenMP region. */
int ail_fault_at(const char *kind, const char *file, int line);  /* nonzero: fail here */
#define AIL_FAULT(kind) ail_fault_at((kind), __FILE__, __LINE__)
void *ail_malloc_at(size_t bytes, const char *file, int line);
void *ail_calloc_at(size_t count, size_t size, const char *file, int line);
void *ail_realloc_at(void *p, size_t bytes, const char *file, int line);
#define ail_malloc(bytes) ail_malloc_at((bytes), __FILE__, __LINE__)
#define ail_calloc(count, size) ail_calloc_at((count), (size), __FILE__, __LINE__)
#define ail_realloc(p, bytes) ail_realloc_at((p), (bytes), __FILE__, __LINE__)
/* Prints "ailora: fault points: rank R: N" when AILORA_FAULT=count (before MPI_Finalize). */
void ail_fault_report(void);

/* Allocation that records an error naming what was being allocated. */
#define AIL_MALLOC(ptr, count)                                                        \
    do {                                                                              \
        size_t ail_n_ = (size_t)(count);                                              \
        (ptr) = ail_n_ ? ail_malloc(ail_n_ * sizeof(*(ptr))) : NULL;                  \
        if (ail_n_ && !(ptr))                                                         \
            return AIL_ERROR(AIL_ERR_MEM, "out of memory allocating %zu bytes for %s", \
                             ail_n_ * sizeof(*(ptr)), #ptr);                          \
    } while (0)

#define AIL_CALLOC(ptr, count)                                                        \
    do {                                                                              \
        size_t ail_n_ = (size_t)(count);                                              \
        (ptr) = ail_n_ ? ail_calloc(ail_n_, sizeof(*(ptr))) : NULL;                   \
        if (ail_n_ && !(ptr))                                                         \
            return AIL_ERROR(AIL_ERR_MEM, "out of memory allocating %zu bytes for %s", \
                             ail_n_ * sizeof(*(ptr)), #ptr);                          \
    } while (0)

/* Collective over comm: every rank passes its own rc; if any failed, every rank
 * returns the error of the lowest failing rank, message included. Lets all ranks
 * leave a phase together and clean up instead of hanging or aborting. */
#ifndef AILORA_NO_MPI
int ail_error_agree(MPI_Comm comm, int rc);

/* For failures that cannot be agreed: a rank that failed where the others are, or
 * may be, inside a collective it will never enter (mid-forward under tensor
 * parallelism, inside a ScaLAPACK routine). rc == AIL_OK returns AIL_OK; otherwise
 * prints the pending error as one line naming this (world) rank,
 *     ailora: error: rank R: <message> [at <site>] (aborting the job)
 * and ends the whole job with MPI_Abort(comm, 1). */
int ail_error_fatal(MPI_Comm comm, int rc);

/* Chunked MPI_Allreduce (in place, sum) for counts beyond INT_MAX. */
int ail_allreduce_sum(void *buf, size_t count, MPI_Datatype type, MPI_Comm comm);
#endif

#ifdef __cplusplus
}
#endif

#endif
