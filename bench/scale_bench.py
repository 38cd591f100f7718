#!/usr/bin/python3
"""scale_bench.py: how the cost of a faiss index search grows with the table.

Issue "Fast at every size": a top-10 query should not get much slower as the
table grows (the target is a per-query cost growing at most like sqrt(N)).
This measures, for whatever benzer build the server has installed, on tables
of growing size:

  fmnist     Fashion-MNIST's 60 000 train images (784-d, pixel values 0..255
             as floats, Debian's dataset-fashion-mnist), label = the class
  gen<N>     N x 256 generated vectors, tables gen50k, gen100k, gen250k,
             gen500k (--sizes 50000,100000,250000,500000):
             1 000 centres with gamma(2, 1) elements, each row a random centre
             + Gaussian noise (sigma 2.0, --sigma), then ReLU; label uniform
             0..9, independent of the cluster. Rows come in chunks of 10 000,
             each from its own seeded generator, so every size is a prefix of
             every larger one (nested results) whatever sizes a run asks for.
             Why sigma 2.0: the centres are ~32 apart (the nearest other
             centre ~27, at least ~24); with sigma 2.0 a cluster's radius
             (~27) equals that nearest-centre distance, so neighbouring
             clusters overlap a little: at 50k rows 99.9 % of the exact
             10 nearest neighbours are in the query's cluster and the nearest
             row of another cluster is only ~8 % farther than the 10th
             neighbour. sigma 0.5 (radius ~8) gives fully separate clusters;
             sigma 2.5 mixes them (10 % of the neighbours from other
             clusters).

Every table: t(id int PRIMARY KEY, label int, bucket int, v vector(D))
WITH (toast_tuple_target = 8160), bucket uniform 0..999 (independent), loaded
with COPY in binary format, kept between runs (loading is slow; --reload,
--drop). Per table:

  1. CREATE INDEX <t>_l2 ON t USING faiss (v vector_l2_ops, label, bucket)
     (maintenance_work_mem 2GB, --index-options): build seconds,
     pg_relation_size, benzer_index_info(); a check that the plan of the
     unfiltered query uses the index (a loud warning otherwise).
  2. recall@10 of "similar to row :id",
        SELECT id FROM t WHERE <filter> ORDER BY v <-> (SELECT v FROM t WHERE
        id = :id) LIMIT 10
     for 200 seeded query ids (--queries; the query row is in the table, as
     in the app) at 100 % (no filter), 10 % (label = L), 1 % (bucket IN
     (10 values)) and 0.1 % (bucket = B), L and B random per query. Exact
     answers from numpy in float64 on the same data; a returned row counts if
     it matches the filter and is no farther than the exact 10th neighbour
     (relative 1e-6 + absolute 1e-9 slack, so ties count). Also: queries that
     returned fewer than 10 rows (under-filled), rows that fail the filter,
     the plan of each filter and the latency of the recall loop (one
     connection, literal SQL).
  3. pgbench -n -M prepared -T 15 (--seconds) with 1 and 4 clients
     (--clients), each after a 3 s warm-up run: the unfiltered query, the
     10 % one, and a floor, SELECT v FROM t WHERE id = :id (primary-key
     lookup returning the vector through the same client). 1 % and 0.1 % at
     1 client for the largest generated size (--all-filters: every table).
     Each new pgbench connection loads the index into its backend, inside
     the timed run; the first query of a fresh connection is timed
     separately (connect + one query, 3 times).
  4. For fmnist and the largest size (not with --skip-ipcos): the L2 index is
     dropped and vector_ip_ops (ORDER BY v <#> q) and vector_cosine_ops
     (v <=> q) indexes are built in turn, for recall@10 only.

Each index is dropped after its measurements. Output: markdown tables on
stdout and in bench/results/scale[_LABEL].md, everything in
scale[_LABEL].json (with --label, date, git HEAD, benzer.so md5, settings),
and qps_vs_rows[_LABEL].png (log-log queries/s at 1 client against rows for
the generated sizes, with a sqrt(N) reference). The growth table fits
ms/query ~ N^b by least squares on log-log. Progress goes to stderr.

    /usr/bin/python3 bench/scale_bench.py --label before
    /usr/bin/python3 bench/scale_bench.py --sizes 50000 --skip-fmnist --seconds 3 --queries 30

Options: --sizes, --skip-fmnist, --skip-ipcos, --skip-pgbench (recall only),
--all-filters, --seconds (15), --warmup (3), --queries (200), --clients (1,4),
--index-options "WITH (...)", --sigma (2.0), --seed, --label, --out-dir,
--reload, --keep-tables (default) / --drop, --dsn, --replot FILE.json
(redo the markdown and plot from a json). The small run above takes about a
minute on 2 cores; the default run roughly 20-30 minutes (mostly pgbench:
6 timed runs of 18 s per table, plus index builds).

Needs Debian's python3-numpy, python3-psycopg2 and python3-matplotlib
(/usr/bin/python3), pgbench, and a superuser connection (--dsn, default
"host=/tmp/dev port=5433 user=postgres dbname=benzer_scale"; libpq's PG*
variables fill in what it leaves out) to a server with benzer installed; the
database is created if missing. COPY reads a file the script writes to /tmp
(so a server on this machine), falling back to COPY FROM STDIN.
Disk, default sizes: tables ~1.1 GB (kept) and one index at a time (up to
~0.6 GB). Memory: each pgbench connection holds its own copy of the index.
"""

import argparse
import datetime
import gzip
import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import psycopg2  # noqa: E402
from psycopg2.extensions import make_dsn, parse_dsn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_DSN = "host=/tmp/dev port=5433 user=postgres dbname=benzer_scale"
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
K = 10
GEN_DIM = 256
GEN_CENTRES = 1000
GEN_CHUNK = 10000
CANDIDATES = 64       # exact top-k: candidates re-checked with direct distances

OPCLASSES = {
    # key: (operator class, operator, index suffix, metric)
    "l2": ("vector_l2_ops", "<->", "l2", "L2"),
    "ip": ("vector_ip_ops", "<#>", "ip", "IP"),
    "cos": ("vector_cosine_ops", "<=>", "cos", "cosine"),
}
FILTERS = [("100", "100 %"), ("10", "10 %"), ("1", "1 %"), ("0.1", "0.1 %")]

T0 = time.time()


def log(msg):
    el = time.time() - T0
    print(f"[{time.strftime('%H:%M:%S')} +{el:6.0f}s] {msg}", file=sys.stderr, flush=True)


def warn(msg):
    bar = "!" * 78
    print(f"\n{bar}\n[{time.strftime('%H:%M:%S')}] WARNING: {msg}\n{bar}\n", file=sys.stderr, flush=True)


def human(n):
    if n % 1000000 == 0:
        return f"{n // 1000000}m"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


# --- data --------------------------------------------------------------------

def read_idx(path, offset):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def fmnist_data(seed):
    x = read_idx(os.path.join(FMNIST_DIR, "train-images-idx3-ubyte.gz"), 16).reshape(-1, 784)
    labels = read_idx(os.path.join(FMNIST_DIR, "train-labels-idx1-ubyte.gz"), 8).astype(np.int32)
    if len(labels) != len(x):
        raise RuntimeError(f"Fashion-MNIST: {len(x)} images but {len(labels)} labels")
    bucket = np.random.default_rng([seed, 7, 60000]).integers(0, 1000, len(x)).astype(np.int32)
    return x.astype(np.float32), labels, bucket


def gen_data(n, seed, sigma, dim=GEN_DIM):
    """n rows of the clustered generator. Chunk c (GEN_CHUNK rows) comes from
    default_rng([seed, c + 1]) and is generated whole, so row i does not
    depend on n: every size is a prefix of every larger one."""
    centres = np.random.default_rng(seed).gamma(shape=2.0, scale=1.0, size=(GEN_CENTRES, dim))
    x = np.empty((n, dim), np.float32)
    label = np.empty(n, np.int32)
    bucket = np.empty(n, np.int32)
    for c0 in range(0, n, GEN_CHUNK):
        rng = np.random.default_rng([seed, c0 // GEN_CHUNK + 1])
        cl = rng.integers(0, GEN_CENTRES, GEN_CHUNK)
        rows = centres[cl] + sigma * rng.standard_normal((GEN_CHUNK, dim))
        lab = rng.integers(0, 10, GEN_CHUNK)
        buc = rng.integers(0, 1000, GEN_CHUNK)
        m = min(GEN_CHUNK, n - c0)
        x[c0:c0 + m] = np.maximum(0.0, rows[:m])
        label[c0:c0 + m] = lab[:m]
        bucket[c0:c0 + m] = buc[:m]
    return x, label, bucket


def write_copy_binary(path, x, label, bucket):
    """COPY BINARY file of (id int4, label int4, bucket int4, v vector) rows.
    vector's binary format: int16 dim, int16 unused (0), dim float4, all
    big-endian; every field is preceded by its int32 length."""
    n, d = x.shape
    dt = np.dtype([("nf", ">i2"),
                   ("l1", ">i4"), ("id", ">i4"),
                   ("l2", ">i4"), ("label", ">i4"),
                   ("l3", ">i4"), ("bucket", ">i4"),
                   ("l4", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("v", ">f4", (d,))])
    rec = np.empty(n, dt)
    rec["nf"] = 4
    rec["l1"] = rec["l2"] = rec["l3"] = 4
    rec["id"] = np.arange(1, n + 1)
    rec["label"] = label
    rec["bucket"] = bucket
    rec["l4"] = 4 + 4 * d
    rec["dim"] = d
    rec["unused"] = 0
    rec["v"] = x
    with open(path, "wb") as f:
        f.write(b"PGCOPY\n\xff\r\n\0" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big"))
        rec.tofile(f)
        f.write((-1).to_bytes(2, "big", signed=True))


# --- database helpers -----------------------------------------------------------

def connect(dsn):
    c = psycopg2.connect(dsn)
    c.autocommit = True
    return c


def sql(conn, query, params=None):
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else None


def sql1(conn, query, params=None):
    rows = sql(conn, query, params)
    return rows[0][0] if rows else None


def library_md5(conn):
    """md5 of the installed benzer.so (the server's PKGLIBDIR, else pg_config's)."""
    libdir = None
    try:
        libdir = sql1(conn, "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'")
    except psycopg2.Error:
        pass
    if not libdir:
        try:
            libdir = subprocess.run(["pg_config", "--pkglibdir"], capture_output=True,
                                    text=True).stdout.strip()
        except OSError:
            libdir = "/usr/lib/postgresql/15/lib"
    try:
        with open(os.path.join(libdir, "benzer.so"), "rb") as f:
            return hashlib.md5(f.read()).hexdigest()[:12]
    except OSError:
        return "?"


def git_head():
    try:
        out = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True)
        head = out.stdout.strip() or "?"
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head, bool(dirty)
    except OSError:
        return "?", None


def plan_summary(lines, index):
    """A short description of a plan: which scan, and where the filter went."""
    text = "\n".join(lines)
    for i, line in enumerate(lines):
        if f"Index Scan using {index} " not in line:
            continue
        # the node's own detail lines: indented deeper, up to the next node
        indent = len(line) - len(line.lstrip())
        detail = []
        for d in lines[i + 1:]:
            if len(d) - len(d.lstrip()) <= indent or d.lstrip().startswith("->"):
                break
            detail.append(d.strip())
        s = "index"
        if any(d.startswith("Index Cond:") for d in detail):
            s += " (cond)"
        if any(d.startswith("Filter:") for d in detail):
            s += " + filter above"
        return s
    if "Seq Scan" in text:
        return "seq scan"
    m = re.search(r"(Index Scan|Index Only Scan|Bitmap Heap Scan) using (\S+)", text)
    if m:
        return f"{m.group(1).lower()} {m.group(2)}"
    return lines[0].strip() if lines else "?"


# --- exact answers ----------------------------------------------------------------

class Exact:
    """Exact distances in float64 for one data set."""

    def __init__(self, x):
        self.x = x.astype(np.float64)
        self.sq = np.einsum("ij,ij->i", self.x, self.x)
        self.norm = np.sqrt(self.sq)

    def matrix(self, metric, qrows):
        q = self.x[qrows]
        dots = q @ self.x.T
        if metric == "l2":
            d = self.sq[None, :] + self.sq[qrows][:, None] - 2.0 * dots
            return np.sqrt(np.maximum(d, 0.0))
        if metric == "ip":
            return -dots
        with np.errstate(divide="ignore", invalid="ignore"):
            d = 1.0 - dots / (self.norm[qrows][:, None] * self.norm[None, :])
        return np.where(np.isfinite(d), d, np.inf)

    def direct(self, metric, qrow, rows):
        """Distances from row qrow to rows, computed directly (no expansion)."""
        rows = np.asarray(rows, dtype=np.int64)
        q = self.x[qrow]
        xs = self.x[rows]
        if metric == "l2":
            return np.sqrt(((xs - q) ** 2).sum(1))
        if metric == "ip":
            return -(xs @ q)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = 1.0 - (xs @ q) / (np.linalg.norm(xs, axis=1) * np.linalg.norm(q))
        return np.where(np.isfinite(d), d, np.inf)

    def truth(self, metric, qrows, masks):
        """For each query i and filter f: (sorted exact top-K row indexes,
        their distances, rows matching). masks[f][i]: bool mask or None."""
        out = {f: [None] * len(qrows) for f in masks}
        batch = max(1, int(2e8 // (8 * len(self.x))))
        for b0 in range(0, len(qrows), batch):
            qb = qrows[b0:b0 + batch]
            dm = self.matrix(metric, qb)
            for j, qrow in enumerate(qb):
                i = b0 + j
                for f, ms in masks.items():
                    d = dm[j]
                    mask = ms[i]
                    if mask is not None:
                        d = np.where(mask, d, np.inf)
                        nmatch = int(mask.sum())
                    else:
                        nmatch = len(d)
                    c = min(CANDIDATES, len(d) - 1)
                    cand = np.argpartition(d, c)[:c + 1]
                    cand = cand[np.isfinite(d[cand])]
                    dd = self.direct(metric, qrow, cand)
                    order = np.argsort(dd, kind="stable")[:K]
                    out[f][i] = (cand[order], dd[order], nmatch)
        return out


# --- the benchmark ------------------------------------------------------------------

class ScaleBench:
    def __init__(self, args):
        self.args = args
        self.dsn = args.dsn
        self.dbname = parse_dsn(self.dsn).get("dbname") if self.dsn else None
        self.dbname = self.dbname or os.environ.get("PGDATABASE") or "benzer_scale"
        if not self.dsn or "dbname" not in parse_dsn(self.dsn):
            self.dsn = make_dsn(self.dsn or "", dbname=self.dbname)
        self.notes = []
        self.results = dict(label=args.label, started=datetime.datetime.now().astimezone().isoformat(),
                            args=vars(args), datasets={}, notes=self.notes)
        self.gen_cache = None
        self.pgbench = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
        self.library = None

    # --- setup ---------------------------------------------------------------

    def ensure_database(self):
        admin = connect(make_dsn(self.dsn, dbname="postgres"))
        if not sql1(admin, "SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)):
            log(f"creating database {self.dbname}")
            sql(admin, f'CREATE DATABASE "{self.dbname}"')
        admin.close()
        conn = connect(self.dsn)
        sql(conn, "CREATE EXTENSION IF NOT EXISTS benzer")
        return conn

    def describe(self, conn):
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        cpu = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        head, dirty = git_head()
        self.library = library_md5(conn)
        # benzer's settings exist once the library is loaded in this backend
        sql(conn, "SELECT '[1]'::vector <-> '[2]'::vector")
        settings = dict(sql(conn, "SELECT name, setting FROM pg_settings WHERE name LIKE 'benzer.%' "
                                  "OR name IN ('shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', "
                                  "'jit', 'effective_cache_size', 'random_page_cost') ORDER BY name"))
        m = dict(nproc=os.cpu_count(), cpu=cpu, kernel=platform.release(),
                 postgres=sql1(conn, "SHOW server_version"),
                 benzer=sql1(conn, "SELECT extversion FROM pg_extension WHERE extname = 'benzer'"),
                 library_md5=self.library, git_head=head, git_dirty=dirty,
                 loadavg_start=os.getloadavg(), settings=settings)
        self.results["machine"] = m
        log(f"machine: {m['nproc']} CPUs ({cpu}), PostgreSQL {m['postgres']}, benzer {m['benzer']} "
            f"(benzer.so md5 {self.library}), git {head[:12]}{' (dirty)' if dirty else ''}, "
            f"load average {m['loadavg_start'][0]:.2f}")

    def check_library(self, conn):
        now = library_md5(conn)
        if now != self.library:
            msg = f"benzer.so changed during the run ({self.library} -> {now}) at {time.strftime('%H:%M:%S')}"
            self.notes.append(msg)
            warn(msg)
            self.library = now

    # --- tables ----------------------------------------------------------------

    def data_for(self, ds):
        if ds["kind"] == "fmnist":
            return fmnist_data(self.args.seed)
        if self.gen_cache is None:
            nmax = max(self.args.sizes)
            log(f"generating {nmax} x {GEN_DIM} rows (seed {self.args.seed}, sigma {self.args.sigma})")
            self.gen_cache = gen_data(nmax, self.args.seed, self.args.sigma)
        x, label, bucket = self.gen_cache
        n = ds["rows"]
        return x[:n], label[:n], bucket[:n]

    def table_tag(self, ds):
        if ds["kind"] == "fmnist":
            return f"scale_bench fmnist rows={ds['rows']} seed={self.args.seed}"
        return (f"scale_bench gen rows={ds['rows']} dim={GEN_DIM} seed={self.args.seed} "
                f"sigma={self.args.sigma} centres={GEN_CENTRES} chunk={GEN_CHUNK}")

    def ensure_table(self, conn, ds, x, label, bucket):
        t = ds["table"]
        tag = self.table_tag(ds)
        info = dict(reused=False)
        if not self.args.reload and sql1(conn, "SELECT to_regclass(%s)", (t,)) is not None:
            comment = sql1(conn, "SELECT obj_description(%s::regclass, 'pg_class')", (t,))
            count = sql1(conn, f"SELECT count(*) FROM {t}")
            if comment == tag and count == ds["rows"] and self.spot_check(conn, t, x, label, bucket):
                log(f"{t}: reusing the table ({count} rows)")
                info["reused"] = True
            else:
                log(f"{t}: exists but does not match ({count} rows, comment {comment!r}): reloading")
        if not info["reused"]:
            t0 = time.time()
            sql(conn, f"DROP TABLE IF EXISTS {t}")
            sql(conn, f"CREATE TABLE {t} (id int PRIMARY KEY, label int, bucket int, v vector({x.shape[1]})) "
                      "WITH (toast_tuple_target = 8160)")
            path = f"/tmp/scale_bench_{t}_{os.getpid()}.copy"
            try:
                write_copy_binary(path, x, label, bucket)
                os.chmod(path, 0o644)
                log(f"{t}: COPY {len(x)} rows ({os.path.getsize(path) / 2**20:.0f} MB file)")
                try:
                    sql(conn, f"COPY {t} FROM %s WITH (FORMAT binary)", (path,))
                except psycopg2.Error as e:
                    log(f"{t}: server-side COPY failed ({str(e).strip()}); COPY FROM STDIN instead")
                    sql(conn, f"TRUNCATE {t}")
                    with conn.cursor() as cur, open(path, "rb") as f:
                        cur.copy_expert(f"COPY {t} FROM STDIN WITH (FORMAT binary)", f)
            finally:
                if os.path.exists(path):
                    os.unlink(path)
            sql(conn, f"VACUUM (ANALYZE) {t}")
            sql(conn, f"COMMENT ON TABLE {t} IS %s", (tag,))
            info["load_s"] = round(time.time() - t0, 1)
            log(f"{t}: loaded in {info['load_s']} s")
        else:
            sql(conn, f"ANALYZE {t}")
        info["table_bytes"] = sql1(conn, "SELECT pg_total_relation_size(%s)", (t,))
        return info

    def spot_check(self, conn, t, x, label, bucket):
        """A few rows of an existing table against the data (same generator?)."""
        n = len(x)
        ids = sorted({1, n, n // 2, n // 3 + 1, 2 * n // 3})
        rows = sql(conn, f"SELECT id, label, bucket, v::text FROM {t} WHERE id = ANY(%s)", (ids,))
        if len(rows) != len(ids):
            return False
        for rid, lab, buc, vtext in rows:
            v = np.array([float(s) for s in vtext.strip("[]").split(",")], dtype=np.float64)
            if (lab != label[rid - 1] or buc != bucket[rid - 1] or len(v) != x.shape[1]
                    or not np.allclose(v, x[rid - 1], rtol=1e-6, atol=1e-6)):
                return False
        return True

    # --- queries -----------------------------------------------------------------

    def make_queries(self, ds):
        n = ds["rows"]
        q = self.args.queries
        rng = np.random.default_rng([self.args.seed, 11, n])
        ids = rng.choice(n, size=min(q, n), replace=False) + 1
        labels = rng.integers(0, 10, len(ids))
        b1 = [sorted(int(b) for b in rng.choice(1000, size=10, replace=False)) for _ in ids]
        b01 = rng.integers(0, 1000, len(ids))
        return dict(ids=[int(i) for i in ids], label=[int(v) for v in labels], bucket_in=b1,
                    bucket=[int(v) for v in b01])

    @staticmethod
    def where(f, qs, i):
        if f == "100":
            return ""
        if f == "10":
            return f"WHERE label = {qs['label'][i]} "
        if f == "1":
            return f"WHERE bucket IN ({', '.join(str(b) for b in qs['bucket_in'][i])}) "
        return f"WHERE bucket = {qs['bucket'][i]} "

    @staticmethod
    def masks(qs, label, bucket):
        n = len(qs["ids"])
        return {
            "100": [None] * n,
            "10": [label == qs["label"][i] for i in range(n)],
            "1": [np.isin(bucket, qs["bucket_in"][i]) for i in range(n)],
            "0.1": [bucket == qs["bucket"][i] for i in range(n)],
        }

    @staticmethod
    def statement(t, op, where, qid):
        return f"SELECT id FROM {t} {where}ORDER BY v {op} (SELECT v FROM {t} WHERE id = {qid}) LIMIT {K}"

    def explain(self, conn, query):
        return [r[0] for r in sql(conn, "EXPLAIN " + query)]

    def generic_plan(self, conn, t, op, f, index):
        """The plan pgbench -M prepared would get once PostgreSQL switches to
        a generic plan (parameters for id and the filter values)."""
        where = {"100": "", "10": "WHERE label = $2 ", "0.1": "WHERE bucket = $2 ",
                 "1": "WHERE bucket IN ($2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "}[f]
        nparam = {"100": 1, "10": 2, "0.1": 2, "1": 11}[f]
        name = f"scale_generic_{index}_{f.replace('.', '')}"
        sql(conn, f"PREPARE {name}({', '.join(['int'] * nparam)}) AS SELECT id FROM {t} {where}"
                  f"ORDER BY v {op} (SELECT v FROM {t} WHERE id = $1) LIMIT {K}")
        try:
            sql(conn, "SET plan_cache_mode = force_generic_plan")
            lines = [r[0] for r in sql(conn, f"EXPLAIN EXECUTE {name}({', '.join(['1'] * nparam)})")]
        finally:
            sql(conn, "RESET plan_cache_mode")
            sql(conn, f"DEALLOCATE {name}")
        return lines

    # --- index -------------------------------------------------------------------

    def build_index(self, conn, ds, key):
        t = ds["table"]
        opclass, op, suffix, _ = OPCLASSES[key]
        index = f"{t}_{suffix}"
        for other in OPCLASSES.values():
            sql(conn, f"DROP INDEX IF EXISTS {t}_{other[2]}")
        self.check_library(conn)
        sql(conn, "SET maintenance_work_mem = '2GB'")
        ddl = f"CREATE INDEX {index} ON {t} USING faiss (v {opclass}, label, bucket) {self.args.index_options}".strip()
        log(f"{ddl}")
        t0 = time.time()
        sql(conn, ddl)
        build_s = time.time() - t0
        sql(conn, "RESET maintenance_work_mem")
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM benzer_index_info(%s)", (index,))
            cols = [d[0] for d in cur.description]
            info = dict(zip(cols, cur.fetchone()))
        size = sql1(conn, "SELECT pg_relation_size(%s)", (index,))
        r = dict(index=index, ddl=ddl, build_s=round(build_s, 2), index_bytes=size, info=info)
        log(f"{index}: built in {build_s:.1f} s, {size / 2**20:.1f} MB, factory {info.get('factory')!r}, "
            f"description {info.get('description')!r}")
        return r

    def check_plans(self, conn, ds, key, qs, r):
        t = ds["table"]
        op = OPCLASSES[key][1]
        index = r["index"]
        plans, summaries, generic = {}, {}, {}
        for f, _ in FILTERS:
            lines = self.explain(conn, self.statement(t, op, self.where(f, qs, 0), qs["ids"][0]))
            plans[f] = lines
            summaries[f] = plan_summary(lines, index)
            try:
                g = self.generic_plan(conn, t, op, f, index)
                generic[f] = plan_summary(g, index)
                plans[f + "_generic"] = g
            except psycopg2.Error as e:
                generic[f] = f"error: {str(e).strip()}"
        r["plans"] = plans
        r["plan"] = summaries
        r["plan_generic"] = generic
        text = "\n".join(plans["100"])
        r["uses_index"] = f"Index Scan using {index}" in text
        log(f"{index}: plans (literal) " + ", ".join(f"{f} %: {s}" for f, s in summaries.items()))
        log(f"{index}: plans (generic, as pgbench -M prepared may use) "
            + ", ".join(f"{f} %: {s}" for f, s in generic.items()))
        if not r["uses_index"]:
            msg = (f"the unfiltered query on {t} does NOT use {index}: its figures measure another plan\n"
                   + text)
            self.notes.append(msg)
            warn(msg)

    def recall(self, conn, ds, key, qs, exact, r):
        t = ds["table"]
        op = OPCLASSES[key][1]
        qrows = np.array(qs["ids"]) - 1
        masks = self.masks(qs, ds["label"], ds["bucket"])
        t0 = time.time()
        truth = exact.truth(key, qrows, masks)
        log(f"{r['index']}: exact top-{K} for {len(qrows)} queries x {len(FILTERS)} filters "
            f"in {time.time() - t0:.1f} s")
        # the first query loads the index into this backend
        t0 = time.time()
        sql(conn, self.statement(t, op, "", qs["ids"][0]))
        r["first_query_ms_recall_conn"] = round((time.time() - t0) * 1000, 1)
        out = {}
        for f, _ in FILTERS:
            hits = denom = under = wrong = 0
            lat = []
            per_query = []
            for i, qid in enumerate(qs["ids"]):
                query = self.statement(t, op, self.where(f, qs, i), qid)
                t0 = time.perf_counter()
                rows = sql(conn, query)
                lat.append((time.perf_counter() - t0) * 1000)
                got = [row[0] for row in rows]
                ex_rows, ex_d, nmatch = truth[f][i]
                want = min(K, nmatch)
                if len(got) < want:
                    under += 1
                got_rows = np.array(sorted(set(got)), dtype=np.int64) - 1
                mask = masks[f][i]
                if mask is not None and len(got_rows):
                    ok = mask[got_rows]
                    wrong += int((~ok).sum())
                    got_rows = got_rows[ok]
                h = 0
                if len(got_rows) and want:
                    thr = ex_d[want - 1]
                    thr = thr + abs(thr) * 1e-6 + 1e-9
                    h = min(want, int((exact.direct(key, qrows[i], got_rows) <= thr).sum()))
                hits += h
                denom += want
                per_query.append(h / want if want else 1.0)
            lat = np.array(lat)
            out[f] = dict(recall=hits / denom if denom else float("nan"), under_filled=under, wrong_rows=wrong,
                          queries=len(qs["ids"]), ms_mean=round(float(lat.mean()), 3),
                          ms_p50=round(float(np.median(lat)), 3), ms_p95=round(float(np.percentile(lat, 95)), 3),
                          min_query_recall=round(min(per_query), 3) if per_query else None)
            log(f"{r['index']}: {f:>3} %: recall@{K} {out[f]['recall']:.4f}, under-filled {under}, "
                f"wrong rows {wrong}, p50 {out[f]['ms_p50']:.2f} ms")
        r["recall"] = out

    def first_queries(self, ds, key, qs, r, reps=3):
        """Connect + first query (loads the index into the new backend) + a second query."""
        t = ds["table"]
        op = OPCLASSES[key][1]
        res = []
        for j in range(reps):
            qid = qs["ids"][(j + 1) % len(qs["ids"])]
            t0 = time.perf_counter()
            c = connect(self.dsn)
            t1 = time.perf_counter()
            sql(c, self.statement(t, op, "", qid))
            t2 = time.perf_counter()
            sql(c, self.statement(t, op, "", qs["ids"][(j + 2) % len(qs["ids"])]))
            t3 = time.perf_counter()
            c.close()
            res.append(dict(connect_ms=round((t1 - t0) * 1000, 1), first_query_ms=round((t2 - t1) * 1000, 1),
                            second_query_ms=round((t3 - t2) * 1000, 2)))
        r["fresh_connection"] = res
        med = float(np.median([x["first_query_ms"] for x in res]))
        r["first_query_ms"] = med
        log(f"{r['index']}: fresh connection: first query {med:.0f} ms (median of {reps}; connect "
            f"{np.median([x['connect_ms'] for x in res]):.0f} ms, second query "
            f"{np.median([x['second_query_ms'] for x in res]):.2f} ms)")

    # --- pgbench ------------------------------------------------------------------

    def scripts(self, ds):
        t, n = ds["table"], ds["rows"]
        knn = f"ORDER BY v <-> (SELECT v FROM {t} WHERE id = :id) LIMIT {K};\n"
        head = f"\\set id random(1, {n})\n"
        b1 = "\\set b0 random(0, 99)\n" + "".join(f"\\set b{k} :b0 + {100 * k}\n" for k in range(1, 10))
        return {
            "100": head + f"SELECT id FROM {t} " + knn,
            "10": head + "\\set l random(0, 9)\n" + f"SELECT id FROM {t} WHERE label = :l " + knn,
            "1": head + b1 + f"SELECT id FROM {t} WHERE bucket IN ("
                 + ", ".join(f":b{k}" for k in range(10)) + ") " + knn,
            "0.1": head + "\\set b random(0, 999)\n" + f"SELECT id FROM {t} WHERE bucket = :b " + knn,
            "pk": head + f"SELECT v FROM {t} WHERE id = :id;\n",
        }

    def run_pgbench(self, script_path, clients, seconds):
        cmd = [self.pgbench, "-n", "-M", "prepared", "-T", str(seconds), "-c", str(clients), "-j", str(clients),
               "-P", str(max(1, seconds)), "-f", script_path, self.dsn]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"pgbench failed ({' '.join(cmd)}):\n{out.stdout}\n{out.stderr}")

        def grab(pattern):
            m = re.search(pattern, out.stdout)
            return float(m.group(1)) if m else None
        return dict(tps=grab(r"tps = ([\d.]+) \(without initial connection time\)"),
                    latency_ms=grab(r"latency average = ([\d.]+) ms"),
                    stddev_ms=grab(r"latency stddev = ([\d.]+) ms"),
                    transactions=grab(r"number of transactions actually processed: (\d+)"),
                    failed=grab(r"number of failed transactions: (\d+)"),
                    init_ms=grab(r"initial connection time = ([\d.]+) ms"))

    def throughput(self, ds, extra_filters):
        t = ds["table"]
        scripts = self.scripts(ds)
        paths = {}
        for k, text in scripts.items():
            p = f"/tmp/scale_bench_{t}_{k.replace('.', '')}_{os.getpid()}.sql"
            with open(p, "w") as f:
                f.write(text)
            paths[k] = p
        res = {}
        plan = [(c, k) for c in self.args.clients for k in ("100", "10", "pk")]
        if extra_filters:
            plan += [(1, "1"), (1, "0.1")]
        try:
            for clients, k in plan:
                if self.args.warmup > 0:
                    self.run_pgbench(paths[k], clients, self.args.warmup)
                load = os.getloadavg()[0]
                r = self.run_pgbench(paths[k], clients, self.args.seconds)
                r["loadavg_before"] = round(load, 2)
                res.setdefault(str(clients), {})[k] = r
                what = "PK floor" if k == "pk" else f"{k} %"
                log(f"{t}: pgbench {clients} client(s), {what}: {r['tps']:.1f} tps, latency "
                    f"{r['latency_ms']:.2f} ms (stddev {r['stddev_ms'] or float('nan'):.2f}), "
                    f"load average before {load:.2f}")
        finally:
            for p in paths.values():
                if os.path.exists(p):
                    os.unlink(p)
        res["scripts"] = scripts
        return res

    # --- one data set ---------------------------------------------------------------

    def run_dataset(self, conn, ds, ipcos, extra_filters):
        t = ds["table"]
        log(f"=== {ds['name']}: {ds['rows']} rows x {ds['dim']}")
        x, label, bucket = self.data_for(ds)
        ds["label"], ds["bucket"] = label, bucket
        res = dict(name=ds["name"], table=t, rows=ds["rows"], dim=ds["dim"], kind=ds["kind"])
        res["table_info"] = self.ensure_table(conn, ds, x, label, bucket)
        self.results["datasets"][ds["name"]] = res
        qs = self.make_queries(ds)
        res["queries"] = qs
        exact = Exact(x)
        res["indexes"] = {}
        keys = ["l2"] + (["ip", "cos"] if ipcos else [])
        for key in keys:
            r = self.build_index(conn, ds, key)
            res["indexes"][key] = r
            self.check_plans(conn, ds, key, qs, r)
            rc = connect(self.dsn)
            try:
                self.recall(rc, ds, key, qs, exact, r)
            finally:
                rc.close()
            if key == "l2":
                self.first_queries(ds, key, qs, r)
                if not self.args.skip_pgbench:
                    res["throughput"] = self.throughput(ds, extra_filters)
            sql(conn, f"DROP INDEX {r['index']}")
            self.check_library(conn)
            self.save()
        del exact
        ds.pop("label", None)
        ds.pop("bucket", None)
        if self.args.drop:
            log(f"dropping {t}")
            sql(conn, f"DROP TABLE {t}")

    # --- output -------------------------------------------------------------------------

    def paths(self):
        suffix = f"_{self.args.label}" if self.args.label else ""
        d = self.args.out_dir
        return (os.path.join(d, f"scale{suffix}.md"), os.path.join(d, f"scale{suffix}.json"),
                os.path.join(d, f"qps_vs_rows{suffix}.png"))

    def save(self):
        os.makedirs(self.args.out_dir, exist_ok=True)
        _, jpath, _ = self.paths()
        self.results["growth"] = growth(self.results)
        with open(jpath + ".tmp", "w") as f:
            json.dump(self.results, f, indent=1, default=jsonable)
        os.replace(jpath + ".tmp", jpath)

    def run(self):
        a = self.args
        conn = self.ensure_database()
        self.describe(conn)
        datasets = []
        if not a.skip_fmnist:
            datasets.append(dict(name="fmnist", table="fmnist", rows=60000, dim=784, kind="fmnist"))
        for n in sorted(a.sizes):
            datasets.append(dict(name=f"gen{human(n)}", table=f"gen{human(n)}", rows=n, dim=GEN_DIM, kind="gen"))
        largest = max(a.sizes) if a.sizes else None
        for ds in datasets:
            is_largest = ds["kind"] == "fmnist" or ds["rows"] == largest
            ipcos = not a.skip_ipcos and is_largest
            extra = a.all_filters or (ds["kind"] == "gen" and ds["rows"] == largest)
            self.run_dataset(conn, ds, ipcos, extra)
        self.gen_cache = None
        self.results["finished"] = datetime.datetime.now().astimezone().isoformat()
        self.results["elapsed_s"] = round(time.time() - T0, 1)
        self.results["machine"]["loadavg_end"] = os.getloadavg()
        self.results["machine"]["library_md5_end"] = library_md5(conn)
        conn.close()
        self.save()
        md = markdown(self.results)
        print(md)
        mpath, jpath, ppath = self.paths()
        with open(mpath, "w") as f:
            f.write(md)
        plotted = plot(self.results, ppath)
        log(f"wrote {mpath}, {jpath}" + (f", {ppath}" if plotted else " (no plot: no pgbench figures of generated sizes)"))


def jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (datetime.date, datetime.datetime)):
        return o.isoformat()
    return str(o)


# --- analysis and output (from the results dict alone) ------------------------------------------

def tps(ds, clients, key):
    return (((ds.get("throughput") or {}).get(str(clients)) or {}).get(key) or {}).get("tps")


def fit_exponent(ns, ms):
    pts = [(n, m) for n, m in zip(ns, ms) if m is not None and m > 0]
    if len(pts) < 2:
        return None
    b, _ = np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)
    return float(b)


def growth(res):
    """Per generated size at 1 client: tps and ms/query, unfiltered and 10 %,
    and the fitted exponents b of ms ~ N^b."""
    rows = []
    for ds in res["datasets"].values():
        if ds["kind"] != "gen":
            continue
        t100, t10, tpk = tps(ds, 1, "100"), tps(ds, 1, "10"), tps(ds, 1, "pk")
        if not t100:
            continue
        ms = lambda v: 1000.0 / v if v else None  # noqa: E731
        over = lambda v: (1000.0 / v - 1000.0 / tpk) if v and tpk else None  # noqa: E731
        rows.append(dict(rows=ds["rows"], tps=t100, ms=ms(t100), ms_over_floor=over(t100),
                         tps_10=t10, ms_10=ms(t10), ms_10_over_floor=over(t10), tps_pk=tpk))
    rows.sort(key=lambda r: r["rows"])
    ns = [r["rows"] for r in rows]
    fits = {k: fit_exponent(ns, [r[k] for r in rows]) for k in ("ms", "ms_over_floor", "ms_10", "ms_10_over_floor")}
    return dict(rows=rows, exponents=fits)


def fmt(v, spec=".1f", none="-"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    return format(v, spec)


def markdown(res):
    m = res.get("machine", {})
    L = []
    L.append(f"# benzer scale benchmark{' (' + res['label'] + ')' if res.get('label') else ''}")
    L.append("")
    L.append(f"Run {res.get('started', '?')} .. {res.get('finished', '?')} ({fmt(res.get('elapsed_s'), '.0f')} s); "
             f"git `{str(m.get('git_head', '?'))[:12]}`{' (working tree dirty)' if m.get('git_dirty') else ''}, "
             f"benzer.so md5 `{m.get('library_md5', '?')}`"
             + (f" -> `{m['library_md5_end']}` at the end" if m.get("library_md5_end") not in (None, m.get("library_md5"))
                else "")
             + f"; PostgreSQL {m.get('postgres', '?')}, benzer {m.get('benzer', '?')}; {m.get('nproc', '?')} CPUs "
             f"({m.get('cpu', '?')}); load average {fmt((m.get('loadavg_start') or [None])[0], '.2f')} at the start, "
             f"{fmt((m.get('loadavg_end') or [None])[0], '.2f')} at the end.")
    a = res.get("args", {})
    settings = m.get("settings", {})
    L.append("")
    L.append(f"{a.get('queries')} queries per filter, pgbench {a.get('seconds')} s (after a {a.get('warmup')} s "
             f"warm-up), index options `{a.get('index_options') or '(none)'}`, generator sigma {a.get('sigma')}, "
             f"seed {a.get('seed')}. Settings: "
             + ", ".join(f"{k} = {v}" for k, v in settings.items()) + ".")
    if res.get("notes"):
        L.append("")
        L.append("**Notes:**")
        for n in res["notes"]:
            L.append(f"- {n.splitlines()[0]}")
    # (1) indexes and recall
    L.append("")
    L.append("## Indexes and recall@10")
    L.append("")
    L.append("Recall@10 of \"similar to row :id\" (the query row is in the table) at each filter "
             "selectivity: 100 % no filter, 10 % `label = L`, 1 % `bucket IN (10 values)`, "
             "0.1 % `bucket = B`. Under-filled = queries that returned fewer than 10 rows; plan = "
             "the plan of the literal statement (cond: the filter is an index condition).")
    L.append("")
    L.append("| data set | rows | opclass | build s | index MB | factory | description | recall@10 100 % | 10 % "
             "| 1 % | 0.1 % | under-filled (100/10/1/0.1) | wrong rows | p50 ms (100/10/1/0.1) | plans (100/10/1/0.1) |")
    L.append("|---|---:|---|---:|---:|---|---|---:|---:|---:|---:|---|---:|---|---|")
    for ds in res["datasets"].values():
        for key, r in ds.get("indexes", {}).items():
            rc = r.get("recall", {})
            info = r.get("info", {})
            cells = [fmt((rc.get(f) or {}).get("recall"), ".4f") for f, _ in FILTERS]
            under = "/".join(str((rc.get(f) or {}).get("under_filled", "-")) for f, _ in FILTERS)
            wrong = sum((rc.get(f) or {}).get("wrong_rows", 0) for f, _ in FILTERS)
            p50 = "/".join(fmt((rc.get(f) or {}).get("ms_p50"), ".2f") for f, _ in FILTERS)
            plans = "; ".join((r.get("plan") or {}).get(f, "?") for f, _ in FILTERS)
            L.append(f"| {ds['name']} | {ds['rows']} | {OPCLASSES[key][0]} | {fmt(r.get('build_s'), '.1f')} | "
                     f"{fmt((r.get('index_bytes') or 0) / 2**20, '.1f')} | `{info.get('factory')}` | "
                     f"{info.get('description')} | " + " | ".join(cells)
                     + f" | {under} | {wrong} | {p50} | {plans} |")
    # (2) throughput
    L.append("")
    L.append("## Throughput (pgbench -M prepared)")
    L.append("")
    L.append("tps = transactions/s without initial connection time; PK floor = `SELECT v FROM t WHERE id = :id`; "
             "ms over floor = 1000/tps - 1000/tps(PK floor), 1 client only; ratio = tps 10 % / tps unfiltered.")
    L.append("")
    L.append("| data set | rows | clients | tps unfiltered | tps 10 % | ratio 10 %/unfiltered | tps PK floor | "
             "ms over floor unfiltered | ms over floor 10 % | tps 1 % | tps 0.1 % | fresh connection first query ms |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for ds in res["datasets"].values():
        thr = ds.get("throughput") or {}
        for c in sorted((k for k in thr if k.isdigit()), key=int):
            t100, t10, tpk = tps(ds, c, "100"), tps(ds, c, "10"), tps(ds, c, "pk")
            over = lambda v: (1000 / v - 1000 / tpk) if (c == "1" and v and tpk) else None  # noqa: E731
            first = (ds.get("indexes", {}).get("l2") or {}).get("first_query_ms") if c == "1" else None
            L.append(f"| {ds['name']} | {ds['rows']} | {c} | {fmt(t100)} | {fmt(t10)} | "
                     f"{fmt(t10 / t100 if t10 and t100 else None, '.2f')} | {fmt(tpk)} | {fmt(over(t100), '.3f')} | "
                     f"{fmt(over(t10), '.3f')} | {fmt(tps(ds, c, '1'))} | {fmt(tps(ds, c, '0.1'))} | "
                     f"{fmt(first, '.0f')} |")
    # (3) growth
    g = res.get("growth") or growth(res)
    L.append("")
    L.append("## Growth with the table (generated data, 1 client)")
    L.append("")
    L.append("ms = 1000/tps per query (whole round trip); over floor = minus the PK lookup's ms. "
             "b = fitted exponent of ms ~ N^b (least squares on log-log); the target is b <= 0.5.")
    L.append("")
    L.append("| rows | tps unfiltered | ms/query | ms over floor | tps 10 % | ms/query 10 % | ms over floor 10 % "
             "| tps PK floor |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in g["rows"]:
        L.append(f"| {r['rows']} | {fmt(r['tps'])} | {fmt(r['ms'], '.3f')} | {fmt(r['ms_over_floor'], '.3f')} | "
                 f"{fmt(r['tps_10'])} | {fmt(r['ms_10'], '.3f')} | {fmt(r['ms_10_over_floor'], '.3f')} | "
                 f"{fmt(r['tps_pk'])} |")
    e = g["exponents"]
    L.append("")
    if e.get("ms") is None:
        L.append("Fitted exponents: need at least two generated sizes.")
    else:
        def verdict(b):
            return "n/a" if b is None else (f"**{b:.2f}**" + (" (<= 0.5: ok)" if b <= 0.5 else " (> 0.5: grows faster "
                                                                                              "than sqrt(N))"))
        L.append(f"Fitted b (ms ~ N^b): unfiltered {verdict(e['ms'])}, over floor {verdict(e['ms_over_floor'])}; "
                 f"10 % {verdict(e['ms_10'])}, over floor {verdict(e['ms_10_over_floor'])}.")
    L.append("")
    return "\n".join(L)


def plot(res, path):
    g = res.get("growth") or growth(res)
    rows = g["rows"]
    if not rows:
        return False
    ns = np.array([r["rows"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.plot(ns, [r["tps"] for r in rows], "o-", label="unfiltered")
    if any(r["tps_10"] for r in rows):
        ax.plot(ns, [r["tps_10"] or np.nan for r in rows], "s-", label="10 % filter (label = L)")
    if any(r["tps_pk"] for r in rows):
        ax.plot(ns, [r["tps_pk"] or np.nan for r in rows], "^:", color="grey", label="PK lookup (floor)")
    xs = np.geomspace(ns.min(), max(ns.max(), ns.min() * 1.0001), 50)
    ax.plot(xs, rows[0]["tps"] * np.sqrt(ns[0] / xs), "--", color="black", alpha=0.6,
            label="cost ~ sqrt(N) (through the first point)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows")
    ax.set_ylabel("queries/s (pgbench, 1 client)")
    b = g["exponents"].get("ms")
    title = "benzer faiss index: top-10 'similar to row :id'"
    if res.get("label"):
        title += f" ({res['label']})"
    if b is not None:
        title += f"\nfitted ms ~ N^{b:.2f}"
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dsn", default=os.environ.get("BENZER_SCALE_DSN", DEFAULT_DSN),
                   help=f"libpq connection string (default: {DEFAULT_DSN!r}; PG* variables fill in the rest)")
    p.add_argument("--sizes", default="50000,100000,250000,500000",
                   help="rows of the generated tables, comma-separated (default 50000,100000,250000,500000)")
    p.add_argument("--skip-fmnist", action="store_true", help="leave out Fashion-MNIST")
    p.add_argument("--skip-ipcos", action="store_true",
                   help="no inner-product and cosine indexes (fmnist and the largest size)")
    p.add_argument("--skip-pgbench", action="store_true", help="recall only")
    p.add_argument("--all-filters", action="store_true",
                   help="pgbench at 1 %% and 0.1 %% for every table (default: the largest generated size only)")
    p.add_argument("--seconds", type=int, default=15, help="pgbench -T per timed run (default 15)")
    p.add_argument("--warmup", type=int, default=3, help="pgbench warm-up seconds before each timed run (default 3)")
    p.add_argument("--queries", type=int, default=200, help="query rows for recall (default 200)")
    p.add_argument("--clients", default="1,4", help="pgbench client counts (default 1,4)")
    p.add_argument("--index-options", default="", help="appended to CREATE INDEX, e.g. \"WITH (nprobe = 16)\"")
    p.add_argument("--sigma", type=float, default=2.0, help="generator noise (default 2.0; see the top of the file)")
    p.add_argument("--seed", type=int, default=20261, help="seed of the generator, buckets and queries")
    p.add_argument("--label", default="", help="run name, stored in the json and the file names (scale_LABEL.md)")
    p.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    p.add_argument("--reload", action="store_true", help="reload the tables even if they exist")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--keep-tables", dest="drop", action="store_false", default=False,
                   help="keep the tables for the next run (default)")
    g.add_argument("--drop", dest="drop", action="store_true", help="drop each table after measuring it")
    p.add_argument("--replot", metavar="JSON", help="only redo the markdown and plot from a json file")
    args = p.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()] if args.sizes.strip() else []
    args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    if args.label and not re.fullmatch(r"[A-Za-z0-9._-]+", args.label):
        p.error("--label: letters, digits, '.', '_' and '-' only")
    if args.replot:
        with open(args.replot) as f:
            res = json.load(f)
        res["growth"] = growth(res)
        base = os.path.splitext(args.replot)[0]
        md = markdown(res)
        print(md)
        with open(base + ".md", "w") as f:
            f.write(md)
        plot(res, os.path.join(os.path.dirname(args.replot),
                               "qps_vs_rows" + (f"_{res['label']}" if res.get("label") else "") + ".png"))
        return
    if args.skip_fmnist and not args.sizes:
        p.error("nothing to measure")
    ScaleBench(args).run()


if __name__ == "__main__":
    main()
