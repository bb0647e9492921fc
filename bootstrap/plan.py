"""Compile a :class:`~bootstrap.zone.Zone` into a plan: every location's identity.

The plan is pure data derived from the zone file alone, so two appliances (both
ToRs of a pair) that hold the same zone file compute the same plan, bit for bit.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field

from .schema import circuit_text
from .zone.model import LEARNED, Zone


@dataclass(frozen=True, slots=True)
class Subnet:
    """One pod's (or the core's) subnet of one network."""

    network: str
    cidr: str
    prefix: int
    netmask: str
    gateway: str
    broadcast: str


@dataclass(slots=True)
class Node:
    """The identity of one location: a switch, a server or a BMC."""

    name: str
    fqdn: str
    kind: str                 # switch | server | bmc
    role: str | None
    pod: str | None           # None for core switches
    pod_index: int            # 0 for the core
    unit: int | None
    network: str              # where its DHCP identity lives (mgmt, lom, provision)
    addresses: dict           # network name → address text
    links: tuple = ()         # ((switch node name, port text), …) it is cabled to
    ztp: str | None = None
    image: str | None = None
    firmware: tuple = ()
    groups: tuple = ()
    peer: str | None = None   # a server's BMC, a BMC's server
    switch_key: str | None = None
    remote_id: str | None = None   # the text remote-id naming this switch (not a MAC)
    circuit_id: str | None = None  # its relay's circuit-id template
    mac: str | None = None         # a switch's MAC set in the zone (a MAC remote-id)

    @property
    def address(self) -> str | None:
        """The address its DHCP identity hands out."""
        return self.addresses.get(self.network)

    @property
    def boot(self) -> str:
        if self.ztp:
            return f"ztp:{self.ztp}"
        if self.image:
            return f"image:{self.image}"
        return "none"

    def as_dict(self) -> dict:
        return {
            "name": self.name, "fqdn": self.fqdn, "kind": self.kind, "role": self.role,
            "pod": self.pod, "pod_index": self.pod_index, "unit": self.unit,
            "network": self.network, "address": self.address, "addresses": dict(self.addresses),
            "links": [{"switch": s, "port": p} for s, p in self.links], "boot": self.boot,
            "firmware": list(self.firmware), "groups": list(self.groups), "peer": self.peer,
        }


@dataclass
class PodPlan:
    name: str
    index: int
    nodes: list = field(default_factory=list)   # node names, plan order


@dataclass
class Plan:
    zone: Zone
    nodes: dict                    # name → Node, plan order
    pods: dict                     # name → PodPlan
    subnets: dict                  # (network, pod_index) → Subnet
    by_address: dict               # address → Node

    def subnet(self, node: Node, network: str | None = None) -> Subnet:
        return self.subnets[(network or node.network, node.pod_index)]

    def select(self, pod: str | None = None, kind: str | None = None):
        """Nodes in plan order, optionally of one pod and one kind."""
        names = self.pods[pod].nodes if pod else self.nodes
        for name in names:
            node = self.nodes[name]
            if kind is None or node.kind == kind:
                yield node

    def servers(self, pod: str | None = None):
        return self.select(pod, "server")


def _ip(value: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", value))


def _subnets(zone: Zone) -> dict:
    out = {}
    indexes = [0] + [pod.index for pod in zone.pods]
    for net in zone.networks.values():
        base, size = int(net.supernet.network_address), net.subnet_size
        mask = _ip((0xFFFFFFFF << (32 - net.prefix)) & 0xFFFFFFFF)
        for index in indexes:
            first = base + index * size
            out[(net.name, index)] = Subnet(
                net.name, f"{_ip(first)}/{net.prefix}", net.prefix, mask,
                _ip(first + zone.addressing.gateway), _ip(first + size - 1))
    return out


def _serving(zone: Zone, kind: str) -> list[str]:
    return [n.name for n in zone.networks.values() if n.serves == kind]


class _Compiler:
    def __init__(self, zone: Zone):
        self.zone = zone
        self.nodes: dict[str, Node] = {}
        self.pods: dict[str, PodPlan] = {}
        self.switch_nets = _serving(zone, "switch")
        self.bmc_nets = _serving(zone, "bmc")
        self.server_nets = _serving(zone, "server")
        self.bases = {n.name: (int(n.supernet.network_address), n.subnet_size)
                      for n in zone.networks.values()}

    def addr(self, networks, index: int, host: int) -> dict:
        out = {}
        for net in networks:
            base, size = self.bases[net]
            out[net] = _ip(base + index * size + host)
        return out

    def fqdn(self, name: str) -> str:
        return f"{name}.{self.zone.domain}"

    def add(self, node: Node, pod: PodPlan | None) -> None:
        self.nodes[node.name] = node
        if pod is not None:
            pod.nodes.append(node.name)

    def core(self) -> None:
        a = self.zone.addressing
        for k, spec in enumerate(self.zone.core.values()):
            addresses = {net.name: _ip(self.bases[net.name][0] + net.core_host(a, k))
                         for net in self.zone.networks.values()}
            self.add(Node(name=spec.key, fqdn=self.fqdn(spec.key), kind="switch", role=None,
                          pod=None, pod_index=0, unit=None,
                          network=(self.switch_nets or [None])[0], addresses=addresses,
                          switch_key=spec.key, remote_id=_remote_id(spec, switch=spec.key),
                          circuit_id=spec.circuit_id, mac=spec.mac), None)

    def pod(self, pod) -> None:
        zone, a = self.zone, self.zone.addressing
        plan = self.pods[pod.name] = PodPlan(pod.name, pod.index)
        names = {key: f"{pod.name}-{key}" for key in zone.switches}
        for k, spec in enumerate(zone.switches.values()):
            role = zone.roles[spec.role]
            up = spec.uplink_switch
            links = ()
            if up is not None:
                port = spec.uplink_port.format(pod=pod.name, pod_index=pod.index)
                links = ((names.get(up, up), port),)
            rid = _remote_id(spec, pod=pod.name, pod_index=pod.index, switch=names[spec.key])
            name = names[spec.key]
            self.add(Node(name=name, fqdn=self.fqdn(name), kind="switch", role=spec.role,
                          pod=pod.name, pod_index=pod.index, unit=None,
                          network=(self.switch_nets or [None])[0],
                          addresses=self.addr(zone.networks, pod.index, a.switches_from + k),
                          links=links, ztp=role.ztp, image=role.image, firmware=role.firmware,
                          groups=role.groups, switch_key=spec.key, remote_id=rid,
                          circuit_id=spec.circuit_id, mac=pod.macs.get(spec.key)), plan)
        by_serves = {"server": [], "bmc": []}
        for spec in zone.switches.values():
            by_serves[spec.serves].append(spec)
        for unit, role_name in pod.units.items():
            self.unit(plan, pod, unit, zone.roles[role_name], names, by_serves)

    def unit(self, plan, pod, unit, role, names, by_serves) -> None:
        zone = self.zone
        host = zone.addressing.units_from + unit
        name = zone.naming.format(pod=pod.name, unit=unit, pod_index=pod.index)
        bmc = f"{name}-bmc"
        server_net, bmc_net = (self.server_nets or [None])[0], (self.bmc_nets or [None])[0]
        links = self.unit_links(by_serves["server"], pod, unit, names, server_net)
        bmc_links = self.unit_links(by_serves["bmc"], pod, unit, names, bmc_net)
        self.add(Node(name=name, fqdn=self.fqdn(name), kind="server", role=role.name,
                      pod=pod.name, pod_index=pod.index, unit=unit, network=server_net,
                      addresses=self.addr(self.server_nets, pod.index, host), links=links,
                      image=role.image, firmware=role.firmware, groups=role.groups,
                      peer=bmc), plan)
        self.add(Node(name=bmc, fqdn=self.fqdn(bmc), kind="bmc", role=role.name, pod=pod.name,
                      pod_index=pod.index, unit=unit, network=bmc_net,
                      addresses=self.addr(self.bmc_nets, pod.index, host), links=bmc_links,
                      firmware=role.firmware, peer=name), plan)

    def unit_links(self, specs, pod, unit: int, names: dict, network: str | None) -> tuple:
        """(switch, circuit-id text) of a unit's port on each switch: what its relay writes."""
        net = self.zone.networks.get(network)
        vlan = net.vlan if net is not None else None
        return tuple((names[s.key], circuit_text(s.circuit_id, unit, names[s.key], pod.name,
                                                 pod.index, vlan)) for s in specs)


def _remote_id(spec, **fields) -> str | None:
    """The text remote-id of a switch; None when it is a MAC (learned or set) or absent."""
    if spec.remote_id is None or spec.remote_id == LEARNED:
        return None
    return spec.remote_id.format(**{"pod": "", "pod_index": 0, **fields})


def compile_plan(zone: Zone) -> Plan:
    """Every location's identity, in a stable order: core, then pod by pod."""
    c = _Compiler(zone)
    c.core()
    for pod in sorted(zone.pods, key=lambda p: p.index):
        c.pod(pod)
    by_address = {}
    for node in c.nodes.values():
        for address in node.addresses.values():
            by_address.setdefault(address, node)
    return Plan(zone, c.nodes, c.pods, _subnets(zone), by_address)


def reverse_zones(plan: Plan) -> dict:
    """Reverse zone name → network for every network, cut on octet boundaries."""
    out = {}
    for net in plan.zone.networks.values():
        step = max(8, (net.supernet.prefixlen + 7) // 8 * 8)
        step = min(step, 24)
        for sub in net.supernet.subnets(new_prefix=step) if step > net.supernet.prefixlen \
                else [net.supernet]:
            octets = str(sub.network_address).split(".")[: step // 8]
            out[".".join(reversed(octets)) + ".in-addr.arpa"] = net.name
    return out


def address_in(address: str, cidr: str) -> bool:
    return ipaddress.IPv4Address(address) in ipaddress.IPv4Network(cidr)
