#!/usr/bin/env python3
"""Import speed and memory: `tally import` against DuckDB's read_ndjson.

Generates N events with `tally gen` (NDJSON), then times, on the same file:
  - `tally import` into an empty data directory (durable when it exits 0),
    and its peak resident memory;
  - DuckDB (Python package, a measuring instrument only) loading the file
    into a file-backed table with read_ndjson.
Prints one JSON object. Not part of the test suite.

Usage: benches/scripts/import_vs_duckdb.py [--events N] [--days D] [--tally PATH]
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--tally", default="target/release/tally")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()

    work = a.work or tempfile.mkdtemp(prefix="tally-import-bench-")
    os.makedirs(work, exist_ok=True)
    src = os.path.join(work, f"events-{a.events}-{a.days}d.ndjson")
    if not os.path.exists(src):
        subprocess.run([a.tally, "gen", "--events", str(a.events), "--days", str(a.days),
                        "--out", src], check=True)
    size = os.path.getsize(src)
    # Warm the page cache for both contenders equally.
    with open(src, "rb") as f:
        while f.read(1 << 24):
            pass

    data_dir = os.path.join(work, "tally-data")
    shutil.rmtree(data_dir, ignore_errors=True)
    t = time.perf_counter()
    subprocess.run([a.tally, "import", "--quiet", "--data-dir", data_dir, src], check=True)
    tally_s = time.perf_counter() - t
    tally_rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    stats = json.loads(subprocess.run([a.tally, "stats", "--json", "--data-dir", data_dir],
                                      check=True, capture_output=True, text=True).stdout)

    result = {
        "events": a.events, "days": a.days, "file_bytes": size,
        "tally": {"seconds": tally_s, "events_per_sec": a.events / tally_s,
                  "peak_rss_mib": tally_rss_kib / 1024,
                  "bytes_per_event": stats["bytes_per_event"]},
    }
    try:
        import duckdb
    except ImportError:
        result["duckdb"] = "not installed (pip install duckdb)"
    else:
        dpath = os.path.join(work, "duck.db")
        for p in (dpath, dpath + ".wal"):
            if os.path.exists(p):
                os.remove(p)
        con = duckdb.connect(dpath)
        t = time.perf_counter()
        con.execute(f"CREATE TABLE events AS SELECT * FROM read_ndjson('{src}')")
        con.execute("CHECKPOINT")
        duck_s = time.perf_counter() - t
        n = con.execute("SELECT count(*) FROM events").fetchone()[0]
        con.close()
        result["duckdb"] = {"version": duckdb.__version__, "rows": n, "seconds": duck_s,
                            "events_per_sec": n / duck_s,
                            "file_bytes": os.path.getsize(dpath)}
        result["tally_vs_duckdb_speed"] = duck_s / tally_s
    print(json.dumps(result, indent=2))
    if not a.keep and a.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
