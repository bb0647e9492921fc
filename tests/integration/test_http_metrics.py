"""/metrics under real gunicorn with two workers: counters summed over the workers."""

from __future__ import annotations

import os
import stat

from prometheus_client.parser import text_string_to_metric_families

from http_peers import curl, served_zone

SCRAPES = 20


def requests_total(text: str) -> dict:
    """``zone_http_requests_total`` samples by (endpoint, status)."""
    return {(s.labels["endpoint"], s.labels["status"]): s.value
            for f in text_string_to_metric_families(text) if f.name == "zone_http_requests"
            for s in f.samples if s.name == "zone_http_requests_total"}


def test_request_counters_never_go_backwards_between_scrapes(tmp_path):
    with served_zone(tmp_path, workers=2) as (base, server, _plan, _state):
        folder = server.metrics_dir
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700  # private to the service
        seen: list[dict] = []
        for i in range(SCRAPES):
            for _ in range(3):
                curl("-s", "-o", "/dev/null", base + "/healthz")
            seen.append(requests_total(curl("-fs", base + "/metrics").stdout.decode()))
        for before, after in zip(seen, seen[1:]):
            for key, value in before.items():
                assert after.get(key, 0) >= value, (key, value, after.get(key))
            assert sum(after.values()) > sum(before.values())
        # every request counted, whichever worker answered it (plus the wait for start-up)
        assert seen[-1][("/healthz", "200")] >= 3 * SCRAPES
    assert not os.path.exists(folder)  # removed at stop
