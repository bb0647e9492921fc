"""``/redfish/v1/Managers``: the BMC itself, for its firmware version and its host interface."""

from __future__ import annotations

from .errors import ResourceMissing
from .systems import members, optional


def manager_firmware(client, system) -> str | None:
    """``FirmwareVersion`` of the system's first manager, or None when it has none."""
    for path in system.managers[:1]:
        try:
            return client.get(path, "manager").get("FirmwareVersion")
        except ResourceMissing:
            return None
    return None


def host_interface_nics(client, system) -> frozenset:
    """Paths of the system's NICs that are the Redfish host interface, as the
    managers link them (``HostInterfaces/*/HostEthernetInterfaces``); every part
    is optional, and absent parts mean none."""
    found = set()
    for manager in system.managers[:1]:
        body = optional(client, manager, "manager") or {}
        for hi in members(optional(client, _link(body, "HostInterfaces"), "host interfaces") or {}):
            nics = _link(optional(client, hi, "host interface") or {}, "HostEthernetInterfaces")
            found.update(p.rstrip("/") for p in
                         members(optional(client, nics, "host ethernet interfaces") or {}))
    return frozenset(found)


def _link(body: dict, name: str) -> str | None:
    link = body.get(name)
    return link.get("@odata.id") if isinstance(link, dict) else None
