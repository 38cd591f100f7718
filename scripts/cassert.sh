#!/usr/bin/env bash
# Runs benzer's regression, pgTAP and TAP suites against a PostgreSQL 15
# built with assertions (--enable-cassert --enable-debug) from Debian's own
# source package, as root on Debian 12:
#
#   sudo bash scripts/cassert.sh
#
# Assertion-enabled PostgreSQL checks what production builds take on
# trust: buffer and lock protocols (a page changed outside a critical
# section, WAL logged without one, a buffer still pinned at the end of a
# statement), memory context use, and catalog cache references. Such bugs
# in an extension corrupt data silently in a production build.
#
# Steps: adds a deb-src entry for the mirror APT already uses (if none),
# fetches postgresql-15's source with apt-get source, builds and installs
# it under $BENZER_CASSERT_DIR (default /var/tmp/benzer-cassert; a finished
# build of the same version is reused), copies pgTAP's SQL files into it,
# builds benzer from a copy of this tree against it, starts a cluster and
# runs the suites. Ends with "cassert: N passed, M failed".
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${BENZER_CASSERT_DIR:-/var/tmp/benzer-cassert}"
# "pgsql" in the path matters: Debian's source package (50-per-version-dirs)
# installs modules into /usr/lib/postgresql/15/lib, over the system
# server's own, unless the library directory names pgsql or postgres.
prefix="$base/pgsql"
jobs="${JOBS:-2}"
mkdir -p "$base"
log="$base/cassert.log"
: >"$log"

fail() {
    echo "cassert: $*"
    echo "cassert: 0 passed, 1 failed"
    exit 1
}

# --- PostgreSQL with assertions -------------------------------------------------

export DEBIAN_FRONTEND=noninteractive
if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "cassert: adding a deb-src entry for the Debian mirror"
    sed -n '/^Types: deb$/,/^$/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null |
        sed 's/^Types: deb$/Types: deb-src/' >/etc/apt/sources.list.d/benzer-deb-src.sources
    [ -s /etc/apt/sources.list.d/benzer-deb-src.sources ] ||
        echo "deb-src http://deb.debian.org/debian bookworm main" \
            >/etc/apt/sources.list.d/benzer-deb-src.list
    apt-get update -q >>"$log" 2>&1 || fail "apt-get update failed (see $log)"
fi
apt-get install -y -q --no-install-recommends dpkg-dev bison flex libreadline-dev zlib1g-dev \
    libicu-dev libssl-dev pkg-config libipc-run-perl >>"$log" 2>&1 ||
    fail "could not install the build dependencies (see $log)"

# The newest source version the mirror serves (a security update's source may
# not be mirrored even when its binaries are).
versions="$(apt-cache showsrc postgresql-15 2>/dev/null | awk '/^Version:/ {print $2}' | sort -rV)"
[ -n "$versions" ] || fail "apt-cache showsrc postgresql-15 found no source package"
version=""
built="$(cat "$prefix/.debian-version" 2>/dev/null)"
if [ ! -x "$prefix/bin/pg_config" ] || ! grep -qxF "$built" <<<"$versions"; then
    started=$(date +%s)
    rm -rf "$base/src" "$prefix"
    mkdir -p "$base/src"
    for v in $versions; do
        if (cd "$base/src" && apt-get source -q "postgresql-15=$v" >>"$log" 2>&1); then
            version="$v"
            break
        fi
        rm -rf "${base:?}/src/"*
    done
    [ -n "$version" ] || fail "apt-get source postgresql-15 failed for $versions (see $log)"
    echo "cassert: building PostgreSQL $version with --enable-cassert --enable-debug"
    srcdir="$(find "$base/src" -maxdepth 1 -mindepth 1 -type d -name 'postgresql-15*' | head -1)"
    [ -n "$srcdir" ] || fail "no source directory after apt-get source"
    chown -R postgres "$base/src"
    (
        cd "$srcdir" &&
            ./configure --prefix="$prefix" --enable-cassert --enable-debug --enable-tap-tests \
                --with-icu --with-openssl CFLAGS="-O1 -g" &&
            make -j"$jobs" &&
            make install &&
            make -C src/test/regress install
    ) >>"$log" 2>&1 || fail "the PostgreSQL build failed (see $log)"
    echo "$version" >"$prefix/.debian-version"
    echo "cassert: PostgreSQL built in $(($(date +%s) - started)) s"
fi
pg_config="$prefix/bin/pg_config"
sharedir="$("$pg_config" --sharedir)"
# postgres_fdw, for the shard tests (test/t/011_shards.pl): benzer's shard
# plan reaches into its paths and plans, which assertions check.
if [ ! -e "$sharedir/extension/postgres_fdw.control" ]; then
    srcdir="$(find "$base/src" -maxdepth 1 -mindepth 1 -type d -name 'postgresql-15*' | head -1)"
    [ -n "$srcdir" ] && make -C "$srcdir/contrib/postgres_fdw" install >>"$log" 2>&1 ||
        fail "could not build postgres_fdw from $srcdir (see $log)"
fi
cp /usr/share/postgresql/15/extension/pgtap* "$sharedir/extension/" 2>/dev/null ||
    fail "pgTAP's files are missing (apt-get install postgresql-15-pgtap)"

# --- benzer against it ------------------------------------------------------------

work="$base/benzer"
rm -rf "$work"
mkdir -p "$work"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work") ||
    fail "could not copy the tree"
if ! (cd "$work" && make -j"$jobs" PG_CONFIG="$pg_config" WERROR=1 && make install PG_CONFIG="$pg_config") \
    >>"$log" 2>&1; then
    fail "benzer did not build against the cassert PostgreSQL (see $log)"
fi
chown -R postgres "$work"  # pg_regress writes its results there

# --- the suites ---------------------------------------------------------------------

data="$base/data"
port=54${RANDOM:0:3}
rm -rf "$data"
mkdir -p "$data"
chown postgres "$data"
run_pg() { runuser -u postgres -- "$@"; }
run_pg "$prefix/bin/initdb" -D "$data" -A trust -U postgres >>"$log" 2>&1 || fail "initdb failed"
cat >>"$data/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$base'
listen_addresses = ''
autovacuum = off
EOF
chmod 777 "$base"
run_pg "$prefix/bin/pg_ctl" -D "$data" -l "$base/server.log" -w start >>"$log" 2>&1 || fail "the server did not start"
stop() { run_pg "$prefix/bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true; }
trap stop EXIT
export PGHOST="$base" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres

passed=0
failed=0
count() {  # name, log, passed, failed
    echo "cassert: $1: $3 passed, $4 failed"
    passed=$((passed + $3))
    failed=$((failed + $4))
}

# pg_regress
(cd "$work" && run_pg env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres \
    make installcheck PG_CONFIG="$pg_config") >"$base/regress.log" 2>&1
if n="$(grep -Eo 'All [0-9]+ tests passed' "$base/regress.log" | awk '{print $2}')" && [ -n "$n" ]; then
    count regress "$base/regress.log" "$n" 0
else
    cat "$base/regress.log"
    [ -f "$work/regression.diffs" ] && head -100 "$work/regression.diffs"
    read -r m n < <(grep -Eo '[0-9]+ of [0-9]+ tests failed' "$base/regress.log" | awk '{print $1, $3}')
    count regress "$base/regress.log" "$(( ${n:-1} - ${m:-1} ))" "${m:-1}"
fi

# pgTAP, with the cassert build's psql
PATH="$prefix/bin:$PATH" bash "$work/test/pgtap/run.sh" >"$base/pgtap.log" 2>&1
tests="$(grep -Eo 'Tests=[0-9]+' "$base/pgtap.log" | tail -1 | cut -d= -f2)"
bad="$(grep -Eo 'Failed [0-9]+/[0-9]+ subtests' "$base/pgtap.log" | awk '{split($2, a, "/"); s += a[1]} END {print s + 0}')"
grep -q 'Result: PASS' "$base/pgtap.log" || { cat "$base/pgtap.log"; bad=$((bad > 0 ? bad : 1)); }
count pgtap "$base/pgtap.log" "$(( ${tests:-0} - bad ))" "$bad"
stop

# TAP: each test starts its own clusters from the cassert build.
PG_CONFIG="$pg_config" PROVE_FLAGS="" bash "$work/test/t/run.sh" >"$base/tap.log" 2>&1
tests="$(grep -Eo 'Tests=[0-9]+' "$base/tap.log" | tail -1 | cut -d= -f2)"
bad="$(grep -Eo 'Failed [0-9]+/[0-9]+ subtests' "$base/tap.log" | awk '{split($2, a, "/"); s += a[1]} END {print s + 0}')"
grep -q 'Result: PASS' "$base/tap.log" || { cat "$base/tap.log"; bad=$((bad > 0 ? bad : 1)); }
count tap "$base/tap.log" "$(( ${tests:-0} - bad ))" "$bad"

# Assertion failures show as TRAP lines in a server log.
traps="$(grep -h 'TRAP:' "$base/server.log" 2>/dev/null | head -5)"
if [ -n "$traps" ]; then
    echo "cassert: assertion failures in the server log:"
    echo "$traps"
    failed=$((failed + 1))
fi
echo "cassert: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
