#!/usr/bin/python3
"""Ingest rate as a new user sees it: N events from `okrctl produce`
(config/example.yaml's KPIs, protobuf or JSON) already in an `okrctl broker`
topic, then okrd started on them with the example config; timed from its
first accepted event to its last, read off /metrics. With several --okrd
binaries (a build of an older commit beside this one), the runs alternate
between them on the same broker and events, each with a fresh data
directory and consumer group.

  tools/bench/user_rate.py --okrd A [--okrd B ...] [--events N]
                           [--format protobuf|json] [--runs R] [--partitions P]

Keys of the example config that a binary refuses (older builds know fewer)
are dropped for it, and named."""

import argparse
import os
import statistics
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402


def config_for(okrd_bin, settings, path):
    """Writes `settings` to `path`, less the storage keys `okrd_bin` refuses
    (tried first against a closed port, so that the trial consumes
    nothing)."""
    settings = yaml.safe_load(yaml.safe_dump(settings))
    for _ in range(5):
        trial = yaml.safe_load(yaml.safe_dump(settings))
        trial["kafka"]["brokers"] = "127.0.0.1:1"
        trial["storage"]["path"] = path + ".trial-data"
        with open(path, "w") as f:
            yaml.safe_dump(trial, f)
        proc = subprocess.Popen([okrd_bin, "--config", path], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            _, err = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        refused = [k for k in list(settings.get("storage", {})) if f"storage.{k}: unknown field" in err]
        if not refused:
            break
        for key in refused:
            log(f"{okrd_bin}: drops storage.{key}, which it does not know")
            del settings["storage"][key]
    with open(path, "w") as f:
        yaml.safe_dump(settings, f)


def run_once(okrd_bin, settings, work, events):
    config = os.path.join(work, "okrd.yaml")
    config_for(okrd_bin, settings, config)
    okrd = harness.Okrd(okrd_bin, config, os.path.join(work, "okrd.log"))
    try:
        def accepted():
            try:
                return okrd.metrics().get('okrd_events_total{outcome="accepted",reason=""}', 0)
            except Exception:
                return 0
        wait_for("first event accepted", lambda: accepted() > 0, timeout=120, interval=0.005)
        start, first = time.monotonic(), accepted()
        wait_for("all events accepted", lambda: accepted() >= events, timeout=600, interval=0.005)
        return (events - first) / (time.monotonic() - start)
    finally:
        okrd.kill9()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--okrd", action="append", required=True)
    ap.add_argument("--okrctl", default="build/tools/okrctl")
    ap.add_argument("--source-dir", default=".")
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--format", choices=["protobuf", "json"], default="protobuf")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=8)
    a = ap.parse_args()
    work = harness.tempdir("okrd-user-rate-")
    with open(os.path.join(a.source_dir, "config/example.yaml")) as f:
        base = yaml.safe_load(f)
    broker = harness.Broker(a.okrctl, a.partitions, ["kpi-events", "kpi-events-dlq"])
    try:
        subprocess.run([a.okrctl, "produce", "--brokers", broker.bootstrap, "--topic", "kpi-events",
                        "--config", os.path.join(a.source_dir, "config/example.yaml"), "--count", str(a.events),
                        "--subjects", "1000", "--seed", "7", "--format", a.format],
                       check=True, capture_output=True, timeout=600)
        log(f"{a.events} {a.format} events in kpi-events ({a.partitions} partitions)")
        rates = {b: [] for b in a.okrd}
        for r in range(a.runs):
            for b in a.okrd:
                run_dir = harness.tempdir("okrd-user-rate-run-")
                settings = yaml.safe_load(yaml.safe_dump(base))
                settings["kafka"]["brokers"] = broker.bootstrap
                settings["kafka"]["group_id"] = f"user-rate-{r}-{a.okrd.index(b)}"
                settings["storage"]["path"] = os.path.join(run_dir, "data")
                settings["http"]["listen"] = "127.0.0.1:0"
                rate = run_once(b, settings, run_dir, a.events)
                rates[b].append(rate)
                log(f"run {r + 1}: {b}: {rate:.0f} events/s")
        for b, rs in rates.items():
            log(f"{b}: median {statistics.median(rs):.0f} events/s over {len(rs)} runs "
                f"({', '.join(f'{x:.0f}' for x in rs)})")
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
