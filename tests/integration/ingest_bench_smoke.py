"""ingest_bench's short version: every line the README's figures come from
is printed, with figures, by a run small enough for the test suite (the
figures themselves are measured by running the bench by hand, see the
README). Checks that a 1 s latency window against a maximum measured over
its own number of events gives percentiles for the floor and for okrd at
each rate, and a line of CPU per thread after each."""

import argparse
import re
import subprocess
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bench", required=True)
    a = p.parse_args()
    args = [a.bench, "--events", "20000", "--partitions", "4",
            "--latency-seconds", "1", "--latency-max-events", "40000",
            "--latency-fractions", "0.5"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=240)
    out = run.stdout
    print(out)
    assert run.returncode == 0, f"exit {run.returncode}:\n{run.stderr[-2000:]}"
    number = r"[0-9]+(\.[0-9]+)?"
    expected = [
        rf"^okrd ingest, sync on : +{number} events/s",
        rf"^floor, raw bytes \+ offsets, sync: +{number} events/s",
        rf"^maximum beside the producer, sync on: {number} events/s over 40000 events",
    ]
    for rate in ("1k/s", "50% of max"):
        for who in ("send -> consume, floor:", "send -> fold, sync on:"):
            expected.append(rf"^{re.escape(who)} {re.escape(rate)} +\( *{number}/s\): "
                            rf"p50 {number} ms, p99 {number} ms")
    for pattern in expected:
        assert re.search(pattern, out, re.M), f"no line matching {pattern!r}"
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("send -> ") or line.startswith("maximum beside"):
            assert i + 1 < len(lines) and re.match(
                r"^  cpu, us/event by thread: +\S+ " + number, lines[i + 1]), (
                f"no CPU line after {line!r}")
    print("ingest_bench: every figure line present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
