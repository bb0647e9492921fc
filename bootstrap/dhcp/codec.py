"""DHCPv4 wire format (RFC 2131 / 2132) with the options a boot appliance meets.

:func:`decode` turns bytes into a :class:`Packet` or raises :class:`Malformed`
with a reason (the only exception it raises); :func:`encode` does the reverse.
Options are kept as raw bytes by code, in arrival order, with split options
(RFC 3396) joined and the ``sname``/``file`` overload (option 52) honoured; the
``*_of`` helpers give the typed values the server needs.

Option 82 is the one option whose origin matters: a relay appends it, once, as the
last option of the options field (RFC 3046 2.1), and never looks inside an
overloaded ``sname``/``file``. :func:`decode` therefore notes in
``Packet.relay_spoof`` why an Option 82 cannot be the relay's own (a copy in
``sname``/``file``, several copies, options after it), and :func:`relay_info`
parses its sub-options exactly as a relay writes them: plain TLVs, no PAD or END,
no repeats.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

MAGIC = b"\x63\x82\x53\x63"
HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # 236 bytes, then the cookie
MIN_LEN = HEADER.size + len(MAGIC)
MAX_LEN = 4096            # larger than any sane DHCP message (and than option 57 allows)
MIN_REPLY = 300           # BOOTP's minimum; some PXE ROMs drop shorter replies
BOOTREQUEST, BOOTREPLY = 1, 2
BROADCAST_FLAG = 0x8000
ZERO = "0.0.0.0"

# Message types (option 53).
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_NAMES = {DISCOVER: "discover", OFFER: "offer", REQUEST: "request", DECLINE: "decline",
                 ACK: "ack", NAK: "nak", RELEASE: "release", INFORM: "inform"}

# Option codes used by name elsewhere.
PAD, END = 0, 255
SUBNET_MASK, ROUTER, DNS, HOSTNAME, DOMAIN, BROADCAST_ADDR, NTP = 1, 3, 6, 12, 15, 28, 42
VENDOR_SPECIFIC, REQUESTED_IP, LEASE_TIME, OVERLOAD, MESSAGE_TYPE, SERVER_ID = 43, 50, 51, 52, 53, 54
PARAMETER_LIST, MESSAGE, MAX_SIZE, RENEW_TIME, REBIND_TIME, VENDOR_CLASS = 55, 56, 57, 58, 59, 60
CLIENT_ID, TFTP_SERVER_NAME, BOOTFILE_NAME, USER_CLASS = 61, 66, 67, 77
RELAY_AGENT_INFO, CLIENT_ARCH, CLIENT_NDI, CLIENT_UUID = 82, 93, 94, 97
ONIE_URL, VI_VENDOR_SPECIFIC, TFTP_SERVERS, IPXE, CUMULUS_ZTP_URL = 114, 125, 150, 175, 239

# Option 82 sub-options (RFC 3046, RFC 3527).
CIRCUIT_ID, REMOTE_ID, LINK_SELECTION = 1, 2, 5
# iPXE's encapsulated option 175 sub-option: skip the PXE-style second DHCP round.
IPXE_NO_PXEDHCP = 176


class Malformed(ValueError):
    """A packet that is not a DHCP message we can read; ``str()`` is the reason."""


class Spoofed(Malformed):
    """Option 82 that a relay did not write as it stands (a client's own copy)."""


@dataclass(slots=True)
class Packet:
    """One DHCP message. Addresses are dotted-quad strings, options raw bytes by code."""

    op: int = BOOTREQUEST
    xid: int = 0
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: str = ZERO
    yiaddr: str = ZERO
    siaddr: str = ZERO
    giaddr: str = ZERO
    chaddr: bytes = b"\x00" * 16
    sname: bytes = b""
    file: bytes = b""
    options: dict = field(default_factory=dict)  # code → bytes, insertion order kept
    # Why the Option 82 here is not one a relay appended ("" = none); found by decode.
    relay_spoof: str = field(default="", compare=False)

    @property
    def mac(self) -> str:
        """The client hardware address as ``aa:bb:…`` (``hlen`` bytes, at most 16)."""
        return self.chaddr[: min(self.hlen, 16)].hex(":")

    @property
    def message_type(self) -> int | None:
        value = self.options.get(MESSAGE_TYPE)
        return value[0] if value and len(value) == 1 else None


# --- decoding ---------------------------------------------------------------------

def decode(data: bytes) -> Packet:
    """Parse one DHCP message; raise :class:`Malformed` saying why it is not one."""
    if len(data) < MIN_LEN:
        raise Malformed(f"truncated: {len(data)} bytes, a DHCP message has at least {MIN_LEN}")
    if len(data) > MAX_LEN:
        raise Malformed(f"oversized: {len(data)} bytes")
    if data[HEADER.size:MIN_LEN] != MAGIC:
        raise Malformed("no DHCP magic cookie (plain BOOTP or not DHCP)")
    (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi,
     chaddr, sname, bootfile) = HEADER.unpack_from(data)
    if op not in (BOOTREQUEST, BOOTREPLY):
        raise Malformed(f"op {op} is neither BOOTREQUEST nor BOOTREPLY")
    if hlen > 16:
        raise Malformed(f"hardware address length {hlen} exceeds 16")
    chunks: dict[int, list] = {}
    last = _scan(memoryview(data)[MIN_LEN:], chunks, "options")
    spoof = _relay_layout(chunks, last)
    overload = _overload(chunks)
    if overload:
        before = len(chunks.get(RELAY_AGENT_INFO, ()))
        if overload & 2:
            _scan(memoryview(bootfile), chunks, "file field")
        if overload & 1:
            _scan(memoryview(sname), chunks, "sname field")
        if len(chunks.get(RELAY_AGENT_INFO, ())) != before:
            spoof = "Option 82 inside the overloaded sname/file fields, where no relay writes it"
    return Packet(op, xid, htype, hlen, hops, secs, flags, _ip(ci), _ip(yi), _ip(si), _ip(gi),
                  chaddr, b"" if overload & 1 else _cstring(sname),
                  b"" if overload & 2 else _cstring(bootfile),
                  {code: b"".join(parts) for code, parts in chunks.items()}, spoof)


def _scan(buf: memoryview, chunks: dict, where: str) -> int | None:
    """Collect ``code → [chunks]`` from one option area; stops at END (RFC 3396 joins).

    Returns the code of the last option before END (None for an empty area).
    """
    i, n, last = 0, len(buf), None
    while i < n:
        code = buf[i]
        if code == END:
            return last
        if code == PAD:
            i += 1
            continue
        if i + 1 >= n:
            raise Malformed(f"option {code} in {where} has no length byte")
        end = i + 2 + buf[i + 1]
        if end > n:
            raise Malformed(f"option {code} in {where} runs past the end ({end} > {n})")
        chunks.setdefault(code, []).append(bytes(buf[i + 2:end]))
        last, i = code, end
    if where == "options":
        raise Malformed("options are not terminated by END")
    return last


def _relay_layout(chunks: dict, last: int | None) -> str:
    """Why Option 82 in the options field is not what one relay appended ("" if it is)."""
    parts = chunks.get(RELAY_AGENT_INFO)
    if parts is None:
        return ""
    if len(parts) > 1:
        return f"Option 82 appears {len(parts)} times (a relay appends it once)"
    if last != RELAY_AGENT_INFO:
        return f"Option 82 is followed by option {last} (a relay appends it last)"
    return ""


def _overload(chunks: dict) -> int:
    value = chunks.get(OVERLOAD)
    if not value:
        return 0
    raw = b"".join(value)
    if len(raw) != 1 or raw[0] not in (1, 2, 3):
        raise Malformed(f"bad option overload value {raw.hex()}")
    return raw[0]


def _ip(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


def _cstring(raw: bytes) -> bytes:
    return raw.split(b"\x00", 1)[0]


def suboptions(raw: bytes) -> dict:
    """TLV sub-options (Option 82, 43, 175) as ``code → bytes``; Malformed if broken."""
    out, i, n = {}, 0, len(raw)
    while i < n:
        code = raw[i]
        if code == END:
            break
        if code == PAD:
            i += 1
            continue
        if i + 1 >= n or i + 2 + raw[i + 1] > n:
            raise Malformed(f"sub-option {code} runs past the end of its option")
        out[code] = raw[i + 2:i + 2 + raw[i + 1]]
        i += 2 + raw[i + 1]
    return out


# --- typed views of options ---------------------------------------------------------

def relay_info(packet: Packet) -> dict | None:
    """Option 82 sub-options, or None when the packet carries no Option 82.

    Parsed as a relay writes them (RFC 3046 2.0): every byte pair is a code and a
    length, codes 0 and 255 included, and a repeated sub-option is refused, since
    a reader that keeps the first or the last copy lets a client choose its own.
    """
    raw = packet.options.get(RELAY_AGENT_INFO)
    if raw is None:
        return None
    out, i, n = {}, 0, len(raw)
    while i < n:
        if i + 1 >= n or i + 2 + raw[i + 1] > n:
            raise Malformed(f"Option 82 sub-option {raw[i]} runs past the end of the option")
        code, end = raw[i], i + 2 + raw[i + 1]
        if code in out:
            raise Spoofed(f"Option 82 repeats sub-option {code}")
        out[code] = raw[i + 2:end]
        i = end
    return out


def address_of(packet: Packet, code: int) -> str | None:
    raw = packet.options.get(code)
    return _ip(raw) if raw is not None and len(raw) == 4 else None


def text_of(packet: Packet, code: int) -> str | None:
    raw = packet.options.get(code)
    return None if raw is None else raw.rstrip(b"\x00").decode("utf-8", "replace")


def arches_of(packet: Packet) -> tuple:
    """Option 93: client system architectures (RFC 4578), a list of 16-bit types."""
    raw = packet.options.get(CLIENT_ARCH) or b""
    return struct.unpack(f"!{len(raw) // 2}H", raw[: len(raw) // 2 * 2])


def user_classes(packet: Packet) -> tuple:
    """Option 77 in RFC 3004 form (length-prefixed items) or iPXE's plain ``iPXE`` form."""
    raw = packet.options.get(USER_CLASS)
    if not raw:
        return ()
    items, i = [], 0
    while i < len(raw):
        size = raw[i]
        if size == 0 or i + 1 + size > len(raw):
            return (raw,)  # not RFC 3004: the whole option is one class
        items.append(raw[i + 1:i + 1 + size])
        i += 1 + size
    return tuple(items)


def uuid_of(packet: Packet) -> str | None:
    """Option 97: type 0 followed by a 16-byte machine UUID/GUID."""
    raw = packet.options.get(CLIENT_UUID)
    if raw is None or len(raw) != 17 or raw[0] != 0:
        return None
    return raw[1:].hex()


def vendor_identifying(raw: bytes) -> dict:
    """Option 125 (RFC 3925): enterprise number → its sub-options."""
    out, i = {}, 0
    while i + 5 <= len(raw):
        enterprise, size = struct.unpack_from("!IB", raw, i)
        if i + 5 + size > len(raw):
            raise Malformed("option 125 data runs past its end")
        out[enterprise] = suboptions(raw[i + 5:i + 5 + size])
        i += 5 + size
    if i != len(raw):
        raise Malformed("option 125 has trailing bytes")
    return out


# --- encoding -----------------------------------------------------------------------

def encode(packet: Packet) -> bytes:
    """Serialise ``packet``: options in insertion order, long ones split (RFC 3396)."""
    header = HEADER.pack(packet.op, packet.htype, packet.hlen, packet.hops, packet.xid,
                         packet.secs, packet.flags, socket.inet_aton(packet.ciaddr),
                         socket.inet_aton(packet.yiaddr), socket.inet_aton(packet.siaddr),
                         socket.inet_aton(packet.giaddr), packet.chaddr.ljust(16, b"\x00"),
                         packet.sname, packet.file)
    body = header + MAGIC + encode_options(packet.options) + bytes([END])
    return body.ljust(MIN_REPLY, b"\x00")


def encoded_size(packet: Packet) -> int:
    """What :func:`encode` would return the length of, without building it."""
    body = MIN_LEN + 1 + sum(len(v) + 2 * max(1, -(-len(v) // 255))
                             for v in packet.options.values())
    return max(body, MIN_REPLY)


def encode_options(options: dict) -> bytes:
    return b"".join([option(code, value) for code, value in options.items()])


def option(code: int, value: bytes) -> bytes:
    """One option as TLV bytes, split into 255-byte pieces when longer."""
    size = len(value)
    if size <= 255:  # the hot path: every option of a reply
        return bytes((code, size)) + value
    return b"".join(bytes((code, len(value[i:i + 255]))) + value[i:i + 255]
                    for i in range(0, size, 255))


def tlv(items: dict) -> bytes:
    """Sub-options (Option 82, 43, 175) as ``code len value`` bytes."""
    return b"".join(bytes((code, len(value))) + value for code, value in items.items())


def addresses(*values: str) -> bytes:
    return b"".join(socket.inet_aton(v) for v in values)


def u32(value: int) -> bytes:
    return struct.pack("!I", value)
