/* lapack.h - prototypes for the Fortran LAPACK, BLACS and ScaLAPACK routines we call.
 *
 * Debian ships no C headers for ScaLAPACK (and we avoid LAPACKE for three calls).
 * Fortran passes everything by reference; every CHARACTER argument adds a hidden
 * size_t length at the end of the argument list (gfortran >= 8).
 */
#ifndef AILORA_LAPACK_H
#define AILORA_LAPACK_H

#include <mpi.h>
#include <stddef.h>

/* LAPACK */
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work,
             const int *lwork, int *iwork, int *info, size_t jobz_len);
void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work,
             const int *lwork, int *info);
void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda,
             const double *tau, double *work, const int *lwork, int *info);

/* Bidiagonal route of the selected-vector SVD (svd_select.c). */
void dgebrd_(const int *m, const int *n, double *a, const int *lda, double *d, double *e,
             double *tauq, double *taup, double *work, const int *lwork, int *info);
void dbdsqr_(const char *uplo, const int *n, const int *ncvt, const int *nru, const int *ncc,
             double *d, double *e, double *vt, const int *ldvt, double *u, const int *ldu,
             double *c, const int *ldc, double *work, int *info, size_t uplo_len);
void dbdsvdx_(const char *uplo, const char *jobz, const char *range, const int *n, const double *d,
              const double *e, const double *vl, const double *vu, const int *il, const int *iu,
              int *ns, double *s, double *z, const int *ldz, double *work, int *iwork, int *info,
              size_t uplo_len, size_t jobz_len, size_t range_len);
void dormbr_(const char *vect, const char *side, const char *trans, const int *m, const int *n,
             const int *k, const double *a, const int *lda, const double *tau, double *c,
             const int *ldc, double *work, const int *lwork, int *info, size_t vect_len,
             size_t side_len, size_t trans_len);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
/* Inverse iteration on a symmetric tridiagonal (diagonal d [n], off-diagonal e [n-1])
 * at given eigenvalues w [m], ascending within each block (iblock, isplit as dstebz
 * returns them); z [ldz, m]; work [5n], iwork [n], ifail [m]. */
void dstein_(const int *n, const double *d, const double *e, const int *m, const double *w,
             const int *iblock, const int *isplit, double *z, const int *ldz, double *work,
             int *iwork, int *ifail, int *info);

/* BLACS (C interface, part of libscalapack) */
void Cblacs_pinfo(int *mypnum, int *nprocs);
void Cblacs_get(int context, int request, int *value);
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *context, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int context);

/* ScaLAPACK tools */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb,
               const int *irsrc, const int *icsrc, const int *ictxt, const int *lld, int *info);

/* ScaLAPACK SVD: JOBU/JOBVT are 'V' or 'N'; MB must equal NB. */
void pdgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a,
              const int *ia, const int *ja, const int *desca, double *s, double *u, const int *iu,
              const int *ju, const int *descu, double *vt, const int *ivt, const int *jvt,
              const int *descvt, double *work, const int *lwork, int *info, size_t jobu_len,
              size_t jobvt_len);

/* ---- selected-vector SVD: bidiagonalization, bidiagonal SVD, back-transformation ---- */

/* LAPACK (dgebrd_, dormbr_ and dbdsvdx_ are also declared by the one-rank selected
 * route; the declarations are identical, so both may stand) */
void dgebrd_(const int *m, const int *n, double *a, const int *lda, double *d, double *e,
             double *tauq, double *taup, double *work, const int *lwork, int *info);
/* IL..IU count from the LARGEST singular value (IL = 1 is sigma_max); S comes back
 * descending (measured: the "ascending" of its documentation is wrong). Z: 2N x (N+1)
 * whatever the range (a split of B parks a vector in column N + 1). D and E are
 * written: entries below its splitting threshold are set to zero (idempotent). */
void dbdsvdx_(const char *uplo, const char *jobz, const char *range, const int *n, const double *d,
              const double *e, const double *vl, const double *vu, const int *il, const int *iu,
              int *ns, double *s, double *z, const int *ldz, double *work, int *iwork, int *info,
              size_t uplo_len, size_t jobz_len, size_t range_len);
void dbdsdc_(const char *uplo, const char *compq, const int *n, double *d, double *e, double *u,
             const int *ldu, double *vt, const int *ldvt, double *q, int *iq, double *work,
             int *iwork, int *info, size_t uplo_len, size_t compq_len);

/* ScaLAPACK / PBLAS */
void pdgebrd_(const int *m, const int *n, double *a, const int *ia, const int *ja, const int *desca,
              double *d, double *e, double *tauq, double *taup, double *work, const int *lwork,
              int *info);
void pdormbr_(const char *vect, const char *side, const char *trans, const int *m, const int *n,
              const int *k, const double *a, const int *ia, const int *ja, const int *desca,
              const double *tau, double *c, const int *ic, const int *jc, const int *descc,
              double *work, const int *lwork, int *info, size_t vect_len, size_t side_len,
              size_t trans_len);
/* pdormbr('P', 'L') with nq <= k checks a misaligned offset (JA instead of JA + 1)
 * and refuses every call: ailora calls the LQ back-transformation directly. */
void pdormlq_(const char *side, const char *trans, const int *m, const int *n, const int *k,
              const double *a, const int *ia, const int *ja, const int *desca, const double *tau,
              double *c, const int *ic, const int *jc, const int *descc, double *work,
              const int *lwork, int *info, size_t side_len, size_t trans_len);
/* C (m x n) := beta C + alpha A^T, A n x m */
void pdtran_(const int *m, const int *n, const double *alpha, const double *a, const int *ia,
             const int *ja, const int *desca, const double *beta, double *c, const int *ic,
             const int *jc, const int *descc);

#endif
