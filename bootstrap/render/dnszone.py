"""DNS records from the plan: one forward zone, one reverse zone per network block.

:func:`zones` is the single source of records for both the rendered RFC 1035
master files and the DNS service, so what ``named-checkzone`` accepts is what
the service answers.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ..plan import Plan, reverse_zones

TTL = 300


@dataclass
class DnsZone:
    origin: str                       # without the trailing dot
    serial: int
    nameserver: str                   # fqdn of the NS
    records: list = field(default_factory=list)  # (fqdn, type, value)

    @property
    def soa(self) -> tuple:
        return (self.nameserver, f"hostmaster.{self.origin}", self.serial, 3600, 600, 86400, TTL)


def serial_of(plan: Plan) -> int:
    """Same zone file → same serial on every appliance (both ToRs answer alike)."""
    digest = plan.zone.digest or "0"
    return int(digest[:7], 16) or 1


def ptr_name(address: str) -> str:
    return ipaddress.IPv4Address(address).reverse_pointer


def zones(plan: Plan) -> dict:
    """Zone origin → :class:`DnsZone` with every A and PTR record of the plan."""
    domain, serial = plan.zone.domain, serial_of(plan)
    ns = f"ns.{domain}"
    forward = DnsZone(domain, serial, ns)
    host = urlparse(plan.zone.controller_url).hostname
    try:
        forward.records.append((ns, "A", str(ipaddress.IPv4Address(host))))
    except ValueError:
        pass
    reverse = {origin: DnsZone(origin, serial, ns) for origin in reverse_zones(plan)}
    for node in plan.nodes.values():
        for net, address in node.addresses.items():
            name = node.fqdn if net == node.network else f"{node.name}.{net}.{domain}"
            forward.records.append((name, "A", address))
            rev = ptr_name(address)
            origin = rev.split(".", 4 - _octets(plan, net))[-1]
            if origin in reverse:
                reverse[origin].records.append((rev, "PTR", name))
    return {domain: forward, **reverse}


def _octets(plan: Plan, net: str) -> int:
    """How many octets of an address the reverse zone of ``net`` covers."""
    prefix = plan.zone.networks[net].supernet.prefixlen
    return min(3, max(1, (prefix + 7) // 8))


def master_file(zone: DnsZone) -> str:
    """The zone in RFC 1035 master file format."""
    mname, rname, serial, refresh, retry, expire, minimum = zone.soa
    lines = [f"$ORIGIN {zone.origin}.", f"$TTL {TTL}",
             f"@ IN SOA {mname}. {rname}. ( {serial} {refresh} {retry} {expire} {minimum} )",
             f"@ IN NS {zone.nameserver}."]
    for name, rtype, value in zone.records:
        target = f"{value}." if rtype in ("PTR", "CNAME", "NS") else value
        lines.append(f"{name}. IN {rtype} {target}")
    return "\n".join(lines) + "\n"


def write(plan: Plan, out: str) -> list[str]:
    os.makedirs(out, exist_ok=True)
    written = []
    for origin, zone in zones(plan).items():
        path = os.path.join(out, f"db.{origin}")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(master_file(zone))
        written.append(path)
    return written
