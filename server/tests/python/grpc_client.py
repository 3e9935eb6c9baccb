#!/usr/bin/env python3
"""A Tally gRPC client in Python, against the server's own protos.

Proves the tally.v1 protos are usable outside Rust: the stubs are generated
at run time from server/proto with grpcio-tools (its bundled protoc, not a
system one), then the script ingests in row and columnar form, checks the
retry of a batch is acknowledged as a duplicate, reads the count back over
the streaming Sql call, asks for a plan with Explain, reads a key's exact
usage with Usage.GetUsage and asks Usage.Check about an unregistered key,
and checks a malformed request is refused with INVALID_ARGUMENT naming the
field. With --token,
every call sends `authorization: Bearer TOKEN`, and a call without it must
be refused with UNAUTHENTICATED.

    python3 server/tests/python/grpc_client.py --addr 127.0.0.1:50051 [--token T]

Exits 0 when every check passes; otherwise prints what failed and exits 1.
Needs only grpcio, grpcio-tools and protobuf. Run by server/tests/python_client.rs
against a server it starts (an empty database).
"""

import argparse
import collections
import importlib
import importlib.resources
import sys
import tempfile
from pathlib import Path

import grpc
from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent.parent.parent / "proto"
PROTOS = ["tally/v1/ingest.proto", "tally/v1/query.proto", "tally/v1/usage.proto"]
RPC_TIMEOUT_S = 30.0
# 2026-11-24 00:00:00 UTC in microseconds, as in the Rust end-to-end test.
BASE_TS_US = 1_795_478_400_000_000


class CheckFailed(Exception):
    """A check that did not hold; the message says which and why."""


def check(cond, label, detail=""):
    """Prints `ok: label` or raises with the label and what was seen."""
    if not cond:
        raise CheckFailed(f"{label}: {detail}" if detail else label)
    print(f"ok: {label}")


def generate_stubs(out_dir):
    """Compiles the protos into `out_dir` and imports the four modules."""
    include = importlib.resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *PROTOS,
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise CheckFailed(f"grpc_tools.protoc failed (exit {rc}) on {PROTO_DIR}")
    # tally/ and tally/v1/ are namespace packages under out_dir.
    sys.path.insert(0, str(out_dir))
    return (
        importlib.import_module("tally.v1.ingest_pb2"),
        importlib.import_module("tally.v1.ingest_pb2_grpc"),
        importlib.import_module("tally.v1.query_pb2"),
        importlib.import_module("tally.v1.query_pb2_grpc"),
        importlib.import_module("tally.v1.usage_pb2"),
        importlib.import_module("tally.v1.usage_pb2_grpc"),
    )


def event_fields(i):
    return {
        "ts_us": BASE_TS_US + i * 1_000_000,
        "api_key": f"key_{i % 3}",
        "endpoint": "/v1/users",
        "method": "GET",
        "status_code": 500 if i % 10 == 0 else 200,
        "latency_ms": 1.5 + i,
        "request_bytes": 100,
        "response_bytes": 1000 + i,
        "ip": "10.0.0.1",
        "user_agent": "python-grpc-client",
        "geo_country": "US",
        "request_id": "",
    }


def columns_of(ingest_pb2, indices):
    rows = [event_fields(i) for i in indices]
    cols = ingest_pb2.EventColumns()
    for name in ("ts_us", "api_key", "endpoint", "method", "status_code",
                 "latency_ms", "request_bytes", "response_bytes", "ip",
                 "user_agent", "geo_country"):
        getattr(cols, name).extend(r[name] for r in rows)
    return cols


def run_sql(query_stub, query_pb2, sql):
    """Runs `sql`; returns (schema fields, rows as lists of Python values)."""
    schema = None
    rows = []
    for reply in query_stub.Sql(query_pb2.SqlRequest(sql=sql), timeout=RPC_TIMEOUT_S):
        part = reply.WhichOneof("part")
        if part == "schema":
            if schema is not None:
                raise CheckFailed("Sql: a second schema message")
            schema = reply.schema
        elif part == "batch":
            if schema is None:
                raise CheckFailed("Sql: a row batch before the schema")
            rows.extend(decode_batch(query_pb2, schema, reply.batch))
        else:
            raise CheckFailed(f"Sql: a reply with no part: {reply}")
    if schema is None:
        raise CheckFailed("Sql: no schema message")
    return list(schema.fields), rows


def decode_batch(query_pb2, schema, batch):
    if len(batch.columns) != len(schema.fields):
        raise CheckFailed(
            f"Sql: a batch has {len(batch.columns)} columns for "
            f"{len(schema.fields)} fields")
    values = []
    for field, col in zip(schema.fields, batch.columns):
        if field.type in (query_pb2.BIGINT, query_pb2.TIMESTAMP):
            vals = list(col.ints)
        elif field.type == query_pb2.DOUBLE:
            vals = list(col.doubles)
        elif field.type == query_pb2.BOOL:
            vals = list(col.bools)
        else:
            vals = list(col.strings)
        if len(vals) != batch.rows:
            raise CheckFailed(
                f"Sql: column {field.name} has {len(vals)} values for "
                f"{batch.rows} rows")
        if col.nulls:
            vals = [None if null else v for v, null in zip(vals, col.nulls)]
        values.append(vals)
    return [list(row) for row in zip(*values)] if values else []


class _CallDetails(
        collections.namedtuple(
            "_CallDetails",
            ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
        grpc.ClientCallDetails):
    pass


class Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer TOKEN` to every call."""

    def __init__(self, token):
        self.header = ("authorization", f"Bearer {token}")

    def _with_token(self, d):
        metadata = list(d.metadata or []) + [self.header]
        return _CallDetails(d.method, d.timeout, metadata, d.credentials,
                            d.wait_for_ready, d.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


def run(addr, token, stubs):
    ingest_pb2, ingest_grpc, query_pb2, query_grpc, usage_pb2, usage_pb2_grpc = stubs
    # Loopback: never through an http(s)_proxy from the environment.
    channel = grpc.insecure_channel(addr, options=[("grpc.enable_http_proxy", 0)])
    try:
        grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
    except grpc.FutureTimeoutError:
        raise CheckFailed(f"no gRPC server reachable at {addr}") from None
    if token:
        try:
            ingest_grpc.IngestStub(channel).Write(
                ingest_pb2.WriteRequest(), timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNAUTHENTICATED,
                  "Write without a token: UNAUTHENTICATED", f"got {e.code()}")
        else:
            raise CheckFailed("Write without a token: accepted")
        channel = grpc.intercept_channel(channel, Bearer(token))
    ingest = ingest_grpc.IngestStub(channel)
    query = query_grpc.QueryStub(channel)

    # Row form, with a producer and sequence for exactly-once retries.
    batch = ingest_pb2.WriteRequest(
        events=[ingest_pb2.Event(**event_fields(i)) for i in range(100)],
        producer_id="py-client-1",
        sequence=1,
    )
    reply = ingest.Write(batch, timeout=RPC_TIMEOUT_S)
    check(reply.accepted == 100 and not reply.rejected,
          "Write rows: accepted == 100",
          f"accepted={reply.accepted} rejected={list(reply.rejected)}")
    check(reply.durability == ingest_pb2.DURABILITY_SYNCED,
          "Write rows: durability SYNCED",
          f"got {ingest_pb2.Durability.Name(reply.durability)}")
    check(not reply.duplicate, "Write rows: first send not a duplicate")

    # The same batch again: acknowledged as a duplicate, applied once.
    again = ingest.Write(batch, timeout=RPC_TIMEOUT_S)
    check(again.duplicate, "Write retry: duplicate == True", f"reply {again}")

    # Columnar form.
    cols = columns_of(ingest_pb2, range(100, 120))
    reply = ingest.Write(ingest_pb2.WriteRequest(columns=cols), timeout=RPC_TIMEOUT_S)
    check(reply.accepted == 20 and not reply.rejected,
          "Write columns: accepted == 20",
          f"accepted={reply.accepted} rejected={list(reply.rejected)}")

    # Streaming SQL: schema first, then row batches.
    sql = "SELECT count(*) AS n, count(DISTINCT api_key) AS k FROM events"
    fields, rows = run_sql(query, query_pb2, sql)
    got = [(f.name, query_pb2.ColumnType.Name(f.type)) for f in fields]
    check(got == [("n", "BIGINT"), ("k", "BIGINT")],
          "Sql: schema n BIGINT, k BIGINT", f"got {got}")
    check(len(rows) == 1, "Sql: one row", f"got {rows}")
    n, k = rows[0]
    check(n == 120, "Sql: n == 120 (the retry applied once)", f"got {n}")
    check(k == 3, "Sql: k == 3", f"got {k}")

    plan = query.Explain(query_pb2.SqlRequest(sql=sql), timeout=RPC_TIMEOUT_S)
    # The counts come from rollups ("RollupScan rollup_1d (rewritten from
    # events)") or, with the rewrite off, from "Scan events".
    check(any("Scan events" in line or "rewritten from events" in line
              for line in plan.lines),
          "Explain: a line names the scan of events", f"got {list(plan.lines)}")

    # Usage: key_0's events by day equal what SQL counts; an unregistered
    # key is refused by Check, with its usage reported.
    usage = usage_pb2_grpc.UsageStub(channel)
    rows = usage.GetUsage(usage_pb2.GetUsageRequest(api_key="key_0"),
                          timeout=RPC_TIMEOUT_S).rows
    _, counted = run_sql(query, query_pb2,
                         "SELECT count(*) FROM events WHERE api_key = 'key_0'")
    check(sum(r.requests for r in rows) == counted[0][0],
          "GetUsage: requests == SQL count", f"got {list(rows)} vs {counted}")
    verdict = usage.Check(usage_pb2.CheckRequest(api_key="key_0"), timeout=RPC_TIMEOUT_S)
    check(verdict.decision == usage_pb2.DECISION_UNKNOWN_KEY and not verdict.allowed,
          "Check: an unregistered key is refused", f"got {verdict}")

    # Malformed: one column shorter than the others.
    bad = columns_of(ingest_pb2, range(200, 210))
    del bad.method[-1]
    try:
        reply = ingest.Write(ingest_pb2.WriteRequest(columns=bad), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as e:
        code, details = e.code(), e.details() or ""
        check(code == grpc.StatusCode.INVALID_ARGUMENT,
              "Write malformed: INVALID_ARGUMENT", f"got {code} {details!r}")
        check("columns.method" in details,
              "Write malformed: message names columns.method", f"got {details!r}")
    else:
        raise CheckFailed(f"Write malformed: accepted instead of refused: {reply}")

    channel.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", required=True, help="server address, HOST:PORT")
    parser.add_argument("--token", help="access token (omit when the server has no auth)")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="tally-pb-") as out:
            stubs = generate_stubs(Path(out))
            run(args.addr, args.token, stubs)
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"FAIL: unexpected gRPC error {e.code()}: {e.details()}", file=sys.stderr)
        return 1
    print("PASS: the Python grpcio client works against the tally.v1 protos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
