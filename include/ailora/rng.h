/* rng.h - counter-based random numbers that do not depend on the rank layout.
 *
 * Value i of stream (seed, stream) is a pure function of (seed, stream, i): a
 * splitmix64 finalizer over the counter. Each module draws from its own stream
 * (rng_stream_id of its name), so the same seed gives the same adapters on 1 rank
 * or 64, in any processing order.
 */
#ifndef AILORA_RNG_H
#define AILORA_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t key;
    uint64_t counter;
} Rng;

void rng_init(Rng *rng, uint64_t seed, uint64_t stream);
uint64_t rng_stream_id(const char *name);  /* FNV-1a 64-bit of name */
uint64_t rng_next_u64(Rng *rng);
double rng_uniform(Rng *rng);              /* [0, 1), 53 random bits */
double rng_normal(Rng *rng);               /* N(0, 1), Box-Muller */

#endif
