#!/usr/bin/python3
"""hardening_overhead.py: what the hardening of issue 9 costs a query.

The checks added on the query path (the query vector's norm, the cosine zero
test, the search setup's exhaustive/covers-all decisions, the planner hook
that drops unordered paths) run once per query. This measures "similar to
row :id" top-10 queries through pgbench, 1 and 4 clients, on two tables:

  fmnist   Fashion-MNIST's 60 000 train images (784-d, Debian's
           dataset-fashion-mnist), the automatic index (IVF979,Flat)
  gen500k  500 000 generated 256-d vectors in 1 000 Gaussian clusters, the
           automatic index (IVF2828,Flat), nprobe 8

with two builds of benzer.so installed in turn into the same server (the
.so files given as arguments), alternating A, B, A, B so that drift on a
busy machine hits both. Prints transactions per second of every run and the
ratio of the medians.

  sudo /usr/bin/python3 bench/hardening_overhead.py OLD.so NEW.so

Needs a running server the PG* variables name (superuser, the benzer
extension installable), python3-numpy and python3-psycopg2.
"""

import gzip
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile

import numpy as np
import psycopg2

TABLES = {
    "fmnist": {"rows": 60000, "dim": 784},
    "gen500k": {"rows": 500000, "dim": 256},
}


def conn():
    c = psycopg2.connect("")
    c.autocommit = True
    return c


def write_copy_binary(path, vectors):
    """A COPY BINARY file of (id int4, v vector) rows."""
    n, d = vectors.shape
    with open(path, "wb") as f:
        f.write(b"PGCOPY\n\xff\r\n\0" + struct.pack("!ii", 0, 0))
        row_head = struct.pack("!h", 2)
        vec_len = 4 + 4 * d
        be = vectors.astype(">f4")
        for i in range(n):
            f.write(row_head + struct.pack("!ii", 4, i + 1) + struct.pack("!ihh", vec_len, d, 0))
            f.write(be[i].tobytes())
        f.write(struct.pack("!h", -1))


def fashion_mnist():
    path = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
    if not os.path.exists(path):
        for root, _, files in os.walk("/usr/share"):
            for name in files:
                if name.startswith("train-images-idx3-ubyte"):
                    path = os.path.join(root, name)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(-1, 784).astype(np.float32)


def generated(rows, dim, seed=7):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(1000, dim)).astype(np.float32)
    labels = rng.integers(0, 1000, size=rows)
    return centers[labels] + 0.3 * rng.normal(size=(rows, dim)).astype(np.float32)


def load(c, name, vectors, options):
    with c.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (name,))
        if cur.fetchone()[0] is not None:
            cur.execute(f"SELECT count(*) FROM {name}")
            if cur.fetchone()[0] == len(vectors):
                return
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v vector({vectors.shape[1]}))")
        tmp = tempfile.NamedTemporaryFile(suffix=".copy", delete=False, dir="/tmp")
        tmp.close()
        write_copy_binary(tmp.name, vectors)
        os.chmod(tmp.name, 0o644)
        cur.execute(f"COPY {name} FROM %s WITH (FORMAT binary)", (tmp.name,))
        os.unlink(tmp.name)
        cur.execute("SET maintenance_work_mem = '2GB'")
        cur.execute(f"CREATE INDEX {name}_idx ON {name} USING faiss (v) {options}")
        cur.execute(f"VACUUM ANALYZE {name}")


def throughput(name, rows, clients, seconds):
    """Queries per second of `clients` connections, each warmed up first (a
    connection's first query loads the index into it: not what is measured
    here)."""
    import threading
    import time

    sql = f"SELECT id FROM {name} ORDER BY v <-> (SELECT v FROM {name} WHERE id = %s) LIMIT 10"
    conns = [conn() for _ in range(clients)]
    for c in conns:
        with c.cursor() as cur:
            for i in range(20):
                cur.execute(sql, (1 + i * 997 % rows,))
                cur.fetchall()
    counts = [0] * clients
    stop = time.time() + seconds

    def client(k):
        rng = np.random.default_rng(k)
        with conns[k].cursor() as cur:
            while time.time() < stop:
                cur.execute(sql, (int(rng.integers(1, rows + 1)),))
                cur.fetchall()
                counts[k] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    return sum(counts) / seconds


def install(so):
    libdir = subprocess.run(["pg_config", "--pkglibdir"], capture_output=True, text=True,
                            check=True).stdout.strip()
    shutil.copy(so, os.path.join(libdir, "benzer.so"))


def main():
    old, new = sys.argv[1], sys.argv[2]
    seconds = int(os.environ.get("SECONDS_PER_RUN", "15"))
    install(new)
    c = conn()
    with c.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS benzer")
    load(c, "fmnist", fashion_mnist(), "")
    load(c, "gen500k", generated(500000, 256), "WITH (nprobe = 8)")
    c.close()
    results = {}
    for rep in range(2):
        for label, so in (("before", old), ("after", new)):
            install(so)
            for name, spec in TABLES.items():
                for clients in (1, 4):
                    tps = throughput(name, spec["rows"], clients, seconds)
                    results.setdefault((name, clients, label), []).append(tps)
                    print(f"{label:6s} {name:8s} {clients} client(s): {tps:8.1f} queries/s", flush=True)
    install(new)
    print()
    print("| table | clients | before (queries/s) | after (queries/s) | after / before |")
    print("|---|---|---|---|---|")
    for name in TABLES:
        for clients in (1, 4):
            b = statistics.median(results[(name, clients, "before")])
            a = statistics.median(results[(name, clients, "after")])
            print(f"| {name} | {clients} | {b:.1f} | {a:.1f} | {a / b:.3f} |")


if __name__ == "__main__":
    main()
