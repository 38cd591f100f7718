#!/usr/bin/env bash
# Runs benzer's pgTAP suites (test/pgtap/*.sql) with pg_prove.
#
# Run it inside a throwaway cluster, as the lead does:
#
#   pg_virtualenv -t bash test/pgtap/run.sh
#
# It connects with the PG* environment variables that pg_virtualenv sets
# (a superuser: the binary COPY tests write server-side files), creates a
# scratch database, runs every suite in it and drops it again. Each suite
# runs in one transaction that it rolls back. Extra arguments go to pg_prove
# (e.g. --verbose).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ -z "${PGPORT:-}${PGHOST:-}${PGDATABASE:-}" ]; then
    echo "run.sh: no PG* environment variables; run it as: pg_virtualenv -t bash $0" >&2
    exit 2
fi

db="benzer_pgtap_$$"
cleanup() { dropdb --if-exists "$db" >/dev/null 2>&1 || true; }
trap cleanup EXIT
createdb "$db"

shopt -s nullglob
tests=("$here"/*.sql)
if [ ${#tests[@]} -eq 0 ]; then
    echo "run.sh: no test files in $here" >&2
    exit 2
fi

pg_prove --dbname "$db" --timer "$@" "${tests[@]}"
