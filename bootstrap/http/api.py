"""``/api/v1``: nodes and events as JSON; every call that changes state needs the token."""

from __future__ import annotations

import hmac

from flask import Blueprint, jsonify, request

from ..plan import Node
from .nodes import named
from .problems import BadRequest, Conflict, Forbidden, Unauthorized
from .service import HttpService, current

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_LIMIT = 1000


def require_token(svc: HttpService) -> None:
    """Bearer token from ZONE_API_TOKEN / the token file; none configured: read-only."""
    if not svc.api_token:
        raise Forbidden("the API is read-only: no API token is configured")
    given = request.headers.get("Authorization", "")
    given = given[7:] if given.startswith("Bearer ") else request.headers.get("X-Zone-Token", "")
    if not given or not hmac.compare_digest(given.encode(), svc.api_token.encode()):
        svc.event("api-denied", None, path=request.path, method=request.method)
        raise Unauthorized("a valid API token is required",
                           {"WWW-Authenticate": 'Bearer realm="zone"'})


def arg_int(name: str, default: int, low: int = 0, high: int | None = None) -> int:
    raw = request.args.get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        raise BadRequest(f"{name}: '{raw[:20]}' is not a whole number") from None
    return max(low, min(value, high)) if high is not None else max(low, value)


def node_json(node: Node, record: dict | None, detail: bool = False) -> dict:
    out = node.as_dict()
    record = record or {}
    out.update(state=record.get("state", "planned"), reason=record.get("reason"),
               mac=record.get("mac"), updated=record.get("updated"))
    if detail:
        out["data"] = record.get("data", {})
    return out


def json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


@bp.get("/nodes")
def nodes():
    """Plan and state of every node: ``pod``, ``kind``, ``state`` filter; ``offset``, ``limit``."""
    svc, args = current(), request.args
    records = {r["name"]: r for r in svc.store.nodes(pod=args.get("pod"), kind=args.get("kind"))}
    out = [node_json(n, records.get(n.name)) for n in svc.plan.nodes.values()
           if n.name in records]
    if args.get("state"):
        out = [n for n in out if n["state"] == args["state"]]
    offset = arg_int("offset", 0)
    limit = arg_int("limit", len(out), 0)
    return jsonify(zone=svc.plan.zone.name, count=len(out), offset=offset,
                   nodes=out[offset:offset + limit])


@bp.get("/nodes/<name>")
def node(name: str):
    svc = current()
    found = named(svc, name)
    events = svc.store.events(node=name, newest=True, limit=arg_int("events", 50, 0, MAX_LIMIT))
    return jsonify(node=node_json(found, svc.record(name), detail=True), events=events)


@bp.route("/nodes/<name>", methods=["PATCH", "POST"])
def change_node(name: str):
    """``{"state", "reason"}`` moves the node (409 if illegal); ``{"data": {…}}`` merges."""
    svc = current()
    require_token(svc)
    found, body = named(svc, name), json_body()
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise BadRequest("data must be a JSON object")
    if data or body.get("mac"):
        svc.store.update(name, mac=body.get("mac"), **data)
    if body.get("state"):
        if not svc.store.transition(name, str(body["state"]), body.get("reason"), source="api"):
            raise Conflict(f"{name}: cannot move from {svc.record(name)['state']} "
                           f"to {body['state']}")
    return jsonify(node=node_json(found, svc.record(name), detail=True))


@bp.get("/events")
def events():
    svc, args = current(), request.args
    rows = svc.store.events(since=arg_int("since", 0), node=args.get("node"),
                            kind=args.get("kind"), limit=arg_int("limit", 200, 1, MAX_LIMIT),
                            newest=args.get("newest") in ("1", "true"))
    return jsonify(events=rows, last=rows[-1]["id"] if rows else arg_int("since", 0))


@bp.post("/events")
def add_event():
    svc = current()
    require_token(svc)
    body = json_body()
    kind, node, detail = body.get("kind"), body.get("node"), body.get("detail", {})
    if not isinstance(kind, str) or not kind or not isinstance(detail, dict):
        raise BadRequest("an event needs a kind (text) and detail (an object)")
    if node is not None:
        named(svc, node)
    svc.store.event(kind, node, "api", **detail)
    return jsonify(ok=True), 201
