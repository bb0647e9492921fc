"""/metrics under real gunicorn with two workers: counters summed over the workers."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from http_peers import curl, free_port, loopback_zone, served_zone, wait_until_up

SCRAPES = 20
BURST = 8


def requests_total(text: str) -> dict:
    """``zone_http_requests_total`` samples by (endpoint, status)."""
    return {(s.labels["endpoint"], s.labels["status"]): s.value
            for f in text_string_to_metric_families(text) if f.name == "zone_http_requests"
            for s in f.samples if s.name == "zone_http_requests_total"}


def stop_workers(master: int) -> None:
    """SIGTERM gunicorn's workers (children of its master, the HTTP child process);
    the master starts new ones, which begin counting from zero."""
    found = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    for pid in found.stdout.split():
        os.kill(int(pid), signal.SIGTERM)


def test_request_counters_never_go_backwards_between_scrapes(tmp_path):
    """Two workers, each scrape answered by either, workers replaced on the way: the
    request counters only grow and hold every request made."""
    with served_zone(tmp_path, workers=2) as (base, server, _plan, _state):
        folder = server.metrics_dir
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700  # private to the service
        seen: list[dict] = []
        for i in range(SCRAPES):
            if i % 5 == 4:  # a worker that counted is replaced (as max_requests or a crash do)
                stop_workers(server.proc.pid)
            # a burst on parallel connections: any worker may answer any part of it
            curl("-Z", "--parallel-max", str(BURST), "-s",
                 *[a for _ in range(BURST) for a in ("-o", "/dev/null", base + "/healthz")])
            seen.append(requests_total(curl("-fs", base + "/metrics").stdout.decode()))
            # every request so far counted, whichever worker answered it or the scrape
            assert seen[-1][("/healthz", "200")] >= BURST * (i + 1)
        for before, after in zip(seen, seen[1:]):
            for key, value in before.items():
                assert after.get(key, 0) >= value, (key, value, after.get(key))
            assert sum(after.values()) > sum(before.values())
    assert not os.path.exists(folder)  # removed at stop


def test_zone_serve_json_logs_with_an_access_line_per_request(tmp_path):
    """``zone serve --log-format json``: every stderr line is a JSON object, HTTP's
    gunicorn child included, and each request has its access line."""
    port = free_port()
    zone = loopback_zone(tmp_path, port)
    err = tmp_path / "serve.err"
    cmd = [sys.executable, "-m", "bootstrap", "serve", zone, "--state", str(tmp_path / "z.db"),
           "--bind", "127.0.0.1", "--http-port", str(port), "--http-front", "gunicorn",
           "--no-dhcp", "--no-tftp", "--no-dns", "--log-format", "json"]
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(base + "/healthz")
            for _ in range(5):
                curl("-s", "-o", "/dev/null", base + "/healthz?probe=1")
            curl("-s", "-o", "/dev/null", base + "/no-such-page")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    lines = [json.loads(line) for line in err.read_text().splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    access = [line for line in lines if line["logger"] == "bootstrap.http.access"]
    healthz = [a for a in access if a["path"] == "/healthz" and a["status"] == 200]
    assert len(healthz) >= 5 + 1  # ours and at least the one that found it up
    assert {"method", "bytes", "duration_ms", "client"} <= set(healthz[0])
    assert healthz[0]["client"] == "127.0.0.1" and healthz[0]["bytes"] > 0
    assert [a["status"] for a in access if a["path"] == "/no-such-page"] == [404]
    assert not any("probe=1" in json.dumps(line) for line in lines)  # no query strings
