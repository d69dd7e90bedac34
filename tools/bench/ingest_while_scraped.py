#!/usr/bin/env python3
"""Ingest rate while /metrics is scraped back to back.

okrd with config/example.yaml on `okrctl broker` first takes --subjects
events over as many subjects (the generator spreads them over every KPI and
PIP policy), so that each scrape renders a large body. Then bursts of
--events events to the same subjects are produced: one while nothing
scrapes, then one while --scrapers clients each scrape /metrics back to
back (curl, body discarded). The status page's last log sequence, read
every 0.2 s, times each burst. Prints, for each burst, the events per
second okrd took (from the first probe that saw the burst move to the one
that saw it done) and the scrape durations. Run it with two builds' okrd,
alternating, to compare them on one machine:

  tools/bench/ingest_while_scraped.py --okrd build/src/app/okrd \\
      --okrctl build/tools/okrctl --source-dir . [--subjects N] [--events N]

The embedded broker keeps about 100k messages per partition: --partitions
must hold --subjects plus every burst. 127.0.0.1 only; every wait is
bounded."""

import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request


sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/integration"))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

LAST_SEQUENCE = re.compile(r'id="last-sequence">(\d+)<')


def last_sequence(port):
    """The log sequence okrd's projection is at, from its status page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as r:
        return int(LAST_SEQUENCE.search(r.read().decode()).group(1))


def scrape(port):
    """Seconds one scrape of /metrics took, the body read and discarded."""
    started = time.monotonic()
    subprocess.run(["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/metrics"],
                   check=True, timeout=300)
    return time.monotonic() - started


def produce(a, bootstrap, count, subjects, seed):
    return subprocess.Popen(
        [a.okrctl, "produce", "--brokers", bootstrap, "--topic", "kpi-events", "--config",
         os.path.join(a.source_dir, "config/example.yaml"), "--count", str(count),
         "--subjects", str(subjects), "--seed", str(seed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def burst(a, okrd, bootstrap, seed, scrapers):
    """Produces --events events while `scrapers` clients scrape back to
    back; returns (events per second, scrape durations)."""
    before = last_sequence(okrd.port)
    target = before + a.events
    durations = []
    stop = threading.Event()

    def scrape_loop():
        while not stop.is_set():
            durations.append(scrape(okrd.port))

    loops = [threading.Thread(target=scrape_loop) for _ in range(scrapers)]
    for t in loops:
        t.start()
    producer = produce(a, bootstrap, a.events, a.subjects, seed)
    started = time.monotonic()
    first = last = None
    at = before
    while time.monotonic() - started < a.window and at < target:
        at = last_sequence(okrd.port)
        if at > before:
            last = (time.monotonic(), at)
            if first is None:
                first = last
        time.sleep(0.2)
    stop.set()
    for t in loops:
        t.join(timeout=300)
    if producer.wait(timeout=300) != 0:
        raise AssertionError(f"okrctl produce failed: {producer.stderr.read()}")
    if first is None or last is first:
        raise AssertionError(f"the burst went by between two probes: raise --events "
                             f"(okrd at {at} of {target})")
    log(f"  {last[1] - before} of {a.events} records logged and folded within "
        f"{last[0] - started:.1f} s")
    return (last[1] - first[1]) / (last[0] - first[0]), durations


def main():
    ap = harness.arguments(__doc__)
    ap.add_argument("--subjects", type=int, default=100000)
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--window", type=float, default=60)
    ap.add_argument("--partitions", type=int, default=32)
    ap.add_argument("--scrapers", type=int, default=1)
    a = ap.parse_args()
    work = harness.tempdir("okrd-scraped-")
    cluster = harness.Cluster(a.okrctl, a.partitions, ["kpi-events", "kpi-events-dlq"])
    config = harness.example_config(a.source_dir, cluster.bootstrap, work)
    okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))
    with cluster:
        wait_for("okrd ready", okrd.ready, timeout=60)
        seeding = produce(a, cluster.bootstrap, a.subjects, a.subjects, 13)
        if seeding.wait(timeout=600) != 0:
            raise AssertionError(f"okrctl produce failed: {seeding.stderr.read()}")
        wait_for(f"{a.subjects} events in", lambda: last_sequence(okrd.port) >= a.subjects,
                 timeout=600, interval=1)
        took = scrape(okrd.port)
        log(f"okrd {a.okrd}: one scrape alone {1000 * took:.0f} ms")
        for seed, scrapers in ((14, 0), (15, a.scrapers)):
            rate, durations = burst(a, okrd, cluster.bootstrap, seed, scrapers)
            durations.sort()
            scrapes = (f"{len(durations)} scrapes, p50 {1000 * statistics.median(durations):.0f} ms, "
                       f"max {1000 * durations[-1]:.0f} ms" if durations else "no scrapes")
            log(f"{scrapers} scrapers back to back: {rate:,.0f} events/s; {scrapes}")


if __name__ == "__main__":
    main()
