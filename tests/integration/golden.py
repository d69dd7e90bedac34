"""Golden test: config/example.yaml with a fixed event file, bulk-loaded
with a fixed ingest time, gives the checked-in projections, in Prometheus and
JSON form, however often it is replayed; `--until-seq` stops where asked;
re-importing the same file changes nothing."""

import difflib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log  # noqa: E402

INGEST_TIME = "2026-11-20T12:00:00Z"


def run(*args):
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=120)


def same(name, got, want):
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "got", n=1))
        raise AssertionError(f"{name} differs from the golden file:\n{diff[:4000]}")


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    config = os.path.join(a.source_dir, "config/example.yaml")
    golden = os.path.join(a.source_dir, "tests/golden")
    events = os.path.join(golden, "example-events.jsonl")
    data = os.path.join(harness.tempdir("okrd-golden-"), "data")

    imported = run(a.okrctl, "log", "import", "--config", config, "--data-dir", data, "--file", events,
                   "--ingest-time", INGEST_TIME).stderr
    assert "155 accepted, 1 duplicate, 4 rejected" in imported, imported

    replay = [a.okrctl, "replay", "--config", config, "--data-dir", data]
    with open(os.path.join(golden, "example.prom")) as f:
        same("prometheus output", run(*replay).stdout, f.read())
    with open(os.path.join(golden, "example.json")) as f:
        same("json output", run(*replay, "--format", "json").stdout, f.read())
    log("replay matches tests/golden/example.{prom,json}")

    # Replays are deterministic, and --until at the ingest time is the whole log.
    same("second replay", run(*replay).stdout, run(*replay).stdout)
    same("--until", run(*replay, "--until", INGEST_TIME).stdout, run(*replay).stdout)
    partial = harness.parse_metrics(run(*replay, "--until-seq", "10").stdout)
    assert partial["okrd_projection_sequence"] == 10, partial
    before = harness.parse_metrics(run(*replay, "--until", "2026-11-20T11:59:59Z").stdout)
    assert before["okrd_projection_sequence"] == 0, before

    # Importing the same file again: every event a duplicate, the conflict and
    # the three bad lines rejected again, the projection unchanged.
    again = run(a.okrctl, "log", "import", "--config", config, "--data-dir", data, "--file", events,
                "--ingest-time", INGEST_TIME).stderr
    assert "0 accepted, 156 duplicate, 4 rejected" in again, again
    with open(os.path.join(golden, "example.prom")) as f:
        same("replay after re-import", run(*replay).stdout, f.read())
    log("re-import is idempotent")

    # Each command explains itself, as people ask.
    for args, part in [(["produce", "--help"], "--framing none|confluent"), (["help", "replay"], "--until-seq"),
                       (["log", "verify", "--help"], "log verify")]:
        helped = subprocess.run([a.okrctl, *args], capture_output=True, text=True, timeout=30)
        assert helped.returncode == 0 and part in helped.stdout, (args, helped.returncode, helped.stdout,
                                                                 helped.stderr)
    unknown = subprocess.run([a.okrctl, "help", "nope"], capture_output=True, text=True, timeout=30)
    assert unknown.returncode == 2 and "unknown command" in unknown.stderr, unknown
    log("okrctl COMMAND --help and okrctl help COMMAND print that command's usage")
    return 0


if __name__ == "__main__":
    sys.exit(main())
