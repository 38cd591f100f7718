#!/usr/bin/env bash
# Longer runs of the faiss fuzzer (test/fuzz/faiss_fuzz.py) than the test
# command's bounded one, each against a throwaway cluster (pg_virtualenv).
#
#   sudo bash scripts/fuzz.sh                 seeds 1..10, 5000 combinations each
#   sudo bash scripts/fuzz.sh 100 120 3000    seeds 100..120, 3000 each
#
# Build and install benzer first (make && make install, or scripts/test.sh).
# Each seed prints its failures and a "fuzz: N passed, M failed" line; the
# script exits nonzero if any seed failed.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
first="${1:-1}"
last="${2:-10}"
cases="${3:-5000}"
status=0
for seed in $(seq "$first" "$last"); do
    echo "== seed $seed ($cases combinations)"
    pg_virtualenv -t /usr/bin/python3 "$repo/test/fuzz/faiss_fuzz.py" --seed "$seed" --cases "$cases" ||
        status=1
done
exit "$status"
