#!/usr/bin/env python3
"""Helper for bench/archive.sh (standard library only).

Subcommands:
  translate IN OUT
      Rewrite the generator's notmuch/Xapian queries (one per line) into concord's query
      syntax: Xapian's infix `and` (implicit AND in concord) is dropped, `or` becomes `OR`,
      `not X` becomes `-X`; bare words, "phrases", from:, to:, subject:, date:A..B are the
      same shape in both and are kept as they are.

  latency PREFIX ROUNDS QUERIES OUT.tsv CMD... {} ...
      Run CMD once per query (the `{}` argument is replaced by the query) as a whole process:
      one untimed warm-up pass over all queries, then ROUNDS timed passes (round-robin over
      the queries, so that no query gets its cache warmed by the runs just before it).
      Prints `name value unit` lines: PREFIX_search_median / _p95 / _max over all
      ROUNDS x queries samples (ms), PREFIX_search_per_query_median_p95 (p95 of the
      per-query medians), the number of queries, of queries with at least one output line
      (a query that silently matches nothing looks fast), and of queries whose process
      exited non-zero.  OUT.tsv gets one row per query: median, p95, output lines, exit code.
"""
import shlex
import statistics
import subprocess
import sys
import time


def out(name, value, unit):
    if isinstance(value, float):
        value = "%.2f" % value
    print("%s %s %s" % (name, value, unit), flush=True)


def pct(vals, p):
    """Nearest-rank percentile."""
    s = sorted(vals)
    k = max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))
    return s[k]


def read_queries(path):
    with open(path, encoding="utf-8") as f:
        return [q.strip() for q in f.read().splitlines() if q.strip()]


def tokens(q):
    """Split a query on blanks outside double quotes, keeping the quotes in the tokens."""
    toks, cur, inq = [], "", False
    for ch in q:
        if ch == '"':
            inq = not inq
            cur += ch
        elif ch.isspace() and not inq:
            if cur:
                toks.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        toks.append(cur)
    return toks


def to_concord(q):
    toks = tokens(q)
    res = []
    negate = False
    for t in toks:
        low = t.lower()
        if low == "and":
            continue
        if low == "or":
            res.append("OR")
            continue
        if low == "not":
            negate = True
            continue
        if negate:
            t = "-" + t
            negate = False
        res.append(t)
    return " ".join(res)


def translate(src, dst):
    qs = read_queries(src)
    changed = 0
    with open(dst, "w", encoding="utf-8") as f:
        for q in qs:
            t = to_concord(q)
            changed += t != q
            f.write(t + "\n")
    out("queries_translated", changed, "count")


def latency(prefix, rounds, qfile, outpath, cmd):
    rounds = int(rounds)
    queries = read_queries(qfile)
    if "{}" not in cmd:
        sys.exit("latency: the command needs a {} argument for the query")

    def argv(q):
        return [q if a == "{}" else a for a in cmd]

    lines, rcs, errs = {}, {}, {}
    for q in queries:  # warm-up pass, also counts the output
        p = subprocess.run(argv(q), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines[q] = sum(1 for ln in p.stdout.splitlines() if ln.strip())
        rcs[q] = p.returncode
        errs[q] = p.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] if p.returncode else []
    samples = {q: [] for q in queries}
    for _ in range(rounds):
        for q in queries:
            a = argv(q)
            t0 = time.perf_counter()
            subprocess.run(a, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            samples[q].append(time.perf_counter() - t0)
    every = [t for q in queries for t in samples[q]]
    per_q = [statistics.median(samples[q]) for q in queries]
    with open(outpath, "w", encoding="utf-8") as f:
        f.write("query\tmedian_ms\tp95_ms\toutput_lines\texit_code\n")
        for q in queries:
            f.write("%s\t%.2f\t%.2f\t%d\t%d\n" % (q, statistics.median(samples[q]) * 1000,
                                                  pct(samples[q], 95) * 1000, lines[q], rcs[q]))
    failed = [q for q in queries if rcs[q] != 0]
    for q in failed:
        print("# %s: query %s exited %d: %s" % (prefix, shlex.quote(q), rcs[q], " ".join(errs[q])),
              file=sys.stderr)
    out(prefix + "_search_median", statistics.median(every) * 1000, "ms")
    out(prefix + "_search_p95", pct(every, 95) * 1000, "ms")
    out(prefix + "_search_max", max(every) * 1000, "ms")
    out(prefix + "_search_per_query_median_p95", pct(per_q, 95) * 1000, "ms")
    out(prefix + "_search_samples", len(every), "count")
    out(prefix + "_search_queries", len(queries), "count")
    out(prefix + "_search_queries_nonempty", sum(1 for q in queries if lines[q] > 0), "count")
    out(prefix + "_search_queries_failed", len(failed), "count")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "translate" and len(args) == 2:
        translate(*args)
    elif cmd == "latency" and len(args) >= 5:
        latency(args[0], args[1], args[2], args[3], args[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
