"""DNS service: authoritative for the zone domain and its reverse zones, from the plan.

Records come from :func:`bootstrap.render.dnszone.zones` (the same records the
rendered master files hold) plus two conveniences derived here: ``_zone.<domain>``
TXT carrying the zone file digest (which zone file this appliance answers from) and
``_http._tcp.<domain>`` SRV naming the controller.

Layers: :class:`Authority` is the pure core (a name and a type → an :class:`Answer`);
:func:`respond` turns a dnslib request into a dnslib reply; :class:`Responder` turns query
bytes into reply bytes; :class:`DnsService` is the thin socket adapter (UDP and TCP), with a
:class:`ReplyCache` of packed replies, because the answers are a pure function of the plan,
and a :class:`Forwarder` for other zones when forwarding is on.

EDNS (RFC 6891/3225): version 0 only (a higher version gets BADVERS and our version-0
OPT), the DO bit echoed (we sign nothing, so no RRSIGs), and a UDP reply at most the
client's size (512 without EDNS) and never over ``UDP_REPLY_MAX``; beyond, TC sends it to TCP.

Anyone who can reach port 53 can send anything, so: a question that is not one plain
well-formed question is answered (FORMERR at worst) but never cached; the cache key is
what the reply depends on (lower-cased name, type, class, RD, EDNS size, version, DO), so
0x20 case and EDNS cookies make no new entries; the cache is bounded in entries and
bytes; forwarding holds at most ``FORWARD_MAX`` questions, each timed out; TCP takes at
most ``TCP_CLIENTS`` connections; and every log line a stranger can cause is throttled.
"""

from __future__ import annotations

import collections
import enum
import logging
import secrets
import selectors
import socket
import socketserver
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from dnslib import (A, EDNS0, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, DNSHeader,
                    DNSRecord)

from .metrics import DNS_QUERIES
from .plan import Plan
from .render.dnszone import TTL, zones
from .service import Service, listen_error
from .throttle import Throttle

log = logging.getLogger(__name__)

UDP_PAYLOAD = 1232             # what we advertise with EDNS (the DNS flag day 2020 value)
PLAIN_UDP_LIMIT = 512          # a query without EDNS gets at most this many bytes over UDP
UDP_REPLY_MAX = UDP_PAYLOAD    # and with EDNS at most this, whatever it advertises (no fragments)
BADVERS = 16                   # RFC 6891 extended RCODE: the high 8 bits ride in the OPT's TTL
EDNS_DO = 0x8000               # RFC 3225 DNSSEC OK, in the OPT's TTL
CACHE_ENTRIES = 250_000        # packed replies kept at most (two generations of half each)
CACHE_BYTES = 128 << 20        # and their estimated memory at most (the 10k zone: 44 MB)
QUERY_MAX = 4096               # bytes read per UDP datagram; a query is far smaller
NAME_MAX = 255                 # RFC 1035 2.3.4: a name on the wire, length octets included
FLUSH_SECONDS = 0.5            # how stale the UDP loop's query counts may be in /metrics
FORWARD_TIMEOUT = 2.0          # per upstream; a question tries each upstream once
FORWARD_MAX = 64               # questions being forwarded at once; beyond: SERVFAIL at once
TCP_BACKLOG = 128
TCP_CLIENTS = 64               # TCP connections served at once; beyond: closed at once
TCP_TIMEOUT = 10.0             # to read one whole message on a TCP connection
HEADER = struct.Struct("!HHHHHH")
ZONE_TRANSFERS = (QTYPE.AXFR, QTYPE.IXFR)   # the zone files come from `zone render`, not from us

# Log lines any sender can cause: a burst, then one a second per (kind, source).
LOG_LIMIT = Throttle(rate=1.0, burst=5)


def _log(kind: str, source: str, message: str, *args) -> None:
    if LOG_LIMIT.allow(kind, source):
        log.info(message, *args)


# ---------------------------------------------------------------------------
# The pure core
# ---------------------------------------------------------------------------

@dataclass
class Answer:
    """What the authority says about one question (records as (name, type, value))."""

    rcode: int
    answer: list = field(default_factory=list)
    authority: list = field(default_factory=list)
    additional: list = field(default_factory=list)


def _controller_srv(plan: Plan, ns_name: str, has_ns_address: bool) -> tuple | None:
    url = urlparse(plan.zone.controller_url)
    if not url.hostname:
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    target = ns_name if has_ns_address else url.hostname
    return (f"_{url.scheme}._tcp.{plan.zone.domain}", "SRV", (0, 0, port, target))


class Authority:
    """Every record the plan implies, indexed by lower-case owner name and type."""

    def __init__(self, plan: Plan):
        self.zones = zones(plan)
        self.origins = sorted(self.zones, key=len, reverse=True)
        self.records: dict[str, dict[str, list]] = {}
        for zone in self.zones.values():
            self._add(zone.origin, "SOA", zone.soa)
            self._add(zone.origin, "NS", zone.nameserver)
            for name, rtype, value in zone.records:
                self._add(name, rtype, value)
        self._add_conveniences(plan)
        self.existing = self._with_ancestors()

    def add(self, name: str, rtype: str, value) -> None:
        """One record beyond the plan's, before serving (replies are cached): the seam for
        answers no plan makes, e.g. one too large for UDP. ``name`` must be in a zone of ours."""
        self._add(name, rtype, value)
        self.existing.add(name.rstrip(".").lower())

    def _add(self, name: str, rtype: str, value) -> None:
        self.records.setdefault(name.lower(), {}).setdefault(rtype, []).append(value)

    def _add_conveniences(self, plan: Plan) -> None:
        domain = plan.zone.domain
        self._add(f"_zone.{domain}", "TXT", (f"zone={plan.zone.name}",
                                              f"digest={plan.zone.digest or 'none'}"))
        forward = self.zones[domain]
        ns_has_address = "A" in self.records.get(forward.nameserver.lower(), {})
        srv = _controller_srv(plan, forward.nameserver, ns_has_address)
        if srv:
            self._add(*srv)

    def _with_ancestors(self) -> set:
        """Owner names plus every empty non-terminal between them and their zone's origin."""
        names = set(self.records)
        for name in list(self.records):
            origin = self.zone_of(name)
            while name != origin and "." in name:
                name = name.split(".", 1)[1]
                names.add(name)
        return names

    def zone_of(self, qname: str) -> str | None:
        """The origin of the most specific zone of ours that holds ``qname``."""
        qname = qname.lower()
        for origin in self.origins:
            if qname == origin or qname.endswith("." + origin):
                return origin
        return None

    def lookup(self, qname: str, qtype: str) -> Answer | None:
        """The answer for (qname, qtype); None when the name is in none of our zones."""
        qname = qname.rstrip(".").lower()
        origin = self.zone_of(qname)
        if origin is None:
            return None
        soa = [(origin, "SOA", self.zones[origin].soa)]
        if qname not in self.existing:
            return Answer(RCODE.NXDOMAIN, authority=soa)
        held = self.records.get(qname, {})
        types = list(held) if qtype == "ANY" else [qtype]
        found = [(qname, t, v) for t in types for v in held.get(t, ())]
        if not found:
            return Answer(RCODE.NOERROR, authority=soa)          # NODATA
        return Answer(RCODE.NOERROR, found, additional=self._glue(found))

    def _glue(self, found: list) -> list:
        """Addresses of NS and SRV targets we hold, so the client need not ask again."""
        targets = [v if t == "NS" else v[3] for _, t, v in found if t in ("NS", "SRV")]
        return [(name, "A", a) for name in targets
                for a in self.records.get(name.lower(), {}).get("A", ())]


# ---------------------------------------------------------------------------
# dnslib encoding
# ---------------------------------------------------------------------------

def _rdata(rtype: str, value):
    if rtype == "A":
        return A(value)
    if rtype in ("PTR", "NS"):
        return (PTR if rtype == "PTR" else NS)(value + ".")
    if rtype == "SOA":
        mname, rname, *times = value
        return SOA(mname + ".", rname + ".", times[:5])
    if rtype == "TXT":
        return TXT(list(value))
    if rtype == "SRV":
        priority, weight, port, target = value
        return SRV(priority, weight, port, target + ".")
    raise ValueError(f"no encoding for {rtype}")


def _rrs(records: list) -> list:
    return [RR(name + ".", getattr(QTYPE, rtype), rdata=_rdata(rtype, value), ttl=TTL)
            for name, rtype, value in records]


def _opt(request: DNSRecord):
    """The query's EDNS OPT record, or None without EDNS."""
    return next((rr for rr in request.ar if rr.rtype == QTYPE.OPT), None)


def _edns_version(opt) -> int:
    return (opt.ttl >> 16) & 0xFF


def _add_opt(reply: DNSRecord, request: DNSRecord, rcode: int = 0) -> None:
    """Our OPT (version 0) when the query had one: DO echoed (RFC 3225; we sign nothing,
    so no RRSIGs follow), the extended RCODE's high bits in it and its low bits in the
    header (RFC 6891 6.1.3)."""
    opt = _opt(request)
    if opt is not None:
        reply.add_ar(EDNS0(udp_len=UDP_PAYLOAD, ext_rcode=rcode >> 4,
                           flags="do" if opt.ttl & EDNS_DO else ""))
    reply.header.rcode = rcode & 0x0F


def rcode_name(reply: DNSRecord) -> str:
    """The full RCODE's name, extended bits from the OPT included (BADVERS for 16)."""
    opt = _opt(reply)
    rcode = (opt.ttl >> 24 << 4 if opt is not None else 0) | reply.header.rcode
    return "BADVERS" if rcode == BADVERS else RCODE.get(rcode, str(rcode))


def respond(authority: Authority, request: DNSRecord, recursion: bool = False) -> DNSRecord | None:
    """The reply to ``request``; None when it is for a zone not ours (forward or refuse)."""
    opt = _opt(request)
    if opt is not None and _edns_version(opt) > 0:       # RFC 6891: only version 0 here
        return refusal(request, BADVERS)
    header = DNSHeader(id=request.header.id, qr=1, aa=1, rd=request.header.rd,
                       ra=int(recursion))
    reply = DNSRecord(header, q=request.q)
    _add_opt(reply, request)
    if request.header.opcode != 0:
        reply.header.aa, reply.header.rcode = 0, RCODE.NOTIMP
        return reply
    q = request.q
    if q.qclass != 1 or q.qtype in ZONE_TRANSFERS:
        reply.header.aa, reply.header.rcode = 0, RCODE.REFUSED
        return reply
    answer = authority.lookup(str(q.qname), QTYPE.get(q.qtype, str(q.qtype)))
    if answer is None:
        return None
    reply.header.rcode = answer.rcode
    reply.rr, reply.auth = _rrs(answer.answer), _rrs(answer.authority)
    reply.ar = _rrs(answer.additional) + reply.ar
    return reply


def refusal(request: DNSRecord, rcode: int) -> DNSRecord:
    reply = DNSRecord(DNSHeader(id=request.header.id, qr=1, rd=request.header.rd), q=request.q)
    _add_opt(reply, request, rcode)
    return reply


def header_error(data: bytes, rcode: int) -> bytes:
    """A header-only reply to a query too broken to echo its question."""
    ident, flags = struct.unpack("!HH", data[:4])
    flags = 0x8000 | (flags & 0x7900) | rcode        # QR, keep opcode and RD
    return HEADER.pack(ident, flags, 0, 0, 0, 0)


def fit_udp(packed: bytes, request: DNSRecord) -> bytes:
    """The reply as sent over UDP: cut to the client's limit with TC set when too big.

    The limit is 512 without EDNS, else the client's advertised size (512 at least, RFC
    6891 6.2.3) but never above ``UDP_REPLY_MAX``: a bigger datagram may be fragmented,
    and fragments get lost or spoofed (DNS flag day 2020); TC sends the client to TCP."""
    opt = _opt(request)
    limit = PLAIN_UDP_LIMIT if opt is None else min(max(PLAIN_UDP_LIMIT, opt.rclass),
                                                      UDP_REPLY_MAX)
    if len(packed) <= limit:
        return packed
    reply = DNSRecord.parse(packed)
    reply.rr, reply.auth = [], []
    reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
    reply.header.tc = 1
    return reply.pack()


def parse_upstream(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return (host, int(port)) if port else (text, 53)


class Route(enum.Enum):
    """What :meth:`Responder.answer` gives instead of reply bytes when others must answer."""

    FORWARD = "forward"     # a zone not ours, with forwarding on: the upstreams answer


FORWARD = Route.FORWARD


class Responder:
    """Query bytes → reply bytes, with no sockets: the part of the service tests drive directly.

    ``forward=True`` sends questions for other zones to ``upstreams`` (default the zone
    file's ``dns.upstreams``, "host" or "host:port"); otherwise they get REFUSED.
    """

    def __init__(self, plan: Plan, forward: bool = False, upstreams=None):
        self.authority = Authority(plan)
        self.forward = forward
        self.upstreams = [parse_upstream(u) for u in (upstreams or plan.zone.dns_upstreams)]
        self.failures = 0          # queries that parsed but broke our answering: bugs (SERVFAIL)

    def answer(self, data: bytes, udp: bool = True) -> tuple:
        """(reply bytes, None to drop, or :data:`FORWARD`; rcode name or None) for one query."""
        if len(data) < 12 or data[2] & 0x80:          # too short for a header, or a response
            return None, "DROPPED"
        try:
            request = DNSRecord.parse(data)
        except Exception as exc:  # dnslib raises many kinds on garbage  # noqa: BLE001
            _log("dns-malformed", "", "dns: malformed query (%s: %s)", type(exc).__name__, exc)
            return header_error(data, RCODE.FORMERR), "FORMERR"
        if (len(request.questions) != 1 or _wire_length(request.q.qname) > NAME_MAX
                or sum(rr.rtype == QTYPE.OPT for rr in request.ar) > 1):    # RFC 6891 6.1.1
            return header_error(data, RCODE.FORMERR), "FORMERR"
        try:
            return self._reply(request, udp)
        except Exception as exc:  # a query we parsed but cannot answer: our bug  # noqa: BLE001
            self.failures += 1
            _log("dns-failed", "", "dns: failed to answer %r: %r", bytes(data[:64]), exc)
            return header_error(data, RCODE.SERVFAIL), "SERVFAIL"

    def _reply(self, request: DNSRecord, udp: bool) -> tuple:
        reply = respond(self.authority, request, recursion=self.forward)
        if reply is None:
            if self.forward and self.upstreams:
                return FORWARD, None
            reply = refusal(request, RCODE.REFUSED)
        packed = reply.pack()
        return (fit_udp(packed, request) if udp else packed), rcode_name(reply)



def _wire_length(name) -> int:
    """The bytes a dnslib name takes on the wire (dnslib parses longer names than it packs)."""
    return sum(len(label) + 1 for label in name.label) + 1


def cache_key(data: bytes) -> tuple[tuple, int] | None:
    """(key, end of the question) for a query that is exactly one well-formed question
    and at most an EDNS OPT record; None for anything else (answered, never cached).

    The key holds what a UDP reply depends on: opcode and RD, the lower-cased name
    (DNS names are case-insensitive; the reply echoes the asker's case, spliced in),
    type and class, and EDNS's presence, UDP size, version and DO bit. A query ID,
    0x20 case, EDNS options (cookies, padding) and the other flag bits make no new entry.
    On the hot path of every query: written for speed (~1 µs).
    """
    size = len(data)
    if size < 17 or data[4:11] != b"\x00\x01\x00\x00\x00\x00\x00" or data[11] > 1:
        return None
    pos = 12
    while pos < size and 0 < (length := data[pos]) < 64:    # a pointer or >63: not plain
        pos += length + 1
    end = pos + 5                                  # the root label, type and class
    if end > size or data[pos] or pos - 11 > NAME_MAX:
        return None
    if data[11] == 0:
        return ((data[2] & 0x79, data[12:pos].lower(), data[pos:end]), end) if end == size else None
    # the OPT record: root owner, type 41, class = UDP size, TTL = ext-rcode/version/flags
    if (size < end + 11 or data[end:end + 3] != b"\x00\x00\x29"
            or end + 11 + (data[end + 9] << 8 | data[end + 10]) != size):
        return None
    return ((data[2] & 0x79, data[12:pos].lower(), data[pos:end + 5], data[end + 6],
             data[end + 7] & 0x80), end)


class ReplyCache:
    """Packed UDP replies by :func:`cache_key`, within ``entries`` and ``limit`` bytes.

    Two generations: new replies go to the young one; when it reaches half of either
    bound, it becomes the old one and the previous old one is dropped. A hit in the old
    generation moves back to the young one, so what is asked often stays. Each lookup
    and insertion is O(1); memory stays under the bounds whatever is asked.
    """

    ENTRY_OVERHEAD = 160       # a dict slot, a tuple and a tally reference, roughly

    def __init__(self, entries: int, limit: int):
        self.entries, self.limit = entries // 2, limit // 2
        self._young: dict = {}
        self._old: dict = {}
        self._young_bytes = self._old_bytes = 0

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    @property
    def size(self) -> int:
        """Estimated bytes held by the entries (keys, packed replies, containers)."""
        return self._young_bytes + self._old_bytes

    def get(self, key: tuple):
        hit = self._young.get(key)
        if hit is None:
            hit = self._old.pop(key, None)
            if hit is not None:
                self._old_bytes -= self._cost(key, hit)
                self.put(key, hit)
        return hit

    def put(self, key: tuple, value: tuple) -> None:
        cost = self._cost(key, value)
        if len(self._young) >= self.entries or self._young_bytes + cost > self.limit:
            self._old, self._old_bytes = self._young, self._young_bytes
            self._young, self._young_bytes = {}, 0
        if cost <= self.limit and key not in self._young:
            self._young[key] = value
            self._young_bytes += cost

    def _cost(self, key: tuple, value: tuple) -> int:
        return (sys.getsizeof(key) + sum(map(sys.getsizeof, key)) + sys.getsizeof(value[0])
                + sys.getsizeof(value[1]) + self.ENTRY_OVERHEAD)


# ---------------------------------------------------------------------------
# Forwarding
# ---------------------------------------------------------------------------

@dataclass
class _Pending:
    """One question being forwarded: to ``upstreams[index]`` under ``ident``, until ``deadline``."""

    data: bytes
    deliver: object            # deliver(reply bytes, rcode name), called once
    index: int = 0
    ident: bytes = b""
    deadline: float = 0.0
    sock: socket.socket | None = None


class Forwarder:
    """Questions for other zones, relayed to the upstreams by one thread.

    At most ``FORWARD_MAX`` questions are in flight; :meth:`submit` refuses more (the
    caller answers SERVFAIL), so a silent upstream cannot make anything queue. Each
    upstream in turn gets ``FORWARD_TIMEOUT``; when none answers, SERVFAIL. Each try has
    its own socket connected to the upstream (a random source port and a random ID: an
    off-path reply must guess both; connect() drops datagrams from anyone else).
    """

    def __init__(self, upstreams: list):
        self.upstreams = upstreams
        self._selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_out.setblocking(False)
        self._selector.register(self._wake_in, selectors.EVENT_READ, None)
        self._incoming: collections.deque = collections.deque()
        self._pending: dict[socket.socket, _Pending] = {}   # in deadline order
        self._lock = threading.Lock()
        self.in_flight = 0
        self._stopping = False

    def submit(self, data: bytes, deliver) -> bool:
        """Forward ``data``; False (nothing done) when ``FORWARD_MAX`` are in flight."""
        with self._lock:
            if self._stopping or self.in_flight >= FORWARD_MAX:
                return False
            self.in_flight += 1
            self._incoming.append(_Pending(data, deliver))
        try:
            self._wake_out.send(b"\0")
        except OSError:
            pass                   # the buffer is full of wake-ups already, or we stopped
        return True

    def serve(self) -> None:
        """The forwarding loop (its own thread), until :meth:`stop`."""
        while not self._stopping:
            for key, _ in self._selector.select(self._wait()):
                if key.data is None:
                    self._take_incoming()
                else:
                    self._receive(key.data)
            self._expire(time.monotonic())
        self._incoming.extend(self._pending.values())
        while self._incoming:
            pending = self._incoming.popleft()
            self._finish(pending, header_error(pending.data, RCODE.SERVFAIL), "SERVFAIL")

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        try:
            self._wake_out.send(b"\0")
        except OSError:
            pass

    def close(self) -> None:
        """Free the wake-up pair (after the loop has ended)."""
        self._selector.close()
        self._wake_in.close()
        self._wake_out.close()

    def _wait(self) -> float:
        first = next(iter(self._pending.values()), None)
        return 1.0 if first is None else max(0.0, first.deadline - time.monotonic())

    def _take_incoming(self) -> None:
        try:
            self._wake_in.recv(4096)
        except OSError:
            pass
        while self._incoming:
            self._try(self._incoming.popleft())

    def _try(self, pending: _Pending) -> None:
        """Send to the upstream at ``pending.index``, or SERVFAIL when none is left."""
        while pending.index < len(self.upstreams):
            upstream = self.upstreams[pending.index]
            try:
                sock = socket.socket(_family(upstream[0]), socket.SOCK_DGRAM)
            except OSError as exc:
                _log("dns-upstream", upstream[0], "dns: upstream %s:%d: %s", *upstream, exc)
                break
            try:
                sock.setblocking(False)
                sock.connect(upstream)
                pending.ident = secrets.token_bytes(2)
                sock.send(pending.ident + pending.data[2:])
            except OSError as exc:
                sock.close()
                _log("dns-upstream", upstream[0], "dns: upstream %s:%d: %s", *upstream, exc)
                pending.index += 1
                continue
            pending.sock, pending.deadline = sock, time.monotonic() + FORWARD_TIMEOUT
            self._pending[sock] = pending
            self._selector.register(sock, selectors.EVENT_READ, pending)
            return
        self._finish(pending, header_error(pending.data, RCODE.SERVFAIL), "SERVFAIL")

    def _receive(self, pending: _Pending) -> None:
        try:
            reply = pending.sock.recv(65535)
        except OSError as exc:          # e.g. ECONNREFUSED: nothing listens there
            _log("dns-upstream", self.upstreams[pending.index][0], "dns: upstream %s:%d: %s",
                 *self.upstreams[pending.index], exc)
            self._next_upstream(pending)
            return
        if len(reply) < 12 or reply[:2] != pending.ident or not reply[2] & 0x80:
            return                      # not the answer to our question: keep waiting
        self._drop_socket(pending)
        self._finish(pending, pending.data[:2] + reply[2:],
                     RCODE.get(reply[3] & 0x0F, "SERVFAIL"))

    def _expire(self, now: float) -> None:
        for pending in list(self._pending.values()):
            if pending.deadline > now:
                break                   # in deadline order: the rest are later
            self._next_upstream(pending)

    def _next_upstream(self, pending: _Pending) -> None:
        self._drop_socket(pending)
        pending.index += 1
        self._try(pending)

    def _drop_socket(self, pending: _Pending) -> None:
        del self._pending[pending.sock]
        self._selector.unregister(pending.sock)
        pending.sock.close()
        pending.sock = None

    def _finish(self, pending: _Pending, reply: bytes, rcode: str) -> None:
        if pending.sock is not None:
            self._drop_socket(pending)
        with self._lock:
            self.in_flight -= 1
        try:
            pending.deliver(reply, rcode)
        except OSError:
            pass                        # the client's socket is gone (we are stopping)


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# ---------------------------------------------------------------------------
# The socket adapter
# ---------------------------------------------------------------------------

class _Tally:
    """Per-rcode query counts of the UDP loop, added to the shared counter off its path.

    A Prometheus ``inc()`` (a lock) costs more than the rest of a cached answer, so the
    loop, the only writer, bumps a plain int in a one-element list and :meth:`flush`
    (another thread, every ``FLUSH_SECONDS``) adds what is new since the last flush.
    """

    def __init__(self):
        self.slots: dict[str, list] = {}
        self._flushed: dict[str, int] = {}
        self._lock = threading.Lock()          # flushes may come from two threads

    def slot(self, rcode: str) -> list:
        return self.slots.setdefault(rcode, [0])

    def flush(self) -> None:
        with self._lock:
            for rcode, slot in list(self.slots.items()):
                count = slot[0]
                delta = count - self._flushed.get(rcode, 0)
                if delta:
                    DNS_QUERIES.labels(rcode=rcode).inc(delta)
                    self._flushed[rcode] = count


def _bind_pair(address: str, port: int, service) -> tuple:
    """A UDP socket and a TCP server on one port (with port 0: the first ephemeral port
    free for both)."""
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((address, port))
            return udp, _TcpServer((address, udp.getsockname()[1]), service)
        except OSError:
            udp.close()
            if port:
                raise
    raise OSError("no port free for both UDP and TCP")


class DnsService(Service):
    """Authoritative DNS on ``bind:port`` (UDP and TCP) from ``plan``: a
    :class:`~bootstrap.service.Service` (the UDP loop serves on the serving thread, TCP
    and forwarding on threads of their own). ``port=0`` binds an ephemeral port,
    readable from ``.port``. ``forward`` and ``upstreams`` as in :class:`Responder`.
    """

    name = "dns"

    def __init__(self, plan: Plan, bind: str = "127.0.0.1", port: int = 53,
                 forward: bool = False, upstreams=None):
        super().__init__()
        self.responder = Responder(plan, forward, upstreams)
        self.authority = self.responder.authority
        self.bind = bind
        # cache_key → (reply header after its ID, reply after the question, tally slot)
        self._cache = ReplyCache(CACHE_ENTRIES, CACHE_BYTES)
        self._tally = _Tally()
        self._threads: list[threading.Thread] = []
        try:
            self.udp, self.tcp = _bind_pair(bind, port, self)
        except OSError as exc:
            raise listen_error("DNS", bind, port, exc) from None
        self.port = self.udp.getsockname()[1]
        self.endpoint = (bind, self.port)
        self.forwarder = Forwarder(self.responder.upstreams)     # after a bind that may fail

    @staticmethod
    def _count(rcode: str) -> None:
        """Count one answer sent by a thread other than the UDP loop (TCP, forwarding)."""
        DNS_QUERIES.labels(rcode=rcode).inc()

    def flush_metrics(self) -> None:
        """Bring ``zone_dns_queries_total`` up to date now (it lags by ``FLUSH_SECONDS``)."""
        self._tally.flush()

    def _flush_tally(self) -> None:
        while not self._stopping.wait(FLUSH_SECONDS):
            self._tally.flush()

    # -- lifecycle (the order and locking: bootstrap.service) ------------------

    def _serving_starts(self) -> None:
        self._spawn(self.tcp.serve_forever, "dns-tcp")
        self._spawn(self._flush_tally, "dns-metrics")
        self._spawn(self.forwarder.serve, "dns-forward")

    def _serve_loop(self) -> None:
        log.info("dns: authoritative for %s on %s:%d (forward=%s)",
                 ", ".join(self.authority.zones), self.bind, self.port, self.responder.forward)
        self._serve_udp()

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _interrupt(self) -> None:
        self.forwarder.stop()
        self.udp.sendto(b"", self.udp.getsockname())      # wake the UDP loop
        self.tcp.shutdown()

    def _release(self) -> None:
        self.forwarder.stop()       # idempotent; stops submissions when we never served
        self.tcp.server_close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self.udp.close()
        self.forwarder.close()
        self._tally.flush()

    def _counts(self) -> dict:
        return {"cached": len(self._cache), "forwarding": self.forwarder.in_flight,
                "failures": self.responder.failures}

    # -- UDP ---------------------------------------------------------------

    def _serve_udp(self) -> None:
        sock, reply_to, stopping = self.udp, self.reply_to, self._stopping
        client = ("", 0)
        while True:
            try:
                data, client = sock.recvfrom(QUERY_MAX)
                if stopping.is_set():                     # stop() wakes us with a datagram
                    break
                reply = reply_to(data, client)
                if reply:
                    sock.sendto(reply, client)
            except OSError as exc:
                if stopping.is_set():
                    break
                _log("dns-udp", client[0], "dns: udp: %s", exc)   # e.g. a client we cannot send to

    def reply_to(self, data: bytes, client) -> bytes | None:
        """The UDP reply to one datagram from ``client``; None when there is none now (a
        drop, or a forwarded question: its reply is sent when the upstream's comes)."""
        question = cache_key(data)
        hit = question and self._cache.get(question[0])
        if hit:                                           # the hot path: a packed reply
            hit[2][0] += 1                                # counted first: no flush can miss it
            return data[:2] + hit[0] + data[12:question[1]] + hit[1]
        try:
            return self._udp_slow(data, client, question)
        except Exception as exc:  # a bad query never stops the server  # noqa: BLE001
            self.responder.failures += 1
            _log("dns-failed", client[0], "dns: failed to answer %r from %s:%d: %r",
                 bytes(data[:64]), *client, exc)
            return None

    def _udp_slow(self, data: bytes, client, question) -> bytes | None:
        reply, rcode = self.responder.answer(data)
        if reply is FORWARD:
            self._forward_udp(data, client)
            return None
        if reply is None:
            return None
        slot = self._tally.slot(rcode)
        if question and rcode not in ("FORMERR", "SERVFAIL"):
            self._cache.put(question[0], (reply[2:12], reply[question[1]:], slot))
        slot[0] += 1
        return reply

    def _forward_udp(self, data: bytes, client) -> None:
        def deliver(reply: bytes, rcode: str) -> None:
            self._count(rcode)
            self.udp.sendto(reply, client)
        if not self.forwarder.submit(data, deliver):
            _log("dns-forward-full", client[0], "dns: %d questions being forwarded; SERVFAIL to %s",
                 FORWARD_MAX, client[0])
            deliver(header_error(data, RCODE.SERVFAIL), "SERVFAIL")

    def forward_and_wait(self, data: bytes) -> tuple:
        """(reply, rcode) from the forwarder, for a caller that can wait (TCP)."""
        done, result = threading.Event(), []

        def deliver(reply: bytes, rcode: str) -> None:
            result.append((reply, rcode))
            done.set()
        if self.forwarder.submit(data, deliver):
            done.wait(FORWARD_TIMEOUT * len(self.responder.upstreams) + 5)
        return result[0] if result else (header_error(data, RCODE.SERVFAIL), "SERVFAIL")


class _TcpServer(socketserver.ThreadingTCPServer):
    """A thread per connection, at most ``TCP_CLIENTS`` of them; more are closed at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = TCP_BACKLOG

    def __init__(self, address, service: DnsService):
        self.service = service
        self._slots = threading.BoundedSemaphore(TCP_CLIENTS)
        super().__init__(address, _TcpHandler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            _log("dns-tcp-full", client_address[0], "dns: %d tcp clients already; closing %s",
                 TCP_CLIENTS, client_address[0])
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()             # no thread took it
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        """A handler that raised (our bug): one throttled line, not a traceback per client."""
        _log("dns-failed", client_address[0], "dns: tcp client %s:%d: %r",
             *client_address, sys.exc_info()[1])


class _TcpHandler(socketserver.BaseRequestHandler):
    """RFC 7766: two-byte length, then the message; several queries per connection.

    Each message must arrive whole within ``TCP_TIMEOUT`` (a byte now and then does not
    keep a connection), and every message gets an answer (FORMERR at worst)."""

    def handle(self):
        service = self.server.service
        try:
            while data := self._read_message():
                reply, rcode = service.responder.answer(data, udp=False)
                if reply is FORWARD:
                    reply, rcode = service.forward_and_wait(data)
                if reply is None:
                    return
                service._count(rcode)
                self.request.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError as exc:
            _log("dns-tcp", self.client_address[0], "dns: tcp client %s:%d: %s",
                 *self.client_address, exc)

    def _read_message(self) -> bytes | None:
        deadline = time.monotonic() + TCP_TIMEOUT
        head = self._read_exactly(2, deadline)
        return self._read_exactly(struct.unpack("!H", head)[0], deadline) if head else None

    def _read_exactly(self, size: int, deadline: float) -> bytes | None:
        chunks, left = [], size
        while left:
            self.request.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = self.request.recv(left)
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
