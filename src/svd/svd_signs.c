/* svd_signs.c - canonical signs of singular pairs (see svd_signs.h). */
#include "ailora/svd_signs.h"

#include <math.h>
#include <stddef.h>

void svd_canonical_signs(int m, int n, int k, double *U, double *Vt) {
    for (int j = 0; j < k; j++) {
        int imax = 0;
        double vmax = -1.0;
        for (int i = 0; i < m; i++)
            if (fabs(U[(size_t)i * k + j]) > vmax) vmax = fabs(U[(size_t)i * k + j]), imax = i;
        if (U[(size_t)imax * k + j] >= 0) continue;
        for (int i = 0; i < m; i++) U[(size_t)i * k + j] = -U[(size_t)i * k + j];
        for (int i = 0; i < n; i++) Vt[(size_t)j * n + i] = -Vt[(size_t)j * n + i];
    }
}
