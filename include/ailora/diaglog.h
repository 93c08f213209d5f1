/* diaglog.h - the spectral diagnostics a run records at every evaluation
 * (updatediag.h), kept in memory and written into the run file and checkpoints:
 *
 *   /diagnostics/step [count] int64                  attributes: K, rank
 *   /diagnostics/<module>/sigma [count, 2r]           singular values of the update
 *   /diagnostics/<module>/effective_rank [count]
 *   /diagnostics/<module>/energy_u_top, energy_u_bottom, energy_v_top, energy_v_bottom [count]
 *   /diagnostics/<module>/cos_u_top, cos_u_bottom, cos_v_top, cos_v_bottom [count, r]
 *
 * A checkpoint holds the same, so a resumed run's file has every evaluation's row.
 */
#ifndef AILORA_DIAGLOG_H
#define AILORA_DIAGLOG_H

#include <hdf5.h>

#include "ailora/hfmodel.h"
#include "ailora/updatediag.h"

typedef struct {
    int count, cap;
    int ntargets, r, K;   /* ntargets = 0: diagnostics off, nothing written */
    double *step;         /* [cap] */
    double *values;       /* [cap][ntargets][DIAGLOG_WIDTH(r)]: sigma, effective rank,
                             4 energies, 4 x r cosines */
} DiagLog;

#define DIAGLOG_WIDTH(r) (6 * (r) + 5)

void diaglog_init(DiagLog *log, int ntargets, int r, int K);
/* One evaluation: d[ntargets], in target order. */
int diaglog_append(DiagLog *log, long step, const UpdateDiag *d);
int diaglog_write(hid_t file, const DiagLog *log, const TargetModule *targets);
/* Restores the log from a checkpoint (path names it in errors); a checkpoint
 * without /diagnostics (diagnostics off, or older) restores an empty log. */
int diaglog_read(hid_t file, const char *path, DiagLog *log, const TargetModule *targets);
void diaglog_free(DiagLog *log);

#endif
