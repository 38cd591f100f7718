#!/usr/bin/python3
"""connection_cost.py: what a new connection pays to search a faiss index.

Issue 11 asks that a fresh connection's first query cost at most 3x a warm
one and that each of 8 connections that searched both demo indexes hold at
most 32 MB of private memory more than an idle connection. This measures
both on whatever server and benzer build --dsn reaches:

  1. an idle connection (SELECT 1): its backend's Private_Dirty
     (/proc/PID/smaps_rollup; the server must run on this machine);
  2. --connections (8) fresh connections, one after another and all kept
     open: connect, then every --query once (the first query of the
     connection, timed), then each query --warm (20) more times (the median
     is the warm figure); then every backend's Private_Dirty again.

Queries are SQL with one %s for a row id, drawn from --ids (a SQL query
returning ids). Defaults fit the demo database (scripts/demo.sh): the
pixels (784-d, L2) and pooled (cosine) indexes of the features table.

    /usr/bin/python3 bench/connection_cost.py --dsn "host=... dbname=benzer_demo"
    /usr/bin/python3 bench/connection_cost.py --dsn ... --query "SELECT ... %s ..." --ids "SELECT id FROM t"

Prints a markdown table; --json FILE writes the figures.
"""
import argparse
import json
import random
import statistics
import time

import psycopg2

DEMO_QUERIES = [
    "SELECT image_id FROM features WHERE model = 'pixels' AND version = 'v1' "
    "ORDER BY embedding <-> (SELECT embedding FROM features WHERE image_id = %s "
    "AND model = 'pixels' AND version = 'v1') LIMIT 10",
    "SELECT image_id FROM features WHERE model = 'pooled' AND version = 'v1' "
    "ORDER BY embedding <=> (SELECT embedding FROM features WHERE image_id = %s "
    "AND model = 'pooled' AND version = 'v1') LIMIT 10",
]
DEMO_IDS = "SELECT image_id FROM images WHERE split = 'train'"


def private_dirty_kb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    raise RuntimeError(f"no Private_Dirty for {pid}")


def own_private_dirty_kb(pid):
    """Private_Dirty of the backend's private mappings only. smaps counts a
    page of a shared mapping as private while no other process maps it, so
    the shared_buffers pages (index pages) that this backend alone has read
    show up in smaps_rollup's Private_Dirty although every backend shares
    them; this leaves out mappings whose permissions say shared ("s")."""
    total = 0
    shared = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if len(head) >= 2 and "-" in head[0] and len(head[1]) == 4 and head[1][0] in "r-":
                shared = head[1][3] == "s"
            elif line.startswith("Private_Dirty:") and not shared:
                total += int(line.split()[1])
    return total


def timed(cur, query, arg):
    t0 = time.perf_counter()
    cur.execute(query, (arg,))
    cur.fetchall()
    return (time.perf_counter() - t0) * 1000.0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", required=True)
    p.add_argument("--query", action="append", help="SQL with one %%s (repeatable)")
    p.add_argument("--ids", default=DEMO_IDS, help="SQL returning the ids to search for")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--warm", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--label", default="")
    p.add_argument("--json")
    a = p.parse_args()
    queries = a.query or DEMO_QUERIES
    rng = random.Random(a.seed)

    setup = psycopg2.connect(a.dsn)
    setup.autocommit = True
    with setup.cursor() as cur:
        cur.execute(a.ids)
        ids = [r[0] for r in cur.fetchall()]
    idle = psycopg2.connect(a.dsn)
    with idle.cursor() as cur:
        cur.execute("SELECT 1")
        cur.execute("SELECT pg_backend_pid()")
        idle_pid = cur.fetchone()[0]
    idle_kb = private_dirty_kb(idle_pid)
    idle_own_kb = own_private_dirty_kb(idle_pid)

    rows = []
    conns = []
    for i in range(a.connections):
        t0 = time.perf_counter()
        c = psycopg2.connect(a.dsn)
        connect_ms = (time.perf_counter() - t0) * 1000.0
        conns.append(c)
        with c.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
            first = [timed(cur, q, rng.choice(ids)) for q in queries]
            warm = [[timed(cur, q, rng.choice(ids)) for _ in range(a.warm)] for q in queries]
        rows.append(dict(pid=pid, connect_ms=connect_ms, first_ms=first,
                         warm_ms=[statistics.median(w) for w in warm]))
    for r in rows:
        r["private_mb_above_idle"] = (private_dirty_kb(r["pid"]) - idle_kb) / 1024.0
        r["own_private_mb_above_idle"] = (own_private_dirty_kb(r["pid"]) - idle_own_kb) / 1024.0

    print(f"## Fresh connections{(' (' + a.label + ')') if a.label else ''}\n")
    print(f"Idle connection: Private_Dirty {idle_kb / 1024.0:.1f} MB. "
          f"{a.connections} connections, {len(queries)} queries each, warm = median of {a.warm}.\n")
    head = "| conn | connect ms |" + "".join(
        f" q{j + 1} first ms | q{j + 1} warm ms | q{j + 1} first/warm |" for j in range(len(queries)))
    print(head + " private MB above idle | of which in private mappings |")
    print("|" + "---|" * (2 + 3 * len(queries) + 2))
    for i, r in enumerate(rows):
        cells = "".join(f" {f:.2f} | {w:.2f} | {f / w:.1f}x |" for f, w in zip(r["first_ms"], r["warm_ms"]))
        print(f"| {i + 1} | {r['connect_ms']:.1f} |{cells} {r['private_mb_above_idle']:.1f} |"
              f" {r['own_private_mb_above_idle']:.1f} |")
    firsts = [statistics.median(r["first_ms"][j] for r in rows) for j in range(len(queries))]
    warms = [statistics.median(r["warm_ms"][j] for r in rows) for j in range(len(queries))]
    print("\nMedians: " + "; ".join(
        f"q{j + 1} first {f:.2f} ms, warm {w:.2f} ms ({f / w:.1f}x)" for j, (f, w) in enumerate(zip(firsts, warms)))
        + f"; private memory above idle: max {max(r['private_mb_above_idle'] for r in rows):.1f} MB"
        + f" ({max(r['own_private_mb_above_idle'] for r in rows):.1f} MB in private mappings;"
        + " the rest are shared_buffers pages no other process has mapped yet)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(label=a.label, idle_private_mb=idle_kb / 1024.0, queries=queries,
                           connections=rows), f, indent=1)
    for c in conns:
        c.close()
    idle.close()
    setup.close()


if __name__ == "__main__":
    main()
