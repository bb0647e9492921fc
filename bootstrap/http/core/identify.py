"""Who is asking: a node of the plan from a source address or what iPXE says of itself.

Pure lookups over the plan, plus read-only queries of the state store for what
only the running system has learnt (a MAC from a DHCP lease, a serial number or
UUID from the BMC's Redfish inventory).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from ...plan import Node, Plan

_HEX = re.compile(r"[^0-9a-f]")
# Store ``data`` keys that may hold what iPXE reports as ${uuid} / ${serial}.
ATTRIBUTE_KEYS = {"uuid": ("uuid", "system_uuid"), "serial": ("serial", "serial_number")}


def normalize_mac(text: str | None) -> str | None:
    """``52-54-00-AB-CD-EF`` / ``525400abcdef`` → ``52:54:00:ab:cd:ef``; None if not a MAC."""
    digits = re.sub(r"[:.-]", "", (text or "").strip().lower())
    if len(digits) != 12 or _HEX.search(digits):
        return None
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def node_by_address(plan: Plan, address: str | None) -> Node | None:
    return plan.by_address.get(address) if address else None


def node_by_attribute(plan: Plan, store, kind: str, value: str | None) -> Node | None:
    """A node whose stored MAC, UUID or serial number is ``value``."""
    if not value:
        return None
    if kind == "mac":
        mac = normalize_mac(value)
        name = mac and store.name_by_mac(mac)
    else:
        name = store.name_by_data(ATTRIBUTE_KEYS[kind], value.strip())
    return plan.nodes.get(name) if name else None


def identify(plan: Plan, store, address: str | None, args) -> tuple[Node | None, str]:
    """The node asking and how it was known: by source address first, then mac/uuid/serial."""
    node = node_by_address(plan, address)
    if node is not None:
        return node, "address"
    for kind in ("mac", "uuid", "serial"):
        node = node_by_attribute(plan, store, kind, args.get(kind))
        if node is not None:
            return node, kind
    return None, "unknown"


def node_token(secret: bytes, name: str) -> str:
    """The per-node token: HMAC-SHA256 of the node name under the service's secret."""
    return hmac.new(secret, name.encode(), hashlib.sha256).hexdigest()


def may_fetch(node: Node, address: str | None, token: str | None, secret: bytes) -> bool:
    """Only the node itself (one of its plan addresses) or a holder of its token."""
    if address and address in node.addresses.values():
        return True
    return bool(token) and hmac.compare_digest(node_token(secret, node.name), token)
