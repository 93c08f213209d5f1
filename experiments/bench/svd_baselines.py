#!/usr/bin/env python3
"""svd_baselines.py DUMP_DIR - baselines for the cuSOLVER SVD timing of
tests/gpu/svd_check.c, on the same matrix in the same run.

Reads DUMP_DIR/W.bin (n x n float64, row-major), S.bin (the GPU's singular
values) and gpu.txt (n, median seconds) written by `svd_check --dump`, then times

  numpy.linalg.svd   LAPACK gesdd on the CPU, all cores (thread env set below)
  torch.linalg.svd   on the GPU in float64 (default driver, then driver="gesvd",
                     the algorithm ailora's backend uses)

each as the median of up to 3 runs after a small warm-up, stopping early when
a method has used its time budget (--budget seconds, default 25), and prints
the ratios cusolver / baseline (< 1: ailora's GPU path is faster). Each
baseline's S must agree with the GPU's within 1e-11 * smax (PASS/FAIL lines).
Exit status 1 if a check failed; a missing torch or GPU is a SKIP line.
"""
import os
import sys

# before numpy is imported: its BLAS/LAPACK reads these once
_cores = str(os.cpu_count() or 1)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _cores

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

TOL_S = 1e-11
failed = 0


def report(ok, text):
    global failed
    print(("PASS " if ok else "FAIL ") + text, flush=True)
    if not ok:
        failed += 1


def timed(run, budget, reps=3):
    """Median wall time of up to reps calls of run(), within budget seconds."""
    times, start, out = [], time.perf_counter(), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start + times[-1] > budget:
            break
    return statistics.median(times), times, out


def main():
    if len(sys.argv) < 2:
        print("usage: svd_baselines.py DUMP_DIR [--budget SECONDS]", file=sys.stderr)
        return 2
    dump = sys.argv[1]
    budget = float(sys.argv[sys.argv.index("--budget") + 1]) if "--budget" in sys.argv else 25.0
    meta = dict(line.split() for line in open(os.path.join(dump, "gpu.txt")) if line.strip())
    n, t_gpu = int(meta["n"]), float(meta["median_s"])
    W = np.fromfile(os.path.join(dump, "W.bin"), dtype="<f8").reshape(n, n)
    S_gpu = np.fromfile(os.path.join(dump, "S.bin"), dtype="<f8")
    smax = float(S_gpu[0])
    print(f"baselines on the same {n}x{n} float64 matrix; cusolver (svd_check) median {t_gpu:.3f} s")

    # numpy / LAPACK on the CPU
    np.linalg.svd(W[:256, :256])  # thread pool start-up
    med, times, (_, S_np, _) = timed(lambda: np.linalg.svd(W, full_matrices=False), budget)
    print(f"TIME numpy.linalg.svd (LAPACK gesdd, CPU, {_cores} threads): median {med:.3f} s of "
          f"{len(times)} run(s) {['%.3f' % t for t in times]}")
    err = float(np.max(np.abs(S_np - S_gpu))) / smax
    report(err <= TOL_S, f"numpy S vs cusolver S: max |dS| / smax = {err:.2e} (tol {TOL_S:.0e})")
    print(f"RATIO cusolver / numpy-cpu = {t_gpu / med:.3f} (numpy {med:.3f} s, cusolver {t_gpu:.3f} s)")

    # torch on the GPU
    try:
        import torch
    except ImportError as e:
        print(f"SKIP torch baseline: {e}")
        return 1 if failed else 0
    if not torch.cuda.is_available():
        print("SKIP torch baseline: torch.cuda.is_available() is False")
        return 1 if failed else 0
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
    A = torch.from_numpy(W).to("cuda")

    def gpu_svd(driver):
        def run():
            out = torch.linalg.svd(A, full_matrices=False, driver=driver)
            torch.cuda.synchronize()
            return out
        return run

    for driver in (None, "gesvd"):
        name = "default driver" if driver is None else f'driver="{driver}"'
        try:
            torch.linalg.svd(A[:256, :256], full_matrices=False, driver=driver)  # handles, workspace
            torch.cuda.synchronize()
            med, times, (_, S_t, _) = timed(gpu_svd(driver), budget)
        except Exception as e:  # a driver this build lacks must not end the run
            print(f"SKIP torch.linalg.svd {name}: {type(e).__name__}: {e}")
            continue
        print(f"TIME torch.linalg.svd ({name}, GPU, float64): median {med:.3f} s of "
              f"{len(times)} run(s) {['%.3f' % t for t in times]}")
        err = float((S_t.cpu().numpy() - S_gpu).__abs__().max()) / smax
        report(err <= TOL_S, f"torch ({name}) S vs cusolver S: max |dS| / smax = {err:.2e} "
               f"(tol {TOL_S:.0e})")
        print(f"RATIO cusolver / torch-gpu ({name}) = {t_gpu / med:.3f} "
              f"(torch {med:.3f} s, cusolver {t_gpu:.3f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
