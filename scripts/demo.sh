#!/usr/bin/env bash
# benzer demo: builds and installs the extension, starts a throwaway
# PostgreSQL 15 cluster, loads Fashion-MNIST (70 000 images, 140 000 feature
# vectors), runs similarity queries with filters, and starts the
# pattern-search web app (app/) in the background on http://127.0.0.1:8080/.
#
#   sudo bash scripts/demo.sh              # the whole demo
#   sudo bash scripts/demo.sh --reload     # reload the data even if it is there
#   sudo bash scripts/demo.sh --limit 6000 # a small load (6000 + 1000 images)
#   sudo bash scripts/demo.sh stop         # stop the cluster and remove it
#
# Environment:
#   BENZER_DEMO_DIR=/var/tmp/benzer-demo   cluster, socket and log live here
#   BENZER_DEMO_PORT=5499                  port (of the unix socket; no TCP)
#   BENZER_SKIP_BUILD=1                    do not run make / make install
#   BENZER_SKIP_DEPS=1                     do not run scripts/install-deps.sh
#   BENZER_APP_PORT=8080                   the web app's port (BENZER_APP_LISTEN=127.0.0.1)
#   BENZER_APP_ALLOW_HOST=NAME             a host name the app answers besides localhost
#                                          and IP addresses (its --allow-host)
#   BENZER_SKIP_APP=1                      do not start the web app
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_DIR=${BENZER_DEMO_DIR:-/var/tmp/benzer-demo}
PORT=${BENZER_DEMO_PORT:-5499}
PGBIN=/usr/lib/postgresql/15/bin
DATA=$DEMO_DIR/data
SOCK=$DEMO_DIR/run
LOGFILE=$DEMO_DIR/server.log
DB=benzer_demo
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

# --- output helpers -----------------------------------------------------------

if [ -t 1 ]; then
    BOLD=$'\e[1m' DIM=$'\e[2m' GREEN=$'\e[32m' RED=$'\e[31m' RESET=$'\e[0m'
else
    BOLD='' DIM='' GREEN='' RED='' RESET=''
fi
T_START=$(date +%s.%N)
PHASE_NAME='' PHASE_T0=0
SUMMARY=()

phase() {               # phase "title": starts a timed phase
    phase_end
    PHASE_NAME=$1
    PHASE_T0=$(date +%s.%N)
    printf '\n%s==> %s%s\n' "$BOLD" "$1" "$RESET"
}
phase_end() {
    [ -n "$PHASE_NAME" ] || return 0
    local dt
    dt=$(awk -v a="$PHASE_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    printf '%s    done in %s s%s\n' "$DIM" "$dt" "$RESET"
    SUMMARY+=("$(printf '%-40s %7s s' "$PHASE_NAME" "$dt")")
    PHASE_NAME=''
}
info() { printf '    %s\n' "$*"; }
die() { printf '%serror:%s %s\n' "$RED" "$RESET" "$*" >&2; exit 1; }

on_error() {
    printf '\n%serror:%s the demo stopped%s%s\n' "$RED" "$RESET" \
        "${PHASE_NAME:+ in phase \"$PHASE_NAME\"}" \
        "$([ -f "$LOGFILE" ] && echo "; server log: $LOGFILE")" >&2
}
trap on_error ERR

as_postgres() { runuser -u postgres -- "$@"; }

# psql as the database superuser over the demo socket (pg_ident maps root,
# postgres and the sudo user to it).
psql_demo() {
    PGOPTIONS='-c client_min_messages=warning' "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"
}

# --- arguments ----------------------------------------------------------------

ACTION=run RELOAD=0 LIMIT=''
while [ $# -gt 0 ]; do
    case $1 in
        stop) ACTION=stop ;;
        --reload) RELOAD=1 ;;
        --limit) [ $# -ge 2 ] || die "--limit needs a number"; LIMIT=$2; shift ;;
        --limit=*) LIMIT=${1#--limit=} ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
    shift
done
if [ -n "$LIMIT" ] && ! [[ $LIMIT =~ ^[1-9][0-9]*$ ]]; then
    die "--limit wants a positive number, not '$LIMIT'"
fi

[ "$(id -u)" -eq 0 ] || die "run as root: sudo bash scripts/demo.sh $*"

server_running() {
    [ -f "$DATA/PG_VERSION" ] && as_postgres "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# --- stop ---------------------------------------------------------------------

if [ "$ACTION" = stop ]; then
    # [benzer app: begin] the web app started by this script (pid file in $DEMO_DIR)
    if [ -f "$DEMO_DIR/app.pid" ]; then
        app_pid=$(cat "$DEMO_DIR/app.pid" 2>/dev/null || true)
        if [ -n "$app_pid" ] && [ "$(cat "/proc/$app_pid/comm" 2>/dev/null)" = benzer-app ]; then
            kill -TERM "$app_pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
            info "stopped the web app (pid $app_pid)"
        fi
        rm -f "$DEMO_DIR/app.pid"
    fi
    # [benzer app: end]
    if server_running; then
        as_postgres "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
        info "stopped the demo cluster in $DEMO_DIR"
    fi
    if [ -d "$DEMO_DIR" ]; then
        # Remove only what this script creates there.
        for entry in "$DEMO_DIR"/* "$DEMO_DIR"/.[!.]*; do
            [ -e "$entry" ] || continue
            case ${entry##*/} in
                data|run|server.log|initdb.log|app.log|app.pid) ;;
                *) die "$DEMO_DIR holds $entry, which the demo did not create: not removing it" ;;
            esac
        done
        rm -rf -- "$DEMO_DIR"
        info "removed $DEMO_DIR"
    else
        info "no demo cluster in $DEMO_DIR"
    fi
    exit 0
fi

printf '%sbenzer demo%s: Fashion-MNIST as fabric patterns, searched with the vector type\n' \
    "$BOLD" "$RESET"

# --- (a) dependencies ---------------------------------------------------------

if [ -f "$REPO/scripts/install-deps.sh" ] && [ "${BENZER_SKIP_DEPS:-0}" != 1 ]; then
    phase "Installing dependencies"
    bash "$REPO/scripts/install-deps.sh"
fi

# --- (b) build and install ----------------------------------------------------

if [ "${BENZER_SKIP_BUILD:-0}" != 1 ]; then
    phase "Building and installing the extension"
    make -C "$REPO" -s
    make -C "$REPO" -s install
fi

for f in "$PGBIN/initdb" "$PGBIN/pg_ctl" "$PGBIN/psql"; do
    [ -x "$f" ] || die "$f not found: install postgresql-15 (scripts/install-deps.sh)"
done
id postgres >/dev/null 2>&1 || die "no 'postgres' OS user: install postgresql-15"
"$PYTHON" -c 'import numpy' 2>/dev/null || die "python3-numpy is missing (apt-get install python3-numpy)"
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
    die "Fashion-MNIST not found: apt-get install dataset-fashion-mnist"
[ -f "$("$PGBIN/pg_config" --sharedir)/extension/benzer.control" ] ||
    die "the benzer extension is not installed (run without BENZER_SKIP_BUILD=1)"

# --- (c) the cluster ----------------------------------------------------------

phase "Starting the demo cluster"
if server_running; then
    # Reuse it, on whatever port and socket it was started with.
    PORT=$(sed -n 4p "$DATA/postmaster.pid")
    SOCK=$(sed -n 5p "$DATA/postmaster.pid")
    info "reusing the running cluster in $DATA (port $PORT)"
else
    if [ ! -f "$DATA/PG_VERSION" ]; then
        mkdir -p "$DEMO_DIR"
        chown postgres: "$DEMO_DIR"
        chmod 755 "$DEMO_DIR"
        as_postgres "$PGBIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C \
            --auth-local=peer --auth-host=reject >"$DEMO_DIR/initdb.log" 2>&1 ||
            { cat "$DEMO_DIR/initdb.log" >&2; die "initdb failed"; }
        # Only local connections, and only as the superuser postgres, from the
        # OS users postgres, root and the one who ran sudo.
        cat >"$DATA/pg_hba.conf" <<EOF
# benzer demo: unix socket only
local all all peer map=demo
EOF
        {
            echo "demo postgres postgres"
            echo "demo root postgres"
            if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
                echo "demo $SUDO_USER postgres"
            fi
        } >>"$DATA/pg_ident.conf"
        cat >>"$DATA/postgresql.conf" <<EOF

# --- benzer demo ---
listen_addresses = ''
unix_socket_directories = '$SOCK'
shared_buffers = 512MB
# loaded once by the postmaster: a new connection's first search does not
# pay for loading Faiss, OpenBLAS and libstdc++ (README, "Storage")
shared_preload_libraries = 'benzer'
work_mem = 64MB
maintenance_work_mem = 1GB
max_parallel_workers_per_gather = 2
effective_cache_size = 4GB
# a throwaway cluster: no replication, so bulk loads into freshly truncated
# tables skip the WAL
wal_level = minimal
max_wal_senders = 0
max_wal_size = 4GB
checkpoint_timeout = 30min
EOF
        info "initialised a new cluster in $DATA"
    fi
    mkdir -p "$SOCK"
    chown postgres: "$SOCK"
    # OMP_WAIT_POLICY=passive: OpenMP threads (Faiss) sleep instead of
    # spinning while they wait, so extra threads do not slow builds down on
    # a machine whose cores are busy (README, "Settings").
    if ! as_postgres env OMP_WAIT_POLICY=passive "$PGBIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 \
            -o "-p $PORT -k $SOCK" start >/dev/null; then
        tail -n 20 "$LOGFILE" >&2 || true
        die "the server did not start (port $PORT taken? set BENZER_DEMO_PORT)"
    fi
    info "server started: socket $SOCK, port $PORT, log $LOGFILE"
fi

# --- (d) database, schema and data --------------------------------------------

phase "Creating the database"
if [ "$(psql_demo -d postgres -Atc "SELECT count(*) FROM pg_database WHERE datname = '$DB'")" = 0 ]; then
    psql_demo -d postgres -qc "CREATE DATABASE $DB"
    info "created database $DB"
else
    info "database $DB exists"
fi
psql_demo -d "$DB" -qc "CREATE EXTENSION IF NOT EXISTS benzer"
info "extension benzer $(psql_demo -d "$DB" -Atc "SELECT extversion FROM pg_extension WHERE extname = 'benzer'"), distance kernel: $(psql_demo -d "$DB" -Atc "SELECT benzer_simd_kernel()")"

if [ -n "$LIMIT" ]; then
    N_TRAIN=$(( LIMIT < 60000 ? LIMIT : 60000 ))
    N_TEST=$(( LIMIT / 6 )); (( N_TEST >= 1 )) || N_TEST=1; (( N_TEST <= 10000 )) || N_TEST=10000
else
    N_TRAIN=60000 N_TEST=10000
fi
WANT_IMAGES=$(( N_TRAIN + N_TEST ))
WANT_FEATURES=$(( 2 * WANT_IMAGES ))
HAVE=none
# Tables of an older demo schema (features without the metadata copies that
# the indexes filter on) are loaded again.
if [ "$(psql_demo -d "$DB" -Atc "SELECT to_regclass('public.images') IS NOT NULL
                                       AND to_regclass('public.features') IS NOT NULL
                                       AND EXISTS (SELECT FROM pg_attribute
                                                   WHERE attrelid = to_regclass('public.features')
                                                     AND attname = 'tags' AND NOT attisdropped)")" = t ]; then
    HAVE=$(psql_demo -d "$DB" -Atc "SELECT (SELECT count(*) FROM images) || ' ' || (SELECT count(*) FROM features)")
fi

phase "Loading Fashion-MNIST"
if [ "$RELOAD" = 0 ] && [ "$HAVE" = "$WANT_IMAGES $WANT_FEATURES" ]; then
    info "already loaded: $WANT_IMAGES images, $WANT_FEATURES feature rows (--reload to load again)"
else
    psql_demo -d "$DB" -qc "DROP TABLE IF EXISTS features, images CASCADE"
    psql_demo -d "$DB" -q -f "$REPO/demo/schema.sql"
    info "created the tables (demo/schema.sql)"
    PGHOST=$SOCK PGPORT=$PORT PGUSER=postgres PGDATABASE=$DB PSQL=$PGBIN/psql \
        "$PYTHON" "$REPO/demo/load_fashion_mnist.py" ${LIMIT:+--limit "$LIMIT"} 2>&1 |
        sed 's/^/    /'
    info "$(psql_demo -d "$DB" -Atc "
        SELECT format('%s images (%s train, %s test), %s feature rows; tables %s',
                      (SELECT count(*) FROM images),
                      (SELECT count(*) FROM images WHERE split = 'train'),
                      (SELECT count(*) FROM images WHERE split = 'test'),
                      (SELECT count(*) FROM features),
                      pg_size_pretty(pg_total_relation_size('images')
                                     + pg_total_relation_size('features')))")"
    phase "ANALYZE"
    psql_demo -d "$DB" -qc "ANALYZE images, features"
fi

# --- (e) indexes ----------------------------------------------------------------

if [ -f "$REPO/demo/indexes.sql" ]; then
    phase "Creating indexes (demo/indexes.sql)"
    psql_demo -d "$DB" -q -c '\timing on' -f "$REPO/demo/indexes.sql" 2>&1 | sed 's/^/    /'
fi

# --- (f) queries ----------------------------------------------------------------

phase "Similarity queries (demo/queries.sql)"
psql_demo -d "$DB" -q -f "$REPO/demo/queries.sql" 2>&1 | sed 's/^/    /'

# --- (f2) the web app ([benzer app: begin]) -------------------------------------
# demo/app.sql adds the app's tables (clusters, filled by k-means, and
# feedback); then app/ is built and started in the background, with its pid
# file and log in $DEMO_DIR. "scripts/demo.sh stop" stops it.

APP_URL=''
if [ "${BENZER_SKIP_APP:-0}" != 1 ]; then
    APP_LISTEN=${BENZER_APP_LISTEN:-127.0.0.1}
    APP_PORT=${BENZER_APP_PORT:-8080}
    APP_PID=$DEMO_DIR/app.pid
    APP_LOG=$DEMO_DIR/app.log

    phase "App tables (demo/app.sql)"
    psql_demo -d "$DB" -q -f "$REPO/demo/app.sql" 2>&1 | sed 's/^/    /'

    phase "Starting the web app (app/)"
    make -C "$REPO/app" -s
    if [ -f "$APP_PID" ]; then      # a previous run's app: restart it
        old=$(cat "$APP_PID" 2>/dev/null || true)
        if [ -n "$old" ] && [ "$(cat "/proc/$old/comm" 2>/dev/null)" = benzer-app ]; then
            kill -TERM "$old" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
            info "stopped the previous app (pid $old)"
        fi
        rm -f "$APP_PID"
    fi
    # The first user (votes need one): its password is made once and kept
    # in the demo directory, so a rerun prints the same.
    APP_USER=demo
    APP_PASSWORD_FILE=$DEMO_DIR/app-password
    if [ ! -s "$APP_PASSWORD_FILE" ]; then
        (umask 077; head -c 12 /dev/urandom | base64 | tr '+/' '-_' >"$APP_PASSWORD_FILE")
    fi
    APP_PASSWORD=$(cat "$APP_PASSWORD_FILE")
    BENZER_APP_PASSWORD=$APP_PASSWORD "$REPO/app/build/benzer-app" \
        --db "host=$SOCK port=$PORT user=postgres dbname=$DB" --add-user "$APP_USER" --admin |
        sed 's/^/    /'
    command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
    if curl -s -o /dev/null "http://$APP_LISTEN:$APP_PORT/" 2>/dev/null; then
        die "port $APP_PORT is taken by another program: set BENZER_APP_PORT"
    fi
    setsid "$REPO/app/build/benzer-app" --db "host=$SOCK port=$PORT user=postgres dbname=$DB" \
        --listen "$APP_LISTEN" --port "$APP_PORT" --static "$REPO/app/static" --pid-file "$APP_PID" \
        ${BENZER_APP_ALLOW_HOST:+--allow-host "$BENZER_APP_ALLOW_HOST"} \
        --log-file "$APP_LOG" >>"$APP_LOG.stderr" 2>&1 </dev/null &
    app_started=$!
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "http://$APP_LISTEN:$APP_PORT/healthz" 2>/dev/null && break
        kill -0 "$app_started" 2>/dev/null || { tail -n 20 "$APP_LOG" "$APP_LOG.stderr" >&2; die "the web app exited (log: $APP_LOG)"; }
        sleep 0.1
    done
    curl -fsS -o /dev/null "http://$APP_LISTEN:$APP_PORT/healthz" 2>/dev/null ||
        { tail -n 20 "$APP_LOG" "$APP_LOG.stderr" >&2; die "the web app does not answer (log: $APP_LOG)"; }
    APP_URL="http://$APP_LISTEN:$APP_PORT/"
    info "the app is running: $APP_URL (pid $(cat "$APP_PID"), log $APP_LOG)"
fi
# [benzer app: end]
phase_end

# --- (g) summary ----------------------------------------------------------------

printf '\n%s==> Timings%s\n' "$BOLD" "$RESET"
for line in "${SUMMARY[@]}"; do info "$line"; done
info "$(printf '%-40s %7s s' total "$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')")"

cat <<EOF

${GREEN}The demo database is running.${RESET}
    connect:  psql -h $SOCK -p $PORT -U postgres $DB
    queries:  psql -h $SOCK -p $PORT -U postgres $DB -f $REPO/demo/queries.sql
    stop:     sudo bash scripts/demo.sh stop    (stops the server and deletes $DEMO_DIR)
EOF
# [benzer app: begin]
if [ -n "$APP_URL" ]; then
    cat <<EOF

${GREEN}The pattern-search app is running:${RESET} ${BOLD}$APP_URL${RESET}
    (click an image on the left; log: $APP_LOG)
    log in:   user ${BOLD}$APP_USER${RESET}, password ${BOLD}$APP_PASSWORD${RESET} (to vote; more users:
              BENZER_APP_PASSWORD=... app/build/benzer-app --db ... --add-user NAME)
    latency:  $([ "$APP_URL" = http://127.0.0.1:8080/ ] || echo "BENZER_APP_URL=$APP_URL ")bash bench/app_latency.sh
    stop:     sudo bash scripts/demo.sh stop    (stops the app too)
EOF
fi
# [benzer app: end]
