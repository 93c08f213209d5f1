# The skip policy (tests/lib.sh skip, tests/ci_skips.sh, tests/summary.sh) on
# stand-in tests: a skip after a failed check fails; under CI=true a skip fails
# with its reason unless tests/ci_skips.sh allows that test on this machine
# (gpu_emu.sh only in a build without CUDA); summary.sh counts a forbidden skip
# as a failure and exits 1.
. "${top_srcdir:-.}/tests/lib.sh"
LIB=$(cd "$top_srcdir/tests" && pwd)/lib.sh
mkdir -p "$WORK/t" "$WORK/nocuda" "$WORK/cuda"
echo "#define AILORA_HAVE_CUDA 1" > "$WORK/cuda/config.h"
: > "$WORK/nocuda/config.h"
stand_in() {  # stand_in NAME BODY: a test script NAME that sources lib.sh
    printf '. "%s"\n%s\n' "$LIB" "$2" > "$WORK/t/$1"
}
expect_rc() {  # expect_rc RC GREP CMD...: CMD exits RC and prints GREP
    local want=$1 text=$2 rc=0
    shift 2
    CHECKS=$((CHECKS + 1))
    "$@" > "$WORK/out.txt" 2>&1 || rc=$?
    [ "$rc" -eq "$want" ] && grep -qF -- "$text" "$WORK/out.txt" ||
        fail "$* exited $rc (want $want, \"$text\"): $(cat "$WORK/out.txt")"
}
stand_in notebooks.sh 'skip "no nbclient"'
stand_in gpu_emu.sh 'skip "built without CUDA"'
stand_in analysis.sh 'fail "a broken check"; skip "no pandas"'
expect_rc 77 "SKIP: no nbclient" env -u CI top_srcdir="$top_srcdir" bash "$WORK/t/notebooks.sh"
expect_rc 1 "notebooks.sh must not skip on CI: no nbclient" env CI=true top_srcdir="$top_srcdir" bash "$WORK/t/notebooks.sh"
expect_rc 1 "1 check(s) failed before the skip (no pandas)" env -u CI top_srcdir="$top_srcdir" bash "$WORK/t/analysis.sh"
expect_rc 77 "SKIP: built without CUDA" env CI=true top_srcdir="$top_srcdir" top_builddir="$WORK/nocuda" bash "$WORK/t/gpu_emu.sh"
expect_rc 1 "gpu_emu.sh must not skip on CI" env CI=true top_srcdir="$top_srcdir" top_builddir="$WORK/cuda" bash "$WORK/t/gpu_emu.sh"
# summary.sh on automake's result files (named without .sh)
mkdir -p "$WORK/trs"
printf ':test-result: PASS\n' > "$WORK/trs/test_dtype.trs"
printf ':test-result: SKIP\n' > "$WORK/trs/gpu_emu.trs"
printf ':test-result: SKIP\n' > "$WORK/trs/notebooks.trs"
echo "SKIP: no nbclient" > "$WORK/trs/notebooks.log"
expect_rc 0 "1 passed, 0 failed, 2 skipped" env -u CI top_builddir="$WORK/cuda" sh "$top_srcdir/tests/summary.sh" "$WORK/trs"
expect_rc 1 "FAIL: notebooks skipped on CI (SKIP: no nbclient)" env CI=true top_builddir="$WORK/nocuda" \
    sh "$top_srcdir/tests/summary.sh" "$WORK/trs"
CHECKS=$((CHECKS + 1))
grep -q "1 passed, 1 failed, 1 skipped" "$WORK/out.txt" || fail "summary under CI without CUDA: $(cat "$WORK/out.txt")"
rm "$WORK/trs/notebooks.trs"
expect_rc 1 "FAIL: gpu_emu skipped on CI" env CI=true top_builddir="$WORK/cuda" sh "$top_srcdir/tests/summary.sh" "$WORK/trs"
finish
