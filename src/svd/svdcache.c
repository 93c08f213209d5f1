/* svdcache.c - compute all target SVDs by plan and write the SVD cache. */
#include "ailora/svdcache.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ailora/error.h"
#include "ailora/fileio.h"
#include "ailora/gpu_backend.h"
#include "ailora/gpu_svd.h"
#include "ailora/h5io.h"
#include "config.h"

double svd_default_rank_bytes(MPI_Comm comm) {
    MPI_Comm node;
    int per_node;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &per_node);
    MPI_Comm_free(&node);
    double bytes = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    double mine = 0.5 * bytes / per_node, least;
    MPI_Allreduce(&mine, &least, 1, MPI_DOUBLE, MPI_MIN, comm);  // same plan everywhere
    return least;
}

typedef struct {
    hid_t group, S, U, Vt;
    int nkept, *kept;  /* the kept indices (ascending); nkept == k: all */
    char fallback[200]; /* the selected-vector route's fallback, if any (task leader) */
} ModuleSets;

/* The kept index set of t (allocated before any collective dataset creation, so
 * that a rank failing here is agreed on before the others enter HDF5). */
static int module_kept(const TargetModule *t, int keep, ModuleSets *sets) {
    int kk = t->m < t->n ? t->m : t->n;
    AIL_CALLOC(sets->kept, kk);
    sets->nkept = svd_kept_indices(kk, keep, sets->kept);
    return AIL_OK;
}

/* Collective (parallel HDF5): every rank creates the same datasets. */
static int create_module_sets(hid_t file, const TargetModule *t, int vectors_f32, ModuleSets *sets) {
    char path[256];
    int kk = t->m < t->n ? t->m : t->n;
    hsize_t k = (hsize_t)kk, nk = (hsize_t)sets->nkept;
    hsize_t dS[1] = {k}, dU[2] = {(hsize_t)t->m, nk}, dVt[2] = {nk, (hsize_t)t->n};
    if (sets->nkept < kk) {  // partial: the index set, whose position j holds vector kept[j]
        hid_t dk;
        hsize_t dK[1] = {nk};
        snprintf(path, sizeof path, "/modules/%s/kept", t->name);
        AIL_CHECK(h5io_dataset_create(file, path, H5T_STD_I64LE, 1, dK, &dk));
        H5Dclose(dk);
    }
    snprintf(path, sizeof path, "/modules/%s/S", t->name);
    AIL_CHECK(h5io_dataset_create(file, path, H5T_IEEE_F64LE, 1, dS, &sets->S));
    snprintf(path, sizeof path, "/modules/%s/U", t->name);
    // float32 vectors: HDF5 rounds the float64 results once on writing (and widens
    // them again on reading, exactly)
    hid_t vtype = vectors_f32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
    AIL_CHECK(h5io_dataset_create(file, path, vtype, 2, dU, &sets->U));
    snprintf(path, sizeof path, "/modules/%s/Vt", t->name);
    AIL_CHECK(h5io_dataset_create(file, path, vtype, 2, dVt, &sets->Vt));
    snprintf(path, sizeof path, "/modules/%s", t->name);
    sets->group = H5Gopen2(file, path, H5P_DEFAULT);
    return sets->group < 0 ? AIL_ERROR(AIL_ERR_IO, "cannot open group %s", path) : AIL_OK;
}

static void close_module_sets(ModuleSets *sets) {
    hid_t *ids[4] = {&sets->S, &sets->U, &sets->Vt, &sets->group};
    for (int i = 0; i < 4; i++) {
        if (*ids[i] > 0) (i == 3 ? H5Gclose : H5Dclose)(*ids[i]);
        *ids[i] = 0;
    }
    free(sets->kept);
    sets->kept = NULL;
}

/* The kept index set, written by the rank that computed the module. */
static int write_kept(hid_t file, const TargetModule *t, const ModuleSets *sets) {
    int k = t->m < t->n ? t->m : t->n;
    if (sets->nkept == k) return AIL_OK;
    char path[256];
    snprintf(path, sizeof path, "/modules/%s/kept", t->name);
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0) return AIL_ERROR(AIL_ERR_IO, "cannot open %s", path);
    long long *v = ail_malloc(sizeof(long long) * (size_t)sets->nkept);
    int rc = v ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int j = 0; rc == AIL_OK && j < sets->nkept; j++) v[j] = sets->kept[j];
    if (rc == AIL_OK) rc = h5io_write_all(d, H5T_NATIVE_LLONG, v);
    free(v);
    H5Dclose(d);
    return rc;
}

/* cusolver: one GPU per rank, ranks of a node taking the node's devices in turn.
 * Collective; checked before the output file exists, so a failure leaves nothing. */
static int cusolver_setup(MPI_Comm comm) {
    MPI_Comm node;
    int local, rc = AIL_OK;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local);
    MPI_Comm_free(&node);
    const char *why = gpu_unavailable_reason();  // loads the CUDA plugin
    int count = why ? 0 : gpu_svd_available();
    if (why) rc = AIL_ERROR(AIL_ERR_ARG, "--backend cusolver: %s", why);
    else if (count <= 0) rc = AIL_ERROR(AIL_ERR_ARG, "--backend cusolver: no CUDA device visible");
    else rc = gpu_svd_set_device(local % count);
    return ail_error_agree(comm, rc);
}

/* Columns kept[] of U [m, k] and rows of Vt [k, n], in place, to U [m, nk], Vt [nk, n]. */
static void compact_kept(int m, int n, int k, int nk, const int *kept, double *U, double *Vt) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < nk; j++) U[(size_t)i * nk + j] = U[(size_t)i * k + kept[j]];
    for (int j = 0; j < nk; j++)
        memmove(Vt + (size_t)j * n, Vt + (size_t)kept[j] * n, sizeof(double) * (size_t)n);
}

/* One matrix on one rank with dgesdd or the selected-vector route: read it whole
 * from the mapping, decompose, write S and the kept vectors. (cuSOLVER: run_cusolver.) */
static int run_single(hid_t file, const TargetModule *t, SvdBackend backend, ModuleSets *sets) {
    int m = t->m, n = t->n, k = m < n ? m : n, nk = sets->nkept;
    int whole = backend != SVD_BACKEND_SELECT;
    double *w, *S, *U, *Vt;
    AIL_MALLOC(w, (size_t)m * n);
    dtype_to_f64(t->dtype, t->weight->data, (size_t)m * n, w);
    S = ail_malloc(sizeof(double) * (size_t)k);
    U = ail_malloc(sizeof(double) * (size_t)m * (whole ? k : nk));
    Vt = ail_malloc(sizeof(double) * (size_t)(whole ? k : nk) * n);
    int rc = (S && U && Vt) ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory for the SVD of %s", t->name);
    if (rc == AIL_OK && backend == SVD_BACKEND_SELECT) {
        SvdSelectInfo info;
        rc = svd_lapack_select(m, n, w, nk, sets->kept, S, U, Vt, &info);
        if (rc == AIL_OK && info.fallback) {
            snprintf(sets->fallback, sizeof sets->fallback, "%s", info.reason);
            fprintf(stderr, "ailora svd: %s: %s; dgesdd computed it\n", t->name, info.reason);
        } else if (rc == AIL_OK && info.redone)
            fprintf(stderr, "ailora svd: %s: inverse iteration at the dqds values failed its check on %d "
                    "index range(s); dbdsvdx computed them\n", t->name, info.redone);
    } else if (rc == AIL_OK) {
        rc = svd_lapack(m, n, w, S, U, Vt);
        if (rc == AIL_OK && nk < k) compact_kept(m, n, k, nk, sets->kept, U, Vt);
    }
    if (rc == AIL_OK) rc = write_kept(file, t, sets);
    if (rc == AIL_OK) rc = h5io_write_all(sets->S, H5T_NATIVE_DOUBLE, S);
    if (rc == AIL_OK) rc = h5io_write_all(sets->U, H5T_NATIVE_DOUBLE, U);
    if (rc == AIL_OK) rc = h5io_write_all(sets->Vt, H5T_NATIVE_DOUBLE, Vt);
    free(w);
    free(S);
    free(U);
    free(Vt);
    return rc;
}

/* Writes one matrix's cuSOLVER results (pinned host memory of the pipe). */
static int write_gpu_result(hid_t file, const TargetModule *t, const ModuleSets *sets, const GpuSvdResult *r) {
    if (r->nkept != sets->nkept)  // the pipe gathered what it was given: a mismatch is a bug
        return AIL_ERROR(AIL_ERR_LIB, "%s: %d kept vectors computed, %d expected", t->name, r->nkept, sets->nkept);
    AIL_CHECK(write_kept(file, t, sets));
    AIL_CHECK(h5io_write_all(sets->S, H5T_NATIVE_DOUBLE, r->S));
    AIL_CHECK(h5io_write_all(sets->U, H5T_NATIVE_DOUBLE, r->U));
    return h5io_write_all(sets->Vt, H5T_NATIVE_DOUBLE, r->Vt);
}

/* Converts matrix todo[j] to float64 straight into the slot's pinned input and
 * queues its SVD (only the kept vectors come back). */
static int stage_gpu(GpuSvdPipe *pipe, int slot, const TargetModule *t, const ModuleSets *sets) {
    double *w = gpu_svd_input(pipe, slot, t->m, t->n);
    if (!w) return ail_error_code();
    dtype_to_f64(t->dtype, t->weight->data, (size_t)t->m * t->n, w);
    return gpu_svd_submit(pipe, slot, t->m, t->n, sets->nkept, sets->kept);
}

static void print_task(const TargetModule *t, const SvdTask *task, double seconds) {
    printf("  svd %-40s %5dx%-5d %-7s grid %dx%d  %8.3f s\n", t->name, t->m, t->n, svd_backend_name(task->backend),
           task->nprow, task->npcol, seconds);
}

/* This rank's cuSOLVER tasks todo[0..count) of a phase, pipelined on two GPU slots:
 * while the GPU decomposes matrix j the host converts matrix j + 1 into the other
 * slot; while it decomposes j + 1 the host writes j's results. So at most two
 * matrices are staged (host memory: two slots' pinned buffers, grown to the
 * largest matrix; the largest go first) and the host waits only in gpu_svd_wait.
 * seconds[i]: from matrix i's conversion to its last write (the pipeline overlaps
 * them). On an error the pipe is freed (every stream waited for), nothing is left. */
#define GPU_SLOTS 2
static int run_cusolver(hid_t file, const SvdPlan *plan, const TargetModule *targets, ModuleSets *sets,
                        const int *todo, int count, int verbose, double *seconds) {
    if (count == 0) return AIL_OK;
    // largest first (insertion sort, count is small): a slot's buffers then grow
    // only for its first matrix, and growing (cudaFree) stalls the whole device
    int *order = ail_malloc(sizeof(int) * (size_t)count);
    if (!order) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int j = 0; j < count; j++) {
        int i = todo[j], p = j;
        double size = (double)targets[i].m * targets[i].n;
        for (; p > 0 && (double)targets[order[p - 1]].m * targets[order[p - 1]].n < size; p--)
            order[p] = order[p - 1];
        order[p] = i;
    }
    todo = order;
    GpuSvdPipe *pipe = NULL;
    double *t0 = ail_calloc((size_t)count, sizeof *t0);
    int rc = t0 ? gpu_svd_pipe_create(GPU_SLOTS, &pipe) : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK) {
        t0[0] = MPI_Wtime();
        rc = stage_gpu(pipe, 0, &targets[todo[0]], &sets[todo[0]]);
    }
    for (int j = 0; j < count && rc == AIL_OK; j++) {
        // matrix j is on the GPU; slot (j + 1) % 2 held j - 1, whose results are written
        if (j + 1 < count) {
            t0[j + 1] = MPI_Wtime();
            rc = stage_gpu(pipe, (j + 1) % GPU_SLOTS, &targets[todo[j + 1]], &sets[todo[j + 1]]);
        }
        GpuSvdResult res;
        int i = todo[j];
        if (rc == AIL_OK) rc = gpu_svd_wait(pipe, j % GPU_SLOTS, &res);
        if (rc == AIL_OK) rc = write_gpu_result(file, &targets[i], &sets[i], &res);
        if (rc == AIL_OK) {
            seconds[i] = MPI_Wtime() - t0[j];
            if (verbose) print_task(&targets[i], &plan->tasks[i], seconds[i]);
        }
    }
    gpu_svd_pipe_free(pipe);
    free(t0);
    free(order);
    return rc;
}

/* One matrix on the group's grid with pdgesvd; every rank writes its own blocks
 * (of the kept vectors only, for a partial cache). */
static int run_pdgesvd(hid_t file, const BlacsGrid *grid, const TargetModule *t, int nb, ModuleSets *sets) {
    DistSvd svd;
    AIL_CHECK(svd_pdgesvd(grid, t->weight, nb, &svd));
    int grank, rc = AIL_OK, k = svd.k;
    MPI_Comm_rank(grid->comm, &grank);
    if (grank == 0) rc = h5io_write_all(sets->S, H5T_NATIVE_DOUBLE, svd.S);
    if (grank == 0 && rc == AIL_OK) rc = write_kept(file, t, sets);
    if (sets->nkept == k) {
        if (rc == AIL_OK) rc = distmat_write_h5_t(sets->Vt, &svd.p);
        if (rc == AIL_OK) rc = distmat_write_h5_t(sets->U, &svd.qt);
    } else {
        int *pos = ail_malloc(sizeof(int) * (size_t)k);
        if (!pos && rc == AIL_OK) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
        if (pos) {
            for (int j = 0; j < k; j++) pos[j] = -1;
            for (int j = 0; j < sets->nkept; j++) pos[sets->kept[j]] = j;
        }
        if (rc == AIL_OK) rc = distmat_write_h5_t_kept(sets->Vt, &svd.p, 1, pos);  // p: n x k
        if (rc == AIL_OK) rc = distmat_write_h5_t_kept(sets->U, &svd.qt, 0, pos);  // qt: k x m
        free(pos);
    }
    dist_svd_free(&svd);
    return ail_error_agree(grid->comm, rc);  // the group's next pdgesvd is collective
}

/* One matrix on the group's grid with the distributed selected route: S and the
 * kept vectors only; every rank writes its own blocks. */
static int run_pdgebrd(hid_t file, const BlacsGrid *grid, const TargetModule *t, int nb, int keep,
                       ModuleSets *sets) {
    DistSelSvd svd;
    AIL_CHECK(svd_pdgebrd(grid, t->weight, nb, keep, &svd));
    int grank, rc = AIL_OK;
    MPI_Comm_rank(grid->comm, &grank);
    if (svd.p != sets->nkept)  // the same kept set by construction (svd_kept_indices)
        rc = AIL_ERROR(AIL_ERR_LIB, "%s: %d kept vectors computed, %d expected", t->name, svd.p, sets->nkept);
    if (rc == AIL_OK && grank == 0) rc = h5io_write_all(sets->S, H5T_NATIVE_DOUBLE, svd.S);
    if (rc == AIL_OK && grank == 0) rc = write_kept(file, t, sets);
    if (rc == AIL_OK) rc = distmat_write_h5_t(sets->Vt, &svd.vt);  // n x p -> Vt [p, n]
    if (rc == AIL_OK) rc = distmat_write_h5_t(sets->U, &svd.ut);   // p x m -> U [m, p]
    dist_sel_svd_free(&svd);
    return ail_error_agree(grid->comm, rc);
}

/* This rank's part of one phase of the plan. seconds[t] gets the wall time of the
 * tasks this rank led (group rank 0). */
static int run_phase(MPI_Comm comm, hid_t file, const SvdPlan *plan, int phase, const TargetModule *targets,
                     const SvdOptions *opt, ModuleSets *sets, double *seconds) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    const SvdPhase *ph = &plan->phases[phase];
    int group = rank / ph->group_size;
    int member = group < ph->ngroups;
    MPI_Comm gcomm;
    MPI_Comm_split(comm, member ? group : MPI_UNDEFINED, rank, &gcomm);
    if (!member) return AIL_OK;

    int rc = AIL_OK, grank, use_grid = 0;
    MPI_Comm_rank(gcomm, &grank);
    BlacsGrid grid = {0};
    for (int i = 0; i < plan->ntasks; i++) {
        const SvdTask *task = &plan->tasks[i];
        if (task->phase == phase && task->group == group &&
            (task->backend == SVD_BACKEND_PDGESVD || task->backend == SVD_BACKEND_PDGEBRD))
            use_grid = 1;
    }
    if (use_grid) {
        const SvdTask *any = NULL;
        for (int i = 0; i < plan->ntasks && !any; i++)
            if (plan->tasks[i].phase == phase) any = &plan->tasks[i];
        rc = ail_error_agree(gcomm, blacs_grid_create(gcomm, any->nprow, any->npcol, &grid));
    }
    int *gpu = ail_malloc(sizeof(int) * (size_t)(plan->ntasks + 1)), ngpu = 0;  // cuSOLVER: after the loop
    if (!gpu) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int i = 0; i < plan->ntasks && rc == AIL_OK; i++) {
        const SvdTask *task = &plan->tasks[i];
        if (task->phase != phase || task->group != group) continue;
        if (task->backend == SVD_BACKEND_CUSOLVER) {
            gpu[ngpu++] = i;
            continue;
        }
        double t0 = MPI_Wtime();
        svd_threads_set(use_grid ? 1 : plan->threads);  // what the plan priced (svd.h)
        rc = task->backend == SVD_BACKEND_PDGESVD
                 ? run_pdgesvd(file, &grid, &targets[i], opt->block_size, &sets[i])
             : task->backend == SVD_BACKEND_PDGEBRD
                 ? run_pdgebrd(file, &grid, &targets[i], opt->block_size, opt->keep, &sets[i])
                 : run_single(file, &targets[i], task->backend, &sets[i]);
        if (grank == 0) {
            seconds[i] = MPI_Wtime() - t0;
            if (opt->verbose) print_task(&targets[i], task, seconds[i]);
        }
    }
    if (rc == AIL_OK) rc = run_cusolver(file, plan, targets, sets, gpu, ngpu, opt->verbose && grank == 0, seconds);
    free(gpu);
    if (use_grid) blacs_grid_free(&grid);
    MPI_Comm_free(&gcomm);
    return rc;
}

static int write_attributes(hid_t file, const HFModel *model, const TargetModule *targets,
                            int ntargets, const SvdPlan *plan, const SvdOptions *opt, int nranks,
                            const double *seconds, double total, ModuleSets *sets,
                            const char *model_fp, char (*fps)[FINGERPRINT_HEX]) {
    char targets_csv[256], grid[32];
    target_suffixes(targets, ntargets, targets_csv, sizeof targets_csv);
    AIL_CHECK(h5io_attr_str(file, "format", SVDCACHE_FORMAT));
    AIL_CHECK(h5io_attr_str(file, "version", PACKAGE_VERSION));
    AIL_CHECK(h5io_attr_str(file, "model", model->dir));
    AIL_CHECK(h5io_attr_str(file, "targets", targets_csv));
    AIL_CHECK(h5io_attr_str(file, "backend", svd_backend_name(opt->backend)));
    AIL_CHECK(h5io_attr_int(file, "nranks", nranks));
    AIL_CHECK(h5io_attr_int(file, "threads_per_rank", plan->threads));
    AIL_CHECK(h5io_attr_int(file, "block_size", opt->block_size));
    AIL_CHECK(h5io_attr_int(file, "keep", opt->keep));  // 0: all vectors
    AIL_CHECK(h5io_attr_str(file, "vectors_dtype", opt->vectors_f32 ? "float32" : "float64"));
    AIL_CHECK(h5io_attr_double(file, "wall_time_s", total));
    AIL_CHECK(h5io_attr_str(file, "model_fingerprint", model_fp));
    AIL_CHECK(h5io_attr_str(file, "fingerprint_algorithm", FINGERPRINT_ALGORITHM));
    for (int i = 0; i < ntargets; i++) {
        const TargetModule *t = &targets[i];
        const SvdTask *task = &plan->tasks[i];
        snprintf(grid, sizeof grid, "%dx%d", task->nprow, task->npcol);
        AIL_CHECK(h5io_attr_int(sets[i].group, "m", t->m));
        AIL_CHECK(h5io_attr_int(sets[i].group, "n", t->n));
        AIL_CHECK(h5io_attr_int(sets[i].group, "k", t->m < t->n ? t->m : t->n));
        AIL_CHECK(h5io_attr_str(sets[i].group, "source_dtype", dtype_name(t->dtype)));
        AIL_CHECK(h5io_attr_str(sets[i].group, "backend", svd_backend_name(task->backend)));
        AIL_CHECK(h5io_attr_str(sets[i].group, "grid", grid));
        AIL_CHECK(h5io_attr_double(sets[i].group, "wall_time_s", seconds[i]));
        AIL_CHECK(h5io_attr_str(sets[i].group, "fingerprint", fps[i]));
        if (sets[i].fallback[0]) AIL_CHECK(h5io_attr_str(sets[i].group, "fallback", sets[i].fallback));
    }
    return AIL_OK;
}

int svdcache_write(MPI_Comm comm, const HFModel *model, const TargetModule *targets, int ntargets,
                   const SvdOptions *opt, const char *out_path) {
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    double t_start = MPI_Wtime();
    SvdPlan plan;
    int threads;
    if (opt->keep < 0) return AIL_ERROR(AIL_ERR_ARG, "--keep %d: must be >= 1 (or all)", opt->keep);
    AIL_CHECK(svd_threads_resolve(comm, opt->threads, &threads));
    AIL_CHECK(ail_error_agree(comm, svd_plan_make_threads(opt->backend, targets, ntargets, nranks, threads,
                                                          opt->max_rank_bytes, opt->group_ranks, opt->keep, &plan)));
    if (opt->verbose && rank == 0)
        for (int p = 0; p < plan.nphases; p++)
            printf("svd plan: phase %d: %d group(s) of %d rank(s)\n", p, plan.phases[p].ngroups,
                   plan.phases[p].group_size);
    if (opt->verbose && rank == 0)
        printf("svd threads: %d per rank for dgesdd / select (grid routes: 1)\n", threads);

    if (opt->backend == SVD_BACKEND_CUSOLVER) {
        int rc = cusolver_setup(comm);
        if (rc != AIL_OK) {
            svd_plan_free(&plan);
            return rc;
        }
    }
    int blis_before = svd_threads_set(threads);  // restored at the end
    char partial[4096];
    file_partial_path(out_path, partial, sizeof partial);
    hid_t file = -1;
    ModuleSets *sets = ail_calloc((size_t)ntargets, sizeof *sets);
    double *seconds = ail_calloc((size_t)ntargets, sizeof *seconds);
    char(*fps)[FINGERPRINT_HEX] = ail_calloc((size_t)ntargets + 1, sizeof *fps);
    const SafeTensor **weights = ail_calloc((size_t)ntargets + 1, sizeof *weights);
    char model_fp[FINGERPRINT_HEX] = "";
    int rc = (sets && seconds && fps && weights) ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    rc = ail_error_agree(comm, rc);
    // provenance first: the source tensors' fingerprints go into the cache
    for (int i = 0; i < ntargets && rc == AIL_OK; i++) weights[i] = targets[i].weight;
    if (rc == AIL_OK) rc = ail_error_agree(comm, fingerprint_tensors(comm, weights, ntargets, fps));
    if (rc == AIL_OK) rc = fingerprint_model(comm, model, model_fp);
    if (rc == AIL_OK) rc = ail_error_agree(comm, h5io_create_parallel(partial, comm, &file));
    for (int i = 0; i < ntargets && rc == AIL_OK; i++) rc = module_kept(&targets[i], opt->keep, &sets[i]);
    rc = ail_error_agree(comm, rc);
    for (int i = 0; i < ntargets && rc == AIL_OK; i++) rc = create_module_sets(file, &targets[i], opt->vectors_f32, &sets[i]);
    rc = ail_error_agree(comm, rc);
    for (int p = 0; p < plan.nphases && rc == AIL_OK; p++)
        rc = ail_error_agree(comm, run_phase(comm, file, &plan, p, targets, opt, sets, seconds));
    if (rc == AIL_OK) {
        MPI_Allreduce(MPI_IN_PLACE, seconds, ntargets, MPI_DOUBLE, MPI_MAX, comm);
        for (int i = 0; i < ntargets; i++)  // only the rank that computed it has the reason
            MPI_Allreduce(MPI_IN_PLACE, sets[i].fallback, (int)sizeof sets[i].fallback, MPI_UNSIGNED_CHAR,
                          MPI_MAX, comm);
        double total = MPI_Wtime() - t_start;
        MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_DOUBLE, MPI_MAX, comm);
        rc = ail_error_agree(comm, write_attributes(file, model, targets, ntargets, &plan, opt,
                                                    nranks, seconds, total, sets, model_fp, fps));
    }
    for (int i = 0; i < ntargets && sets; i++) close_module_sets(&sets[i]);
    if (file >= 0 && H5Fclose(file) < 0 && rc == AIL_OK)
        rc = AIL_ERROR(AIL_ERR_IO, "closing %s failed", partial);
    rc = ail_error_agree(comm, rc);
    if (rank == 0) {
        if (rc == AIL_OK) rc = file_commit(out_path);
        else remove(partial);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, comm);
    if (rc != AIL_OK) rc = ail_error_agree(comm, rc);
    free(sets);
    free(seconds);
    free(fps);
    free(weights);
    svd_plan_free(&plan);
    svd_threads_set(blis_before);
    return rc;
}

/* Reads /modules/<t>/kept [nk] (absent: all k) and checks it: ascending, in [0, k). */
static int read_kept(hid_t file, const char *path, const TargetModule *t, int *nkept, int **kept) {
    int k = t->m < t->n ? t->m : t->n;
    char dpath[300];
    snprintf(dpath, sizeof dpath, "/modules/%s/kept", t->name);
    *kept = NULL;
    if (H5Lexists(file, dpath, H5P_DEFAULT) <= 0) {  // a whole cache (the layout before --keep)
        AIL_CALLOC(*kept, k);
        for (int j = 0; j < k; j++) (*kept)[j] = j;
        *nkept = k;
        return AIL_OK;
    }
    hid_t d = H5Dopen2(file, dpath, H5P_DEFAULT);
    if (d < 0) return AIL_ERROR(AIL_ERR_FORMAT, "%s: cannot open %s", path, dpath);
    hid_t space = H5Dget_space(d);
    hsize_t dims[1] = {0};
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd == 1) H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    int rc = nd == 1 && dims[0] >= 1 && dims[0] <= (hsize_t)k
                 ? AIL_OK
                 : AIL_ERROR(AIL_ERR_FORMAT, "%s: %s must be 1-D with 1 to %d entries", path, dpath, k);
    long long *v = NULL;
    if (rc == AIL_OK && !(v = ail_malloc(sizeof(long long) * (size_t)dims[0]))) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    if (rc == AIL_OK && (AIL_FAULT("read") || H5Dread(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0))
        rc = AIL_ERROR(AIL_ERR_IO, "%s: cannot read %s", path, dpath);
    H5Dclose(d);
    if (rc == AIL_OK && !(*kept = ail_malloc(sizeof(int) * (size_t)dims[0]))) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (hsize_t j = 0; rc == AIL_OK && j < dims[0]; j++) {
        if (v[j] < 0 || v[j] >= k || (j > 0 && v[j] <= v[j - 1]))
            rc = AIL_ERROR(AIL_ERR_FORMAT, "%s: %s[%llu] = %lld is out of [0, %d) or not ascending", path, dpath,
                           (unsigned long long)j, v[j], k);
        else
            (*kept)[j] = (int)v[j];
    }
    free(v);
    if (rc != AIL_OK) {
        free(*kept);
        *kept = NULL;
        return rc;
    }
    *nkept = (int)dims[0];
    return AIL_OK;
}

int svdcache_open(const char *path, const TargetModule *targets, int ntargets, hid_t *file) {
    AIL_CHECK(h5io_open_read(path, file));
    char format[64] = "";
    int rc = h5io_attr_read_str(*file, "format", format, sizeof format);
    if (rc != AIL_OK || strcmp(format, SVDCACHE_FORMAT) != 0) {
        H5Fclose(*file);
        ail_error_clear();
        return AIL_ERROR(AIL_ERR_FORMAT, "%s is not an ailora SVD cache (format attribute \"%s\")",
                         path, format);
    }
    for (int i = 0; i < ntargets; i++) {
        // every reader relies on S [k], U [m, nk], Vt [nk, n] and kept [nk] (nk = k
        // without kept): check them here, before anything is allocated from the
        // shapes the file declares
        int m = targets[i].m, n = targets[i].n, k = m < n ? m : n, nk = k, *kept = NULL;
        int ok = H5Lexists(*file, "/modules", H5P_DEFAULT) > 0;
        char gpath[300];
        snprintf(gpath, sizeof gpath, "/modules/%s", targets[i].name);
        ok = ok && H5Lexists(*file, gpath, H5P_DEFAULT) > 0;
        if (ok && read_kept(*file, path, &targets[i], &nk, &kept) != AIL_OK) {
            H5Fclose(*file);
            return ail_error_code();
        }
        free(kept);
        const char *leaf[3] = {"S", "U", "Vt"};
        const int nd[3] = {1, 2, 2};
        const hsize_t want[3][2] = {{(hsize_t)k, 0}, {(hsize_t)m, (hsize_t)nk}, {(hsize_t)nk, (hsize_t)n}};
        for (int j = 0; j < 3 && ok; j++) {
            char dpath[320];
            snprintf(dpath, sizeof dpath, "/modules/%s/%s", targets[i].name, leaf[j]);
            hid_t dset = H5Lexists(*file, dpath, H5P_DEFAULT) > 0 ? H5Dopen2(*file, dpath, H5P_DEFAULT) : -1;
            hsize_t dims[2] = {0, 0};
            int ndims = -1;
            if (dset >= 0) {
                hid_t space = H5Dget_space(dset);
                ndims = H5Sget_simple_extent_ndims(space);
                if (ndims == nd[j]) H5Sget_simple_extent_dims(space, dims, NULL);
                H5Sclose(space);
                H5Dclose(dset);
            }
            ok = ndims == nd[j] && dims[0] == want[j][0] && dims[1] == want[j][1];
        }
        if (!ok) {
            H5Fclose(*file);
            return AIL_ERROR(AIL_ERR_FORMAT, "%s: no SVD of %s (%dx%d) in the cache", path,
                             targets[i].name, targets[i].m, targets[i].n);
        }
    }
    return AIL_OK;
}

/* "a-b, c and d-e" for the ascending list v[0..n) (at most len bytes). */
static void format_ranges(const int *v, int n, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    int nruns = 0;
    for (int i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && v[j] == v[j - 1] + 1;) j++;
        nruns++;
    }
    for (int i = 0, j, r = 0; i < n && used < len; i = j, r++) {
        for (j = i + 1; j < n && v[j] == v[j - 1] + 1;) j++;
        const char *sep = r == 0 ? "" : r == nruns - 1 ? " and " : ", ";
        int w = j - i > 1 ? snprintf(buf + used, len - used, "%s%d-%d", sep, v[i], v[j - 1])
                          : snprintf(buf + used, len - used, "%s%d", sep, v[i]);
        used += w > 0 ? (size_t)w : 0;
    }
}

int svdcache_kept(hid_t cache, const TargetModule *t, int *nkept, int **kept) {
    char path[1024] = "";
    if (H5Fget_name(cache, path, sizeof path) < 0) snprintf(path, sizeof path, "the SVD cache");
    return read_kept(cache, path, t, nkept, kept);
}

int svdcache_read_vectors(hid_t cache, const TargetModule *t, const char *what, int nsel, const int *sel,
                          double *U_I, double *Vt_I) {
    char path[1024] = "";
    if (H5Fget_name(cache, path, sizeof path) < 0) snprintf(path, sizeof path, "the SVD cache");
    int nk, *kept, rc;
    AIL_CHECK(read_kept(cache, path, t, &nk, &kept));
    int *pos = ail_malloc(sizeof(int) * (size_t)(nsel ? nsel : 1));
    int *missing = ail_malloc(sizeof(int) * (size_t)(nsel ? nsel : 1)), nmiss = 0;
    rc = pos && missing ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int j = 0, c = 0; rc == AIL_OK && j < nsel; j++) {  // both ascending: one merge
        while (c < nk && kept[c] < sel[j]) c++;
        if (c < nk && kept[c] == sel[j]) pos[j] = c;
        else missing[nmiss++] = sel[j];
    }
    if (rc == AIL_OK && nmiss > 0) {
        char have[256], need[256], lack[256];
        format_ranges(kept, nk, have, sizeof have);
        format_ranges(sel, nsel, need, sizeof need);
        format_ranges(missing, nmiss, lack, sizeof lack);
        rc = AIL_ERROR(AIL_ERR_ARG, "%s: %s keeps indices %s; %s needs %s (missing %s): recompute the "
                       "cache with a larger `ailora svd --keep` (or all)", path, t->name, have, what, need, lack);
    }
    char dpath[300];
    snprintf(dpath, sizeof dpath, "/modules/%s/U", t->name);
    if (rc == AIL_OK) rc = h5io_read_selected(cache, dpath, 1, nsel, pos, U_I);
    snprintf(dpath, sizeof dpath, "/modules/%s/Vt", t->name);
    if (rc == AIL_OK) rc = h5io_read_selected(cache, dpath, 0, nsel, pos, Vt_I);
    free(kept), free(pos), free(missing);
    return rc;
}

/* Module i's checks against its source weight (serial). */
static int verify_module(const char *path, hid_t cache, const TargetModule *t, const char *fp) {
    char group[256], have[FINGERPRINT_HEX + 8] = "";
    snprintf(group, sizeof group, "/modules/%s", t->name);
    hid_t g = H5Gopen2(cache, group, H5P_DEFAULT);
    if (g < 0) return AIL_ERROR(AIL_ERR_FORMAT, "%s: no group %s", path, group);
    int has = H5Aexists(g, "fingerprint") > 0;
    int rc = has ? h5io_attr_read_str(g, "fingerprint", have, sizeof have) : AIL_OK;
    H5Gclose(g);
    AIL_CHECK(rc);
    if (!has)
        return AIL_ERROR(AIL_ERR_FORMAT,
                         "SVD cache %s has no source fingerprints (written by an older ailora): "
                         "recompute it with `ailora svd`", path);
    if (strcmp(have, fp) != 0)
        return AIL_ERROR(AIL_ERR_ARG,
                         "SVD cache %s was computed from a different %s (fingerprint %.12s.. != %.12s..)",
                         path, t->name, have, fp);
    // cheap numeric check: the spectrum carries the whole Frobenius norm of W
    char dpath[300];
    snprintf(dpath, sizeof dpath, "/modules/%s/S", t->name);
    hsize_t dims[1];
    double *S;
    AIL_CHECK(h5io_read_f64(cache, dpath, 1, dims, &S));
    double s2 = 0.0, w2 = 0.0;
    for (hsize_t i = 0; i < dims[0]; i++) s2 += S[i] * S[i];
    free(S);
    size_t count = (size_t)t->m * t->n, chunk = 1 << 14;
    double buf[1 << 14];  // 128 KiB: the weight is streamed, never held whole
    for (size_t done = 0; done < count; done += chunk) {
        size_t c = count - done < chunk ? count - done : chunk;
        dtype_to_f64(t->dtype, (const char *)t->weight->data + done * dtype_size(t->dtype), c, buf);
        for (size_t i = 0; i < c; i++) w2 += buf[i] * buf[i];
    }
    double rel = fabs(s2 - w2) / (w2 > 0 ? w2 : 1.0);
    if (!(rel <= SVDCACHE_NORM_RTOL))
        return AIL_ERROR(AIL_ERR_FORMAT,
                         "SVD cache %s: the singular values of %s do not match its weights "
                         "(sum S^2 = %.17g, ||W||_F^2 = %.17g, relative difference %.3g > %g): "
                         "the cache is corrupt, recompute it",
                         path, t->name, s2, w2, rel, SVDCACHE_NORM_RTOL);
    return AIL_OK;
}

int svdcache_verify(MPI_Comm comm, const char *path, hid_t cache, const TargetModule *targets,
                    int ntargets, char (*fps)[FINGERPRINT_HEX]) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    char(*mine)[FINGERPRINT_HEX] = ail_calloc((size_t)ntargets + 1, sizeof *mine);
    const SafeTensor **weights = ail_calloc((size_t)ntargets + 1, sizeof *weights);
    int rc = mine && weights ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    rc = ail_error_agree(comm, rc);
    for (int i = 0; i < ntargets && rc == AIL_OK; i++) weights[i] = targets[i].weight;
    // the same dealing (i % size) hashes and checks module i: its bytes are read once
    if (rc == AIL_OK) rc = ail_error_agree(comm, fingerprint_tensors(comm, weights, ntargets, mine));
    for (int i = rank; i < ntargets && rc == AIL_OK; i += size) rc = verify_module(path, cache, &targets[i], mine[i]);
    rc = ail_error_agree(comm, rc);
    if (rc == AIL_OK && fps) memcpy(fps, mine, sizeof *mine * (size_t)ntargets);
    free(mine);
    free(weights);
    return rc;
}

int svdcache_fingerprints(hid_t cache, const TargetModule *targets, int ntargets,
                          char (*fps)[FINGERPRINT_HEX], char *model_fp) {
    char group[300];
    for (int i = 0; i < ntargets; i++) {
        snprintf(group, sizeof group, "/modules/%s", targets[i].name);
        hid_t g = H5Gopen2(cache, group, H5P_DEFAULT);
        if (g < 0) return AIL_ERROR(AIL_ERR_FORMAT, "SVD cache: no group %s", group);
        int rc = h5io_attr_read_str(g, "fingerprint", fps[i], FINGERPRINT_HEX);
        H5Gclose(g);
        AIL_CHECK(rc);
    }
    return model_fp ? h5io_attr_read_str(cache, "model_fingerprint", model_fp, FINGERPRINT_HEX) : AIL_OK;
}
