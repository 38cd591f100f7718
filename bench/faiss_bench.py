#!/usr/bin/python3
"""benzer faiss index benchmark on Fashion-MNIST (784-d pixel vectors).

One run measures, against exact search computed in the same run:

  * exact top-10 by sequential scan (ground truth and the "exact" QPS line);
  * for each index (benzer's automatic choice, HNSW32,
    IVF979,PQ392x4fs,RFlat, IVF979,PQ196np,RFlat): CREATE INDEX time, size
    (pg_relation_size and benzer_index_info().bytes_on_disk), and a sweep of
    nprobe / ef_search / k_factor giving recall@10, QPS and backend CPU time
    per query (one client, a prepared statement, a new backend per setting);
  * the gain of benzer.fast_kernels (on vs off) for IVF-Flat and HNSW32 at
    their default settings;
  * pgbench on the demo's "find similar to image #id" query, with a partial
    faiss index and with an exact scan.

Writes bench/results/faiss_fashion_mnist.md (the tables),
bench/results/recall_qps.png (the plot) and bench/results/faiss_fashion_mnist.json
(every figure, for --replot) and prints the Markdown to stdout.

    /usr/bin/python3 bench/faiss_bench.py [--queries N] [--dsn DSN]

Needs Debian's python3-numpy, python3-matplotlib and python3-psycopg2, and
a database with the benzer extension and the demo's Fashion-MNIST tables
(scripts/demo.sh).
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import psycopg2  # noqa: E402
from psycopg2.extensions import parse_dsn  # noqa: E402

DEFAULT_DSN = "host=/var/tmp/benzer-demo/run port=5499 user=postgres dbname=benzer_demo"
HERE = os.path.dirname(os.path.abspath(__file__))
NPROBES = [1, 2, 4, 8, 16, 32, 61, 128, 256]
EF_SEARCHES = [16, 32, 64, 128, 256]
K_FACTORS = [1, 2, 4, 8, 16]
# HNSW efSearch as an index option (one build each): values above 100, as
# benzer's first search round asks Faiss for 100 rows (ef = max(efSearch, k)).
EF_BUILD = [128, 256, 512]
K = 10
DIM = 784
KNN_SQL = "SELECT id FROM bench_base ORDER BY v <-> $1 LIMIT 10"
SIMILAR_SQL = (
    "SELECT image_id FROM features WHERE model = 'pixels' AND version = 'v1' "
    "ORDER BY embedding <-> (SELECT embedding FROM features "
    "WHERE image_id = :id AND model = 'pixels' AND version = 'v1') LIMIT 10;"
)

# factory None: CREATE INDEX without a factory (benzer's automatic choice).
INDEXES = [
    dict(key="auto", factory=None, sweeps=[("nprobe", NPROBES)], kernels=True),
    dict(key="hnsw", factory="HNSW32", sweeps=[("ef_search", EF_SEARCHES)], kernels=True,
         build_sweeps=[("ef_search", EF_BUILD)]),
    dict(key="pq4fs", factory="IVF979,PQ392x4fs,RFlat",
         sweeps=[("nprobe", NPROBES), ("k_factor", K_FACTORS)], kernels=False),
    dict(key="pq8", factory="IVF979,PQ196np,RFlat",
         sweeps=[("nprobe", NPROBES), ("k_factor", K_FACTORS)], kernels=False),
]


def library_digest():
    import hashlib
    try:
        libdir = subprocess.run(["pg_config", "--pkglibdir"], capture_output=True, text=True).stdout.strip()
        with open(os.path.join(libdir or "/usr/lib/postgresql/15/lib", "benzer.so"), "rb") as f:
            return hashlib.md5(f.read()).hexdigest()[:12]
    except OSError:
        return "?"


def backend_cpu(pid):
    """CPU seconds (user + system) a local backend has used, from
    /proc/PID/stat; None when the server is not on this machine. Unlike
    wall-clock QPS this barely moves when other work shares the CPUs."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def pg_connect(dsn, options=None):
    """An autocommit connection."""
    conn = psycopg2.connect(dsn, options=options) if options else psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def pg_sql(conn, query, params=None):
    """Runs query; its rows, or None for a command."""
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else None


def pg_sql1(conn, query, params=None):
    """The first column of the first row."""
    return pg_sql(conn, query, params)[0][0]


def pg_backend_pid(conn):
    """The server process of conn, if it runs on this machine (for its CPU time)."""
    pid = pg_sql1(conn, "SELECT pg_backend_pid()")
    try:
        with open(f"/proc/{pid}/comm") as f:
            return pid if f.read().startswith("postgres") else None
    except OSError:
        return None


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, args):
        self.args = args
        self.dsn = args.dsn
        self.t_start = time.perf_counter()
        self.rows = []          # sweep table rows
        self.summary = []       # per-index summary
        self.kernels = []       # fast_kernels on/off
        self.pgbench = []       # pgbench results
        self.curves = {}        # label -> [(recall, qps, setting)]
        self.notes = []         # odd things seen during the run
        self.machine = {}
        self.library = library_digest()
        self.unstable = 0       # passes whose answers differed from the first pass

    # --- connections -------------------------------------------------------

    def connect(self, options=None):
        return pg_connect(self.dsn, options)

    sql = staticmethod(pg_sql)
    sql1 = staticmethod(pg_sql1)
    backend_pid = staticmethod(pg_backend_pid)

    def search_conn(self, options=None):
        """A fresh backend for index scans: seqscan off, knn prepared."""
        conn = self.connect(options)
        self.sql(conn, "SET enable_seqscan = off")
        self.sql(conn, f"PREPARE knn(vector) AS {KNN_SQL}")
        return conn

    # --- machine -----------------------------------------------------------

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
        self.machine = dict(
            nproc=os.cpu_count(),
            cpu=cpu,
            kernel=platform.release(),
            simd=self.sql1(conn, "SELECT benzer_simd_kernel()"),
            postgres=self.sql1(conn, "SHOW server_version"),
            benzer=self.sql1(conn, "SELECT extversion FROM pg_extension WHERE extname = 'benzer'"),
            shared_buffers=self.sql1(conn, "SHOW shared_buffers"),
            parallel=self.sql1(conn, "SHOW max_parallel_workers_per_gather"),
            jit=self.sql1(conn, "SHOW jit"),
            library=self.library,
            load=os.getloadavg()[0],
        )
        m = self.machine
        log(f"machine: nproc={m['nproc']}, CPU {m['cpu']}, benzer_simd_kernel()={m['simd']}, "
            f"PostgreSQL {m['postgres']}, benzer {m['benzer']} (benzer.so md5 {m['library']}), "
            f"load average {m['load']:.2f}")

    def check_library(self):
        """benzer.so must not change during the run (new backends would load
        the new one)."""
        digest = library_digest()
        if digest != self.library:
            self.notes.append(f"benzer.so changed during the run ({self.library} -> {digest}): "
                              "results after that point come from another build")
            log(f"WARNING: benzer.so changed: {self.library} -> {digest}")
            self.library = digest

    # --- data --------------------------------------------------------------

    def load_data(self, conn):
        t0 = time.perf_counter()
        self.sql(conn, "DROP TABLE IF EXISTS bench_base")
        # toast_tuple_target as in demo/schema.sql: the 3 KB vectors stay in
        # their rows (out-of-line storage makes exact scans ~3x slower).
        self.sql(conn, "CREATE TABLE bench_base (id int PRIMARY KEY, v vector(784)) "
                       "WITH (toast_tuple_target = 8160)")
        self.sql(conn, "INSERT INTO bench_base SELECT f.image_id, f.embedding FROM features f "
                       "JOIN images i USING (image_id) WHERE f.model = 'pixels' AND f.version = 'v1' "
                       "AND i.split = 'train' ORDER BY f.image_id")
        self.sql(conn, "VACUUM ANALYZE bench_base")
        self.n_base = self.sql1(conn, "SELECT count(*) FROM bench_base")
        self.raw_table_bytes = self.sql1(conn, "SELECT pg_total_relation_size('bench_base')")
        self.raw_heap_bytes = self.sql1(conn, "SELECT pg_relation_size('bench_base')")
        self.raw_float_bytes = self.n_base * DIM * 4
        log(f"bench_base: {self.n_base} rows, {self.raw_table_bytes / 2**20:.0f} MB in total "
            f"(heap {self.raw_heap_bytes / 2**20:.0f} MB), raw floats {self.raw_float_bytes / 2**20:.0f} MB, "
            f"{time.perf_counter() - t0:.1f} s")

        # The base vectors client-side (binary, vector_send) for a numpy
        # cross-check of the exact answers and tie-aware recall.
        ids = np.empty(self.n_base, dtype=np.int64)
        base = np.empty((self.n_base, DIM), dtype=np.float32)
        with conn.cursor() as cur:
            cur.execute("SELECT id, vector_send(v) FROM bench_base ORDER BY id")
            i = 0
            while True:
                chunk = cur.fetchmany(5000)
                if not chunk:
                    break
                for id_, raw in chunk:
                    ids[i] = id_
                    base[i] = np.frombuffer(bytes(raw), dtype=">f4", offset=4)
                    i += 1
        self.base_ids = ids
        self.id_pos = {int(x): j for j, x in enumerate(ids)}
        self.base = base.astype(np.float64)

        rows = self.sql(conn, "SELECT f.image_id, f.embedding::text FROM features f "
                              "JOIN images i USING (image_id) WHERE f.model = 'pixels' "
                              "AND f.version = 'v1' AND i.split = 'test' ORDER BY f.image_id "
                              "LIMIT %s", (self.args.queries,))
        self.query_ids = [r[0] for r in rows]
        self.query_text = [r[1] for r in rows]
        self.queries = np.array([[float(x) for x in t.strip("[]").split(",")] for t in self.query_text],
                                dtype=np.float64)
        log(f"{len(self.queries)} queries (test images {self.query_ids[0]}..{self.query_ids[-1]}), "
            f"data ready in {time.perf_counter() - t0:.1f} s")

    def numpy_truth(self):
        """Squared distances (exact in float64: the pixels are integers)."""
        t0 = time.perf_counter()
        norms = (self.base ** 2).sum(axis=1)
        self.kth = np.empty(len(self.queries))
        self.np_top = []
        for s in range(0, len(self.queries), 100):
            q = self.queries[s:s + 100]
            d = norms[None, :] - 2.0 * q @ self.base.T + (q ** 2).sum(axis=1)[:, None]
            d = np.rint(d)  # integer-valued; removes dgemm rounding
            part = np.argpartition(d, K, axis=1)[:, :K]
            for r in range(len(q)):
                dd = d[r, part[r]]
                self.kth[s + r] = dd.max()
                self.np_top.append(set(int(self.base_ids[j]) for j in part[r]))
        log(f"numpy exact top-10 in {time.perf_counter() - t0:.1f} s")

    def sqdist(self, qi, ids):
        pos = [self.id_pos[int(i)] for i in ids]
        diff = self.base[pos] - self.queries[qi][None, :]
        return (diff * diff).sum(axis=1)

    def recall(self, results):
        """recall@10 with ties: a returned row counts when it is no farther
        than the 10th true neighbour (ann-benchmarks' definition)."""
        hits = 0
        short = 0
        for qi, ids in enumerate(results):
            if len(ids) < K:
                short += 1
            if ids:
                hits += int((self.sqdist(qi, ids) <= self.kth[qi]).sum())
        return hits / (K * len(results)), short

    # --- timing ------------------------------------------------------------

    def run_queries(self, conn, stmt="EXECUTE knn(%s)", runs=None):
        """All queries, `runs` times over; QPS of the fastest pass (as
        ann-benchmarks does: on a shared machine the best pass is the one
        least disturbed by other work). Results of the first pass."""
        runs = runs or self.args.runs
        results = []
        best = 0.0
        self.last_cpu_ms = None
        pid = self.backend_pid(conn)
        with conn.cursor() as cur:
            for rnd in range(runs):
                got = []
                c0 = backend_cpu(pid)
                t0 = time.perf_counter()
                for q in self.query_text:
                    cur.execute(stmt, (q,))
                    got.append([r[0] for r in cur.fetchall()])
                elapsed = time.perf_counter() - t0
                c1 = backend_cpu(pid)
                if c0 is not None and c1 is not None:
                    ms = (c1 - c0) * 1000.0 / len(self.query_text)
                    self.last_cpu_ms = ms if self.last_cpu_ms is None else min(self.last_cpu_ms, ms)
                best = max(best, len(self.query_text) / elapsed)
                if rnd == 0:
                    results = got
                elif got != results:
                    self.unstable += 1
        return results, best

    def exact(self, conn):
        # Exact search as a user without an index gets it (server defaults,
        # a parallel seq scan where the planner picks one), then on one core.
        self.sql(conn, "PREPARE exact(vector) AS SELECT id FROM bench_base ORDER BY v <-> $1 LIMIT 10")
        plan = "\n".join(r[0] for r in self.sql(conn, "EXPLAIN EXECUTE exact(%s)", (self.query_text[0],)))
        workers = re.search(r"Workers Planned: (\d+)", plan)
        self.exact_workers = int(workers.group(1)) if workers else 0
        log(f"exact search, {len(self.query_text)} queries (plan: {self.exact_workers} parallel workers) ...")
        # Warm: read the whole heap once, then a few exact queries.
        self.sql(conn, "SELECT sum(vector_dims(v)) FROM bench_base")
        for q in self.query_text[:5]:
            self.sql(conn, "EXECUTE exact(%s)", (q,))
        truth, qps = self.run_queries(conn, "EXECUTE exact(%s)", runs=1)
        self.exact_qps = qps
        self.exact_cpu = self.last_cpu_ms if self.exact_workers == 0 else None  # workers' CPU not counted
        self.truth = truth
        # Cross-check the server's exact answers against numpy.
        rec, short = self.recall(truth)
        self.exact_recall = rec
        same_sets = sum(1 for a, b in zip(truth, self.np_top) if set(a) == b)
        if rec < 1.0 or short:
            self.notes.append(f"exact seq scan disagrees with numpy: recall {rec:.4f}, {short} short answers")
        log(f"exact: {qps:.2f} QPS, backend CPU {self.exact_cpu if self.exact_cpu is not None else float('nan'):.2f} "
            f"ms/query, recall vs numpy {rec:.4f} "
            f"({same_sets}/{len(truth)} identical id sets; the rest differ only by ties)")
        self.exact_same_sets = same_sets

        self.rows.append(dict(index="exact (seq scan)" if self.exact_workers == 0 else
                              f"exact (parallel seq scan, {self.exact_workers} workers)",
                              build="-", mb="-", raw=self.raw_cell(), setting="-", recall=rec, qps=qps, cpu=self.last_cpu_ms))
        if self.exact_workers > 0:
            # The indexes search on one core: the exact line on one core too.
            n1 = min(len(self.query_text), self.args.exact_check_queries)
            self.sql(conn, "SET max_parallel_workers_per_gather = 0")
            self.sql(conn, "DEALLOCATE exact")
            self.sql(conn, "PREPARE exact(vector) AS SELECT id FROM bench_base ORDER BY v <-> $1 LIMIT 10")
            _, qps1 = self.timed_subset(conn, "EXECUTE exact(%s)", n1)
            self.sql(conn, "RESET max_parallel_workers_per_gather")
            log(f"exact, no parallel workers ({n1} queries): {qps1:.2f} QPS")
            self.rows.append(dict(index="exact (seq scan, 1 core)", build="-", mb="-", raw=self.raw_cell(),
                                  setting=f"{n1} queries", recall=None, qps=qps1, cpu=self.last_cpu_ms))

    def exact_again(self, conn):
        """The exact line once more at the end: how much the machine drifted."""
        n1 = min(len(self.query_text), self.args.exact_check_queries)
        _, qps = self.timed_subset(conn, "EXECUTE exact(%s)", n1)
        log(f"exact again at the end ({n1} queries): {qps:.2f} QPS")
        self.rows.append(dict(index="exact, again at the end", build="-", mb="-", raw=self.raw_cell(),
                              setting=f"{n1} queries", recall=None, qps=qps, cpu=self.last_cpu_ms))
        self.exact_qps_end = qps

    def timed_subset(self, conn, stmt, n):
        saved = self.query_text
        self.query_text = saved[:n]
        try:
            return self.run_queries(conn, stmt, runs=1)
        finally:
            self.query_text = saved

    def raw_cell(self):
        return f"{self.raw_float_bytes / 2**20:.0f} ({self.raw_table_bytes / 2**20:.0f})"

    # --- indexes -----------------------------------------------------------

    def check_plan(self, conn, setting):
        plan = "\n".join(r[0] for r in self.sql(conn, "EXPLAIN EXECUTE knn(%s)", (self.query_text[0],)))
        if "bench_idx" not in plan:
            raise RuntimeError(f"the faiss index is not used ({setting}):\n{plan}")

    def bench_index(self, main_conn, spec):
        # A new backend for the build too, so that the build and the
        # searches run the same benzer.so even if it is reinstalled.
        snapshot = (len(self.rows), len(self.summary), len(self.kernels), len(self.notes),
                    {k: list(v) for k, v in self.curves.items()})
        for attempt in (1, 2):
            conn = self.connect()
            try:
                self._bench_index(conn, spec)
                return
            except psycopg2.Error as e:
                # benzer.so reinstalled under a running benchmark (pages
                # written by one build, read by another) is worth one retry.
                if attempt == 2 or library_digest() == self.library:
                    raise
                log(f"  failed ({str(e).strip()}) after benzer.so changed: retrying this index")
                self.notes.append(f"{spec['factory'] or 'auto'}: measured again after benzer.so was "
                                  f"reinstalled during its measurement ({str(e).strip()})")
                self.check_library()
                del self.rows[snapshot[0]:], self.summary[snapshot[1]:], self.kernels[snapshot[2]:]
                self.curves = {k: list(v) for k, v in snapshot[4].items()}
            finally:
                try:
                    self.sql(conn, "DROP INDEX IF EXISTS bench_idx")
                except psycopg2.Error:
                    pass
                conn.close()

    def _bench_index(self, conn, spec):
        factory = spec["factory"]
        with_ = f" WITH (factory = '{factory}')" if factory else ""
        self.sql(conn, "DROP INDEX IF EXISTS bench_idx")
        self.sql(conn, "SET maintenance_work_mem = '2GB'")
        log(f"CREATE INDEX {factory or '(automatic factory)'} ...")
        t0 = time.perf_counter()
        self.sql(conn, f"CREATE INDEX bench_idx ON bench_base USING faiss (v vector_l2_ops){with_}")
        build = time.perf_counter() - t0
        self.check_library()
        load = os.getloadavg()[0]
        self.sql(conn, "RESET maintenance_work_mem")
        info = self.sql(conn, "SELECT factory, auto_factory, rows, bytes_on_disk, faiss_bytes, description "
                              "FROM benzer_index_info('bench_idx')")[0]
        rel = self.sql1(conn, "SELECT pg_relation_size('bench_idx')")
        fac, auto, nrows, on_disk, faiss_bytes, desc = info
        label = f"auto: {fac}" if factory is None else fac
        log(f"  {label}: built in {build:.1f} s (load average {load:.2f}), pg_relation_size {rel / 2**20:.1f} MB, "
            f"bytes_on_disk {on_disk / 2**20:.1f} MB, faiss {faiss_bytes / 2**20:.1f} MB; {desc}")
        if nrows != self.n_base:
            self.notes.append(f"{label}: benzer_index_info rows = {nrows}, table has {self.n_base}")

        sconn = self.search_conn()
        t0 = time.perf_counter()
        self.sql(sconn, "EXECUTE knn(%s)", (self.query_text[0],))
        load_ms = (time.perf_counter() - t0) * 1000
        for q in self.query_text[:20]:  # warm caches and the CPU
            self.sql(sconn, "EXECUTE knn(%s)", (q,))
        mem = self.sql1(sconn, "SELECT bytes_in_memory FROM benzer_index_info('bench_idx')")
        self.check_sticky(sconn, label, desc)
        self.summary.append(dict(label=label, auto=auto, build=build, load=load, rel=rel, on_disk=on_disk,
                                 faiss=faiss_bytes, mem=mem, desc=desc, load_ms=load_ms))
        log(f"  first query (loads the index into the backend): {load_ms:.0f} ms")

        first = True
        default_setting = None
        m = re.search(r"nprobe (\d+)", desc)
        if m:
            default_setting = ("nprobe", int(m.group(1)))
        m = re.search(r"efSearch (\d+)", desc)
        if m:
            default_setting = ("ef_search", int(m.group(1)))
        sconn.close()
        for param, values in spec["sweeps"]:
            curve_label = label if param != "k_factor" else f"{label} (k_factor, nprobe {self.default_nprobe(desc)})"
            curve = self.curves.setdefault(curve_label, [])
            for val in values:
                # A new backend per setting, the setting given at connection
                # time: nothing one setting leaves in the backend's cached
                # index can leak into the next measurement.
                sconn = self.search_conn(options=f"-c benzer.{param}={val}")
                for q in self.query_text[:20]:  # load and warm
                    self.sql(sconn, "EXECUTE knn(%s)", (q,))
                self.check_plan(sconn, f"{param} = {val}")
                res, qps = self.run_queries(sconn)
                sconn.close()
                rec, short = self.recall(res)
                if short:
                    self.notes.append(f"{label}, {param} = {val}: {short} queries returned fewer than 10 rows")
                mark = " (default)" if default_setting == (param, val) else ""
                if param == "k_factor" and f"re-ranking x{val}," in desc + ",":
                    mark = " (default)"
                self.rows.append(dict(index=label if first else "", build=f"{build:.1f}" if first else "",
                                      mb=f"{rel / 2**20:.0f}" if first else "",
                                      raw=self.raw_cell() if first else "",
                                      setting=f"{param} {val}{mark}", recall=rec, qps=qps,
                                      cpu=self.last_cpu_ms))
                first = False
                curve.append((rec, qps, val))
                log(f"  {param} {val}: recall@10 {rec:.4f}, {qps:.1f} QPS, x{qps / self.exact_qps:.1f} vs exact, "
                    f"backend CPU {self.last_cpu_ms if self.last_cpu_ms is not None else float('nan'):.3f} ms/query")

            self.check_flat_sweep(label, param, values)

        if spec["kernels"]:
            self.fast_kernels(label)
        for param, values in spec.get("build_sweeps", []):
            self.build_sweep(conn, spec, label, param, values)
        self.sql(conn, "DROP INDEX bench_idx")

    def check_flat_sweep(self, label, param, values):
        """A setting that changes neither recall nor speed is worth a note."""
        rows = self.rows[-len(values):]
        recalls = {round(r["recall"], 6) for r in rows}
        qps = [r["qps"] for r in rows]
        # Recall identical to the last digit across a wide sweep: the knob
        # does not reach the search (QPS alone is too noisy to tell).
        if len(values) > 2 and len(recalls) == 1 and values[-1] >= 4 * values[0]:
            self.notes.append(f"{label}: `benzer.{param}` from {values[0]} to {values[-1]} did not change recall@10: "
                              f"recall@10 {rows[0]['recall']:.4f} at every value, QPS {min(qps):.0f}..{max(qps):.0f}")

    def build_sweep(self, conn, spec, label, param, values):
        """The same setting given as an index option at CREATE INDEX (stored
        in the Faiss structure), one build per value."""
        curve = self.curves.setdefault(f"{label} ({param} set at CREATE INDEX)", [])
        for val in values:
            self.sql(conn, "DROP INDEX IF EXISTS bench_idx")
            self.sql(conn, "SET maintenance_work_mem = '2GB'")
            t0 = time.perf_counter()
            self.sql(conn, f"CREATE INDEX bench_idx ON bench_base USING faiss (v vector_l2_ops) "
                           f"WITH (factory = '{spec['factory']}', {param} = {val})")
            build = time.perf_counter() - t0
            self.sql(conn, "RESET maintenance_work_mem")
            self.check_library()
            desc = self.sql1(conn, "SELECT description FROM benzer_index_info('bench_idx')")
            sconn = self.search_conn()
            for q in self.query_text[:20]:
                self.sql(sconn, "EXECUTE knn(%s)", (q,))
            self.check_plan(sconn, f"WITH ({param} = {val})")
            res, qps = self.run_queries(sconn)
            sconn.close()
            rec, short = self.recall(res)
            if short:
                self.notes.append(f"{label}, WITH ({param} = {val}): {short} queries returned fewer than 10 rows")
            self.rows.append(dict(index=f"{label}, rebuilt", build=f"{build:.1f}", mb="", raw="",
                                  setting=f"WITH ({param} = {val})", recall=rec, qps=qps,
                                  cpu=self.last_cpu_ms))
            curve.append((rec, qps, val))
            log(f"  WITH ({param} = {val}) [{desc}]: built in {build:.1f} s, recall@10 {rec:.4f}, "
                f"{qps:.1f} QPS, x{qps / self.exact_qps:.1f} vs exact")

    def check_sticky(self, conn, label, desc):
        """Does a per-query setting stay in the backend's cached index after
        RESET? (benzer_index_info().description shows the loaded index's
        defaults.) Checked and reported; the sweeps do not depend on it."""
        for param, val, pat in (("nprobe", 256, r"nprobe (\d+)"), ("ef_search", 256, r"efSearch (\d+)")):
            m = re.search(pat, desc)
            if not m:
                continue
            self.sql(conn, f"SET benzer.{param} = {val}")
            self.sql(conn, "EXECUTE knn(%s)", (self.query_text[0],))
            self.sql(conn, f"RESET benzer.{param}")
            after = self.sql1(conn, "SELECT description FROM benzer_index_info('bench_idx')")
            m2 = re.search(pat, after)
            if m2 and m2.group(1) != m.group(1):
                self.notes.append(f"{label}: after `SET benzer.{param} = {val}`, one query and `RESET`, the "
                                  f"backend's loaded index keeps {param} {m2.group(1)} (was {m.group(1)}): "
                                  f"description \"{after}\". Later queries in that backend run at "
                                  f"{param} {m2.group(1)}, not the index default.")
                log(f"  NOTE: sticky {param}: {after}")

    @staticmethod
    def default_nprobe(desc):
        m = re.search(r"nprobe (\d+)", desc)
        return m.group(1) if m else "?"

    def fast_kernels(self, label):
        """QPS at the index's default settings, benzer.fast_kernels on vs
        off, each in a new backend (the setting applies when an index is
        loaded); alternating rounds, the best of each."""
        best = {"on": 0.0, "off": 0.0}
        recalls = {}
        all_qps = {"on": [], "off": []}
        cpu = {}
        for rnd in range(self.args.kernel_rounds):
            for mode in ("on", "off"):
                c = self.search_conn(options=f"-c benzer.fast_kernels={mode}")
                shown = self.sql1(c, "SHOW benzer.fast_kernels")
                assert shown == mode, shown
                for q in self.query_text[:20]:
                    self.sql(c, "EXECUTE knn(%s)", (q,))
                res, qps = self.run_queries(c, runs=1)
                c.close()
                rec, _ = self.recall(res)
                recalls.setdefault(mode, rec)
                all_qps[mode].append(qps)
                best[mode] = max(best[mode], qps)
                if self.last_cpu_ms is not None:
                    cpu[mode] = min(cpu.get(mode, 1e9), self.last_cpu_ms)
                log(f"  fast_kernels={mode} round {rnd + 1}: recall@10 {rec:.4f}, {qps:.1f} QPS, "
                    f"backend CPU {self.last_cpu_ms if self.last_cpu_ms is not None else float('nan'):.3f} ms/query")
        self.kernels.append(dict(label=label, on=best["on"], off=best["off"], rec_on=recalls["on"],
                                 rec_off=recalls["off"], all=all_qps,
                                 cpu_on=cpu.get("on"), cpu_off=cpu.get("off")))

    # --- pgbench -----------------------------------------------------------

    def pgbench_run(self, what, script, env_extra=None):
        p = parse_dsn(self.dsn)
        cmd = ["pgbench", "-n", "-P", "5", "-M", "prepared", "-c", str(self.args.clients), "-j", str(self.args.clients),
               "-T", str(self.args.pgbench_time), "-f", script]
        for opt, key in (("-h", "host"), ("-p", "port"), ("-U", "user")):
            if key in p:
                cmd += [opt, p[key]]
        cmd.append(p.get("dbname", "postgres"))
        env = dict(os.environ)
        if "password" in p:
            env["PGPASSWORD"] = p["password"]
        env.update(env_extra or {})
        log(f"pgbench {what}: {' '.join(cmd)}")
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"pgbench failed:\n{out.stdout}\n{out.stderr}")

        def grab(pattern):
            m = re.search(pattern, out.stdout)
            return float(m.group(1)) if m else float("nan")
        r = dict(what=what, tps=grab(r"tps = ([\d.]+)"), lat=grab(r"latency average = ([\d.]+) ms"),
                 std=grab(r"latency stddev = ([\d.]+) ms"), tx=grab(r"number of transactions actually processed: (\d+)"),
                 init=grab(r"initial connection time = ([\d.]+) ms"))
        log(f"  {r['tps']:.1f} TPS, latency {r['lat']:.2f} ms (stddev {r['std']:.2f}), {r['tx']:.0f} transactions")
        self.pgbench.append(r)
        return r

    def pgbench_all(self, conn):
        if shutil.which("pgbench") is None:
            self.notes.append("pgbench not found: the pgbench part was skipped")
            return
        tmp = tempfile.mkdtemp(prefix="benzer-bench-")
        script = os.path.join(tmp, "similar.sql")
        with open(script, "w") as f:
            f.write("\\set id random(1, 60000)\n" + SIMILAR_SQL + "\n")
        os.chmod(tmp, 0o755)
        os.chmod(script, 0o644)
        self.sql(conn, "DROP INDEX IF EXISTS bench_features_pixels")
        self.sql(conn, "SET maintenance_work_mem = '2GB'")
        t0 = time.perf_counter()
        self.sql(conn, "CREATE INDEX bench_features_pixels ON features USING faiss (embedding) "
                       "WHERE model = 'pixels' AND version = 'v1'")
        build = time.perf_counter() - t0
        self.sql(conn, "RESET maintenance_work_mem")
        fac, desc = self.sql(conn, "SELECT factory, description FROM benzer_index_info('bench_features_pixels')")[0]
        self.pg_index = dict(factory=fac, desc=desc, build=build)
        log(f"partial index on features: {fac} ({desc}), built in {build:.1f} s")
        try:
            q = SIMILAR_SQL.replace(":id", "1234").rstrip(";")
            plan = "\n".join(r[0] for r in self.sql(conn, "EXPLAIN " + q))
            if "bench_features_pixels" not in plan:
                self.notes.append("pgbench: the planner did not pick the partial faiss index:\n" + plan)
            # Recall of this query shape on a sample, against the exact answer.
            ids = list(range(7, 60000, 60000 // self.args.similar_sample))[: self.args.similar_sample]
            got = [[r[0] for r in self.sql(conn, SIMILAR_SQL.replace(":id", str(i)).rstrip(";"))] for i in ids]
            self.pgbench_run("faiss index", script)
        finally:
            self.sql(conn, "DROP INDEX IF EXISTS bench_features_pixels")
        hits = 0
        for i, g in zip(ids, got):
            exact = self.sql(conn, "SELECT image_id, embedding <-> (SELECT embedding FROM features WHERE "
                                   "image_id = %s AND model = 'pixels' AND version = 'v1') AS d FROM features "
                                   "WHERE model = 'pixels' AND version = 'v1' ORDER BY d LIMIT 10", (i,))
            kth = exact[-1][1]
            if g:
                dist = dict(self.sql(conn, "SELECT image_id, embedding <-> (SELECT embedding FROM features WHERE "
                                           "image_id = %s AND model = 'pixels' AND version = 'v1') FROM features "
                                           "WHERE model = 'pixels' AND version = 'v1' AND image_id = ANY(%s)",
                                     (i, g)))
                hits += sum(1 for x in g if dist[x] <= kth * (1 + 1e-6))
        self.pg_index["recall"] = hits / (K * len(ids))
        self.pg_index["sample"] = len(ids)
        log(f"  recall@10 of the index on {len(ids)} sampled ids: {self.pg_index['recall']:.4f}")
        self.pgbench_run("exact scan (no index)", script)
        shutil.rmtree(tmp, ignore_errors=True)

    # --- output ------------------------------------------------------------

    def markdown(self):
        m = self.machine
        out = []
        out.append("# benzer faiss benchmark: Fashion-MNIST pixels (784-d, L2)\n")
        out.append(f"- machine: {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}; "
                   f"PostgreSQL {m['postgres']}, benzer {m['benzer']} (benzer.so md5 `{m['library']}`), "
                   f"benzer_simd_kernel() = `{m['simd']}`; load average at start {m['load']:.2f}; "
                   f"shared_buffers {m['shared_buffers']}, max_parallel_workers_per_gather {m['parallel']}, jit {m['jit']}")
        out.append(f"- data: {self.n_base} train vectors (base), {len(self.query_text)} test vectors (queries), "
                   f"k = 10; raw floats {self.raw_float_bytes / 2**20:.0f} MB "
                   f"(`{self.n_base}*784*4`), table `bench_base` {self.raw_table_bytes / 2**20:.0f} MB "
                   f"(pg_total_relation_size)")
        out.append("- QPS: one client, one connection, prepared `" + KNN_SQL + "`, enable_seqscan = off, "
                   "index loaded and warmed first (a new backend per setting); the whole round trip is timed; "
                   f"index rows: best of {self.args.runs} passes over the queries, exact rows: one pass")
        out.append("- recall@10: share of returned rows no farther than the true 10th neighbour "
                   "(exact squared distances in float64 on the client)")
        out.append(f"- run: {time.strftime('%Y-%m-%d %H:%M')}, total {self.total / 60:.1f} min\n")

        out.append("## Recall and QPS\n")
        out.append("index MB = pg_relation_size of the index; raw MB = 60000x784 float4 "
                   "(in brackets: pg_total_relation_size of the table). Speed-up vs the exact "
                   "search line (first row), measured in the same run. Backend CPU ms/query: user + system "
                   "CPU time of the server backend (/proc/PID/stat, 10 ms ticks) over the pass divided by the "
                   "queries (lowest of the passes), much less disturbed by other work on a shared machine than "
                   "wall-clock QPS; it leaves out the client and the round trip.\n")
        out.append("| index | build s | index MB | raw MB | setting | recall@10 | QPS | speed-up vs exact | "
                   "backend CPU ms/query | CPU speed-up |")
        out.append("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")

        def cpu_cells(r):
            if r.get("cpu") is None or not self.exact_cpu:
                return "- | -"
            return f"{r['cpu']:.3f} | {self.exact_cpu / r['cpu']:.0f}x" if r["cpu"] > 0 else f"{r['cpu']:.3f} | -"
        for r in self.rows:
            rec = "1.0000" if r["recall"] == 1.0 else ("-" if r["recall"] is None else f"{r['recall']:.4f}")
            out.append(f"| {r['index']} | {r['build']} | {r['mb']} | {r['raw']} | {r['setting']} | {rec} | "
                       f"{r['qps']:.1f} | {r['qps'] / self.exact_qps:.1f}x | {cpu_cells(r)} |")
        out.append("")

        out.append("## Indexes\n")
        out.append("| index | build s | load avg after build | pg_relation_size MB | bytes_on_disk MB | "
                   "faiss_bytes MB | in memory MB | first query (load) ms | description |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in self.summary:
            out.append(f"| {s['label']} | {s['build']:.1f} | {s['load']:.2f} | {s['rel'] / 2**20:.1f} | {s['on_disk'] / 2**20:.1f} | "
                       f"{s['faiss'] / 2**20:.1f} | {s['mem'] / 2**20:.1f} | {s['load_ms']:.0f} | {s['desc']} |")
        out.append("")

        if self.kernels:
            out.append("## benzer.fast_kernels (default settings, new backend per measurement)\n")
            out.append(f"Best of {self.args.kernel_rounds} alternating rounds of {len(self.query_text)} queries.\n")
            out.append("| index | QPS on | QPS off | QPS gain | CPU ms/query on | CPU ms/query off | CPU gain | "
                       "recall on | recall off | QPS of all rounds on / off |")
            out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
            for k in self.kernels:
                rounds = ", ".join(f"{x:.0f}" for x in k["all"]["on"]) + " / " + \
                    ", ".join(f"{x:.0f}" for x in k["all"]["off"])
                if k["cpu_on"] and k["cpu_off"]:
                    cpu = f"{k['cpu_on']:.3f} | {k['cpu_off']:.3f} | {k['cpu_off'] / k['cpu_on']:.2f}x"
                else:
                    cpu = "- | - | -"
                out.append(f"| {k['label']} | {k['on']:.1f} | {k['off']:.1f} | {k['on'] / k['off']:.2f}x | {cpu} | "
                           f"{k['rec_on']:.4f} | {k['rec_off']:.4f} | {rounds} |")
            out.append("")

        if self.pgbench:
            pi = self.pg_index
            out.append("## pgbench: \"find similar to image #id\"\n")
            out.append(f"`pgbench -n -M prepared -c {self.args.clients} -j {self.args.clients} "
                       f"-T {self.args.pgbench_time}`, `\\set id random(1, 60000)`:\n")
            out.append("```sql\n" + SIMILAR_SQL + "\n```\n")
            out.append(f"Index: `CREATE INDEX ON features USING faiss (embedding) WHERE model = 'pixels' "
                       f"AND version = 'v1'` -> {pi['factory']} ({pi['desc']}), built in {pi['build']:.1f} s "
                       f"over the 70 000 pixels rows; recall@10 of this query on {pi['sample']} ids: "
                       f"{pi['recall']:.4f}. Each pgbench client is a new backend, so each loads the index "
                       f"once (inside the timed run).\n")
            out.append("| plan | TPS | latency avg ms | latency stddev ms | transactions |")
            out.append("|---|---:|---:|---:|---:|")
            for r in self.pgbench:
                out.append(f"| {r['what']} | {r['tps']:.1f} | {r['lat']:.2f} | {r['std']:.2f} | {r['tx']:.0f} |")
            if len(self.pgbench) == 2:
                out.append(f"\nTPS ratio index / exact: {self.pgbench[0]['tps'] / self.pgbench[1]['tps']:.1f}x\n")
            out.append("")

        if self.unstable:
            self.notes.append(f"{self.unstable} repeated passes returned different rows than the first pass "
                              "of the same setting")
        if self.notes:
            out.append("## Notes from the run\n")
            for n in self.notes:
                out.append(f"- {n}")
            out.append("")
        return "\n".join(out)

    def plot(self, path):
        plot_results(self.results_dict(), path)

    def results_dict(self):
        return dict(machine=self.machine, n_base=self.n_base, queries=len(self.query_text),
                    exact_qps=self.exact_qps, exact_qps_end=self.exact_qps_end, exact_cpu=self.exact_cpu,
                    curves={k: v for k, v in self.curves.items()}, rows=self.rows, summary=self.summary,
                    kernels=self.kernels, pgbench=self.pgbench, pg_index=getattr(self, "pg_index", None),
                    notes=self.notes, total_s=self.total, args=vars(self.args))

    # --- main --------------------------------------------------------------

    def run(self):
        conn = self.connect()
        self.describe_machine(conn)
        self.load_data(conn)
        self.numpy_truth()
        self.exact(conn)
        wanted = set(self.args.indexes.split(",")) if self.args.indexes else None
        try:
            for spec in INDEXES:
                if wanted and spec["key"] not in wanted:
                    continue
                self.bench_index(conn, spec)
            self.exact_again(conn)
            if not self.args.skip_pgbench:
                self.pgbench_all(conn)
        finally:
            self.sql(conn, "DROP INDEX IF EXISTS bench_idx")
            self.sql(conn, "DROP INDEX IF EXISTS bench_features_pixels")
            if not self.args.keep_table:
                self.sql(conn, "DROP TABLE IF EXISTS bench_base")
        conn.close()
        self.check_library()
        self.total = time.perf_counter() - self.t_start

        os.makedirs(self.args.out_dir, exist_ok=True)
        md = self.markdown()
        with open(os.path.join(self.args.out_dir, "faiss_fashion_mnist.md"), "w") as f:
            f.write(md + "\n")
        with open(os.path.join(self.args.out_dir, "faiss_fashion_mnist.json"), "w") as f:
            json.dump(self.results_dict(), f, indent=1, default=str)
        self.plot(os.path.join(self.args.out_dir, "recall_qps.png"))
        print(md)
        log(f"wrote {self.args.out_dir}/faiss_fashion_mnist.md and recall_qps.png; "
            f"total {self.total:.0f} s")


# Recall ticks for the "1 - recall" axis; recall 1.0 is drawn at MISS_FLOOR.
MISS_FLOOR = 3e-5


def plot_results(res, path):
    """Recall@10 vs QPS (log), one line per index and sweep: left the whole
    recall range, right the high-recall end on a log scale of 1 - recall."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5))
    markers = "osD^v<>p*h"
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ai, ax in enumerate(axes):
        for i, (label, pts) in enumerate(res["curves"].items()):
            pts = sorted(pts, key=lambda p: (p[0], -p[1]))
            xs = [p[0] if ai == 0 else max(1.0 - p[0], MISS_FLOOR) for p in pts]
            style = "--" if "(" in label else "-"
            color = colors[i % len(colors)]
            ax.plot(xs, [p[1] for p in pts], style, marker=markers[i % len(markers)], color=color,
                    label=label, markersize=5)
            for x, (rec, qps, val) in zip(xs, pts):
                if (ai == 0 and rec > 0.95) or (ai == 1 and rec < 0.9):
                    continue
                ax.annotate(str(val), (x, qps), textcoords="offset points", xytext=(3, 3), fontsize=6, color=color)
        x_exact = 1.0 if ai == 0 else MISS_FLOOR
        ax.axhline(res["exact_qps"], color="black", linestyle=":", linewidth=1)
        ax.plot([x_exact], [res["exact_qps"]], "k*", markersize=12,
                label=f"exact seq scan ({res['exact_qps']:.1f} QPS)")
        ax.plot([x_exact], [res["exact_qps_end"]], "kx", markersize=9,
                label=f"exact, again at the end ({res['exact_qps_end']:.1f} QPS)")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_xlabel("recall@10")
    axes[0].set_ylabel("queries per second (log scale), 1 client")
    axes[0].set_title("all settings (point labels: nprobe / ef_search / k_factor)", fontsize=9)
    axes[1].set_xscale("log")
    axes[1].set_xlim(0.15, MISS_FLOOR * 0.7)
    ticks = [0.1, 0.01, 0.001, 0.0001, MISS_FLOOR]
    axes[1].set_xticks(ticks)
    axes[1].set_xticklabels(["0.9", "0.99", "0.999", "0.9999", "1.0"])
    axes[1].minorticks_off()
    axes[1].set_xlabel("recall@10 (log scale of 1 - recall; 1.0 drawn at the right edge)")
    axes[1].set_title("high-recall end", fontsize=9)
    axes[1].legend(fontsize=7, loc="lower left")
    m = res["machine"]
    fig.suptitle(f"benzer faiss indexes, Fashion-MNIST 784-d L2, {res['n_base']} rows, {res['queries']} queries; "
                 f"{m['nproc']} CPUs ({m['cpu']}), kernels {m['simd']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=DEFAULT_DSN, help="libpq connection string (default: the demo cluster)")
    ap.add_argument("--queries", type=int, default=1000, help="test images used as queries (default 1000)")
    ap.add_argument("--exact-check-queries", type=int, default=200,
                    help="queries timed for the exact line at the end of the run (default 200)")
    ap.add_argument("--runs", type=int, default=2,
                    help="passes over the queries per setting; the fastest counts (default 2)")
    ap.add_argument("--kernel-rounds", type=int, default=3, help="on/off rounds for fast_kernels (default 3)")
    ap.add_argument("--indexes", default="", help="comma list of auto,hnsw,pq4fs,pq8 (default: all)")
    ap.add_argument("--pgbench-time", type=int, default=20, help="seconds per pgbench run (default 20)")
    ap.add_argument("--clients", type=int, default=2, help="pgbench clients and threads (default 2)")
    ap.add_argument("--similar-sample", type=int, default=50,
                    help="ids checked for the recall of the pgbench query (default 50)")
    ap.add_argument("--skip-pgbench", action="store_true")
    ap.add_argument("--keep-table", action="store_true", help="keep bench_base afterwards")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--replot", metavar="JSON",
                    help="only redraw recall_qps.png from a previous run's faiss_fashion_mnist.json")
    args = ap.parse_args()
    if args.replot:
        os.makedirs(args.out_dir, exist_ok=True)
        with open(args.replot) as f:
            plot_results(json.load(f), os.path.join(args.out_dir, "recall_qps.png"))
        return
    Bench(args).run()


if __name__ == "__main__":
    main()
