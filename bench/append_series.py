#!/usr/bin/env python3
"""Runs the append benchmark and its pgbench reference alternately, RUNS times (default 3),
and prints the medians and the ratio agora / pgbench per client count.

    python3 bench/append_series.py            # needs target/release/agora (cargo build --release)
"""
import json
import os
import statistics
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
agora = os.environ.get("AGORA", os.path.join(here, "..", "target", "release", "agora"))
runs = int(os.environ.get("RUNS", "3"))


def lines(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


series = {}
for run in range(runs):
    for result in lines([os.path.join(here, "reference.sh")]) + lines([agora, "bench", "append", "--json"]):
        series.setdefault((result["workload"], result["clients"]), []).append(result)
        print(json.dumps(result), file=sys.stderr)

print(f"medians of {runs} runs, {os.cpu_count()} cores")
print("| clients | agora append events/s | pgbench insert events/s | ratio | agora p50 ms | agora p99 ms |")
print("| --- | --- | --- | --- | --- | --- |")
for clients in sorted({c for (_, c) in series}):
    ours = series.get(("append", clients), [])
    ref = series.get(("pgbench-append", clients), [])
    if not ours or not ref:
        continue
    rate = statistics.median(r["events_per_s"] for r in ours)
    ref_rate = statistics.median(r["events_per_s"] for r in ref)
    p50 = statistics.median(r["p50_ms"] for r in ours)
    p99 = statistics.median(r["p99_ms"] for r in ours)
    print(f"| {clients} | {rate:.0f} | {ref_rate:.0f} | {rate / ref_rate:.2f} | {p50:.3f} | {p99:.3f} |")
