#!/usr/bin/env bash
# svd_rates_dist.sh BUILD_DIR [SIZE] - measures the per-core rates of the SVD
# kernels (svd.h SvdRates) with bench_svd_rates: on 1 rank dgesdd, pdgebrd,
# dbdsvdx / dbdsdc, pdormbr, pdgesvd, reads and HDF5 writes of a SIZE x SIZE
# Gaussian matrix (default 2048, keep 64); on 2 ranks pdgebrd's synchronization
# cost per column. Writes experiments/bench/results/rates_<date>.txt, the file
# `ailora svd --plan --rates FILE` and AILORA_SVD_RATES read; the built-in table
# (svd.h SVD_RATE_*) is the one measured on the development machine.
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
N=${2:-2048}
BENCH="$B/experiments/bench/bench_svd_rates"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
mkdir -p "$B/experiments/bench/results"
R="$B/experiments/bench/results/rates_$(date +%Y%m%d_%H%M%S).txt"
echo "# load $(cut -d' ' -f1-3 /proc/loadavg)"
mpirun -np 1 --bind-to none "$BENCH" --m "$N" --n "$N" --keep 64 --gesdd --all --pdgesvd --out "$R.np1"
mpirun -np 2 --bind-to none "$BENCH" --m "$N" --n "$N" --keep 64 --base "$R.np1" --out "$R"
rm -f "$R.np1"
echo "rates: $R"
