#!/usr/bin/env bash
# WAL written per inserted row, and by the VACUUM after the inserts, for a
# faiss index on 60 000 Fashion-MNIST rows (784-d, 3 136-byte vectors) when
# 10 000 more rows are inserted: the table alone, the automatic index with
# its lists in pages (inserted rows go to list tails), and the same index
# with lists_in_pages = off (rows wait as pending rows until VACUUM merges).
# Each step starts after a CHECKPOINT, so full-page images count as they
# would in production right after one.
#
#   bash bench/wal_per_row.sh [database]      (default benzer_scale)
#
# Needs a table fmnist(id int, label int, v vector(784)) with 60 000 rows,
# as bench/scale_bench.py loads it. Connection: the PG* environment.
set -euo pipefail
db="${1:-benzer_scale}"
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
. "$(dirname "${BASH_SOURCE[0]}")/wal_lib.sh"

printf '%-8s %12s %12s %14s %14s\n' variant "insert B/row" "index B/row" "x vector" "VACUUM B/row"
table_only=0
for variant in none pages memory; do
    q "DROP TABLE IF EXISTS wal_bench"
    q "CREATE TABLE wal_bench AS SELECT id, label, v FROM fmnist"
    case "$variant" in
        pages) q "SET maintenance_work_mem = '1GB'; CREATE INDEX ON wal_bench USING faiss (v, label)" ;;
        memory) q "SET maintenance_work_mem = '1GB'; CREATE INDEX ON wal_bench USING faiss (v, label) WITH (lists_in_pages = off)" ;;
    esac
    insert=$(( $(wal_bytes "INSERT INTO wal_bench SELECT id + 100000, label, v FROM fmnist WHERE id <= 10000") / 10000 ))
    vacuum=$(( $(wal_bytes "VACUUM wal_bench" "-c maintenance_work_mem=1GB") / 10000 ))
    if [ "$variant" = none ]; then table_only=$insert; fi
    index=$((insert - table_only))
    ratio=$(q "SELECT round($index / 3136.0, 2)")
    printf '%-8s %12s %12s %14s %14s\n' "$variant" "$insert" "$index" "$ratio" "$vacuum"
done
q "DROP TABLE IF EXISTS wal_bench"
