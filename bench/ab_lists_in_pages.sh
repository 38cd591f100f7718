#!/usr/bin/env bash
# ab_lists_in_pages.sh: warm search cost of IVF lists in pages against lists
# in backend memory, in one server, runs interleaved (A B A B), so a noisy
# machine moves both alike.
#
#   bash bench/ab_lists_in_pages.sh            # DSN from PG* or the default below
#
# Uses the tables scale_bench.py keeps (fmnist, gen500k in benzer_scale):
# copies each to <t>_b, builds "<t>_pages" on <t> (lists_in_pages = on,
# the default) and "<t>_b_memory" on the copy (lists_in_pages = off), both
# on (v vector_l2_ops, label, bucket), unless they exist, then pg_prewarms
# what it can. shared_buffers should hold both tables and the paged index
# (3 GB for both data sets). For each data set and filter (100 % / 10 %
# label = L / 1 % bucket IN (10 values) / 0.1 % bucket = B), pgbench -M
# prepared, 1 client (and 4 for 100 % and 10 %): a 2 s warm-up then 6 s,
# twice for each side. Prints tps per run.
set -euo pipefail
db=${BENZER_AB_DB:-benzer_scale}
export PGHOST=${PGHOST:-/tmp/dev} PGPORT=${PGPORT:-5433} PGUSER=${PGUSER:-postgres}
dir=$(mktemp -d /tmp/benzer-ab.XXXXXX)
trap 'rm -rf "$dir"' EXIT

psql -X -q -d "$db" -v ON_ERROR_STOP=1 <<'EOF'
SET maintenance_work_mem = '2GB';
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['fmnist', 'gen500k'] LOOP
        IF to_regclass(t || '_b') IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING ALL) WITH (toast_tuple_target = 8160)', t || '_b', t);
            EXECUTE format('INSERT INTO %I SELECT * FROM %I', t || '_b', t);
            EXECUTE format('ANALYZE %I', t || '_b');
        END IF;
        IF to_regclass(t || '_pages') IS NULL THEN
            EXECUTE format('CREATE INDEX %I ON %I USING faiss (v vector_l2_ops, label, bucket)', t || '_pages', t);
        END IF;
        IF to_regclass(t || '_b_memory') IS NULL THEN
            EXECUTE format('CREATE INDEX %I ON %I USING faiss (v vector_l2_ops, label, bucket) WITH (lists_in_pages = off)', t || '_b_memory', t || '_b');
        END IF;
        PERFORM pg_prewarm(t || '_pages'), pg_prewarm(t), pg_prewarm(t || '_b');
    END LOOP;
END $$;
EOF

# One script per table and filter.
for t in fmnist fmnist_b gen500k gen500k_b; do
    n=$([[ $t == fmnist* ]] && echo 60000 || echo 500000)
    q="(SELECT v FROM $t WHERE id = :id)"
    printf '\\set id random(1, %s)\nSELECT id FROM %s ORDER BY v <-> %s LIMIT 10;\n' "$n" "$t" "$q" >"$dir/$t-100.sql"
    printf '\\set id random(1, %s)\n\\set l random(0, 9)\nSELECT id FROM %s WHERE label = :l ORDER BY v <-> %s LIMIT 10;\n' "$n" "$t" "$q" >"$dir/$t-10.sql"
    printf '\\set id random(1, %s)\n\\set b random(0, 990)\nSELECT id FROM %s WHERE bucket IN (:b, :b+1, :b+2, :b+3, :b+4, :b+5, :b+6, :b+7, :b+8, :b+9) ORDER BY v <-> %s LIMIT 10;\n' "$n" "$t" "$q" >"$dir/$t-1.sql"
    printf '\\set id random(1, %s)\n\\set b random(0, 999)\nSELECT id FROM %s WHERE bucket = :b ORDER BY v <-> %s LIMIT 10;\n' "$n" "$t" "$q" >"$dir/$t-01.sql"
done

P="pgbench -n -M prepared"
tps() { $P -c "$1" -j "$1" -T 6 -f "$2" "$db" 2>&1 | awk '/^tps/{print int($3)}'; }
for ds in fmnist gen500k; do
    for f in 100 10 1 01; do
        for c in 1 4; do
            [ "$c" = 4 ] && [ "$f" != 100 ] && [ "$f" != 10 ] && continue
            a=() b=()
            for rep in 1 2; do
                $P -c "$c" -j "$c" -T 2 -f "$dir/$ds-$f.sql" "$db" >/dev/null 2>&1
                a+=("$(tps "$c" "$dir/$ds-$f.sql")")
                $P -c "$c" -j "$c" -T 2 -f "$dir/${ds}_b-$f.sql" "$db" >/dev/null 2>&1
                b+=("$(tps "$c" "$dir/${ds}_b-$f.sql")")
            done
            echo "$ds filter=$f clients=$c pages: ${a[*]} memory: ${b[*]}"
        done
    done
done
