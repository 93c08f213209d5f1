#!/usr/bin/env bash
# device_bundle.sh BUILD_DIR OUT.tar.xz - packs a built ailora (CUDA build) with the
# shared libraries it needs beyond glibc and CUDA, and Open MPI's components, so
# that `ailora train device=cuda` (and, if made first with `make
# experiments/bench/gpu_gen_bench tests/gpu/test_gpu_decode`, the GPU decoder's
# test and benchmark) can run on a GPU machine that has CUDA but no
# MPI / HDF5 / BLIS packages (the lent device machine of experiments/bench/gpu.sh).
# Built on Debian 12 (glibc 2.36); runs where glibc is at least that. One rank:
# Open MPI's isolated singleton mode (no mpirun, no daemon).
set -euo pipefail
B=$(cd "$1" && pwd)
OUTFILE=$2
STAGE=$(mktemp -d /tmp/ailora-bundle-XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bundle/bin" "$STAGE/bundle/lib" "$STAGE/bundle/mca"
cp "$B/ailora" "$B/tests/h5compare" "$STAGE/bundle/bin/"
# the GPU decoder's test and its benchmark against the host decoder
# (experiments/bench/gpu_gen_bench.sh), when built
for p in experiments/bench/gpu_gen_bench tests/gpu/test_gpu_decode; do
    if [ -x "$B/$p" ]; then cp "$B/$p" "$STAGE/bundle/bin/"; fi
done
MCA=$(ompi_info --path pkglibdir --parsable 2>/dev/null | sed -n 's/^path:pkglibdir://p')
[ -d "$MCA" ] || MCA=/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
cp "$MCA"/mca_*.so "$STAGE/bundle/mca/"
# every library the programs and components load, except glibc's, the C++ runtime
# and CUDA's (the GPU machine has its own, matching its driver)
skip='/(libc|libm|libdl|librt|libpthread|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so|/usr/local/cuda|libcuda\.so|libnccl'
for f in "$STAGE"/bundle/bin/* "$STAGE"/bundle/mca/*.so; do
    ldd "$f" 2>/dev/null | awk '/=> \// {print $3}'
done | sort -u | grep -Ev "$skip" | while read -r lib; do cp -L "$lib" "$STAGE/bundle/lib/"; done
# Open MPI's help texts (its error messages) and config files
SHARE=$(ompi_info --path pkgdatadir --parsable 2>/dev/null | sed -n 's/^path:pkgdatadir://p')
[ -d "$SHARE" ] && cp -r "$SHARE" "$STAGE/bundle/share-openmpi"
tar -C "$STAGE" -cJf "$OUTFILE" bundle
du -h "$OUTFILE"
