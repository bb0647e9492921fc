"""``/``: the status page (pods and nodes by state, recent events) and its JSON poll.

Built for 250 pods and 10,000 nodes: failed nodes come first, each with its reason;
pods with failures lead the table; node badges are listed only while the nodes shown
(after the ``pod``, ``state`` and ``kind`` filters of the query string) number at most
``STATUS_NODE_LIMIT``, else pods are collapsed to their counts. MAC addresses (in
events and failure reasons) are hidden from a reader without the API token.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ...lifecycle import FAILED, ORDER
from ..core.access import api_token_ok
from ..core.problems import BadRequest
from ..core.redact import redact
from ..core.service import HttpService, current

bp = Blueprint("status", __name__)
RECENT = 25
FAILED_SHOWN = 200  # failed nodes listed by name and reason; the rest counted
# Every state a node may be in, in lifecycle order: the page's legend.
LEGEND = [*dict.fromkeys(s for states in ORDER.values() for s in states), FAILED]
FILTERS = ("pod", "state", "kind")


def filters(svc: HttpService, args) -> dict:
    """The query string's filters, each checked against what the zone has."""
    known = {"pod": {*svc.plan.pods, "core"}, "state": set(LEGEND), "kind": set(ORDER)}
    chosen = {}
    for key in FILTERS:
        value = args.get(key, "").strip()
        if not value:
            continue
        if value not in known[key]:
            raise BadRequest(f"unknown {key} {value[:64]!r}")
        chosen[key] = value
    return chosen


def matches(record: dict, chosen: dict) -> bool:
    return all((record["pod"] or "core") == v if k == "pod" else record[k] == v
               for k, v in chosen.items())


def node_view(r: dict) -> dict:
    view = {"name": r["name"], "kind": r["kind"], "state": r["state"]}
    if r["state"] == FAILED:
        view["reason"] = r.get("reason") or ""
    return view


def pod_summaries(svc: HttpService, records: list[dict], with_nodes: bool) -> list[dict]:
    """Pods with failures first (most first), then by name; in each, failed nodes first."""
    pod_state = {p["name"]: p["state"] for p in svc.store.pods()}
    pods: dict = {}
    for r in records:
        name = r["pod"] or "core"
        pod = pods.setdefault(name, {"name": name, "state": pod_state.get(name, "-"),
                                     "counts": {}, "nodes": []})
        pod["counts"][r["state"]] = pod["counts"].get(r["state"], 0) + 1
        if with_nodes:
            pod["nodes"].append(node_view(r))
    for pod in pods.values():
        pod["nodes"].sort(key=lambda n: n["state"] != FAILED)  # stable: plan order kept
    return sorted(pods.values(), key=lambda p: (-p["counts"].get(FAILED, 0), p["name"]))


def summary(svc: HttpService, chosen: dict | None = None) -> dict:
    """Everything the page shows, as one JSON document (the page polls it)."""
    chosen = chosen or {}
    everything = svc.store.nodes()
    records = [r for r in everything if matches(r, chosen)]
    totals: dict = {}
    for r in everything:
        totals[r["state"]] = totals.get(r["state"], 0) + 1
    failed = [node_view(r) | {"pod": r["pod"] or "core"} for r in records if r["state"] == FAILED]
    events = svc.store.events(newest=True, limit=RECENT)[::-1]
    out = {"zone": svc.plan.zone.name, "domain": svc.plan.zone.domain,
           "digest": svc.plan.zone.digest[:12], "total": len(everything), "totals": totals,
           "filters": chosen, "shown": len(records), "legend": LEGEND,
           "failed": failed[:FAILED_SHOWN], "failed_total": len(failed),
           "pods": pod_summaries(svc, records,
                                 len(records) <= svc.settings["STATUS_NODE_LIMIT"]),
           "events": events}
    if not api_token_ok(svc):  # a browser has no token: it sees no MAC address
        out = redact(out)
    return out


@bp.get("/")
def page():
    svc = current()
    return svc.render("status.html", status=summary(svc, filters(svc, request.args)),
                      refresh_ms=int(float(svc.settings["STATUS_REFRESH_SECONDS"]) * 1000))


@bp.get("/status.json")
def status_json():
    svc = current()
    return jsonify(summary(svc, filters(svc, request.args)))
