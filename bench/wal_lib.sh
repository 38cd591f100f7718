# wal_lib.sh: sourced by the WAL benchmarks (wal_per_row.sh, wal_wide.sh),
# which define q (psql -c on their database).

# wal_bytes SQL [PGOPTIONS]: a CHECKPOINT (so full-page images count as they
# would in production right after one), then SQL; prints the bytes of WAL
# that SQL wrote.
wal_bytes() {
    local before after
    q "CHECKPOINT"
    before=$(q "SELECT pg_current_wal_insert_lsn()")
    PGOPTIONS="${2:-}" q "$1"
    after=$(q "SELECT pg_current_wal_insert_lsn()")
    q "SELECT round(pg_wal_lsn_diff('$after', '$before'))"
}
