#!/usr/bin/env bash
# Latency of the pattern-search app's /api/similar under a few concurrent
# clients: wrk (Debian package wrk) against the running app over loopback,
# with a Lua script that rotates the query image among 500 real image ids.
#
#   bash bench/app_latency.sh                       # the app of scripts/demo.sh
#   BENZER_APP_URL=http://127.0.0.1:8093 bash bench/app_latency.sh
#
# Environment:
#   BENZER_APP_URL        the app (default http://127.0.0.1:8080)
#   BENZER_BENCH_CONNS    concurrent clients (HTTP connections), default 4
#   BENZER_BENCH_THREADS  wrk threads, default 2
#   BENZER_BENCH_SECONDS  seconds per scenario, default 10
#   BENZER_BENCH_N        results per search (n), default 100
#
# For each scenario it prints requests/s, the median and the 99th percentile
# of the request time (wrk's, end to end over HTTP: parsing, the query, JSON)
# and the count of non-2xx answers (should be 0). wrk, the app and PostgreSQL
# share this machine's cores, so the figures are for the whole stack.
set -euo pipefail

URL=${BENZER_APP_URL:-http://127.0.0.1:8080}
URL=${URL%/}
CONNS=${BENZER_BENCH_CONNS:-4}
THREADS=${BENZER_BENCH_THREADS:-2}
SECONDS_PER=${BENZER_BENCH_SECONDS:-10}
N=${BENZER_BENCH_N:-100}
(( THREADS <= CONNS )) || THREADS=$CONNS

command -v wrk >/dev/null || { echo "app_latency.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }
command -v curl >/dev/null || { echo "app_latency.sh: curl not found (apt-get install curl)" >&2; exit 1; }
if ! curl -fsS "$URL/healthz" >/dev/null 2>&1; then
    echo "app_latency.sh: no app at $URL; start it with: sudo bash scripts/demo.sh" >&2
    exit 1
fi

work=$(mktemp -d /tmp/benzer-app-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# 500 image ids spread over the table: pages of /api/images at 10 offsets.
total=$(curl -fsS "$URL/api/images?limit=1" | grep -o '"total":[0-9]*' | cut -d: -f2)
step=$(( total / 10 ))
: >"$work/ids"
for k in $(seq 0 9); do
    curl -fsS "$URL/api/images?limit=50&offset=$(( k * step ))" | grep -o '"id":[0-9]*' | cut -d: -f2 >>"$work/ids"
done
ids=$(paste -sd, "$work/ids")
nids=$(wc -l <"$work/ids")

# The query string's other parameters come from wrk's command line after "--".
cat >"$work/rotate.lua" <<EOF
local ids = {$ids}
local counter = 0
local threads = {}
local query = ""

function setup(thread)
    thread:set("offset", #threads * 97)
    table.insert(threads, thread)
end

function init(args)
    query = args[1] or ""
    counter = tonumber(offset) or 0
end

function request()
    counter = counter + 1
    local id = ids[(counter % #ids) + 1]
    return wrk.format("GET", "/api/similar?id=" .. id .. query)
end

function done(summary, latency, requests)
    local non2xx = summary.errors.status
    local errs = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
    io.write(string.format("RESULT %.1f %.2f %.2f %.2f %d %d %d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
        summary.requests, non2xx, errs))
end
EOF

run() {   # run "label" "&more=params"
    local label=$1 params=$2 out
    # One short warm-up pass, then the measured run.
    wrk -t1 -c1 -d1s -s "$work/rotate.lua" "$URL" -- "$params" >/dev/null 2>&1 || true
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_PER}s" --timeout 10s -s "$work/rotate.lua" "$URL" -- "$params" 2>&1)
    local line
    line=$(grep '^RESULT' <<<"$out" || true)
    if [ -z "$line" ]; then
        echo "$out" >&2
        printf '%-58s  wrk failed\n' "$label"
        return
    fi
    read -r _ rps p50 p90 p99 reqs non2xx errs <<<"$line"
    printf '%-58s %8s %9s %9s %9s %7s %6s\n' "$label" "$rps" "$p50" "$p90" "$p99" "$reqs" "$((non2xx + errs))"
}

# Pick filter values that exist in this database.
meta=$(curl -fsS "$URL/api/meta")
has_pooled=$(grep -c '"model":"pooled"' <<<"$meta" || true)
has_clusters=$(grep -o '"clusters":[0-9]*' <<<"$meta" | head -1 | cut -d: -f2)

echo "benzer app latency: GET /api/similar, $CONNS concurrent clients ($THREADS wrk threads), ${SECONDS_PER} s per scenario,"
echo "n = $N, query image rotating over $nids image ids; $URL; $(nproc) CPU cores shared by wrk, the app and PostgreSQL"
echo
printf '%-58s %8s %9s %9s %9s %7s %6s\n' scenario 'req/s' 'p50 ms' 'p90 ms' 'p99 ms' requests errors
run "pixels/v1 euclidean, no filter"              "&model=pixels&version=v1&metric=euclidean&n=$N"
run "pixels/v1 euclidean, season=winter"          "&model=pixels&version=v1&metric=euclidean&n=$N&season=winter"
run "pixels/v1 euclidean, quality=A, tags=floral" "&model=pixels&version=v1&metric=euclidean&n=$N&quality=A&tags=floral"
run "pixels/v1 euclidean, design=Dress,season=winter,quality=A" "&model=pixels&version=v1&metric=euclidean&n=$N&design=Dress&season=winter&quality=A"
if [ -n "$has_clusters" ]; then
    run "pixels/v1 euclidean, cluster=3"          "&model=pixels&version=v1&metric=euclidean&n=$N&cluster=3"
fi
if [ "$has_pooled" -gt 0 ]; then
    run "pooled/v1 cosine, no filter"             "&model=pooled&version=v1&metric=cosine&n=$N"
    run "pooled/v1 cosine, season=winter"         "&model=pooled&version=v1&metric=cosine&n=$N&season=winter"
fi
