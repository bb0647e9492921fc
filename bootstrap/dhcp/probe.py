"""Build client requests the way relays and PXE clients send them.

Used by the tests and the benchmark's load generator; the service never needs it.
"""

from __future__ import annotations

import struct

from . import codec
from .codec import BOOTREQUEST, ZERO, Packet


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", "").replace("-", ""))


def relay_agent(circuit: bytes | str | None = None, remote: bytes | str | None = None,
                link: str | None = None) -> bytes:
    """Option 82 as a relay inserts it: circuit-id, remote-id, link-selection."""
    items = {}
    if circuit is not None:
        items[codec.CIRCUIT_ID] = circuit.encode() if isinstance(circuit, str) else circuit
    if remote is not None:
        items[codec.REMOTE_ID] = remote.encode() if isinstance(remote, str) else remote
    if link is not None:
        items[codec.LINK_SELECTION] = codec.addresses(link)
    return codec.tlv(items)


def request(kind: int, mac: str = "52:54:00:00:00:01", xid: int = 0x1234, *, giaddr: str = ZERO,
            circuit=None, remote=None, link: str | None = None, ciaddr: str = ZERO,
            requested: str | None = None, server_id: str | None = None, arch: int | None = None,
            vendor: str | None = None, user_class: bytes | None = None, extra=None) -> Packet:
    """A client request; ``circuit``/``remote`` add Option 82 as a relay would."""
    options = {codec.MESSAGE_TYPE: bytes((kind,))}
    if requested:
        options[codec.REQUESTED_IP] = codec.addresses(requested)
    if server_id:
        options[codec.SERVER_ID] = codec.addresses(server_id)
    if vendor is not None:
        options[codec.VENDOR_CLASS] = vendor.encode()
    if user_class is not None:
        options[codec.USER_CLASS] = user_class
    if arch is not None:
        options[codec.CLIENT_ARCH] = struct.pack("!H", arch)
    options[codec.PARAMETER_LIST] = bytes((1, 3, 6, 12, 15, 42, 66, 67))
    options.update(extra or {})
    if circuit is not None or remote is not None or link is not None:
        options[codec.RELAY_AGENT_INFO] = relay_agent(circuit, remote, link)
    return Packet(op=BOOTREQUEST, xid=xid, hops=1 if giaddr != ZERO else 0, ciaddr=ciaddr,
                  giaddr=giaddr, chaddr=mac_bytes(mac).ljust(16, b"\x00"), options=options)
