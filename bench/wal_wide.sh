#!/usr/bin/env bash
# WAL written per inserted row into a 2 048-d IVF-Flat index (the width of
# ResNet-style CNN features): an 8 kB vector does not fit a page, so an
# inserted row's code goes out of line, to a page chain its list tail item
# points to. Compared in one run with the table alone and with
# lists_in_pages = off, where rows wait as pending rows until VACUUM merges
# them (what every 2 048-d IVF-Flat insert did before list tails took wide
# codes). Each step starts after a CHECKPOINT, so full-page images count as
# they would in production right after one.
#
#   bash bench/wal_wide.sh [database] [rows] [inserted]   (default benzer_scale 20000 2000)
#
# Connection: the PG* environment. Creates and drops the table wal_wide.
set -euo pipefail
db="${1:-benzer_scale}"
rows="${2:-20000}"
inserted="${3:-2000}"
dim=2048
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
. "$(dirname "${BASH_SOURCE[0]}")/wal_lib.sh"

# Clustered rows: 50 centres plus noise, so IVF lists mean something.
q "DROP TABLE IF EXISTS wal_wide_source"
q "CREATE TABLE wal_wide_source AS
   SELECT i AS id, (SELECT array_agg(((i % 50) * 0.37 + j % 7) * 0.1 + random() ORDER BY j)
                    FROM generate_series(1, $dim) j)::vector($dim) AS v
   FROM generate_series(1, $rows + $inserted) i"

printf '%-8s %12s %12s %10s %14s %12s\n' variant "insert B/row" "index B/row" "x vector" "VACUUM B/row" "pending"
table_only=0
for variant in none pages memory; do
    q "DROP TABLE IF EXISTS wal_wide"
    q "CREATE TABLE wal_wide AS SELECT id, v FROM wal_wide_source WHERE id <= $rows"
    case "$variant" in
        pages) q "SET maintenance_work_mem = '2GB'; CREATE INDEX wal_wide_idx ON wal_wide USING faiss (v)" ;;
        memory) q "SET maintenance_work_mem = '2GB'; CREATE INDEX wal_wide_idx ON wal_wide USING faiss (v) WITH (lists_in_pages = off, merge_threshold = $inserted)" ;;
    esac
    insert=$(( $(wal_bytes "INSERT INTO wal_wide SELECT id, v FROM wal_wide_source WHERE id > $rows") / inserted ))
    pending=-
    if [ "$variant" != none ]; then
        pending=$(q "SELECT pending_rows FROM benzer_index_info('wal_wide_idx')")
        desc=$(q "SELECT description FROM benzer_index_info('wal_wide_idx')")
        echo "  $variant: $desc" >&2
    fi
    vacuum=$(( $(wal_bytes "VACUUM wal_wide" "-c maintenance_work_mem=2GB") / inserted ))
    if [ "$variant" = none ]; then table_only=$insert; fi
    index=$((insert - table_only))
    ratio=$(q "SELECT round($index / $((dim * 4)).0, 2)")
    printf '%-8s %12s %12s %10s %14s %12s\n' "$variant" "$insert" "$index" "$ratio" "$vacuum" "$pending"
done
q "DROP TABLE IF EXISTS wal_wide"
q "DROP TABLE IF EXISTS wal_wide_source"
