#!/usr/bin/env bash
# The search service on the CPU: concurrent exact searches with the service
# on and off, in one run (issue 12, item 4).
#
#   bash bench/service_bench.sh [table] [seconds]
#
# Needs a server with benzer in shared_preload_libraries (the service runs
# only then) and a table (default fmnist: id, label, bucket, v) such as
# bench/scale_bench.py loads. Builds a Flat index (v, label, bucket) and an
# IVF-Flat index on a copy, then runs pgbench with 1 and 8 clients for
#   exact            Flat, no filter (every row compared)
#   exact, 10 %      Flat, label = :l (a tenth of the rows)
#   IVF, 0.1 %       IVF-Flat, bucket = :b (exact distances to a small filter)
# each with benzer.search_service on and off (PGOPTIONS), and prints a
# Markdown table of tps and mean latency, plus the service's counters.
# Connection settings come from the usual PG* environment variables.
set -euo pipefail

table="${1:-fmnist}"
seconds="${2:-15}"
psql=(psql -X -q -v ON_ERROR_STOP=1)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

rows="$("${psql[@]}" -Atc "SELECT count(*) FROM $table")"
if [ "$("${psql[@]}" -Atc "SELECT count(*) FROM pg_proc WHERE proname = 'benzer_search_service'")" = 0 ]; then
    echo "benzer_search_service() is missing: recreate the extension" >&2
    exit 1
fi
if [ "$("${psql[@]}" -Atc "SELECT coalesce(pid, 0) FROM benzer_search_service()")" = 0 ]; then
    echo "the search service is not running: add benzer to shared_preload_libraries" >&2
    exit 1
fi

echo "building the indexes on $table ($rows rows)" >&2
"${psql[@]}" <<SQL
DROP INDEX IF EXISTS ${table}_service_flat;
DROP TABLE IF EXISTS ${table}_service_ivf;
CREATE TABLE ${table}_service_ivf AS SELECT * FROM $table;
ALTER TABLE ${table}_service_ivf ADD PRIMARY KEY (id);
SET maintenance_work_mem = '2GB';
CREATE INDEX ${table}_service_flat ON $table USING faiss (v, label, bucket) WITH (factory = 'Flat');
CREATE INDEX ${table}_service_ivf_idx ON ${table}_service_ivf USING faiss (v, label, bucket)
    WITH (factory = 'IVF256,Flat');
SQL

max_id="$("${psql[@]}" -Atc "SELECT max(id) FROM $table")"
cat >"$work/exact.sql" <<SQL
\set q random(1, $max_id)
SELECT id FROM $table ORDER BY v <-> (SELECT v FROM $table WHERE id = :q) LIMIT 10;
SQL
cat >"$work/exact10.sql" <<SQL
\set q random(1, $max_id)
\set l random(0, 9)
SELECT id FROM $table WHERE label = :l ORDER BY v <-> (SELECT v FROM $table WHERE id = :q) LIMIT 10;
SQL
cat >"$work/ivf01.sql" <<SQL
\set q random(1, $max_id)
\set b random(0, 999)
SELECT id FROM ${table}_service_ivf WHERE bucket = :b
ORDER BY v <-> (SELECT v FROM ${table}_service_ivf WHERE id = :q) LIMIT 10;
SQL

# Warm both paths (the service reads each index once; the backends' pages
# come into shared buffers).
for script in exact exact10 ivf01; do
    for service in on off; do
        PGOPTIONS="-c enable_seqscan=off -c benzer.search_service=$service" \
            pgbench -n -f "$work/$script.sql" -c 2 -j 2 -T 2 >/dev/null 2>&1
    done
done

run() {  # script clients service -> "tps latency_ms"
    PGOPTIONS="-c enable_seqscan=off -c benzer.search_service=$3" \
        pgbench -n -f "$work/$1.sql" -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" -T "$seconds" 2>/dev/null |
        awk '/^tps =/ {tps = $3} /^latency average/ {lat = $4} END {printf "%.1f %.2f", tps, lat}'
}

echo
echo "| search | clients | service off: tps | latency ms | service on: tps | latency ms | on / off |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for script in exact exact10 ivf01; do
    case $script in
        exact) name="exact (Flat)" ;;
        exact10) name="exact, 10 % filter (Flat)" ;;
        ivf01) name="IVF-Flat, 0.1 % filter (exact distances)" ;;
    esac
    for clients in 1 8; do
        read -r off_tps off_lat <<<"$(run "$script" "$clients" off)"
        read -r on_tps on_lat <<<"$(run "$script" "$clients" on)"
        ratio="$(awk -v a="$on_tps" -v b="$off_tps" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
        echo "| $name | $clients | $off_tps | $off_lat | $on_tps | $on_lat | ${ratio}x |"
    done
done
echo
"${psql[@]}" -c "SELECT device, requests, failed, batches, largest_batch,
    round(requests::numeric / nullif(batches, 0), 2) AS queries_per_batch, indexes,
    pg_size_pretty(bytes) AS held FROM benzer_search_service()"
"${psql[@]}" -Atc "SELECT 'service settings: threads ' || current_setting('benzer.service_threads')
    || ', batch window ' || current_setting('benzer.service_batch_window') || ' us'"
