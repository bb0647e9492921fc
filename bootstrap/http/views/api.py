"""``/api/v1``: nodes and events as JSON; every call that changes state needs the token."""

from __future__ import annotations

import json
import math

from flask import Blueprint, jsonify, request

from ...plan import Node
from ..core.access import api_token_ok, named
from ..core.identify import normalize_mac
from ..core.problems import BadRequest, Conflict, Forbidden, Unauthorized
from ..core.redact import redact
from ..core.service import HttpService, current

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_LIMIT = 1000
MAX_INT = 2 ** 63 - 1  # SQLite's largest integer: ids and offsets beyond it are clamped


def require_token(svc: HttpService) -> None:
    """Bearer token from ZONE_API_TOKEN / the token file; none configured: read-only."""
    if not svc.api_token:
        raise Forbidden("the API is read-only: no API token is configured")
    if not api_token_ok(svc):
        svc.event("api-denied", None, path=request.path, method=request.method)
        raise Unauthorized("a valid API token is required",
                           {"WWW-Authenticate": 'Bearer realm="zone"'})


def arg_int(name: str, default: int, low: int = 0, high: int = MAX_INT) -> int:
    raw = request.args.get(name)
    try:
        value = default if raw is None else int(raw[:40])  # 40 digits: beyond any bound
    except ValueError:
        raise BadRequest(f"{name}: '{raw[:20]}' is not a whole number") from None
    return max(low, min(value, high))


def shown(svc: HttpService, value):
    """What a reader sees: MAC addresses only with the API token."""
    return value if api_token_ok(svc) else redact(value)


def node_json(node: Node, record: dict | None, detail: bool = False) -> dict:
    out = node.as_dict()
    record = record or {}
    out.update(state=record.get("state", "planned"), reason=record.get("reason"),
               mac=record.get("mac"), updated=record.get("updated"))
    if detail:
        out["data"] = record.get("data", {})
    return out


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: stored, it would be Infinity, which is not JSON
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def json_body() -> dict:
    """The request body as a JSON object of finite numbers, else 400."""
    try:
        body = json.loads(request.get_data(cache=True), parse_float=_finite,
                          parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest(f"the body is not JSON: {str(exc)[:80]}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def field(body: dict, name: str, kinds: tuple, what: str):
    """``body[name]`` when it is absent, null or of ``kinds``; else 400."""
    value = body.get(name)
    if value is not None and not isinstance(value, kinds):
        raise BadRequest(f"{name} must be {what}")
    return value


def members(body: dict, name: str, reserved: tuple) -> dict:
    """``body[name]``, an object whose keys are passed on as keywords: none may be one of
    the store call's own parameters."""
    value = field(body, name, (dict,), "a JSON object") or {}
    taken = sorted(set(value) & set(reserved))
    if taken:
        raise BadRequest(f"{name} may not have the key(s) {', '.join(taken)}")
    return value


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
                   nodes=shown(svc, out[offset:offset + limit]))


@bp.get("/nodes/<name>")
def node(name: str):
    svc = current()
    found = named(svc, name)
    events = svc.store.events(node=name, newest=True, limit=arg_int("events", 50, 0, MAX_LIMIT))
    return jsonify(node=shown(svc, node_json(found, svc.record(name), detail=True)),
                   events=shown(svc, events))


@bp.route("/nodes/<name>", methods=["PATCH", "POST"])
def change_node(name: str):
    """``{"state", "reason"}`` moves the node (409 if illegal); ``{"data": {…}}`` merges."""
    svc = current()
    require_token(svc)
    found, body = named(svc, name), json_body()
    data = members(body, "data", ("self", "name", "mac"))
    state, reason = field(body, "state", (str,), "text"), field(body, "reason", (str,), "text")
    mac = field(body, "mac", (str,), "a MAC address")
    if mac is not None and normalize_mac(mac) is None:
        raise BadRequest(f"mac: '{mac[:20]}' is not a MAC address")
    if data or mac:
        svc.store.update(name, mac=mac and normalize_mac(mac), **data)
    if state:
        if not svc.store.transition(name, state, reason, source="api"):
            raise Conflict(f"{name}: cannot move from {svc.record(name)['state']} "
                           f"to {body['state']}")
    return jsonify(node=node_json(found, svc.record(name), detail=True))


@bp.get("/events")
def events():
    svc, args = current(), request.args
    rows = svc.store.events(since=arg_int("since", 0), node=args.get("node"),
                            kind=args.get("kind"), limit=arg_int("limit", 200, 1, MAX_LIMIT),
                            newest=args.get("newest") in ("1", "true"))
    return jsonify(events=shown(svc, rows), last=rows[-1]["id"] if rows else arg_int("since", 0))


@bp.post("/events")
def add_event():
    svc = current()
    require_token(svc)
    body = json_body()
    kind, node = field(body, "kind", (str,), "text"), field(body, "node", (str,), "text")
    detail = members(body, "detail", ("self", "kind", "node", "source"))
    if not kind:
        raise BadRequest("an event needs a kind (text) and detail (an object)")
    if node is not None:
        named(svc, node)
    svc.store.event(kind, node, "api", **detail)
    return jsonify(ok=True), 201
