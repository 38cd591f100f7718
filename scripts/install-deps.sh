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
    dataset-fashion-mnist python3 python3-numpy python3-matplotlib
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

# postgresql-common's default cluster is not needed: benzer's scripts start
# their own throwaway clusters.
