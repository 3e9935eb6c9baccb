#!/usr/bin/env python3
"""The benchmark SQL queries: Tally against DuckDB on the same events.

Takes a Tally data directory and the NDJSON file it was imported from
(generating the file with `tally gen` and importing it with `tally import`
when either is missing), loads the same file into DuckDB (Python package, a
measuring instrument only) with explicit column types, sorted by
(api_key, ts) as DESIGN.md's peer numbers were measured, then:
  - takes the exact SQL of each named query from
    `tally bench sql --print-queries --json` (the queries are parametrised by
    the data: its max(ts), the last full UTC day, the most frequent key);
  - times each in DuckDB (one warm-up run, then N timed runs of
    `execute`; fetching the rows into Python is not timed);
  - runs `tally bench sql --json` (the same warm-up and N runs, in process);
  - checks that both answer the same rows with the same values (floats to
    1e-9 relative) and prints a table of medians, their ratio and the targets.
Not part of the test suite.

Usage: benches/scripts/sql_vs_duckdb.py [--data-dir DIR] [--ndjson FILE]
       [--duckdb FILE|:memory:] [--iterations N] [--api-key KEY]
       [--query NAME ...] [--json] [--tally PATH]
"""
import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time

COLUMNS = {
    "ts": "TIMESTAMP",
    "api_key": "VARCHAR",
    "endpoint": "VARCHAR",
    "method": "VARCHAR",
    "status_code": "SMALLINT",
    "latency_ms": "DOUBLE",
    "request_bytes": "BIGINT",
    "response_bytes": "BIGINT",
    "ip": "VARCHAR",
    "user_agent": "VARCHAR",
    "geo_country": "VARCHAR",
}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def nearest_rank(sorted_values, q):
    """The same percentile as `tally bench sql`: index round((n-1)*q)."""
    i = int(round((len(sorted_values) - 1) * q))
    return sorted_values[i]


def ensure_data(a):
    if not os.path.exists(a.ndjson):
        print(f"generating {a.ndjson} ...", file=sys.stderr)
        os.makedirs(os.path.dirname(os.path.abspath(a.ndjson)), exist_ok=True)
        subprocess.run([a.tally, "gen", "--events", str(a.events), "--days", str(a.days),
                        "--out", a.ndjson], check=True)
    if not os.path.exists(os.path.join(a.data_dir, "MANIFEST")):
        print(f"importing into {a.data_dir} ...", file=sys.stderr)
        subprocess.run([a.tally, "import", "--quiet", "--data-dir", a.data_dir, a.ndjson],
                       check=True)


def load_duckdb(a, duckdb):
    """Opens (or builds) the DuckDB table of the NDJSON file, sorted by
    (api_key, ts). A file-backed database is reused when it was built from
    the same file (path, size, modification time) and --reload is not given."""
    st = os.stat(a.ndjson)
    ident = f"{os.path.abspath(a.ndjson)}|{st.st_size}|{st.st_mtime_ns}"
    con = duckdb.connect(a.duckdb)
    have = con.execute("SELECT count(*) FROM information_schema.tables "
                       "WHERE table_name IN ('events', 'bench_source')").fetchone()[0]
    if have == 2 and not a.reload:
        if con.execute("SELECT ident FROM bench_source").fetchone()[0] == ident:
            return con, None
    cols = ", ".join(f"{k}: '{v}'" for k, v in COLUMNS.items())
    con.execute("DROP TABLE IF EXISTS events")
    con.execute("DROP TABLE IF EXISTS bench_source")
    t = time.perf_counter()
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_ndjson('{a.ndjson}', "
                f"columns={{{cols}}}) ORDER BY api_key, ts")
    con.execute("CHECKPOINT")
    load_s = time.perf_counter() - t
    con.execute("CREATE TABLE bench_source (ident VARCHAR)")
    con.execute("INSERT INTO bench_source VALUES (?)", [ident])
    con.execute("CHECKPOINT")
    return con, load_s


def tally_ts_text(v):
    """A DuckDB timestamp in Tally's SQL text form (trailing zeros of the
    fraction dropped, no fraction when it is zero)."""
    s = v.strftime("%Y-%m-%d %H:%M:%S")
    if v.microsecond:
        s += "." + f"{v.microsecond:06d}".rstrip("0")
    return s


def normalise(v):
    if isinstance(v, datetime.datetime):
        return tally_ts_text(v)
    return v


def same(x, y):
    """x from Tally's JSON, y from DuckDB (normalised)."""
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, bool) or isinstance(y, bool):
        return x == y
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        if isinstance(x, int) and isinstance(y, int):
            return x == y
        x, y = float(x), float(y)
        if math.isnan(x) or math.isnan(y):
            return math.isnan(x) and math.isnan(y)
        return x == y or abs(x - y) <= 1e-9 * max(abs(x), abs(y))
    return x == y


def compare(tally_rows, duck_rows):
    """A list of differences (empty when the answers agree)."""
    diffs = []
    if len(tally_rows) != len(duck_rows):
        diffs.append(f"row count: Tally {len(tally_rows)}, DuckDB {len(duck_rows)}")
    for i, (tr, dr) in enumerate(zip(tally_rows, duck_rows)):
        if len(tr) != len(dr):
            diffs.append(f"row {i}: Tally {len(tr)} columns, DuckDB {len(dr)}")
            continue
        for j, (x, y) in enumerate(zip(tr, dr)):
            if not same(x, y):
                diffs.append(f"row {i} column {j}: Tally {x!r}, DuckDB {y!r}")
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tally", default="target/release/tally")
    ap.add_argument("--ndjson", default="/tmp/imp/events-10000000-7d.ndjson")
    ap.add_argument("--data-dir", default="/tmp/imp/td")
    ap.add_argument("--duckdb", default="/tmp/imp/duck-sorted.db",
                    help="DuckDB database file, or :memory: (default %(default)s)")
    ap.add_argument("--reload", action="store_true", help="rebuild the DuckDB table")
    ap.add_argument("--events", type=int, default=10_000_000, help="when generating")
    ap.add_argument("--days", type=int, default=7, help="when generating")
    ap.add_argument("--iterations", type=int, default=21)
    ap.add_argument("--api-key", default=None,
                    help="key of the one-key queries (default: the most frequent)")
    ap.add_argument("--query", action="append", default=[], help="only this query (repeatable)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--show-diffs", type=int, default=10, help="differences shown per query")
    a = ap.parse_args()

    import duckdb

    ensure_data(a)
    extra = []
    if a.api_key:
        extra += ["--api-key", a.api_key]
    for q in a.query:
        extra += ["--query", q]
    plan = json.loads(run([a.tally, "bench", "sql", "--data-dir", a.data_dir,
                           "--print-queries", "--json"] + extra))
    # approx_percentile answers differ by design between engines (sketches
    # within 1%), so those queries are not compared.
    skipped = [q["name"] for q in plan["queries"] if "approx_percentile" in q["sql"]]
    if skipped:
        print(f"not compared with DuckDB (approximate percentiles): {', '.join(skipped)}")
    plan["queries"] = [q for q in plan["queries"] if "approx_percentile" not in q["sql"]]

    con, load_s = load_duckdb(a, duckdb)
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    # The same data on both sides: same count and time range.
    tally_check = json.loads(run([a.tally, "sql", "--data-dir", a.data_dir, "--format", "json",
                                  "SELECT count(*) AS n, min(ts) AS lo, max(ts) AS hi "
                                  "FROM events"]))[0]
    n, lo, hi = con.execute("SELECT count(*), min(ts), max(ts) FROM events").fetchone()
    duck_check = {"n": n, "lo": tally_ts_text(lo), "hi": tally_ts_text(hi)}
    if duck_check != tally_check:
        sys.exit(f"the two databases differ: Tally {tally_check}, DuckDB {duck_check}")

    # DuckDB first, then Tally, never at the same time.
    duck = {}
    for q in plan["queries"]:
        con.execute(q["sql"]).fetchall()  # warm-up
        times, fetch = [], []
        rows = None
        for _ in range(a.iterations):
            t = time.perf_counter()
            res = con.execute(q["sql"])
            t1 = time.perf_counter()
            rows = res.fetchall()
            fetch.append(time.perf_counter() - t1)
            times.append(t1 - t)
        times.sort()
        duck[q["name"]] = {
            "median_ms": statistics.median(times) * 1e3,
            "p95_ms": nearest_rank(times, 0.95) * 1e3,
            "min_ms": times[0] * 1e3,
            "fetch_median_ms": statistics.median(fetch) * 1e3,
            "rows": [[normalise(v) for v in r] for r in rows],
        }
    con.close()

    bench = json.loads(run([a.tally, "bench", "sql", "--data-dir", a.data_dir, "--json",
                            "--iterations", str(a.iterations)] + extra))
    results = []
    for q in plan["queries"]:
        tq = next(x for x in bench["queries"] if x["name"] == q["name"])
        if tq["sql"] != q["sql"]:
            sys.exit(f"{q['name']}: `tally bench sql` ran other SQL than it printed")
        d = duck[q["name"]]
        diffs = compare(tq["result"], d["rows"])
        target = q["target_ms"]
        results.append({
            "name": q["name"], "what": q["what"], "sql": q["sql"],
            "rows": tq["rows"], "duckdb_rows": len(d["rows"]),
            "tally_median_ms": tq["median_ms"], "tally_p95_ms": tq["p95_ms"],
            "duckdb_median_ms": d["median_ms"], "duckdb_p95_ms": d["p95_ms"],
            "duckdb_fetch_median_ms": d["fetch_median_ms"],
            "ratio": tq["median_ms"] / d["median_ms"],
            "target_ms": target,
            "target_met": None if target is None else tq["median_ms"] <= target,
            "faster_than_duckdb": tq["median_ms"] < d["median_ms"],
            "answers_equal": not diffs, "differences": len(diffs),
            "first_differences": diffs[: a.show_diffs],
        })

    out = {
        "data_dir": a.data_dir, "ndjson": a.ndjson, "events": tally_check["n"],
        "end": plan["end"], "day": plan["day"], "api_key": plan["api_key"],
        "api_key_rows": plan["api_key_rows"], "api_key_source": plan["api_key_source"],
        "iterations": a.iterations, "duckdb_version": duckdb.__version__,
        "duckdb_threads": threads, "duckdb_load_seconds": load_s, "queries": results,
    }
    if a.json:
        print(json.dumps(out, indent=2))
        return 0 if all(r["answers_equal"] for r in results) else 1
    print(f"{out['events']:,} events, end {out['end']}, day {out['day']}, key {out['api_key']} "
          f"({out['api_key_source']}, {out['api_key_rows']:,} events); warm-up + "
          f"{a.iterations} runs; DuckDB {out['duckdb_version']} ({threads} threads)"
          + (f", loaded in {load_s:.1f} s" if load_s else ""))
    head = (f"{'query':<14} {'rows':>5} {'Tally ms':>9} {'p95':>8} {'DuckDB ms':>10} {'p95':>8} "
            f"{'ratio':>6}  {'target':<9} {'met?':<5} {'<DuckDB?':<8} answers")
    print(head)
    print("-" * len(head))
    for r in results:
        target = "-" if r["target_ms"] is None else f"<= {r['target_ms']:g} ms"
        met = "-" if r["target_met"] is None else ("yes" if r["target_met"] else "NO")
        print(f"{r['name']:<14} {r['rows']:>5} {r['tally_median_ms']:>9.3f} "
              f"{r['tally_p95_ms']:>8.3f} {r['duckdb_median_ms']:>10.3f} {r['duckdb_p95_ms']:>8.3f} "
              f"{r['ratio']:>6.2f}  {target:<9} {met:<5} "
              f"{'yes' if r['faster_than_duckdb'] else 'NO':<8} "
              f"{'equal' if r['answers_equal'] else str(r['differences']) + ' DIFFER'}")
    print("ratio = Tally median / DuckDB median (below 1: Tally is faster)")
    for r in results:
        if r["first_differences"]:
            print(f"\n{r['name']}: {r['differences']} differences, first ones:")
            for d in r["first_differences"]:
                print(f"  {d}")
    return 0 if all(r["answers_equal"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
