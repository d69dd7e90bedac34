"""A full disk pauses ingest, never aborts it: okrd's event log lives on a
small tmpfs that fills up while events arrive. okrd must keep running and
serving /metrics, say on /readyz why it is not ready, count the failed
writes, and carry on by itself once the tmpfs grows, with every event
counted exactly once, also after a kill -9. Needs root to mount a tmpfs;
skipped (exit 77) with a message where mounting is refused."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

EVENTS = 6000
KPIS = harness.ORDERS_KPI


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    work = harness.tempdir("okrd-disk-full-")
    disk = os.path.join(work, "disk")
    os.makedirs(disk)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", disk], capture_output=True, text=True)
    if mounted.returncode != 0:
        log(f"skipping: cannot mount a tmpfs here ({mounted.stderr.strip()}); needs root")
        return harness.SKIP
    try:
        return run(a, work, disk)
    finally:
        subprocess.run(["umount", "-l", disk], capture_output=True)


def run(a, work, disk):
    # ~1.7 KB per event: the 4 MiB tmpfs fills after about a third of them.
    t = harness.event_time_now()
    path = os.path.join(work, "events.jsonl")
    with open(path, "w") as f:
        for i in range(EVENTS):
            attributes = {f"k{j}": f"{i:06d}" + "x" * 200 for j in range(8)}
            f.write(json.dumps({"eventId": f"big-{i}", "kpi": "orders", "subject": f"team-{i % 10}", "value": 1,
                                "eventTime": t, "attributes": attributes}) + "\n")
    cluster = harness.Cluster(a.okrctl, 8, ["kpi-events", "kpi-events-dlq"])
    config = os.path.join(work, "okrd.yaml")
    harness.write_config(config, cluster.bootstrap, os.path.join(disk, "data"), KPIS)
    okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))
    with cluster:
        wait_for("okrd ready", okrd.ready, timeout=60)
        harness.produce(a.okrctl, cluster.bootstrap, path)
        log(f"produced {EVENTS} events of ~1.7 KB onto a 4 MiB log disk")

        def paused():
            assert okrd.proc.poll() is None, f"okrd exited with {okrd.proc.returncode}:\n{okrd.tail()}"
            m = okrd.metrics()
            if m.get("okrd_eventlog_write_errors_total", 0) < 1:
                return None
            status, body = readyz(okrd)
            return (m, status, body) if status == 503 and "not writable" in body else None

        m, status, body = wait_for("ingest paused on the full disk", paused, timeout=90, interval=0.5)
        accepted = harness.events_total(m)
        assert 0 < accepted < EVENTS, accepted
        log(f"paused after {accepted:.0f} events; /readyz {status}: {body.strip()}")
        # Still paused a moment later, still serving, still alive.
        wait_for("retries counted", lambda: okrd.metrics()["okrd_eventlog_write_errors_total"] >= 3, timeout=30)
        assert okrd.proc.poll() is None
        with open(okrd.log_path) as f:
            f.seek(okrd.log_start)
            text = f.read()
        assert "event log write failed" in text, text[-3000:]
        assert "Assertion" not in text and "critical" not in text, text[-3000:]

        subprocess.run(["mount", "-o", "remount,size=256m", disk], check=True)
        log("the log disk grew to 256 MiB")
        wait_for("every event accepted once", lambda: harness.events_total(okrd.metrics()) == EVENTS, timeout=120,
                 interval=0.5)
        wait_for("ready again", okrd.ready, timeout=60)
        m = okrd.metrics()
        assert m['okrd_events_total{outcome="accepted",reason=""}'] == EVENTS, m
        assert sum(v for k, v in m.items() if k.startswith('okr_kpi_value{kpi="orders"')
                   and 'period="current"' in k) == EVENTS, m
        log("resumed by itself: every event accepted once")

        okrd.kill9()
        okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))
        wait_for("okrd ready after kill -9", okrd.ready, timeout=90)
        after = okrd.metrics()
        assert harness.business(after) == harness.business(m), (harness.business(after), harness.business(m))
        assert okrd.terminate() == 0
        log("after kill -9: the same counts and values")
    return 0


def readyz(okrd):
    try:
        return okrd.get("/readyz")
    except harness.urllib.error.HTTPError as e:
        return e.code, e.read().decode()


if __name__ == "__main__":
    sys.exit(main())
