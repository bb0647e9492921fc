"""``/healthz``: the service answers and its state store reads, and whether it writes.

``ok``: all is well. ``degraded`` (still 200: every answer comes from the zone, so the
service goes on serving): the state cannot be written (filesystem full or read-only,
writes failing), so events are dropped and counted; ``problems`` says why.
``unhealthy`` (503): the state store cannot even be read.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..core.service import current

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    svc = current()
    try:
        svc.store.node("")  # one indexed read: the database is there and readable
    except Exception as exc:  # noqa: BLE001 - any store failure is "unhealthy"
        return jsonify(status="unhealthy", error=str(exc)), 503
    zone = svc.plan.zone
    problems = svc.store.problems()
    if problems:
        return jsonify(status="degraded", problems=problems, zone=zone.name,
                       digest=zone.digest, nodes=len(svc.plan.nodes))
    return jsonify(status="ok", zone=zone.name, digest=zone.digest, nodes=len(svc.plan.nodes))
