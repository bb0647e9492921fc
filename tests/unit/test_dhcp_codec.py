"""The DHCP codec: round trips, typed option views, and every malformed shape rejected."""

from __future__ import annotations

import struct

import pytest

from bootstrap.dhcp import codec, probe
from bootstrap.dhcp.codec import Malformed


def packet_bytes(**kw) -> bytes:
    return codec.encode(probe.request(codec.DISCOVER, **kw))


def raw_with_options(options: bytes, sname: bytes = b"", bootfile: bytes = b"") -> bytes:
    header = codec.HEADER.pack(1, 1, 6, 0, 7, 0, 0, b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4,
                               b"\x52\x54\0\0\0\1", sname, bootfile)
    return header + codec.MAGIC + options


def test_round_trip_keeps_header_and_options():
    request = probe.request(codec.REQUEST, mac="52:54:00:ab:cd:ef", xid=0xDEADBEEF,
                            giaddr="10.17.1.1", circuit="swp7", remote="p01-tor-a",
                            requested="10.17.1.17", server_id="10.17.0.2", arch=7)
    decoded = codec.decode(codec.encode(request))
    assert decoded == request
    assert decoded.mac == "52:54:00:ab:cd:ef"
    assert decoded.message_type == codec.REQUEST
    assert codec.address_of(decoded, codec.REQUESTED_IP) == "10.17.1.17"
    assert codec.relay_info(decoded) == {1: b"swp7", 2: b"p01-tor-a"}


def test_replies_are_padded_to_bootp_minimum():
    assert len(codec.encode(codec.Packet(options={53: b"\x02"}))) == codec.MIN_REPLY


def test_long_options_are_split_and_joined_again():
    value = bytes(range(256)) * 3
    raw = codec.encode(codec.Packet(options={53: b"\x01", 239: value}))
    assert raw.count(bytes((239, 255))) == 3  # 768 bytes → 255 + 255 + 255 + 3
    assert codec.decode(raw).options[239] == value


def test_pads_are_skipped_and_bytes_after_end_ignored():
    raw = raw_with_options(b"\x00" * 50 + b"\x35\x01\x01" + b"\x00" * 3 + b"\xff" + b"\x35\x01\x07")
    assert codec.decode(raw).options == {53: b"\x01"}


def test_overloaded_file_and_sname_carry_options():
    bootfile = b"\x0c\x04host\xff".ljust(128, b"\0")
    sname = b"\x0f\x03lab\xff".ljust(64, b"\0")
    decoded = codec.decode(raw_with_options(b"\x35\x01\x01\x34\x01\x03\xff", sname, bootfile))
    assert decoded.options[codec.HOSTNAME] == b"host"
    assert decoded.options[codec.DOMAIN] == b"lab"
    assert decoded.file == b"" and decoded.sname == b""


def test_plain_file_and_sname_are_c_strings():
    decoded = codec.decode(raw_with_options(b"\x35\x01\x01\xff", b"srv\0junk", b"boot.efi\0x"))
    assert (decoded.sname, decoded.file) == (b"srv", b"boot.efi")


@pytest.mark.parametrize("raw, reason", [
    (b"", "truncated"),
    (b"\x01" * 239, "truncated"),
    (raw_with_options(b"\xff")[:236] + b"\x00\x00\x00\x00\xff", "magic cookie"),
    (raw_with_options(b"\xff" * 5000), "oversized"),
    (raw_with_options(b"\x35\x01\x01"), "not terminated"),
    (raw_with_options(b"\x35\x01\x01\x0c"), "no length byte"),
    (raw_with_options(b"\x35\x01\x01\x0c\x09abc\xff"), "runs past"),
    (raw_with_options(b"\x35\x01\x01\x34\x01\x09\xff"), "overload"),
    (b"\x03" + raw_with_options(b"\xff")[1:], "op 3"),
    (raw_with_options(b"\xff")[:2] + b"\x11" + raw_with_options(b"\xff")[3:], "hardware address"),
    (raw_with_options(b"\x35\x01\x01\x34\x01\x02\xff", bootfile=b"\x0c\x90x"), "file field"),
])
def test_malformed_packets_are_rejected_with_a_reason(raw, reason):
    with pytest.raises(Malformed, match=reason):
        codec.decode(raw)


def test_relay_info_sub_options_including_link_selection():
    request = probe.request(codec.DISCOVER, giaddr="10.17.1.1", circuit=b"\x00\x04\x00\x64\x01\x07",
                            remote="core-1", link="10.16.1.0")
    info = codec.relay_info(codec.decode(codec.encode(request)))
    assert info == {codec.CIRCUIT_ID: b"\x00\x04\x00\x64\x01\x07", codec.REMOTE_ID: b"core-1",
                    codec.LINK_SELECTION: bytes((10, 16, 1, 0))}


def test_broken_relay_info_is_malformed():
    with pytest.raises(Malformed, match="sub-option"):
        codec.suboptions(b"\x01\x09swp3")


@pytest.mark.parametrize("raw, classes", [
    (b"iPXE", (b"iPXE",)),                          # iPXE's plain form
    (b"\x04iPXE\x03abc", (b"iPXE", b"abc")),        # RFC 3004
    (b"\x09iPXE", (b"\x09iPXE",)),                  # a length that does not fit: one plain class
])
def test_user_class_both_forms(raw, classes):
    assert codec.user_classes(codec.Packet(options={77: raw})) == classes


def test_arch_uuid_and_vendor_identifying_options():
    packet = codec.Packet(options={93: b"\x00\x07\x00\x09", 97: b"\x00" + bytes(range(16)),
                                   94: b"\x01\x03\x10"})
    assert codec.arches_of(packet) == (7, 9)
    assert codec.uuid_of(packet) == bytes(range(16)).hex()
    assert codec.uuid_of(codec.Packet(options={97: b"\x01\x02"})) is None
    v = struct.pack("!IB", 4413, 5) + b"\x01\x03abc"
    assert codec.vendor_identifying(v) == {4413: {1: b"abc"}}
    with pytest.raises(Malformed):
        codec.vendor_identifying(v + b"\x00")


def test_text_and_address_views_tolerate_odd_sizes():
    packet = codec.Packet(options={60: b"PXEClient\x00", 54: b"\x01\x02\x03"})
    assert codec.text_of(packet, 60) == "PXEClient"
    assert codec.address_of(packet, 54) is None
    assert codec.text_of(packet, 61) is None
