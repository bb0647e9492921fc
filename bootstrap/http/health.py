"""``/healthz``: the service answers and its state store reads."""

from __future__ import annotations

from flask import Blueprint, jsonify

from .service import current

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    svc = current()
    try:
        svc.store.node("")  # one indexed read: the database is there and readable
    except Exception as exc:  # noqa: BLE001 - any store failure is "unhealthy"
        return jsonify(status="unhealthy", error=str(exc)), 503
    zone = svc.plan.zone
    return jsonify(status="ok", zone=zone.name, digest=zone.digest, nodes=len(svc.plan.nodes))
