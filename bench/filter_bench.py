#!/usr/bin/python3
"""benzer filtered-search benchmark on Fashion-MNIST (784-d pixel vectors).

Top-10 nearest neighbours under a WHERE filter, three ways, in one run:

  (a) a faiss index WITH filter columns
      (CREATE INDEX ... USING faiss (v vector_l2_ops, design, season, quality, tags)):
      the conditions are index conditions, applied inside the search;
  (b) a vector-only faiss index (same automatic factory) on a second copy of
      the table: the WHERE is applied above the index scan, which keeps
      going in rounds until the LIMIT is filled (post-filtering with
      continuation);
  (c) an exact sequential scan with the filter (enable_indexscan = off),
      which is also the ground truth for recall@10.

Filters (selectivity over the 60 000 base rows): design = one class (~10 %;
a class that rotates with the query, so mostly not the query's own class,
and, as a contrast, the query's own class), class + season (~2.5 %),
class + season + quality (~0.8 %), tags && ARRAY['checked'] (4.8 %) and
season IN ('winter', 'spring') (~50 %; the planner applies this IN list
above the scan even for (a)) and tags && ARRAY['leather', 'wool'] (~49 %,
inside the index for (a)).

Writes bench/results/filter_fashion_mnist.md (the tables, also printed on
stdout), bench/results/filter_qps.png (QPS per method and filter) and
bench/results/filter_fashion_mnist.json (every figure; --replot redraws the
plot from it).

    /usr/bin/python3 bench/filter_bench.py [--queries N] [--dsn DSN]

Needs Debian's python3-numpy, python3-matplotlib and python3-psycopg2 and the
demo cluster with the Fashion-MNIST tables (scripts/demo.sh). When the demo
database's benzer catalog predates filter columns (no text_faiss_ops), the
tables go into a scratch database (--work-db, default fbench_filter) in the
same cluster, which is dropped at the end.
"""

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import textwrap
import time

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import psycopg2  # noqa: E402
from psycopg2.extensions import make_dsn, parse_dsn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from faiss_bench import (backend_cpu, library_digest, log, pg_backend_pid, pg_connect,  # noqa: E402
                         pg_sql, pg_sql1)

DEFAULT_DSN = "host=/var/tmp/benzer-demo/run port=5499 user=postgres dbname=benzer_demo"
K = 10
DIM = 784
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]
SEASONS = ["winter", "spring", "summer", "autumn"]
QUALITIES = ["A", "B", "C"]
TAG = "checked"
WIDE_TAGS = ["leather", "wool"]  # one material tag per image: ~49 % of the rows
TABLE_A = "fbench_a"   # index with filter columns
TABLE_B = "fbench_b"   # vector-only index
INDEX_A = "fbench_a_idx"
INDEX_B = "fbench_b_idx"
METHODS = [
    ("a", "(a) faiss + filter columns"),
    ("b", "(b) faiss vector-only, WHERE above the scan"),
    ("c", "(c) exact seq scan"),
]

# Filters: key, label, WHERE clause with $2.. parameters, PREPARE types,
# parameter values for query i (qd = the query's own class).
FILTERS = [
    dict(key="class", label="design = one class (rotating)",
         where="design = $2", types="text",
         params=lambda i, qd: (CLASSES[i % 10],)),
    dict(key="own_class", label="design = the query's own class",
         where="design = $2", types="text",
         params=lambda i, qd: (qd,)),
    dict(key="class_season", label="design + season",
         where="design = $2 AND season = $3", types="text, text",
         params=lambda i, qd: (CLASSES[i % 10], SEASONS[(i // 10) % 4])),
    dict(key="class_season_quality", label="design + season + quality",
         where="design = $2 AND season = $3 AND quality = $4", types="text, text, text",
         params=lambda i, qd: (CLASSES[i % 10], SEASONS[(i // 10) % 4], QUALITIES[(i // 40) % 3])),
    dict(key="tag", label=f"tags && ARRAY['{TAG}']",
         where="tags && $2", types="text[]",
         params=lambda i, qd: ([TAG],)),
    dict(key="half", label="season IN ('winter', 'spring')",
         where="season IN ($2, $3)", types="text, text",
         params=lambda i, qd: ("winter", "spring")),
    dict(key="wide_tags", label="tags && ARRAY['leather', 'wool']",
         where="tags && $2", types="text[]",
         params=lambda i, qd: (WIDE_TAGS,)),
]
SCAN_RE = re.compile(r"scan: (\d+) Faiss rounds, (\d+) candidates, (\d+) rows from the index")


def knn_sql(table, where):
    return f"SELECT id FROM {table} WHERE {where} ORDER BY v <-> $1 LIMIT {K}"


def literal(v):
    """A value as an SQL literal (only for the EXPLAIN ANALYZE statements)."""
    if isinstance(v, list):
        return "ARRAY[" + ", ".join(literal(x) for x in v) + "]::text[]"
    return "'" + str(v).replace("'", "''") + "'"


def inline(where, params):
    out = where
    for n in range(len(params), 0, -1):  # $10 before $1
        out = out.replace(f"${n + 1}", literal(params[n - 1]))
    return out


def shorten(plan):
    """The query vector as [...] in plan text."""
    return re.sub(r"'\[[-0-9.,e]{40,}\]'", "'[...]'", plan)


class FilterBench:
    def __init__(self, args):
        self.args = args
        self.t_start = time.perf_counter()
        self.library = library_digest()
        self.notes = []
        self.machine = {}
        self.builds = {}
        self.results = {}       # (filter, method) -> figures
        self.explain = {}       # (filter, method) -> scan statistics from EXPLAIN ANALYZE
        self.snippets = []      # (title, plan text)
        self.planner = {}       # (filter, method) -> plan summary with default settings
        self.scratch_db = None

    # --- connections -------------------------------------------------------

    connect = staticmethod(pg_connect)
    sql = staticmethod(pg_sql)
    sql1 = staticmethod(pg_sql1)
    backend_pid = staticmethod(pg_backend_pid)

    # --- setup -------------------------------------------------------------

    def choose_work_db(self, src):
        """The demo database, if its benzer catalog has the filter-column
        operator classes; otherwise a scratch database in the same cluster
        (CREATE EXTENSION there installs the current script)."""
        has = self.sql1(src, "SELECT count(*) FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod "
                             "WHERE a.amname = 'faiss' AND c.opcname = 'text_faiss_ops'")
        if has and not self.args.scratch:
            self.work_dsn = self.args.dsn
            self.work_where = parse_dsn(self.args.dsn).get("dbname", "?")
            return
        name = self.args.work_db
        if not re.fullmatch(r"fbench_[a-z0-9_]+", name):
            raise SystemExit("--work-db must match fbench_[a-z0-9_]+")
        why = ("the demo database's benzer catalog has no filter-column operator classes "
               "(its extension was created by an older benzer--0.1.0.sql)") if not has else "--scratch"
        log(f"scratch database {name}: {why}")
        self.notes.append(f"Tables were created in a scratch database `{name}` of the same cluster, dropped at "
                          f"the end: {why}.")
        self.sql(src, f"DROP DATABASE IF EXISTS {name}")
        self.sql(src, f"CREATE DATABASE {name}")
        self.scratch_db = name
        self.work_dsn = make_dsn(self.args.dsn, dbname=name)
        self.work_where = name
        w = self.connect(self.work_dsn)
        self.sql(w, "CREATE EXTENSION benzer")
        w.close()

    def describe_machine(self, conn):
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        cpu = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        mem = "?"
        try:
            with open("/proc/meminfo") as f:
                mem = f"{int(f.readline().split()[1]) / 2**20:.0f} GB"
        except (OSError, ValueError, IndexError):
            pass
        self.machine = dict(
            nproc=os.cpu_count(), cpu=cpu, mem=mem, kernel=platform.release(),
            simd=self.sql1(conn, "SELECT benzer_simd_kernel()"),
            postgres=self.sql1(conn, "SHOW server_version"),
            benzer=self.sql1(conn, "SELECT extversion FROM pg_extension WHERE extname = 'benzer'"),
            shared_buffers=self.sql1(conn, "SHOW shared_buffers"),
            jit=self.sql1(conn, "SHOW jit"),
            settings=", ".join(f"{n} = {s}" for n, s in self.sql(
                conn, "SELECT name, setting FROM pg_settings WHERE name IN ('benzer.exact_filter_limit', "
                      "'benzer.max_scan_tuples', 'benzer.threads', 'benzer.nprobe', 'benzer.scan_rows') ORDER BY name")),
            library=self.library, load=os.getloadavg()[0])
        m = self.machine
        log(f"machine: nproc={m['nproc']}, CPU {m['cpu']}, RAM {m['mem']}, Linux {m['kernel']}, "
            f"benzer_simd_kernel()={m['simd']}, PostgreSQL {m['postgres']}, benzer {m['benzer']} "
            f"(benzer.so md5 {m['library']}), shared_buffers {m['shared_buffers']}, load average {m['load']:.2f}; "
            f"{m['settings']}")

    def load_data(self, src):
        t0 = time.perf_counter()
        w = self.connect(self.work_dsn)
        select = ("SELECT f.image_id, i.design, i.season, i.quality, i.tags, f.embedding FROM features f "
                  "JOIN images i USING (image_id) WHERE f.model = 'pixels' AND f.version = 'v1' "
                  "AND i.split = 'train' ORDER BY f.image_id")
        for t in (TABLE_A, TABLE_B):
            self.sql(w, f"DROP TABLE IF EXISTS {t}")
            # toast_tuple_target as in demo/schema.sql: the 3 KB vectors stay in their rows.
            self.sql(w, f"CREATE TABLE {t} (id int PRIMARY KEY, design text NOT NULL, season text NOT NULL, "
                        f"quality text NOT NULL, tags text[] NOT NULL, v vector({DIM}) NOT NULL) "
                        f"WITH (toast_tuple_target = 8160)")
        if self.work_dsn == self.args.dsn:
            self.sql(w, f"INSERT INTO {TABLE_A} {select}")
        else:
            with tempfile.TemporaryFile() as buf:
                with src.cursor() as cur:
                    cur.copy_expert(f"COPY ({select}) TO STDOUT", buf)
                buf.seek(0)
                with w.cursor() as cur:
                    cur.copy_expert(f"COPY {TABLE_A} FROM STDIN", buf)
        self.sql(w, f"INSERT INTO {TABLE_B} SELECT * FROM {TABLE_A} ORDER BY id")
        for t in (TABLE_A, TABLE_B):
            self.sql(w, f"VACUUM ANALYZE {t}")
        self.n_base = self.sql1(w, f"SELECT count(*) FROM {TABLE_A}")
        self.table_bytes = self.sql1(w, f"SELECT pg_total_relation_size('{TABLE_A}')")

        # Base vectors and metadata on the client: numpy cross-check of the
        # exact answers, tie-aware recall, and a check that every returned
        # row matches the filter.
        ids = np.empty(self.n_base, dtype=np.int64)
        base = np.empty((self.n_base, DIM), dtype=np.float32)
        meta = []
        with w.cursor() as cur:
            cur.execute(f"SELECT id, design, season, quality, tags, vector_send(v) FROM {TABLE_A} ORDER BY id")
            i = 0
            while True:
                chunk = cur.fetchmany(5000)
                if not chunk:
                    break
                for id_, d, s, q, tags, raw in chunk:
                    ids[i] = id_
                    base[i] = np.frombuffer(bytes(raw), dtype=">f4", offset=4)
                    meta.append((d, s, q, frozenset(tags)))
                    i += 1
        w.close()
        self.base_ids = ids
        self.id_pos = {int(x): j for j, x in enumerate(ids)}
        self.base = base.astype(np.float64)
        self.meta = meta
        self.col = dict(design=np.array([m[0] for m in meta]), season=np.array([m[1] for m in meta]),
                        quality=np.array([m[2] for m in meta]),
                        tag=np.array([TAG in m[3] for m in meta]),
                        wide_tags=np.array([bool(m[3] & set(WIDE_TAGS)) for m in meta]))

        rows = self.sql(src, "SELECT f.image_id, i.design, f.embedding::text FROM features f "
                             "JOIN images i USING (image_id) WHERE f.model = 'pixels' AND f.version = 'v1' "
                             "AND i.split = 'test' ORDER BY f.image_id LIMIT %s", (self.args.queries,))
        self.query_ids = [r[0] for r in rows]
        self.query_design = [r[1] for r in rows]
        self.query_text = [r[2] for r in rows]
        self.queries = np.array([[float(x) for x in t.strip("[]").split(",")] for t in self.query_text])
        log(f"{TABLE_A}, {TABLE_B}: {self.n_base} rows each ({self.table_bytes / 2**20:.0f} MB each); "
            f"{len(self.queries)} queries (test images {self.query_ids[0]}..{self.query_ids[-1]}); "
            f"{time.perf_counter() - t0:.1f} s")

    def mask(self, f, params):
        c = self.col
        k = f["key"]
        if k in ("class", "own_class"):
            return c["design"] == params[0]
        if k == "class_season":
            return (c["design"] == params[0]) & (c["season"] == params[1])
        if k == "class_season_quality":
            return (c["design"] == params[0]) & (c["season"] == params[1]) & (c["quality"] == params[2])
        if k == "tag":
            return c["tag"].copy()
        if k == "wide_tags":
            return c["wide_tags"].copy()
        if k == "half":
            return (c["season"] == params[0]) | (c["season"] == params[1])
        raise KeyError(k)

    def numpy_truth(self):
        """Exact filtered top-10 in float64 (squared distances are integers:
        pixels), the 10th distance per filter and query, and selectivity."""
        t0 = time.perf_counter()
        norms = (self.base ** 2).sum(axis=1)
        self.kth = {f["key"]: np.empty(len(self.queries)) for f in FILTERS}
        self.np_top = {f["key"]: [] for f in FILTERS}
        self.match = {f["key"]: [] for f in FILTERS}
        for s in range(0, len(self.queries), 100):
            q = self.queries[s:s + 100]
            d = np.rint(norms[None, :] - 2.0 * q @ self.base.T + (q ** 2).sum(axis=1)[:, None])
            for r in range(len(q)):
                qi = s + r
                for f in FILTERS:
                    m = self.mask(f, f["params"](qi, self.query_design[qi]))
                    self.match[f["key"]].append(int(m.sum()))
                    dd = np.where(m, d[r], np.inf)
                    part = np.argpartition(dd, K)[:K]
                    self.kth[f["key"]][qi] = dd[part].max()
                    self.np_top[f["key"]].append(set(int(self.base_ids[j]) for j in part))
        for f in FILTERS:
            cnt = np.array(self.match[f["key"]])
            f["selectivity"] = cnt.mean() / self.n_base
            f["rows_min"], f["rows_max"], f["rows_avg"] = int(cnt.min()), int(cnt.max()), float(cnt.mean())
            log(f"  filter {f['label']}: {f['selectivity'] * 100:.2f} % of the rows "
                f"({f['rows_min']}..{f['rows_max']} rows per query)")
        log(f"numpy exact filtered top-10 in {time.perf_counter() - t0:.1f} s")

    def sqdist(self, qi, ids):
        pos = [self.id_pos[int(i)] for i in ids]
        diff = self.base[pos] - self.queries[qi][None, :]
        return (diff * diff).sum(axis=1)

    def score(self, f, results, kth):
        """recall@10 with ties (a returned row counts when it matches the
        filter and is no farther than the true 10th filtered neighbour),
        rows per query, rows that do not match the filter."""
        hits = 0
        wrong = 0
        for qi, ids in enumerate(results):
            if not ids:
                continue
            m = self.mask(f, f["params"](qi, self.query_design[qi]))
            ok = np.array([m[self.id_pos[int(i)]] for i in ids])
            wrong += int((~ok).sum())
            hits += int(((self.sqdist(qi, ids) <= kth[qi]) & ok).sum())
        n = [len(r) for r in results]
        return hits / (K * len(results)), min(n), sum(n) / len(n), sum(1 for x in n if x < K), wrong

    # --- indexes -----------------------------------------------------------

    def build(self, conn, key, index, table, columns):
        self.sql(conn, "SET maintenance_work_mem = '2GB'")
        log(f"CREATE INDEX {index} ON {table} USING faiss ({columns}) ...")
        t0 = time.perf_counter()
        self.sql(conn, f"CREATE INDEX {index} ON {table} USING faiss ({columns})")
        secs = time.perf_counter() - t0
        self.sql(conn, "RESET maintenance_work_mem")
        fac, rows, on_disk, faiss_bytes, desc = self.sql(
            conn, f"SELECT factory, rows, bytes_on_disk, faiss_bytes, description FROM benzer_index_info('{index}')")[0]
        self.builds[key] = dict(index=index, table=table, ddl=f"CREATE INDEX ON {table} USING faiss ({columns})",
                                secs=secs, factory=fac, rows=rows, on_disk=on_disk, faiss=faiss_bytes, desc=desc,
                                load=os.getloadavg()[0])
        log(f"  {fac}: built in {secs:.1f} s (load average {os.getloadavg()[0]:.2f}), "
            f"{on_disk / 2**20:.1f} MB on disk; {desc}")

    # --- measurement -------------------------------------------------------

    def method_conn(self, method):
        """One backend per method for the whole run; statements prepared
        for every filter."""
        if method == "c":
            opts = "-c enable_indexscan=off -c enable_bitmapscan=off -c max_parallel_workers_per_gather=0"
        else:
            # enable_seqscan off as in faiss_bench.py; whether the planner picks
            # the index with default settings is checked separately (planner_check).
            opts = "-c enable_seqscan=off"
        conn = self.connect(self.work_dsn, options=opts)
        table = TABLE_A if method == "a" else TABLE_B
        for f in FILTERS:
            self.sql(conn, f"PREPARE q_{f['key']}(vector, {f['types']}) AS {knn_sql(table, f['where'])}")
        return conn

    def stmt(self, f):
        n = len(f["params"](0, CLASSES[0]))
        return f"EXECUTE q_{f['key']}(%s" + ", %s" * n + ")"

    def run_pass(self, conn, pid, f):
        stmt = self.stmt(f)
        got, lat = [], []
        c0 = backend_cpu(pid)
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            for qi, q in enumerate(self.query_text):
                t1 = time.perf_counter()
                cur.execute(stmt, (q,) + tuple(f["params"](qi, self.query_design[qi])))
                got.append([r[0] for r in cur.fetchall()])
                lat.append(time.perf_counter() - t1)
        elapsed = time.perf_counter() - t0
        c1 = backend_cpu(pid)
        cpu = (c1 - c0) * 1000.0 / len(self.query_text) if c0 is not None and c1 is not None else None
        return got, len(self.query_text) / elapsed, cpu, lat

    def check_plan(self, conn, f, method):
        """The plan the measured statement runs (after warm-up, so a cached
        generic plan when PostgreSQL switched to one)."""
        n = len(f["params"](0, CLASSES[0]))
        plan = "\n".join(r[0] for r in self.sql(conn, "EXPLAIN EXECUTE q_" + f["key"] + "(%s" + ", %s" * n + ")",
                                                 (self.query_text[0],) + tuple(f["params"](0, self.query_design[0]))))
        if method == "a" and INDEX_A not in plan:
            raise RuntimeError(f"(a) does not use {INDEX_A} for {f['label']}:\n{plan}")
        if method == "b" and INDEX_B not in plan:
            raise RuntimeError(f"(b) does not use {INDEX_B} for {f['label']}:\n{plan}")
        if method == "c" and ("Seq Scan" not in plan or "Index" in plan.replace("Faiss index", "")):
            raise RuntimeError(f"(c) is not a plain sequential scan for {f['label']}:\n{plan}")
        where = "index" if "Index Cond" in plan else ("above the scan" if "Filter:" in plan else "?")
        return where, shorten(plan)

    def measure(self):
        conns = {m: self.method_conn(m) for m, _ in METHODS}
        pids = {m: self.backend_pid(c) for m, c in conns.items()}
        try:
            # Load the indexes into their backends (timed) and warm every statement.
            for m in ("a", "b"):
                f = FILTERS[0]
                t0 = time.perf_counter()
                self.sql(conns[m], self.stmt(f), (self.query_text[0],) + tuple(f["params"](0, self.query_design[0])))
                self.builds[m]["first_ms"] = (time.perf_counter() - t0) * 1000
                self.builds[m]["mem"] = self.sql1(
                    conns[m], f"SELECT bytes_in_memory FROM benzer_index_info('{self.builds[m]['index']}')")
                log(f"  ({m}) first query (loads {self.builds[m]['index']}): {self.builds[m]['first_ms']:.0f} ms")
            self.sql(conns["c"], f"SELECT sum(vector_dims(v)) FROM {TABLE_B}")  # heap into the cache
            warm = min(len(self.query_text), self.args.warmup)
            for f in FILTERS:
                for m, _ in METHODS:
                    for qi in range(warm if m != "c" else min(warm, 8)):
                        self.sql(conns[m], self.stmt(f),
                                 (self.query_text[qi],) + tuple(f["params"](qi, self.query_design[qi])))
                    where, plan = self.check_plan(conns[m], f, m)
                    self.results[(f["key"], m)] = dict(where=where, plan=plan, qps=0.0, cpu=None, lat=None,
                                                      all_qps=[], all_cpu=[])
            log(f"warm-up done ({warm} queries per statement); plans checked")

            for f in FILTERS:
                log(f"filter {f['label']} ({f['selectivity'] * 100:.2f} %)")
                order = [m for m, _ in METHODS]
                for rnd in range(self.args.runs):
                    for m in order:
                        got, qps, cpu, lat = self.run_pass(conns[m], pids[m], f)
                        r = self.results[(f["key"], m)]
                        r["all_qps"].append(qps)
                        r["all_cpu"].append(cpu)
                        if rnd == 0:
                            r["got"] = got
                        elif got != r["got"]:
                            r.setdefault("unstable", 0)
                            r["unstable"] += 1
                        if qps > r["qps"]:
                            r["qps"], r["lat"] = qps, lat
                        if cpu is not None and (r["cpu"] is None or cpu < r["cpu"]):
                            r["cpu"] = cpu
                        log(f"  ({m}) pass {rnd + 1}: {qps:.1f} QPS, backend CPU "
                            f"{cpu if cpu is not None else float('nan'):.3f} ms/query")
                    order = order[1:] + order[:1]  # rotate: no method always runs first
                self.evaluate(f)
        finally:
            for c in conns.values():
                c.close()

    def evaluate(self, f):
        truth = self.results[(f["key"], "c")]["got"]
        # Ground truth: the exact scan of this run; its 10th distance per
        # query (ties count), cross-checked against numpy.
        kth = np.array([self.sqdist(qi, ids).max() if ids else np.inf for qi, ids in enumerate(truth)])
        np_kth = self.kth[f["key"]]
        bad = int((kth != np_kth).sum())
        same = sum(1 for a, b in zip(truth, self.np_top[f["key"]]) if set(a) == b)
        if bad:
            self.notes.append(f"{f['label']}: the exact scan's 10th distance differs from numpy's for {bad} queries")
        f["exact_same_sets"] = same
        for m, _ in METHODS:
            r = self.results[(f["key"], m)]
            rec, nmin, navg, short, wrong = self.score(f, r["got"], kth)
            r.update(recall=rec, rows_min=nmin, rows_avg=navg, short=short, wrong=wrong)
            lat = np.array(r["lat"]) * 1000
            r["p50"], r["p95"], r["max"] = float(np.percentile(lat, 50)), float(np.percentile(lat, 95)), float(lat.max())
            if short:
                self.notes.append(f"{f['label']}, {m}: {short} queries returned fewer than {K} rows "
                                  f"(min {nmin})")
            if wrong:
                self.notes.append(f"{f['label']}, {m}: {wrong} returned rows do not match the filter")
            log(f"  ({m}) recall@10 {rec:.4f}, rows/query min {nmin} avg {navg:.2f}, best {r['qps']:.1f} QPS, "
                f"CPU {r['cpu'] if r['cpu'] is not None else float('nan'):.3f} ms/query, "
                f"p50 {r['p50']:.2f} ms p95 {r['p95']:.2f} ms, filter applied {r['where']}")
        log(f"  exact vs numpy: {same}/{len(truth)} identical id sets, 10th distances differ for {bad}")

    # --- EXPLAIN ANALYZE ---------------------------------------------------

    def explain_stats(self):
        """EXPLAIN ANALYZE of literal queries (benzer's "Faiss index" lines
        are not added to EXPLAIN EXECUTE) on a sample of queries: rounds,
        candidates and rows read from the index per query."""
        n = min(self.args.explain_sample, len(self.query_text))
        conn = self.connect(self.work_dsn, options="-c enable_seqscan=off")
        try:
            # Is the "Faiss index" line missing from EXPLAIN ANALYZE EXECUTE?
            f = FILTERS[3]
            self.sql(conn, f"PREPARE p(vector, {f['types']}) AS {knn_sql(TABLE_A, f['where'])}")
            self.sql(conn, self.stmt(f).replace("q_" + f["key"], "p"),
                     (self.query_text[0],) + tuple(f["params"](0, self.query_design[0])))
            plan = "\n".join(r[0] for r in self.sql(
                conn, "EXPLAIN (ANALYZE, COSTS OFF) " + self.stmt(f).replace("q_" + f["key"], "p"),
                (self.query_text[0],) + tuple(f["params"](0, self.query_design[0]))))
            self.explain_execute_has_lines = "Faiss index" in plan
            if not self.explain_execute_has_lines:
                self.notes.append("`EXPLAIN (ANALYZE) EXECUTE stmt(...)` of a prepared statement that uses a faiss "
                                  "index shows no `Faiss index ...` / `scan: ...` lines (the same query written out "
                                  "with literals shows them), so the `scan:` statistics in this file come from literal queries.")
            for f in FILTERS:
                for m, table in (("a", TABLE_A), ("b", TABLE_B)):
                    rounds, cands, fromidx, stopped = [], [], [], 0
                    for qi in range(n):
                        params = f["params"](qi, self.query_design[qi])
                        q = (f"EXPLAIN (ANALYZE, COSTS OFF) SELECT id FROM {table} WHERE {inline(f['where'], params)} "
                             f"ORDER BY v <-> '{self.query_text[qi]}' LIMIT {K}")
                        plan = "\n".join(r[0] for r in self.sql(conn, q))
                        mm = SCAN_RE.search(plan)
                        if not mm:
                            raise RuntimeError("no benzer scan line in EXPLAIN ANALYZE:\n" + shorten(plan))
                        rounds.append(int(mm.group(1)))
                        cands.append(int(mm.group(2)))
                        fromidx.append(int(mm.group(3)))
                        stopped += "stopped at benzer.max_scan_tuples" in plan
                        if qi == 0 and (f["key"] in self.args.snippets.split(",")):
                            self.snippets.append((f"{METHODS[0 if m == 'a' else 1][1]}, {f['label']} "
                                                  f"(query {self.query_ids[qi]}, a {self.query_design[qi]}; "
                                                  f"filter values {params})", shorten(plan)))
                    self.explain[(f["key"], m)] = dict(
                        n=n, rounds_avg=float(np.mean(rounds)), rounds_max=max(rounds),
                        cand_avg=float(np.mean(cands)), cand_max=max(cands),
                        idx_avg=float(np.mean(fromidx)), idx_max=max(fromidx), stopped=stopped)
                    e = self.explain[(f["key"], m)]
                    log(f"  EXPLAIN ({m}) {f['label']}: rounds avg {e['rounds_avg']:.1f} max {e['rounds_max']}, "
                        f"candidates avg {e['cand_avg']:.0f}, rows from the index avg {e['idx_avg']:.0f} "
                        f"max {e['idx_max']}")
        finally:
            conn.close()

    def planner_check(self):
        """With default settings (enable_seqscan on, literal query), which
        plan does PostgreSQL pick for (a) and (b)?"""
        conn = self.connect(self.work_dsn)
        try:
            for f in FILTERS:
                params = f["params"](0, self.query_design[0])
                for m, table, index in (("a", TABLE_A, INDEX_A), ("b", TABLE_B, INDEX_B)):
                    plan = "\n".join(r[0] for r in self.sql(
                        conn, f"EXPLAIN SELECT id FROM {table} WHERE {inline(f['where'], params)} "
                              f"ORDER BY v <-> '{self.query_text[0]}' LIMIT {K}"))
                    picked = "faiss index" if index in plan else ("seq scan + sort" if "Seq Scan" in plan else "other")
                    self.planner[(f["key"], m)] = picked
                    if picked != "faiss index":
                        self.notes.append(f"With default settings the planner does not pick {index} for "
                                          f"{f['label']} ({m}): {picked}")
        finally:
            conn.close()

    # --- output ------------------------------------------------------------

    def markdown(self):
        m = self.machine
        ba, bb = self.builds["a"], self.builds["b"]
        out = ["# benzer filtered search: Fashion-MNIST pixels (784-d, L2), top-10 with WHERE filters\n"]
        out.append(f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem']} RAM, Linux {m['kernel']}; PostgreSQL "
                   f"{m['postgres']}, benzer {m['benzer']} (benzer.so md5 `{m['library']}`), "
                   f"benzer_simd_kernel() = `{m['simd']}`; shared_buffers {m['shared_buffers']}, jit {m['jit']}; "
                   f"{m['settings']}; load average at start {m['load']:.2f}, at end {self.load_end:.2f}")
        out.append(f"- data: `{TABLE_A}` and `{TABLE_B}`, two identical copies of the {self.n_base} train images "
                   f"(id, design, season, quality, tags, v vector(784)), {self.table_bytes / 2**20:.0f} MB each, in "
                   f"database `{self.work_where}`; queries: the first {len(self.query_text)} test images "
                   f"({self.query_ids[0]}..{self.query_ids[-1]}), k = {K}")
        out.append(f"- (a) `{ba['ddl']}` -> {ba['factory']} ({ba['desc']}): built in **{ba['secs']:.1f} s**, "
                   f"{ba['on_disk'] / 2**20:.1f} MB, first query (loads it) {ba['first_ms']:.0f} ms")
        out.append(f"- (b) `{bb['ddl']}` -> {bb['factory']} ({bb['desc']}): built in **{bb['secs']:.1f} s**, "
                   f"{bb['on_disk'] / 2**20:.1f} MB, first query (loads it) {bb['first_ms']:.0f} ms")
        out.append("- (c) the same statement on `fbench_b` with enable_indexscan = off, enable_bitmapscan = off, "
                   "max_parallel_workers_per_gather = 0 (one core, like the index scans)")
        out.append(f"- each method: one connection (one backend) for the whole run, a prepared statement per filter "
                   f"(`PREPARE q(vector, ...) AS SELECT id FROM t WHERE <filter> ORDER BY v <-> $1 LIMIT 10`, "
                   f"filter values as parameters), {self.args.warmup} warm-up queries per statement, the plan checked "
                   f"with EXPLAIN EXECUTE afterwards; (a) and (b) with enable_seqscan = off (the planner's own choice "
                   f"with default settings is listed below); {self.args.runs} passes over all queries per method, "
                   f"methods interleaved, best pass counts")
        out.append("- recall@10: returned rows that match the filter and are no farther than the 10th row of the exact "
                   "filtered answer (c) of this run, / 10 (ties count, as in ann-benchmarks). The exact answers are "
                   "cross-checked with numpy (float64) on the client. backend CPU ms/query: user + system CPU of the "
                   "server backend (/proc/PID/stat, 10 ms ticks) over a pass / queries, lowest pass. "
                   "(a)/x: QPS of (a) ÷ QPS of x, and CPU of x ÷ CPU of (a)")
        out.append(f"- run: {time.strftime('%Y-%m-%d %H:%M')}, total {self.total / 60:.1f} min\n")

        out.append("## Summary\n")
        out.append("| filter | selectivity | recall@10 (a) / (b) / (c) | QPS (a) | QPS (b) | QPS (c) | "
                   "(a)/(b) QPS | (a)/(c) QPS | (a)/(b) CPU | (a)/(c) CPU | rows/query min/avg (a); (b); (c) |")
        out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for f in FILTERS:
            ra, rb, rc = (self.results[(f["key"], x)] for x in "abc")
            out.append(f"| {f['label']} | {f['selectivity'] * 100:.2f} % | {ra['recall']:.4f} / {rb['recall']:.4f} / "
                       f"{rc['recall']:.4f} | {ra['qps']:.1f} | {rb['qps']:.1f} | {rc['qps']:.1f} | "
                       f"**{ra['qps'] / rb['qps']:.1f}x** | **{ra['qps'] / rc['qps']:.1f}x** | "
                       f"{self.cpu_ratio(ra, rb)} | {self.cpu_ratio(ra, rc)} | "
                       + "; ".join(f"{r['rows_min']}/{r['rows_avg']:.2f}" for r in (ra, rb, rc)) + " |")
        out.append("")

        out.append("## Per filter\n")
        for f in FILTERS:
            ex = "" if f["key"] not in ("class", "class_season", "class_season_quality") else \
                " Filter values rotate with the query (class = query number mod 10, season = (n div 10) mod 4, " \
                "quality = (n div 40) mod 3), so they are independent of the query's own class."
            if f["key"] == "own_class":
                ex = " The filter is the query's own class: its nearest neighbours mostly match anyway."
            if f["key"] == "half":
                ex = (" For (a) the planner keeps the IN list out of the index conditions under LIMIT 10 and checks "
                      "it above the scan (README, Filter columns: the cheaper of the two paths), so (a) runs like (b) "
                      "here; the next filter is a filter of the same width that (a) applies inside the index.")
            if f["key"] == "wide_tags":
                ex = (" One material tag per image, so the two tags do not overlap. Inside the index for (a): more "
                      "rows than benzer.exact_filter_limit, so an IVF search with the selector and nprobe scaled "
                      "by 1 / selectivity.")
            out.append(f"### {f['label']}: {f['selectivity'] * 100:.2f} % "
                       f"({f['rows_min']}..{f['rows_max']} of {self.n_base} rows match)\n")
            out.append(f"`WHERE {f['where']}`.{ex} Exact answers identical to numpy's for "
                       f"{f['exact_same_sets']}/{len(self.query_text)} queries (the rest differ only by ties).\n")
            out.append("| selectivity | method | filter applied | recall@10 | QPS | backend CPU ms/query | "
                       "latency p50 / p95 / max ms | rows/query min / avg | (a)/x QPS | (a)/x CPU |")
            out.append("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
            ra = self.results[(f["key"], "a")]
            for m, label in METHODS:
                r = self.results[(f["key"], m)]
                where = {"a": "in the index" if r["where"] == "index" else "above the scan",
                         "b": "above the scan" if r["where"] != "index" else "in the index",
                         "c": "seq scan filter"}[m]
                cpu = f"{r['cpu']:.3f}" if r["cpu"] is not None else "-"
                out.append(f"| {f['selectivity'] * 100:.2f} % | {label} | {where} | {r['recall']:.4f} | "
                           f"{r['qps']:.1f} | {cpu} | {r['p50']:.2f} / {r['p95']:.2f} / {r['max']:.1f} | "
                           f"{r['rows_min']} / {r['rows_avg']:.2f} | "
                           f"{'-' if m == 'a' else '%.1fx' % (ra['qps'] / r['qps'])} | "
                           f"{'-' if m == 'a' else self.cpu_ratio(ra, r)} |")
            out.append("")

        out.append("## What the index scans did (EXPLAIN ANALYZE)\n")
        out.append(f"From benzer's `scan:` line of `EXPLAIN (ANALYZE)` over the first {self.explain_n} queries "
                   "(literal statements, enable_seqscan = off). Rounds: Faiss searches; candidates: results Faiss "
                   "returned; rows from the index: rows the scan handed to PostgreSQL (for (b) the filter "
                   "then discards all but 10).\n")
        out.append("| filter | method | rounds avg / max | candidates avg / max | rows from the index avg / max | "
                   "stopped at max_scan_tuples | default planner picks |")
        out.append("|---|---|---:|---:|---:|---:|---|")
        for f in FILTERS:
            for m in "ab":
                e = self.explain[(f["key"], m)]
                out.append(f"| {f['label']} | ({m}) | {e['rounds_avg']:.1f} / {e['rounds_max']} | "
                           f"{e['cand_avg']:.0f} / {e['cand_max']} | {e['idx_avg']:.0f} / {e['idx_max']} | "
                           f"{e['stopped']} | {self.planner.get((f['key'], m), '?')} |")
        out.append("")
        for title, plan in self.snippets:
            out.append(f"{title}:\n")
            out.append("```text\n" + plan + "\n```\n")
        out.append("Plans of the measured prepared statements (EXPLAIN EXECUTE after warm-up), for "
                   f"{FILTERS[3]['label']}:\n")
        for m, label in METHODS:
            out.append(f"{label}:\n\n```text\n{self.results[(FILTERS[3]['key'], m)]['plan']}\n```\n")

        unstable = [(k, r["unstable"]) for k, r in self.results.items() if r.get("unstable")]
        for (fk, m), n in unstable:
            self.notes.append(f"{fk}, {m}: {n} repeated passes returned different rows than the first")
        if self.notes:
            out.append("## Notes from the run\n")
            for n in self.notes:
                out.append(f"- {n}")
            out.append("")
        return "\n".join(out)

    @staticmethod
    def cpu_ratio(ra, r):
        if ra["cpu"] is None or r["cpu"] is None:
            return "-"
        if ra["cpu"] <= 0:
            return f">{r['cpu'] / 0.01:.0f}x" if r["cpu"] > 0 else "-"
        return f"{r['cpu'] / ra['cpu']:.1f}x"

    def results_dict(self):
        res = {}
        for (fk, m), r in self.results.items():
            res.setdefault(fk, {})[m] = {k: v for k, v in r.items() if k not in ("got", "lat", "plan")}
            res[fk][m]["plan"] = r["plan"]
        return dict(machine=self.machine, n_base=self.n_base, queries=len(self.query_text), builds=self.builds,
                    filters=[{k: v for k, v in f.items() if k != "params"} for f in FILTERS],
                    methods=METHODS, results=res,
                    explain={f"{fk}/{m}": e for (fk, m), e in self.explain.items()},
                    planner={f"{fk}/{m}": p for (fk, m), p in self.planner.items()},
                    snippets=self.snippets, notes=self.notes, total_s=self.total, args=vars(self.args))

    def phase_digest(self, phase):
        """benzer.so is reinstalled by concurrent development now and then:
        a backend keeps the library it loaded, a new one loads the new file.
        Say which phase ended on another build than the run started with."""
        digest = library_digest()
        if digest != self.library:
            self.notes.append(f"benzer.so was reinstalled before the end of {phase} ({self.library} -> {digest}). "
                              "Backends keep the library they loaded first; the three measuring backends were all "
                              "started right after the index builds, so they ran one build.")
            log(f"WARNING: benzer.so changed during {phase}: {self.library} -> {digest}")
            self.library = digest

    # --- main --------------------------------------------------------------

    def run(self):
        src = self.connect(self.args.dsn)
        self.choose_work_db(src)
        try:
            w = self.connect(self.work_dsn)
            self.describe_machine(w)
            w.close()
            self.load_data(src)
            self.numpy_truth()
            w = self.connect(self.work_dsn)
            self.build(w, "a", INDEX_A, TABLE_A, "v vector_l2_ops, design, season, quality, tags")
            self.build(w, "b", INDEX_B, TABLE_B, "v vector_l2_ops")
            w.close()
            self.phase_digest("the index builds")
            self.measure()
            self.phase_digest("the measurements (QPS, recall)")
            self.explain_n = min(self.args.explain_sample, len(self.query_text))
            self.explain_stats()
            self.planner_check()
            self.phase_digest("the EXPLAIN ANALYZE statistics and the planner check")
        finally:
            if self.scratch_db and not self.args.keep:
                src.close()
                src = self.connect(self.args.dsn)
                self.sql(src, f"DROP DATABASE IF EXISTS {self.scratch_db}")
            elif not self.args.keep:
                w = self.connect(self.work_dsn)
                for t in (TABLE_A, TABLE_B):
                    self.sql(w, f"DROP TABLE IF EXISTS {t}")
                w.close()
            src.close()
        self.load_end = os.getloadavg()[0]
        self.total = time.perf_counter() - self.t_start
        os.makedirs(self.args.out_dir, exist_ok=True)
        md = self.markdown()
        with open(os.path.join(self.args.out_dir, "filter_fashion_mnist.md"), "w") as f:
            f.write(md + "\n")
        res = self.results_dict()
        with open(os.path.join(self.args.out_dir, "filter_fashion_mnist.json"), "w") as f:
            json.dump(res, f, indent=1, default=str)
        plot_results(res, os.path.join(self.args.out_dir, "filter_qps.png"))
        print(md)
        log(f"wrote {self.args.out_dir}/filter_fashion_mnist.md, filter_qps.png and filter_fashion_mnist.json; "
            f"total {self.total:.0f} s")


def plot_results(res, path):
    """QPS (log scale) per filter, one bar per method; QPS and recall@10 on
    the bars. A hatched bar: the filter was applied above the scan."""
    filters = res["filters"]
    methods = res["methods"]
    fig, ax = plt.subplots(figsize=(14, 6.5))
    width = 0.8 / len(methods)
    colors = ["tab:blue", "tab:orange", "tab:gray"]
    x = np.arange(len(filters))
    top = 0.0
    for j, (m, label) in enumerate(methods):
        rs = [res["results"][f["key"]][m] for f in filters]
        top = max([top] + [r["qps"] for r in rs])
        bars = ax.bar(x + (j - (len(methods) - 1) / 2) * width, [r["qps"] for r in rs], width, label=label,
                      color=colors[j % 3], edgecolor="black", linewidth=0.4)
        for b, r in zip(bars, rs):
            if m == "a" and r.get("where") != "index":
                b.set_hatch("//")
            rec = "1" if r["recall"] == 1.0 else f"{r['recall']:.4f}"
            ax.annotate(f"{r['qps']:.0f}\nr={rec}",
                        (b.get_x() + b.get_width() / 2, b.get_height()),
                        textcoords="offset points", xytext=(0, 2), ha="center", fontsize=6.5)
    ax.set_xticks(x)
    ax.set_xticklabels([textwrap.fill(f["label"], 22) + f"\n{f['selectivity'] * 100:.2f} % of the rows"
                        for f in filters], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(top=top * 4)
    ax.set_ylabel("queries per second (log scale), 1 client, top-10")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    if any(res["results"][f["key"]]["a"].get("where") != "index" for f in filters):
        ax.bar([0], [0], color="white", edgecolor="black", hatch="//",
               label="(a), but the planner applied the IN list above the scan")
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    m = res["machine"]
    ax.set_title(f"benzer filtered top-10, Fashion-MNIST 784-d L2, {res['n_base']} rows, {res['queries']} queries; "
                 f"{m['nproc']} CPUs ({m['cpu']}); labels: QPS (best pass) and recall@10", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=DEFAULT_DSN, help="the demo database (default: the demo cluster)")
    ap.add_argument("--queries", type=int, default=400, help="test images used as queries (default 400)")
    ap.add_argument("--runs", type=int, default=2, help="passes per method and filter; the fastest counts (default 2)")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up queries per statement (default 20)")
    ap.add_argument("--explain-sample", type=int, default=100,
                    help="queries run under EXPLAIN ANALYZE per filter and index (default 100)")
    ap.add_argument("--snippets", default="class_season_quality,tag",
                    help="filters whose first query's EXPLAIN ANALYZE goes into the Markdown")
    ap.add_argument("--work-db", default="fbench_filter",
                    help="scratch database, used when the demo database lacks filter-column support")
    ap.add_argument("--scratch", action="store_true", help="always use the scratch database")
    ap.add_argument("--keep", action="store_true", help="keep the tables (and scratch database) afterwards")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--replot", metavar="JSON", help="only redraw filter_qps.png from a previous run's JSON")
    args = ap.parse_args()
    if args.replot:
        os.makedirs(args.out_dir, exist_ok=True)
        with open(args.replot) as f:
            plot_results(json.load(f), os.path.join(args.out_dir, "filter_qps.png"))
        return
    FilterBench(args).run()


if __name__ == "__main__":
    main()
