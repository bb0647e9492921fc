"""The UDP adapter: receive, decode, ask :mod:`.answer`, send; record and count.

One loop per socket. With ``workers > 1`` the loop runs in that many processes
on one port (``SO_REUSEPORT``); a classic BPF program spreads requests over them
by transaction id, because a relay sends everything from one address and port
and the kernel's default hash would put it all on one socket. Workers hand
their events and counts to the parent through a queue, so the state store,
the Prometheus counters and the hardware-replacement check live in one place.

Nothing on the packet path blocks on disk: events go to a
:class:`~bootstrap.state.EventWriter`. Bad input is logged, counted and skipped.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import multiprocessing
import queue
import signal
import socket
import struct
import threading
import time

from ..errors import InputError
from ..metrics import DHCP_ANSWERS
from ..plan import Plan
from ..process import die_with_parent
from ..service import Service, listen_error
from ..throttle import Throttle
from . import codec
from .answer import Answerer, Drop, Event, Reply, Settings

log = logging.getLogger("bootstrap.dhcp")

RECV_SIZE = 65535
POLL = 0.2                       # how often a blocked loop checks for shutdown
SO_ATTACH_REUSEPORT_CBPF = 51
FLUSH_EVERY, FLUSH_BATCH = 0.2, 500
QUIET_DROPS = ("other-server", "not-relayed")   # routine: debug, not info
# A drop's log line and event: a burst, then one a second per (reason, sender); anyone
# who can reach the port triggers them, so unthrottled they would fill the disk.
DROP_RATE, DROP_BURST = 1.0, 20
REPEAT_WINDOW, RECENT_KEYS = 10.0, 4096   # a relayed copy of a unicast message


class DhcpServer(Service):
    """The DHCP service of one appliance address: a :class:`~bootstrap.service.Service`.

    Its loop polls for the end every ``POLL`` seconds; ``shutdown()`` only asks it to end,
    ``stop()`` (or ``close()``) also waits for it and closes the sockets.

    ``server_id`` (option 54) defaults to ``bind_address``; ``tftp_server`` (next-server)
    to ``server_id``; ``http_base_url`` to the zone's controller URL; ``dns_servers`` to
    the zone's DNS upstreams.
    """

    name = "dhcp"

    def __init__(self, plan: Plan, bind_address: str, port: int = 67, server_id: str | None = None,
                 events=None, tftp_server: str | None = None, http_base_url: str | None = None,
                 dns_servers=(), workers: int = 1):
        super().__init__()
        server_id = server_id or bind_address
        if server_id in ("", "0.0.0.0"):
            raise InputError("DHCP needs a server_id address when bound to every address")
        self.answerer = Answerer(plan, Settings(server_id, tftp_server, http_base_url or "",
                                                tuple(dns_servers)))
        self.recorder = Recorder(events)
        # Switch MACs from the store; afterwards each process (workers too) learns from
        # the switch leases it answers itself (see docs/zone-file.md for the limits).
        self.answerer.learn_macs(self.recorder.macs)
        self.workers = max(1, int(workers))
        self._children: list = []
        self.sockets = [open_socket(bind_address, port, self.workers > 1)]
        self.address = self.endpoint = self.sockets[0].getsockname()  # port 0: the kernel's
        try:
            for _ in range(1, self.workers):
                self.sockets.append(open_socket(bind_address, self.address[1], True))
        except InputError:
            self.close()
            raise
        if self.workers > 1:
            steer_by_xid(self.sockets[0], self.workers)

    def _serve_loop(self) -> None:
        """Answer until :meth:`shutdown` or :meth:`stop`; workers share the port."""
        inbox = self._start_children() if self.workers > 1 else None
        pump = None
        if inbox is not None:
            pump = threading.Thread(target=self._pump, args=(inbox,), name="dhcp-pump", daemon=True)
            pump.start()
        try:
            Loop(self.answerer, self.sockets[0], self.recorder).run(self._stopping.is_set)
        finally:
            self._stop_children()
            if pump is not None:
                pump.join(timeout=5)

    def shutdown(self) -> None:
        """Ask the loop to end (it polls); :meth:`serve` returns soon after."""
        self._stopping.set()

    def close(self) -> None:
        self.stop()

    def _release(self) -> None:
        for sock in self.sockets:
            sock.close()

    def _counts(self) -> dict:
        return {"workers": self.workers}

    def _start_children(self):
        ctx = multiprocessing.get_context("fork")
        inbox, self._child_stop = ctx.Queue(), ctx.Event()
        for sock in self.sockets[1:]:
            child = ctx.Process(target=_child_main, name="dhcp-worker", daemon=True,
                                args=(self.answerer, sock, inbox, self._child_stop))
            child.start()
            self._children.append(child)
        return inbox

    def _stop_children(self) -> None:
        if not self._children:
            return
        self._child_stop.set()
        for child in self._children:
            child.join(timeout=2 * POLL + 1)
            if child.is_alive():
                child.terminate()
                child.join(timeout=1)
        self._children = []

    def _pump(self, inbox) -> None:
        """Apply what the workers report until they have all stopped and the queue is empty."""
        while True:
            try:
                counts, events = inbox.get(timeout=POLL)
            except queue.Empty:
                if self._stopping.is_set() and not any(c.is_alive() for c in self._children):
                    return
                continue
            except (EOFError, OSError):
                return
            self.recorder.apply(counts, events)


class Recorder:
    """Counts answers and records events (with the hardware-replacement check) in one place."""

    def __init__(self, events=None):
        self.events = events
        self.lock = threading.Lock()
        self.macs = _known_macs(events)
        self._counters: dict = {}
        self._recent: collections.OrderedDict = collections.OrderedDict()

    def count(self, label: str, n: int = 1) -> None:
        counter = self._counters.get(label)
        if counter is None:  # labels() takes a lock and builds a key: once per label
            counter = self._counters[label] = DHCP_ANSWERS.labels(type=label)
        counter.inc(n)

    def record(self, event: Event) -> None:
        with self.lock:
            if self._repeated(event):
                return
            replaced = self._replaced(event)
        if self.events is None:
            return
        self.events.put(event.kind, event.node, "dhcp", **event.detail)
        if replaced is not None:
            self.events.put("hardware-replaced", event.node, "dhcp", **replaced)

    def apply(self, counts: dict, events: list) -> None:
        for label, n in counts.items():
            self.count(label, n)
        for event in events:
            self.record(event)

    def _repeated(self, event: Event) -> bool:
        """The same RELEASE/DECLINE twice: a unicast one and the copy a relay on its way
        forwarded too (dhcrelay relays what it sees pass). Same node, kind and xid."""
        xid = event.detail.get("xid")
        if xid is None:
            return False
        now, key = time.monotonic(), (event.kind, event.node, xid)
        seen = self._recent.get(key)
        self._recent[key] = now
        if len(self._recent) > RECENT_KEYS:
            self._recent.popitem(last=False)
        return seen is not None and now - seen < REPEAT_WINDOW

    def _replaced(self, event: Event) -> dict | None:
        """A lease for a known location with a MAC other than the last one seen there."""
        if event.kind != "lease" or event.node is None:
            return None
        mac, before = event.detail.get("mac"), self.macs.get(event.node)
        self.macs[event.node] = mac
        if before is None or before == mac:
            return None
        log.warning("dhcp: %s: new hardware %s (was %s) at %s port %s", event.node, mac, before,
                    event.detail.get("switch"), event.detail.get("port"))
        return {"old_mac": before, "mac": mac, "switch": event.detail.get("switch"),
                "port": event.detail.get("port")}


class Forwarder:
    """A worker's recorder: batches counts and events to the parent's queue."""

    def __init__(self, inbox):
        self.inbox = inbox
        self.counts: collections.Counter = collections.Counter()
        self.events: list = []
        self.last = time.monotonic()

    def count(self, label: str, n: int = 1) -> None:
        self.counts[label] += n

    def record(self, event: Event) -> None:
        self.events.append(event)
        if len(self.events) >= FLUSH_BATCH:
            self.flush()

    def tick(self) -> None:
        if time.monotonic() - self.last >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.counts or self.events:
            self.inbox.put((dict(self.counts), self.events))
            self.counts, self.events = collections.Counter(), []
        self.last = time.monotonic()


class Loop:
    """receive → decode → answer → send, for one socket; every failure is one skipped packet."""

    def __init__(self, answerer: Answerer, sock: socket.socket, recorder):
        self.answerer, self.sock, self.recorder = answerer, sock, recorder
        self.tick = getattr(recorder, "tick", None)
        self.throttle = Throttle(DROP_RATE, DROP_BURST)

    def run(self, stopped) -> None:
        self.sock.settimeout(POLL)
        while not stopped():
            try:
                data, peer = self.sock.recvfrom(RECV_SIZE)
            except (socket.timeout, InterruptedError):
                data = None
            except OSError as exc:
                if stopped():
                    break
                log.warning("dhcp: receive failed: %s", exc)
                data = None
            if data is not None:
                self.handle(data, peer)
            if self.tick is not None:
                self.tick()

    def handle(self, data: bytes, peer) -> None:
        request = None
        try:
            request = codec.decode(data)
            outcome = self.answerer.answer(request, peer[0])
        except codec.Malformed as exc:
            outcome = Drop("malformed", str(exc))
        except Exception:  # noqa: BLE001 - a bug must cost one packet, not the service
            if self.throttle.allow("dhcp-error", peer[0]):
                log.exception("dhcp: request from %s failed", peer[0])
            outcome = Drop("error", "internal error")
        self.settle(outcome, request, peer)

    def settle(self, outcome, request=None, peer=("?", 0)) -> None:
        if isinstance(outcome, Reply):
            self.send(outcome)
        elif isinstance(outcome, Drop):
            self.recorder.count("drop:" + outcome.code)
            if not self.throttle.allow("dhcp-drop:" + outcome.code, peer[0]):
                return  # counted above and in zone_suppressed_total; no line, no event
            level = logging.DEBUG if outcome.code in QUIET_DROPS else logging.INFO
            if log.isEnabledFor(level):
                mac = request.mac if request is not None else "?"
                log.log(level, "dhcp: drop %s from %s mac %s: %s", outcome.code, peer[0], mac,
                        outcome.reason)
        else:
            if outcome.kind == "decline":
                log.warning("dhcp: address conflict: %s declined %s", outcome.event.node,
                            outcome.event.detail.get("address"))
            self.recorder.record(outcome.event)
            self.recorder.count(outcome.kind)  # after: once counted, it is recorded
            return
        if outcome.event is not None:
            self.recorder.record(outcome.event)

    def send(self, reply: Reply) -> None:
        try:
            self.sock.sendto(codec.encode(reply.packet), reply.to)
        except OSError as exc:
            self.recorder.count("drop:send-failed")
            log.warning("dhcp: %s for %s to %s failed: %s", reply.kind,
                        reply.location.node.name if reply.location else "?", reply.to[0], exc)
            return
        self.recorder.count(reply.kind)


def _child_main(answerer: Answerer, sock: socket.socket, inbox, stop) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    die_with_parent()
    forwarder = Forwarder(inbox)
    try:
        Loop(answerer, sock, forwarder).run(stop.is_set)
    finally:
        forwarder.flush()
        inbox.close()
        inbox.join_thread()


def open_socket(address: str, port: int, reuse_port: bool = False) -> socket.socket:
    # No SO_REUSEADDR: on UDP it would let a second server share the port unnoticed.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:  # a boot storm arrives in bursts: queue them rather than drop
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    except OSError:
        pass
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise listen_error("DHCP", address, port, exc) from None
    return sock


def steer_by_xid(sock: socket.socket, workers: int) -> bool:
    """Spread requests over the port's sockets by ``xid % workers`` (classic BPF).

    The program sees the UDP payload: the xid is the 32-bit word at offset 4.
    Returns False (the kernel's own hash stays) where the kernel refuses it.
    """
    program = [(0x20, 0, 0, 4),         # ld  [4]      A = xid
               (0x94, 0, 0, workers),   # mod #workers
               (0x16, 0, 0, 0)]         # ret a        socket index
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
    except OSError as exc:
        log.info("dhcp: no reuseport steering (%s); the kernel's hash decides", exc)
        return False
    return True


def _known_macs(events) -> dict:
    """Last MAC per node from the store, so a replacement is seen across restarts."""
    store = getattr(events, "store", None)
    if store is None:
        return {}
    try:
        return {n["name"]: n["mac"] for n in store.nodes() if n.get("mac")}
    except Exception:  # noqa: BLE001 - a broken store must not stop DHCP
        log.warning("dhcp: cannot read known MACs from the state store", exc_info=True)
        return {}
