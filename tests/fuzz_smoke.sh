# fuzz_smoke.sh - a short pass of every libFuzzer harness in tests/fuzz (see
# tests/fuzz/README.md): builds them with ASan + UBSan (tests/fuzz/build.sh), replays
# each seed corpus, then fuzzes each harness for FUZZ_SECONDS (default 10) seconds.
# Any crash, sanitizer report, leak, timeout or broken invariant fails the test and
# prints the reproducer. Without clang / libFuzzer the test is skipped, except in CI
# (CI=true), where a missing fuzzer is a failure: CI installs them.
. "${top_srcdir:-.}/tests/lib.sh"
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
BIN="$top_builddir/tests/fuzz/bin"
rc=0
sh "$top_srcdir/tests/fuzz/build.sh" "$top_builddir" "$BIN" > "$WORK/build.log" 2>&1 || rc=$?
if [ "$rc" -eq 77 ]; then
    cat "$WORK/build.log"
    if [ "${CI:-}" = true ]; then
        echo "FAIL: CI=true but the fuzzers cannot be built (scripts/install-deps.sh installs clang-14, libclang-rt-14-dev)"
        exit 1
    fi
    echo "SKIP: no clang with libFuzzer"
    exit 77
fi
if [ "$rc" -ne 0 ]; then
    echo "FAIL: building the fuzzers"
    tail -30 "$WORK/build.log"
    exit 1
fi
export AILORA_SRCDIR="$top_srcdir"  # fuzz_checkpoint loads tests/reference/train_llama
export UBSAN_OPTIONS=print_stacktrace=1
# readable stacks: Debian's llvm-14 installs llvm-symbolizer off PATH
if ! command -v llvm-symbolizer > /dev/null && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
    export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
for h in safetensors config_json trainconfig dataset svdcache checkpoint gguf; do
    seeds="$top_srcdir/tests/fuzz/corpus/$h"
    dict=""
    [ -f "$top_srcdir/tests/fuzz/$h.dict" ] && dict="-dict=$top_srcdir/tests/fuzz/$h.dict"
    mkdir -p "$WORK/$h"
    # replay: every seed once; then fuzz, new inputs going to a scratch corpus
    # shellcheck disable=SC2086
    check "$BIN/fuzz_$h" -runs=0 -artifact_prefix="$WORK/$h/" "$seeds"
    CHECKS=$((CHECKS + 1))
    # shellcheck disable=SC2086
    # a fixed seed (FUZZ_SEED, default 1): the smoke pass explores the same way on every run, so a
    # CI failure reproduces; longer, randomly seeded runs: tests/fuzz/long_run.sh
    if "$BIN/fuzz_$h" $dict -seed="${FUZZ_SEED:-1}" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$WORK/$h/" -print_final_stats=1 "$WORK/$h" "$seeds" > "$WORK/$h.log" 2>&1; then
        echo "fuzz_$h: $(grep -E '^stat::number_of_executed_units' "$WORK/$h.log" | awk '{print $2}') runs," \
             "$(grep -E '(DONE|pulse|NEW|REDUCE) +cov' "$WORK/$h.log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')"
    else
        fail "fuzz_$h found a crash (reproduce: tests/fuzz/bin/fuzz_$h CRASH_FILE)"
        grep -E -A12 'ERROR|runtime error|invariant violated' "$WORK/$h.log" | grep -v 'in fuzzer::' | head -30
        grep -E '^(Base64|artifact_prefix)' "$WORK/$h.log"
    fi
done
finish
