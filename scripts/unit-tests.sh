#!/usr/bin/env bash
# unit-tests.sh: build the core and run its GoogleTest unit tests twice: a
# plain build with warnings as errors (build/) and an AddressSanitizer +
# UndefinedBehaviorSanitizer build (build-asan/).
#
# Runnable from any directory. Prints one closing line,
#   unit tests: N passed, M failed
# summed over both builds, and exits nonzero if anything failed (a build
# failure counts as one failed test).
#
# Environment: JOBS (default 2) for the build and ctest; CMAKE_ARGS for extra
# configure arguments.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

jobs="${JOBS:-2}"
total_passed=0
total_failed=0

# run_build DIR [CMAKE ARGS...]: configure, build and test one build tree,
# adding its results to the totals.
run_build() {
    local dir="$1"
    shift
    local log="$root/$dir/ctest.log"
    mkdir -p "$root/$dir"
    echo "=== $dir: configure ($*)"
    # shellcheck disable=SC2086
    if ! cmake -S "$root" -B "$root/$dir" "$@" ${CMAKE_ARGS:-} >"$root/$dir/configure.log" 2>&1; then
        cat "$root/$dir/configure.log" >&2
        echo "=== $dir: configure FAILED" >&2
        total_failed=$((total_failed + 1))
        return
    fi
    echo "=== $dir: build"
    if ! cmake --build "$root/$dir" -j"$jobs"; then
        echo "=== $dir: build FAILED" >&2
        total_failed=$((total_failed + 1))
        return
    fi
    echo "=== $dir: test"
    local status=0
    (cd "$root/$dir" && ctest --output-on-failure -j"$jobs") 2>&1 | tee "$log" || status=$?

    # "100% tests passed, 0 tests failed out of 104" (disabled tests are not
    # counted in the total).
    local summary
    summary="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)"
    if [[ -z "$summary" ]]; then
        echo "=== $dir: no ctest summary (status $status)" >&2
        total_failed=$((total_failed + 1))
        return
    fi
    local failed total
    failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")"
    total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$summary")"
    if [[ "$total" -eq 0 ]]; then
        echo "=== $dir: no tests ran" >&2
        total_failed=$((total_failed + 1))
        return
    fi
    if [[ "$status" -ne 0 && "$failed" -eq 0 ]]; then
        # ctest failed without a failed test (e.g. discovery): count it.
        failed=1
    fi
    total_passed=$((total_passed + total - failed))
    total_failed=$((total_failed + failed))
}

start=$SECONDS
run_build build -DBENZER_WERROR=ON -DBENZER_SANITIZE=OFF
# halt_on_error: stop at the first report; detect_leaks: LeakSanitizer too.
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
run_build build-asan -DBENZER_WERROR=ON -DBENZER_SANITIZE=ON -DBENZER_BUILD_BENCHMARKS=OFF

echo "=== done in $((SECONDS - start)) s"
echo "unit tests: $total_passed passed, $total_failed failed"
[[ "$total_failed" -eq 0 ]]
