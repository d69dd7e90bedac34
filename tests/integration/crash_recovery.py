"""Crash safety: while `okrctl produce` sends a known set of events (with
duplicates, conflicts and bad messages), okrd is killed with SIGKILL at 20 or
more random moments and restarted. At the end okrd_events_total and every
okr_kpi_value equal what the distinct valid events give: nothing lost,
nothing counted twice. Events among them drive several subjects through a
PIP trigger and recovery: each transition is counted once in
okr_pip_transitions_total and, deduplicated by id, appears once on the
outbound topic. A replay of the log equals the live business series, and a
clean restart changes nothing."""

import collections
import datetime
import difflib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

KPIS = """  - id: orders
    unit: count
    aggregation: sum
    period: month
  - id: tickets
    aggregation: count
    period: month
  - id: nps
    aggregation: max
    period: month
  - id: lead_time
    aggregation: mean
    period: week
  # Derived from the others: computed on read, so they survive kills with
  # their inputs.
  - id: orders_per_ticket
    ratio: {numerator: orders, denominator: tickets, scale: 100}
  - id: orders_growth
    change: {of: orders}
pip_policies:
  - id: slow
    kpi: lead_time
    comparator: above
    trigger: 24
    recovery: 18
    consecutive_periods: 2
    cooldown_periods: 0
    plan_days: 365
    milestones:
      - {id: under-20h, day: 7, threshold: 20}
    actions:
      - {id: pairing, title: "Pair on the deploy pipeline", kind: mentoring, due_day: 7}
    checkin_every: 7d
pip:
  outbound_topic: pip-transitions
# Snapshots every few batches and a fast clock, so that kills also land
# while a snapshot is stored and while PIP transitions fire.
projection:
  snapshot_every_records: 1500
  tick_interval: 1s
"""
SUBJECTS = [f"team-{i:02d}" for i in range(16)]
# Weekly lead times, oldest first: slow, slow (triggered), fast (recovered),
# slow again (watch).
PIP_SUBJECTS = [f"svc-{i}" for i in range(6)]
PIP_WEEKS = [30, 31, 10, 28]
PIP_PATH = ["watch", "triggered", "recovered", "ok", "watch"]


def checked(metrics):
    """The series whose exact values this test predicts; PIP transitions
    summed over the source partitions they are counted by."""
    out = harness.business(metrics)
    for k, v in metrics.items():
        if k.startswith("okr_pip_transitions_total{"):
            key = re.sub(r',topic="[^"]*",partition="[^"]*"', "", k)
            out[key] = out.get(key, 0) + v
    # Policies and states that never fired are exported at 0.
    return {k: v for k, v in out.items() if v or not k.startswith("okr_pip_transitions_total{")}


def pip_events():
    """One event per subject and closed ISO week, with what they export."""
    today = datetime.datetime.now(datetime.timezone.utc).date()
    monday = today - datetime.timedelta(days=today.weekday())
    lines = []
    for k, value in zip([4, 3, 2, 1], PIP_WEEKS):
        day = monday - datetime.timedelta(days=7 * k - 2)
        for subject in PIP_SUBJECTS:
            lines.append(json.dumps({"eventId": f"lt-{subject}-{day}", "kpi": "lead_time", "subject": subject,
                                     "value": value, "eventTime": f"{day}T12:00:00Z"}))
    expected = {f'okr_kpi_value{{kpi="lead_time",subject="{s}",period="previous"}}': float(PIP_WEEKS[-1])
                for s in PIP_SUBJECTS}
    for to in set(PIP_PATH):
        expected[f'okr_pip_transitions_total{{policy="slow",to="{to}"}}'] = float(
            PIP_PATH.count(to) * len(PIP_SUBJECTS))
    return lines, expected


def make_events(rng, t, valid):
    """Returns (jsonl lines, expected metrics) for a deterministic mix."""
    lines = []
    firsts = []
    sums = collections.defaultdict(float)
    counts = collections.Counter()
    maxes = {}
    for i in range(valid):
        kpi = ("orders", "tickets", "nps")[i % 3]
        subject = rng.choice(SUBJECTS)
        value = rng.randint(1, 100)
        e = {"eventId": f"ev-{i}", "kpi": kpi, "subject": subject, "value": value, "eventTime": t}
        lines.append(json.dumps(e))
        firsts.append(e)
        key = (kpi, subject)
        sums[key] += value
        counts[key] += 1
        maxes[key] = max(maxes.get(key, value), value)
    duplicates = conflicts = 0
    out = []
    # Re-sends and conflicts come after their original; same subject keeps
    # them on the original's partition, so the original is always first.
    for i, line in enumerate(lines):
        out.append(line)
        if i % 20 == 7:
            out.append(json.dumps(firsts[rng.randrange(i + 1)]))
            duplicates += 1
        if i % 97 == 3:
            e = dict(firsts[rng.randrange(i + 1)])
            e["value"] = e["value"] + 1000
            out.append(json.dumps(e))
            conflicts += 1
        if i % 101 == 5:
            out.append(json.dumps({"eventId": f"bad-kpi-{i}", "kpi": "revenue", "subject": "team-00",
                                   "value": 1, "eventTime": t}))
        if i % 211 == 9:
            out.append(f"garbage line {i}")
    expected = {}
    for (kpi, subject), s in sums.items():
        v = {"orders": s, "tickets": counts[(kpi, subject)], "nps": maxes[(kpi, subject)]}[kpi]
        expected[f'okr_kpi_value{{kpi="{kpi}",subject="{subject}",period="current"}}'] = float(v)
    for (kpi, subject), s in sums.items():
        if kpi == "orders" and counts[("tickets", subject)]:
            expected[f'okr_kpi_value{{kpi="orders_per_ticket",subject="{subject}",period="current"}}'] = \
                s / counts[("tickets", subject)] * 100
    bad_kpi = sum(1 for i in range(valid) if i % 101 == 5)
    garbage = sum(1 for i in range(valid) if i % 211 == 9)
    expected['okrd_events_total{outcome="accepted",reason=""}'] = float(valid)
    expected['okrd_events_total{outcome="duplicate",reason=""}'] = float(duplicates)
    expected['okrd_events_total{outcome="rejected",reason="conflict"}'] = float(conflicts)
    expected['okrd_events_total{outcome="rejected",reason="unknown_kpi"}'] = float(bad_kpi)
    expected['okrd_events_total{outcome="rejected",reason="malformed"}'] = float(garbage)
    return out, expected


def main():
    ap = harness.arguments()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--valid", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("OKRD_CRASH_SEED", "0")) or int(time.time()))
    a = ap.parse_args()
    log(f"seed {a.seed} (rerun with OKRD_CRASH_SEED={a.seed})")
    rng = random.Random(a.seed)

    work = harness.tempdir("okrd-crash-")
    lines, expected = make_events(rng, harness.event_time_now(), a.valid)
    pip_lines, pip_expected = pip_events()
    # Spread through the stream, each subject's weeks in time order (keyed by
    # subject they stay in order): with no allowed_lateness configured, a week
    # arriving after a later one would rewrite that subject's PIP history.
    positions = sorted(rng.randrange(len(lines) + 1) for _ in pip_lines)
    for offset, (position, line) in enumerate(zip(positions, pip_lines)):
        lines.insert(position + offset, line)
    expected.update(pip_expected)
    expected['okrd_events_total{outcome="accepted",reason=""}'] += len(pip_lines)
    subprocess.run(["protoc", f"-I{a.source_dir}/proto", f"--python_out={work}",
                    f"{a.source_dir}/proto/okrd/v1/kpi_event.proto",
                    f"{a.source_dir}/proto/okrd/v1/records.proto"], check=True)
    sys.path.insert(0, work)
    from okrd.v1 import records_pb2  # noqa: E402
    from kafka import KafkaConsumer  # noqa: E402
    # One chunk per kill cycle, produced while that cycle's okrd runs, so
    # every kill lands with messages in flight.
    chunk = -(-len(lines) // a.kills)
    chunk_files = []
    for i in range(a.kills):
        path = os.path.join(work, f"events-{i:02d}.jsonl")
        with open(path, "w") as f:
            f.write("\n".join(lines[i * chunk:(i + 1) * chunk]) + "\n")
        chunk_files.append(path)
    total = len(lines)
    log(f"{total} messages: {a.valid} distinct valid, the rest duplicates, conflicts and bad ones")

    cluster = harness.Cluster(a.okrctl, 4, ["kpi-events", "kpi-events-dlq", "pip-transitions"])
    broker = cluster.broker
    config = os.path.join(work, "okrd.yaml")
    # Small in-memory tables of the id index: kills land while its runs are
    # written and while a restart rebuilds the tables from the log's tail.
    harness.write_config(config, broker.bootstrap, os.path.join(work, "data"), KPIS,
                         extra_storage="  id_index_memory_ids: 300")
    okrd_log = os.path.join(work, "okrd.log")
    # Spread each chunk over about eight seconds: most of a kill cycle,
    # which the group's session timeout makes about ten seconds long.
    rate = max(100, chunk // 8)
    producer = None

    def produce(i):
        """Starts the producer of chunk i once the previous one is done, so
        originals always precede their duplicates and conflicts."""
        nonlocal producer
        if producer is not None:
            assert producer.wait(timeout=300) == 0, "okrctl produce failed"
        producer = subprocess.Popen([a.okrctl, "produce", "--brokers", broker.bootstrap, "--topic", "kpi-events",
                                     "--file", chunk_files[i], "--rate", str(rate)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_producer():
        if producer is not None and producer.poll() is None:
            producer.kill()

    cluster.defer(stop_producer)
    with cluster:
        progressed = 0
        for kill in range(a.kills):
            produce(kill)
            okrd = cluster.start(a.okrd, config, okrd_log)
            if rng.random() < 0.25:
                # Anywhere in start-up: rebuild, group join, first fetch.
                time.sleep(rng.uniform(0.05, 1.5))
                where = "during start-up"
            elif rng.random() < 0.2:
                # A SIGHUP folds the whole log again beside ingest (same
                # config): kill during that rebuild.
                wait_for("okrd assigned", lambda: harness.owns_partitions(okrd), timeout=90)
                okrd.proc.send_signal(signal.SIGHUP)
                time.sleep(rng.uniform(0.0, 0.5))
                where = "during a SIGHUP rebuild"
            else:
                # Assigned, and so consuming; /readyz waits for the catch-up,
                # which often drains the chunk before a kill could land.
                wait_for("okrd assigned", lambda: harness.owns_partitions(okrd), timeout=90)
                before = harness.events_total(okrd.metrics())
                time.sleep(rng.uniform(0.1, 2.0))
                after = harness.events_total(okrd.metrics())
                if after > before:
                    progressed += 1
                where = f"while consuming ({int(before)} -> {int(after)} messages)"
            okrd.kill9()
            log(f"kill -9 #{kill + 1} {where}")
        assert producer.wait(timeout=300) == 0, "okrctl produce failed"
        log(f"producer done; {progressed} kills landed while okrd was making progress")
        # About a quarter of the kills land in start-up and a sixth in SIGHUP
        # rebuilds; on a busy machine some of the rest find okrd waiting.
        assert progressed >= a.kills // 4, "too few kills hit okrd while it was consuming"

        okrd = cluster.start(a.okrd, config, okrd_log)
        wait_for(f"all {total} messages counted", lambda: harness.events_total(okrd.metrics()) >= total,
                 timeout=180, interval=0.5)
        # PIP transitions are recorded at the next logged clock tick (every
        # 10 s by default). Counters only grow, so an overcount never settles.
        try:
            m = wait_for("every series settled", lambda: (lambda m: m if checked(m) == expected else None)(
                okrd.metrics()), timeout=45, interval=0.5)
        except AssertionError:
            got = checked(okrd.metrics())
            diff = {k: (got.get(k), expected.get(k)) for k in set(got) | set(expected) if got.get(k) != expected.get(k)}
            raise AssertionError(f"{len(diff)} series differ (got, want): {json.dumps(dict(list(diff.items())[:20]))}")
        assert m["okrd_projection_sequence"] == m["okrd_eventlog_last_sequence"]
        log(f"after {a.kills} kills: all {len(expected)} series exact, nothing lost or counted twice")
        with open(okrd_log) as f:
            runs = sum("ids written as a run" in line for line in f)
        assert runs >= 2, f"the id index wrote {runs} runs: the kills did not exercise them"
        log(f"the id index wrote {runs} runs of its in-memory ids across the kills")

        def outbound():
            consumer = KafkaConsumer("pip-transitions", bootstrap_servers=cluster.bootstrap,
                                     auto_offset_reset="earliest", consumer_timeout_ms=3000,
                                     api_version=(2, 5, 0))
            unique = {}
            for message in consumer:
                t = records_pb2.PipTransition.FromString(message.value)
                assert message.key.decode() == t.subject, (message.key, t.subject)
                # Sent again after a kill, a transition is the same message:
                # its milestone judged once, its check-in the same.
                assert unique.setdefault(t.id, t) == t, (unique[t.id], t)
            consumer.close()
            return unique if len(unique) >= len(PIP_PATH) * len(PIP_SUBJECTS) else None

        unique = wait_for("every PIP transition on the outbound topic", outbound, timeout=60, interval=1)
        assert len(unique) == len(PIP_PATH) * len(PIP_SUBJECTS), sorted(unique)
        for subject in PIP_SUBJECTS:
            states = sorted(t.to_state for t in unique.values() if t.subject == subject)
            assert states == sorted(PIP_PATH), (subject, states)
            plans = {t.to_state: ([(m.id, m.status) for m in t.milestones], t.next_checkin.ToDatetime() - t.at.ToDatetime())
                     for t in unique.values() if t.subject == subject and t.to_state in ("triggered", "recovered")}
            assert plans["triggered"] == ([("under-20h", "pending")], datetime.timedelta(days=7)), plans
            assert plans["recovered"][0] == [("under-20h", "met")], plans
        log(f"{len(unique)} distinct PIP transitions on the outbound topic, each subject's path complete")

        live = okrd.get("/metrics")[1]
        sequence = int(harness.parse_metrics(live)["okrd_projection_sequence"])
        replayed = harness.replay_business(a.okrctl, config, os.path.join(work, "data"), sequence)
        if harness.business_text(live) != replayed:
            diff = "".join(difflib.unified_diff(harness.business_text(live).splitlines(True),
                                                replayed.splitlines(True), "live", "replay", n=0))
            raise AssertionError(f"replay differs from the live business series:\n{diff[:3000]}")
        log(f"okrctl replay --until-seq {sequence} equals the live business series, PIP states included")

        assert okrd.terminate() == 0, okrd.tail()
        okrd = cluster.start(a.okrd, config, okrd_log)
        wait_for("okrd ready after clean restart", okrd.ready, timeout=90)
        assert checked(okrd.metrics()) == expected
        assert okrd.terminate() == 0
        log("clean restart: counters and values unchanged")
        return 0


if __name__ == "__main__":
    sys.exit(main())
