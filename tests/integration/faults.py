"""Faults an operator meets, end to end:
  1. A broker stall (SIGSTOP of `okrctl broker` while events flow): okrd
     keeps answering /metrics, and once the broker is back every event is
     counted exactly once.
  2. A damaged data directory (MANIFEST cut in half, garbage in the middle
     of the WAL, CURRENT gone): okrd refuses to start with one line naming
     the problem and exit 1, and `okrctl log verify` exits 0 on the healthy
     log, 1 on the damaged ones.
127.0.0.1 only; every wait is bounded."""

import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

KPIS = harness.ORDERS_KPI
STALL_SECONDS = 8


def produce(okrctl, bootstrap, count, seed, rate):
    return subprocess.Popen([okrctl, "produce", "--brokers", bootstrap, "--topic", "kpi-events", "--kpi", "orders",
                             "--count", str(count), "--seed", str(seed), "--rate", str(rate), "--subjects", "20"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def broker_stall(a, work):
    cluster = harness.Cluster(a.okrctl, 4, ["kpi-events", "kpi-events-dlq"])
    config = os.path.join(work, "okrd.yaml")
    data = os.path.join(work, "data")
    harness.write_config(config, cluster.bootstrap, data, KPIS)
    okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))
    with cluster:
        wait_for("okrd ready", okrd.ready, timeout=60)
        first = produce(a.okrctl, cluster.bootstrap, 2000, 1, 1000)
        assert first.wait(timeout=60) == 0, first.stderr.read()
        wait_for("2000 events", lambda: harness.events_total(okrd.metrics()) == 2000, timeout=60)

        # Stall the broker with more events on their way: the producer's
        # librdkafka holds them until the broker answers again.
        second = produce(a.okrctl, cluster.bootstrap, 3000, 2, 1000)
        time.sleep(1)
        cluster.broker.proc.send_signal(signal.SIGSTOP)
        log(f"broker stopped for {STALL_SECONDS} s")
        scrapes = []
        until = time.monotonic() + STALL_SECONDS
        while time.monotonic() < until:
            started = time.monotonic()
            status, _ = okrd.get("/metrics")
            scrapes.append((status, time.monotonic() - started))
            time.sleep(0.5)
        cluster.broker.proc.send_signal(signal.SIGCONT)
        assert all(status == 200 for status, _ in scrapes), scrapes
        assert okrd.proc.poll() is None, okrd.tail()
        log(f"{len(scrapes)} scrapes during the stall, all 200, slowest {max(t for _, t in scrapes) * 1000:.0f} ms")
        assert second.wait(timeout=120) == 0, second.stderr.read()
        m = wait_for("5000 events once", lambda: (lambda m: m if harness.events_total(m) >= 5000 else None)(
            okrd.metrics()), timeout=120, interval=0.5)
        assert m['okrd_events_total{outcome="accepted",reason=""}'] == 5000, harness.business(m)
        assert harness.events_total(m) == 5000, harness.business(m)
        wait_for("ready after the stall", okrd.ready, timeout=60)
        assert okrd.terminate() == 0
        log("after the stall: 5000 of 5000 events accepted once")
    return config, data


def damage_cases(a, work, config, data):
    verify = subprocess.run([a.okrctl, "log", "verify", "--data-dir", data], capture_output=True, text=True,
                            timeout=120)
    assert verify.returncode == 0, verify.stderr
    log(f"okrctl log verify on the healthy log: {verify.stderr.strip().splitlines()[-1]}")

    def damaged(name, damage):
        copy = os.path.join(work, f"data-{name}")
        shutil.copytree(data, copy)
        damage(copy)
        proc = subprocess.run([a.okrd, "--config", config, "--data-dir", copy, "--listen", "127.0.0.1:0"],
                              capture_output=True, text=True, timeout=60)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        critical = [line for line in lines if " critical " in line]
        assert proc.returncode == 1, (name, proc.returncode, proc.stderr[-2000:])
        assert len(critical) == 1 and "damaged" in critical[0], (name, lines)
        assert not any("Assertion" in line for line in lines), lines
        verify = subprocess.run([a.okrctl, "log", "verify", "--data-dir", copy], capture_output=True, text=True,
                                timeout=120)
        assert verify.returncode == 1, (name, verify.returncode, verify.stderr)
        log(f"{name}: okrd exits 1 with: {critical[0].split(' critical ', 1)[1][:160]}")

    def files(copy, predicate):
        return [os.path.join(copy, f) for f in os.listdir(copy) if predicate(f)]

    def cut_manifest(copy):
        for path in files(copy, lambda f: f.startswith("MANIFEST-")):
            os.truncate(path, os.path.getsize(path) // 2)

    def garbage_in_wal(copy):
        wals = sorted(files(copy, lambda f: f.endswith(".log")), key=os.path.getsize)
        path = wals[-1]
        size = os.path.getsize(path)
        assert size > 128 << 10, f"WAL too small to damage in the middle: {size}"
        with open(path, "r+b") as f:
            f.seek(size // 2)
            f.write(b"\x5a" * (64 << 10) if size > 256 << 10 else b"\x5a" * (16 << 10))

    def drop_current(copy):
        os.remove(os.path.join(copy, "CURRENT"))

    damaged("manifest-cut", cut_manifest)
    damaged("wal-garbage", garbage_in_wal)
    damaged("current-missing", drop_current)


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    work = harness.tempdir("okrd-faults-")
    config, data = broker_stall(a, work)
    damage_cases(a, work, config, data)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
