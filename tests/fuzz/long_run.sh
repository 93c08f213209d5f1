#!/bin/sh
# long_run.sh [SECONDS [HARNESS...]] - the long fuzzing runs of tests/fuzz/README.md:
# each harness (default: all six) in turn for SECONDS (default 600) under nice -n 19,
# one at a time, from the committed seeds, in a scratch corpus under
# ${FUZZ_RUNS:-/tmp/ailora-fuzz-runs}/<harness>. Builds the harnesses first
# (tests/fuzz/build.sh, into BUILDDIR/tests/fuzz/bin with BUILDDIR=${BUILDDIR:-.}).
# Writes the full libFuzzer log there and a condensed one (start, pulses, final
# statistics, any report) to tests/fuzz/logs/<harness>.log. Crashes land in
# <harness>/artifacts/; the script goes on with the next harness.
set -eu
srcdir=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-600}
[ $# -gt 0 ] && shift
harnesses=${*:-safetensors config_json trainconfig dataset svdcache checkpoint}
runs=${FUZZ_RUNS:-/tmp/ailora-fuzz-runs}
builddir=${BUILDDIR:-.}
sh "$srcdir/tests/fuzz/build.sh" "$builddir" "$builddir/tests/fuzz/bin"
bin=$(cd "$builddir/tests/fuzz/bin" && pwd)
mkdir -p "$srcdir/tests/fuzz/logs"
# readable stacks: Debian's llvm-14 installs llvm-symbolizer off PATH
if ! command -v llvm-symbolizer > /dev/null && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
    export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
for h in $harnesses; do
    rm -rf "${runs:?}/$h" && mkdir -p "$runs/$h/corpus" "$runs/$h/artifacts"
    dict=""
    [ -f "$srcdir/tests/fuzz/$h.dict" ] && dict="-dict=$srcdir/tests/fuzz/$h.dict"
    rc=0
    # shellcheck disable=SC2086
    (cd "$runs/$h" && AILORA_SRCDIR="$srcdir" UBSAN_OPTIONS=print_stacktrace=1 nice -n 19 "$bin/fuzz_$h" $dict \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$runs/$h/artifacts/" corpus "$srcdir/tests/fuzz/corpus/$h") > "$runs/$h.log" 2>&1 || rc=$?
    {
        echo "# fuzz_$h, $seconds s: tests/fuzz/long_run.sh $seconds $h (exit $rc)"
        grep -E '^(INFO|Dictionary)|INITED|pulse|DONE|^stat::|ERROR|SUMMARY|runtime error|invariant|Test unit written' "$runs/$h.log"
        echo "# corpus: $(ls "$runs/$h/corpus" | wc -l) new units; artifacts: $(ls "$runs/$h/artifacts" | wc -l)"
    } > "$srcdir/tests/fuzz/logs/$h.log"
    tail -n 3 "$srcdir/tests/fuzz/logs/$h.log"
done
