/* testutil.h - minimal assertions for ailora's C tests.
 *
 * A test program runs its checks, prints one line per failed check with the
 * file and line, and exits non-zero if any failed (77 = skipped, automake's
 * convention). Tolerance checks print the measured error so a failing CI log
 * says how far off we were.
 */
#ifndef AILORA_TESTUTIL_H
#define AILORA_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int tu_failures = 0;
static int tu_checks = 0;

#define TU_CHECK(cond, ...)                                                   \
    do {                                                                      \
        tu_checks++;                                                          \
        if (!(cond)) {                                                        \
            tu_failures++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
        }                                                                     \
    } while (0)

/* |got - want| <= tol, reporting both values */
#define TU_CLOSE(got, want, tol, what)                                                  \
    do {                                                                                \
        double tu_g_ = (got), tu_w_ = (want), tu_t_ = (tol);                            \
        TU_CHECK(fabs(tu_g_ - tu_w_) <= tu_t_ && !isnan(tu_g_),                         \
                 "%s: got %.17g want %.17g (|diff| %.3e > tol %.3e)", (what), tu_g_, tu_w_, \
                 fabs(tu_g_ - tu_w_), tu_t_);                                           \
    } while (0)

/* Largest |a_i - b_i| over n elements. */
static inline double tu_max_abs_diff(const double *a, const double *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static inline double tu_max_abs(const double *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

/* Print "name: N checks, N failed" and return the exit status. */
static inline int tu_finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}

#endif
