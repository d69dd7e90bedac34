"""A real Prometheus (Debian's package) scrapes a running okrd fed by
`okrctl broker` and `okrctl produce`, with the deploy kit's recording and
alert rules loaded. Through Prometheus's HTTP query API the test checks that
the values it stored are what was produced and what okrd served, then runs
every PromQL expression of the Grafana dashboard (variables set to match
all) and of the recording rules and asserts each returns data.
127.0.0.1 only; every wait is bounded."""

import datetime
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

SUBJECTS = ["growth", "success", "product", "sales-emea", "platform"]


def dashboard_queries(path):
    """(title, expr) of every panel target, and label_values() variables."""
    with open(path) as f:
        dashboard = json.load(f)
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(dashboard["panels"])
    variables = []
    for v in dashboard["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if isinstance(q, str) and q.startswith("label_values("):
            metric, label = [x.strip() for x in q[len("label_values("):-1].split(",")]
            variables.append((v["name"], metric, label))
    return exprs, variables


def okrd_config(source, path, bootstrap, data):
    with open(os.path.join(source, "config/example.yaml")) as f:
        config = yaml.safe_load(f)
    config["kafka"]["brokers"] = bootstrap
    config["kafka"]["group_id"] = "okrd-prometheus-test"
    config["kafka"]["batch_max_wait"] = "20ms"
    config["kafka"].setdefault("properties", {}).update(
        {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"})
    config["storage"]["path"] = data
    config["http"]["listen"] = "127.0.0.1:0"
    with open(path, "w") as f:
        yaml.safe_dump(config, f)


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    harness.require("prometheus")
    work = harness.tempdir("okrd-prometheus-")
    cluster = harness.Cluster(a.okrctl, 2, ["kpi-events", "kpi-events-dlq"])
    config = os.path.join(work, "okrd.yaml")
    okrd_config(a.source_dir, config, cluster.bootstrap, os.path.join(work, "data"))
    okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))

    def produce(*args):
        subprocess.run([a.okrctl, "produce", "--brokers", cluster.bootstrap, "--topic", "kpi-events",
                        *args], check=True, capture_output=True, timeout=120)

    prometheus = None
    with cluster:
        wait_for("okrd ready", okrd.ready, timeout=60)
        generated = 200
        produce("--config", config, "--count", str(generated), "--format", "protobuf",
                *[x for s in SUBJECTS for x in ("--subject", s)])
        produce("--file", os.path.join(a.source_dir, "config/sample-bad-events.jsonl"))
        # Known values: two sign-ups of a probe team, and three slow weeks of
        # deployment lead time that trigger the platform PIP policy.
        now = datetime.datetime.now(datetime.timezone.utc)
        monday = (now - datetime.timedelta(days=now.weekday())).date()
        known = [{"eventId": f"probe-{i}", "kpi": "signups", "subject": "probe", "value": v,
                  "unit": "count", "eventTime": harness.event_time_now()} for i, v in enumerate((5, 7))]
        for k in (1, 2, 3):
            day = monday - datetime.timedelta(days=7 * k - 2)
            known.append({"eventId": f"lead-time-{day}", "kpi": "deploy_lead_time", "subject": "platform",
                          "value": 30 + k, "unit": "hours", "eventTime": f"{day}T12:00:00Z"})
        harness.produce(a.okrctl, cluster.bootstrap, os.path.join(work, "known.jsonl"), known)
        accepted = 'okrd_events_total{outcome="accepted",reason=""}'
        expected_accepted = generated + len(known)
        wait_for("okrd ingested everything", lambda: okrd.metrics().get(accepted) == expected_accepted,
                 timeout=60)

        rules_dir = os.path.join(a.source_dir, "deploy/prometheus/rules")
        rules = sorted(os.path.join(rules_dir, r) for r in os.listdir(rules_dir) if r.endswith(".yml"))
        prometheus = harness.Prometheus(work, [f"127.0.0.1:{okrd.port}"], rules)
        cluster.defer(prometheus.stop)

        # Values as okrd serves them, at one projection sequence; then the
        # same sequence as Prometheus stored it.
        served = okrd.metrics()
        sequence = served["okrd_projection_sequence"]
        wait_for("prometheus scraped the projection",
                 lambda: (prometheus.value("okrd_projection_sequence") or 0) >= sequence,
                 timeout=60, interval=0.5)
        assert prometheus.value('okr_kpi_value{kpi="signups",subject="probe",period="current"}') == 12
        assert prometheus.value(f"okrd_events_total{{outcome=\"accepted\"}}") == expected_accepted
        assert prometheus.value('okr_pip_state{policy="lead-time-above-target",subject="platform",'
                                'state="triggered"}') == 1, prometheus.query("okr_pip_state == 1")
        compared = 0
        for key, value in served.items():
            if not key.startswith(("okr_kpi_value{", "okr_key_result_progress_ratio{",
                                   "okr_objective_progress_ratio{")):
                continue
            got = prometheus.value(key)
            assert got is not None and abs(got - value) <= 1e-9 * max(1.0, abs(value)), (key, value, got)
            compared += 1
        assert compared > 20, compared
        log(f"{compared} series in Prometheus equal what okrd served at sequence {int(sequence)}")

        # rate() over the event counter needs two scrapes; recording rules an
        # evaluation after that.
        time.sleep(3)
        exprs, variables = dashboard_queries(os.path.join(a.source_dir, "deploy/grafana/dashboards/okrd.json"))
        for name, metric, label in variables:
            values = prometheus.api(f"label/{label}/values", **{"match[]": metric})
            assert values, f"dashboard variable {name}: label_values({metric}, {label}) is empty"
        for title, expr in exprs:
            promql = expr.replace("$objective", ".*").replace("$team", ".*").replace("$kpi", ".*")
            result = wait_for(f"data for dashboard panel {title!r}: {promql}",
                              lambda: prometheus.query(promql), timeout=30, interval=0.5)
            log(f"dashboard {title!r}: {len(result)} series")
        rule_groups = prometheus.api("rules")["groups"]
        recorded = 0
        for group in rule_groups:
            for rule in group["rules"]:
                assert rule["health"] == "ok", rule
                if rule["type"] != "recording":
                    continue
                wait_for(f"data for recording rule {rule['name']}", lambda: prometheus.query(rule["query"]),
                         timeout=30, interval=0.5)
                wait_for(f"recorded series {rule['name']}", lambda: prometheus.query(rule["name"]),
                         timeout=30, interval=0.5)
                recorded += 1
        assert recorded >= 4, recorded
        log(f"{len(exprs)} dashboard queries, {len(variables)} variables and {recorded} recording rules "
            "return data; every rule group is healthy")
        return 0


if __name__ == "__main__":
    sys.exit(main())
