"""The hot-path lookup: (relay or switch, circuit-id) → location.

Relay agents say where a request came from in Option 82. The switch is named by
the remote-id when the relay sends one (a text the zone gives, or the switch's MAC,
set in the zone or learned from the switch's own lease), by the circuit-id when its
text carries the switch's name (SONiC's ``p01-tor-a:Ethernet4``), otherwise by the
relay address (giaddr): either a pod's gateway on one network (the anycast address
both ToRs share) or one switch's own address. The port is the circuit-id, in the
text form the zone's template gives (``swp7``, ``Ethernet1/7``, ``ge-0/0/6.0:43``)
or Cisco's binary form. When these sources disagree the answer is a :class:`Miss`,
never a guess.

Every lookup is a handful of dict probes: O(1) per request, no parsing loops. The
text forms are computed when the locator is built: one dict per template (and VLAN)
for templates that do not name the switch, one global dict text → (switch, port)
for those that do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .plan import Node, Plan
from .schema import LANES_PER_PORT, circuit_text, field_names, mac_bytes, mac_text

MAX_PORT = 256
NAMES_SWITCH = frozenset(("switch", "pod", "pod_index"))
CONFLICT = "remote-id-conflict"


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
    """Why a request has no location; ``switch``/``port`` say what was asked, ``code``
    is the event kind (``remote-id-conflict`` when Option 82's parts disagree)."""

    reason: str
    switch: str | None = None
    port: int | None = None
    code: str = "unknown-location"


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


def template_ports(template: str, last: int = MAX_PORT, vlan: int | None = None,
                   **where) -> dict:
    """Every text form the template gives, as bytes → port, for ports 1..last."""
    return {circuit_text(template, p, vlan=vlan, **where).encode(): p
            for p in range(1, last + 1)}


def names_switch(template: str) -> bool:
    """Does the template's text carry the switch (its name or its pod)?"""
    return bool(field_names(template) & NAMES_SWITCH)


class Locator:
    """Built once per plan; :meth:`locate` is the per-packet call, :meth:`learn` notes a
    switch's MAC seen in its own lease (a MAC remote-id names it from then on)."""

    def __init__(self, plan: Plan, trusted_relays=()):
        self.plan = plan
        self._vlans = {n.name: n.vlan for n in plan.zone.networks.values()}
        self._shared: dict[tuple, dict] = {}       # (template, vlan) → {text: port}
        self._net_forms: dict[str, tuple] = {}     # network → the shared dicts to try
        self._switch_texts: dict[bytes, tuple] = {}  # text → (switch name, port, vlan)
        self.switch_by_remote_id: dict[bytes, Node] = {}
        self.switch_by_mac: dict[bytes, Node] = {}
        self._set_macs: set = set()                # MACs the zone sets: never re-learned
        self._learned: dict[str, bytes] = {}       # switch name → learned MAC
        self.relays: dict[str, Relay] = {}
        self._ports: dict[tuple, Node] = {}        # (switch name, port) → node
        self._pod_ports: dict[tuple, object] = {}  # (pod index, network, port) → node | list
        self._index(trusted_relays)

    # --- building ---------------------------------------------------------------------

    def _index(self, trusted_relays) -> None:
        plan = self.plan
        switches = [n for n in plan.nodes.values() if n.kind == "switch"]
        for node in switches:
            self._index_switch(node)
        for node in plan.nodes.values():
            self._index_links(node)
        highest: dict[str, int] = {}
        for switch, port in self._ports:
            highest[switch] = max(port, highest.get(switch, 0))
        for node in switches:
            if names_switch(node.circuit_id):
                self._index_switch_texts(node, highest.get(node.name, 0))
        for net in self._vlans:
            self._net_forms[net] = self._forms_on(net)
        self._net_forms[""] = self._forms_on("")
        for (net, index), subnet in plan.subnets.items():
            self.relays.setdefault(subnet.gateway, Relay(index, net, None))
        for address in trusted_relays:
            self.relays.setdefault(address, Relay(-1, "", None))

    def _vlan_keys(self, template: str) -> set:
        """The VLAN values a template's texts depend on: each network's, or just None."""
        if "vlan" not in field_names(template):
            return {None}
        return {v for v in self._vlans.values() if v is not None}

    def _index_switch(self, node: Node) -> None:
        if not names_switch(node.circuit_id):
            for vlan in self._vlan_keys(node.circuit_id):
                key = (node.circuit_id, vlan)
                if key not in self._shared:
                    self._shared[key] = template_ports(node.circuit_id, vlan=vlan)
        if node.remote_id:
            self.switch_by_remote_id[node.remote_id.encode()] = node
        if node.mac:
            mac = mac_bytes(node.mac, raw=False)
            self.switch_by_mac[mac] = node
            self._set_macs.add(mac)
        for net, address in node.addresses.items():
            self.relays[address] = Relay(node.pod_index, net, node.name)

    def _where(self, switch: Node) -> dict:
        return {"switch": switch.name, "pod": switch.pod or "", "pod_index": switch.pod_index}

    def _index_switch_texts(self, switch: Node, last: int) -> None:
        """A template that names the switch: its cabled ports' texts in the one global dict."""
        for vlan in self._vlan_keys(switch.circuit_id):
            for text, port in template_ports(switch.circuit_id, last, vlan,
                                             **self._where(switch)).items():
                self._switch_texts.setdefault(text, (switch.name, port, vlan))

    def _index_links(self, node: Node) -> None:
        for switch, port_text in node.links:
            sw = self.plan.nodes.get(switch)
            if sw is None:
                continue
            port = node.unit if node.kind != "switch" else self._uplink_port(sw, port_text, node)
            if port is None:
                continue
            self._ports[(switch, port)] = node
            # Switches answer only on their own network: a ToR's uplink port
            # number must not shadow a server's port on the provision network.
            networks = (node.network,) if node.kind == "switch" else node.addresses
            for net in networks:
                self._add_pod_port((node.pod_index, net, port), node)

    def _uplink_port(self, sw: Node, text: str, node: Node) -> int | None:
        """The port number of an uplink: the number itself, the port whose circuit-id text
        the upstream writes is (or ends with) this interface name, or its trailing number."""
        if text.isdigit():
            return int(text)
        vlan = self._vlans.get(node.network) if "vlan" in field_names(sw.circuit_id) else None
        port = self._shared.get((sw.circuit_id, vlan), {}).get(text.encode())
        if port is not None:
            return port
        number = _trailing_number(text)
        if number is None:
            return None
        fields = field_names(sw.circuit_id)
        guess = number // LANES_PER_PORT + 1 if "lane" in fields else \
            number + 1 if "port0" in fields else number
        if 0 < guess <= MAX_PORT and circuit_text(sw.circuit_id, guess, vlan=vlan,
                                                  **self._where(sw)).endswith(text):
            return guess
        return number

    def _forms_on(self, network: str) -> tuple:
        vlan = self._vlans.get(network)
        return tuple(forms for (template, v), forms in self._shared.items()
                     if v is None or v == vlan)

    def _add_pod_port(self, key, node: Node) -> None:
        have = self._pod_ports.get(key)
        if have is None or have is node:
            self._pod_ports[key] = node
        elif isinstance(have, list):
            if node not in have:
                have.append(node)
        else:
            self._pod_ports[key] = [have, node]

    # --- learning ---------------------------------------------------------------------

    def learn(self, node: Node, mac: str) -> bool:
        """``node`` (a switch) leased with ``mac``: a MAC remote-id names it from now on.
        A MAC the zone sets is never re-bound; True when something changed."""
        raw = mac_bytes(mac, raw=False) if node.kind == "switch" and not node.mac else None
        if raw is None or raw in self._set_macs or self._learned.get(node.name) == raw:
            return False
        old = self._learned.pop(node.name, None)
        if old is not None and self.switch_by_mac.get(old) is node:
            del self.switch_by_mac[old]
        before = self.switch_by_mac.get(raw)
        if before is not None:  # that hardware now sits at another switch's location
            self._learned.pop(before.name, None)
        self.switch_by_mac[raw] = node
        self._learned[node.name] = raw
        return True

    def learned(self) -> dict:
        """Switch name → learned MAC text."""
        return {name: mac_text(mac) for name, mac in self._learned.items()}

    # --- the per-packet lookup ------------------------------------------------------------

    def trusted(self, giaddr: str) -> bool:
        return giaddr in self.relays

    def port(self, switch: Node, circuit: bytes, network: str = "") -> int | None:
        vlan = self._vlans.get(network) if "vlan" in field_names(switch.circuit_id) else None
        port = self._shared.get((switch.circuit_id, vlan), {}).get(circuit)
        if port is None:
            hit = self._switch_texts.get(circuit)
            port = hit[1] if hit is not None and hit[0] == switch.name else None
        return port if port is not None else cisco_port(circuit)

    def locate(self, giaddr: str, circuit: bytes, remote_id: bytes | None = None):
        """The :class:`Location` for a relayed request, or a :class:`Miss` saying why not."""
        relay = self.relays.get(giaddr)
        if relay is None:
            return Miss(f"untrusted relay {giaddr}")
        named = None
        if remote_id:
            named = self.switch_by_remote_id.get(remote_id)
            if named is None:
                mac = mac_bytes(remote_id)
                if mac is None:
                    return Miss(f"unknown remote-id {remote_id!r}")
                # A MAC not learned yet: the relay address and circuit-id identify.
                named = self.switch_by_mac.get(mac)
        hit = self._switch_texts.get(circuit)
        if hit is not None:
            return self._at_named_port(relay, named, hit)
        if named is not None:
            return self._at_switch(named, circuit, relay, by_remote_id=True)
        if relay.switch is not None:
            return self._at_switch(self.plan.nodes[relay.switch], circuit, relay)
        return self._at_gateway(relay, circuit)

    def _disagrees(self, switch: Node, relay: Relay) -> str | None:
        """Why ``switch`` cannot be the one behind ``relay`` (None: it can be)."""
        if relay.switch is not None and relay.switch != switch.name:
            return f"relay address is {relay.switch}'s"
        if relay.pod_index > 0 and switch.pod_index not in (0, relay.pod_index):
            return f"relay is a gateway of pod {relay.pod_index}, {switch.name} is in pod " \
                f"{switch.pod_index}"
        return None

    def _at_named_port(self, relay: Relay, named: Node | None, hit: tuple):
        name, port, vlan = hit
        switch = self.plan.nodes[name]
        if named is not None and named is not switch:
            return Miss(f"remote-id names {named.name}, circuit-id names {name}", name, port,
                        CONFLICT)
        why = self._disagrees(switch, relay)
        if why is None and vlan is not None and relay.network and \
                self._vlans.get(relay.network) != vlan:
            why = f"circuit-id says VLAN {vlan}, the relay is on {relay.network}"
        if why is not None:
            return Miss(f"circuit-id names {name}, but {why}", name, port,
                        CONFLICT if named is not None else "unknown-location")
        return self._at_port(switch, port, relay)

    def _at_switch(self, switch: Node, circuit: bytes, relay: Relay, by_remote_id=False):
        why = self._disagrees(switch, relay) if by_remote_id else None
        if why is not None:
            return Miss(f"remote-id names {switch.name}, but {why}", switch.name, None, CONFLICT)
        port = self.port(switch, circuit, relay.network)
        if port is None:
            return Miss(f"circuit-id {circuit!r} is not a port of {switch.name}", switch.name)
        return self._at_port(switch, port, relay)

    def _at_port(self, switch: Node, port: int, relay: Relay):
        node = self._ports.get((switch.name, port))
        if node is None:
            return Miss("unknown location", switch.name, port)
        return self._answer(node, relay, switch.name, port)

    def _at_gateway(self, relay: Relay, circuit: bytes):
        forms = self._net_forms.get(relay.network, ())
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
