"""The DHCP decision: a pure function of the plan and one decoded request.

:meth:`Answerer.answer` runs named stages, each returning its result or a
:class:`Drop` saying why the request gets no answer:

``check_request`` → ``locate`` (Option 82 as a trusted relay appended it, sent by
that relay; or ``ciaddr`` for a renewal sent from that very address) → the handler
for the message type → ``reply`` (identity + boot options).

Trust, since a location is an identity: Option 82 counts only when it is the one
option a relay appended (see :mod:`.codec`), giaddr is a relay of the zone, and the
packet's source is that relay (giaddr itself, a switch of the zone, or a network
in ``dhcp.relay_sources``, by default subnet 0 of every network: never a node's
address). An unrelayed packet speaks only for its sender: ``ciaddr`` must be the
source address.

Nothing here touches a socket, a clock or the state store, so two appliances
holding the same zone file answer a request identically (both ToRs of a pair),
and every decision is testable without a network. The one thing it remembers:
a switch's MAC from its own ACKed lease (``Locator.learn``), so that a relay
writing that MAC as remote-id names the switch; until then giaddr does.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from dataclasses import dataclass

from ..locator import Location, Locator, Miss
from ..plan import Node, Plan
from . import codec
from .codec import (ACK, BOOTREPLY, BOOTREQUEST, BROADCAST_FLAG, DECLINE, DISCOVER, INFORM,
                    NAK, OFFER, RELEASE, REQUEST, ZERO, Malformed, Packet)

MAX_HOPS = 16
BROADCAST = "255.255.255.255"
SERVER_PORT, CLIENT_PORT = 67, 68
BIOS_FILE, UEFI_FILE = "undionly.kpxe", "ipxe.efi"
# Client system architecture (option 93, RFC 4578 and IANA's registry) → the iPXE
# binary that boots it: Debian's ipxe package ships the BIOS and x86-64 UEFI ones;
# the others carry the path iPXE's own build gives them, to be placed in the TFTP root.
TFTP_FILES = {0: BIOS_FILE, 6: "i386-efi/ipxe.efi", 7: UEFI_FILE, 9: UEFI_FILE,
              10: "arm32-efi/ipxe.efi", 11: "arm64-efi/ipxe.efi"}
# UEFI HTTP boot (vendor class HTTPClient): x86 15, x86-64 16, ARM32 18, ARM64 19.
HTTP_FILES = {15: TFTP_FILES[6], 16: UEFI_FILE, 18: TFTP_FILES[10], 19: TFTP_FILES[11]}
# RFC 2131 2: a client takes at least 576-byte IP datagrams; less IP and UDP headers.
MIN_MESSAGE, IP_UDP_HEADERS = 576, 28
# Kept whatever option 57 says: without them the reply means nothing.
ESSENTIAL = frozenset((codec.MESSAGE_TYPE, codec.SERVER_ID, codec.LEASE_TIME,
                       codec.SUBNET_MASK, codec.RELAY_AGENT_INFO))
_PXE_ARCH = re.compile(r"^PXEClient:Arch:(\d{5})")


@dataclass(frozen=True, slots=True)
class Event:
    """Something the state store should record: ``EventWriter.put(kind, node, **detail)``."""

    kind: str
    node: str | None
    detail: dict


@dataclass(frozen=True, slots=True)
class Reply:
    """Send ``packet`` to ``to``; ``kind`` is offer, ack or nak."""

    kind: str
    packet: Packet
    to: tuple
    location: Location | None = None
    event: Event | None = None


@dataclass(frozen=True, slots=True)
class Noted:
    """Handled, nothing to send (RELEASE, DECLINE): only an event."""

    kind: str
    event: Event
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """No answer. ``code`` is a short metric label, ``reason`` says why for the log."""

    code: str
    reason: str
    event: Event | None = None


@dataclass(frozen=True)
class Settings:
    """What the serving appliance adds to the plan: its own addresses and URLs."""

    server_id: str
    tftp_server: str | None = None      # next-server for TFTP boot; default server_id
    http_base_url: str = ""             # default: the zone's controller URL
    dns_servers: tuple = ()             # default: the zone's DNS upstreams


class Answerer:
    """Built once per plan (it caches each node's encoded identity); ``answer`` per packet."""

    def __init__(self, plan: Plan, settings: Settings, locator: Locator | None = None):
        self.plan, self.settings = plan, settings
        self.locator = locator or Locator(plan, plan.zone.dhcp.trusted_relays)
        self.base_url = (settings.http_base_url or plan.zone.controller_url).rstrip("/")
        self.tftp_server = settings.tftp_server or settings.server_id
        self.dns = tuple(settings.dns_servers or plan.zone.dns_upstreams)
        self.server_id = socket.inet_aton(settings.server_id)
        self._identities: dict = {}
        self._prefixes, self._gateways = _gateway_index(plan)
        self._relay_sources = _relay_sources(plan)
        self._handlers = {DISCOVER: self.discover, REQUEST: self.request, INFORM: self.inform,
                          RELEASE: self.release, DECLINE: self.decline}

    # --- the stages ---------------------------------------------------------------

    def answer(self, request: Packet, source: str):
        """A :class:`Reply`, :class:`Noted` or :class:`Drop` for one decoded request.

        ``source`` is the IPv4 address the packet came from (the relay, or the client
        for unrelayed unicast); it is checked against giaddr and ciaddr.
        """
        kind = check_request(request)
        if isinstance(kind, Drop):
            return kind
        try:
            where = self.locate(request, kind, source)
        except codec.Spoofed as exc:
            return self._spoof(request, source, str(exc))
        except Malformed as exc:
            return Drop("malformed", f"option 82: {exc}")
        if isinstance(where, Drop):
            return where
        return self._handlers[kind](request, where)

    def locate(self, request: Packet, kind: int, source: str):
        """Where the request comes from: Option 82 from a trusted relay, else ``ciaddr``."""
        if request.relay_spoof:
            return self._spoof(request, source, request.relay_spoof)
        info = codec.relay_info(request)
        if info is not None:
            return self._relayed(request, info, source)
        if request.giaddr != ZERO:
            return Drop("no-option-82", f"relay {request.giaddr} sent no Option 82")
        if request.ciaddr != ZERO and kind != DISCOVER:
            return self._renewal(request, source)
        return Drop("not-relayed", "no Option 82 and no ciaddr: the location is unknown")

    def _spoof(self, request: Packet, source: str, reason: str) -> Drop:
        """A client wrote its own Option 82: it claims a location it is not at."""
        return Drop("option-82-spoof", reason,
                    Event("option-82-spoof", None, {"giaddr": request.giaddr, "sender": source,
                                                    "mac": request.mac, "reason": reason}))

    def _relayed(self, request: Packet, info: dict, source: str):
        giaddr, mac = request.giaddr, request.mac
        if giaddr == ZERO or not self.locator.trusted(giaddr):
            why = "Option 82 without a relay" if giaddr == ZERO else f"untrusted relay {giaddr}"
            return Drop("untrusted-relay", why,
                        Event("untrusted-relay", None, {"giaddr": giaddr, "mac": mac,
                                                        "sender": source}))
        if not self.relay_source(source, giaddr):
            why = f"giaddr {giaddr} sent from {source}, which is not a relay of the zone"
            return Drop("relay-spoof", why, Event("relay-spoof", None, {
                "giaddr": giaddr, "sender": source, "mac": mac}))
        circuit = info.get(codec.CIRCUIT_ID)
        if circuit is None:
            return Drop("no-circuit-id", f"relay {giaddr} sent Option 82 without a circuit-id")
        relay = self._link_selection(giaddr, info.get(codec.LINK_SELECTION))
        remote = info.get(codec.REMOTE_ID)
        found = self.locator.locate(relay, circuit, remote)
        if isinstance(found, Miss):
            detail = {"switch": found.switch, "port": found.port, "mac": mac, "giaddr": giaddr,
                      "circuit_id": circuit.decode("latin-1"), "reason": found.reason}
            if remote:
                detail["remote_id"] = _printable(remote)
            return Drop(found.code, found.reason, Event(found.code, None, detail))
        return found

    def _link_selection(self, giaddr: str, selected: bytes | None) -> str:
        """RFC 3527: the subnet named by sub-option 5 picks the network, not giaddr."""
        if selected is None or len(selected) != 4:
            return giaddr
        value = struct.unpack("!I", selected)[0]
        for prefix in self._prefixes:
            mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
            gateway = self._gateways.get((prefix, value & mask))
            if gateway is not None:
                return gateway
        return giaddr

    def relay_source(self, source: str, giaddr: str) -> bool:
        """May ``source`` relay for ``giaddr``? The relay itself, a switch, a relay network."""
        if source == giaddr:
            return True
        node = self.locator.by_address(source)
        if node is not None:
            return node.kind == "switch"
        value = struct.unpack("!I", socket.inet_aton(source))[0]
        return any(value & mask == network for network, mask in self._relay_sources)

    def _renewal(self, request: Packet, source: str):
        """A unicast RENEW/RELEASE/INFORM reaches us without Option 82: it speaks for
        ``ciaddr`` only when it comes from that very address."""
        if source != request.ciaddr:
            why = f"ciaddr {request.ciaddr} claimed by {source}"
            return Drop("ciaddr-spoof", why, Event("ciaddr-spoof", None, {
                "ciaddr": request.ciaddr, "sender": source, "mac": request.mac}))
        node = self.locator.by_address(request.ciaddr)
        if node is None:
            return Drop("unknown-address", f"ciaddr {request.ciaddr} is no plan address")
        network = next(n for n, a in node.addresses.items() if a == request.ciaddr)
        return Location(node, network, request.ciaddr, "renewal", 0)

    # --- one handler per message type ----------------------------------------------

    def discover(self, request: Packet, where: Location):
        return self.reply(request, where, OFFER)

    def request(self, request: Packet, where: Location):
        chosen = codec.address_of(request, codec.SERVER_ID)
        if chosen is not None and socket.inet_aton(chosen) != self.server_id:
            return Drop("other-server", f"client chose server {chosen}")
        wanted = codec.address_of(request, codec.REQUESTED_IP) or request.ciaddr
        if wanted != ZERO and wanted != where.address:
            return self.nak(request, where, f"asked for {wanted}, its location has {where.address}")
        if where.switch != "renewal":  # located by its relay, not by what it claims
            self.locator.learn(where.node, request.mac)
        return self.reply(request, where, ACK, _lease_event(request, where))

    def learn_macs(self, macs: dict) -> None:
        """Switch MACs known from earlier leases (node name → MAC), e.g. the state store's."""
        for name, mac in macs.items():
            node = self.plan.nodes.get(name)
            if node is not None and mac:
                self.locator.learn(node, str(mac))

    def inform(self, request: Packet, where: Location):
        """RFC 2131 4.3.5: the ACK goes straight to ``ciaddr``, even for a relayed copy
        (dhcrelay also relays a unicast INFORM it sees pass; via the relay the ACK
        would go out with yiaddr 0.0.0.0)."""
        reply = self.reply(request, where, ACK, lease=False)
        if request.ciaddr == ZERO:
            return reply
        return Reply(reply.kind, reply.packet, (request.ciaddr, CLIENT_PORT), where)

    def release(self, request: Packet, where: Location):
        return Noted("release", Event("release", where.node.name,
                                      {"mac": request.mac, "address": request.ciaddr,
                                       "xid": request.xid}), where)

    def decline(self, request: Packet, where: Location):
        """The client found our address in use: an address conflict someone must fix."""
        address = codec.address_of(request, codec.REQUESTED_IP) or where.address
        return Noted("decline", Event("decline", where.node.name,
                                      {"mac": request.mac, "address": address, "xid": request.xid,
                                       "switch": where.switch, "port": where.port}), where)

    # --- building the reply ---------------------------------------------------------

    def reply(self, request: Packet, where: Location, kind: int, event: Event | None = None,
              lease: bool = True) -> Reply:
        options = {codec.MESSAGE_TYPE: bytes((kind,)), codec.SERVER_ID: self.server_id}
        options.update(self.identity(where.node, where.network, lease))
        boot = self.boot(where.node, request)
        options.update(boot.options)
        packet = _reply_packet(request, options, yiaddr=where.address if lease else ZERO)
        packet.siaddr, packet.file = boot.siaddr, boot.file or _file_field(boot.options)
        fit(packet, request)
        return Reply(codec.MESSAGE_NAMES[kind], packet, destination(request), where, event)

    def nak(self, request: Packet, where: Location, reason: str) -> Reply:
        options = {codec.MESSAGE_TYPE: bytes((NAK,)), codec.SERVER_ID: self.server_id,
                   codec.MESSAGE: reason.encode()}
        packet = _reply_packet(request, options, yiaddr=ZERO)
        if request.giaddr != ZERO:
            packet.flags |= BROADCAST_FLAG  # RFC 2131 4.3.2: the relay must broadcast a NAK
        to = destination(request) if request.giaddr != ZERO else (BROADCAST, CLIENT_PORT)
        return Reply("nak", packet, to, where)

    def identity(self, node: Node, network: str, lease: bool = True) -> dict:
        """Subnet, router, DNS, name, domain, NTP and lease times of a node; cached."""
        key = (node.name, network, lease)
        found = self._identities.get(key)
        if found is None:
            found = self._identities[key] = self._build_identity(node, network, lease)
        return found

    def _build_identity(self, node: Node, network: str, lease: bool) -> dict:
        zone, subnet = self.plan.zone, self.plan.subnet(node, network)
        out = {}
        if lease:
            out[codec.LEASE_TIME] = codec.u32(zone.dhcp.lease_time)
            out[codec.RENEW_TIME] = codec.u32(zone.dhcp.renew_time)
            out[codec.REBIND_TIME] = codec.u32(zone.dhcp.rebind_time)
        out[codec.SUBNET_MASK] = codec.addresses(subnet.netmask)
        out[codec.ROUTER] = codec.addresses(subnet.gateway)
        if self.dns:
            out[codec.DNS] = codec.addresses(*self.dns)
        out[codec.HOSTNAME] = node.name.encode()
        out[codec.DOMAIN] = zone.domain.encode()
        if zone.ntp:
            out[codec.NTP] = codec.addresses(*zone.ntp)
        return out

    def boot(self, node: Node, request: Packet) -> "Boot":
        """What to boot, from the node's role and what the client says it is."""
        if node.kind == "switch":
            return self._switch_boot(node, request)
        if node.kind == "server" and node.image:
            return self._server_boot(request)
        return NO_BOOT  # BMCs: address, name, domain, DNS, NTP only

    def _switch_boot(self, node: Node, request: Packet) -> "Boot":
        vendor = codec.text_of(request, codec.VENDOR_CLASS) or ""
        url = self.base_url
        if vendor.startswith("onie_vendor:") or node.ztp == "onie":
            return Boot({codec.ONIE_URL: f"{url}/onie/{node.name}".encode()})
        if node.ztp == "sonic":
            return Boot({codec.BOOTFILE_NAME: f"{url}/ztp/sonic/{node.name}.json".encode()})
        if node.ztp == "cumulus":
            return Boot({codec.CUMULUS_ZTP_URL: f"{url}/ztp/cumulus/{node.name}".encode()})
        if node.ztp == "arista":
            return Boot({codec.BOOTFILE_NAME: f"{url}/ztp/arista/{node.name}".encode()})
        return NO_BOOT

    def _server_boot(self, request: Packet) -> "Boot":
        vendor = codec.text_of(request, codec.VENDOR_CLASS) or ""
        if is_ipxe(request):
            return Boot({codec.BOOTFILE_NAME: f"{self.base_url}/boot/ipxe".encode(),
                         codec.IPXE: codec.tlv({codec.IPXE_NO_PXEDHCP: b"\x01"})})
        arch = client_arch(request, vendor)
        if vendor.startswith("HTTPClient"):
            url = f"{self.base_url}/files/{HTTP_FILES.get(arch, UEFI_FILE)}"
            return Boot({codec.VENDOR_CLASS: b"HTTPClient", codec.BOOTFILE_NAME: url.encode()})
        filename = TFTP_FILES.get(arch)
        return NO_BOOT if filename is None else self._tftp(filename)

    def _tftp(self, filename: str) -> "Boot":
        return Boot({codec.TFTP_SERVER_NAME: self.tftp_server.encode(),
                     codec.BOOTFILE_NAME: filename.encode()},
                    siaddr=self.tftp_server, file=filename.encode())


@dataclass(frozen=True, slots=True)
class Boot:
    options: dict
    siaddr: str = ZERO
    file: bytes = b""


NO_BOOT = Boot({})


def _file_field(options: dict) -> bytes:
    """The boot file URL in BOOTP's ``file`` too, for clients that read only the field
    (ISC dhcpd, Kea and dnsmasq fill it); it holds 127 bytes and a NUL."""
    name = options.get(codec.BOOTFILE_NAME, b"")
    return name if len(name) < 128 else b""


def max_message(request: Packet) -> int:
    """The largest DHCP message the client takes: option 57 (an IP datagram size,
    at least 576) less the IP and UDP headers; 576 without the option."""
    raw = request.options.get(codec.MAX_SIZE)
    size = struct.unpack("!H", raw)[0] if raw is not None and len(raw) == 2 else MIN_MESSAGE
    return max(size, MIN_MESSAGE) - IP_UDP_HEADERS


def fit(packet: Packet, request: Packet) -> None:
    """Drop options until the reply fits what the client takes (RFC 2132 9.10): first
    those it did not ask for in option 55, then the rest from the last, never
    :data:`ESSENTIAL` ones."""
    limit, size = max_message(request), codec.encoded_size(packet)
    if size <= limit:
        return
    asked = set(request.options.get(codec.PARAMETER_LIST, b""))
    order = [c for c in reversed(packet.options) if c not in asked and c not in ESSENTIAL]
    order += [c for c in reversed(packet.options) if c in asked and c not in ESSENTIAL]
    for code in order:
        size -= len(codec.option(code, packet.options.pop(code)))
        if size <= limit:
            return


def check_request(request: Packet):
    """Stage 1: a client request of a type we handle, not looping between relays."""
    if request.op != BOOTREQUEST:
        return Drop("not-request", f"op {request.op} is not BOOTREQUEST")
    kind = request.message_type
    if kind is None:
        return Drop("no-message-type", "no valid option 53")
    if kind not in (DISCOVER, REQUEST, INFORM, RELEASE, DECLINE):
        return Drop("bad-message-type", f"message type {kind} is not a client request")
    if request.hops > MAX_HOPS:
        return Drop("too-many-hops", f"{request.hops} relay hops")
    return kind


def is_ipxe(request: Packet) -> bool:
    """iPXE says so in option 77 (``iPXE``) and carries its own option 175."""
    return b"iPXE" in codec.user_classes(request) or codec.IPXE in request.options


def client_arch(request: Packet, vendor: str) -> int | None:
    """Option 93, or the ``PXEClient:Arch:NNNNN`` vendor class when 93 is absent."""
    arches = codec.arches_of(request)
    if arches:
        return arches[0]
    m = _PXE_ARCH.match(vendor)
    return int(m.group(1)) if m else None


def destination(request: Packet) -> tuple:
    """RFC 2131 4.1: via the relay when there is one, else to the client's address."""
    if request.giaddr != ZERO:
        return (request.giaddr, SERVER_PORT)
    if request.ciaddr != ZERO:
        return (request.ciaddr, CLIENT_PORT)
    return (BROADCAST, CLIENT_PORT)


def _reply_packet(request: Packet, options: dict, yiaddr: str) -> Packet:
    relay = request.options.get(codec.RELAY_AGENT_INFO)
    if relay is not None:
        options[codec.RELAY_AGENT_INFO] = relay  # RFC 3046 2.2: echo it, last
    return Packet(op=BOOTREPLY, xid=request.xid, htype=request.htype, hlen=request.hlen,
                  flags=request.flags, ciaddr=request.ciaddr, yiaddr=yiaddr,
                  giaddr=request.giaddr, chaddr=request.chaddr, options=options)


def _printable(raw: bytes) -> str:
    """A remote-id for an event: its text, or hex when it is binary (a raw MAC)."""
    text = raw.decode("latin-1")
    return text if text.isprintable() else raw.hex(":")


def _lease_event(request: Packet, where: Location) -> Event:
    return Event("lease", where.node.name,
                 {"mac": request.mac, "address": where.address, "network": where.network,
                  "switch": where.switch, "port": where.port})


def _relay_sources(plan: Plan) -> tuple:
    """``(network int, mask int)`` of ``dhcp.relay_sources``, default subnet 0 of each network."""
    cidrs = plan.zone.dhcp.relay_sources or tuple(
        subnet.cidr for (_, index), subnet in plan.subnets.items() if index == 0)
    nets = [ipaddress.IPv4Network(c, strict=False) for c in cidrs]
    return tuple((int(n.network_address), int(n.netmask)) for n in nets)


def _gateway_index(plan: Plan) -> tuple:
    """(prefix lengths, {(prefix, network int): gateway}) for RFC 3527 link selection."""
    gateways = {}
    for subnet in plan.subnets.values():
        network = struct.unpack("!I", socket.inet_aton(subnet.cidr.split("/")[0]))[0]
        gateways[(subnet.prefix, network)] = subnet.gateway
    return tuple(sorted({p for p, _ in gateways}, reverse=True)), gateways
