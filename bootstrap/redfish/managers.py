"""``/redfish/v1/Managers``: the BMC itself, for its firmware version."""

from __future__ import annotations

from .errors import ResourceMissing


def manager_firmware(client, system) -> str | None:
    """``FirmwareVersion`` of the system's first manager, or None when it has none."""
    for path in system.managers[:1]:
        try:
            return client.get(path, "manager").get("FirmwareVersion")
        except ResourceMissing:
            return None
    return None
