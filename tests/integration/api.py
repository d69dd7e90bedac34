"""The JSON API (/api/v1/...) answers what /metrics shows at the same log
sequence, and what `okrctl replay --format json --until-seq` gives for it;
filters narrow it, bad requests get 400 or 404 with a JSON reason."""

import datetime
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

CONFIG = harness.LEAD_TIME_KPI + """objectives:
  - id: delivery
    title: Ship faster
    start: 2026-01-01
    end: 2027-12-31
    key_results:
      - {id: platform-fast, kpi: lead_time, subject: platform, direction: at_most, target: 20}
      - {id: payments-fast, kpi: lead_time, subject: payments, direction: at_most, target: 20}
""" + harness.SLOW_DEPLOYS_POLICY
TEAMS = ["platform", "payments"]


def request(port, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def consistent(okrd):
    """Every resource and a scrape taken at one sequence (ticks may move it
    between requests: taken again until they agree)."""
    def attempt():
        before = okrd.metrics()
        answers = {}
        for resource in ["objectives", "key_results", "kpis", "pips"]:
            status, kind, body = request(okrd.port, f"/api/v1/{resource}")
            assert status == 200 and kind == "application/json", (resource, status, kind, body)
            answers[resource] = json.loads(body)
        after = okrd.metrics()
        sequence = before["okrd_projection_sequence"]
        if after["okrd_projection_sequence"] != sequence or \
                any(answer["sequence"] != str(int(sequence)) for answer in answers.values()):
            return None
        return before, answers
    return wait_for("API answers and a scrape at one sequence", attempt, timeout=60, interval=0.2)


def main():
    a = harness.arguments().parse_args()
    work = harness.tempdir("okrd-api-")
    cluster = harness.Cluster(a.okrctl, 2, ["kpi-events", "kpi-events-dlq"])
    config = os.path.join(work, "okrd.yaml")
    data = os.path.join(work, "data")
    harness.write_config(config, cluster.bootstrap, data, CONFIG)
    okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))

    # Four closed ISO weeks per team, slow twice (a plan is triggered), then
    # fast, then slow again; and this week's measurement.
    today = datetime.datetime.now(datetime.timezone.utc).date()
    monday = today - datetime.timedelta(days=today.weekday())
    events = []
    for k, value in zip([4, 3, 2, 1, 0], [30, 31, 10, 28, 12]):
        day = monday - datetime.timedelta(days=7 * k - 2) if k else today
        for team in TEAMS:
            events.append(json.dumps({"eventId": f"{team}-{day}", "kpi": "lead_time", "subject": team,
                                      "value": value + (1 if team == "payments" else 0),
                                      "eventTime": f"{day}T00:00:00Z"}))
    path = os.path.join(work, "events.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(events) + "\n")

    with cluster:
        wait_for("okrd ready", okrd.ready, timeout=60)
        harness.produce(a.okrctl, cluster.bootstrap, path)
        wait_for("events folded", lambda: harness.events_total(okrd.metrics()) == len(events), timeout=60)
        wait_for("plans triggered", lambda: sum(
            v for k, v in okrd.metrics().items()
            if k.startswith('okr_pip_transitions_total{policy="slow-deploys",to="triggered"')) == 2, timeout=60)

        m, answers = consistent(okrd)
        sequence = int(m["okrd_projection_sequence"])
        kpis = {f'okr_kpi_value{{kpi="{s["kpi"]}",subject="{s["subject"]}",period="{s["period"]}"}}': s["value"]
                for s in answers["kpis"]["kpis"]}
        assert kpis == {k: v for k, v in m.items() if k.startswith("okr_kpi_value{")}, (kpis, m)
        objectives = {f'okr_objective_progress_ratio{{objective="{o["objective"]}"}}': o["progress"]
                      for o in answers["objectives"]["objectives"]}
        assert objectives == {k: v for k, v in m.items() if k.startswith("okr_objective_progress_ratio{")}, \
            (objectives, m)
        for kr in answers["key_results"]["key_results"]:
            labels = f'{{objective="{kr["objective"]}",key_result="{kr["key_result"]}"}}'
            assert m["okr_key_result_progress_ratio" + labels] == kr["progress"], (kr, m)
            assert m["okr_key_result_value" + labels] == kr["value"], (kr, m)
            assert m[f'okr_key_result_status{labels[:-1]},status="{kr["status"]}"}}'] == 1, (kr, m)
        assert len(answers["key_results"]["key_results"]) == 2, answers["key_results"]
        pips = answers["pips"]
        assert sorted(p["subject"] for p in pips["pips"]) == sorted(TEAMS), pips
        for p in pips["pips"]:
            labels = f'policy="{p["policy"]}",subject="{p["subject"]}"'
            assert m[f'okr_pip_state{{{labels},state="{p["state"]}"}}'] == 1, (p, m)
            assert m[f"okr_pip_breach_streak_periods{{{labels}}}"] == p["breach_streak_periods"], (p, m)
            assert p["triggered_at"] and p["deadline"], p
        transitions = sum(v for k, v in m.items() if k.startswith("okr_pip_transitions_total{"))
        assert len(pips["pip_transitions"]) == transitions == 10, (pips["pip_transitions"], transitions)
        log(f"/api/v1 objectives, key_results, kpis and pips equal /metrics at sequence {sequence}")

        status, _, body = request(okrd.port, "/api/v1/kpis?kpi=lead_time&subject=platform")
        narrowed = json.loads(body)["kpis"]
        assert status == 200 and narrowed and all(s["subject"] == "platform" for s in narrowed), body
        assert len(narrowed) == sum(1 for s in answers["kpis"]["kpis"] if s["subject"] == "platform"), body
        state = pips["pips"][0]["state"]
        status, _, body = request(okrd.port, f"/api/v1/pips?state={state}")
        assert status == 200 and {p["state"] for p in json.loads(body)["pips"]} == {state}, body
        for path, want, reason in [
                ("/api/v1/pips?state=bogus", 400, 'got "bogus"'),
                ("/api/v1/kpis?nope=1", 400, 'unknown parameter "nope"'),
                ("/api/v1/kpis?kpi=a&kpi=b", 400, 'parameter "kpi" given twice'),
                ("/api/v1/kpis?subject=%ff", 400, "not UTF-8"),
                ("/api/v1/objectives?kpi=x", 400, 'unknown parameter "kpi"'),
                ("/api/v1/nope", 404, "no such resource"),
                ("/api/v1", 404, "no such resource")]:
            status, kind, body = request(okrd.port, path)
            assert status == want and kind == "application/json" and reason in json.loads(body)["error"], \
                (path, status, kind, body)
        assert request(okrd.port, "/api/v1/kpis", "POST")[0] == 405
        log("filters narrow the answers; bad requests get 400/404 with a JSON reason")

        assert okrd.terminate() == 0, okrd.tail()
    replayed = json.loads(subprocess.run(
        [a.okrctl, "replay", "--config", config, "--data-dir", data, "--until-seq", str(sequence),
         "--format", "json"], capture_output=True, text=True, check=True, timeout=120).stdout)
    assert replayed["sequence"] == str(sequence), replayed
    for resource, field in [("objectives", "objectives"), ("key_results", "key_results"), ("kpis", "kpis"),
                            ("pips", "pips"), ("pips", "pip_transitions")]:
        assert replayed[field] == answers[resource][field], (field, replayed[field], answers[resource][field])
    log(f"okrctl replay --format json --until-seq {sequence} gives the same views")
    return 0


if __name__ == "__main__":
    sys.exit(main())
