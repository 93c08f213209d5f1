/* distmat.h - BLACS process grids and block-cyclically distributed matrices.
 *
 * A DistMatrix is a global m x n column-major matrix split into nb x nb blocks
 * dealt round-robin over an nprow x npcol grid (ScaLAPACK's 2-D block-cyclic
 * layout, source process (0, 0)). Each rank stores its blocks as one local
 * column-major array (mloc x nloc, leading dimension lld).
 *
 * Model weights are row-major [m, n] (out x in). Read as column-major, those bytes
 * are W^T (n x m): ailora distributes and decomposes W^T, which needs no transpose
 * and lets each rank copy its blocks from contiguous runs of the mapped file.
 */
#ifndef AILORA_DISTMAT_H
#define AILORA_DISTMAT_H

#include <hdf5.h>
#include <mpi.h>

#include "ailora/safetensors.h"

typedef struct {
    MPI_Comm comm;   /* the ranks of this grid (a duplicate, owned) */
    int sys_handle;  /* BLACS system handle of comm */
    int ctx;         /* BLACS context */
    int nprow, npcol, myrow, mycol;
} BlacsGrid;

/* Most nearly square nprow x npcol = nprocs with nprow <= npcol. */
void blacs_grid_shape(int nprocs, int *nprow, int *npcol);
/* Collective over comm: a row-major nprow x npcol grid of comm's ranks. */
int blacs_grid_create(MPI_Comm comm, int nprow, int npcol, BlacsGrid *grid);
void blacs_grid_free(BlacsGrid *grid);

typedef struct {
    const BlacsGrid *grid;
    int m, n, nb;
    int mloc, nloc, lld;
    int desc[9];
    double *local;  /* mloc x nloc, column-major */
} DistMatrix;

int distmat_create(const BlacsGrid *grid, int m, int n, int nb, DistMatrix *a);
void distmat_free(DistMatrix *a);
/* Global index of local row / column (0-based). */
int distmat_row_global(const DistMatrix *a, int iloc);
int distmat_col_global(const DistMatrix *a, int jloc);
/* Number of local indices along a dimension of length n (ScaLAPACK numroc). */
int block_cyclic_count(int n, int nb, int iproc, int nprocs);

/* a (n x m, created by the caller) := W^T for a weight W [m, n] stored row-major in
 * tensor w (any dtype), converting to float64. Each rank reads only its blocks. */
int distmat_load_weight_t(DistMatrix *a, const SafeTensor *w);

/* Independent write of this rank's blocks of the global column-major matrix a
 * (R x C) into a row-major HDF5 dataset of dims [C, R]: dataset[j][i] = a(i, j). */
int distmat_write_h5_t(hid_t dset, const DistMatrix *a);
/* The same for a dataset holding only kept rows (axis 0) or columns (axis 1) of a:
 * pos[g] is the dataset position of a's global row / column g, or -1 (left out). */
int distmat_write_h5_t_kept(hid_t dset, const DistMatrix *a, int axis, const int *pos);

#endif
