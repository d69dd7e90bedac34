"""The status page at GET /, as a browser sees it: okrd runs the example
config over the golden event file; headless Chromium (Debian's package)
loads the page and dumps the DOM it built; the test checks that every
objective of the config is in the tree with its key results, that progress
and values equal what /metrics serves, that the open PIP trigger and the
daemon's health are shown, and saves a screenshot as a test artifact."""

import os
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser

import yaml

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402


class Dom(HTMLParser):
    """Collects what the checks read: objectives with data-progress, key
    result rows with their value cell, PIP rows, and text by element id."""

    def __init__(self):
        super().__init__()
        self.objectives = {}  # id -> progress
        self.key_results = {}  # id -> value text
        self.pips = []  # [cells]
        self.plans = []  # text of each open plan's row
        self._plan = None
        self.by_id = {}
        self._objective = None
        self._kr = None
        self._cell = None  # (kind, key)
        self._pip = None
        self._text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "li" and "data-objective" in a:
            self._objective = a["data-objective"]
        if tag == "span" and "data-progress" in a and self._objective is not None:
            self.objectives[self._objective] = float(a["data-progress"])
            self._objective = None
        if tag == "tr" and "data-key-result" in a:
            self._kr = a["data-key-result"]
        if tag == "td" and self._kr is not None and "value" in a.get("class", "").split():
            self._cell, self._text = ("kr", self._kr), []
        if tag == "tr" and a.get("class") == "pip":
            self._pip = []
        if tag == "tr" and a.get("class") == "plan":
            self._plan = []
        if tag == "td" and self._pip is not None:
            self._cell, self._text = ("pip", None), []
        if "id" in a:
            self._cell, self._text = ("id", a["id"]), []

    def handle_data(self, data):
        if self._plan is not None:
            self._plan.append(data)
        if self._cell is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if self._cell is None or tag not in ("td", "span"):
            if tag == "tr":
                if self._pip is not None:
                    self.pips.append(self._pip)
                if self._plan is not None:
                    self.plans.append(" ".join("".join(self._plan).split()))
                self._pip = None
                self._plan = None
                self._kr = None
            return
        kind, key = self._cell
        text = "".join(self._text).strip()
        if kind == "kr":
            self.key_results[key] = text
            self._kr = None
        elif kind == "pip":
            self._pip.append(text)
        else:
            self.by_id[key] = text
        self._cell = None


def chromium(*args):
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-dev-shm-usage", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    harness.require("chromium")
    work = harness.tempdir("okrd-status-page-")
    artifacts = a.artifacts or work
    os.makedirs(artifacts, exist_ok=True)
    data = os.path.join(work, "data")
    example = os.path.join(a.source_dir, "config/example.yaml")
    subprocess.run([a.okrctl, "log", "import", "--config", example, "--data-dir", data, "--file",
                    os.path.join(a.source_dir, "tests/golden/example-events.jsonl"),
                    "--ingest-time", "2026-11-20T12:00:00Z"], check=True, capture_output=True, timeout=60)
    with open(example) as f:
        config = yaml.safe_load(f)

    cluster = harness.Cluster(a.okrctl, 1, ["kpi-events", "kpi-events-dlq"])
    config["kafka"]["brokers"] = cluster.bootstrap
    config["kafka"].setdefault("properties", {}).update(
        {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"})
    config["storage"]["path"] = data
    config["http"]["listen"] = "127.0.0.1:0"
    config_path = os.path.join(work, "okrd.yaml")
    with open(config_path, "w") as f:
        yaml.safe_dump(config, f)
    okrd = cluster.start(a.okrd, config_path, os.path.join(work, "okrd.log"))

    with cluster:
        wait_for("okrd ready", okrd.ready, timeout=60)
        url = f"http://127.0.0.1:{okrd.port}/"
        before = okrd.metrics()
        dumped = chromium("--dump-dom", url)
        after = okrd.metrics()
        assert dumped.returncode == 0 and "<html" in dumped.stdout, dumped.stderr[-2000:]
        dom = Dom()
        dom.feed(dumped.stdout)

        objectives = [o["id"] for o in config["objectives"]]
        assert sorted(dom.objectives) == sorted(objectives), dom.objectives
        for o in objectives:
            served = after[f'okr_objective_progress_ratio{{objective="{o}"}}']
            assert abs(dom.objectives[o] - served) < 1e-5, (o, dom.objectives[o], served)
        key_results = [(o["id"], kr["id"]) for o in config["objectives"] for kr in o.get("key_results", [])]
        assert sorted(dom.key_results) == sorted(kr for _, kr in key_results), dom.key_results
        for objective, kr in key_results:
            served = after.get(f'okr_key_result_value{{objective="{objective}",key_result="{kr}"}}')
            shown = dom.key_results[kr]
            if served is None:
                assert shown == "\u2013", (kr, shown)
            else:
                assert abs(float(shown) - served) <= 1e-5 * max(1, abs(served)), (kr, shown, served)
        triggered = sorted(k for k, v in after.items() if k.startswith("okr_pip_state{") and
                           'state="triggered"' in k and v == 1)
        assert len(dom.pips) == len(triggered) >= 1, (dom.pips, triggered)
        assert ["lead-time-above-target", "platform"] == dom.pips[0][:2], dom.pips
        # The open plan: its next check-in as /metrics has it, its actions
        # and its milestones with their status.
        labels = 'policy="lead-time-above-target",subject="platform"'
        next_checkin = after[f"okr_pip_next_checkin_timestamp_seconds{{{labels}}}"]
        assert dom.pips[0][4] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(next_checkin)), dom.pips
        assert dom.pips[0][5] == str(int(after[f"okr_pip_checkins_overdue{{{labels}}}"])), dom.pips
        policy = next(p for p in config["pip_policies"] if p["id"] == "lead-time-above-target")
        assert len(dom.plans) == len(dom.pips) and policy["actions"], dom.plans
        for action in policy["actions"]:
            assert f'{action["title"]} ({action["kind"]})' in dom.plans[0], (action, dom.plans)
        for milestone in policy["milestones"]:
            status = next(k.split('status="')[1].rstrip('"}') for k, v in after.items()
                          if k.startswith(f'okr_pip_milestone_status{{{labels},milestone="{milestone["id"]}"')
                          and v == 1)
            assert f'{milestone["id"]}: at most {milestone["threshold"]:g} {status}' in dom.plans[0], (
                milestone, status, dom.plans)
        assert before["okrd_eventlog_last_sequence"] <= int(dom.by_id["last-sequence"]) <= \
            after["okrd_eventlog_last_sequence"], dom.by_id
        rejected = sum(v for k, v in after.items() if k.startswith('okrd_events_total{outcome="rejected"'))
        assert int(dom.by_id["rejected"]) == rejected, (dom.by_id, rejected)
        log(f"Chromium's DOM shows {len(objectives)} objectives, {len(key_results)} key results, "
            f"{len(dom.pips)} open PIP trigger and the daemon's health, matching /metrics")

        shot = os.path.join(work, "status-page.png")
        taken = chromium("--window-size=1280,1600", f"--screenshot={shot}", url)
        assert taken.returncode == 0 and os.path.getsize(shot) > 10000, taken.stderr[-2000:]
        shutil.copy(shot, os.path.join(artifacts, "status-page.png"))
        log(f"screenshot: {os.path.join(artifacts, 'status-page.png')}")
        assert okrd.terminate() == 0
        return 0


if __name__ == "__main__":
    sys.exit(main())
