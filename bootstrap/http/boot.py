"""``GET /boot/ipxe``: the requesting node's iPXE script.

Known by its source address (its plan address, handed out by our DHCP) or by
what iPXE says of itself (``?mac=``/``?uuid=``/``?serial=``). An unknown
requester gets a script that waits and asks again, so a node booting before it
is in the plan cannot loop hard on the server.
"""

from __future__ import annotations

from flask import Blueprint, request

from .identify import identify
from .service import advance, client_address, current, text

bp = Blueprint("boot", __name__)
DONE = ("installed", "configured", "ready")  # already installed: boot from disk
SELF = ("mac", "uuid", "serial")


@bp.get("/boot/ipxe")
def ipxe():
    svc = current()
    node, how = identify(svc.plan, svc.store, client_address(), request.args)
    if node is None:
        said = {k: request.args[k][:64] for k in SELF if request.args.get(k)}
        svc.event("ipxe-unknown", None, **said)
        return text(svc.render_planned("ipxe-unknown.ipxe"))
    record = svc.record(node.name)
    state = record["state"] if record else "planned"
    if node.kind != "server" or node.image is None:
        svc.event("ipxe-no-image", node.name, by=how)
        return text(svc.render("ipxe-local.ipxe", node, record, reason="no boot image in its role"))
    if state in DONE:
        svc.event("ipxe-local-boot", node.name, by=how, state=state)
        return text(svc.render("ipxe-local.ipxe", node, record, reason=f"already {state}"))
    svc.event("ipxe-script", node.name, by=how, image=node.image)
    advance(svc, node, record, "booting", by=how)
    return text(svc.render_planned("ipxe.ipxe", node))
