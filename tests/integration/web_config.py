"""--web.config.file (Prometheus exporter-toolkit format) on a running okrd:
TLS with the configured certificate and HTTP basic auth with bcrypt hashes,
checked with curl; a client certificate when one is required; and a bad web
config is one clear error line with exit code 2."""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import log, wait_for  # noqa: E402

KPIS = """  - id: orders
    aggregation: sum
    period: month
"""
# bcrypt (cost 5) of "s3cret".
HASH = "$2b$05$LZzM133rkoheZNi8uWrDQOCSdBDAjAbETu45YXlXCEQ9oeOYajQXm"


def curl(*args):
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", *args],
                       capture_output=True, text=True, timeout=30)
    return r.stdout.strip() if r.returncode == 0 else f"curl exit {r.returncode}: {r.stderr.strip()}"


def main():
    ap = harness.arguments()
    a = ap.parse_args()
    harness.require("curl")
    work = harness.tempdir("okrd-web-config-")
    tls = os.path.join(work, "tls")
    shutil.copytree(os.path.join(a.source_dir, "tests/testdata/tls"), tls)
    web = os.path.join(tls, "web.yml")

    def write_web(text):
        with open(web, "w") as f:
            f.write(text)

    cluster = harness.Cluster(a.okrctl, 1, ["kpi-events", "kpi-events-dlq"])
    config = os.path.join(work, "okrd.yaml")
    harness.write_config(config, cluster.bootstrap, os.path.join(work, "data"), KPIS)
    with cluster:
        # A relative cert_file resolves against the web config's directory.
        write_web(f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                  f"basic_auth_users:\n  alice: '{HASH}'\n")
        okrd = harness.Okrd(a.okrd, config, os.path.join(work, "okrd.log"), ["--web.config.file", web])
        cluster.okrd = okrd
        url = f"https://127.0.0.1:{okrd.port}"
        ca = os.path.join(tls, "server.crt")
        wait_for("okrd serving TLS", lambda: curl("--cacert", ca, "-u", "alice:s3cret", f"{url}/healthz") == "200",
                 timeout=30)
        assert curl("--cacert", ca, "-u", "alice:s3cret", f"{url}/metrics") == "200"
        assert curl("--cacert", ca, f"{url}/metrics") == "401"
        assert curl("--cacert", ca, "-u", "alice:wrong", f"{url}/metrics") == "401"
        # The JSON API sits behind the same TLS and password.
        assert curl("--cacert", ca, "-u", "alice:s3cret", f"{url}/api/v1/objectives") == "200"
        assert curl("--cacert", ca, f"{url}/api/v1/kpis?kpi=x") == "401"
        assert curl("--cacert", ca, "-u", "alice:s3cret", f"{url}/") == "200"
        # Plain HTTP on the TLS port gets no metrics; a client not trusting
        # the certificate refuses it.
        assert curl(f"http://127.0.0.1:{okrd.port}/metrics") != "200"
        assert curl("-u", "alice:s3cret", f"{url}/metrics").startswith("curl exit 60")
        assert okrd.terminate() == 0
        log("TLS and basic auth from the web config: 200 with the password, 401 without or wrong, "
            "/metrics and /api/v1 alike")

        # A client certificate required and verified against client_ca_file.
        write_web("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                  "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: other.crt\n")
        okrd = harness.Okrd(a.okrd, config, os.path.join(work, "okrd.log"), ["--web.config.file", web])
        cluster.okrd = okrd
        url = f"https://127.0.0.1:{okrd.port}"
        client = ["--cert", os.path.join(tls, "other.crt"), "--key", os.path.join(tls, "other.key")]
        wait_for("okrd serving mutual TLS", lambda: curl("--cacert", ca, *client, f"{url}/metrics") == "200",
                 timeout=30)
        assert curl("--cacert", ca, f"{url}/metrics") != "200"
        wrong = ["--cert", ca, "--key", os.path.join(tls, "server.key")]  # not signed by other.crt
        assert curl("--cacert", ca, *wrong, f"{url}/metrics") != "200"
        assert okrd.terminate() == 0
        log("RequireAndVerifyClientCert: only the trusted client certificate gets in")

        # Bad web configs: one line naming file, line and field; exit 2.
        for text, expected in [
            ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS9\n",
             f"okrd: {web}:4: tls_server_config.min_version: unknown value \"TLS9\""),
            ("basic_auth_users:\n  alice: plain\n",
             f"okrd: {web}:2: basic_auth_users.alice: expected a bcrypt hash"),
            ("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
             f"okrd: {web}: tls_server_config.key_file {tls}/other.key: "),
        ]:
            write_web(text)
            r = subprocess.run([a.okrd, "--config", config, "--web.config.file", web],
                               capture_output=True, text=True, timeout=60)
            lines = [line for line in r.stderr.splitlines() if line.startswith("okrd: ")]
            assert r.returncode == 2, (r.returncode, r.stderr)
            assert len(lines) == 1 and lines[0].startswith(expected), (expected, r.stderr)
        log("bad web configs: one error line naming file, line and field, exit 2")
        return 0


if __name__ == "__main__":
    sys.exit(main())
