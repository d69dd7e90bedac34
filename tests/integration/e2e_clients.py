"""Events produced by independent clients (kcat and kafka-python, binary
protobuf and proto3 JSON) reach okrd through `okrctl broker` and appear with
exact values on /metrics; duplicates, conflicts and bad messages are counted,
kept in the rejected log and sent to the DLQ; a clean restart keeps every
counter and value."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

KPIS = """  - id: orders
    unit: count
    aggregation: sum
    period: month
  - id: nps
    aggregation: latest
    period: month
  - id: lead_time
    unit: hours
    aggregation: max
    period: quarter
"""


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    harness.require("kcat", "protoc", "promtool")
    try:
        import kafka  # noqa: F401
        import google.protobuf  # noqa: F401
    except ImportError as e:
        log(f"skipping: {e} (run tools/setup)")
        return harness.SKIP

    work = harness.tempdir("okrd-e2e-")
    # An independent encoder: protoc's Python code, not okrd's.
    subprocess.run(["protoc", f"-I{a.source_dir}/proto", f"--python_out={work}",
                    f"{a.source_dir}/proto/okrd/v1/kpi_event.proto"], check=True)
    sys.path.insert(0, work)
    from okrd.v1 import kpi_event_pb2  # noqa: E402
    from kafka import KafkaProducer  # noqa: E402

    cluster = harness.Cluster(a.okrctl, 4, ["kpi-events", "kpi-events-dlq"])
    broker = cluster.broker
    config = os.path.join(work, "okrd.yaml")
    harness.write_config(config, broker.bootstrap, os.path.join(work, "data"), KPIS)
    okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))
    with cluster:
        wait_for("okrd ready", okrd.ready, timeout=60)
        t = harness.event_time_now()

        def pb(event_id, kpi, subject, value, **extra):
            e = kpi_event_pb2.KpiEvent(event_id=event_id, kpi=kpi, subject=subject, value=value, **extra)
            e.event_time.FromJsonString(t)
            return e.SerializeToString()

        def js(event_id, kpi, subject, value, **extra):
            d = {"eventId": event_id, "kpi": kpi, "subject": subject, "value": value, "eventTime": t}
            d.update(extra)
            return json.dumps(d)

        sent = 0
        # 1. kcat, binary protobuf: one message per file.
        files = []
        for i, value in enumerate([3, 4, 5]):
            path = os.path.join(work, f"pb{i}.bin")
            with open(path, "wb") as f:
                f.write(pb(f"kcat-pb-{i}", "orders", "team-a", value, unit="count"))
            files.append(path)
        subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", "kpi-events", "-k", "team-a"] + files,
                       check=True, timeout=60)
        sent += 3
        # 2. kcat, JSON lines with a content-type header.
        lines = "\n".join([
            js("kcat-js-1", "orders", "team-b", 10),
            js("kcat-js-2", "lead_time", "team-b", 30.5, unit="hours"),
            js("kcat-js-3", "lead_time", "team-b", 12.25),
            "not json at all",
        ]) + "\n"
        subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", "kpi-events", "-k", "team-b",
                        "-H", "content-type=application/json"], input=lines.encode(), check=True, timeout=60)
        sent += 4
        # 3. kafka-python, protobuf and JSON, with a duplicate and a conflict.
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, api_version=(2, 5, 0))
        hdr = [("content-type", b"application/json")]
        msgs = [
            (pb("py-pb-1", "orders", "team-c", 7), None),
            (pb("py-pb-2", "nps", "team-c", 41), None),
            (js("py-js-1", "nps", "team-c", 44).encode(), hdr),
            (pb("kcat-pb-0", "orders", "team-a", 3, unit="count"), None),     # duplicate of kcat's
            (pb("py-pb-1", "orders", "team-c", 8), None),                    # conflict: other value
            (pb("py-bad-unit", "orders", "team-c", 1, unit="EUR"), None),    # unit_mismatch
            (pb("py-bad-kpi", "revenue", "team-c", 1), None),                # unknown_kpi
            (b"\x08\x96\x01\xff\xff", None),                                 # malformed
        ]
        for value, headers in msgs:
            producer.send("kpi-events", key=b"team-c", value=value, headers=headers)
        producer.flush(timeout=30)
        producer.close()
        sent += len(msgs)
        log(f"sent {sent} messages through kcat and kafka-python")

        m = wait_for(f"{sent} messages counted", lambda: (lambda m: m if harness.events_total(m) == sent else None)(okrd.metrics()),
                     timeout=60)
        expected = {
            'okr_kpi_value{kpi="orders",subject="team-a",period="current"}': 12,
            'okr_kpi_value{kpi="orders",subject="team-b",period="current"}': 10,
            'okr_kpi_value{kpi="orders",subject="team-c",period="current"}': 7,
            'okr_kpi_value{kpi="lead_time",subject="team-b",period="current"}': 30.5,
            'okr_kpi_value{kpi="nps",subject="team-c",period="current"}': 44,
            'okrd_events_total{outcome="accepted",reason=""}': 9,
            'okrd_events_total{outcome="duplicate",reason=""}': 1,
            'okrd_events_total{outcome="rejected",reason="conflict"}': 1,
            'okrd_events_total{outcome="rejected",reason="unit_mismatch"}': 1,
            'okrd_events_total{outcome="rejected",reason="unknown_kpi"}': 1,
            'okrd_events_total{outcome="rejected",reason="malformed"}': 2,
        }
        got = harness.business(m)
        assert got == expected, f"metrics differ:\n got {json.dumps(got, indent=1)}\nwant {json.dumps(expected, indent=1)}"
        # Nine events, and the clock ticks okrd logs beside them.
        assert m["okrd_eventlog_last_sequence"] >= 9
        assert m["okrd_projection_sequence"] == m["okrd_eventlog_last_sequence"]
        log("values on /metrics are exact")

        # Rejected messages reach the DLQ with their reason.
        def dlq_reasons():
            out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", "kpi-events-dlq", "-e", "-q",
                                  "-f", "%h\\n"], capture_output=True, text=True, timeout=60).stdout
            found = sorted(h.split("okrd-reason=")[1].split(",")[0] for h in out.splitlines() if "okrd-reason=" in h)
            return found if len(found) >= 5 else None

        reasons = wait_for("5 messages on the DLQ", dlq_reasons, timeout=30, interval=0.5)
        assert reasons == ["conflict", "malformed", "malformed", "unit_mismatch", "unknown_kpi"], reasons
        log(f"DLQ holds {len(reasons)} rejects with reasons")

        # The business series of a live scrape are byte-identical to a replay
        # of the log up to the sequence that scrape reflects.
        live = okrd.get("/metrics")[1]
        sequence = int(harness.parse_metrics(live)["okrd_projection_sequence"])
        lint = subprocess.run(["promtool", "check", "metrics"], input=live, capture_output=True, text=True,
                              timeout=60)
        assert lint.returncode == 0, f"promtool check metrics:\n{lint.stdout}{lint.stderr}"
        log("promtool check metrics: /metrics is clean")

        # A clean stop exits 0, and a restart serves the same numbers.
        assert okrd.terminate() == 0, okrd.tail()
        replayed = harness.replay_business(a.okrctl, config, os.path.join(work, "data"), sequence)
        business = harness.business_text(live)
        assert business == replayed, f"live:\n{business}\nreplay:\n{replayed}"
        log(f"okrctl replay --until-seq {sequence} equals the live scrape byte for byte")
        rejected = subprocess.run([a.okrctl, "log", "rejected", "--data-dir", os.path.join(work, "data"), "--json"],
                                  capture_output=True, text=True, check=True).stdout
        assert len(rejected.splitlines()) == 5 and '"reason":"conflict"' in rejected, rejected
        okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))
        wait_for("okrd ready after restart", okrd.ready, timeout=60)
        after = harness.business(okrd.metrics())
        assert after == got, f"after restart:\n{after}\nbefore:\n{got}"
        with open(okrd.log_path) as f:
            f.seek(okrd.log_start)
            assert "loaded projection snapshot at sequence" in f.read(), okrd.tail()
        log("clean restart from the stop's snapshot keeps every counter and value")
        assert okrd.terminate() == 0
        return 0


if __name__ == "__main__":
    sys.exit(main())
