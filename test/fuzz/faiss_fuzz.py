#!/usr/bin/python3
"""faiss_fuzz.py: fuzzes what reaches Faiss through SQL.

Generates factory strings and index options (valid, near-valid and absurd)
and tables of degenerate shapes (one row, fewer rows than IVF lists, equal
rows, constant and zero vectors, huge norms, mixed dimensions under a
partial index), and drives each combination through CREATE INDEX, INSERT,
DELETE, VACUUM, benzer_index_merge, REINDEX and searches, on the server
that PG* environment variables name (pg_virtualenv sets them).

A combination passes when
  - the server never restarted (the connection stayed up and
    pg_postmaster_start_time() did not change),
  - no statement ran past its statement_timeout by more than a grace
    period (a cancel that does not work is a hang),
  - every error is a refusal with an expected SQLSTATE (an internal error,
    XX000, is a failure: it means an input reached Faiss unchecked),
  - searches are right: an ORDER BY without LIMIT returns every row the
    index covers once; a filtered LIMIT k returns min(k, matching) rows, all
    matching; exact structures (Flat, IVF-Flat, HNSW over flat storage, no
    transforms) return the exact top 10 distances.

    /usr/bin/python3 test/fuzz/faiss_fuzz.py --seed 1 --cases 2000

prints one line per failure and ends with "fuzz: N passed, M failed". The
test command runs a bounded, fixed-seed run; scripts/fuzz.sh runs longer ones.
"""

import argparse
import os
import random
import signal
import sys
import threading
import time

import psycopg2
import psycopg2.extensions

# SQLSTATEs of a clean refusal.
EXPECTED = {
    "22023",  # invalid parameter (factory string, option, too few rows)
    "22003",  # vector norm out of range
    "22000",  # dimensions
    "54000",  # memory or size limit
    "0A000",  # not supported
    "42809",  # wrong object type
}
CANCELED = "57014"


# --- generators ---------------------------------------------------------------

def rand_number(rng):
    """A parameter value: small, boundary, large or absurd."""
    return rng.choice([
        0, 1, 2, 3, 4, 5, 8, 16, 32, 64, 256, 257, 1000, 65536, 1048576, 1048577,
        99999999, 99999999999, rng.randint(1, 40), rng.randint(1, 300),
    ])


def small(rng):
    return rng.choice([1, 2, 3, 4, 5, 8, 16, rng.randint(1, 20)])


def valid_factory(rng, dim):
    """A string benzer's grammar should accept (or refuse for the data)."""
    parts = []
    for _ in range(rng.choice([0, 0, 0, 0, 0, 0, 1, 1, 2])):
        kind = rng.choice(["PCA", "PCAR", "OPQ", "RR", "L2norm"])
        if kind == "L2norm":
            parts.append("L2norm")
        elif kind == "OPQ":
            m = rng.choice([1, 2, 4, dim, small(rng)])
            parts.append(f"OPQ{m}" + (f"_{rng.choice([dim, m, 2 * m])}" if rng.random() < 0.3 else ""))
        else:
            parts.append(f"{kind}{rng.choice([1, 2, dim, max(1, dim // 2), small(rng)])}")
    pq_m = rng.choice([1, 2, 4, dim, max(1, dim // 2), small(rng)])
    pq = f"PQ{pq_m}" + rng.choice(["", "np", "x4", "x4fs", "x8np", f"x{rng.randint(1, 8)}", "x4np"])
    sq = rng.choice(["SQ4", "SQ6", "SQ8", "SQfp16"])
    structure = rng.choice([
        "Flat",
        f"IVF{rng.choice([1, 2, 4, 16, 64, small(rng)])},Flat",
        f"IVF{rng.choice([1, 2, 4, 16, small(rng)])},{pq}",
        f"IVF{rng.choice([1, 2, 4, 16])},{sq}",
        f"HNSW{rng.choice([2, 3, 4, 8, 16, 32])}",
        f"HNSW{rng.choice([2, 4, 8])},{sq}",
        f"HNSW{rng.choice([2, 4, 8])}_PQ{pq_m}",
        pq,
        sq,
    ])
    parts.append(structure)
    if rng.random() < 0.2:
        parts.append("RFlat")
    return ",".join(parts)


TOKENS = ["IVF", "HNSW", "PQ", "SQ", "OPQ", "PCA", "RR", "NSG", "Flat", "RFlat", "L2norm",
          "IDMap", "BFlat", "Refine(Flat)", "LSH", "x", "fs", "np", "_", ",", "(", ")", " ",
          "-1", "0", "1e3", "99999999999", ";", "'", "\\", "é"]


def mutate(rng, text):
    """A near-valid string: one edit of a valid one."""
    kind = rng.randint(0, 6)
    if not text:
        return rng.choice(TOKENS)
    i = rng.randrange(len(text))
    if kind == 0:
        return text[:i] + text[i + 1:]
    if kind == 1:
        return text[:i] + rng.choice(TOKENS) + text[i:]
    if kind == 2:
        return text + "," + text
    if kind == 3:
        return text.replace("8", str(rand_number(rng)), 1) if "8" in text else text + str(rand_number(rng))
    if kind == 4:
        return text.lower()
    if kind == 5:
        digits = [j for j, c in enumerate(text) if c.isdigit()]
        if digits:
            j = rng.choice(digits)
            return text[:j] + str(rand_number(rng)) + text[j + 1:]
        return text
    return ",".join(reversed(text.split(",")))


def absurd(rng):
    return "".join(rng.choice(TOKENS) + (str(rand_number(rng)) if rng.random() < 0.5 else "")
                   for _ in range(rng.randint(1, 5)))


def options(rng):
    """Random WITH (...) options besides factory, some out of range."""
    out = {}
    for name, bound in [("nprobe", 65536), ("ef_search", 100000), ("k_factor", 1000),
                        ("training_sample", 2**31 - 1), ("merge_threshold", 2**31 - 1),
                        ("ef_construction", 100000)]:
        if rng.random() < 0.2:
            out[name] = rng.choice([0, 1, 2, bound, bound + 1, -1, rng.randint(1, 300)])
    return out


# Table shapes: (name, rows, SQL expression of a row's vector from i and d).
SHAPES = [
    ("one_row", 1, "rv(i, d)"),
    ("few", 5, "rv(i, d)"),
    ("equal", 300, "array_fill(0.5::real, ARRAY[d])::vector"),
    ("three_values", 600,
     "CASE i % 3 WHEN 0 THEN array_fill(0.5::real, ARRAY[d])::vector "
     "WHEN 1 THEN array_fill(0.25::real, ARRAY[d])::vector ELSE rv(i, d) END"),
    ("zeros", 300, "array_fill(0::real, ARRAY[d])::vector"),
    ("constant_dims", 300, "(SELECT array_agg(j::real) FROM generate_series(1, d) j)::vector"),
    ("random", 600, "rv(i, d)"),
    ("big_norms", 300, "(SELECT array_agg((rv_el(i, j) * 1e13)::real) FROM generate_series(1, d) j)::vector"),
    ("mixed_dims", 400, "CASE WHEN i % 4 = 0 THEN rv(i, 2 * d) ELSE rv(i, d) END"),
]


# --- the server ----------------------------------------------------------------

class Server:
    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.conn = None
        self.pid = None
        self.start_time = None
        self.connect()
        self.start_time = self.scalar("SELECT pg_postmaster_start_time()")

    def connect(self):
        for _ in range(120):
            try:
                self.conn = psycopg2.connect("")
                self.conn.autocommit = True
                break
            except psycopg2.OperationalError:
                time.sleep(0.5)
        else:
            raise RuntimeError("cannot connect to the server")
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            self.pid = cur.fetchone()[0]
            cur.execute(f"SET statement_timeout = {self.timeout_ms}")
            cur.execute("SET client_min_messages = error")
            cur.execute("SET maintenance_work_mem = '64MB'")

    def scalar(self, sql):
        with self.conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return row[0] if row else None

    def terminate(self, pid):
        """Ends a backend that ignored its cancel: terminate, then kill."""
        try:
            other = psycopg2.connect("")
            other.autocommit = True
            with other.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            other.close()
        except psycopg2.Error:
            pass
        time.sleep(5)
        try:
            os.kill(pid, 0)
            os.kill(pid, signal.SIGKILL)  # only a restart stops it
        except OSError:
            pass

    def run(self, sql, args=None, fetch=False):
        """Runs sql. Returns (rows or None, sqlstate or None, problem or None);
        problem is a crash or a hang."""
        fired = {"cancel": False, "terminate": False}
        grace = self.timeout_ms / 1000.0 + 10

        def watchdog():
            fired["cancel"] = True
            self.conn.cancel()

        def reaper():
            fired["terminate"] = True
            self.terminate(self.pid)

        t1 = threading.Timer(grace, watchdog)
        t2 = threading.Timer(grace + 20, reaper)
        t1.start()
        t2.start()
        started = time.time()
        rows, state, problem = None, None, None
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, args)
                if fetch:
                    rows = cur.fetchall()
        except psycopg2.Error as e:
            state = e.pgcode
            if self.conn.closed or isinstance(e, psycopg2.OperationalError) and state is None:
                problem = "connection lost (server crash?): " + str(e).strip().splitlines()[0]
        finally:
            t1.cancel()
            t2.cancel()
        elapsed = time.time() - started
        if fired["terminate"]:
            problem = f"hang: ignored cancel and terminate ({elapsed:.0f} s)"
        elif fired["cancel"]:
            problem = f"hang: past statement_timeout + grace ({elapsed:.0f} s)"
        if problem is not None or self.conn.closed:
            problem = problem or "connection closed"
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
            time.sleep(1)
            self.connect()
        else:
            now = self.scalar("SELECT pg_postmaster_start_time()")
            if now != self.start_time:
                problem = "the server restarted"
                self.start_time = now
        return rows, state, problem


# --- one combination -----------------------------------------------------------

def exact_structure(factory):
    parts = factory.replace(" ", "").split(",")
    if any(p.startswith(("PCA", "OPQ", "RR", "L2norm")) for p in parts):
        return False
    if parts[-1] == "RFlat":
        return False
    s = parts[0]
    return (s == "Flat" or (s.startswith("IVF") and len(parts) == 2 and parts[1] == "Flat")
            or (s.startswith("HNSW") and s[4:].isdigit() and len(parts) == 1))


def run_case(server, rng, case, factory, opts, shape, dim, opclass, notes):
    name, nrows, expr = shape
    problems = []
    refused = None

    def step(label, sql, args=None, fetch=False, allowed=EXPECTED):
        nonlocal refused
        rows, state, problem = server.run(sql, args, fetch)
        if problem:
            problems.append(f"{label}: {problem}")
        elif state is not None and state not in allowed:
            problems.append(f"{label}: SQLSTATE {state}")
        elif state is not None and refused is None and label != "insert huge":
            refused = f"{label}: {state}"
        return rows, state

    expr_sql = expr.replace("rv(i, d)", f"rv(i, {dim})").replace("rv(i, 2 * d)", f"rv(i, {2 * dim})")
    expr_sql = expr_sql.replace("ARRAY[d]", f"ARRAY[{dim}]").replace("generate_series(1, d)",
                                                                      f"generate_series(1, {dim})")
    mixed = name == "mixed_dims"
    vtype = "vector" if mixed or rng.random() < 0.2 else f"vector({dim})"
    predicate = f" WHERE vector_dims(v) = {dim}" if mixed else ""
    with_filter = rng.random() < 0.5
    server.run("DROP TABLE IF EXISTS fz")
    step("create table",
         f"CREATE TABLE fz AS SELECT i AS id, ({expr_sql})::{vtype} AS v, i % 5 AS c "
         f"FROM generate_series(1, {nrows}) i")
    with_clause = ", ".join([f"factory = '{factory.replace(chr(39), chr(39) * 2)}'"] +
                            [f"{k} = {v}" for k, v in opts.items()])
    columns = f"v {opclass}" + (", c" if with_filter else "")
    _, state = step("create index",
                    f"CREATE INDEX fz_idx ON fz USING faiss ({columns}) WITH ({with_clause}){predicate}")
    if state is not None:
        server.run("DROP TABLE IF EXISTS fz")
        return problems, state
    refused = None  # from here on, only the index's own work is counted
    # More rows, some degenerate: equal vectors, zeros, and a huge one that
    # must be refused (22003).
    step("insert", f"INSERT INTO fz SELECT {nrows} + i, rv({nrows} + i, {dim}), i % 5 "
                   f"FROM generate_series(1, 40) i")
    step("insert equal", f"INSERT INTO fz SELECT 9000 + i, array_fill(0.5::real, ARRAY[{dim}])::vector, 2 "
                         f"FROM generate_series(1, 5) i")
    _, state = step("insert huge",
                    f"INSERT INTO fz VALUES (9999, array_fill(1e20::real, ARRAY[{dim}])::vector, 1)")
    if state != "22003":
        problems.append(f"a vector of norm 4e20 was not refused (SQLSTATE {state})")
    step("delete", "DELETE FROM fz WHERE id % 3 = 0")
    step("vacuum", "VACUUM fz")
    step("merge", "SELECT benzer_index_merge('fz_idx', true)")
    check_searches(server, step, problems, factory, dim, predicate, opclass, with_filter)
    step("reindex", "REINDEX INDEX fz_idx")
    step("insert after reindex", f"INSERT INTO fz SELECT 20000 + i, rv(20000 + i, {dim}), i % 5 "
                                 f"FROM generate_series(1, 20) i")
    step("vacuum 2", "VACUUM fz")
    check_searches(server, step, problems, factory, dim, predicate, opclass, with_filter)
    server.run("DROP TABLE IF EXISTS fz")
    if refused is not None:
        notes.append(refused)
    return problems, None


OPERATORS = {"vector_l2_ops": "<->", "vector_ip_ops": "<#>", "vector_cosine_ops": "<=>"}


def check_searches(server, step, problems, factory, dim, predicate, opclass, with_filter):
    op = OPERATORS[opclass]
    where = predicate.replace(" WHERE ", "") if predicate else "true"
    query = f"rv(777, {dim})"
    step("settings", "SET enable_seqscan = off")
    # Every covered row, once.
    rows, state = step("full scan", f"SELECT count(*), count(DISTINCT id) FROM "
                                    f"(SELECT id FROM fz WHERE {where} ORDER BY v {op} {query}) s",
                       fetch=True)
    step("settings", "RESET enable_seqscan")
    total, _ = step("count", f"SELECT count(*) FROM fz WHERE {where} AND v IS NOT NULL", fetch=True)
    if rows and total and state is None:
        n, distinct = rows[0]
        if n != total[0][0] or distinct != n:
            problems.append(f"full scan returned {n} rows ({distinct} distinct) of {total[0][0]}")
    # A filtered LIMIT is never under-filled, and every row matches.
    if with_filter:
        step("settings", "SET enable_seqscan = off")
        rows, state = step("filtered", f"SELECT count(*), count(*) FILTER (WHERE c = 2) FROM "
                                       f"(SELECT c FROM fz WHERE {where} AND c = 2 "
                                       f"ORDER BY v {op} {query} LIMIT 25) s", fetch=True)
        step("settings", "RESET enable_seqscan")
        matching, _ = step("matching", f"SELECT count(*) FROM fz WHERE {where} AND c = 2", fetch=True)
        if rows and matching and state is None:
            n, ok = rows[0]
            if n != min(25, matching[0][0]) or ok != n:
                problems.append(f"filtered LIMIT 25 returned {n} rows ({ok} matching) of "
                                f"{min(25, matching[0][0])}")
    # Exact structures give the exact top 10 (compared by distance: ties).
    if exact_structure(factory):
        step("settings", "SET benzer.nprobe = 65536")
        step("settings", "SET benzer.ef_search = 100000")
        step("settings", "SET enable_seqscan = off")
        got, s1 = step("top 10", f"SELECT round((v {op} {query})::numeric, 3) FROM fz WHERE {where} "
                                 f"ORDER BY v {op} {query} LIMIT 10", fetch=True)
        step("settings", "RESET enable_seqscan")
        step("settings", "SET enable_indexscan = off")
        want, s2 = step("exact top 10", f"SELECT round((v {op} {query})::numeric, 3) FROM fz "
                                        f"WHERE {where} ORDER BY v {op} {query} LIMIT 10", fetch=True)
        step("settings", "RESET enable_indexscan; RESET benzer.nprobe; RESET benzer.ef_search")
        if s1 is None and s2 is None and got is not None and want is not None:
            a = [r[0] for r in got]
            b = [r[0] for r in want]
            # NaN (cosine of zero vectors) orders differently; compare numbers.
            if [x for x in a if str(x) != "NaN"] != [x for x in b if str(x) != "NaN"] \
                    and "NaN" not in map(str, a + b):
                problems.append(f"top 10 differs from the exact scan: {a} vs {b}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--timeout-ms", type=int, default=30000)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    server = Server(args.timeout_ms)
    server.run("CREATE EXTENSION IF NOT EXISTS benzer")
    server.run("""CREATE OR REPLACE FUNCTION rv(seed int, dim int) RETURNS vector
        LANGUAGE sql IMMUTABLE AS $$
        SELECT array(SELECT 2 * (h - floor(h)) - 1
                     FROM (SELECT sin(seed * 12.9898 + j * 78.233) * 43758.5453 AS h
                           FROM generate_series(1, dim) j) s)::vector $$""")
    server.run("""CREATE OR REPLACE FUNCTION rv_el(seed int, j int) RETURNS float8
        LANGUAGE sql IMMUTABLE AS $$
        SELECT 2 * (h - floor(h)) - 1 FROM (SELECT sin(seed * 12.9898 + j * 78.233) * 43758.5453 AS h) s $$""")
    passed = failed = 0
    built = 0
    refusals = {}
    after_build = {}
    started = time.time()
    for case in range(args.cases):
        dim = rng.choice([1, 2, 3, 4, 8, 16])
        family = rng.random()
        if family < 0.55:
            factory = valid_factory(rng, dim)
        elif family < 0.85:
            factory = mutate(rng, valid_factory(rng, dim))
        else:
            factory = absurd(rng)
        opts = options(rng)
        shape = rng.choice(SHAPES)
        opclass = rng.choice(list(OPERATORS))
        notes = []
        problems, refused = run_case(server, rng, case, factory, opts, shape, dim, opclass, notes)
        for note in notes:
            after_build[note] = after_build.get(note, 0) + 1
        if refused is None:
            built += 1
        else:
            refusals[refused] = refusals.get(refused, 0) + 1
        if problems:
            failed += 1
            print(f"FAIL case {case}: factory={factory!r} options={opts} shape={shape[0]} "
                  f"dim={dim} {opclass}: " + "; ".join(problems[:4]), flush=True)
        else:
            passed += 1
        if (case + 1) % 250 == 0:
            print(f"... {case + 1} cases, {time.time() - started:.0f} s", flush=True)
    print(f"fuzz: seed {args.seed}, {args.cases} combinations in {time.time() - started:.0f} s: "
          f"{built} built and exercised, refused by SQLSTATE {dict(sorted(refusals.items()))}")
    if after_build:
        print(f"fuzz: refusals after the build (expected ones): {dict(sorted(after_build.items()))}")
    print(f"fuzz: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
