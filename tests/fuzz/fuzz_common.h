/* fuzz_common.h - shared pieces of the libFuzzer harnesses in tests/fuzz/.
 *
 * Every reader under test takes a path, so each harness writes its input (or the
 * file it generates from the input) into one private scratch directory, made once
 * per process under /dev/shm (RAM) when it exists, else $TMPDIR or /tmp, and
 * removed at exit (see fuzz_scratch).
 *
 * FuzzIn consumes the input as a stream of choices (like LLVM's
 * FuzzedDataProvider): the structured harnesses (HDF5 files) draw shapes, types,
 * values and mutations from it, and an exhausted input reads as zeros, so every
 * input, however short, still makes a file.
 */
#ifndef AILORA_FUZZ_COMMON_H
#define AILORA_FUZZ_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ailora/error.h"

static char fuzz_dir[512];

static void fuzz_cleanup(void) {
    if (!fuzz_dir[0]) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir);
}

/* The scratch directory (made on first use), base/ailora-fuzz-<pid>. A run that ends
 * in a crash leaves with _Exit, past atexit: the next harness removes the directories
 * of processes that no longer exist. */
static const char *fuzz_scratch(void) {
    if (fuzz_dir[0]) return fuzz_dir;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    if (!base || !base[0]) base = "/tmp";
    DIR *d = opendir(base);
    for (struct dirent *e; d && (e = readdir(d));) {
        long pid;
        char cmd[600], rest;
        if (sscanf(e->d_name, "ailora-fuzz-%ld%c", &pid, &rest) == 1 && pid > 0 && kill((pid_t)pid, 0) != 0 &&
            errno == ESRCH) {
            snprintf(cmd, sizeof cmd, "rm -rf '%s/%s'", base, e->d_name);
            if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s/%s\n", base, e->d_name);
        }
    }
    if (d) closedir(d);
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/ailora-fuzz-%ld", base, (long)getpid());
    if (mkdir(fuzz_dir, 0700) != 0 && errno != EEXIST) {
        perror("fuzz: mkdir");
        abort();
    }
    atexit(fuzz_cleanup);
    return fuzz_dir;
}

/* scratch/<name> into buf */
static const char *fuzz_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", fuzz_scratch(), name);
    return buf;
}

static void fuzz_write(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        abort();
    }
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0) {
            perror(path);
            abort();
        }
        p += n, len -= (size_t)n;
    }
    close(fd);
}

/* A broken invariant: report it the way the sanitizers report, so libFuzzer keeps the input. */
#define FUZZ_ASSERT(cond)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz: invariant violated at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* An error must leave one message behind (the one-line report users see). */
static void fuzz_check_error(int rc) {
    if (rc == AIL_OK) return;
    FUZZ_ASSERT(ail_error_code() != AIL_OK);
    FUZZ_ASSERT(ail_error_message()[0] != '\0');
}

typedef struct {
    const uint8_t *p;
    size_t n;
} FuzzIn;

static uint8_t in_u8(FuzzIn *in) {
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

static uint32_t in_u32(FuzzIn *in) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v = v << 8 | in_u8(in);
    return v;
}

static uint64_t in_u64(FuzzIn *in) {
    uint64_t hi = in_u32(in);
    return hi << 32 | in_u32(in);
}

/* An integer in [lo, hi]. */
static long long in_range(FuzzIn *in, long long lo, long long hi) {
    uint64_t span = (uint64_t)(hi - lo) + 1;
    uint64_t v;
    if (span <= 256) {
        v = in_u8(in);
    } else if (span <= 65536) {
        v = (uint64_t)in_u8(in) << 8;
        v |= in_u8(in);
    } else {
        v = in_u64(in);
    }
    return lo + (long long)(span ? v % span : v);
}

/* A double: mostly small ordinary values, sometimes 0, -0, NaN, +-Inf, huge, tiny, raw bits. */
static double in_double(FuzzIn *in) {
    switch (in_u8(in) % 16) {
    case 0: return 0.0;
    case 1: return -0.0;
    case 2: return NAN;
    case 3: return INFINITY;
    case 4: return -INFINITY;
    case 5: return 1e308;
    case 6: return 5e-324;
    case 7: {
        uint64_t bits = in_u64(in);
        double d;
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    default: return ((double)in_u8(in) - 128.0) / 16.0;
    }
}

#endif
