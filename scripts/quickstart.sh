#!/usr/bin/env bash
# quickstart.sh - on a fresh Debian 12 machine: install the packages, build, run the
# embedded default job (experiments/default.sh). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure
make -j"$(getconf _NPROCESSORS_ONLN)"
bash experiments/default.sh .
