#!/usr/bin/env python3
"""What rollups cost on ingest: one `tally` binary with rollups on against
the hidden `--bench-skip-rollups`, in alternated pairs.

The reference machine is a shared 2-core VM whose speed drifts by 10-30%
from minute to minute, so only runs taken side by side are compared: each
pair runs the two variants back to back (alternating which goes first)
and the script prints every pair's ratio (speed with rollups / speed
without) and their median. Issue 6's target is a ratio of at least 0.85.

Three workloads:
  - `bench`: `tally bench ingest --events N --days D` (durable, 4 writers);
  - `import`: `tally import FILE` of an NDJSON file (`tally gen` makes one);
  - `grpc`: a `tally serve --no-auth` on a fresh data directory (sync
    durability) and `tally bench ingest --server URL --events N --days D`
    (4 connections, columnar batches of 1,000) on the same machine; the
    CPU is the server's and the client's.

Single pairs range over ±0.07 around the median on the reference
machine, so the default is 8 pairs.

Use enough events for several flushes (the default 10 M is about seven
default memtables): with fewer, the ingest ends before the first flush
and the ratio says nothing.

For `bench`, `timed_cpu_ratio` is the CPU ratio of the timed work only
(the ingest and the final flush, as `bench ingest` reports them): the
plain CPU ratio also counts the generation of the events, the same in
both runs, which pulls it towards 1.

For `bench`, `ratio_with_close` also counts the final flush on close
(events over ingest plus close seconds): a flush that lags behind the
writers leaves more for the close, which the plain ratio does not see.
(`import` already counts its final flush; over gRPC the client times
only the acknowledgements.)

Besides the speed ratio, each pair reports the CPU ratio: the CPU seconds
(user + system) of the run without rollups over those of the run with
them, for the same events. The machine is saturated during these runs, so
the CPU ratio predicts the speed ratio, and it drifts far less with the
VM's speed. (For `bench`, both runs include generating the events.)
`cores_busy_*` is each run's CPU time over its wall time: where the run
with rollups keeps fewer cores busy, its wall ratio falls under its CPU
ratio.

Prints one JSON object. Not part of the test suite.

Usage: benches/scripts/rollup_ingest_ratio.py [--workload bench|import|grpc]
       [--pairs 8] [--events 10000000] [--days 7] [--file F] [--tally PATH]
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def children_cpu():
    """CPU seconds (user + system) of the finished child processes."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd):
    """Runs `cmd`; returns (its stdout + stderr, CPU seconds, wall
    seconds)."""
    cpu, wall = children_cpu(), time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    cpu, wall = children_cpu() - cpu, time.monotonic() - wall
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout + p.stderr, cpu, wall


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grpc_run(args, data, flag):
    """Serves `data` and ingests into it from a client process; returns
    the client's output and the CPU and wall seconds of both."""
    port = free_port()
    cpu, wall = children_cpu(), time.monotonic()
    server = subprocess.Popen([args.tally, "serve", "--data-dir", data, "--no-auth",
                               "--listen", f"127.0.0.1:{port}"] + flag,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None:
                sys.exit(f"tally serve exited: {server.stderr.read()}")
            time.sleep(0.05)
        p = subprocess.run([args.tally, "bench", "ingest", "--server", f"http://127.0.0.1:{port}",
                            "--events", str(args.events), "--days", str(args.days)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"bench ingest --server failed ({p.returncode}):\n{p.stderr}")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=300)
    return p.stdout + p.stderr, children_cpu() - cpu, time.monotonic() - wall


def speed(args, skip, work):
    """Events per second, CPU seconds and cores busy (CPU over wall time
    of the whole process) of one run (with rollups unless `skip`)."""
    data = os.path.join(work, "data")
    shutil.rmtree(data, ignore_errors=True)
    flag = ["--bench-skip-rollups"] if skip else []
    closed = None
    timed_cpu = None
    if args.workload == "grpc":
        out, cpu, wall = grpc_run(args, data, flag)
        m = re.search(r"ingested \d+ events through \S+ in [\d.]+ s: (\d+) events/s", out)
    elif args.workload == "bench":
        out, cpu, wall = run([args.tally, "bench", "ingest", "--data-dir", data,
                              "--events", str(args.events), "--days", str(args.days)] + flag)
        m = re.search(r"ingested \d+ events in [\d.]+ s: (\d+) events/s", out)
        c = re.search(r"ingested (\d+) events in ([\d.]+) s:.*final flush on close: ([\d.]+) s",
                      out, re.S)
        if c:
            closed = int(c.group(1)) / (float(c.group(2)) + float(c.group(3)))
        t = re.search(r"CPU: ingest ([\d.]+) s, final flush ([\d.]+) s", out)
        if t:
            timed_cpu = float(t.group(1)) + float(t.group(2))
    else:
        out, cpu, wall = run([args.tally, "import", "--data-dir", data] + flag + [args.file])
        m = re.search(r"\((\d+) events/s", out)
    if not m:
        sys.exit(f"no rate in the output:\n{out}")
    rate = int(m.group(1))
    return rate, cpu, cpu / wall, closed or rate, timed_cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", choices=["bench", "import", "grpc"], default="bench")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--file", help="NDJSON file for --workload import "
                    "(default: made with `tally gen` in a temporary directory)")
    ap.add_argument("--tally", default="target/release/tally")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        if args.workload == "import" and not args.file:
            args.file = os.path.join(work, "events.ndjson")
            run([args.tally, "gen", "--events", str(args.events),
                 "--days", str(args.days), "--out", args.file])
        pairs = []
        for i in range(args.pairs):
            order = [False, True] if i % 2 == 0 else [True, False]
            runs = {skip: speed(args, skip, work) for skip in order}
            (rate_with, cpu_with, busy_with, closed_with, timed_with) = runs[False]
            (rate_without, cpu_without, busy_without, closed_without, timed_without) = runs[True]
            pairs.append({"with_rollups": rate_with, "without": rate_without,
                          "ratio": round(rate_with / rate_without, 3),
                          "ratio_with_close": round(closed_with / closed_without, 3),
                          "cpu_s_with": round(cpu_with, 2),
                          "cpu_s_without": round(cpu_without, 2),
                          "cpu_ratio": round(cpu_without / cpu_with, 3),
                          "timed_cpu_ratio": (round(timed_without / timed_with, 3)
                                              if timed_with and timed_without else None),
                          "cores_busy_with": round(busy_with, 2),
                          "cores_busy_without": round(busy_without, 2)})
    print(json.dumps({
        "workload": args.workload,
        "events": args.events,
        "days": args.days,
        "pairs": pairs,
        "median_ratio": round(statistics.median(p["ratio"] for p in pairs), 3),
        "median_cpu_ratio": round(statistics.median(p["cpu_ratio"] for p in pairs), 3),
        "median_ratio_with_close": round(
            statistics.median(p["ratio_with_close"] for p in pairs), 3),
        "median_timed_cpu_ratio": (round(statistics.median(
            p["timed_cpu_ratio"] for p in pairs), 3)
            if all(p["timed_cpu_ratio"] for p in pairs) else None),
    }, indent=2))


if __name__ == "__main__":
    main()
