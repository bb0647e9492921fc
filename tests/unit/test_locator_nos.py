"""Each NOS's Option 82, default and configurable form, locates the right unit in the
250-pod zone (examples/zone-10k.yml); MAC remote-ids, set and learned; disagreements.

The circuit-ids below are written out as each relay writes them, not rendered from
the template under test.
"""

from __future__ import annotations

import functools

import pytest
from conftest import ZONE_10K

from bootstrap.dhcp import codec, probe
from bootstrap.dhcp.answer import Answerer, Drop, Reply, Settings
from bootstrap.locator import Location, Locator, Miss
from bootstrap.plan import compile_plan
from bootstrap.schema import mac_bytes
from bootstrap.zone import load_zone, parse_zone_text

TEMPLATE_LINE = '  circuit_id: "swp{port}"'
VLANS = {15: 10, 16: 11, 17: 43, 18: 44, 19: 45}   # supernet 10.N.0.0/16 → VLAN id
SET_MAC = "0C29.EF37.0A01"   # p137-tor-a's MAC, set in the zone (Cisco's dotted text)


def zone_text(pod_template: str, vlans=False, macs=False, tor_remote=None) -> str:
    """The 10k zone with ``pod_template`` instead of its circuit_id line; the ToRs'
    remote_id is ``tor_remote`` (default: left to the preset)."""
    with open(ZONE_10K, encoding="utf-8") as fh:
        text = fh.read().replace(TEMPLATE_LINE, pod_template)
    for side in ("a", "b"):
        own = f'remote_id: "{tor_remote}", ' if tor_remote else ""
        text = text.replace(f'remote_id: "{{pod}}-tor-{side}", ', own)
    if vlans:
        for octet, vlan in VLANS.items():
            text = text.replace(f"{{supernet: 10.{octet}.", f"{{vlan: {vlan}, supernet: 10.{octet}.")
    if macs:
        text = text.replace("{name: p137, index: 137}",
                            f'{{name: p137, index: 137, macs: {{tor-a: "{SET_MAC}"}}}}')
    return text


@functools.lru_cache(maxsize=None)
def locator(pod_template: str, **options) -> Locator:
    return Locator(compile_plan(parse_zone_text(zone_text(pod_template, **options), "z.yml")))


def found(loc: Locator, giaddr: str, circuit: bytes, remote: bytes | None = None) -> str:
    where = loc.locate(giaddr, circuit, remote)
    assert isinstance(where, Location), where
    return where.node.name


GATEWAY_137 = "10.17.137.1"   # pod 137's anycast gateway on provision
TOR_137A = "10.17.137.2"      # p137-tor-a's own address there
RAW_MAC = bytes.fromhex("0c29ef370a01")

# (NOS, form, pod_template lines, zone options, giaddr, circuit-id, remote-id, unit)
CASES = [
    ("sonic", "default", "  relay: sonic", {}, GATEWAY_137,
     b"p137-tor-a:Ethernet112", b"0c:29:ef:37:0a:01", "p137-u29"),
    ("sonic", "default, raw MAC, tor-b", "  relay: sonic", {}, GATEWAY_137,
     b"p137-tor-b:Ethernet0", RAW_MAC, "p137-u01"),
    ("sonic", "%p only, from tor-a's own address",
     '  relay: sonic\n  circuit_id: "Ethernet{lane}"', {}, TOR_137A, b"Ethernet156", None,
     "p137-u40"),
    ("cumulus", "default (use-pif-circuit-id)", "  relay: cumulus", {}, GATEWAY_137,
     b"swp7", None, "p137-u07"),
    ("cumulus", "remote-id set to the hostname", "  relay: cumulus",
     {"tor_remote": "{switch}"}, GATEWAY_137, b"swp7", b"p137-tor-b", "p137-u07"),
    ("eos", "default", "  relay: eos", {}, GATEWAY_137, b"Ethernet33", b"p137-tor-a",
     "p137-u33"),
    ("eos", "circuit-id string per interface",
     '  relay: eos\n  circuit_id: "{switch}-Et{port}"', {}, GATEWAY_137,
     b"p137-tor-b-Et2", None, "p137-u02"),
    ("nxos", "default (binary vlan-module-port, MAC set in the zone)", "  relay: nxos",
     {"macs": True}, GATEWAY_137, bytes([0, 4, 0, 43, 1, 12]), RAW_MAC, "p137-u12"),
    ("nxos", "format-type string", "  relay: nxos", {}, GATEWAY_137, b"Ethernet1/12",
     None, "p137-u12"),
    ("junos", "default with use-vlan-id", "  relay: junos", {"vlans": True}, GATEWAY_137,
     b"ge-0/0/39.0:43", None, "p137-u40"),
    ("junos", "prefix host-name",
     '  relay: junos\n  circuit_id: "{switch}:ge-0/0/{port0}.0:{vlan}"', {"vlans": True},
     GATEWAY_137, b"p137-tor-a:ge-0/0/0.0:43", None, "p137-u01"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_each_nos_form_locates_its_unit_in_250_pods(case):
    _, _, lines, options, giaddr, circuit, remote, unit = case
    loc = locator(lines, **options)
    assert len(loc.plan.pods) == 250
    assert found(loc, giaddr, circuit, remote) == unit


# --- switches named by a MAC remote-id --------------------------------------------------

SONIC_LANE = '  relay: sonic\n  circuit_id: "Ethernet{lane}"'   # the circuit names no switch
GATEWAY_138 = "10.17.138.1"
MAC_A = "0c:29:ef:37:0a:01"


def fresh(lines: str, **options) -> Locator:
    """A locator of its own: learning changes it."""
    return Locator(compile_plan(parse_zone_text(zone_text(lines, **options), "z.yml")))


@pytest.mark.parametrize("text", ["0c:29:ef:01:02:03", "0C-29-EF-01-02-03", "0c29.ef01.0203",
                                  "0c29ef010203", "0C29EF010203"])
def test_mac_text_forms_are_one_mac(text):
    assert mac_bytes(text.encode()) == bytes.fromhex("0c29ef010203")
    assert mac_bytes(bytes.fromhex("0c29ef010203")) == bytes.fromhex("0c29ef010203")


@pytest.mark.parametrize("text", ["0c:29:ef:01:02", "0c:29-ef:01:02:03", "0c29.ef01.02033",
                                  "xx:29:ef:01:02:03", "p137-tor-a"])
def test_what_is_no_mac(text):
    assert mac_bytes(text.encode()) is None


def test_until_learned_giaddr_identifies_then_a_disagreeing_mac_is_a_conflict():
    loc = fresh(SONIC_LANE)
    tor = loc.plan.nodes["p137-tor-a"]
    # Not learned: the MAC says nothing, the relay address does (pods 137 and 138 alike).
    assert found(loc, GATEWAY_137, b"Ethernet8", MAC_A.encode()) == "p137-u03"
    assert found(loc, GATEWAY_138, b"Ethernet8", MAC_A.encode()) == "p138-u03"
    assert loc.learn(tor, MAC_A.upper()) and not loc.learn(tor, MAC_A)
    assert found(loc, GATEWAY_137, b"Ethernet8", bytes.fromhex(MAC_A.replace(":", ""))) == \
        "p137-u03"
    conflict = loc.locate(GATEWAY_138, b"Ethernet8", MAC_A.encode())
    assert isinstance(conflict, Miss) and conflict.code == "remote-id-conflict"
    assert "p137-tor-a" in conflict.reason and "pod 138" in conflict.reason
    # From tor-b's own address, tor-a's MAC cannot be right either.
    assert loc.locate("10.17.137.3", b"Ethernet8", MAC_A.encode()).code == "remote-id-conflict"


def test_replaced_switch_hardware_is_relearned():
    loc = fresh(SONIC_LANE)
    a, b = loc.plan.nodes["p137-tor-a"], loc.plan.nodes["p138-tor-a"]
    loc.learn(a, MAC_A)
    loc.learn(a, "0c:29:ef:37:0a:99")      # p137-tor-a replaced: the old MAC names nothing
    assert found(loc, GATEWAY_138, b"Ethernet8", MAC_A.encode()) == "p138-u03"
    loc.learn(b, "0c:29:ef:37:0a:99")      # that hardware moved to pod 138
    assert loc.learned() == {"p138-tor-a": "0c:29:ef:37:0a:99"}
    assert found(loc, GATEWAY_138, b"Ethernet8", b"0c29ef370a99") == "p138-u03"


def test_a_mac_set_in_the_zone_is_not_relearned_and_conflicts_are_caught():
    loc = fresh("  relay: nxos", macs=True)
    tor = loc.plan.nodes["p137-tor-a"]
    assert tor.mac == MAC_A and not loc.learn(tor, "0c:29:ef:37:0a:99")
    binary = bytes([0, 4, 0, 43, 1, 12])
    assert found(loc, GATEWAY_137, binary, bytes.fromhex("0c29ef370a01")) == "p137-u12"
    assert loc.locate(GATEWAY_138, binary, bytes.fromhex("0c29ef370a01")).code == \
        "remote-id-conflict"


def test_sonic_circuit_naming_another_switch_than_the_relay_is_refused():
    loc = locator("  relay: sonic")
    wrong_pod = loc.locate(GATEWAY_138, b"p137-tor-a:Ethernet8")
    assert isinstance(wrong_pod, Miss) and "pod 138" in wrong_pod.reason
    wrong_switch = loc.locate("10.17.137.3", b"p137-tor-a:Ethernet8")   # tor-b's address
    assert isinstance(wrong_switch, Miss) and "p137-tor-b" in wrong_switch.reason
    unknown = loc.locate(GATEWAY_137, b"p137-tor-a:Ethernet9")          # no lane 9
    assert isinstance(unknown, Miss)


def test_switch_learned_from_its_own_lease_through_the_answerer():
    """A SONiC ToR boots through the core (its chaddr is its MAC); from then on, its
    relay's MAC remote-id names it, and one that disagrees is an event, not an answer."""
    plan = compile_plan(parse_zone_text(zone_text(SONIC_LANE), "z.yml"))
    answerer = Answerer(plan, Settings("10.17.0.2"))
    tor = plan.nodes["p137-tor-a"]
    request = probe.request(codec.REQUEST, mac=MAC_A, giaddr="10.15.137.1",
                            circuit="Ethernet544", remote="core-1",
                            requested=tor.address)
    reply = answerer.answer(codec.decode(codec.encode(request)), "10.15.137.1")
    assert isinstance(reply, Reply) and reply.kind == "ack", reply
    assert reply.location.node is tor
    assert answerer.locator.learned() == {"p137-tor-a": MAC_A}
    relayed = probe.request(codec.DISCOVER, mac="52:54:00:00:01:03", giaddr=GATEWAY_138,
                            circuit="Ethernet8", remote=MAC_A)
    drop = answerer.answer(codec.decode(codec.encode(relayed)), GATEWAY_138)
    assert isinstance(drop, Drop) and drop.code == "remote-id-conflict"
    assert drop.event.kind == "remote-id-conflict"
    assert drop.event.detail["remote_id"] == MAC_A and drop.event.detail["giaddr"] == GATEWAY_138


def test_known_macs_from_the_store_seed_the_answerer():
    plan = compile_plan(parse_zone_text(zone_text(SONIC_LANE), "z.yml"))
    answerer = Answerer(plan, Settings("10.17.0.2"))
    answerer.learn_macs({"p137-tor-a": MAC_A, "p137-u01": "52:54:00:00:00:09", "gone": MAC_A})
    assert answerer.locator.learned() == {"p137-tor-a": MAC_A}


def test_sonic_example_validates_and_locates():
    """examples/sonic-pod.yml: SONiC ToRs and cores, a Cumulus LoM switch."""
    loc = Locator(compile_plan(load_zone(ZONE_10K.replace("zone-10k.yml", "sonic-pod.yml"))))
    assert found(loc, "10.17.2.1", b"p02-tor-b:Ethernet8", bytes.fromhex("0c29ef020b01")) == \
        "p02-u03"
    assert found(loc, "10.15.1.1", b"p01-tor-a:Ethernet188") == "p01-lom"
    assert found(loc, "10.16.1.1", b"swp4", b"0c:29:ef:01:0c:01") == "p01-u04-bmc"
    assert found(loc, "10.15.2.1", b"core-1:Ethernet4", b"0c:29:ef:00:00:01") == "p02-tor-a"
    assert found(loc, "10.17.1.1", b"p01-tor-a:Ethernet0", b"0c29.ef01.0a01") == "p01-u01"
