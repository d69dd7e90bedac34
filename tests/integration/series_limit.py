"""export.max_series: events that would open KPI series beyond the cap are
rejected as series_limit (counted, kept in the rejected log, logged once per
KPI), while subjects already tracked keep being accepted and the scrape
never holds more KPI series than the cap."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

# Five series per KPI and subject: a cap of 12 admits two pairs.
KPIS = """  - id: orders
    aggregation: sum
    period: month
  - id: visits
    aggregation: count
    period: month
export:
  max_series: 12
"""


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    work = harness.tempdir("okrd-series-limit-")
    cluster = harness.Cluster(a.okrctl, 2, ["kpi-events", "kpi-events-dlq"])
    broker = cluster.broker
    config = os.path.join(work, "okrd.yaml")
    data = os.path.join(work, "data")
    harness.write_config(config, broker.bootstrap, data, KPIS)
    okrd = cluster.start(a.okrd, config, os.path.join(work, "okrd.log"))
    t = harness.event_time_now()
    sent = 0

    def send(*events):
        nonlocal sent
        harness.produce(a.okrctl, broker.bootstrap, os.path.join(work, "events.jsonl"), [
            {"eventId": f"e-{sent + i + 1}", "kpi": kpi, "subject": subject, "value": value, "eventTime": t}
            for i, (kpi, subject, value) in enumerate(events)])
        sent += len(events)

    def counted(outcome, reason=""):
        return okrd.metrics().get(f'okrd_events_total{{outcome="{outcome}",reason="{reason}"}}', 0)

    with cluster:
        wait_for("okrd ready", okrd.ready, timeout=60)
        # One at a time, so the second is admitted after the first is folded.
        send(("orders", "shop-a", 5))
        wait_for("one series accepted", lambda: counted("accepted") == 1, timeout=30)
        send(("orders", "shop-b", 7))
        wait_for("two series accepted", lambda: counted("accepted") == 2, timeout=30)
        # Four events would open four more pairs; two more for known pairs.
        send(("orders", "shop-c", 1), ("visits", "shop-a", 1), ("orders", "shop-d", 1),
             ("visits", "shop-e", 1), ("orders", "shop-a", 10), ("orders", "shop-b", 1))
        wait_for("limit applied", lambda: counted("rejected", "series_limit") == 4, timeout=30)
        wait_for("known series still accepted", lambda: counted("accepted") == 4, timeout=30)
        metrics = okrd.metrics()
        kpi_series = [k for k in metrics if k.startswith("okr_kpi_")]
        assert len(kpi_series) <= 12, kpi_series
        assert metrics['okr_kpi_value{kpi="orders",subject="shop-a",period="current"}'] == 15
        assert metrics['okr_kpi_value{kpi="orders",subject="shop-b",period="current"}'] == 8
        assert not any("shop-c" in k or "shop-e" in k or 'kpi="visits"' in k for k in kpi_series), kpi_series

        # The running okrd holds the log; the rejected log is read after stop.
        assert okrd.terminate() == 0
        rejected = subprocess.run([a.okrctl, "log", "rejected", "--data-dir", data, "--json"],
                                  capture_output=True, text=True, timeout=30, check=True).stdout
        reasons = [json.loads(line)["reason"] for line in rejected.splitlines() if line.strip()]
        assert reasons.count("series_limit") == 4, rejected
        with open(okrd.log_path) as f:
            lines = [line for line in f if "export.max_series (12) reached" in line]
        assert len(lines) == 2, lines  # once per KPI: orders, visits
        log("series beyond export.max_series rejected as series_limit, logged once per KPI")
        return 0


if __name__ == "__main__":
    sys.exit(main())
