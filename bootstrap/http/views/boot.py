"""``GET /boot/ipxe``: the requesting node's iPXE script.

Known by its source address (its plan address, handed out by our DHCP) or by
what iPXE says of itself (``?mac=``/``?uuid=``/``?serial=``). An unknown
requester gets a script that waits and asks again, so a node booting before it
is in the plan cannot loop hard on the server.
"""

from __future__ import annotations

from flask import Blueprint, request

from ...lifecycle import INSTALLED, NodeState
from ..core.access import api_token_ok
from ..core.identify import identify, may_fetch
from ..core.service import HttpService, client_address, current, forward, text

bp = Blueprint("boot", __name__)
DONE = INSTALLED  # already installed: boot from disk
SELF = ("mac", "uuid", "serial")


def script(svc: HttpService, address: str | None, args, api: bool = False) -> str:
    """The iPXE script for whoever asks from ``address`` with query ``args``, recording
    what it answered; the one body of both the Flask view and :mod:`bootstrap.http.app.lean`.

    Anyone may name a node by ``?mac=``/``?uuid=``/``?serial=`` and get its script, but
    only the node itself (its own address), its token (``?token=``) or the API token
    (``api``) moves it to ``booting``; a stranger's asking is a throttled event."""
    node, how = identify(svc.plan, svc.store, address, args)
    if node is None:
        said = {k: args[k][:64] for k in SELF if args.get(k)}
        svc.event("ipxe-unknown", None, address=address, **said)
        return svc.render_planned("ipxe-unknown.ipxe")
    if node.kind != "server" or node.image is None:
        svc.event("ipxe-no-image", node.name, address=address, by=how)
        return svc.render_planned("ipxe-local.ipxe", node, reason="no boot image in its role")
    state = svc.state(node.name)
    trusted = how == "address" or api or may_fetch(node, address, args.get("token"), svc.secret)
    if state in DONE:
        svc.event("ipxe-local-boot", node.name, not trusted, address=address, by=how,
                  state=state)
    else:
        svc.event("ipxe-script", node.name, not trusted, address=address, by=how,
                  image=node.image)
        if trusted:
            forward(svc, node, state, NodeState.BOOTING, by=how)
    return script_for(svc, node, state)


def script_for(svc: HttpService, node, state: str | None) -> str:
    """What a known server with a boot image gets in ``state``, recording nothing (the
    nginx front pre-renders these as files)."""
    if state in DONE:
        return svc.render_planned("ipxe-local.ipxe", node, reason=f"already {state}")
    return svc.render_planned("ipxe.ipxe", node)


@bp.get("/boot/ipxe")
def ipxe():
    svc = current()
    return text(script(svc, client_address(), request.args, api_token_ok(svc)))
