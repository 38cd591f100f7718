#!/usr/bin/env bash
# HNSW held once per server by the search service, against a copy in every
# backend, in one run (issue 12, item 4).
#
#   bash bench/service_graph_bench.sh [table] [seconds] [factory]
#
# Needs a server on this machine with benzer in shared_preload_libraries
# and a table (default fmnist: id, label, bucket, v) such as
# bench/scale_bench.py loads. Copies it to <table>_graph and builds an HNSW
# index on the copy (default HNSW32), then, with benzer.search_service on
# and off:
#   1. bench/connection_cost.py: 8 fresh connections, each one's first
#      search (timed), its warm median, and each backend's private memory;
#   2. pgbench with 1 and 8 clients, no filter and a 10 % filter (label).
# Connection settings come from the usual PG* environment variables.
set -euo pipefail

table="${1:-fmnist}"
seconds="${2:-10}"
factory="${3:-HNSW32}"
graph="${table}_graph"
psql=(psql -X -q -v ON_ERROR_STOP=1)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
here="$(cd "$(dirname "$0")" && pwd)"

if [ "$("${psql[@]}" -Atc "SELECT coalesce(pid, 0) FROM benzer_search_service()")" = 0 ]; then
    echo "the search service is not running: add benzer to shared_preload_libraries" >&2
    exit 1
fi
if [ "$("${psql[@]}" -Atc "SELECT count(*) FROM pg_indexes WHERE indexname = '${graph}_hnsw'")" = 0 ]; then
    echo "building $factory on a copy of $table" >&2
    "${psql[@]}" <<SQL
DROP TABLE IF EXISTS $graph;
CREATE TABLE $graph AS SELECT * FROM $table;
ALTER TABLE $graph ADD PRIMARY KEY (id);
SET maintenance_work_mem = '2GB';
CREATE INDEX ${graph}_hnsw ON $graph USING faiss (v, label, bucket) WITH (factory = '$factory');
SQL
fi
"${psql[@]}" -Atc "SELECT 'index: ' || factory || ', ' || rows || ' rows, ' || dimensions
    || ' dimensions, structure ' || pg_size_pretty(faiss_bytes) FROM benzer_index_info('${graph}_hnsw')"

# 1. Fresh connections: first query, warm query, private memory.
dsn="host=${PGHOST:-/tmp} port=${PGPORT:-5432} dbname=${PGDATABASE:-postgres} user=${PGUSER:-postgres}"
query="SELECT id FROM $graph ORDER BY v <-> (SELECT v FROM $graph WHERE id = %s) LIMIT 10"
for service in off on; do
    /usr/bin/python3 "$here/connection_cost.py" \
        --dsn "$dsn options='-c benzer.search_service=$service -c enable_seqscan=off'" \
        --query "$query" --ids "SELECT id FROM $graph" --label "service $service"
done

# 2. Throughput.
max_id="$("${psql[@]}" -Atc "SELECT max(id) FROM $graph")"
cat >"$work/plain.sql" <<SQL
\set q random(1, $max_id)
SELECT id FROM $graph ORDER BY v <-> (SELECT v FROM $graph WHERE id = :q) LIMIT 10;
SQL
cat >"$work/filtered.sql" <<SQL
\set q random(1, $max_id)
\set l random(0, 9)
SELECT id FROM $graph WHERE label = :l ORDER BY v <-> (SELECT v FROM $graph WHERE id = :q) LIMIT 10;
SQL
run() {  # script clients service -> "tps latency_ms"
    PGOPTIONS="-c enable_seqscan=off -c benzer.search_service=$3" \
        pgbench -n -f "$work/$1.sql" -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" -T "$seconds" 2>/dev/null |
        awk '/^tps =/ {tps = $3} /^latency average/ {lat = $4} END {printf "%.1f %.2f", tps, lat}'
}
for script in plain filtered; do
    for service in on off; do run "$script" 2 "$service" >/dev/null; done
done
echo
echo "| search | clients | service off: tps | latency ms | service on: tps | latency ms | on / off |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for script in plain filtered; do
    name="$factory, no filter"
    [ "$script" = filtered ] && name="$factory, 10 % filter"
    for clients in 1 8; do
        read -r off_tps off_lat <<<"$(run "$script" "$clients" off)"
        read -r on_tps on_lat <<<"$(run "$script" "$clients" on)"
        ratio="$(awk -v a="$on_tps" -v b="$off_tps" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
        echo "| $name | $clients | $off_tps | $off_lat | $on_tps | $on_lat | ${ratio}x |"
    done
done
echo
"${psql[@]}" -c "SELECT requests, failed, batches, largest_batch,
    round(requests::numeric / nullif(batches, 0), 2) AS queries_per_batch, indexes,
    pg_size_pretty(bytes) AS held FROM benzer_search_service()"
