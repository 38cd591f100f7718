#!/usr/bin/env bash
# End-to-end test of the pattern-search app (app/) in headless Chromium.
#
#   bash test/e2e/run.sh          (scripts/test.sh runs it as the "e2e" suite)
#
# Builds app/, installs playwright-core into test/e2e/node_modules if it is
# missing (npm ci), starts a throwaway PostgreSQL cluster (pg_virtualenv),
# loads 2000 + 333 Fashion-MNIST images with demo/load_fashion_mnist.py,
# creates the demo's indexes and the app's tables (demo/schema.sql,
# demo/indexes.sql, demo/app.sql), starts the app on a free loopback port,
# and runs test/e2e/e2e.test.js against it. Ends with
# "e2e: N passed, M failed".
#
# Needs: chromium, nodejs (with npm), libcpp-httplib-dev, libpq-dev,
# zlib1g-dev, postgresql-15, dataset-fashion-mnist, python3-numpy
# (scripts/install-deps.sh). BENZER_E2E_SCREENSHOT sets where the screenshot
# goes (default test/e2e/screenshot.png); BENZER_E2E_KEEP_LOG=1 prints the
# app's log at the end.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

fail() { echo "e2e setup failed: $*"; echo "e2e: 0 passed, 1 failed"; exit 1; }

if [ "${BENZER_E2E_INNER:-0}" != 1 ]; then
    # Outer call: build, fetch node modules, then run again inside a cluster.
    command -v pg_virtualenv >/dev/null || fail "pg_virtualenv not found (postgresql-common)"
    command -v node >/dev/null || fail "node not found (apt-get install nodejs)"
    [ -x "${BENZER_CHROMIUM:-/usr/bin/chromium}" ] || fail "chromium not found (apt-get install chromium)"
    echo "# building app/"
    make -C app -s >/tmp/benzer-e2e-build.$$.log 2>&1 || { cat /tmp/benzer-e2e-build.$$.log; rm -f /tmp/benzer-e2e-build.$$.log; fail "make -C app"; }
    rm -f /tmp/benzer-e2e-build.$$.log
    if [ ! -f test/e2e/node_modules/playwright-core/package.json ] ||
        [ ! -f test/e2e/node_modules/pgvector/package.json ] || [ ! -f test/e2e/node_modules/pg/package.json ]; then
        echo "# npm ci (playwright-core, pg, pgvector) in test/e2e"
        (cd test/e2e && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in test/e2e"
    fi
    BENZER_E2E_INNER=1 exec pg_virtualenv -t bash "$0" "$@"
fi

# Inner call: PG* point at a fresh throwaway cluster (a superuser).
PSQL=(psql -X -q -v ON_ERROR_STOP=1)
PYTHON=/usr/bin/python3   # Debian's, with python3-numpy
[ -x "$PYTHON" ] || PYTHON=python3
export PGOPTIONS='-c client_min_messages=warning'
t0=$(date +%s)
echo "# loading the test database (2000 + 333 images)"
"${PSQL[@]}" -f demo/schema.sql >/dev/null || fail "demo/schema.sql"
"$PYTHON" demo/load_fashion_mnist.py --limit 2000 2>&1 | sed 's/^/#   /' || fail "load_fashion_mnist.py"
"${PSQL[@]}" -c 'ANALYZE images, features' || fail "ANALYZE"
"${PSQL[@]}" -f demo/indexes.sql >/dev/null || fail "demo/indexes.sql"
"${PSQL[@]}" -f demo/app.sql >/dev/null || fail "demo/app.sql"
unset PGOPTIONS
echo "# database ready in $(( $(date +%s) - t0 )) s"

port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp /tmp/benzer-e2e-app.XXXXXX.log)
# The user the tests log in as (votes and refine need one).
e2e_password="e2e-$RANDOM-$RANDOM"
BENZER_APP_PASSWORD="$e2e_password" app/build/benzer-app --db "" --add-user tester >/dev/null ||
    fail "benzer-app --add-user"
app/build/benzer-app --db "" --listen 127.0.0.1 --port "$port" --static app/static >"$log" 2>&1 &
app_pid=$!
stop_app() {
    if kill -0 "$app_pid" 2>/dev/null; then
        kill -TERM "$app_pid"
        wait "$app_pid" 2>/dev/null
    fi
}
trap stop_app EXIT

for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
    kill -0 "$app_pid" 2>/dev/null || { cat "$log"; fail "the app exited"; }
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 || { cat "$log"; fail "the app did not answer"; }

out=$(mktemp /tmp/benzer-e2e-out.XXXXXX)
BENZER_APP_URL="http://127.0.0.1:$port" BENZER_E2E_USER=tester BENZER_E2E_PASSWORD="$e2e_password" \
    node test/e2e/e2e.test.js 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
# A test file that does not even run (syntax error, missing module) still
# gets a closing line.
if ! grep -Eq '^e2e: [0-9]+ passed, [0-9]+ failed' "$out"; then
    echo "e2e: 0 passed, 1 failed"
    [ "$status" -ne 0 ] || status=1
fi
rm -f "$out"
stop_app
trap - EXIT
# The app logs one line per request; show it when something failed.
if [ "$status" -ne 0 ] || [ "${BENZER_E2E_KEEP_LOG:-0}" = 1 ]; then
    echo "# app log ($log):"
    sed 's/^/#   /' "$log" | tail -n 200
fi
grep -c ' /api/similar' "$log" | sed 's/^/# \/api\/similar requests served: /'
rm -f "$log"
exit "$status"
