#!/usr/bin/env bash
# Scale out over postgres_fdw shards (issue 13): a similarity query on one
# node against the same query on a table hash-partitioned over 2 and 3
# shards, all on this server (each shard is a database reached through
# postgres_fdw over the Unix socket), so the figures are latencies, not
# throughput gains.
#
#   bash bench/shard_bench.sh [source_table] [seconds]
#
# Give the server shared_buffers that hold every copy's index (2GB for
# Fashion-MNIST: the single node's and the 2- and 3-shard layouts'), or the
# figures measure reads from the OS cache, not the search.
#
# Needs a server with benzer and postgres_fdw, and a source table in the
# current database (default fmnist: id, label, v) such as
# bench/scale_bench.py loads. Creates the databases benzer_coord and
# benzer_shard_1 .. 3 (dropped and created again), copies the rows, builds
# the same faiss index (v, label) on every shard and on a single-node copy,
# then runs pgbench (1 client) on "similar to :id" through
#   single       the single-node copy
#   benzer N     benzer's plan on the partitioned table (N shards): each
#                shard gets its own ORDER BY ... LIMIT 10, all at once, as
#                one statement on benzer's own connection (autocommit)
#   cursor N     the same plan through postgres_fdw's remote transactions
#                and cursors (benzer.shard_direct = off), as a statement in
#                a transaction block reads the shards
#   naive N      PostgreSQL's own plan (benzer.shard_pushdown = off)
#   union N      a UNION ALL of per-shard ORDER BY ... LIMIT 10, by hand
#   fdw 2        one shard's foreign table alone (half the rows): what one
#                postgres_fdw query costs, the floor of any plan over shards
# and the same "similar to :id, label = :l" filtered (single and benzer),
# and prints p50 latency and tps. Connection settings come from the usual
# PG* environment variables (a Unix socket: PGHOST is a directory).
set -euo pipefail

source_table="${1:-fmnist}"
seconds="${2:-10}"
source_db="${PGDATABASE:-postgres}"
psql=(psql -X -q -v ON_ERROR_STOP=1)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
host="${PGHOST:-/var/run/postgresql}"
port="${PGPORT:-5432}"
user="${PGUSER:-$(id -un)}"

dim="$("${psql[@]}" -d "$source_db" -Atc "SELECT vector_dims(v) FROM $source_table LIMIT 1")"
rows="$("${psql[@]}" -d "$source_db" -Atc "SELECT count(*) FROM $source_table")"
echo "source: $source_table, $rows rows of $dim dimensions" >&2

for db in benzer_coord benzer_shard_1 benzer_shard_2 benzer_shard_3; do
    "${psql[@]}" -d "$source_db" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done

# The shards of an N-shard layout hold the rows with id % N = i - 1; the
# 2-shard and 3-shard layouts live side by side as tables items2, items3.
for shard in 1 2 3; do
    db="benzer_shard_$shard"
    "${psql[@]}" -d "$db" -c "CREATE EXTENSION benzer"
    for n in 2 3; do
        [ "$shard" -le "$n" ] || continue
        "${psql[@]}" -d "$db" -c "CREATE TABLE items$n (id int PRIMARY KEY, label int, v vector($dim))"
        "${psql[@]}" -d "$source_db" -c "\\copy (SELECT id, label, v FROM $source_table WHERE id % $n = $((shard - 1))) TO STDOUT" |
            "${psql[@]}" -d "$db" -c "\\copy items$n FROM STDIN"
        echo "building the index of items$n on shard $shard" >&2
        "${psql[@]}" -d "$db" -c "SET maintenance_work_mem = '2GB'" \
            -c "CREATE INDEX ON items$n USING faiss (v, label)"
    done
done

"${psql[@]}" -d benzer_coord <<SQL
CREATE EXTENSION benzer;
CREATE EXTENSION postgres_fdw;
CREATE TABLE single (id int PRIMARY KEY, label int, v vector($dim));
SQL
"${psql[@]}" -d "$source_db" -c "\\copy (SELECT id, label, v FROM $source_table) TO STDOUT" |
    "${psql[@]}" -d benzer_coord -c "\\copy single FROM STDIN"
echo "building the single-node index" >&2
"${psql[@]}" -d benzer_coord -c "SET maintenance_work_mem = '2GB'" \
    -c "CREATE INDEX ON single USING faiss (v, label)"
for shard in 1 2 3; do
    "${psql[@]}" -d benzer_coord <<SQL
CREATE SERVER shard_$shard FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '$host', port '$port', dbname 'benzer_shard_$shard',
             extensions 'benzer', async_capable 'true', parallel_commit 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER shard_$shard OPTIONS (user '$user');
SQL
done
for n in 2 3; do
    # List partitions by id % n: the coordinator's partitions match the
    # shards' rows (the query does not depend on it; INSERTs would).
    "${psql[@]}" -d benzer_coord -c "CREATE TABLE items$n (id int, label int, v vector($dim)) PARTITION BY LIST ((id % $n))"
    for shard in $(seq 1 "$n"); do
        "${psql[@]}" -d benzer_coord -c "CREATE FOREIGN TABLE items${n}_$shard PARTITION OF items$n
            FOR VALUES IN ($((shard - 1))) SERVER shard_$shard OPTIONS (table_name 'items$n')"
    done
done
"${psql[@]}" -d benzer_coord -c "ANALYZE single"

max_id="$("${psql[@]}" -d benzer_coord -Atc "SELECT max(id) FROM single")"
query_vector="(SELECT v FROM single WHERE id = :q)"
cat >"$work/single.sql" <<SQL
\\set q random(1, $max_id)
SELECT id FROM single ORDER BY v <-> $query_vector LIMIT 10;
SQL
cat >"$work/single_filtered.sql" <<SQL
\\set q random(1, $max_id)
\\set l random(0, 9)
SELECT id FROM single WHERE label = :l ORDER BY v <-> $query_vector LIMIT 10;
SQL
for n in 2 3; do
    cat >"$work/naive$n.sql" <<SQL
\\set q random(1, $max_id)
SELECT id FROM items$n ORDER BY v <-> $query_vector LIMIT 10;
SQL
    cp "$work/naive$n.sql" "$work/benzer$n.sql"
    cp "$work/naive$n.sql" "$work/cursor$n.sql"
    cat >"$work/fdw$n.sql" <<SQL
\\set q random(1, $max_id)
SELECT id FROM items${n}_1 ORDER BY v <-> $query_vector LIMIT 10;
SQL
    cat >"$work/benzer${n}_filtered.sql" <<SQL
\\set q random(1, $max_id)
\\set l random(0, 9)
SELECT id FROM items$n WHERE label = :l ORDER BY v <-> $query_vector LIMIT 10;
SQL
    union=""
    for shard in $(seq 1 "$n"); do
        [ -n "$union" ] && union="$union UNION ALL "
        union="$union(SELECT id, v <-> $query_vector AS d FROM items${n}_$shard ORDER BY 2 LIMIT 10)"
    done
    cat >"$work/union$n.sql" <<SQL
\\set q random(1, $max_id)
SELECT id FROM ($union) x ORDER BY d LIMIT 10;
SQL
done

run() {  # script -> "p50_ms tps"
    local options=""
    # PostgreSQL's own plan: benzer's rewrite off for the session.
    case "$1" in
    naive*) options="-c benzer.shard_pushdown=off" ;;
    cursor*) options="-c benzer.shard_direct=off" ;;
    esac
    PGOPTIONS="$options" PGDATABASE=benzer_coord pgbench -n -f "$work/$1.sql" -c 1 -T "$seconds" -l --log-prefix="$work/$1" \
        2>/dev/null | awk '/^tps =/ {print $3}' >"$work/$1.tps"
    # pgbench's per-transaction log: the third field is the latency in us.
    p50="$(cat "$work/$1".[0-9]* 2>/dev/null | awk '{print $3}' | sort -n |
        awk '{a[NR] = $1} END {if (NR) printf "%.2f", a[int((NR + 1) / 2)] / 1000}')"
    echo "$p50 $(cat "$work/$1.tps")"
}
scripts=(single single_filtered fdw2 benzer2 benzer2_filtered cursor2 naive2 union2 benzer3 benzer3_filtered cursor3 naive3 union3)
for script in "${scripts[@]}"; do run "$script" >/dev/null; done  # warm
echo
echo "| query | shards | p50 ms | tps | p50 / single |"
echo "|---|---:|---:|---:|---:|"
declare -A name=(
    [single]="single node" [single_filtered]="single node, label = :l"
    [benzer]="benzer's plan on the partitioned table" [benzer_filtered]="benzer's plan, label = :l"
    [cursor]="benzer's plan through postgres_fdw's cursors (shard_direct off)"
    [naive]="PostgreSQL's plan on the partitioned table" [union]="UNION ALL of per-shard LIMIT 10 (by hand)"
    [fdw]="one shard's foreign table alone (postgres_fdw floor)")
for script in "${scripts[@]}"; do
    read -r p50 tps <<<"$(run "$script")"
    kind="${script//[0-9]/}"
    shards="${script//[^0-9]/}"
    [ -n "$shards" ] || shards=1
    [ "$kind" = fdw ] && shards="1 of $shards"
    # Each row against the single node with the same filter.
    case "$script" in
    single) single_p50="$p50" base="$p50" ;;
    single_filtered) single_filtered_p50="$p50" base="$p50" ;;
    *_filtered) base="$single_filtered_p50" ;;
    *) base="$single_p50" ;;
    esac
    ratio="$(awk -v a="$p50" -v b="$base" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
    echo "| ${name[$kind]} | $shards | $p50 | $tps | ${ratio}x |"
done
