"""Shared pieces of okrd's end-to-end tests: a broker process, okrd processes,
scraping, waiting on conditions with deadlines. 127.0.0.1 only."""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

SKIP = 77


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def require(*commands):
    for c in commands:
        if shutil.which(c) is None:
            log(f"skipping: {c} is not installed (run tools/setup)")
            sys.exit(SKIP)


def wait_for(what, condition, timeout=60.0, interval=0.1):
    """Polls `condition` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def event_time_now():
    """An RFC 3339 event time inside the current UTC month and not in the
    future: ten minutes ago, clipped to the month's start."""
    now = datetime.datetime.now(datetime.timezone.utc)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    t = max(month_start, now - datetime.timedelta(minutes=10))
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Broker:
    """`okrctl broker` as its own process."""

    def __init__(self, okrctl, partitions, topics):
        args = [okrctl, "broker", "--partitions", str(partitions)]
        for t in topics:
            args += ["--topic", t]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        m = re.match(r"bootstrap: (\S+)$", line)
        if not m:
            raise AssertionError(f"okrctl broker printed {line!r}")
        self.bootstrap = m.group(1)
        log(f"broker at {self.bootstrap}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def arguments(description=None):
    """The command line every end-to-end test takes from CTest; callers may
    add their own arguments before parse_args()."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--okrd", required=True)
    ap.add_argument("--okrctl", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--artifacts", default=None, help="where tests leave files for inspection")
    return ap


class Cluster:
    """`okrctl broker` plus the okrd under test. As a context manager it
    prints okrd's log on failure and stops everything it started."""

    def __init__(self, okrctl, partitions, topics):
        self.broker = Broker(okrctl, partitions, topics)
        self.bootstrap = self.broker.bootstrap
        self.okrd = None
        self._deferred = []

    def start(self, okrd_bin, config, log_path):
        self.okrd = Okrd(okrd_bin, config, log_path)
        return self.okrd

    def defer(self, fn):
        """Runs `fn` when the cluster closes, before okrd and the broker stop."""
        self._deferred.append(fn)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.okrd is not None:
            log("okrd log tail:\n" + self.okrd.tail())
        for fn in reversed(self._deferred):
            fn()
        if self.okrd is not None and self.okrd.proc.poll() is None:
            self.okrd.kill9()
        self.broker.stop()
        return False


def produce(okrctl, bootstrap, path, events=None, topic="kpi-events"):
    """`okrctl produce` of the JSON-lines file `path`; with `events` (dicts),
    writes them there first."""
    if events is not None:
        with open(path, "w") as f:
            f.write("".join(json.dumps(e) + "\n" for e in events))
    subprocess.run([okrctl, "produce", "--brokers", bootstrap, "--topic", topic, "--file", path],
                   check=True, capture_output=True, timeout=120)


def replay_business(okrctl, config, data_dir, sequence):
    """`okrctl replay` up to `sequence`: the business series as text."""
    return subprocess.run([okrctl, "replay", "--config", config, "--data-dir", data_dir,
                           "--until-seq", str(sequence)], capture_output=True, text=True,
                          check=True, timeout=120).stdout


# A weekly mean lead time, and a PIP policy on it that triggers after two
# slow weeks (above 24) and recovers below 18, for the PIP tests; its plan
# has one action, one milestone (22 by day 7) and a weekly check-in.
LEAD_TIME_KPI = """  - id: lead_time
    aggregation: mean
    period: week
"""
SLOW_DEPLOYS_POLICY = """pip_policies:
  - id: slow-deploys
    kpi: lead_time
    comparator: above
    trigger: 24
    recovery: 18
    consecutive_periods: 2
    cooldown_periods: 0
    plan_days: 30
    milestones:
      - {id: under-22h, day: 7, threshold: 22}
    actions:
      - {id: pairing, title: "Pair with a release engineer", kind: mentoring, due_day: 7}
    checkin_every: 7d
"""


# One monthly sum KPI, for tests that only count events.
ORDERS_KPI = """  - id: orders
    aggregation: sum
    period: month
"""


def write_config(path, bootstrap, data_dir, kpis_yaml, extra_kafka="", extra_storage=""):
    with open(path, "w") as f:
        f.write(f"""kafka:
  brokers: "{bootstrap}"
  topics: [kpi-events]
  dlq_topic: kpi-events-dlq
  group_id: okrd-test
  batch_max_wait: 20ms
  properties:
    session.timeout.ms: "6000"
    heartbeat.interval.ms: "500"
{extra_kafka}
storage:
  path: {data_dir}
{extra_storage}
http:
  listen: 127.0.0.1:0
kpis:
{kpis_yaml}
""")


def example_config(source_dir, bootstrap, work, edit=None):
    """Writes config/example.yaml, pointed at `bootstrap`, a data directory in
    `work` and a free port, to `work`/okrd.yaml; `edit(settings)` may change
    more first. Returns the file's path."""
    with open(os.path.join(source_dir, "config/example.yaml")) as f:
        settings = yaml.safe_load(f)
    settings["kafka"]["brokers"] = bootstrap
    settings["storage"]["path"] = os.path.join(work, "data")
    settings["http"]["listen"] = "127.0.0.1:0"
    if edit is not None:
        edit(settings)
    path = os.path.join(work, "okrd.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(settings, f)
    return path


class Okrd:
    """One okrd process; its HTTP port is read from its log."""

    def __init__(self, okrd, config, log_path, extra_args=()):
        self.log_path = log_path
        # Earlier runs may have logged to the same file: read only this run's lines.
        self.log_start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        self.log_file = open(log_path, "a")
        self.proc = subprocess.Popen([okrd, "--config", config, *extra_args], stdout=self.log_file,
                                     stderr=self.log_file)
        self.port = wait_for("okrd http port", self._port, timeout=30)

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"okrd exited with {self.proc.returncode}; log:\n{self.tail()}")
        with open(self.log_path) as f:
            f.seek(self.log_start)
            ports = re.findall(r"serving https?://\S+ \(port (\d+)", f.read())
        return int(ports[-1]) if ports else None

    def tail(self, n=30):
        with open(self.log_path) as f:
            return "".join(f.readlines()[-n:])

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    def ready(self):
        try:
            return self.get("/readyz")[0] == 200
        except Exception:
            return False

    def metrics(self):
        return parse_metrics(self.get("/metrics")[1])

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log_file.close()

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log_file.close()
        return code


def parse_metrics(text):
    """{'name{labels}': value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def owns_partitions(okrd):
    """Whether the consumer group has assigned okrd a partition."""
    try:
        return any(v == 1 for k, v in okrd.metrics().items() if k.startswith("okrd_partition_owned{"))
    except Exception:
        return False


def events_total(metrics):
    return sum(v for k, v in metrics.items() if k.startswith("okrd_events_total{"))


def business(metrics):
    """The okr_kpi_value series and the event counters that moved (the rest
    are exported at 0): what must survive."""
    return {k: v for k, v in metrics.items()
            if k.startswith("okr_kpi_value{") or (k.startswith("okrd_events_total{") and v)}


def business_text(exposition):
    """The lines of the business families (okr_*) and okrd_projection_sequence,
    HELP and TYPE included, in their order."""
    keep = []
    for line in exposition.splitlines(True):
        name = line.split(" ")[2] if line.startswith("# ") else re.split(r"[{ ]", line, 1)[0]
        if name.startswith("okr_") or name == "okrd_projection_sequence":
            keep.append(line)
    return "".join(keep)


def tempdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """Debian's prometheus scraping `targets` (host:port) every second as job
    okrd, with `rules` loaded, sending alerts to `alertmanager` (host:port)
    when given."""

    def __init__(self, work, targets, rules, alertmanager=None):
        self.port = free_port()
        config = os.path.join(work, "prometheus.yml")
        settings = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": rules,
            "scrape_configs": [{"job_name": "okrd", "static_configs": [{"targets": list(targets)}]}],
        }
        if alertmanager is not None:
            settings["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        with open(config, "w") as f:
            yaml.safe_dump(settings, f)
        self.log_path = os.path.join(work, "prometheus.log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work}/tsdb",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log_file, stderr=self.log_file)
        wait_for("prometheus ready", self.ready, timeout=60, interval=0.5)
        log(f"prometheus at 127.0.0.1:{self.port}")

    def ready(self):
        if self.proc.poll() is not None:
            with open(self.log_path) as f:
                raise AssertionError(f"prometheus exited:\n{f.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def value(self, expr):
        result = self.query(expr)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log_file.close()
