"""The plan: golden output for the lab, and properties over generated zones."""

from __future__ import annotations

import ipaddress
import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from bootstrap.locator import Locator, Miss
from bootstrap.plan import compile_plan
from bootstrap.zone import load_zone, parse_zone_text

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


def test_lab_plan_matches_golden(lab_plan):
    with open(os.path.join(DATA, "lab-plan.json"), encoding="utf-8") as fh:
        golden = json.load(fh)
    assert [n.as_dict() for n in lab_plan.nodes.values()] == golden["nodes"]


def test_design_rules_on_lab(lab_plan):
    server = lab_plan.nodes["p01-u03"]
    assert server.addresses == {"provision": "10.17.1.13", "storage": "10.18.1.13",
                                "underlay": "10.19.1.13"}
    assert lab_plan.nodes["p01-u03-bmc"].address == "10.16.1.13"
    assert lab_plan.subnet(server).gateway == "10.17.1.1"
    assert [lab_plan.nodes[s].address for s in ("p01-tor-a", "p01-tor-b", "p01-lom")] == \
        ["10.15.1.2", "10.15.1.3", "10.15.1.4"]
    assert server.links == (("p01-tor-a", "swp3"), ("p01-tor-b", "swp3"))
    assert server.fqdn == "p01-u03.lab1.example.net"
    assert server.firmware == ("bios-2.4.1",) and server.groups == ("compute",)


def test_override_changes_one_unit():
    plan = compile_plan(load_zone(os.path.join(DATA, "..", "..", "examples", "zone-10k.yml")))
    assert plan.nodes["p002-u40"].role == "storage"
    assert plan.nodes["p001-u40"].role == "hypervisor"
    assert sum(1 for _ in plan.servers()) == 10_000


ZONE = """
zone: z1
domain: z1.example.net
networks:
  mgmt: {{supernet: 10.{a}.0.0/16, prefix: {prefix}}}
  lom: {{supernet: 10.{b}.0.0/16, prefix: {prefix}}}
  provision: {{supernet: 10.{c}.0.0/16, prefix: {prefix}}}
addressing: {{gateway: 1, switches_from: 2, units_from: {units_from}}}
roles:
  tor: {{kind: switch}}
  lom-switch: {{kind: switch}}
  srv: {{kind: server}}
pod_template:
  circuit_id: "{circuit}"
  switches:
    tor-a: {{role: tor, remote_id: "{{pod}}-a"}}
    lom: {{role: lom-switch, remote_id: "{{pod}}-l"}}
  units:
    - {{units: 1-{units}, role: srv}}
pods:
{pods}
"""

CIRCUITS = ["swp{port}", "Ethernet{port}", "Ethernet1/{port}", "ge-0/0/{port}"]


@st.composite
def zones(draw):
    prefix = draw(st.integers(24, 26))
    units = draw(st.integers(1, (1 << (32 - prefix)) - 2 - 10 - 1))
    indexes = draw(st.lists(st.integers(1, 50), min_size=1, max_size=5, unique=True))
    pods = "\n".join(f"  - {{name: p{i}, index: {i}}}" for i in indexes)
    text = ZONE.format(a=15, b=16, c=17, prefix=prefix, units_from=10, units=units,
                       circuit=draw(st.sampled_from(CIRCUITS)), pods=pods)
    return compile_plan(parse_zone_text(text, "gen.yml"))


@settings(max_examples=40, deadline=None)
@given(zones())
def test_addresses_unique_and_inside_pod_subnet(plan):
    seen = {}
    for node in plan.nodes.values():
        for net, address in node.addresses.items():
            assert (net, address) not in seen, (node.name, seen[(net, address)])
            seen[(net, address)] = node.name
            subnet = plan.subnets[(net, node.pod_index)]
            assert ipaddress.IPv4Address(address) in ipaddress.IPv4Network(subnet.cidr)
            assert address not in (subnet.gateway, subnet.broadcast)


@settings(max_examples=40, deadline=None)
@given(zones(), st.data())
def test_every_circuit_form_finds_its_location(plan, data):
    locator = Locator(plan)
    servers = list(plan.servers())
    node = data.draw(st.sampled_from(servers))
    switch = plan.nodes[node.links[0][0]]
    text = switch.circuit_id.format(port=node.unit).encode()
    cisco = bytes([0, 4, 0, 10, 1, node.unit]) if node.unit < 256 else None
    gateway = plan.subnet(node).gateway
    for circuit in filter(None, (text, cisco)):
        for remote in (None, switch.remote_id.encode()):
            found = locator.locate(gateway, circuit, remote)
            assert not isinstance(found, Miss), found
            assert found.node is node and found.address == node.address
    bmc = plan.nodes[node.peer]
    found = locator.locate(plan.subnet(bmc).gateway, text)
    assert found.node is bmc and found.address == bmc.address


def test_untrusted_relay_and_unknown_port(lab_plan):
    locator = Locator(lab_plan)
    assert "untrusted" in locator.locate("192.0.2.1", b"swp3").reason
    miss = locator.locate("10.17.1.1", b"swp9")
    assert miss.reason == "unknown location" and miss.port == 9
    assert "not a port" in locator.locate("10.17.1.1", b"xyz", b"p01-tor-a").reason
    assert "unknown remote-id" in locator.locate("10.17.1.1", b"swp3", b"nope").reason


def test_tor_pair_gives_one_identity(lab_plan):
    locator = Locator(lab_plan)
    a = locator.locate("10.17.1.1", b"swp2", b"p01-tor-a")
    b = locator.locate("10.17.1.1", b"swp2", b"p01-tor-b")
    relay_a = locator.locate("10.17.1.2", b"swp2")  # tor-a's own address as giaddr
    assert a.node is b.node is relay_a.node and a.address == "10.17.1.12"


def test_switch_identities(lab_plan):
    locator = Locator(lab_plan)
    assert locator.locate("10.15.1.1", b"swp1", b"core-2").node.name == "p01-tor-b"
    assert locator.locate("10.15.1.1", b"swp48").node.name == "p01-lom"
    ambiguous = locator.locate("10.15.1.1", b"swp1")
    assert isinstance(ambiguous, Miss) and "ambiguous" in ambiguous.reason


def test_four_characters_of_text_are_not_cisco_binary():
    """``xe-1`` was read as VLAN 0x7865 port 49; a VLAN id never starts above 0x0f."""
    from bootstrap.locator import cisco_port
    assert cisco_port(b"xe-1") is None and cisco_port(b"swp9") is None
    assert cisco_port(bytes([0, 10, 1, 7])) == 7
    assert cisco_port(bytes([0, 4, 0x0f, 0xff, 1, 33])) == 33
    assert cisco_port(bytes([0, 4, 0x78, 0x65, 0x2d, 0x31])) is None
