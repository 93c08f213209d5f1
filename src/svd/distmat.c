/* distmat.c - BLACS grids on arbitrary communicators and block-cyclic matrices. */
#include "ailora/distmat.h"

#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "base/lapack.h"

void blacs_grid_shape(int nprocs, int *nprow, int *npcol) {
    int r = 1;
    for (int d = 1; d * d <= nprocs; d++)
        if (nprocs % d == 0) r = d;
    *nprow = r;
    *npcol = nprocs / r;
}

int blacs_grid_create(MPI_Comm comm, int nprow, int npcol, BlacsGrid *grid) {
    memset(grid, 0, sizeof *grid);
    int size;
    MPI_Comm_size(comm, &size);
    if (nprow * npcol != size)
        return AIL_ERROR(AIL_ERR_ARG, "grid %dx%d does not match %d ranks", nprow, npcol, size);
    if (MPI_Comm_dup(comm, &grid->comm) != MPI_SUCCESS)
        return AIL_ERROR(AIL_ERR_MPI, "MPI_Comm_dup failed");
    // A BLACS system handle of our own communicator makes the grid collective over
    // comm only, so sub-groups of ranks can build grids independently.
    grid->sys_handle = Csys2blacs_handle(grid->comm);
    grid->ctx = grid->sys_handle;
    Cblacs_gridinit(&grid->ctx, "Row", nprow, npcol);  // returns void: check gridinfo
    Cblacs_gridinfo(grid->ctx, &grid->nprow, &grid->npcol, &grid->myrow, &grid->mycol);
    if (grid->nprow != nprow || grid->npcol != npcol || grid->myrow < 0)
        return AIL_ERROR(AIL_ERR_LIB, "Cblacs_gridinit failed for a %dx%d grid", nprow, npcol);
    return AIL_OK;
}

void blacs_grid_free(BlacsGrid *grid) {
    if (grid->comm == MPI_COMM_NULL || grid->nprow == 0) return;
    Cblacs_gridexit(grid->ctx);
    Cfree_blacs_system_handle(grid->sys_handle);
    MPI_Comm_free(&grid->comm);
    memset(grid, 0, sizeof *grid);
}

int block_cyclic_count(int n, int nb, int iproc, int nprocs) {
    int zero = 0;
    return numroc_(&n, &nb, &iproc, &zero, &nprocs);
}

static int local_to_global(int iloc, int nb, int iproc, int nprocs) {
    return (iloc / nb) * nprocs * nb + iproc * nb + iloc % nb;
}

int distmat_row_global(const DistMatrix *a, int iloc) {
    return local_to_global(iloc, a->nb, a->grid->myrow, a->grid->nprow);
}

int distmat_col_global(const DistMatrix *a, int jloc) {
    return local_to_global(jloc, a->nb, a->grid->mycol, a->grid->npcol);
}

int distmat_create(const BlacsGrid *grid, int m, int n, int nb, DistMatrix *a) {
    memset(a, 0, sizeof *a);
    a->grid = grid;
    a->m = m;
    a->n = n;
    a->nb = nb;
    a->mloc = block_cyclic_count(m, nb, grid->myrow, grid->nprow);
    a->nloc = block_cyclic_count(n, nb, grid->mycol, grid->npcol);
    a->lld = a->mloc > 1 ? a->mloc : 1;
    int zero = 0, info;
    descinit_(a->desc, &m, &n, &nb, &nb, &zero, &zero, &grid->ctx, &a->lld, &info);
    if (info != 0) return AIL_ERROR(AIL_ERR_LIB, "descinit failed (info %d) for %dx%d", info, m, n);
    AIL_CALLOC(a->local, (size_t)a->lld * (size_t)(a->nloc > 0 ? a->nloc : 1));
    return AIL_OK;
}

void distmat_free(DistMatrix *a) {
    free(a->local);
    memset(a, 0, sizeof *a);
}

int distmat_load_weight_t(DistMatrix *a, const SafeTensor *w) {
    if (w->ndim != 2 || w->shape[0] != a->n || w->shape[1] != a->m)
        return AIL_ERROR(AIL_ERR_FORMAT, "tensor %s: shape does not match a %dx%d matrix", w->name,
                         a->n, a->m);
    size_t esize = dtype_size(w->dtype);
    const char *bytes = w->data;
    // local column jloc of W^T is (part of) row gj of W: contiguous in the file;
    // its local rows come in runs of up to nb consecutive global rows.
    for (int jloc = 0; jloc < a->nloc; jloc++) {
        size_t row_start = (size_t)distmat_col_global(a, jloc) * (size_t)a->m;
        for (int iloc = 0; iloc < a->mloc; iloc += a->nb) {
            int run = a->mloc - iloc < a->nb ? a->mloc - iloc : a->nb;
            size_t gi = (size_t)distmat_row_global(a, iloc);
            dtype_to_f64(w->dtype, bytes + (row_start + gi) * esize, (size_t)run,
                         a->local + (size_t)jloc * a->lld + iloc);
        }
    }
    return AIL_OK;
}

/* ---- HDF5 output of a distributed matrix ---- */

/* Selects, along one dataset dimension, the block-cyclic index set of one process:
 * full blocks via a strided hyperslab, and the trailing partial block if any. Fills
 * up to two (start, stride, count, block) runs; returns how many. */
typedef struct {
    hsize_t start, stride, count, block;
} Run;

static int cyclic_runs(int n, int nb, int iproc, int nprocs, Run runs[2]) {
    int nloc = block_cyclic_count(n, nb, iproc, nprocs);
    if (nloc == 0) return 0;
    int full = nloc / nb, rest = nloc % nb, nrun = 0;
    if (full > 0)
        runs[nrun++] = (Run){(hsize_t)iproc * nb, (hsize_t)nprocs * nb, (hsize_t)full, (hsize_t)nb};
    if (rest > 0)
        runs[nrun++] = (Run){(hsize_t)full * nprocs * nb + (hsize_t)iproc * nb, 1, 1, (hsize_t)rest};
    return nrun;
}

int distmat_write_h5_t(hid_t dset, const DistMatrix *a) {
    // dataset dims [C, R]: dataset rows are a's columns (process column mycol),
    // dataset columns are a's rows (process row myrow). HDF5 walks a selection in
    // row-major order, which is exactly the local column-major order when lld == mloc.
    hid_t fspace = H5Dget_space(dset);
    Run rrun[2], crun[2];
    int nr = cyclic_runs(a->n, a->nb, a->grid->mycol, a->grid->npcol, rrun);
    int nc = cyclic_runs(a->m, a->nb, a->grid->myrow, a->grid->nprow, crun);
    int first = 1;
    H5Sselect_none(fspace);
    for (int i = 0; i < nr; i++) {
        for (int j = 0; j < nc; j++) {
            hsize_t start[2] = {rrun[i].start, crun[j].start};
            hsize_t stride[2] = {rrun[i].stride, crun[j].stride};
            hsize_t count[2] = {rrun[i].count, crun[j].count};
            hsize_t block[2] = {rrun[i].block, crun[j].block};
            H5Sselect_hyperslab(fspace, first ? H5S_SELECT_SET : H5S_SELECT_OR, start, stride,
                                count, block);
            first = 0;
        }
    }
    hsize_t nsel = (hsize_t)a->mloc * (hsize_t)a->nloc;
    herr_t st = 0;
    if (nsel > 0) {
        hsize_t mdims[2] = {(hsize_t)a->nloc, (hsize_t)a->lld};
        hid_t mspace = H5Screate_simple(2, mdims, NULL);
        hsize_t mstart[2] = {0, 0}, mcount[2] = {(hsize_t)a->nloc, (hsize_t)a->mloc};
        H5Sselect_hyperslab(mspace, H5S_SELECT_SET, mstart, NULL, mcount, NULL);
        st = H5Dwrite(dset, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, a->local);
        H5Sclose(mspace);
    }
    H5Sclose(fspace);
    if (st < 0) return AIL_ERROR(AIL_ERR_IO, "HDF5 write of distributed blocks failed");
    return AIL_OK;
}

int distmat_write_h5_t_kept(hid_t dset, const DistMatrix *a, int axis, const int *pos) {
    // a point selection: the memory buffer is matched to the points in list order
    size_t count = 0;
    for (int il = 0; il < a->mloc; il++)
        for (int jl = 0; jl < a->nloc; jl++)
            if (pos[axis ? distmat_col_global(a, jl) : distmat_row_global(a, il)] >= 0) count++;
    double *buf = ail_malloc(sizeof(double) * (count + 1));
    hsize_t *coord = ail_malloc(sizeof(hsize_t) * 2 * (count + 1));
    if (!buf || !coord) {
        free(buf), free(coord);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory for the kept vectors' write");
    }
    size_t c = 0;
    for (int jl = 0; jl < a->nloc; jl++)
        for (int il = 0; il < a->mloc; il++) {
            int gi = distmat_row_global(a, il), gj = distmat_col_global(a, jl);
            int p = pos[axis ? gj : gi];
            if (p < 0) continue;
            // dataset [C', R]: a(gi, gj) goes to [gj][gi] with the kept axis renumbered
            coord[2 * c] = (hsize_t)(axis ? p : gj);
            coord[2 * c + 1] = (hsize_t)(axis ? gi : p);
            buf[c++] = a->local[(size_t)jl * a->lld + il];
        }
    hid_t fspace = H5Dget_space(dset);
    herr_t st = 0;
    if (count > 0) {
        hsize_t mdim[1] = {(hsize_t)count};
        hid_t mspace = H5Screate_simple(1, mdim, NULL);
        st = H5Sselect_elements(fspace, H5S_SELECT_SET, count, coord);
        if (st >= 0) st = H5Dwrite(dset, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, buf);
        H5Sclose(mspace);
    }
    H5Sclose(fspace);
    free(buf), free(coord);
    if (st < 0) return AIL_ERROR(AIL_ERR_IO, "HDF5 write of the kept vectors failed");
    return AIL_OK;
}
