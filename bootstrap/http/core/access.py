"""Looking up a node named in a URL, and the per-node access rule."""

from __future__ import annotations

import hmac

from flask import request

from ...plan import Node
from .identify import may_fetch
from .problems import Forbidden, NotFound
from .service import HttpService, client_address


def named(svc: HttpService, name: str, kind: str | None = None) -> Node:
    node = svc.plan.nodes.get(name)
    if node is None or (kind and node.kind != kind):
        raise NotFound(f"{name}: no such {kind or 'node'} in zone {svc.plan.zone.name}")
    return node


def guard(svc: HttpService, node: Node, denied: str) -> None:
    """Only the node itself or a holder of its token; anyone else: 403 and an event."""
    if may_fetch(node, client_address(), request.args.get("token"), svc.secret):
        return
    svc.event(denied, node.name, path=request.path)  # the path only: never the token
    raise Forbidden(f"{request.path}: only {node.name} itself may fetch this")


def api_token_ok(svc: HttpService) -> bool:
    """The request carries the API token (``Authorization: Bearer`` or ``X-Zone-Token``)."""
    given = request.headers.get("Authorization", "")
    given = given[7:] if given.startswith("Bearer ") else request.headers.get("X-Zone-Token", "")
    return bool(svc.api_token and given) and hmac.compare_digest(given.encode(),
                                                                 svc.api_token.encode())


def may_move(svc: HttpService, node: Node) -> bool:
    """Whether this request may move ``node``'s state as a side effect: only the node
    itself (one of its plan addresses), a holder of its token or of the API token."""
    return may_fetch(node, client_address(), request.args.get("token"), svc.secret) \
        or api_token_ok(svc)
