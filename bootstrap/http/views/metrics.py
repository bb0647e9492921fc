"""``/metrics`` for Prometheus, and counting every request by endpoint and status.

Under ``zone serve`` the HTTP service runs in a child process while DHCP, TFTP
and DNS count in the parent: :class:`HttpServer` exports the parent's registry
on a loopback port (``PARENT_METRICS_URL``) and ``/metrics`` merges its ``zone_*``
families in, so one scrape sees DHCP answers by type beside HTTP requests.
"""

from __future__ import annotations

import logging
import os
import urllib.request

from flask import Blueprint, Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ... import metrics as shared
from ...lifecycle import FAILED, ORDER
from ..core.service import current

bp = Blueprint("metrics", __name__)
log = logging.getLogger("bootstrap.http")
OWN = {"zone_http_requests", "zone_nodes"}  # families this process is the source of
PARENT_TIMEOUT = 2.0


def refresh_node_gauge(store) -> None:
    """Nodes by kind and state from the store; absent states read 0, not stale values."""
    for kind, states in ORDER.items():
        counts = store.counts(kind=kind)
        for state in (*states, FAILED):
            shared.NODES_BY_STATE.labels(kind=kind, state=state).set(counts.get(state, 0))


def registry():
    """The default registry, or every process's samples when run under multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess
    reg = CollectorRegistry()
    multiprocess.MultiProcessCollector(reg)
    return reg


def parent_families(url: str) -> list:
    """The parent process's ``zone_*`` families (DHCP, TFTP, DNS, firmware); [] if unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=PARENT_TIMEOUT) as resp:
            return foreign_families(resp.read().decode())
    except (OSError, ValueError) as exc:
        log.warning("metrics of the parent process not read: %s", exc)
        return []


def foreign_families(text: str) -> list:
    """The ``zone_*`` families of an exposition text that this process does not own."""
    # A counter's "_created" samples parse as a family of their own: same owner as the counter.
    return [f for f in text_string_to_metric_families(text)
            if f.name.startswith("zone_") and f.name.removesuffix("_created") not in OWN]


class _Families:
    """A collector yielding given families, or another registry's minus some names."""

    def __init__(self, families=(), source=None, exclude=frozenset()):
        self.families, self.source, self.exclude = families, source, exclude

    def collect(self):
        yield from self.families
        if self.source is not None:
            yield from (f for f in self.source.collect() if f.name not in self.exclude)


def exposition(parent_url: str | None) -> bytes:
    own = registry()
    if not parent_url:
        return generate_latest(own)
    families = parent_families(parent_url)
    merged = CollectorRegistry()
    merged.register(_Families(source=own, exclude={f.name for f in families}))
    merged.register(_Families(families))
    return generate_latest(merged)


@bp.get("/metrics")
def metrics():
    svc = current()
    refresh_node_gauge(svc.store)
    return Response(exposition(svc.settings.get("PARENT_METRICS_URL")),
                    content_type=CONTENT_TYPE_LATEST)


def count(endpoint: str, status: int) -> None:
    shared.HTTP_REQUESTS.labels(endpoint=endpoint, status=str(status)).inc()


def count_request(response):
    count(request.url_rule.rule if request.url_rule else "unmatched", response.status_code)
    return response


def init_app(app: Flask) -> None:
    app.after_request(count_request)
