"""``/redfish/v1/Systems``: the ComputerSystem, its NICs, boot override and reset."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .client import Answer
from .errors import BmcRefused, ResourceMissing


@dataclass(frozen=True)
class System:
    """What the flow needs from one ComputerSystem resource (pure: built from its JSON)."""

    path: str
    name: str
    power: str | None
    serial: str | None
    bios_version: str | None
    managers: tuple
    nics_path: str | None
    reset_target: str
    reset_types: tuple
    boot_targets: tuple
    boot_props: frozenset = frozenset()   # the Boot properties the BMC lists
    chassis: tuple = ()

    @property
    def owners(self) -> frozenset:
        """What a FirmwareInventory item of this system may relate to: the system,
        its managers (BMC firmware) and its chassis; without trailing slashes."""
        return frozenset(p.rstrip("/") for p in (self.path, *self.managers, *self.chassis))

    @classmethod
    def from_json(cls, body: dict) -> "System":
        actions = body.get("Actions", {}).get("#ComputerSystem.Reset", {})
        boot = body.get("Boot") or {}
        path = body.get("@odata.id", "")
        return cls(
            path=path, name=body.get("Name") or body.get("Id") or "",
            power=body.get("PowerState"), serial=body.get("SerialNumber") or None,
            bios_version=body.get("BiosVersion"),
            managers=tuple(_ids(body.get("Links", {}).get("ManagedBy"))),
            nics_path=_id(body.get("EthernetInterfaces")),
            reset_target=actions.get("target") or f"{path}/Actions/ComputerSystem.Reset",
            reset_types=tuple(actions.get("ResetType@Redfish.AllowableValues") or ()),
            boot_targets=tuple(boot.get("BootSourceOverrideTarget@Redfish.AllowableValues") or ()),
            boot_props=frozenset(k.split("@", 1)[0] for k in boot),
            chassis=tuple(_ids(body.get("Links", {}).get("Chassis"))))


def _id(link) -> str | None:
    return link.get("@odata.id") if isinstance(link, dict) else None


def _ids(links) -> list:
    return [i for i in (_id(link) for link in links or ()) if i]


def members(body: dict) -> list:
    """The member paths of a Redfish collection."""
    return _ids(body.get("Members"))


def read_system(client, path: str) -> System:
    return System.from_json(client.get(path, "system"))


def find_system(client, system: str) -> System:
    """The ComputerSystem named ``system`` (an id or a path); ``auto``: the one the BMC has."""
    if system.startswith("/"):
        return read_system(client, system)
    if system != "auto":
        return read_system(client, f"/redfish/v1/Systems/{system}")
    paths = members(client.get("/redfish/v1/Systems", "systems"))
    if len(paths) != 1:
        raise BmcRefused(f"redfish.system is auto but the BMC has {len(paths)} systems; "
                         "name one in the zone file", client.name)
    return read_system(client, paths[0])


def optional(client, path: str | None, what: str):
    """A sub-resource the flow can do without: its JSON, or None when absent (404)."""
    if not path:
        return None
    try:
        return client.get(path, what)
    except ResourceMissing:
        return None


_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")


def clean_mac(value) -> str | None:
    """``aa:bb:cc:dd:ee:ff`` from a Redfish MAC, or None when it is no usable MAC."""
    mac = str(value or "").strip().lower()
    if not _MAC.match(mac):
        return None
    mac = mac.replace("-", ":")
    return None if mac in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff") else mac


def host_interface_nic(nic: dict) -> bool:
    """The Redfish host interface (the host's USB/LAN link to its own BMC) by its name."""
    words = (nic.get("Id"), nic.get("Name"), nic.get("Description"))
    return any("hostinterface" in re.sub(r"[^a-z]", "", str(w or "").lower()) for w in words)


def mac_addresses(client, system: System, skip=frozenset()) -> list:
    """Every NIC's MAC address, lower case, in the BMC's order, once each; without
    the host interface (named so, or one of ``skip``, the paths the managers link)
    and absent NICs (404) skipped."""
    listing = optional(client, system.nics_path, "ethernet interfaces")
    macs = []
    for path in members(listing or {}):
        if path.rstrip("/") in skip:
            continue
        nic = optional(client, path, "ethernet interface")
        if not nic or host_interface_nic(nic):
            continue
        mac = clean_mac(nic.get("MACAddress") or nic.get("PermanentMACAddress"))
        if mac and mac not in macs:
            macs.append(mac)
    return macs


def boot_once_body(target: str, uri: str | None = None) -> dict:
    """The PATCH body for a one-time boot override (``UefiHttp`` may carry a URI)."""
    boot = {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": target}
    if uri:
        boot["HttpBootUri"] = uri
    return {"Boot": boot}


def choose_boot(system: System, uri: str | None) -> tuple:
    """PXE, or UEFI HTTP boot when a URI is given and the BMC offers it; the URI
    only goes in when the Boot object lists ``HttpBootUri`` (else the BMC refuses
    the property, and the firmware learns the URI from DHCP instead)."""
    if uri and "UefiHttp" in system.boot_targets:
        return "UefiHttp", (uri if "HttpBootUri" in system.boot_props else None)
    if system.boot_targets and "Pxe" not in system.boot_targets:
        raise BmcRefused(f"boot override to Pxe not offered (allowed: {', '.join(system.boot_targets)})")
    return "Pxe", None


def choose_reset(system: System) -> str:
    """Restart a running system, power on one that is off."""
    allowed = system.reset_types
    wanted = ("ForceRestart", "GracefulRestart") if system.power == "On" else ("On", "ForceOn")
    for kind in wanted:
        if not allowed or kind in allowed:
            return kind
    raise BmcRefused(f"no reset type for power state {system.power} (allowed: {', '.join(allowed)})")


def set_boot_once(client, system: System, uri: str | None = None) -> str:
    target, uri = choose_boot(system, uri)
    client.patch(system.path, boot_once_body(target, uri), "one-time boot override")
    return target


POWERING_ON = ("On", "ForceOn")


def reset(client, system: System, kind: str | None = None, target: str | None = None) -> str:
    """POST the reset. A power-on whose answer was lost is repeated only if the
    system is still off; a restart cannot be seen afterwards, so it is not repeated
    unless the BMC said it did not act (429/503) or never got it."""
    kind = kind or choose_reset(system)
    settled = (lambda: _powered_on(client, system)) if kind in POWERING_ON else None
    client.post(target or system.reset_target, {"ResetType": kind}, f"reset {kind}", settled)
    return kind


def _powered_on(client, system: System):
    power = read_system(client, system.path).power
    return Answer(204, {}, {}) if power in ("On", "PoweringOn") else None
