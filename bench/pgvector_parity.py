#!/usr/bin/env python3
"""Run pgvector's own regression files against benzer and count what matches.

An application moving from pgvector should change nothing, so the measure
is pgvector's own tests: each statement's output (rows, or the ERROR line
and its SQLSTATE-bearing wording) is compared with pgvector's expected
output, statement by statement.

    python3 bench/pgvector_parity.py PGVECTOR_CHECKOUT [NAME ...]

PGVECTOR_CHECKOUT holds test/sql/NAME.sql and test/expected/NAME.out (a
clone of github.com/pgvector/pgvector; its files are not copied into this
repository). NAMEs default to the files about the types benzer shares with
pgvector. The files run through pg_regress against a throwaway cluster
(pg_virtualenv) with benzer loaded in place of vector, so benzer must be
installed. Each statement is counted as:

  same         byte-identical output
  detail only  the same ERROR line; only DETAIL/HINT lines differ (benzer's
               DETAIL lines say more, e.g. where a literal went wrong)
  differs      anything else; printed with both outputs

Writes the per-file table to stdout and every difference (pgvector's
output next to benzer's) to a file in the work directory, whose path it
prints; that file quotes pgvector's tests, so it is not kept in this
repository.
"""
import os
import re
import subprocess
import sys
import tempfile

DEFAULT_NAMES = [
    "input", "cast", "btree", "functions", "aggregate", "copy",
    "halfvec_input", "halfvec_functions", "halfvec", "btree_halfvec",
    "bit_functions", "bit",
    "sparsevec_input", "sparsevec_functions", "sparsevec", "btree_sparsevec",
]
PG_REGRESS = "/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress"


def statement_starts(sql_text):
    """The first line of every statement in a regression file, in order."""
    starts, inside = [], False
    for line in sql_text.splitlines():
        stripped = line.strip()
        if not inside:
            if not stripped or stripped.startswith("--"):
                continue
            starts.append(line)
            if stripped.startswith("\\"):
                continue
            inside = True
        if inside and re.search(r";\s*(--.*)?$", stripped):
            inside = False
    return starts


def blocks(out_text, starts):
    """The output split at each statement's echoed first line."""
    lines = out_text.splitlines()
    result, i = [], 0
    positions = []
    for s in starts:
        while i < len(lines) and lines[i] != s:
            i += 1
        if i == len(lines):
            break
        positions.append(i)
        i += 1
    for k, p in enumerate(positions):
        end = positions[k + 1] if k + 1 < len(positions) else len(lines)
        block = [l for l in lines[p:end] if l.strip()]
        result.append(block)
    return result


def kind(ours, theirs):
    if ours == theirs:
        return "same"
    strip = lambda b: [l for l in b
                       if not l.startswith(("DETAIL:", "HINT:", "CONTEXT:"))]
    if any(l.startswith("ERROR:") for l in theirs) and strip(ours) == strip(theirs):
        return "detail only"
    return "differs"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    checkout = os.path.abspath(sys.argv[1])
    names = sys.argv[2:] or DEFAULT_NAMES
    names = [n for n in names
             if os.path.exists(f"{checkout}/test/sql/{n}.sql")
             and os.path.exists(f"{checkout}/test/expected/{n}.out")]
    work = tempfile.mkdtemp(prefix="pgvector-parity.")
    os.chmod(work, 0o777)
    cmd = [PG_REGRESS, f"--inputdir={checkout}/test", f"--outputdir={work}",
           "--load-extension=benzer", "--dbname=parity"] + names
    subprocess.run(["pg_virtualenv", "-t"] + cmd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    diffs_path = os.path.join(work, "differences.txt")
    totals = {"same": 0, "detail only": 0, "differs": 0}
    print("| pgvector file | statements | same | detail only | differs | ERROR line or rows as pgvector |")
    print("|---|---:|---:|---:|---:|---:|")
    with open(diffs_path, "w") as diffs:
        for name in names:
            sql = open(f"{checkout}/test/sql/{name}.sql").read()
            theirs_text = open(f"{checkout}/test/expected/{name}.out").read()
            ours_path = f"{work}/results/{name}.out"
            ours_text = open(ours_path).read() if os.path.exists(ours_path) else ""
            starts = statement_starts(sql)
            theirs, ours = blocks(theirs_text, starts), blocks(ours_text, starts)
            counts = {"same": 0, "detail only": 0, "differs": 0}
            for k, t in enumerate(theirs):
                o = ours[k] if k < len(ours) else ["(no output)"]
                c = kind(o, t)
                counts[c] += 1
                if c != "same":
                    cut = lambda b: "\n".join(l if len(l) < 200 else l[:200] + " ..."
                                              for l in b)
                    diffs.write(f"=== {name} [{c}]\n--- pgvector\n" + cut(t)
                                + "\n--- benzer\n" + cut(o) + "\n\n")
            n = len(theirs)
            for c in counts:
                totals[c] += counts[c]
            ok = counts["same"] + counts["detail only"]
            print(f"| {name} | {n} | {counts['same']} | {counts['detail only']} | "
                  f"{counts['differs']} | {100 * ok / max(n, 1):.0f} % |")
    n = sum(totals.values())
    ok = totals["same"] + totals["detail only"]
    print(f"| **all** | {n} | {totals['same']} | {totals['detail only']} | "
          f"{totals['differs']} | **{100 * ok / max(n, 1):.0f} %** |")
    print(f"\nDifferences: {diffs_path}")


if __name__ == "__main__":
    main()
