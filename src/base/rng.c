/* rng.c - splitmix64-based counter RNG (see rng.h). */
#include "ailora/rng.h"

#include <math.h>

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rng_init(Rng *rng, uint64_t seed, uint64_t stream) {
    rng->key = mix64(seed * 0x9e3779b97f4a7c15ULL + mix64(stream + 0x632be59bd9b4e019ULL));
    rng->counter = 0;
}

uint64_t rng_stream_id(const char *name) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t rng_next_u64(Rng *rng) {
    return mix64(rng->key + 0x9e3779b97f4a7c15ULL * ++rng->counter);
}

double rng_uniform(Rng *rng) { return (double)(rng_next_u64(rng) >> 11) * 0x1.0p-53; }

double rng_normal(Rng *rng) {
    double u1 = 1.0 - rng_uniform(rng);  // (0, 1]: log is finite
    double u2 = rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
