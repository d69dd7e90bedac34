"""Several okrd in one consumer group give one correct answer through every
rebalance (DESIGN.md, Scale).

Three instances A, B, C share `okrctl broker`'s 8 partitions; a fourth, R,
consumes everything in a group of its own and is the single-instance
reference. Debian's Prometheus scrapes A-D with the shipped recording rules.
At each settled moment (first settle, after kill -9 of C, after C restarts
on its stale log, after D joins, after D leaves), with more events produced
in between:
  - every (KPI, subject, period) of okr_kpi_value, every key result with
    data and every PIP subject is exported by exactly one instance, with
    R's value: nothing stale, nothing twice;
  - the recording rule's objective progress equals R's;
  - the recording rule's message totals and the summed PIP transitions
    equal R's, re-reads and restarts included.
127.0.0.1 only; every wait is bounded."""

import datetime
import json
import os
import shutil
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

PARTITIONS = 8
KR_SUBJECTS = ["sales-emea", "product", "success", "growth", "platform"]
TEAMS = [f"team-{i}" for i in range(1, 41)]
# Lead times of 30 h in the last three closed ISO weeks: under the policy
# below each of these teams goes ok -> watch -> triggered.
SLOW_TEAMS = TEAMS[:12]
SLOW_POLICY = {"id": "slow-teams", "kpi": "deploy_lead_time", "comparator": "above", "trigger": 24,
               "recovery": 18, "consecutive_periods": 2, "min_samples": 1, "plan_days": 30}


def slow_week_events(path):
    today = datetime.datetime.now(datetime.timezone.utc).date()
    monday = today - datetime.timedelta(days=today.weekday())
    with open(path, "w") as f:
        for weeks_ago in (3, 2, 1):
            day = monday - datetime.timedelta(days=7 * weeks_ago - 2)
            for team in SLOW_TEAMS:
                f.write(json.dumps({"eventId": f"slow-{team}-{day}", "kpi": "deploy_lead_time", "subject": team,
                                    "value": 30, "unit": "hours", "eventTime": f"{day}T12:00:00Z"}) + "\n")
    return len(SLOW_TEAMS) * 3


def series(metrics, prefix):
    return {k: v for k, v in metrics.items() if k.startswith(prefix)}


def settled(members, reference, produced):
    """Scrapes of every member once the group has settled on them: each
    ready and caught up, the partitions split without overlap, and everything
    produced folded (by R too)."""
    ref = reference.metrics()
    if harness.events_total(ref) != produced:
        return None
    scrapes = {}
    owned = {}
    for name, okrd in members.items():
        if not okrd.ready():
            return None
        m = okrd.metrics()
        mine = {k for k, v in series(m, "okrd_partition_owned{").items() if v == 1}
        if any(v != 1 for v in series(m, "okrd_partition_caught_up{").values()):
            return None
        if any(v != 0 for v in series(m, "okrd_consumer_lag_messages{").values()):
            return None
        for k in mine:
            if k in owned:
                return None  # still moving
            owned[k] = name
        scrapes[name] = m
    if len(owned) != PARTITIONS:
        return None
    return scrapes, ref


def check_exactly_once(scrapes, ref, prefixes):
    """Every series of R with these prefixes is exported by exactly one
    member, with R's value; members export nothing R does not."""
    for prefix in prefixes:
        want = series(ref, prefix)
        seen = {}
        for name, m in scrapes.items():
            for key, value in series(m, prefix).items():
                assert key not in seen, f"{key} exported by {seen[key]} and {name}"
                seen[key] = name
                assert key in want, f"{name} exports {key}, which the reference does not"
                assert abs(value - want[key]) < 1e-9, f"{name}: {key} = {value}, reference {want[key]} (stale?)"
        missing = set(want) - set(seen)
        assert not missing, f"no member exports {sorted(missing)[:5]} ({len(missing)} in all)"
        log(f"  {len(want)} {prefix.rstrip('{')} series: each once, exact")


def check_key_results(scrapes, ref, example):
    """Key results with data: once, exact. Without data: nowhere, as no
    member can tell which partition their data would come on; but a key
    result on a derived KPI whose first input has data belongs to that
    input's partition, value or not (a change without its reference period
    has none)."""
    with_data = {k.split(",key_result=")[1].split("}")[0]
                 for k in series(ref, "okr_key_result_value{")}
    kpis = {k["id"]: k for k in example["kpis"]}
    for o in example["objectives"]:
        for kr in o["key_results"]:
            kpi = kpis[kr["kpi"]]
            while "ratio" in kpi or "change" in kpi:
                d = kpi.get("ratio") or kpi.get("change")
                kpi = kpis[d.get("numerator") or d.get("of")]
            if f'okr_kpi_last_event_timestamp_seconds{{kpi="{kpi["id"]}",subject="{kr["subject"]}"}}' in ref:
                with_data.add(f'"{kr["id"]}"')
    prefix = "okr_key_result_progress_ratio{"
    want = {k: v for k, v in series(ref, prefix).items()
            if k.split(",key_result=")[1].split("}")[0] in with_data}
    seen = {}
    for name, m in scrapes.items():
        for key, value in series(m, prefix).items():
            assert key in want, f"{name} exports {key} without data"
            assert key not in seen, f"{key} exported by {seen[key]} and {name}"
            seen[key] = name
            assert abs(value - want[key]) < 1e-9, (name, key, value, want[key])
    assert set(seen) == set(want), (sorted(seen), sorted(want))
    log(f"  {len(want)} key results with data: each once, exact")


def check_prometheus(prometheus, members, ref):
    """The shipped recording rules over what Prometheus scraped from the
    members equal the reference."""
    targets = {f"127.0.0.1:{okrd.port}" for okrd in members.values()}
    objectives = series(ref, "okr_objective_progress_ratio{")
    want_total = {k: v for k, v in series(ref, "okrd_events_total{").items()}
    want_transitions = sum(series(ref, "okr_pip_transitions_total{").values())
    assert want_transitions >= 2 * len(SLOW_TEAMS), want_transitions

    def agree():
        up = {r["metric"]["instance"] for r in prometheus.query('up{job="okrd"} == 1')}
        if not targets <= up:
            return None
        got = {}
        for r in prometheus.query("objective:okr_objective_progress_ratio:sum"):
            got[f'okr_objective_progress_ratio{{objective="{r["metric"]["objective"]}"}}'] = float(r["value"][1])
        if set(got) != set(objectives) or any(abs(got[k] - objectives[k]) > 1e-9 for k in got):
            return None
        totals = {}
        for r in prometheus.query("outcome_reason:okrd_partition_events_total:sum"):
            metric = r["metric"]
            totals[f'okrd_events_total{{outcome="{metric["outcome"]}",reason="{metric.get("reason", "")}"}}'] = \
                float(r["value"][1])
        if totals != want_total:
            return None
        transitions = prometheus.value(
            "sum(okr_pip_transitions_total and on (instance) (up == 1))") or 0
        if transitions != want_transitions:
            return None
        return got, totals

    got, totals = wait_for("recording rules equal to the reference", agree, timeout=60, interval=1)
    log(f"  prometheus: {len(got)} objectives' progress, totals {totals} and "
        f"{want_transitions:.0f} transitions equal the reference")


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    harness.require("promtool", "prometheus")
    work = harness.tempdir("okrd-scale-out-")
    broker = harness.Broker(a.okrctl, PARTITIONS, ["kpi-events", "kpi-events-dlq"])
    with open(os.path.join(a.source_dir, "config/example.yaml")) as f:
        example = yaml.safe_load(f)

    ports = {name: harness.free_port() for name in "ABCDR"}

    def config_for(name):
        config = yaml.safe_load(yaml.safe_dump(example))
        config["kafka"]["brokers"] = broker.bootstrap
        config["kafka"]["group_id"] = "okrd-reference" if name == "R" else "okrd-scale"
        config["kafka"].setdefault("properties", {}).update(
            {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"})
        config["kafka"]["batch_max_wait"] = "20ms"
        config["storage"]["path"] = os.path.join(work, f"data-{name}")
        config["http"]["listen"] = f"127.0.0.1:{ports[name]}"
        config["projection"] = {"tick_interval": "1s"}
        config["pip_policies"] = config.get("pip_policies", []) + [SLOW_POLICY]
        path = os.path.join(work, f"okrd-{name}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        return path

    def start(name):
        return harness.Okrd(a.okrd, config_for(name), os.path.join(work, f"okrd-{name}.log"))

    produced = 0

    def produce(count, seed):
        nonlocal produced
        args = [a.okrctl, "produce", "--brokers", broker.bootstrap, "--topic", "kpi-events",
                "--config", os.path.join(a.source_dir, "config/example.yaml"),
                "--count", str(count), "--seed", str(seed)]
        for s in KR_SUBJECTS + TEAMS:
            args += ["--subject", s]
        subprocess.run(args, check=True, capture_output=True, timeout=120)
        produced += count
        log(f"produced {count} events (seed {seed}), {produced} in all")

    members = {}
    prometheus = None
    reference = None
    try:
        reference = start("R")
        for name in "ABC":
            members[name] = start(name)
        prometheus = harness.Prometheus(
            work, [f"127.0.0.1:{ports[n]}" for n in "ABCD"],
            [os.path.join(a.source_dir, "deploy/prometheus/rules/okrd-recording.yml")])

        def check(phase):
            log(f"{phase}: waiting for the group to settle")
            scrapes, ref = wait_for(f"settled ({phase})", lambda: settled(members, reference, produced),
                                    timeout=120, interval=0.5)
            owned = {n: sorted(k.split('partition="')[1].rstrip('"}')
                               for k, v in series(m, "okrd_partition_owned{").items() if v == 1)
                     for n, m in scrapes.items()}
            log(f"{phase}: settled, partitions {owned}")
            check_exactly_once(scrapes, ref, ["okr_kpi_value{", "okr_kpi_last_event_timestamp_seconds{",
                                              "okr_pip_state{", "okr_pip_breach_streak_periods{"])
            check_key_results(scrapes, ref, example)
            check_prometheus(prometheus, members, ref)

        slow = os.path.join(work, "slow.jsonl")
        count = slow_week_events(slow)
        subprocess.run([a.okrctl, "produce", "--brokers", broker.bootstrap, "--topic", "kpi-events",
                        "--file", slow], check=True, capture_output=True, timeout=120)
        produced += count
        produce(3000, 1)
        check("first settle")

        members["C"].kill9()
        del members["C"]
        produce(2000, 2)
        check("after kill -9 of C")

        # C comes back on its own log, which is stale for every partition
        # A and B consumed meanwhile.
        members["C"] = start("C")
        # Rebuilt from its log but owning nothing yet: no business series.
        early = wait_for("C serving", lambda: harness.business_text(members["C"].get("/metrics")[1]) or None,
                         timeout=30)
        assert "okr_kpi_value{" not in early and "okr_pip_state{" not in early, early[:2000]
        log("C restarted: exports none of its stale log before it owns and has caught up")
        produce(1000, 3)
        check("after C restarts")

        members["D"] = start("D")
        produce(1000, 4)
        check("after D joins")

        assert members["D"].terminate() == 0
        del members["D"]
        produce(500, 5)
        check("after D leaves")

        # A log that holds everything R holds counts each message once.
        conflicts = sum(m.get("okrd_subject_partition_conflicts_total", 0)
                        for m in (o.metrics() for o in members.values()))
        assert conflicts == 0, conflicts
        for name, okrd in list(members.items()):
            assert okrd.terminate() == 0, okrd.tail()
            del members[name]
        assert reference.terminate() == 0
        log("scale-out: one answer through every rebalance")
        return 0
    except BaseException:
        for name, okrd in members.items():
            log(f"okrd {name} log tail:\n{okrd.tail(15)}")
        raise
    finally:
        for okrd in list(members.values()) + [reference]:
            if okrd is not None and okrd.proc.poll() is None:
                okrd.kill9()
        if prometheus is not None:
            prometheus.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
