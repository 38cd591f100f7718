#!/usr/bin/env bash
# Installs everything benzer needs to build, test and run its demo on
# Debian 12, from Debian's own packages. Run as root. Idempotent.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (sudo bash scripts/install-deps.sh)" >&2
    exit 1
fi

packages=(
    # toolchain
    build-essential g++ make cmake pkg-config git ca-certificates
    # PostgreSQL 15 server, headers, pgTAP, the TAP test harness' Perl deps
    postgresql-15 postgresql-server-dev-15 postgresql-client-15 postgresql-common
    postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl
    # Faiss (static) and a fast BLAS: the OpenMP build of OpenBLAS, not the
    # pthread one (it spawns threads at load time) and not the reference BLAS
    # (an order of magnitude slower)
    libfaiss-dev libopenblas0-openmp libopenblas-openmp-dev liblapack-dev
    # unit tests and micro-benchmarks of the C++ core
    libgtest-dev libbenchmark-dev clang-format
    # demo data and tooling
    dataset-fashion-mnist python3 python3-numpy python3-matplotlib python3-psycopg2
    # [benzer app: begin] the web app (app/: cpp-httplib, libpq, zlib, libsodium for
    # passwords and sessions, nginx to put in front of it, stb
    # for decoding uploaded pictures), its
    # end-to-end test (headless Chromium driven by playwright-core on Node.js)
    # and its latency benchmark (wrk)
    libcpp-httplib-dev libpq-dev zlib1g-dev libstb-dev libsodium-dev nginx curl chromium nodejs wrk
    # [benzer app: end]
)

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "install-deps: all packages present"
fi

# [benzer app: begin]
# npm: part of NodeSource's nodejs package, a separate Debian package
# otherwise (installing Debian's npm next to NodeSource's nodejs conflicts).
if ! command -v npm >/dev/null 2>&1; then
    echo "install-deps: installing npm"
    apt-get install -y -q --no-install-recommends npm
fi
# playwright-core (no browser download: the tests use Debian's chromium) into
# test/e2e/node_modules, at the version package-lock.json pins.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -f "$repo/test/e2e/package-lock.json" ] && [ ! -f "$repo/test/e2e/node_modules/playwright-core/package.json" ]; then
    echo "install-deps: npm ci in test/e2e (playwright-core)"
    (cd "$repo/test/e2e" && npm ci --no-audit --no-fund --loglevel=error) ||
        echo "install-deps: warning: npm ci failed in test/e2e; the e2e suite will try again" >&2
fi
# [benzer app: end]

# postgresql-common's default cluster is not needed: benzer's scripts start
# their own throwaway clusters.
