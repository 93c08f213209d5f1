/* synth.h - synthetic LLaMA-shaped models with prescribed singular spectra.
 *
 * Used by the tests (ground-truth spectra), the benchmarks and the embedded
 * default: W = U diag(S) V^T with U, V Haar-random orthonormal (QR of a Gaussian
 * matrix, signs fixed by R's diagonal) and S chosen by a SpectrumKind.
 */
#ifndef AILORA_SYNTH_H
#define AILORA_SYNTH_H

#include <stdint.h>

#include "ailora/dtype.h"
#include "ailora/hfmodel.h"

typedef enum {
    SPECTRUM_GEOMETRIC = 0,  /* S_i = smax * 10^(-decades * i / (k-1)) */
    SPECTRUM_CLUSTER,        /* geometric for the first half, then a cluster of nearly
                                equal values at smax * 10^-decades (relative spacing 1e-6) */
    SPECTRUM_ZEROS           /* geometric, with the last quarter exactly zero */
} SpectrumKind;

int spectrum_parse(const char *name, SpectrumKind *kind);
/* S [k], descending. */
void spectrum_fill(SpectrumKind kind, int k, double smax, double decades, double *S);

/* Q [rows, cols] row-major with orthonormal columns (cols <= rows). */
int synth_orthonormal(int rows, int cols, uint64_t seed, uint64_t stream, double *Q);
/* W [m, n] = U diag(S) V^T; optional U_out [m, k] and Vt_out [k, n] receive the factors. */
int synth_matrix(int m, int n, const double *S, uint64_t seed, uint64_t stream, double *W,
                 double *U_out, double *Vt_out);

typedef struct {
    ModelConfig config;
    DType dtype;           /* storage dtype of all tensors */
    SpectrumKind spectrum;
    double decades;        /* spectrum span in powers of ten */
    double smax;           /* largest singular value of each linear weight */
    uint64_t seed;
    int shards;            /* 1 = model.safetensors, >1 = sharded with index.json */
    char structured[128];  /* target suffixes given the spectrum, e.g. "q_proj,v_proj";
                              other linear weights are Gaussian N(0, 1/n) (cheap) */
} SynthSpec;

/* Writes dir/config.json and the safetensors file(s) of a LLaMA model whose
 * structured linear layers have the prescribed spectrum (each its own random
 * factors). dir is created if needed; files are written whole or not at all. */
int synth_model_write(const char *dir, const SynthSpec *spec);

#endif
