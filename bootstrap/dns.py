"""DNS service: authoritative for the zone domain and its reverse zones, from the plan.

Records come from :func:`bootstrap.render.dnszone.zones` (the same records the
rendered master files hold) plus two conveniences derived here: ``_zone.<domain>``
TXT carrying the zone file digest (which zone file this appliance answers from) and
``_http._tcp.<domain>`` SRV naming the controller.

Layers: :class:`Authority` is the pure core (a name and a type → an :class:`Answer`);
:func:`respond` turns a dnslib request into a dnslib reply; :class:`Responder` turns query
bytes into reply bytes; :class:`DnsService` is the thin socket adapter (UDP and TCP), with a
cache of packed replies keyed by the query's bytes after the ID, because the answers are
a pure function of the plan.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlparse

from dnslib import (A, EDNS0, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, DNSHeader,
                    DNSRecord)

from .metrics import DNS_QUERIES
from .plan import Plan
from .render.dnszone import TTL, zones

log = logging.getLogger(__name__)

UDP_PAYLOAD = 1232             # what we advertise with EDNS (the DNS flag day 2020 value)
PLAIN_UDP_LIMIT = 512          # a query without EDNS gets at most this many bytes over UDP
CACHE_LIMIT = 200_000          # packed replies kept; cleared when full (junk queries can't grow it)
QUERY_MAX = 4096               # bytes read per UDP datagram; a query is far smaller
FLUSH_SECONDS = 0.5            # how stale the UDP loop's query counts may be in /metrics
FORWARD_TIMEOUT = 2.0
HEADER = struct.Struct("!HHHHHH")
ZONE_TRANSFERS = (QTYPE.AXFR, QTYPE.IXFR)   # the zone files come from `zone render`, not from us


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


def _has_edns(request: DNSRecord) -> bool:
    return any(rr.rtype == QTYPE.OPT for rr in request.ar)


def respond(authority: Authority, request: DNSRecord, recursion: bool = False) -> DNSRecord | None:
    """The reply to ``request``; None when it is for a zone not ours (forward or refuse)."""
    header = DNSHeader(id=request.header.id, qr=1, aa=1, rd=request.header.rd,
                       ra=int(recursion))
    reply = DNSRecord(header, q=request.q)
    if _has_edns(request):
        reply.add_ar(EDNS0(udp_len=UDP_PAYLOAD))
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
    reply = DNSRecord(DNSHeader(id=request.header.id, qr=1, rd=request.header.rd,
                                rcode=rcode), q=request.q)
    if _has_edns(request):
        reply.add_ar(EDNS0(udp_len=UDP_PAYLOAD))
    return reply


def header_error(data: bytes, rcode: int) -> bytes:
    """A header-only reply to a query too broken to echo its question."""
    ident, flags = struct.unpack("!HH", data[:4])
    flags = 0x8000 | (flags & 0x7900) | rcode        # QR, keep opcode and RD
    return HEADER.pack(ident, flags, 0, 0, 0, 0)


def fit_udp(packed: bytes, request: DNSRecord) -> bytes:
    """The reply as sent over UDP: cut to the client's limit with TC set when too big."""
    limit = PLAIN_UDP_LIMIT
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            limit = max(PLAIN_UDP_LIMIT, min(rr.rclass, 65535))
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


class Responder:
    """Query bytes → reply bytes, with no sockets: the part of the service tests drive directly.

    ``forward=True`` sends questions for other zones to ``upstreams`` (default the zone
    file's ``dns.upstreams``, "host" or "host:port"); otherwise they get REFUSED.
    """

    def __init__(self, plan: Plan, forward: bool = False, upstreams=None):
        self.authority = Authority(plan)
        self.forward = forward
        self.upstreams = [parse_upstream(u) for u in (upstreams or plan.zone.dns_upstreams)]

    def answer(self, data: bytes, udp: bool = True) -> tuple:
        """(reply bytes, None to drop, or "forward"; rcode name) for one query."""
        if len(data) < 12 or data[2] & 0x80:          # too short for a header, or a response
            return None, "DROPPED"
        try:
            request = DNSRecord.parse(data)
        except Exception as exc:  # dnslib raises many kinds on garbage  # noqa: BLE001
            log.info("dns: malformed query (%s)", exc)
            return header_error(data, RCODE.FORMERR), "FORMERR"
        if len(request.questions) != 1:
            return header_error(data, RCODE.FORMERR), "FORMERR"
        reply = respond(self.authority, request, recursion=self.forward)
        if reply is None:
            if self.forward and self.upstreams:
                return "forward", None
            reply = refusal(request, RCODE.REFUSED)
        packed = reply.pack()
        return (fit_udp(packed, request) if udp else packed), RCODE[reply.header.rcode]

    def forward_query(self, data: bytes) -> tuple:
        """Ask each upstream in turn; SERVFAIL when none answers."""
        for upstream in self.upstreams:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.settimeout(FORWARD_TIMEOUT)
                    sock.sendto(data, upstream)
                    reply = sock.recv(65535)
                if reply[:2] == data[:2]:
                    return reply, RCODE.get(reply[3] & 0x0F, "SERVFAIL")
            except OSError as exc:
                log.info("dns: upstream %s:%d failed: %s", *upstream, exc)
        return header_error(data, RCODE.SERVFAIL), "SERVFAIL"


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


class DnsService:
    """Authoritative DNS on ``bind:port`` (UDP and TCP) from ``plan``.

    The sockets are bound by the constructor (so a taken port fails there, not in a
    thread); ``serve_forever()`` serves until ``stop()``; ``start()`` does the same in
    daemon threads and returns. ``port=0`` binds an ephemeral port, readable from
    ``.port``. ``forward`` and ``upstreams`` as in :class:`Responder`.
    """

    def __init__(self, plan: Plan, bind: str = "127.0.0.1", port: int = 53,
                 forward: bool = False, upstreams=None):
        self.responder = Responder(plan, forward, upstreams)
        self.authority = self.responder.authority
        self.bind = bind
        self._cache: dict[bytes, tuple] = {}       # query after its ID → (reply after it, tally slot)
        self._tally = _Tally()
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns-forward")
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()      # serving starts, or stop wins: never half of both
        self._serving = False
        self.udp, self.tcp = _bind_pair(bind, port, self)
        self.port = self.udp.getsockname()[1]

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

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "DnsService":
        """Serve in daemon threads; returns at once."""
        self._spawn(self.serve_forever, "dns")
        return self

    def serve_forever(self) -> None:
        """Serve TCP on a thread and UDP on this one until :meth:`stop`."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._serving = True
            self._spawn(self.tcp.serve_forever, "dns-tcp")
            self._spawn(self._flush_tally, "dns-metrics")
        log.info("dns: authoritative for %s on %s:%d (forward=%s)",
                 ", ".join(self.authority.zones), self.bind, self.port, self.responder.forward)
        try:
            self._serve_udp()
        finally:
            self._done.set()

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Stop serving and close every socket; idempotent."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        if self._serving:
            self.udp.sendto(b"", self.udp.getsockname())      # wake the UDP loop
            self.tcp.shutdown()
            self._done.wait(timeout=5)
        self.tcp.server_close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self.udp.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._tally.flush()

    # -- UDP ---------------------------------------------------------------

    def _serve_udp(self) -> None:
        sock, cache = self.udp, self._cache
        while True:
            try:
                data, client = sock.recvfrom(QUERY_MAX)
                hit = cache.get(data[2:])                 # the hot path: a packed reply
                if hit is None:
                    if self._stopping.is_set():           # stop() wakes us with a datagram
                        break
                    self._udp_slow(data, client)
                    continue
                hit[1][0] += 1                            # counted first: no flush can miss it
                sock.sendto(data[:2] + hit[0], client)
            except OSError as exc:
                if self._stopping.is_set():
                    break
                log.info("dns: udp: %s", exc)             # e.g. a client we cannot send to

    def _udp_slow(self, data: bytes, client) -> None:
        try:
            reply, rcode = self.responder.answer(data)
            if reply == "forward":
                self._pool.submit(self._forward_udp, data, client)
                return
            if reply is None:
                return
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            slot = self._tally.slot(rcode)
            self._cache[data[2:]] = (reply[2:], slot)
            slot[0] += 1
            self.udp.sendto(reply, client)
        except Exception:  # a bad query never stops the server  # noqa: BLE001
            log.exception("dns: failed to answer %r from %s:%d", data[:64], *client)

    def _forward_udp(self, data: bytes, client) -> None:
        reply, rcode = self.responder.forward_query(data)
        try:
            self._count(rcode)
            self.udp.sendto(reply, client)
        except OSError:
            pass                                          # stopped meanwhile


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, service: DnsService):
        self.service = service
        super().__init__(address, _TcpHandler)


class _TcpHandler(socketserver.BaseRequestHandler):
    """RFC 7766: two-byte length, then the message; several queries per connection."""

    def handle(self):
        service = self.server.service
        self.request.settimeout(10)
        try:
            while data := self._read_message():
                reply, rcode = service.responder.answer(data, udp=False)
                if reply == "forward":
                    reply, rcode = service.responder.forward_query(data)
                if reply is None:
                    return
                service._count(rcode)
                self.request.sendall(struct.pack("!H", len(reply)) + reply)
        except (OSError, ValueError) as exc:
            log.info("dns: tcp client %s:%d: %s", *self.client_address, exc)

    def _read_message(self) -> bytes | None:
        head = self._read_exactly(2)
        return self._read_exactly(struct.unpack("!H", head)[0]) if head else None

    def _read_exactly(self, size: int) -> bytes | None:
        chunks, left = [], size
        while left:
            chunk = self.request.recv(left)
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
