"""``/metrics`` for Prometheus, and counting every request by endpoint and status."""

from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from .. import metrics as shared
from ..state import FAILED, ORDER
from .service import current

bp = Blueprint("metrics", __name__)


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


@bp.get("/metrics")
def metrics():
    refresh_node_gauge(current().store)
    return Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


def count_request(response):
    rule = request.url_rule.rule if request.url_rule else "unmatched"
    shared.HTTP_REQUESTS.labels(endpoint=rule, status=str(response.status_code)).inc()
    return response


def init_app(app: Flask) -> None:
    app.after_request(count_request)
