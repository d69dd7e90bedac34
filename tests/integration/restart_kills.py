"""kill -9 where a restart does its own work, not only where it ingests:
  1. While the id index rebuilds its in-memory table from the log's tail
     (150k imported events, none of them in a written run yet): okrd is
     killed right after it logs that it is reading the tail, several times.
     Afterwards the counters are exact, re-sent events are duplicates and a
     changed one is a conflict.
  2. While it takes over a log written by an earlier build (the fixture of
     17dc1b7): killed between its first log line and serving, while it opens
     the log, several times; the log still verifies after each kill, and
     after a full start it replays to the same series as before.
127.0.0.1 only; every wait is bounded."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

TAIL_EVENTS = 150000
FIXTURE_RECORDS = 137  # tests/testdata/eventlog-17dc1b7.tar.gz
ATTEMPTS = 6


def events(n):
    for i in range(n):
        yield {"eventId": f"tail-{i}", "kpi": "orders", "subject": f"s-{i % 50}", "value": 1,
               "eventTime": "2026-11-20T10:00:00Z"}


def read_from(path, start):
    with open(path) as f:
        f.seek(start)
        return f.read()


def kill_after(okrd_bin, config, log_path, line, delay=0.0):
    """Starts okrd, kills it with SIGKILL `delay` seconds after it logs
    `line`, and returns what this run logged."""
    start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    with open(log_path, "a") as out:
        proc = subprocess.Popen([okrd_bin, "--config", config], stdout=out, stderr=out)
        try:
            wait_for(f"okrd logging {line!r}", lambda: line in read_from(log_path, start), timeout=60,
                     interval=0.001)
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
    return read_from(log_path, start)


def kill_during_rebuild(a, work):
    data = os.path.join(work, "data")
    lines = os.path.join(work, "tail.jsonl")
    with open(lines, "w") as f:
        for e in events(TAIL_EVENTS):
            f.write(json.dumps(e) + "\n")
    cluster = harness.Cluster(a.okrctl, 2, ["kpi-events", "kpi-events-dlq"])
    config = os.path.join(work, "okrd.yaml")
    harness.write_config(config, cluster.bootstrap, data, harness.ORDERS_KPI)
    subprocess.run([a.okrctl, "log", "import", "--config", config, "--data-dir", data, "--file", lines],
                   check=True, capture_output=True, timeout=300)
    okrd_log = os.path.join(work, "okrd.log")
    with cluster:
        landed = 0
        for _ in range(ATTEMPTS):
            if "ids in memory after" not in kill_after(a.okrd, config, okrd_log, "id index: reading the"):
                landed += 1
        log(f"{landed} of {ATTEMPTS} kills landed while the id index was being rebuilt")
        assert landed >= 1, "no kill landed during the rebuild"

        okrd = cluster.start(a.okrd, config, okrd_log)
        wait_for("okrd ready", okrd.ready, timeout=90)
        m = okrd.metrics()
        assert m['okrd_events_total{outcome="accepted",reason=""}'] == TAIL_EVENTS, m
        # The first 100 again, unchanged: duplicates; one changed: a conflict.
        again = list(events(100))
        changed = dict(again[0], value=2)
        harness.produce(a.okrctl, cluster.bootstrap, os.path.join(work, "again.jsonl"), again + [changed])
        wait_for("the re-sent events counted",
                 lambda: harness.events_total(okrd.metrics()) == TAIL_EVENTS + 101, timeout=60)
        m = okrd.metrics()
        assert m['okrd_events_total{outcome="duplicate",reason=""}'] == 100, m
        assert m['okrd_events_total{outcome="rejected",reason="conflict"}'] == 1, m
        assert m['okrd_events_total{outcome="accepted",reason=""}'] == TAIL_EVENTS, m
        log("after the kills: every imported event counted once, re-sent ones are duplicates, a changed one a conflict")


def kill_during_takeover(a, work, rng):
    fixture = os.path.join(a.source_dir, "tests", "testdata", "eventlog-17dc1b7.tar.gz")
    example = os.path.join(a.source_dir, "config", "example.yaml")
    pristine = os.path.join(work, "pristine")
    data = os.path.join(work, "upgraded")
    for d in (pristine, data):
        os.makedirs(d)
        subprocess.run(["tar", "xzf", fixture, "-C", d], check=True)

    def replay(d):
        # Up to the fixture's last record: a start that runs logs clock ticks
        # after it, which move the logged clock on.
        return subprocess.run([a.okrctl, "replay", "--config", example, "--data-dir", d, "--until-seq",
                               str(FIXTURE_RECORDS)], capture_output=True, text=True, check=True,
                              timeout=120).stdout

    before = replay(pristine)
    config = os.path.join(work, "upgrade.yaml")
    # The example config (its embedded broker) on this log, on a free port.
    with open(example) as f:
        text = f.read()
    for old, new in (("path: ./okrd-data", f"path: {data}"), ("listen: 127.0.0.1:9464", "listen: 127.0.0.1:0")):
        assert old in text, f"config/example.yaml no longer has {old}"
        text = text.replace(old, new)
    with open(config, "w") as f:
        f.write(text)
    okrd_log = os.path.join(work, "upgrade.log")
    # okrd opens the log (creating the new column families, recording the
    # id index's coverage) within about 20 ms of its first line, and serves
    # right after: a kill between the two lands in the open.
    in_open = 0
    for _ in range(ATTEMPTS):
        if "serving http" not in kill_after(a.okrd, config, okrd_log, "starting with config", rng.uniform(0.0, 0.02)):
            in_open += 1
        verify = subprocess.run([a.okrctl, "log", "verify", "--data-dir", data], capture_output=True,
                                text=True, timeout=120)
        assert verify.returncode == 0, verify.stderr
    assert in_open >= 1, "no kill landed while okrd opened the old log"
    took_over = "written by an earlier okrd" in read_from(okrd_log, 0)
    # Then a start that runs to the end: it serves, and stops cleanly.
    okrd = harness.Okrd(a.okrd, config, okrd_log)
    assert okrd.terminate() == 0, okrd.tail()
    after = replay(data)
    assert after == before, "the upgraded log replays to other series"
    log(f"{in_open} of {ATTEMPTS} kills landed while okrd opened a 17dc1b7 log (taken over by one of them: "
        f"{took_over}), then a full start: it verifies and replays to the same series")


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    rng = random.Random(11)
    work = harness.tempdir("okrd-restart-kills-")
    kill_during_rebuild(a, work)
    kill_during_takeover(a, work, rng)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
