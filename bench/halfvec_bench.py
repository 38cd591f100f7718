#!/usr/bin/python3
"""halfvec against vector: storage, faiss index build, QPS and recall@10.

pgvector users pick halfvec to halve storage; this measures what it costs
and saves in benzer, in one run, with exact results computed in the same
run as the reference:

  * row storage of 784-d Fashion-MNIST and of 2 048-d random vectors as
    vector and as halfvec (table + TOAST bytes, bytes per value);
  * for benzer's automatic index choice, HNSW32 and HNSW32,SQfp16 (halves
    in the index too), on a vector column and on a halfvec column: CREATE INDEX time, index size, and QPS and
    recall@10 (against exact search on the vector column) of one client
    running the queries through a prepared statement.

    /usr/bin/python3 bench/halfvec_bench.py [--dsn DSN] [--queries N]

Needs Debian's python3-numpy and python3-psycopg2, the Fashion-MNIST files
(dataset-fashion-mnist) and a server with benzer installed; the database
(default benzer_halfvec) is created if missing. Writes
bench/results/halfvec_issue15.md and prints it.
"""

import argparse
import gzip
import io
import os
import time

import numpy as np
import psycopg2

DATA = "/usr/share/datasets/fashion-mnist"


def images(name):
    raw = gzip.open(os.path.join(DATA, name)).read()
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(-1, 784).astype(np.float32) / 255.0


def literal(v):
    return "[" + ",".join("%.6g" % x for x in v) + "]"


def copy_rows(cur, table, rows):
    buf = io.StringIO()
    for i, v in enumerate(rows):
        buf.write("%d\t%s\n" % (i + 1, literal(v)))
    buf.seek(0)
    cur.copy_expert(f"COPY {table} (id, v) FROM STDIN", buf)


def storage(cur, table):
    cur.execute(f"""SELECT pg_table_size('{table}'),
                           coalesce(pg_total_relation_size(reltoastrelid), 0),
                           (SELECT avg(pg_column_size(v)) FROM {table})
                    FROM pg_class WHERE oid = '{table}'::regclass""")
    total, toast, per_value = cur.fetchone()
    return total, toast, float(per_value)


def run_queries(conn, table, queries, cast):
    cur = conn.cursor()
    cur.execute("DEALLOCATE ALL")
    # A typed parameter: the query vector is read once per execution (a
    # text parameter cast in the query would be read again for every row
    # under a generic plan).
    cur.execute(f"PREPARE q({cast}) AS SELECT id FROM {table} ORDER BY v <-> $1 LIMIT 10")
    results = []
    start = time.perf_counter()
    for q in queries:
        cur.execute("EXECUTE q(%s)", (q,))
        results.append([r[0] for r in cur.fetchall()])
    elapsed = time.perf_counter() - start
    return results, len(queries) / elapsed


def recall(results, truth):
    hits = sum(len(set(r) & set(t)) for r, t in zip(results, truth))
    return hits / (10.0 * len(truth))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", default="dbname=benzer_halfvec")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()

    dbname = dict(p.split("=", 1) for p in args.dsn.split()).get("dbname", "benzer_halfvec")
    admin = psycopg2.connect(args.dsn.replace("dbname=" + dbname, "dbname=postgres"))
    admin.autocommit = True
    with admin.cursor() as c:
        c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        if c.fetchone() is None:
            c.execute(f'CREATE DATABASE "{dbname}"')
    admin.close()

    conn = psycopg2.connect(args.dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SET maintenance_work_mem = '1GB'")
    cur.execute("DROP EXTENSION IF EXISTS benzer CASCADE")
    cur.execute("CREATE EXTENSION benzer")
    cur.execute("DROP TABLE IF EXISTS fm_vector, fm_halfvec, fm_inline, wide_vector, wide_halfvec")

    train = images("train-images-idx3-ubyte.gz")
    queries = [literal(v) for v in images("t10k-images-idx3-ubyte.gz")[: args.queries]]
    cur.execute("CREATE TABLE fm_vector (id int PRIMARY KEY, v vector(784))")
    cur.execute("CREATE TABLE fm_halfvec (id int PRIMARY KEY, v halfvec(784))")
    copy_rows(cur, "fm_vector", train)
    cur.execute("INSERT INTO fm_halfvec SELECT id, v::halfvec(784) FROM fm_vector")
    # The same vectors kept in the row, to tell TOAST's cost from the type's.
    cur.execute("CREATE TABLE fm_inline (id int PRIMARY KEY, v vector(784)) "
                "WITH (toast_tuple_target = 8160)")
    cur.execute("INSERT INTO fm_inline SELECT id, v FROM fm_vector")

    rng = np.random.default_rng(7)
    wide = rng.standard_normal((20000, 2048)).astype(np.float32)
    cur.execute("CREATE TABLE wide_vector (id int PRIMARY KEY, v vector(2048))")
    cur.execute("CREATE TABLE wide_halfvec (id int PRIMARY KEY, v halfvec(2048))")
    copy_rows(cur, "wide_vector", wide)
    cur.execute("INSERT INTO wide_halfvec SELECT id, v::halfvec(2048) FROM wide_vector")
    cur.execute("VACUUM ANALYZE fm_vector, fm_halfvec, fm_inline, wide_vector, wide_halfvec")

    out = ["# halfvec against vector (issue 15)", "",
           f"`/usr/bin/python3 bench/halfvec_bench.py --queries {args.queries}`; "
           "one client, prepared statements, exact top-10 on the vector column as "
           "the reference. PostgreSQL 15, 2 cores.", "",
           "## Storage", "",
           "| data | type | table + TOAST | of which TOAST | bytes per value |",
           "|---|---|---:|---:|---:|"]
    for label, table in [("Fashion-MNIST 60 000 x 784", "fm_vector"),
                         ("Fashion-MNIST 60 000 x 784, toast_tuple_target = 8160", "fm_inline"),
                         ("Fashion-MNIST 60 000 x 784", "fm_halfvec"),
                         ("random 20 000 x 2 048", "wide_vector"),
                         ("random 20 000 x 2 048", "wide_halfvec")]:
        total, toast, per_value = storage(cur, table)
        kind = "halfvec" if table.endswith("halfvec") else "vector"
        out.append(f"| {label} | {kind} | {total / 2**20:.1f} MiB | "
                   f"{toast / 2**20:.1f} MiB | {per_value:.0f} |")

    cur.execute("SET enable_indexscan = off")
    cur.execute("SET enable_bitmapscan = off")
    truth, exact_qps = run_queries(conn, "fm_vector", queries, "vector")
    half_exact, half_exact_qps = run_queries(conn, "fm_halfvec", queries, "halfvec")
    inline_exact, inline_exact_qps = run_queries(conn, "fm_inline", queries, "vector")
    cur.execute("RESET enable_indexscan")
    cur.execute("RESET enable_bitmapscan")
    out += ["", "## Search on Fashion-MNIST (60 000 x 784)", "",
            "| index | column | build s | index MiB | QPS | recall@10 |",
            "|---|---|---:|---:|---:|---:|",
            f"| none (exact scan) | vector | | | {exact_qps:.1f} | 1.000 |",
            f"| none (exact scan) | vector in the row (toast_tuple_target = 8160) | | | "
            f"{inline_exact_qps:.1f} | {recall(inline_exact, truth):.3f} |",
            f"| none (exact scan) | halfvec | | | {half_exact_qps:.1f} | "
            f"{recall(half_exact, truth):.3f} |"]

    for factory in ["", "HNSW32", "HNSW32,SQfp16"]:
        for table, cast in [("fm_vector", "vector"), ("fm_halfvec", "halfvec")]:
            option = f" WITH (factory = '{factory}')" if factory else ""
            start = time.perf_counter()
            cur.execute(f"CREATE INDEX {table}_idx ON {table} USING faiss (v){option}")
            build = time.perf_counter() - start
            cur.execute(f"SELECT pg_relation_size('{table}_idx')")
            size = cur.fetchone()[0]
            cur.execute(f"SELECT benzer_index_info('{table}_idx'::regclass)::text")
            results, qps = run_queries(conn, table, queries, cast)
            name = factory or "automatic"
            out.append(f"| {name} | {cast} | {build:.1f} | {size / 2**20:.1f} | {qps:.1f} | "
                       f"{recall(results, truth):.3f} |")
            cur.execute(f"DROP INDEX {table}_idx")

    text = "\n".join(out) + "\n"
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "results", "halfvec_issue15.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
