# lib.sh - shared helpers of the shell tests (sourced). Exit 0 = pass, 1 = fail, 77 = skip.
set -u
: "${top_builddir:=.}" "${top_srcdir:=.}" "${MPIEXEC:=mpirun}"
. "$top_srcdir/tests/ci_skips.sh"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
AILORA="$top_builddir/ailora"
H5COMPARE="$top_builddir/tests/h5compare"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ailora-test-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILED=0
CHECKS=0

fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
pass() { CHECKS=$((CHECKS + 1)); }

# run_np N CMD...: CMD under mpirun on N ranks (oversubscribed, unbound: 2 cores here)
run_np() {
    local n=$1
    shift
    "$MPIEXEC" -np "$n" --oversubscribe --bind-to none "$@"
}

# check CMD...: CMD must succeed
check() {
    CHECKS=$((CHECKS + 1))
    if ! "$@" > "$WORK/last.out" 2>&1; then
        fail "command failed: $*"
        sed 's/^/    /' "$WORK/last.out" | tail -20
    fi
}

# expect_error SUBSTRING OUTPUT CMD...: CMD must fail with exactly one error line
# containing SUBSTRING on stderr, and leave neither OUTPUT nor OUTPUT.partial.
expect_error() {
    local want=$1 output=$2
    shift 2
    CHECKS=$((CHECKS + 1))
    local rc=0
    "$@" > "$WORK/err.out" 2> "$WORK/err.txt" || rc=$?
    local lines
    lines=$(grep -c "error:" "$WORK/err.txt" || true)
    if [ "$rc" -eq 0 ]; then
        fail "expected failure (\"$want\") but exit 0: $*"
    elif ! grep -qF -- "$want" "$WORK/err.txt"; then
        fail "error for \"$want\" not reported: $*"
        sed 's/^/    /' "$WORK/err.txt" | head -5
    elif [ "$lines" -ne 1 ]; then
        fail "expected one error line, got $lines: $*"
        sed 's/^/    /' "$WORK/err.txt" | head -5
    elif [ -n "$output" ] && { [ -e "$output" ] || [ -e "$output.partial" ]; }; then
        fail "failed run left $output or $output.partial behind: $*"
    else
        echo "ok: $(grep 'error:' "$WORK/err.txt" | head -1)"
    fi
}

# session_pids SID: the processes of session SID (a run started with setsid: mpirun
# and its ranks, which Open MPI puts in process groups of their own, or ailora)
# (read from /proc: no procps needed)
session_of() {  # session_of PID: its session id (empty once it is gone)
    local stat rest
    read -r stat 2> /dev/null < "/proc/$1/stat" || return 0
    rest=${stat##*) }  # the fields after "(comm)": state ppid pgrp session ...
    # shellcheck disable=SC2086
    set -- $rest
    echo "$4"
}
session_pids() {
    local d
    for d in /proc/[0-9]*; do [ "$(session_of "${d#/proc/}")" = "$1" ] && echo "${d#/proc/}"; done
    return 0
}

# kill_session SID: SIGKILL every process of the session at once (a node loss: no
# handler runs), then wait until all are gone
kill_session() {
    local pids
    pids=$(session_pids "$1")
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2> /dev/null
    wait "$1" 2> /dev/null
    for _ in $(seq 200); do [ -z "$(session_pids "$1")" ] && return 0; sleep 0.05; done
    fail "processes of the killed run still alive: $(session_pids "$1")"
}

# skip REASON: exit 77 (automake's "skipped") saying why. A skip never hides a
# failure: after a failed check it fails instead, and under CI=true a test that
# tests/ci_skips.sh does not allow to skip on this machine fails with the reason.
skip() {
    if [ "$FAILED" -gt 0 ]; then
        echo "FAIL: $FAILED check(s) failed before the skip ($*)"
        exit 1
    fi
    if [ "${CI:-}" = true ] && ! ci_may_skip "$(basename "$0")"; then
        echo "FAIL: $(basename "$0") must not skip on CI: $*"
        exit 1
    fi
    echo "SKIP: $*"
    exit 77
}

finish() {
    echo "$(basename "$0"): $CHECKS checks, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
