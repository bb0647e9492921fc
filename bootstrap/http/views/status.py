"""``/``: the status page (pods and nodes by state, recent events) and its JSON poll."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ..core.access import api_token_ok
from ..core.redact import redact
from ..core.service import HttpService, current

bp = Blueprint("status", __name__)
RECENT = 25


def pod_summaries(svc: HttpService, records: list[dict], with_nodes: bool) -> list[dict]:
    pod_state = {p["name"]: p["state"] for p in svc.store.pods()}
    pods: dict = {}
    for r in records:
        name = r["pod"] or "core"
        pod = pods.setdefault(name, {"name": name, "state": pod_state.get(name, "-"),
                                     "counts": {}, "nodes": []})
        pod["counts"][r["state"]] = pod["counts"].get(r["state"], 0) + 1
        if with_nodes:
            pod["nodes"].append({"name": r["name"], "kind": r["kind"], "state": r["state"]})
    return list(pods.values())


def summary(svc: HttpService) -> dict:
    """Everything the page shows, as one JSON document (the page polls it)."""
    records = svc.store.nodes()
    totals: dict = {}
    for r in records:
        totals[r["state"]] = totals.get(r["state"], 0) + 1
    events = svc.store.events(newest=True, limit=RECENT)[::-1]
    if not api_token_ok(svc):  # a browser has no token: it sees no MAC address
        events = redact(events)
    return {"zone": svc.plan.zone.name, "domain": svc.plan.zone.domain,
            "digest": svc.plan.zone.digest[:12], "total": len(records), "totals": totals,
            "pods": pod_summaries(svc, records, len(records) <= svc.settings["STATUS_NODE_LIMIT"]),
            "events": events}


@bp.get("/")
def page():
    svc = current()
    return svc.render("status.html", status=summary(svc),
                      refresh_ms=int(float(svc.settings["STATUS_REFRESH_SECONDS"]) * 1000))


@bp.get("/status.json")
def status_json():
    return jsonify(summary(current()))
