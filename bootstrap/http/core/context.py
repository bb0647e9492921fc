"""The one function that builds what templates see: :func:`build_context`.

Everything a template prints comes from the plan (and, for NIC matching, what the
store learnt about the node), so a typo in a template fails loudly under
``StrictUndefined`` instead of shipping an empty value to a switch or server.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from urllib.parse import quote, urlparse

from ...plan import Node, Plan

BOND = "bond0"


def files_path(zone, path: str) -> str:
    """A zone file path as it appears under ``/files/`` (relative to the zone's folder)."""
    return _relative(zone.base_dir, path)


@functools.lru_cache(maxsize=1024)
def _relative(base_dir: str, path: str) -> str:
    # Cached: every iPXE script needs it and the answer never changes for a zone.
    full = path if os.path.isabs(path) else os.path.join(base_dir, path)
    rel = os.path.relpath(full, base_dir)
    return rel if not rel.startswith("..") else path.lstrip("/")


def node_urls(base: str, node: Node) -> dict:
    name = quote(node.name)
    return {
        "base": base, "boot": f"{base}/boot/ipxe", "files": f"{base}/files",
        "seed": f"{base}/cloud-init/{name}/", "phone_home": f"{base}/phone-home/{name}",
        "onie": f"{base}/onie/{name}", "sonic": f"{base}/ztp/sonic/{name}.json",
        "sonic_config_db": f"{base}/ztp/sonic/{name}/config_db.json",
        "cumulus": f"{base}/ztp/cumulus/{name}", "arista": f"{base}/ztp/arista/{name}",
    }


def image_view(plan: Plan, node: Node, files_url: str) -> dict | None:
    image = plan.zone.images.get(node.image) if node.image else None
    if image is None:
        return None
    return {"name": image.name, "cmdline": image.cmdline,
            "kernel": f"{files_url}/{files_path(plan.zone, image.kernel)}",
            "initrd": f"{files_url}/{files_path(plan.zone, image.initrd)}"}


def subnets_view(plan: Plan, node: Node) -> dict:
    out = {}
    for net, address in node.addresses.items():
        sub = plan.subnets[(net, node.pod_index)]
        out[net] = {"address": address, "cidr": sub.cidr, "prefix": sub.prefix,
                    "netmask": sub.netmask, "gateway": sub.gateway,
                    "with_prefix": f"{address}/{sub.prefix}",
                    "vlan": plan.zone.networks[net].vlan}
    return out


def nics_view(node: Node, macs: list, nic_names) -> list[dict]:
    """One bond member per ToR link: matched by MAC when the store knows them, else by name."""
    out = []
    for i, (switch, port) in enumerate(node.links):
        if len(macs) >= len(node.links):
            nic = {"id": f"nic{i}", "match": {"macaddress": macs[i]}, "set_name": f"nic{i}"}
        else:
            name = nic_names[i] if i < len(nic_names) else f"nic{i}"
            nic = {"id": name, "match": {"name": name}, "set_name": None}
        out.append(dict(nic, switch=switch, port=port))
    return out


def network_view(plan: Plan, node: Node, subnets: dict, macs: list, settings: dict) -> dict:
    """network-config v2 facts: a bond over the ToR links, VLANs where the zone has them."""
    untagged = [s for s in subnets.values() if s["vlan"] is None]
    tagged = [dict(s, name=f"{BOND}.{s['vlan']}", network=net)
              for net, s in subnets.items() if s["vlan"] is not None]
    primary = subnets.get(node.network) or next(iter(subnets.values()), None)
    return {"bond": BOND, "bond_mode": settings["BOND_MODE"],
            "nics": nics_view(node, macs, settings["NIC_NAMES"]),
            "untagged": [s["with_prefix"] for s in untagged],
            "vlans": tagged, "gateway": primary["gateway"] if primary else None}


def controller_address(url: str) -> list[str]:
    try:
        return [str(ipaddress.IPv4Address(urlparse(url).hostname or ""))]
    except ValueError:
        return []


def zone_view(plan: Plan, settings: dict, base: str) -> dict:
    zone = plan.zone
    dns = settings["DNS_SERVERS"]
    return {"name": zone.name, "domain": zone.domain, "digest": zone.digest,
            "ntp": list(zone.ntp), "dns": list(dns) if dns else controller_address(base)}


def build_context(plan: Plan, settings: dict, base: str, node: Node | None = None,
                  record: dict | None = None, **extra) -> dict:
    """Context of every template: the zone, and when given, one node and its record."""
    ctx = {"zone": zone_view(plan, settings, base), "base_url": base,
           "retry_seconds": int(settings["RETRY_SECONDS"])}
    if node is not None:
        data = (record or {}).get("data") or {}
        macs = [m for m in data.get("macs", []) if isinstance(m, str)]
        urls = node_urls(base, node)
        subnets = subnets_view(plan, node)
        ctx.update(
            node=dict(node.as_dict(), ztp=node.ztp, image=node.image), urls=urls, subnets=subnets,
            image=image_view(plan, node, urls["files"]),
            network=network_view(plan, node, subnets, macs, settings),
            instance_id=f"iid-{node.name}",
            ssh_keys=list(settings["SSH_AUTHORIZED_KEYS"]),
            state=(record or {}).get("state", "planned"))
    ctx.update(extra)
    return ctx
