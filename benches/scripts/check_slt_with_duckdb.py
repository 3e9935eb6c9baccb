#!/usr/bin/env python3
"""Checks the expected answers of query/tests/slt/*.slt against DuckDB.

Loads query/tests/slt/events.ndjson into DuckDB with the same column types
and runs every `query` record there, comparing DuckDB's rows with the ones
the file expects (floats to 1e-9 relative). A record preceded by a comment
line starting `# duckdb: skip` is not compared (the comment says why: where
Tally follows PostgreSQL and DuckDB differs, e.g. integer division, or a
function DuckDB lacks). A measuring instrument, not part of the test suite.

Usage: benches/scripts/check_slt_with_duckdb.py
"""
import datetime
import math
import os
import sys

import duckdb

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "query", "tests", "slt")
NOW = "2026-11-25 03:00:00"


def load():
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    cols = {"ts": "TIMESTAMP", "api_key": "VARCHAR", "endpoint": "VARCHAR", "method": "VARCHAR",
            "status_code": "BIGINT", "latency_ms": "DOUBLE", "request_bytes": "BIGINT",
            "response_bytes": "BIGINT", "ip": "VARCHAR", "user_agent": "VARCHAR",
            "geo_country": "VARCHAR", "request_id": "VARCHAR"}
    spec = "{" + ", ".join(f"'{k}': '{v}'" for k, v in cols.items()) + "}"
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_ndjson('{ROOT}/events.ndjson', columns={spec})")
    return con


def render(v):
    import decimal
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, datetime.timedelta):
        days, rem = v.days, v.seconds
        micros = v.microseconds
        parts = []
        if days:
            parts.append(f"{days}␠day" + ("s" if abs(days) != 1 else ""))
        if rem or micros or not parts:
            t = f"{rem // 3600:02d}:{rem // 60 % 60:02d}:{rem % 60:02d}"
            if micros:
                t += ("." + f"{micros:06d}").rstrip("0")
            parts.append(t)
        return "␠".join(parts)
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime.datetime):
        s = v.strftime("%Y-%m-%d %H:%M:%S")
        if v.microsecond:
            s += ("." + f"{v.microsecond:06d}").rstrip("0")
        return s.replace(" ", "␠")
    if isinstance(v, str):
        return "(empty)" if v == "" else v.replace(" ", "␠")
    return v


def same(a, b):
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        try:
            fb = float(b)
        except ValueError:
            return False
        fa = float(a)
        return fa == fb or abs(fa - fb) <= 1e-9 * max(abs(fa), abs(fb))
    return str(a) == b


def records(text):
    lines = text.split("\n")
    i, skip = 0, None
    while i < len(lines):
        l = lines[i]
        if l.startswith("# duckdb: skip"):
            skip = l
            i += 1
            continue
        if l.startswith("query ") and not l.startswith("query error"):
            head = l
            i += 1
            sql = []
            while lines[i] != "----":
                sql.append(lines[i])
                i += 1
            i += 1
            exp = []
            while i < len(lines) and lines[i].strip():
                exp.append(lines[i])
                i += 1
            yield head, "\n".join(sql), exp, skip
            skip = None
            continue
        if l.strip():
            skip = None if not l.startswith("#") else skip
        i += 1


def main():
    con = load()
    checked = skipped = bad = 0
    for name in sorted(os.listdir(ROOT)):
        if not name.endswith(".slt"):
            continue
        for head, sql, exp, skip in records(open(os.path.join(ROOT, name)).read()):
            if skip or sql.upper().startswith("EXPLAIN"):
                skipped += 1
                continue
            q = sql.replace("now()", f"TIMESTAMP '{NOW}'")
            try:
                rows = con.execute(q).fetchall()
            except Exception as e:  # noqa: BLE001
                print(f"{name}: DuckDB error on\n{sql}\n{e}\n")
                bad += 1
                continue
            got = [[render(v) for v in r] for r in rows]
            if "rowsort" in head.split():
                got.sort(key=lambda r: " ".join(str(x) for x in r))
            expected = [e.split(" ") for e in exp]
            ok = len(got) == len(expected) and all(
                len(g) == len(e) and all(same(x, y) for x, y in zip(g, e)) for g, e in zip(got, expected))
            checked += 1
            if not ok:
                bad += 1
                print(f"{name}: MISMATCH\n{sql}\nexpected (slt): {expected}\nDuckDB: {got}\n")
    print(f"checked {checked}, skipped {skipped}, mismatches {bad}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
