#!/usr/bin/env bash
# Runs benzer's TAP tests (test/t/*.pl) with prove, using PostgreSQL's own
# test harness (PostgreSQL::Test::Cluster / PostgreSQL::Test::Utils, shipped
# with the PGXS files of the server package; needs libipc-run-perl).
#
#   bash test/t/run.sh                 all tests
#   bash test/t/run.sh 003_vacuum.pl   some of them (names in test/t)
#
# Each test starts its own throwaway clusters (initdb) on free ports and
# stops them at the end, so no running server is needed. initdb refuses to
# run as root: as root, the tests are copied into a temporary directory
# owned by the postgres OS user and prove runs as that user. The clusters'
# logs (tmp_check/log) are kept in that directory when a test fails (its
# path is printed before the tests start); BENZER_TAP_KEEP=1 keeps the
# whole directory, data directories included, whatever the result.
#
# BenzerTAP.pm holds the helpers the tests share.
#
# Environment: PG_CONFIG (default: the pg_config of PostgreSQL 15),
# PROVE_FLAGS (default: -v), BENZER_TAP_KEEP.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ -z "${PG_CONFIG:-}" ]; then
    if [ -x /usr/lib/postgresql/15/bin/pg_config ]; then
        PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
    else
        PG_CONFIG=pg_config
    fi
fi
bindir="$("$PG_CONFIG" --bindir)"
pgxs="$(dirname "$("$PG_CONFIG" --pgxs)")/.."   # .../lib/pgxs/src/makefiles/..
pgxs="$(cd "$pgxs" && pwd)"                      # .../lib/pgxs/src
perl_lib="$pgxs/test/perl"
pg_regress="$pgxs/test/regress/pg_regress"

for f in "$perl_lib/PostgreSQL/Test/Cluster.pm" "$pg_regress"; do
    if [ ! -e "$f" ]; then
        echo "run.sh: $f not found (is the PostgreSQL server dev package installed?)" >&2
        exit 2
    fi
done
if ! perl -MIPC::Run -e 1 2>/dev/null; then
    echo "run.sh: the Perl module IPC::Run is missing (apt-get install libipc-run-perl)" >&2
    exit 2
fi

shopt -s nullglob
if [ $# -gt 0 ]; then
    tests=()
    for t in "$@"; do tests+=("$(basename "$t")"); done
else
    tests=()
    for t in "$here"/*.pl; do tests+=("$(basename "$t")"); done
fi
if [ ${#tests[@]} -eq 0 ]; then
    echo "run.sh: no test files in $here" >&2
    exit 2
fi

# 010_app_replica.pl and 012_app_http.pl run the pattern-search app: build
# it first (as the calling user; the tests may run as postgres).
repo="$(cd "$here/../.." && pwd)"
for t in "${tests[@]}"; do
    case "$t" in
    010_app_replica.pl | 012_app_http.pl)
        make -C "$repo/app" -s >/dev/null || { echo "run.sh: make -C app failed" >&2; exit 2; }
        break
        ;;
    esac
done

work="$(mktemp -d /tmp/benzer-tap.XXXXXX)"
chmod 755 "$work"
# Every test file goes along: one test may run another's steps
# (009_service_concurrency.pl runs 005_concurrency.pl).
cp "$here"/*.pl "$here"/*.pm "$work/"

run_user=""
if [ "$(id -u)" -eq 0 ]; then
    run_user=postgres
    chown -R "$run_user" "$work"
fi

echo "# TAP test logs: $work/tmp_check/log (kept if a test fails)"
status=0
(
    cd "$work"
    cmd=(env
        "PERL5LIB=$work:$perl_lib${PERL5LIB:+:$PERL5LIB}"
        "PATH=$bindir:$PATH"
        "PG_REGRESS=$pg_regress"
        "TESTDIR=$work"
        "BENZER_REPO=$repo"
        "PG_TEST_TIMEOUT_DEFAULT=${PG_TEST_TIMEOUT_DEFAULT:-120}"
        prove ${PROVE_FLAGS:--v} --timer "${tests[@]}")
    if [ -n "$run_user" ]; then
        exec runuser -u "$run_user" -- "${cmd[@]}"
    else
        exec "${cmd[@]}"
    fi
) || status=$?

# Nothing is printed after prove's summary.
if [ "${BENZER_TAP_KEEP:-0}" = 1 ]; then
    :
elif [ "$status" -ne 0 ]; then
    # keep the logs, drop the clusters' data directories
    rm -rf "$work"/tmp_check/t_*_data "$work"/tmp_check/portlock
else
    rm -rf "$work"
fi
exit "$status"
