"""The codec cross-checked against scapy's DHCP parser, and fuzzed, with hypothesis.

Both directions: what we encode scapy reads back field for field and option for
option; what scapy builds we decode. scapy decodes known options into typed
values, so each is re-encoded with scapy's own field to compare raw bytes.
"""

from __future__ import annotations

import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP, DHCPRevOptions

from bootstrap.dhcp import codec
from bootstrap.dhcp.answer import Answerer, Drop, Noted, Reply, Settings

IP = st.builds(lambda n: socket.inet_ntoa(n.to_bytes(4, "big")), st.integers(0, 2**32 - 1))
U32 = st.integers(0, 2**32 - 1).map(lambda n: n.to_bytes(4, "big"))
ADDRESS = IP.map(socket.inet_aton)
ADDRESSES = st.lists(ADDRESS, min_size=1, max_size=4).map(b"".join)
TEXT = st.binary(min_size=1, max_size=60)
SUB = st.dictionaries(st.sampled_from([1, 2, 5, 9]), st.binary(min_size=1, max_size=30),
                      max_size=3).map(codec.tlv)
# code → value strategy: the options a boot appliance meets, typed where scapy types them.
OPTION_VALUES = {
    1: ADDRESS, 3: ADDRESSES, 6: ADDRESSES, 42: ADDRESSES, 50: ADDRESS, 54: ADDRESS, 150: ADDRESS,
    51: U32, 58: U32, 59: U32, 57: st.integers(576, 1500).map(lambda n: n.to_bytes(2, "big")),
    55: st.binary(min_size=1, max_size=20), 12: TEXT, 15: TEXT, 60: TEXT, 61: TEXT, 66: TEXT,
    67: TEXT, 77: TEXT, 82: SUB.filter(bool), 93: st.binary(min_size=2, max_size=2),
    94: st.binary(min_size=3, max_size=3), 97: st.binary(min_size=17, max_size=17),
    114: TEXT, 175: SUB.filter(bool), 239: st.binary(min_size=1, max_size=255),
}


@st.composite
def packets(draw, max_option: int = 255):
    codes = draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), unique=True, max_size=10))
    options = {53: bytes((draw(st.integers(1, 8)),))}
    for code in codes:
        options[code] = draw(OPTION_VALUES[code])
    return codec.Packet(
        op=draw(st.sampled_from([1, 2])), xid=draw(st.integers(0, 2**32 - 1)),
        hops=draw(st.integers(0, 20)), secs=draw(st.integers(0, 65535)),
        flags=draw(st.sampled_from([0, 0x8000])), ciaddr=draw(IP), yiaddr=draw(IP),
        siaddr=draw(IP), giaddr=draw(IP), chaddr=draw(st.binary(min_size=16, max_size=16)),
        sname=draw(st.binary(max_size=63).map(lambda b: b.replace(b"\0", b"a"))),
        file=draw(st.binary(max_size=127).map(lambda b: b.replace(b"\0", b"a"))),
        options=options)


def scapy_options(pkt) -> dict:
    """scapy's parsed options → code → raw bytes (split options joined)."""
    out: dict = {}
    for item in pkt[DHCP].options:
        if item in ("end", "pad") or not isinstance(item, tuple):
            continue
        name, values = item[0], item[1:]
        if isinstance(name, int):
            raw = b"".join(values)
            code = name
        else:
            code, field = DHCPRevOptions[name]
            if field is None:
                raw = b"".join(values)
            else:
                raw = b"".join(field.addfield(pkt, b"", field.any2i(pkt, v)) for v in values)
        out[code] = out.get(code, b"") + raw
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets())
def test_scapy_reads_what_we_encode(packet):
    theirs = BOOTP(codec.encode(packet))
    assert (theirs.op, theirs.xid, theirs.hops, theirs.secs, theirs.flags) == \
        (packet.op, packet.xid, packet.hops, packet.secs, packet.flags)
    assert (theirs.ciaddr, theirs.yiaddr, theirs.siaddr, theirs.giaddr) == \
        (packet.ciaddr, packet.yiaddr, packet.siaddr, packet.giaddr)
    assert theirs.chaddr == packet.chaddr
    assert theirs.sname.rstrip(b"\0") == packet.sname and theirs.file.rstrip(b"\0") == packet.file
    assert scapy_options(theirs) == packet.options


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets())
def test_we_read_what_scapy_builds(packet):
    theirs = BOOTP(op=packet.op, xid=packet.xid, hops=packet.hops, secs=packet.secs,
                   flags=packet.flags, ciaddr=packet.ciaddr, yiaddr=packet.yiaddr,
                   siaddr=packet.siaddr, giaddr=packet.giaddr, chaddr=packet.chaddr,
                   sname=packet.sname, file=packet.file) / \
        DHCP(options=[(code, value) for code, value in packet.options.items()] + ["end"])
    assert codec.decode(bytes(theirs)) == packet


ANSWERER = {}


def answerer(lab_plan) -> Answerer:
    if "a" not in ANSWERER:
        ANSWERER["a"] = Answerer(lab_plan, Settings("10.17.0.2"))
    return ANSWERER["a"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=1200), packets().map(codec.encode),
                 st.tuples(packets().map(codec.encode), st.integers(0, 600), st.binary(max_size=8))
                 .map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + len(t[2]):])))
def test_fuzz_decode_rejects_with_a_reason_and_answer_never_raises(lab_plan, raw):
    try:
        packet = codec.decode(raw)
    except codec.Malformed as exc:
        assert str(exc)
        return
    outcome = answerer(lab_plan).answer(packet, packet.giaddr)
    assert isinstance(outcome, (Reply, Noted, Drop))
    if isinstance(outcome, Reply):
        assert codec.decode(codec.encode(outcome.packet)).xid == packet.xid
