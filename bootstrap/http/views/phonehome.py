"""``POST /phone-home/<node>``: cloud-init's phone_home module, the node reached its OS."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..core.access import guard, named
from ..core.service import advance, current

bp = Blueprint("phonehome", __name__)
KEY_FIELDS = ("pub_key_rsa", "pub_key_ecdsa", "pub_key_ed25519")
MAX_FIELD = 16 * 1024


def _field(name: str) -> str | None:
    value = request.form.get(name, "").strip()
    return value[:MAX_FIELD] or None


@bp.post("/phone-home/<name>")
def phone_home(name: str):
    svc = current()
    node = named(svc, name, "server")
    guard(svc, node, "phone-home-denied")
    keys = {k: v for k in KEY_FIELDS if (v := _field(k))}
    seen = {k: v for k in ("instance_id", "hostname") if (v := _field(k))}
    svc.store.update(node.name, ssh_host_keys=keys, **seen)
    svc.event("phone-home", node.name, keys=sorted(keys), **seen)
    advance(svc, node, svc.record(node.name), "installed", by="phone-home")
    svc.state_changed(node)  # under an nginx front: its file becomes the local-boot script
    record = svc.record(node.name) or {}
    return jsonify(node=node.name, state=record.get("state"), keys=sorted(keys))
