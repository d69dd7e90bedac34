"""Producers that use a Schema Registry: messages in the Confluent wire
format (0x00, a big-endian schema id, for protobuf the message-index list,
then the message), written byte by byte here with kafka-python, and by
`okrctl produce --framing confluent`, are accepted beside raw ones with
their schema id kept in the log; kafka.schema_ids restricts the ids, and
every malformed frame is rejected with its reason.
127.0.0.1 only; every wait is bounded."""

import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

KPIS = harness.ORDERS_KPI


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    try:
        from kafka import KafkaProducer  # noqa: F401
    except ImportError as e:
        log(f"skipping: {e} (run tools/setup)")
        return harness.SKIP
    harness.require("protoc")
    work = harness.tempdir("okrd-framing-")
    subprocess.run(["protoc", f"-I{a.source_dir}/proto", f"--python_out={work}",
                    f"{a.source_dir}/proto/okrd/v1/kpi_event.proto"], check=True)
    sys.path.insert(0, work)
    from okrd.v1 import kpi_event_pb2  # noqa: E402
    from kafka import KafkaProducer  # noqa: E402

    cluster = harness.Cluster(a.okrctl, 2, ["kpi-events", "kpi-events-dlq"])
    config = os.path.join(work, "okrd.yaml")
    data = os.path.join(work, "data")
    harness.write_config(config, cluster.bootstrap, data, KPIS, extra_kafka="  schema_ids: [7, 8]")
    okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))
    t = harness.event_time_now()

    def pb(event_id, value):
        e = kpi_event_pb2.KpiEvent(event_id=event_id, kpi="orders", subject="team-a", value=value)
        e.event_time.FromJsonString(t)
        return e.SerializeToString()

    def js(event_id, value):
        return json.dumps({"eventId": event_id, "kpi": "orders", "subject": "team-a", "value": value,
                           "eventTime": t}).encode()

    def frame(schema_id, indexes, payload):
        return b"\x00" + struct.pack(">I", schema_id) + indexes + payload

    with cluster:
        wait_for("okrd ready", okrd.ready, timeout=60)
        messages = [
            frame(7, b"\x00", pb("pb-short", 1)),            # index list [0], shorthand
            frame(8, b"\x02\x00", pb("pb-long", 2)),         # [0] spelled out
            frame(7, b"", js("json-framed", 4)),             # JSON frames have no list
            pb("raw", 8),                                    # raw still accepted
            frame(9, b"\x00", pb("other-schema", 100)),      # unknown_schema
            frame(7, b"\x02\x02", pb("second-message", 100)),  # bad_frame: [1]
            b"\x00\x00\x07",                                 # bad_frame: truncated
            frame(7, b"\xff" * 11, b""),                     # bad_frame: varint never ends
        ]
        producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, api_version=(2, 5, 0))
        for m in messages:
            producer.send("kpi-events", key=b"team-a", value=m)
        producer.flush(timeout=30)
        producer.close()
        subprocess.run([a.okrctl, "produce", "--brokers", cluster.bootstrap, "--topic", "kpi-events",
                        "--kpi", "orders", "--subject", "team-b", "--count", "5", "--framing", "confluent",
                        "--schema-id", "8"], check=True, capture_output=True, timeout=60)
        subprocess.run([a.okrctl, "produce", "--brokers", cluster.bootstrap, "--topic", "kpi-events",
                        "--kpi", "orders", "--subject", "team-c", "--count", "3", "--framing", "confluent",
                        "--schema-id", "7", "--format", "json", "--seed", "2"], check=True,
                       capture_output=True, timeout=60)
        sent = len(messages) + 8
        m = wait_for(f"{sent} messages counted", lambda: (lambda m: m if harness.events_total(m) == sent else None)(
            okrd.metrics()), timeout=60)
        expected = {
            'okrd_events_total{outcome="accepted",reason=""}': 12,
            'okrd_events_total{outcome="rejected",reason="unknown_schema"}': 1,
            'okrd_events_total{outcome="rejected",reason="bad_frame"}': 3,
        }
        got = {k: v for k, v in m.items() if k.startswith("okrd_events_total{") and v}
        assert got == expected, got
        assert m['okr_kpi_value{kpi="orders",subject="team-a",period="current"}'] == 15, m
        log("framed protobuf and JSON accepted beside raw; bad frames and other schema ids rejected")

        tail = subprocess.run([a.okrctl, "log", "tail", "--data-dir", data, "-n", "40"], capture_output=True,
                              text=True, check=True, timeout=60).stdout
        by_id = {line.split(" id=")[1].split(" ")[0]: line for line in tail.splitlines() if " id=" in line}
        assert by_id["pb-short"].endswith(" schema=7"), by_id["pb-short"]
        assert by_id["pb-long"].endswith(" schema=8"), by_id["pb-long"]
        assert by_id["json-framed"].endswith(" schema=7"), by_id["json-framed"]
        assert "schema=" not in by_id["raw"], by_id["raw"]
        assert sum(1 for line in by_id.values() if line.endswith(" schema=8")) == 6, tail
        rejected = subprocess.run([a.okrctl, "log", "rejected", "--data-dir", data, "--json"], capture_output=True,
                                  text=True, check=True, timeout=60).stdout
        reasons = sorted(json.loads(line)["reason"] for line in rejected.splitlines())
        assert reasons == ["bad_frame"] * 3 + ["unknown_schema"], reasons
        log("okrctl log tail shows each event's schema id")
        assert okrd.terminate() == 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
