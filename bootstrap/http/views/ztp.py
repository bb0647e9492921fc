"""Switch zero-touch provisioning: ONIE installer, SONiC, Cumulus and Arista scripts.

Each answer is rendered from ``templates/`` with the switch's identity; serving
it moves the switch to ``ztp`` and records an event.
"""

from __future__ import annotations

import os

from flask import Blueprint, redirect

from ...plan import Node
from ..core.access import may_move, named
from ..core.problems import NotFound
from ..core.service import HttpService, advance, current, text

bp = Blueprint("ztp", __name__)
ONIE_DIR = "onie"  # files root folder of NOS installers: <node>.bin, <role>.bin, <ztp>.bin


def _switch(svc: HttpService, name: str, ztp: str | None) -> Node:
    node = named(svc, name, "switch")
    if ztp and node.ztp != ztp:
        raise NotFound(f"{name} provisions by {node.ztp or 'nothing'}, not {ztp}")
    return node


def _served(svc: HttpService, node: Node, record: dict | None, what: str, **detail) -> None:
    """Record the answer; only the switch itself (or its token, or the API token) moves it
    to ``ztp``: anyone else's GET is a throttled event and changes nothing."""
    trusted = may_move(svc, node)
    svc.event("ztp-served", node.name, not trusted, what=what, **detail)
    if trusted:
        advance(svc, node, record, "ztp", by=what)


def _serve(svc: HttpService, node: Node, template: str, what: str, mimetype="text/plain"):
    record = svc.record(node.name)
    _served(svc, node, record, what)
    return text(svc.render(template, node, record), mimetype)


def onie_installer(svc: HttpService, node: Node) -> str | None:
    """The most specific NOS installer present under the files root, as a /files path."""
    for stem in (node.name, node.role, node.ztp):
        rel = f"{ONIE_DIR}/{stem}.bin"
        if stem and os.path.isfile(os.path.join(svc.files_root, rel)):
            return rel
    return None


@bp.get("/onie/<name>")
def onie(name: str):
    """ONIE runs what it downloads: a redirect to the NOS installer, or a script that waits."""
    svc = current()
    node = _switch(svc, name, None)
    installer = onie_installer(svc, node)
    if installer is None:
        return _serve(svc, node, "onie-installer.sh", "onie")
    _served(svc, node, svc.record(node.name), "onie", installer=installer)
    return redirect(f"{svc.base_url}/files/{installer}", 302)


@bp.get("/ztp/sonic/<name>.json")
def sonic(name: str):
    svc = current()
    return _serve(svc, _switch(svc, name, "sonic"), "sonic-ztp.json", "sonic", "application/json")


@bp.get("/ztp/sonic/<name>/config_db.json")
def sonic_config_db(name: str):
    svc = current()
    node = _switch(svc, name, "sonic")
    return text(svc.render("sonic-config_db.json", node, svc.record(node.name)),
                "application/json")


@bp.get("/ztp/cumulus/<name>")
def cumulus(name: str):
    svc = current()
    return _serve(svc, _switch(svc, name, "cumulus"), "cumulus-ztp.sh", "cumulus")


@bp.get("/ztp/arista/<name>")
def arista(name: str):
    svc = current()
    return _serve(svc, _switch(svc, name, "arista"), "arista-bootstrap.py", "arista")
