#!/usr/bin/env bash
# Instructions the rollup writer of one flush executes, counted by
# valgrind's callgrind: a measure that does not drift with the VM's speed
# (wall-clock timings of the same flush vary by 10-30% on the reference
# machine), for comparing two builds of the rollup pass and the codecs.
#
# Runs the flush bench (benches/benches/flush.rs) with one rayon thread,
# one round, rollups only, over TALLY_BENCH_EVENTS (default 1,500,000)
# generated events over TALLY_BENCH_DAYS (default 1) days: what one flush
# of the 10 M-event, 7-day ingest benchmark holds (a flush covers about a
# day, so each key's day has ~1,500 events). Counts the instructions inside
# `write_month_rollups` (the rollup pass and the encoding of the rollup
# chunks; not the kernel's page faults and file writes, which callgrind
# does not see).
#
# Usage: benches/scripts/rollup_instructions.sh [FLUSH_BENCH_BINARY...]
#   With no argument it builds the flush bench and measures it. Needs
#   valgrind (Debian package `valgrind`); not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v valgrind > /dev/null; then
    echo "valgrind not found (apt-get install valgrind)" >&2
    exit 2
fi
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
    bin=$(cargo bench -p tally-benches --bench flush --no-run --message-format=json 2> /dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "flush" and m.get("executable"):
        print(m["executable"])')
    bins=("$bin")
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for b in "${bins[@]}"; do
    RAYON_NUM_THREADS=1 TALLY_BENCH_ROUNDS=1 TALLY_BENCH_ONLY=rollups \
        TALLY_BENCH_EVENTS="${TALLY_BENCH_EVENTS:-1500000}" \
        TALLY_BENCH_DAYS="${TALLY_BENCH_DAYS:-1}" \
        valgrind --tool=callgrind --toggle-collect='*write_month_rollups*' \
        --callgrind-out-file="$out/cg.out" "$b" --bench > /dev/null 2> "$out/err"
    n=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/err")
    echo "$b: $n instructions in write_month_rollups"
done
