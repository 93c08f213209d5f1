#!/bin/sh
# summary.sh DIR - one line "N passed, N failed, N skipped" from automake's .trs files.
dir=${1:-tests}
pass=0; fail=0; skip=0
for trs in "$dir"/*.trs; do
    [ -f "$trs" ] || continue
    case $(sed -n 's/^:test-result: //p' "$trs") in
        PASS|XFAIL) pass=$((pass + 1)) ;;
        SKIP) skip=$((skip + 1)) ;;
        *) fail=$((fail + 1)) ;;
    esac
done
echo "$pass passed, $fail failed, $skip skipped"
