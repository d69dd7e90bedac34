"""okrd stopped (SIGTERM) within its first seconds, while its consumer is
joining the group, exits cleanly with 0. librdkafka 2.0.2 (Debian 12) aborts
when a cooperative-sticky consumer is closed after joining and before its
first assignment; okrd waits for that assignment before closing. Before the
wait, about one early stop in ten ended in SIGABRT (5 of 50)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log  # noqa: E402

STOPS = 10


def main():
    a = harness.arguments().parse_args()
    work = harness.tempdir("okrd-early-stop-")
    cluster = harness.Cluster(a.okrctl, 4, ["kpi-events"])
    config = harness.example_config(a.source_dir, cluster.bootstrap, work)
    with cluster:
        for i in range(STOPS):
            # Spread over the join: from at once to 1.35 s after serving.
            delay = (i % 10) * 0.15
            okrd = harness.Okrd(a.okrd, config, os.path.join(work, "okrd.log"))
            cluster.okrd = okrd
            time.sleep(delay)
            started = time.time()
            code = okrd.terminate()
            assert code == 0, f"stop {i} after {delay:.2f}s exited {code}; log:\n{okrd.tail()}"
            log(f"stop {i} after {delay:.2f}s: exit 0 in {time.time() - started:.2f}s")
    log(f"{STOPS} stops during start-up, each exit 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
