"""The hot-path lookup: (relay or switch, circuit-id) → location.

Relay agents say where a request came from in Option 82. The switch is named by
the remote-id when the relay sends one, otherwise by the relay address (giaddr):
either a pod's gateway on one network (the anycast address both ToRs share) or
one switch's own address. The port is the circuit-id, in the text form the
zone's template gives (``swp7``, ``Ethernet1/7``) or Cisco's binary form.

Every lookup is a handful of dict probes: O(1) per request, no parsing loops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .plan import Node, Plan

MAX_PORT = 256


@dataclass(frozen=True, slots=True)
class Relay:
    """What a relay address tells: the pod, the network and maybe the very switch."""

    pod_index: int
    network: str
    switch: str | None


@dataclass(frozen=True, slots=True)
class Location:
    node: Node
    network: str
    address: str
    switch: str
    port: int


@dataclass(frozen=True, slots=True)
class Miss:
    """Why a request has no location; ``switch``/``port`` say what was asked."""

    reason: str
    switch: str | None = None
    port: int | None = None


def cisco_port(circuit: bytes) -> int | None:
    """Port from Cisco's binary circuit-id: [type 0, len 4,] VLAN(2) module(1) port(1).

    A VLAN id is at most 4095, so its first byte is below 0x10: that tells the binary
    form from four characters of text (``xe-1`` is no VLAN 0x7865, port 49).
    """
    if len(circuit) == 6 and circuit[0] == 0 and circuit[1] == 4:
        circuit = circuit[2:]
    if len(circuit) == 4 and circuit[0] < 0x10:
        return circuit[3]
    return None


def template_ports(template: str, last: int = MAX_PORT) -> dict:
    """Every text form the template gives, as bytes → port, for ports 1..last."""
    return {template.format(port=p).encode(): p for p in range(1, last + 1)}


class Locator:
    """Built once per plan; :meth:`locate` is the per-packet call."""

    def __init__(self, plan: Plan, trusted_relays=()):
        self.plan = plan
        self._forms: dict[str, dict] = {}
        self.switch_by_remote_id: dict[bytes, Node] = {}
        self.relays: dict[str, Relay] = {}
        self._ports: dict[tuple, Node] = {}        # (switch name, port) → node
        self._pod_ports: dict[tuple, object] = {}  # (pod index, network, port) → node | list
        self._index(trusted_relays)

    def _index(self, trusted_relays) -> None:
        plan = self.plan
        for node in plan.nodes.values():
            if node.kind == "switch":
                self._forms.setdefault(node.circuit_id, template_ports(node.circuit_id))
                if node.remote_id:
                    self.switch_by_remote_id[node.remote_id.encode()] = node
                for net, address in node.addresses.items():
                    self.relays[address] = Relay(node.pod_index, net, node.name)
            for switch, port_text in node.links:
                sw = plan.nodes.get(switch)
                port = self._forms.get(sw.circuit_id, {}).get(port_text.encode()) if sw else None
                if port is None and sw is not None:
                    port = _trailing_number(port_text)
                if port is None:
                    continue
                self._ports[(switch, port)] = node
                # Switches answer only on their own network: a ToR's uplink port
                # number must not shadow a server's port on the provision network.
                networks = (node.network,) if node.kind == "switch" else node.addresses
                for net in networks:
                    self._add_pod_port((node.pod_index, net, port), node)
        for (net, index), subnet in plan.subnets.items():
            self.relays.setdefault(subnet.gateway, Relay(index, net, None))
        for address in trusted_relays:
            self.relays.setdefault(address, Relay(-1, "", None))

    def _add_pod_port(self, key, node: Node) -> None:
        have = self._pod_ports.get(key)
        if have is None or have is node:
            self._pod_ports[key] = node
        elif isinstance(have, list):
            if node not in have:
                have.append(node)
        else:
            self._pod_ports[key] = [have, node]

    def trusted(self, giaddr: str) -> bool:
        return giaddr in self.relays

    def port(self, switch: Node, circuit: bytes) -> int | None:
        port = self._forms[switch.circuit_id].get(circuit)
        return port if port is not None else cisco_port(circuit)

    def locate(self, giaddr: str, circuit: bytes, remote_id: bytes | None = None):
        """The :class:`Location` for a relayed request, or a :class:`Miss` saying why not."""
        relay = self.relays.get(giaddr)
        if relay is None:
            return Miss(f"untrusted relay {giaddr}")
        if remote_id:
            switch = self.switch_by_remote_id.get(remote_id)
            if switch is None:
                return Miss(f"unknown remote-id {remote_id!r}")
            return self._at_switch(switch, circuit, relay)
        if relay.switch is not None:
            return self._at_switch(self.plan.nodes[relay.switch], circuit, relay)
        return self._at_gateway(relay, circuit)

    def _at_switch(self, switch: Node, circuit: bytes, relay: Relay):
        port = self.port(switch, circuit)
        if port is None:
            return Miss(f"circuit-id {circuit!r} is not a port of {switch.name}", switch.name)
        node = self._ports.get((switch.name, port))
        if node is None:
            return Miss("unknown location", switch.name, port)
        return self._answer(node, relay, switch.name, port)

    def _at_gateway(self, relay: Relay, circuit: bytes):
        forms = self._forms.values()
        port = next((f[circuit] for f in forms if circuit in f), None)
        if port is None:
            port = cisco_port(circuit)
        if port is None:
            return Miss(f"circuit-id {circuit!r} names no port")
        found = self._pod_ports.get((relay.pod_index, relay.network, port))
        where = f"gateway of pod {relay.pod_index} on {relay.network}"
        if found is None:
            return Miss("unknown location", where, port)
        if isinstance(found, list):
            names = ", ".join(n.name for n in found)
            return Miss(f"ambiguous location ({names}): the relay must send a remote-id", where, port)
        return self._answer(found, relay, where, port)

    def _answer(self, node: Node, relay: Relay, switch: str, port: int):
        network = relay.network
        if relay.pod_index <= 0:  # a core or a listed relay: the node's own network
            network = node.network
        address = node.addresses.get(network)
        if address is None:
            return Miss(f"{node.name} has no address on {network}", switch, port)
        return Location(node, network, address, switch, port)

    def by_address(self, address: str) -> Node | None:
        """The node whose plan address this is (renewals arrive without Option 82)."""
        return self.plan.by_address.get(address)


_TRAILING = re.compile(r"(\d+)$")


def _trailing_number(text: str) -> int | None:
    m = _TRAILING.search(text)
    return int(m.group(1)) if m else None
