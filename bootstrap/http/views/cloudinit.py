"""cloud-init NoCloud data, ``/cloud-init/<node>/<part>``: only to that node."""

from __future__ import annotations

from flask import Blueprint

from ..core.access import guard, named
from ..core.service import current, text

bp = Blueprint("cloudinit", __name__)
PARTS = ("meta-data", "user-data", "vendor-data", "network-config")


@bp.get("/cloud-init/<name>/<any('meta-data', 'user-data', 'vendor-data', 'network-config'):part>")
def part(name: str, part: str):
    svc = current()
    node = named(svc, name, "server")
    guard(svc, node, "cloud-init-denied")
    record = svc.record(node.name)
    svc.event("cloud-init", node.name, part=part)
    return text(svc.render(f"cloud-init/{part}.yaml", node, record))
