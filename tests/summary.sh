#!/bin/sh
# summary.sh DIR - one line "N passed, N failed, N skipped" from automake's .trs files.
# Under CI=true a skipped test that tests/ci_skips.sh does not allow to skip counts
# as failed (named, with its reason), and the exit status is 1 if any test failed.
dir=${1:-tests}
: "${top_builddir:=$dir/..}"
. "$(dirname "$0")/ci_skips.sh"
pass=0; fail=0; skip=0
for trs in "$dir"/*.trs; do
    [ -f "$trs" ] || continue
    case $(sed -n 's/^:test-result: //p' "$trs") in
        PASS|XFAIL) pass=$((pass + 1)) ;;
        SKIP)
            name=$(basename "$trs" .trs)
            if [ "${CI:-}" = true ] && ! ci_may_skip "$name"; then
                echo "FAIL: $name skipped on CI ($(grep -m1 "SKIP:" "${trs%.trs}.log" 2> /dev/null))"
                fail=$((fail + 1))
            else
                skip=$((skip + 1))
            fi ;;
        *) fail=$((fail + 1)) ;;
    esac
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
