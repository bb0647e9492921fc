"""The pure DHCP decision: location → identity, boot choice, trust, message handling."""

from __future__ import annotations

import pytest

from bootstrap.dhcp import codec, probe
from bootstrap.dhcp.answer import Answerer, Drop, Noted, Reply, Settings
from bootstrap.dhcp.codec import ACK, DECLINE, DISCOVER, INFORM, NAK, OFFER, RELEASE, REQUEST
from bootstrap.plan import compile_plan
from bootstrap.zone import parse_zone_text

SERVER = "10.17.0.2"
URL = "http://10.17.0.2:8080"
GW_PROVISION, GW_LOM, GW_MGMT = "10.17.1.1", "10.16.1.1", "10.15.1.1"


@pytest.fixture(scope="module")
def answerer(lab_plan):
    return Answerer(lab_plan, Settings(SERVER))


def zone_with(lab_text: str, old: str, new: str):
    assert old in lab_text
    return compile_plan(parse_zone_text(lab_text.replace(old, new)))


def ask(answerer, kind=DISCOVER, source=None, **kw):
    """Ask as the relay (giaddr) or the client (ciaddr) itself would, unless ``source``."""
    packet = probe.request(kind, **kw)
    if source is None:
        source = packet.giaddr if packet.giaddr != codec.ZERO else packet.ciaddr
    return answerer.answer(codec.decode(codec.encode(packet)), source)


def opts(reply) -> dict:
    assert isinstance(reply, Reply), reply
    return reply.packet.options


def test_relayed_discover_gets_the_location_identity(answerer):
    reply = ask(answerer, giaddr=GW_PROVISION, circuit="swp3")
    assert reply.kind == "offer" and reply.to == (GW_PROVISION, 67)
    assert reply.packet.yiaddr == "10.17.1.13" and reply.packet.op == codec.BOOTREPLY
    o = opts(reply)
    assert o[codec.MESSAGE_TYPE] == bytes((OFFER,))
    assert o[codec.SERVER_ID] == codec.addresses(SERVER)
    assert o[codec.SUBNET_MASK] == codec.addresses("255.255.255.0")
    assert o[codec.ROUTER] == codec.addresses(GW_PROVISION)
    assert o[codec.DNS] == codec.addresses("192.0.2.53")
    assert o[codec.NTP] == codec.addresses("192.0.2.123")
    assert o[codec.HOSTNAME] == b"p01-u03" and o[codec.DOMAIN] == b"lab1.example.net"
    assert [o[c] for c in (51, 58, 59)] == [codec.u32(3600), codec.u32(1800), codec.u32(3150)]
    assert list(o)[-1] == codec.RELAY_AGENT_INFO and o[82] == probe.relay_agent("swp3")


def test_same_port_on_lom_network_is_the_bmc_without_boot_options(answerer):
    reply = ask(answerer, giaddr=GW_LOM, circuit="swp3", arch=0)
    assert reply.packet.yiaddr == "10.16.1.13"
    assert opts(reply)[codec.HOSTNAME] == b"p01-u03-bmc"
    assert codec.BOOTFILE_NAME not in opts(reply) and reply.packet.file == b""


@pytest.mark.parametrize("kw, option, value, tftp", [
    ({"arch": 0}, 67, b"undionly.kpxe", True),
    ({"arch": 6}, 67, b"i386-efi/ipxe.efi", True),
    ({"arch": 7}, 67, b"ipxe.efi", True),
    ({"arch": 9}, 67, b"ipxe.efi", True),
    ({"arch": 11}, 67, b"arm64-efi/ipxe.efi", True),
    ({"vendor": "PXEClient:Arch:00007:UNDI:003016"}, 67, b"ipxe.efi", True),
    ({"vendor": "HTTPClient:Arch:00016:UNDI:003001", "arch": 16}, 67,
     f"{URL}/files/ipxe.efi".encode(), False),
    ({"vendor": "HTTPClient:Arch:00019", "arch": 19}, 67,
     f"{URL}/files/arm64-efi/ipxe.efi".encode(), False),
    ({"user_class": b"iPXE", "arch": 7}, 67, f"{URL}/boot/ipxe".encode(), False),
    ({"user_class": b"\x04iPXE", "arch": 0}, 67, f"{URL}/boot/ipxe".encode(), False),
])
def test_server_boot_choice(answerer, kw, option, value, tftp):
    reply = ask(answerer, giaddr=GW_PROVISION, circuit="swp4", **kw)
    assert opts(reply)[option] == value
    assert reply.packet.file == value  # BOOTP's file field as well as option 67
    if tftp:  # TFTP: next-server is this appliance
        assert reply.packet.siaddr == SERVER and opts(reply)[66] == SERVER.encode()


def test_a_url_too_long_for_the_file_field_stays_in_option_67(lab_plan):
    answerer = Answerer(lab_plan, Settings(SERVER, http_base_url="http://192.0.2.1/" + "x" * 120))
    reply = ask(answerer, giaddr=GW_PROVISION, circuit="swp4", user_class=b"iPXE")
    assert len(opts(reply)[67]) > 127 and reply.packet.file == b""


@pytest.mark.parametrize("size, asked", [(None, b""), (576, b""), (576, bytes((1, 3, 6, 67))),
                                         (600, bytes((1, 3)))])
def test_replies_fit_the_clients_maximum_message_size(lab_plan, size, asked):
    """udhcpc says 576 in option 57 and got 737 bytes three times, then gave up."""
    answerer = Answerer(lab_plan, Settings(SERVER, http_base_url="http://192.0.2.1/" + "x" * 200,
                                           dns_servers=tuple(f"192.0.2.{i}" for i in range(1, 60))))
    extra = {} if size is None else {codec.MAX_SIZE: size.to_bytes(2, "big")}
    packet = probe.request(DISCOVER, giaddr=GW_PROVISION, circuit="swp4", user_class=b"iPXE",
                           extra=extra)
    packet.options[codec.PARAMETER_LIST] = asked
    reply = answerer.answer(codec.decode(codec.encode(packet)), GW_PROVISION)
    assert len(codec.encode(reply.packet)) <= (size or 576) - 28
    o = opts(reply)
    assert {53, 54, 51, 1, 82} <= set(o) and reply.packet.yiaddr == "10.17.1.14"
    if asked:  # what it asked for is the last to go
        assert {c for c in asked if c in o} >= {1, 3}
    big = probe.request(DISCOVER, giaddr=GW_PROVISION, circuit="swp4", user_class=b"iPXE",
                        extra={codec.MAX_SIZE: (1500).to_bytes(2, "big")})
    assert len(codec.encode(answerer.answer(big, GW_PROVISION).packet)) > 548


def test_ipxe_gets_no_pxedhcp_and_http_boot_gets_its_vendor_class_back(answerer):
    ipxe = ask(answerer, giaddr=GW_PROVISION, circuit="swp4", user_class=b"iPXE")
    assert codec.suboptions(opts(ipxe)[codec.IPXE]) == {176: b"\x01"}
    http = ask(answerer, giaddr=GW_PROVISION, circuit="swp4", vendor="HTTPClient:Arch:00016")
    assert opts(http)[codec.VENDOR_CLASS] == b"HTTPClient"


def test_no_pxe_hint_no_boot_file(answerer):
    assert codec.BOOTFILE_NAME not in opts(ask(answerer, giaddr=GW_PROVISION, circuit="swp4"))


def test_tor_by_core_remote_id_gets_sonic_ztp(answerer):
    reply = ask(answerer, giaddr="10.15.0.2", circuit="swp1", remote="core-1")
    assert reply.packet.yiaddr == "10.15.1.2"
    assert opts(reply)[codec.HOSTNAME] == b"p01-tor-a"
    assert opts(reply)[67] == f"{URL}/ztp/sonic/p01-tor-a.json".encode()


def test_lom_switch_gets_onie_installer_url(answerer):
    reply = ask(answerer, giaddr=GW_MGMT, circuit="swp48", vendor="onie_vendor:x86_64-dell_s3000-r0")
    assert reply.packet.yiaddr == "10.15.1.4"
    assert opts(reply)[codec.ONIE_URL] == f"{URL}/onie/p01-lom".encode()


def test_onie_on_a_sonic_switch_gets_the_installer(answerer):
    reply = ask(answerer, giaddr="10.15.0.2", circuit="swp1", remote="core-1",
                vendor="onie_vendor:x86_64-accton_as7326-r0")
    assert opts(reply)[codec.ONIE_URL] == f"{URL}/onie/p01-tor-a".encode()
    assert 67 not in opts(reply)


@pytest.mark.parametrize("ztp, code, path", [
    ("cumulus", codec.CUMULUS_ZTP_URL, "/ztp/cumulus/p01-tor-b"),
    ("arista", codec.BOOTFILE_NAME, "/ztp/arista/p01-tor-b"),
])
def test_cumulus_and_arista_ztp(lab_text, ztp, code, path):
    plan = zone_with(lab_text, "ztp: sonic}", f"ztp: {ztp}}}")
    reply = ask(Answerer(plan, Settings(SERVER)), giaddr="10.15.0.3", circuit="swp1", remote="core-2")
    assert opts(reply)[code] == (URL + path).encode()


def test_http_base_url_and_tftp_server_and_dns_can_be_set(lab_plan):
    a = Answerer(lab_plan, Settings(SERVER, tftp_server="10.17.1.2", http_base_url="http://x:1/",
                                    dns_servers=("10.17.1.2",)))
    reply = ask(a, giaddr=GW_PROVISION, circuit="swp4", arch=0)
    assert reply.packet.siaddr == "10.17.1.2" and opts(reply)[codec.DNS] == codec.addresses("10.17.1.2")
    assert opts(ask(a, giaddr=GW_PROVISION, circuit="swp4", user_class=b"iPXE"))[67] == b"http://x:1/boot/ipxe"


def test_request_is_acked_with_a_lease_event(answerer):
    reply = ask(answerer, REQUEST, giaddr=GW_PROVISION, circuit="swp3", requested="10.17.1.13",
                server_id=SERVER, mac="52:54:00:00:00:03")
    assert reply.kind == "ack" and opts(reply)[53] == bytes((ACK,))
    assert reply.event.kind == "lease" and reply.event.node == "p01-u03"
    assert reply.event.detail == {"mac": "52:54:00:00:00:03", "address": "10.17.1.13",
                                  "network": "provision", "switch": "gateway of pod 1 on provision",
                                  "port": 3}


def test_request_for_another_address_is_naked_through_the_relay(answerer):
    reply = ask(answerer, REQUEST, giaddr=GW_PROVISION, circuit="swp3", requested="10.17.1.99")
    assert reply.kind == "nak" and opts(reply)[53] == bytes((NAK,))
    assert reply.packet.yiaddr == "0.0.0.0" and reply.packet.flags & codec.BROADCAST_FLAG
    assert reply.to == (GW_PROVISION, 67) and codec.HOSTNAME not in opts(reply)


def test_request_for_another_server_is_ignored(answerer):
    drop = ask(answerer, REQUEST, giaddr=GW_PROVISION, circuit="swp3", server_id="10.17.0.9")
    assert isinstance(drop, Drop) and drop.code == "other-server"


def test_renewal_without_option_82_is_answered_by_ciaddr(answerer):
    reply = ask(answerer, REQUEST, ciaddr="10.17.1.13")
    assert reply.kind == "ack" and reply.to == ("10.17.1.13", 68)
    assert reply.packet.yiaddr == "10.17.1.13" and opts(reply)[codec.HOSTNAME] == b"p01-u03"
    assert codec.RELAY_AGENT_INFO not in opts(reply)
    assert reply.event.detail["switch"] == "renewal"


@pytest.mark.parametrize("kw, code", [
    ({"kind": REQUEST, "ciaddr": "10.17.1.99"}, "unknown-address"),
    ({"kind": DISCOVER, "ciaddr": "10.17.1.13"}, "not-relayed"),
    ({"kind": DISCOVER}, "not-relayed"),
    ({"kind": DISCOVER, "giaddr": GW_PROVISION}, "no-option-82"),
    ({"kind": DISCOVER, "giaddr": GW_PROVISION, "remote": "p01-tor-a"}, "no-circuit-id"),
    ({"kind": OFFER, "giaddr": GW_PROVISION, "circuit": "swp3"}, "bad-message-type"),
])
def test_requests_without_a_location_are_dropped(answerer, kw, code):
    drop = ask(answerer, **kw)
    assert isinstance(drop, Drop) and drop.code == code, drop


def test_option_82_without_relay_or_from_unknown_relay_is_untrusted(answerer):
    for giaddr, why in (("0.0.0.0", "without a relay"), ("10.99.0.1", "untrusted relay")):
        drop = ask(answerer, giaddr=giaddr, circuit="swp3")
        assert drop.code == "untrusted-relay" and why in drop.reason
        assert drop.event.kind == "untrusted-relay" and drop.event.detail["giaddr"] == giaddr


def test_unknown_location_is_an_event_with_switch_port_and_mac(answerer):
    drop = ask(answerer, giaddr=GW_PROVISION, circuit="swp9", mac="52:54:00:00:00:09")
    assert drop.code == "unknown-location"
    assert drop.event.kind == "unknown-location"
    assert drop.event.detail["port"] == 9 and drop.event.detail["mac"] == "52:54:00:00:00:09"
    assert drop.event.detail["switch"] == "gateway of pod 1 on provision"


def test_trusted_relays_from_the_zone_are_believed(lab_text):
    plan = zone_with(lab_text, "dhcp: {lease_time: 3600}",
                     "dhcp: {lease_time: 3600, trusted_relays: [192.0.2.10]}")
    reply = ask(Answerer(plan, Settings(SERVER)), giaddr="192.0.2.10", circuit="swp2",
                remote="p01-tor-b")
    assert reply.packet.yiaddr == "10.17.1.12" and reply.to == ("192.0.2.10", 67)


def spoofed(where: str = "options", copies: int = 1, after: bool = False, **kw) -> bytes:
    """A relayed DISCOVER from port swp1 whose client hid an Option 82 for swp3."""
    packet = probe.request(DISCOVER, giaddr=GW_PROVISION, circuit="swp1", **kw)
    relay = packet.options.pop(codec.RELAY_AGENT_INFO)
    hidden = codec.option(codec.RELAY_AGENT_INFO, probe.relay_agent("swp3"))
    if where in ("file", "sname"):
        packet.options[codec.OVERLOAD] = b"\x02" if where == "file" else b"\x01"
        setattr(packet, where, hidden + b"\xff")
    raw = codec.encode(packet)
    end = raw.index(b"\xff", codec.MIN_LEN)
    extra = hidden * (copies - 1) + codec.option(codec.RELAY_AGENT_INFO, relay)
    if after:
        extra += codec.option(codec.HOSTNAME, b"x")
    return raw[:end] + extra + raw[end:]


@pytest.mark.parametrize("kw, reason", [
    ({"where": "file"}, "sname/file"),
    ({"where": "sname"}, "sname/file"),
    ({"copies": 2}, "2 times"),
    ({"after": True}, "followed by option 12"),
])
def test_option_82_a_relay_did_not_append_is_a_spoof(answerer, kw, reason):
    drop = answerer.answer(codec.decode(spoofed(**kw)), GW_PROVISION)
    assert isinstance(drop, Drop) and drop.code == "option-82-spoof", drop
    assert reason in drop.reason and drop.event.kind == "option-82-spoof"
    assert ask(answerer, giaddr=GW_PROVISION, circuit="swp1").packet.yiaddr == "10.17.1.11"


@pytest.mark.parametrize("suboptions, code", [
    (b"\x01\x04swp1\x01\x04swp3", "option-82-spoof"),     # a second circuit-id
    (b"\x02\x03abc\x01\x04swp1\x02\x09p01-tor-b", "option-82-spoof"),
    (b"\x01\x04swp1\xff\x00\x01\x04swp3", "option-82-spoof"),  # 255 is no END here
    (b"\x01\x09swp1", "malformed"),
])
def test_relay_suboptions_are_read_as_a_relay_writes_them(answerer, suboptions, code):
    packet = probe.request(DISCOVER, giaddr=GW_PROVISION, extra={
        codec.RELAY_AGENT_INFO: suboptions})
    drop = answerer.answer(codec.decode(codec.encode(packet)), GW_PROVISION)
    assert isinstance(drop, Drop) and drop.code == code, drop


@pytest.mark.parametrize("source, ok", [
    (GW_PROVISION, True),        # the relay sends from giaddr itself
    ("10.17.0.101", True),       # from its uplink in subnet 0 (core/transit)
    ("10.15.1.3", True),         # from tor-b's own mgmt address: a switch of the zone
    ("10.17.1.17", False),       # a server's address: a node is never a relay
    ("10.16.1.17", False),       # a BMC's
    ("192.0.2.99", False),       # anyone else
])
def test_relayed_packets_only_from_a_relay(answerer, source, ok):
    outcome = ask(answerer, giaddr=GW_PROVISION, circuit="swp3", source=source)
    if ok:
        assert isinstance(outcome, Reply) and outcome.packet.yiaddr == "10.17.1.13"
    else:
        assert outcome.code == "relay-spoof" and outcome.event.detail["sender"] == source


def test_relay_sources_from_the_zone_replace_subnet_zero(lab_text):
    plan = zone_with(lab_text, "dhcp: {lease_time: 3600}",
                     "dhcp: {lease_time: 3600, relay_sources: [192.0.2.0/28]}")
    answerer = Answerer(plan, Settings(SERVER))
    assert isinstance(ask(answerer, giaddr=GW_PROVISION, circuit="swp3", source="192.0.2.9"),
                      Reply)
    assert ask(answerer, giaddr=GW_PROVISION, circuit="swp3",
               source="10.17.0.101").code == "relay-spoof"


@pytest.mark.parametrize("kind", [REQUEST, RELEASE, DECLINE, INFORM])
def test_unrelayed_ciaddr_must_be_the_sender(answerer, kind):
    drop = ask(answerer, kind, ciaddr="10.17.1.13", source="10.17.1.14")
    assert drop.code == "ciaddr-spoof" and drop.event.detail["ciaddr"] == "10.17.1.13"


def test_link_selection_picks_the_network(answerer):
    reply = ask(answerer, giaddr=GW_PROVISION, circuit="swp3", link="10.16.1.0")
    assert reply.packet.yiaddr == "10.16.1.13"


def test_release_decline_inform(answerer):
    release = ask(answerer, RELEASE, ciaddr="10.17.1.13")
    assert isinstance(release, Noted) and release.event.kind == "release"
    decline = ask(answerer, DECLINE, giaddr=GW_PROVISION, circuit="swp3", requested="10.17.1.13")
    assert decline.event.kind == "decline" and decline.event.detail["address"] == "10.17.1.13"
    inform = ask(answerer, INFORM, ciaddr="10.17.1.13")
    assert inform.kind == "ack" and inform.packet.yiaddr == "0.0.0.0"
    assert codec.LEASE_TIME not in opts(inform) and opts(inform)[12] == b"p01-u03"


def test_two_appliances_answer_identically_but_for_their_id(lab_plan):
    a, b = Answerer(lab_plan, Settings("10.17.1.2")), Answerer(lab_plan, Settings("10.17.1.2"))
    c = Answerer(lab_plan, Settings("10.17.1.3", tftp_server="10.17.1.2"))
    for kw in ({"circuit": "swp1", "arch": 7}, {"circuit": "swp4", "user_class": b"iPXE"}):
        ra, rb, rc = (ask(x, giaddr=GW_PROVISION, **kw) for x in (a, b, c))
        assert codec.encode(ra.packet) == codec.encode(rb.packet)
        rc.packet.options[codec.SERVER_ID] = ra.packet.options[codec.SERVER_ID]
        assert codec.encode(ra.packet) == codec.encode(rc.packet)


def test_relay_loops_and_replies_are_dropped(answerer):
    looping = probe.request(DISCOVER, giaddr=GW_PROVISION, circuit="swp3")
    looping.hops = 17
    assert answerer.answer(looping, GW_PROVISION).code == "too-many-hops"
    reply = probe.request(DISCOVER, giaddr=GW_PROVISION, circuit="swp3")
    reply.op = codec.BOOTREPLY
    assert answerer.answer(reply, GW_PROVISION).code == "not-request"
    assert answerer.answer(codec.Packet(options={}), GW_PROVISION).code == "no-message-type"
