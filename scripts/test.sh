#!/usr/bin/env bash
# Runs benzer's whole test suite on Debian 12, as root:
#
#   sudo bash scripts/test.sh
#
# Installs missing Debian packages, builds with warnings as errors, installs
# the extension, then runs every suite against throwaway PostgreSQL clusters
# (pg_virtualenv) and prints one closing line: "N passed, M failed".
# Set BENZER_TEST_ONLY="regress pgtap" to run a subset.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
logdir="${BENZER_TEST_LOGDIR:-$(mktemp -d /tmp/benzer-test.XXXXXX)}"
mkdir -p "$logdir"
chmod 755 "$logdir"

if [ "${BENZER_SKIP_DEPS:-0}" != 1 ]; then
    bash scripts/install-deps.sh || exit 1
fi

echo "== build (warnings are errors) and install"
make -s clean >/dev/null 2>&1 || true
if ! make -j2 WERROR=1 >"$logdir/build.log" 2>&1 || ! make install >>"$logdir/build.log" 2>&1; then
    cat "$logdir/build.log"
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

total_passed=0
total_failed=0
summary=()

# Runs one suite, shows its output, and adds its counts to the totals.
# $1: name, $2: a function that prints "passed failed" from the log, rest: command.
run_suite() {
    local name="$1" counter="$2"
    shift 2
    if [ -n "${BENZER_TEST_ONLY:-}" ] && [[ " $BENZER_TEST_ONLY " != *" $name "* ]]; then
        return
    fi
    echo
    echo "== $name: $*"
    local log="$logdir/$name.log" start end status counts passed failed
    start=$(date +%s)
    "$@" >"$log" 2>&1
    status=$?
    end=$(date +%s)
    cat "$log"
    counts="$($counter "$log")"
    passed="${counts% *}"
    failed="${counts#* }"
    # A suite that exits non-zero counts as at least one failure.
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    summary+=("$(printf '%-10s %5d passed %3d failed %5ds' "$name" "$passed" "$failed" $((end - start)))")
}

# Suites print "NAME: N passed, M failed" as their last summary line.
count_plain() {
    local line
    line="$(grep -Eo '[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)"
    if [ -z "$line" ]; then echo "0 0"; return; fi
    echo "$(echo "$line" | awk '{print $1, $3}')"
}

# pg_regress: "All N tests passed." or "M of N tests failed."
count_regress() {
    local n m
    if n="$(grep -Eo 'All [0-9]+ tests passed' "$1" | awk '{print $2}')" && [ -n "$n" ]; then
        echo "$n 0"
    elif grep -Eq '[0-9]+ of [0-9]+ tests failed' "$1"; then
        read -r m n < <(grep -Eo '[0-9]+ of [0-9]+ tests failed' "$1" | awk '{print $1, $3}')
        echo "$((n - m)) $m"
    else
        echo "0 0"
    fi
}

# prove: "Files=F, Tests=N" and, on failure, "Failed M/N subtests" lines.
count_prove() {
    local n m
    n="$(grep -Eo 'Tests=[0-9]+' "$1" | tail -1 | cut -d= -f2)"
    m="$(grep -Eo 'Failed [0-9]+/[0-9]+ subtests' "$1" | awk '{split($2, a, "/"); s += a[1]} END {print s + 0}')"
    echo "$(( ${n:-0} - m )) $m"
}

run_suite unit count_plain bash scripts/unit-tests.sh
run_suite regress count_regress pg_virtualenv -t make installcheck
run_suite pgtap count_prove pg_virtualenv -t bash test/pgtap/run.sh
run_suite dump count_plain pg_virtualenv -t bash test/dump_restore.sh
# The fuzzer of what reaches Faiss: a bounded, fixed-seed run (scripts/fuzz.sh
# runs longer ones). Debian's python3 (python3-psycopg2), not a pyenv's.
run_suite fuzz count_plain pg_virtualenv -t /usr/bin/python3 test/fuzz/faiss_fuzz.py --seed 1 --cases 2000
if [ -f test/t/run.sh ]; then
    run_suite tap count_prove bash test/t/run.sh
fi
# [benzer app: begin] the pattern-search app (app/) in headless Chromium and
# its API's bad-input answers; prints "e2e: N passed, M failed"
if [ -f test/e2e/run.sh ]; then
    run_suite e2e count_plain bash test/e2e/run.sh
fi
# [benzer app: end]
# pg_regress, pgTAP and TAP again, against PostgreSQL 15 built with
# --enable-cassert from Debian's source package (built once, then kept in
# /var/tmp/benzer-cassert); prints "cassert: N passed, M failed".
run_suite cassert count_plain bash scripts/cassert.sh

echo
echo "== summary (logs in $logdir)"
printf '%s\n' "${summary[@]}"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
