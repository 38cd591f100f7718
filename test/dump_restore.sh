#!/usr/bin/env bash
# Dump/restore and COPY round trips of vectors, compared bit for bit.
#
# Run it inside a throwaway cluster:
#
#   pg_virtualenv -t bash test/dump_restore.sh
#
# It connects with the PG* environment variables (a superuser), builds a
# source database whose vectors hold tricky float4 values (random finite bit
# patterns, denormals, -0, the extremes, values needing 9 significant digits)
# in dimensions from 1 to 16000, plus a vector(3) column, NULLs, an index, a
# column default and a view, and a table of halfvec, sparsevec and bit
# columns with faiss indexes, and then checks
#
#   (a) pg_dump -Fp restored with psql
#   (b) pg_dump -Fc restored with pg_restore
#   (c) pg_dump -Fd restored with pg_restore -j 2
#   (d) binary COPY TO a file and COPY FROM it into a new table
#   (e) text COPY TO a file and COPY FROM it into a new table
#
# by comparing every row's vector_send() bytes (which, unlike =, tell -0
# from 0) with the original. It prints one "ok N - ..." / "not ok N - ..."
# line per check and ends with "dump/restore: N passed, M failed"; the exit
# status is non-zero if anything failed. BENZER_DUMP_SEED (a float in
# [-1, 1]) changes the random values; BENZER_DUMP_KEEP=1 keeps the work
# directory and databases for inspection.
set -euo pipefail

if [ -z "${PGPORT:-}${PGHOST:-}${PGDATABASE:-}" ]; then
    echo "dump_restore.sh: no PG* environment variables; run it as:" >&2
    echo "  pg_virtualenv -t bash $0" >&2
    exit 2
fi

seed="${BENZER_DUMP_SEED:-0.4242}"
work="$(mktemp -d /tmp/benzer-dump.XXXXXX)"
prefix="benzer_dump_$$"
src="${prefix}_src"
databases=("$src")

cleanup() {
    if [ "${BENZER_DUMP_KEEP:-0}" = 1 ]; then
        echo "# kept $work and databases ${databases[*]}"
        return
    fi
    local db
    for db in "${databases[@]}"; do dropdb --if-exists "$db" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
check_number=0

pass() {
    check_number=$((check_number + 1))
    passed=$((passed + 1))
    echo "ok $check_number - $1"
}

fail() {
    check_number=$((check_number + 1))
    failed=$((failed + 1))
    echo "not ok $check_number - $1"
    if [ $# -gt 1 ] && [ -n "$2" ]; then printf '%s\n' "$2" | sed 's/^/#   /'; fi
}

# psql that stops at the first error and prints bare values.
q() {
    local db="$1"
    shift
    psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$db" "$@"
}

newdb() {
    databases+=("$1")
    createdb "$1"
}

echo "# work directory $work, seed $seed"

# The source database ----------------------------------------------------------

createdb "$src"
q "$src" >/dev/null <<SQL
CREATE EXTENSION benzer;

-- Builds a float4 from its bit pattern (exactly: the value is formed in
-- double precision from the sign, exponent and mantissa fields).
CREATE FUNCTION float4_from_bits(bits bigint) RETURNS real
LANGUAGE sql IMMUTABLE STRICT AS \$\$
    SELECT ((CASE WHEN bits >= 2147483648 THEN -1 ELSE 1 END) *
            (CASE WHEN (bits >> 23) & 255 = 0
                  THEN (bits & 8388607) * power(2::float8, -149)
                  ELSE ((bits & 8388607) + 8388608) * power(2::float8, ((bits >> 23) & 255) - 150)
             END))::real
\$\$;

-- A vector of n random finite float4 bit patterns.
CREATE FUNCTION random_vector(n int) RETURNS vector
LANGUAGE sql VOLATILE STRICT AS \$\$
    SELECT array_agg(float4_from_bits(bits) ORDER BY i)::vector
    FROM (SELECT i, bits FROM (
              SELECT i, floor(random() * 4294967296)::bigint AS bits
              FROM generate_series(1, 4 * n) AS i) AS r
          WHERE (bits >> 23) & 255 <> 255
          ORDER BY i LIMIT n) AS s
\$\$;

CREATE TABLE items (
    id int PRIMARY KEY,
    note text,
    v vector,
    v3 vector(3) DEFAULT '[-0,1e-45,3.4028235e38]'
);

SELECT setseed($seed);

-- Hand-picked values, alone and together.
INSERT INTO items (id, note, v, v3) VALUES
    (1, 'smallest denormal', '[1.4e-45]', '[1e-45,-1e-45,0]'),
    (2, 'smallest denormal as 1e-45', '[1e-45]', NULL),
    (3, 'negative zero', '[-0]', '[-0,-0,-0]'),
    (4, 'positive zero', '[0]', '[0,0,0]'),
    (5, 'largest float4', '[3.4028235e38]', '[3.4028235e38,-3.4028235e38,1]'),
    (6, 'smallest float4', '[-3.4028235e38]', NULL),
    (7, 'one tenth', '[0.1]', '[0.1,0.2,0.3]'),
    (8, 'nine significant digits', '[0.100000024,1.00000012,123456.789]', NULL),
    (9, 'smallest normal, largest denormal', '[1.17549435e-38,1.1754942e-38,-1.17549435e-38]', NULL),
    (10, 'rounded on input', '[16777217,0.333333333333,2.718281828459045]', NULL),
    (11, 'all together', '[1.4e-45,-0,0,3.4028235e38,-3.4028235e38,1e-45,0.1,0.100000024,1.17549435e-38,1.1754942e-38,-1e-45]', '[1,2,3]'),
    (12, 'powers of ten', '[1e-45,1e-40,1e-38,1e-30,1e-10,1e-5,1e-4,1e-3,1,10,1e5,1e7,1e8,1e10,1e15,1e20,1e30,1e38]', NULL),
    (13, 'null vector', NULL, NULL),
    (14, 'null vector, default v3', NULL, DEFAULT);

-- Random bit patterns in many dimensions, including 1 and 16000.
INSERT INTO items (id, note, v, v3)
SELECT 100 + row_number() OVER (), 'random ' || n || ' dimensions', random_vector(n),
       CASE WHEN n % 2 = 0 THEN random_vector(3) END
FROM unnest(ARRAY[1, 1, 2, 3, 4, 15, 16, 17, 31, 33, 100, 1000, 4096, 15999, 16000, 16000])
     WITH ORDINALITY AS t(n, k);

-- Many short random vectors, some NULL.
INSERT INTO items (id, note, v, v3)
SELECT 1000 + i, 'random short',
       CASE WHEN i % 50 = 0 THEN NULL ELSE random_vector(1 + (i % 64)) END,
       CASE WHEN i % 3 = 0 THEN random_vector(3) WHEN i % 3 = 1 THEN '[-1e-45,-0,1e-45]' END
FROM generate_series(1, 600) AS i;

-- Objects whose definitions hold vector literals and operators. (The btree
-- index is on v3: a btree entry cannot hold a 16000-dimensional vector.)
CREATE INDEX items_v3 ON items (v3);
CREATE VIEW near_origin AS
    SELECT id, v3 <-> '[0,0,0]'::vector AS distance FROM items WHERE v3 IS NOT NULL;
ALTER TABLE items ADD CONSTRAINT v3_not_nan CHECK (v3 IS NULL OR v3 = v3);
ANALYZE items;

-- pgvector's other types, each with a faiss index: halves (extremes,
-- denormal halves, -0), sparse vectors written out of order, bit strings.
CREATE TABLE kinds (id int PRIMARY KEY, h halfvec(4), s sparsevec(6), b bit(8));
INSERT INTO kinds VALUES
    (1, '[65504,-65504,6e-8,-0]', '{6:1.5,1:-2}/6', B'10110001'),
    (2, '[0.1,0.2,0.3,0.4]', '{}/6', B'00000000'),
    (3, NULL, NULL, NULL);
INSERT INTO kinds
SELECT 10 + i, ARRAY[i % 7, -(i % 5), i / 10.0, 1]::halfvec(4),
       format('{%s:%s,%s:%s}/6', 1 + i % 3, i % 7, 4 + i % 3, -(i % 5))::sparsevec,
       (i % 256)::bit(8)
FROM generate_series(1, 300) AS i;
CREATE INDEX kinds_h ON kinds USING faiss (h);
CREATE INDEX kinds_s ON kinds USING faiss (s sparsevec_ip_ops);
CREATE INDEX kinds_b ON kinds USING faiss (b bit_hamming_ops);
ANALYZE kinds;
SQL

summary_sql="SELECT count(*) || ' rows, ' || count(v) || ' vectors, '
             || count(v3) || ' vector(3) values, dimensions '
             || min(vector_dims(v)) || ' to ' || max(vector_dims(v))
             || ', ' || count(*) FILTER (WHERE vector_dims(v) = 16000) || ' of 16000'
             FROM items"
echo "# source: $(q "$src" -c "$summary_sql")"

# One line per row: id, then the hex of vector_send() of both columns. This
# is what every copy is compared against.
fingerprint_sql="SELECT id, coalesce(encode(vector_send(v), 'hex'), 'NULL'),
                        coalesce(encode(vector_send(v3), 'hex'), 'NULL')
                 FROM %s ORDER BY id"
fingerprint() {   # db table file
    # shellcheck disable=SC2059
    q "$1" -F ' ' -c "$(printf "$fingerprint_sql" "$2")" >"$3"
}
fingerprint "$src" items "$work/source.txt"
source_rows=$(wc -l <"$work/source.txt")

# Sanity: the source really holds the tricky values (as bytes).
sanity=$(q "$src" -c "
    SELECT count(*) FILTER (WHERE vector_send(v) = '\\x0001000080000000') || ' '
        || count(*) FILTER (WHERE vector_send(v) = '\\x0001000000000001') || ' '
        || count(*) FILTER (WHERE vector_send(v) = '\\x000100007f7fffff') || ' '
        || count(*) FILTER (WHERE vector_dims(v) = 16000) || ' '
        || count(*) FILTER (WHERE vector_dims(v) = 1 AND id < 1000)
    FROM items")
if [ "$sanity" = "1 2 1 2 9" ]; then
    pass "source holds -0, 1e-45, 3.4028235e38, two 16000-dimensional vectors, 1-dimensional ones"
else
    fail "source holds the tricky values" "counts (-0, 1e-45, max, 16000-dim, 1-dim): $sanity"
fi

# Compares a copy's fingerprint with the source's, row by row.
compare() {   # label db table
    local label="$1" db="$2" table="$3" out diffs
    out="$work/copy-$(printf '%s' "$label" | tr -c 'a-zA-Z0-9' '_').txt"
    if ! fingerprint "$db" "$table" "$out" 2>"$out.err"; then
        fail "$label: read back the copy" "$(cat "$out.err")"
        return
    fi
    local rows
    rows=$(wc -l <"$out")
    if [ "$rows" -eq "$source_rows" ]; then
        pass "$label: $rows rows, as in the source"
    else
        fail "$label: row count" "source $source_rows rows, copy $rows rows"
    fi
    # Rows that differ in any byte (or are missing on either side).
    diffs=$(diff <(cut -c1-200 "$work/source.txt") <(cut -c1-200 "$out") | head -n 10 || true)
    if cmp -s "$work/source.txt" "$out"; then
        pass "$label: every vector identical bit for bit (vector_send), NULLs kept"
    else
        local bad
        bad=$(LC_ALL=C join -a 1 -a 2 -e MISSING -j 1 -o 0,1.2,1.3,2.2,2.3 \
                  <(LC_ALL=C sort -k1,1 "$work/source.txt") <(LC_ALL=C sort -k1,1 "$out") \
              | awk '$2 != $4 || $3 != $5' | wc -l)
        fail "$label: every vector identical bit for bit" \
             "$bad rows differ; first differences (truncated):"$'\n'"$diffs"
    fi
}

# Checks that the typmod survived: the column is vector(3) and enforced.
check_typmod() {   # label db table
    local label="$1" db="$2" table="$3" type err
    type=$(q "$db" -c "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                        WHERE attrelid = '$table'::regclass AND attname = 'v3'")
    if [ "$type" != "vector(3)" ]; then
        fail "$label: v3 is vector(3)" "it is $type"
        return
    fi
    if err=$(q "$db" -c "INSERT INTO $table (id, v3) VALUES (-1, '[1,2]')" 2>&1); then
        fail "$label: v3 is vector(3) and rejects 2 dimensions" "the insert succeeded"
    elif [[ "$err" == *"expected 3 dimensions, not 2"* ]]; then
        pass "$label: v3 is vector(3) and rejects 2 dimensions"
    else
        fail "$label: v3 is vector(3) and rejects 2 dimensions" "$err"
    fi
}

# The definitions around the table: index, view results, column default.
objects_of() {   # db
    local index view default
    index=$(q "$1" -c "SELECT indexdef FROM pg_indexes WHERE indexname = 'items_v3'") || return 1
    view=$(q "$1" -c "SELECT count(*) || ' ' || md5(string_agg(distance::text, ',' ORDER BY id))
                      FROM near_origin") || return 1
    default=$(q "$1" -c "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef
                         WHERE adrelid = 'items'::regclass") || return 1
    printf '%s|%s|%s' "$index" "$view" "$default"
}

# Checks the objects around the table in a restored database.
check_objects() {   # label db
    local label="$1" db="$2" got want
    want=$(objects_of "$src")
    if got=$(objects_of "$db" 2>&1) && [ "$got" = "$want" ]; then
        pass "$label: index, view and column default restored"
    else
        fail "$label: index, view and column default restored" "want: $want"$'\n'"got:  $got"
    fi
    # The restored index answers like a sequential scan.
    got=$(q "$db" -c "SET enable_seqscan = off; SET enable_bitmapscan = off;
                      SELECT count(*) FROM items WHERE v3 >= '[0,0,0]' AND v3 < '[1,0,0]'" 2>&1 || true)
    want=$(q "$src" -c "SET enable_indexscan = off; SET enable_bitmapscan = off;
                        SELECT count(*) FROM items WHERE v3 >= '[0,0,0]' AND v3 < '[1,0,0]'")
    if [ "$got" = "$want" ]; then
        pass "$label: the restored btree index finds the same rows ($got)"
    else
        fail "$label: the restored btree index finds the same rows" "want $want, got $got"
    fi
}

# halfvec, sparsevec and bit: the values bit for bit (their send functions),
# and each faiss index rebuilt by the restore answers as an exact scan does.
kinds_fingerprint="SELECT id, coalesce(encode(halfvec_send(h), 'hex'), 'NULL'),
                          coalesce(encode(sparsevec_send(s), 'hex'), 'NULL'), coalesce(b::text, 'NULL')
                   FROM kinds ORDER BY id"
kinds_queries=("h <-> '[3,-2,10,1]'" "s <#> '{1:2,5:-1}/6'" "b <~> B'10100000'")
check_kinds() {   # label db
    local label="$1" db="$2" got want query index
    want=$(q "$src" -F ' ' -c "$kinds_fingerprint")
    if got=$(q "$db" -F ' ' -c "$kinds_fingerprint" 2>&1) && [ "$got" = "$want" ]; then
        pass "$label: halfvec, sparsevec and bit values identical bit for bit"
    else
        fail "$label: halfvec, sparsevec and bit values identical" "$(diff <(echo "$want") <(echo "$got") | head -n 5)"
    fi
    for query in "${kinds_queries[@]}"; do
        index=$(q "$db" -c "SET enable_seqscan = off; EXPLAIN (COSTS OFF)
                            SELECT id FROM kinds ORDER BY $query LIMIT 5" | grep -o 'Index Scan using kinds_[hsb]' || true)
        got=$(q "$db" -c "SET enable_seqscan = off;
                          SELECT string_agg(round(d::numeric, 3)::text, ',') FROM
                            (SELECT $query AS d FROM kinds ORDER BY $query LIMIT 8) t" 2>&1 || true)
        want=$(q "$src" -c "SET enable_indexscan = off;
                            SELECT string_agg(round(d::numeric, 3)::text, ',') FROM
                              (SELECT $query AS d FROM kinds ORDER BY $query LIMIT 8) t")
        if [ -n "$index" ] && [ "$got" = "$want" ]; then
            pass "$label: ${index#Index Scan using } answers ORDER BY $query as an exact scan"
        else
            fail "$label: faiss index for ORDER BY $query" "index: '$index'; want $want, got $got"
        fi
    done
}

# Runs a command, recording a check for it; returns its status.
step() {   # label command...
    local label="$1"
    shift
    if "$@" >"$work/step.out" 2>&1; then
        pass "$label"
        return 0
    fi
    fail "$label" "$(tail -n 20 "$work/step.out")"
    return 1
}

# (a) plain pg_dump, restored with psql ---------------------------------------

db="${prefix}_plain"
newdb "$db"
if step "(a) pg_dump -Fp" pg_dump -Fp -f "$work/dump.sql" "$src" &&
   step "(a) restore with psql" psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$work/dump.sql"; then
    compare "(a) plain" "$db" items
    check_typmod "(a) plain" "$db" items
    check_objects "(a) plain" "$db"
    check_kinds "(a) plain" "$db"
fi

# (b) custom-format pg_dump, restored with pg_restore -------------------------

db="${prefix}_custom"
newdb "$db"
if step "(b) pg_dump -Fc" pg_dump -Fc -f "$work/dump.custom" "$src" &&
   step "(b) pg_restore" pg_restore --exit-on-error -d "$db" "$work/dump.custom"; then
    compare "(b) custom" "$db" items
    check_typmod "(b) custom" "$db" items
    check_objects "(b) custom" "$db"
    check_kinds "(b) custom" "$db"
fi

# (c) directory-format pg_dump, restored in parallel ---------------------------

db="${prefix}_directory"
newdb "$db"
if step "(c) pg_dump -Fd -j 2" pg_dump -Fd -j 2 -f "$work/dump.dir" "$src" &&
   step "(c) pg_restore -j 2" pg_restore --exit-on-error -j 2 -d "$db" "$work/dump.dir"; then
    compare "(c) directory" "$db" items
    check_typmod "(c) directory" "$db" items
    check_kinds "(c) directory" "$db"
fi

# (d) binary COPY into a new table ---------------------------------------------

q "$src" -c "CREATE TABLE items_binary (LIKE items INCLUDING DEFAULTS)"
if step "(d) binary COPY TO" \
        psql -X -q -v ON_ERROR_STOP=1 -d "$src" \
             -c "\\copy items TO '$work/items.bin' WITH (FORMAT binary)" &&
   step "(d) binary COPY FROM into a new table" \
        psql -X -q -v ON_ERROR_STOP=1 -d "$src" \
             -c "\\copy items_binary FROM '$work/items.bin' WITH (FORMAT binary)"; then
    compare "(d) binary COPY" "$src" items_binary
    check_typmod "(d) binary COPY" "$src" items_binary
fi
# The binary file holds vector_send's bytes: the first row's v field.
first_field=$(q "$src" -c "SELECT encode(vector_send(v), 'hex') FROM items ORDER BY id LIMIT 1")
if od -An -v -tx1 "$work/items.bin" | tr -d ' \n' | grep -q "$first_field"; then
    pass "(d) the binary COPY file holds vector_send's bytes ($first_field)"
else
    fail "(d) the binary COPY file holds vector_send's bytes" "did not find $first_field"
fi

# (e) text COPY into a new table ----------------------------------------------

q "$src" -c "CREATE TABLE items_text (LIKE items INCLUDING DEFAULTS)"
if step "(e) text COPY TO" \
        psql -X -q -v ON_ERROR_STOP=1 -d "$src" -c "\\copy items TO '$work/items.txt'" &&
   step "(e) text COPY FROM into a new table" \
        psql -X -q -v ON_ERROR_STOP=1 -d "$src" -c "\\copy items_text FROM '$work/items.txt'"; then
    compare "(e) text COPY" "$src" items_text
    check_typmod "(e) text COPY" "$src" items_text
fi
# The text form is the shortest that reads back: spot-check a few values.
if grep -q $'\t\\[1e-45\\]\t' "$work/items.txt" && grep -q $'\t\\[-0\\]\t' "$work/items.txt" &&
   grep -q '\[0.100000024,1.0000001,123456.79\]' "$work/items.txt"; then
    pass "(e) the text COPY file has [1e-45], [-0] and [0.100000024,1.0000001,123456.79]"
else
    fail "(e) the text COPY file has the expected shortest forms" \
         "$(grep -E $'^(2|3|8)\t' "$work/items.txt" || true)"
fi

echo "dump/restore: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
