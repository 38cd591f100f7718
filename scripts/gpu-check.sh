#!/usr/bin/env bash
# gpu-check.sh: the GPU checks, for a machine with an NVIDIA GPU and driver.
#
#   bash scripts/gpu-check.sh
#
# 1. Builds the CUDA plugin (libbenzer_cuda.so), its tests and the device
#    benchmark with CMake (build-gpu/; nvcc from /usr/local/cuda or PATH).
# 2. Runs benzer_cuda_tests: every kernel against the CPU device on random
#    data (exact L2 and inner product, filtered top-k, large k, many row
#    blocks, 2 048 dimensions, k-means assignment).
# 3. Runs benzer_device_bench: ms per batch on the CPU and the GPU.
# 4. Runs the search service's TAP test (test/t/008_search_service.pl) with
#    the plugin and benzer.device = gpu, when PostgreSQL's test harness is
#    installed.
#
# Without a GPU (no device, no driver) it prints "gpu-check: no GPU:
# skipped (...)" and exits 0: a skip, never a pass. With one it prints
# "gpu-check: N passed, M failed" and exits nonzero if anything failed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-gpu"
jobs="${JOBS:-$(nproc)}"

mkdir -p "$build"
cmake -S "$root" -B "$build" -DBENZER_CUDA=ON -DCMAKE_BUILD_TYPE=Release >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; echo "gpu-check: 0 passed, 1 failed (configure)"; exit 1; }
cmake --build "$build" -j"$jobs" --target benzer_cuda benzer_cuda_tests benzer_device_bench ||
    { echo "gpu-check: 0 passed, 1 failed (build)"; exit 1; }

log="$build/cuda_tests.log"
status=0
"$build/benzer_cuda_tests" "$build/libbenzer_cuda.so" 2>&1 | tee "$log" || status=$?
passed="$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?.*/\1/p' "$log" | tail -n 1)"
skipped="$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\?, listed below.*/\1/p' "$log" | tail -n 1)"
failed="$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\?, listed below.*/\1/p' "$log" | tail -n 1)"
passed="${passed:-0}"; skipped="${skipped:-0}"; failed="${failed:-0}"
if [ "$status" -ne 0 ] && [ "$failed" = 0 ]; then failed=1; fi

if [ "$passed" = 0 ] && [ "$failed" = 0 ] && [ "$skipped" != 0 ]; then
    reason="$(grep -m1 -o 'no GPU: skipped.*' "$log" || echo 'no GPU: skipped')"
    echo "gpu-check: $reason"
    exit 0
fi

echo "=== device benchmark"
"$build/benzer_device_bench" 500000 784 "$build/libbenzer_cuda.so" || failed=$((failed + 1))

pgxs="$(pg_config --pgxs 2>/dev/null || true)"
if [ -n "$pgxs" ] && [ -f "$(dirname "$pgxs")/../../src/test/perl/PostgreSQL/Test/Cluster.pm" ] &&
    [ -f "$(pg_config --pkglibdir)/benzer.so" ]; then
    echo "=== the search service on the GPU (008_search_service.pl)"
    if BENZER_TAP_GPU_PLUGIN="$build/libbenzer_cuda.so" bash "$root/test/t/run.sh" 008_search_service.pl; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
else
    echo "=== the search service on the GPU: skipped (install benzer and PostgreSQL's TAP harness)"
fi
echo "gpu-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
