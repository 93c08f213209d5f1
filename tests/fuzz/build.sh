#!/bin/sh
# build.sh [BUILDDIR [OUTDIR]] - the libFuzzer harnesses of tests/fuzz, with ASan + UBSan.
#
# Compiles a private, instrumented copy of the library (every C file of src/ except
# the CLI and the CUDA sources: the CPU stubs stand in for those) with clang
# -fsanitize=fuzzer-no-link,address,undefined into OUTDIR/libailora-fuzz.a, then links
# each tests/fuzz/fuzz_*.c against it with -fsanitize=fuzzer,address,undefined.
# BUILDDIR is a configured build tree (for config.h; default: the source tree),
# OUTDIR defaults to BUILDDIR/tests/fuzz/bin. Needs clang and libFuzzer's runtime
# (Debian: clang-14 and libclang-rt-14-dev). Exit 77 when those are missing.
set -eu
srcdir=$(cd "$(dirname "$0")/../.." && pwd)
builddir=$(cd "${1:-$srcdir}" && pwd)
out=${2:-$builddir/tests/fuzz/bin}
CLANG=${CLANG:-$(command -v clang || command -v clang-14 || echo clang)}
JOBS=${JOBS:-2}

command -v "$CLANG" > /dev/null || { echo "build.sh: $CLANG not found (Debian: clang-14)"; exit 77; }
[ -f "$builddir/config.h" ] || { echo "build.sh: $builddir/config.h missing: run configure first"; exit 1; }
mkdir -p "$out/obj"
# libFuzzer's runtime ships separately from clang on Debian (libclang-rt-14-dev)
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' > "$out/probe.c"
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$out/probe.c" -o "$out/probe" 2> "$out/probe.err"; then
    echo "build.sh: $CLANG cannot link -fsanitize=fuzzer (Debian: libclang-rt-14-dev):"
    head -3 "$out/probe.err"
    exit 77
fi
rm -f "$out/probe" "$out/probe.c" "$out/probe.err"

# config.h without the CUDA backend: the fuzz library's GPU loader never loads a plugin
grep -v -e AILORA_HAVE_CUDA -e AILORA_HAVE_NCCL "$builddir/config.h" > "$out/config.h.new"
if cmp -s "$out/config.h.new" "$out/config.h"; then rm "$out/config.h.new"; else mv "$out/config.h.new" "$out/config.h"; fi

MPI_CFLAGS=$(mpicc -showme:compile)
MPI_LIBS=$(mpicc -showme:link)
PKG_CFLAGS=$(pkg-config --cflags hdf5-openmpi libcjson inih libxxhash)
PKG_LIBS=$(pkg-config --libs hdf5-openmpi libcjson inih libxxhash)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-std=c11 -O1 -g -D_GNU_SOURCE -Wno-unknown-pragmas $SAN"
INCS="-I$out -I$srcdir/include -I$srcdir/src $MPI_CFLAGS $PKG_CFLAGS"

sources=$(cd "$srcdir" && ls src/base/*.c src/io/*.c src/svd/*.c src/init/*.c src/model/*.c \
    src/eval/*.c src/train/*.c src/cuda/gpu_loader.c)
# compile JOBS files at a time; objects are rebuilt only when older than their source
# or any header
newest_header=$(ls -t "$srcdir"/include/ailora/*.h "$srcdir"/src/base/lapack.h "$out/config.h" | head -1)
objs=""
for s in $sources; do
    o="$out/obj/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')"
    objs="$objs $o"
    if [ ! -f "$o" ] || [ "$srcdir/$s" -nt "$o" ] || [ "$newest_header" -nt "$o" ]; then
        echo "$CLANG $CFLAGS -fsanitize=fuzzer-no-link $INCS -c $srcdir/$s -o $o"
    fi
done > "$out/compile.cmds"
if [ -s "$out/compile.cmds" ]; then
    echo "build.sh: compiling $(wc -l < "$out/compile.cmds") library files with $CLANG"
    tr '\n' '\0' < "$out/compile.cmds" | xargs -0 -P "$JOBS" -I{} sh -c '{}'
    rm -f "$out/libailora-fuzz.a"
fi
[ -f "$out/libailora-fuzz.a" ] || ar cr "$out/libailora-fuzz.a" $objs

# the numerical libraries configure found; llama.c calls omp_* (compiled here without
# -fopenmp, so serial) and takes them from gcc's libgomp
mkvar() { sed -n "s/^$1 = //p" "$builddir/Makefile"; }
LIBS="$out/libailora-fuzz.a $PKG_LIBS $(mkvar SCALAPACK_LIBS) $(mkvar LAPACK_LIBS) $(mkvar BLIS_LIBS) -lgfortran -lgomp $MPI_LIBS -lm"
for h in "$srcdir"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$h" .c)
    if [ ! -x "$out/$name" ] || [ "$h" -nt "$out/$name" ] || [ "$out/libailora-fuzz.a" -nt "$out/$name" ] ||
       [ "$srcdir/tests/fuzz/fuzz_common.h" -nt "$out/$name" ] || [ "$srcdir/tests/fuzz/h5gen.h" -nt "$out/$name" ]; then
        echo "build.sh: linking $name"
        # shellcheck disable=SC2086
        "$CLANG" $CFLAGS -fsanitize=fuzzer $INCS -DFUZZ_SRCDIR="\"$srcdir\"" "$h" -o "$out/$name" $LIBS
    fi
done
