#!/usr/bin/env bash
# install-deps.sh - the Debian packages ailora builds and tests with (Debian 12).
# Installs only what is missing; uses sudo when not root.
set -euo pipefail
packages=(
    build-essential autoconf automake libtool pkg-config gfortran
    openmpi-bin libopenmpi-dev              # MPI (mpicc, mpirun)
    libscalapack-openmpi-dev                # ScaLAPACK + BLACS (pdgesvd)
    libblis-dev liblapack-dev               # BLIS (BLAS), reference LAPACK (dgesdd)
    libhdf5-openmpi-dev hdf5-tools          # parallel HDF5, h5dump / h5ls
    libcjson-dev                            # config.json, safetensors headers
    libinih-dev                             # INI-style training configs
    libxxhash-dev                           # XXH3-128 fingerprints of model tensors (provenance)
    python3-numpy python3-pandas python3-h5py python3-matplotlib python3-scipy  # analysis/, tasks
    python3-xxhash                          # tests: fingerprints recomputed independently
    python3-nbclient python3-nbformat python3-ipykernel  # executing analysis/notebooks headless
    slurm-wlm munge                         # slurm/ sweeps and their single-node test cluster
    clang-14 libclang-rt-14-dev llvm-14     # tests/fuzz: libFuzzer + ASan/UBSan runtimes, llvm-symbolizer
    python3-venv python3-jinja2             # .venv (scripts/venv.sh); chat templates in experiments/data
    chromium                                # tests/report.sh: the HTML sweep report rendered headless
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} Debian packages present"
    bash "$(dirname "$0")/venv.sh"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
bash "$(dirname "$0")/venv.sh"
