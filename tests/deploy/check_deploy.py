"""Checks the deploy kit with what can run here: promtool on the Prometheus
config and rules (and the rules' unit tests), amtool on the Alertmanager
config, YAML and JSON parsing of every
file, the dashboard's uid and variables, `systemd-analyze verify` of the unit,
and that every okrd metric the rules and the dashboard use is one okrd
exports."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402


def run(args, cwd=None):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    src = a.source_dir
    deploy = os.path.join(src, "deploy")

    rules = sorted(glob.glob(os.path.join(deploy, "prometheus/rules/*.yml")))
    run(["promtool", "check", "config", os.path.join(deploy, "prometheus/prometheus.yml")])
    run(["promtool", "check", "rules"] + rules)
    tests_dir = os.path.join(src, "tests/prometheus")
    for t in sorted(glob.glob(os.path.join(tests_dir, "*.test.yml"))):
        run(["promtool", "test", "rules", os.path.basename(t)], cwd=tests_dir)
    print("promtool: config, rules and rule tests pass")
    run(["amtool", "check-config", os.path.join(deploy, "alertmanager/alertmanager.yml")])
    print("amtool check-config: the Alertmanager routing is valid")

    for path in glob.glob(os.path.join(deploy, "**/*.y*ml"), recursive=True):
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f)]
        assert docs and all(d is not None for d in docs), f"{path}: empty YAML document"
    with open(os.path.join(deploy, "grafana/dashboards/okrd.json")) as f:
        dashboard = json.load(f)
    assert dashboard["uid"] == "okrd-overview", dashboard["uid"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"objective", "team", "kpi"} <= variables, variables
    print("YAML and JSON parse; dashboard uid and variables present")

    # Every okrd metric used must be exported: compare against the metric
    # names in the exporter's source.
    with open(os.path.join(src, "src/export/metrics.cc")) as f:
        exported = set(re.findall(r'"(okrd?_[a-z_]+)"', f.read()))
    exprs = []
    for path in rules:
        with open(path) as f:
            for group in yaml.safe_load(f)["groups"]:
                exprs += [r["expr"] for r in group["rules"]]
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    used = set()
    for e in exprs:
        used |= {m for m in re.findall(r"(?<![:\w])(okrd?_[a-z_]+)", e)}
    missing = used - exported
    assert not missing, f"used but not exported by okrd: {sorted(missing)}"
    assert len(used) >= 10, used
    print(f"{len(used)} okrd metrics used by rules and dashboard, all exported")

    if shutil.which("systemd-analyze"):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(deploy, "systemd/okrd.service")) as f:
                unit = f.read().replace("/usr/local/bin/okrd", os.path.abspath(a.okrd))
            path = os.path.join(tmp, "okrd.service")
            with open(path, "w") as f:
                f.write(unit)
            run(["systemd-analyze", "verify", path])
        print("systemd-analyze verify: unit is valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
