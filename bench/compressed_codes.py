#!/usr/bin/python3
"""IVF-Flat against compressed codes (IVF-SQ8, IVF-PQ<m>np) with their lists
in pages, re-ranked by the table's vectors (src/pg/faiss_rerank.h), on one
table, in one run.

For each structure (same nlist as the automatic choice, 4 sqrt(rows)), on its
own copy of the table so that all indexes exist at once: build time, index
size, then recall@10 against the exact top 10 (a sequential scan in the same
run) and queries per second at the default settings (the recall target), one
client, a prepared statement, the structures' timed runs interleaved.

    /usr/bin/python3 bench/compressed_codes.py --dsn "host=/tmp/dev port=5433 dbname=benzer_scale" \\
        --table fmnist [--queries 200] [--seconds 10] [--rounds 3]

The table needs columns id int and v vector. Prints a Markdown table.
Needs python3-psycopg2.
"""

import argparse
import math
import random
import time

import psycopg2


def connect(dsn):
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--table", default="fmnist")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0, help="per timed run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timed runs per structure")
    ap.add_argument("--structures", default="Flat,SQ8", help="comma list: Flat, SQ8, SQ4, PQ<m>np")
    ap.add_argument("--keep", action="store_true", help="keep the copies")
    args = ap.parse_args()

    conn = connect(args.dsn)
    cur = conn.cursor()
    cur.execute(f"SELECT count(*), max(vector_dims(v)) FROM {args.table}")
    rows, dim = cur.fetchone()
    nlist = max(16, int(4.0 * math.sqrt(rows)))
    cur.execute(f"SELECT id FROM {args.table} ORDER BY id")
    ids = [r[0] for r in cur.fetchall()]
    rng = random.Random(20261203)
    queries = rng.sample(ids, args.queries)

    # Ground truth: the exact top 10 of each query row's vector.
    cur.execute("SET enable_indexscan = off")
    cur.execute("SET enable_bitmapscan = off")
    truth = {}
    for q in queries:
        cur.execute(f"SELECT id FROM {args.table} ORDER BY v <-> (SELECT v FROM {args.table} "
                    f"WHERE id = %s), id LIMIT 10", (q,))
        truth[q] = [r[0] for r in cur.fetchall()]
    cur.execute("RESET enable_indexscan")
    cur.execute("RESET enable_bitmapscan")

    structures = [s.strip() for s in args.structures.split(",") if s.strip()]
    results = {}
    for s in structures:
        copy = f"cc_{s.lower()}"
        factory = f"IVF{nlist},{s}"
        cur.execute(f"DROP TABLE IF EXISTS {copy}")
        cur.execute(f"CREATE TABLE {copy} AS SELECT id, v FROM {args.table}")
        cur.execute(f"ALTER TABLE {copy} ADD PRIMARY KEY (id)")
        cur.execute("SET maintenance_work_mem = '4GB'")
        t0 = time.time()
        cur.execute(f"CREATE INDEX {copy}_idx ON {copy} USING faiss (v) WITH (factory = %s)",
                    (factory,))
        build = time.time() - t0
        cur.execute(f"VACUUM ANALYZE {copy}")
        cur.execute(f"SELECT pg_relation_size('{copy}_idx')")
        size = cur.fetchone()[0]
        results[s] = {"factory": factory, "build_s": build, "bytes": size, "qps": []}

    # Recall, and the statements the timed runs use (one session each).
    sessions = {}
    for s in structures:
        c = connect(args.dsn).cursor()
        c.execute("SET enable_seqscan = off")
        c.execute(f"PREPARE knn(int) AS SELECT id FROM cc_{s.lower()} ORDER BY v <-> "
                  f"(SELECT v FROM {args.table} WHERE id = $1) LIMIT 10")
        hits = 0
        for q in queries:
            c.execute("EXECUTE knn(%s)", (q,))
            got = [r[0] for r in c.fetchall()]
            hits += len(set(got) & set(truth[q]))
        results[s]["recall"] = hits / (10.0 * len(queries))
        sessions[s] = c

    for _ in range(args.rounds):
        for s in structures:
            c = sessions[s]
            n = 0
            t0 = time.time()
            while time.time() - t0 < args.seconds:
                c.execute("EXECUTE knn(%s)", (queries[n % len(queries)],))
                c.fetchall()
                n += 1
            results[s]["qps"].append(n / (time.time() - t0))

    raw = rows * dim * 4
    print(f"{args.table}: {rows} rows x {dim} dimensions, raw vectors {raw / 2**20:.0f} MB, "
          f"{len(queries)} queries, {args.rounds} interleaved runs of {args.seconds:.0f} s\n")
    print("| structure | build s | index MB | x raw vectors | recall@10 | QPS (runs) |")
    print("|---|---:|---:|---:|---:|---|")
    for s in structures:
        r = results[s]
        qps = ", ".join(f"{x:.0f}" for x in r["qps"])
        print(f"| {r['factory']} | {r['build_s']:.1f} | {r['bytes'] / 2**20:.0f} | "
              f"{r['bytes'] / raw:.2f} | {r['recall']:.3f} | {qps} |")
    if not args.keep:
        for s in structures:
            cur.execute(f"DROP TABLE IF EXISTS cc_{s.lower()}")


if __name__ == "__main__":
    main()
