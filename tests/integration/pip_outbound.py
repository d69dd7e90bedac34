"""PIP transitions reach pip.outbound_topic as PipTransition protobuf keyed
by subject, with deterministic ids: after kill -9 and a restart they are
sent again with the same ids, so the deduplicated set, and
okr_pip_transitions_total, stay exactly what the events give."""

import datetime
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

KPIS = harness.LEAD_TIME_KPI + harness.SLOW_DEPLOYS_POLICY + """pip:
  outbound_topic: pip-transitions
"""


def main():
    a = harness.arguments().parse_args()
    harness.require("protoc")
    try:
        import kafka  # noqa: F401
    except ImportError as e:
        log(f"skipping: {e} (run tools/setup)")
        return harness.SKIP
    work = harness.tempdir("okrd-pip-")
    subprocess.run(["protoc", f"-I{a.source_dir}/proto", f"--python_out={work}",
                    f"{a.source_dir}/proto/okrd/v1/kpi_event.proto",
                    f"{a.source_dir}/proto/okrd/v1/records.proto"], check=True)
    sys.path.insert(0, work)
    from okrd.v1 import records_pb2  # noqa: E402
    from kafka import KafkaConsumer  # noqa: E402

    cluster = harness.Cluster(a.okrctl, 2, ["kpi-events", "kpi-events-dlq", "pip-transitions"])
    config = os.path.join(work, "okrd.yaml")
    harness.write_config(config, cluster.bootstrap, os.path.join(work, "data"), KPIS)
    okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))

    # Four closed ISO weeks: slow, slow (triggered), fast (recovered), slow.
    today = datetime.datetime.now(datetime.timezone.utc).date()
    monday = today - datetime.timedelta(days=today.weekday())
    events = []
    for k, value in zip([4, 3, 2, 1], [30, 31, 10, 28]):
        day = monday - datetime.timedelta(days=7 * k - 2)
        for team in ["platform", "payments"]:
            events.append(json.dumps({"eventId": f"{team}-{day}", "kpi": "lead_time", "subject": team,
                                      "value": value, "eventTime": f"{day}T12:00:00Z"}))
    path = os.path.join(work, "events.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(events) + "\n")
    expected_path = ["watch", "triggered", "recovered", "ok", "watch"]

    def outbound():
        consumer = KafkaConsumer("pip-transitions", bootstrap_servers=cluster.bootstrap,
                                 auto_offset_reset="earliest", consumer_timeout_ms=3000,
                                 api_version=(2, 5, 0))
        messages = [(m.key.decode(), records_pb2.PipTransition.FromString(m.value)) for m in consumer]
        consumer.close()
        return messages

    with cluster:
        wait_for("okrd ready", okrd.ready, timeout=60)
        harness.produce(a.okrctl, cluster.bootstrap, path)
        # Counted per source partition of the subject: summed here.
        prefix = 'okr_pip_transitions_total{policy="slow-deploys",to="triggered",'
        wait_for("trigger counted",
                 lambda: sum(v for k, v in okrd.metrics().items() if k.startswith(prefix)) == 2, timeout=60)
        first = wait_for("10 transitions sent", lambda: (lambda m: m if len(m) >= 10 else None)(outbound()),
                         timeout=60, interval=1)
        for team in ["platform", "payments"]:
            path_of = [t.to_state for key, t in first if t.subject == team]
            assert path_of == expected_path, (team, path_of)
            assert all(key == team for key, t in first if t.subject == team)
        ids = {t.id for _, t in first}
        assert len(ids) == 10, ids
        log(f"{len(ids)} transitions on the outbound topic, keyed by subject")
        # The plan travels with its transitions: what it asks for, the first
        # check-in, and the milestone as each transition leaves it (judged
        # met on the fast week, 10 <= 22, which also recovers the subject).
        week = datetime.timedelta(days=7)
        for _, t in first:
            at = t.at.ToDatetime()
            plan = [(m.id, m.status, m.due.ToDatetime() - at) for m in t.milestones]
            actions = [(x.id, x.title, x.kind) for x in t.actions]
            if t.to_state == "triggered":
                assert t.next_checkin.ToDatetime() == at + week, t
                assert plan == [("under-22h", "pending", week)], t
                assert actions == [("pairing", "Pair with a release engineer", "mentoring")], t
                assert t.actions[0].due.ToDatetime() == at + week, t
            elif t.to_state == "recovered":
                assert [(m.id, m.status) for m in t.milestones] == [("under-22h", "met")], t
                assert len(t.actions) == 1 and not t.HasField("next_checkin"), t
            else:
                assert not t.milestones and not t.actions and not t.HasField("next_checkin"), t
        log("triggered and recovered transitions carry the plan's action, milestone and check-in")

        # A reload builds a new projection, which fires the same transitions:
        # none is sent again.
        okrd.proc.send_signal(signal.SIGHUP)
        wait_for("reload done", lambda: "reload done" in okrd.tail(200), timeout=60)
        time.sleep(3)  # the publisher looks once a second
        assert len(outbound()) == 10, "a reload sent transitions again"
        log("a reload sends none of them again")

        okrd.kill9()
        okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))
        wait_for("okrd ready after kill -9", okrd.ready, timeout=90)
        again = wait_for("transitions sent again", lambda: (lambda m: m if len(m) >= 20 else None)(outbound()),
                         timeout=60, interval=1)
        assert {t.id for _, t in again} == ids, "ids changed across the restart"
        # Sent again, each is the same message: no milestone judged anew.
        sent = {}
        for _, t in again:
            assert sent.setdefault(t.id, t.SerializeToString()) == t.SerializeToString(), t
        m = okrd.metrics()
        assert sum(v for k, v in m.items() if k.startswith("okr_pip_transitions_total{")) == 10, m
        log("after kill -9 the same ids again: deduplicated, each transition once")
        assert okrd.terminate() == 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
