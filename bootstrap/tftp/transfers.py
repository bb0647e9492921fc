"""Transfers in progress: admission, the per-transfer context, and the loops that run them.

Each transfer holds a socket (and, for a large file, a file) until it ends, so what
a stranger can open is bounded: :class:`Admission` caps transfers per source address
and in total. A peer that has not yet answered (a spoofed or silent source) gets its
first packet resent only ``FIRST_RETRIES`` times, with backoff, so a request cannot
be turned into a stream toward someone else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections import Counter

from tftpy.TftpContexts import TftpContextServer
from tftpy.TftpShared import TftpException, TftpTimeoutExpectACK
from tftpy.TftpStates import TftpStateExpectACK

from ..metrics import TFTP_TRANSFERS
from ..throttle import Throttle
from .packets import BLKSIZE_MAX, error_packet
from .window import MAX_WINDOW, Window

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65536
MAX_ERROR = 64          # bytes: an ERROR ending a transfer says little
NOT_DEFINED = 0         # RFC 1350's error code for "see the message"
FIRST_RETRIES = 2       # resends of the first answer before the peer has said anything
BACKOFF_CAP = 4         # the silence allowed grows 1, 2, 4, 4... times the timeout

# Transfers that end on our side are told why; a timeout is not (the peer is silent).
TOLD = {"error": "transfer failed", "aborted": "server stopping"}

LOG_LIMIT = Throttle(rate=1.0, burst=10)


def note(kind: str, client: tuple, message: str, *args) -> None:
    """Log an event a stranger can cause, at most a trickle per kind and source."""
    if LOG_LIMIT.allow(kind, client[0]):
        log.info("tftp: %s:%d: " + message, *client, *args)


@contextlib.contextmanager
def contained(where: str):
    """Log an unexpected failure inside (with its traceback, rate-limited) and go on."""
    try:
        yield
    except Exception:
        if LOG_LIMIT.allow("tftp-unexpected"):
            log.exception("tftp: unexpected error %s", where)


def retry_delay(timeout: float, attempt: int) -> float:
    """Seconds of silence allowed after the ``attempt``-th resend (0: after the first send)."""
    return timeout * min(2 ** attempt, BACKOFF_CAP)


class Admission:
    """Who holds a transfer (or waits for a fetch): at most ``per_source`` per address,
    ``total`` in all. Thread-safe: taken by the request loop, released by the loops."""

    def __init__(self, total: int, per_source: int):
        self.total, self.per_source = total, per_source
        self._held: set[tuple] = set()
        self._sources: Counter = Counter()
        self._lock = threading.Lock()

    def __contains__(self, client: tuple) -> bool:
        return client in self._held

    def __len__(self) -> int:
        return len(self._held)

    def take(self, client: tuple) -> str | None:
        """None when ``client`` may start a transfer, else why not."""
        with self._lock:
            if len(self._held) >= self.total:
                return "busy: the transfer limit is reached"
            if self._sources[client[0]] >= self.per_source:
                return "busy: too many transfers from this address"
            self._held.add(client)
            self._sources[client[0]] += 1
        return None

    def release(self, client: tuple) -> None:
        with self._lock:
            if client in self._held:
                self._held.discard(client)
                self._sources[client[0]] -= 1
                if not self._sources[client[0]]:
                    del self._sources[client[0]]


OPCODE_BLOCK = struct.Struct("!HH")     # ACK and the head of DATA: opcode, block number
ACK, DATA, ERROR = 4, 3, 5


class _SentBlock:
    """The last DATA sent by the shortcut, as tftpy's resend and duplicate counting use it."""

    __slots__ = ("buffer", "blocknumber")

    def __init__(self, buffer: bytes, blocknumber: int):
        self.buffer, self.blocknumber = buffer, blocknumber

    def encode(self) -> "_SentBlock":
        return self

    def __str__(self) -> str:
        return f"DAT packet: block {self.blocknumber}"


class Context(TftpContextServer):
    """tftpy's server transfer context, answering only its peer, with backoff.

    A datagram from any address or port but the peer's is dropped (tftpy would let
    a stranger end the transfer with an ERROR). Nearly every packet of a transfer is
    the ACK of the block just sent; for that one case the next block is sent directly,
    exactly as tftpy's ``TftpStateExpectACK`` would but without building packet
    objects (half the per-packet time). Everything else (the ACK of an OACK,
    duplicates, errors, the last ACK) goes through tftpy's states.
    """

    window: Window | None = None        # RFC 7440 sending, when the client asked for it
    peer_timeout: float | None = None   # RFC 2349's, once the peer has answered

    def begin(self, pkt, fileobj, blksize_cap: int = BLKSIZE_MAX) -> None:
        """Answer the checked request ``pkt`` for ``fileobj``: an OACK of exactly the
        options asked for (RFC 2347), or, when none were, the first block."""
        options = dict(pkt.options)
        if "blksize" in options:
            options["blksize"] = min(options["blksize"], blksize_cap)
        if "tsize" in options:
            options["tsize"] = fileobj.seek(0, os.SEEK_END)
            fileobj.seek(0)
        # The client's timeout applies once it has answered: until then a spoofed
        # request could make a slot last minutes.
        self.peer_timeout = options.get("timeout", self.timeout)
        self.options, self.fileobj = options, fileobj
        self.tidport, self.file_to_transfer = self.port, pkt.filename
        self.metrics.start_time = self.last_update = time.time()
        self.confirmed = False          # the peer has not sent anything since its request
        self.deadline = time.monotonic() + retry_delay(self.timeout, 0)
        self.state = TftpStateExpectACK(self)
        if "windowsize" in options:
            options["windowsize"] = min(options["windowsize"], MAX_WINDOW)
        if options.get("windowsize", 1) > 1:     # a window of 1 is RFC 1350's lock-step
            self.window = Window(fileobj, self.getBlocksize(), options["windowsize"],
                                 self._send)
        if options:
            self.state.sendOACK()       # next_block stays 0: the OACK is acked as block 0
        else:
            self.next_block = 1
            self.pending_complete = self.state.sendDAT()

    def _send(self, packet: bytes) -> None:
        self.sock.sendto(packet, (self.host, self.tidport))
        self.metrics.bytes += len(packet) - OPCODE_BLOCK.size

    def _windowed(self, buffer: bytes) -> None:
        """A datagram from the peer of a windowed transfer (RFC 7440)."""
        opcode = OPCODE_BLOCK.unpack_from(buffer)[0] if len(buffer) >= 4 else None
        if opcode == ERROR:
            raise TftpException(f"Received ERR packet from peer: {buffer[4:68]!r}")
        if opcode == ACK and len(buffer) == 4:
            self.window.on_ack(OPCODE_BLOCK.unpack(buffer)[1])
            if self.window.done:
                self.state = None

    def fail(self, message: str) -> None:
        """Tell the peer the transfer is over (RFC 1350: an ERROR, not silence)."""
        with contextlib.suppress(OSError):
            self.sock.sendto(error_packet(NOT_DEFINED, message, MAX_ERROR),
                             (self.host, self.tidport or self.port))

    def receive(self, buffer: bytes, address: tuple) -> bool:
        """Handle one datagram; False if it was ignored (not from the peer, or not TFTP)."""
        if address != (self.address, self.tidport):
            return False
        if self.window is not None:
            self._windowed(buffer)
        elif not self._send_next_block(buffer):
            try:
                pkt = self.factory.parse(buffer)
            except (TftpException, struct.error, UnicodeError):
                return False            # undecodable, even from the peer: as if lost
            self.state = self.state.handle(pkt, *address)
        self.last_update = time.time()
        self.confirmed, self.timeout = True, self.peer_timeout or self.timeout
        self.retry_count = 0
        self.deadline = time.monotonic() + retry_delay(self.timeout, 0)
        return True

    def due(self, now: float) -> bool:
        return self.timeout_expectACK or now >= self.deadline

    def resend(self, now: float) -> bool:
        """Send the last packet again; False when the retries are spent (give up)."""
        self.retry_count += 1
        if self.retry_count > (self.retries if self.confirmed else FIRST_RETRIES):
            return False
        self.timeout_expectACK = False
        if self.window is not None:
            self.window.resend()
        else:
            self.state.resendLast()
        self.deadline = now + retry_delay(self.timeout, self.retry_count)
        return True

    def _send_next_block(self, ack: bytes) -> bool:
        if (len(ack) != 4 or self.pending_complete
                or type(self.state) is not TftpStateExpectACK):
            return False
        opcode, block = OPCODE_BLOCK.unpack(ack)
        if opcode != ACK or block != self.next_block:
            return False
        self.next_block += 1                    # tftpy's property wraps it at 65536
        size = self.getBlocksize()
        data = self.fileobj.read(size)
        self.pending_complete = len(data) < size
        packet = OPCODE_BLOCK.pack(DATA, self.next_block) + data
        self.sock.sendto(packet, (self.host, self.tidport))
        self.metrics.bytes += len(data)
        self.metrics.last_dat_time = time.time()
        self.last_pkt = _SentBlock(packet, self.next_block)
        return True


def step(ctx: Context, buffer: bytes, address: tuple, client: tuple) -> str | None:
    """Feed one datagram to a transfer; the transfer's result when this ended it."""
    ctx.timeout_expectACK = False
    try:
        if not ctx.receive(buffer, address):
            return None
    except TftpTimeoutExpectACK:
        ctx.timeout_expectACK = True
        return None
    except (TftpException, OSError, ValueError) as exc:
        # PXE firmware often asks for tsize, then aborts with an ERROR and asks again.
        aborted = str(exc).startswith("Received ERR packet from peer")
        note("tftp-transfer-end", client, "transfer of %s %s: %s", ctx.file_to_transfer,
             "aborted by the client" if aborted else "failed", exc)
        return "client_abort" if aborted else "error"
    return "ok" if ctx.state is None else None


class Waker:
    """A socket pair that lets another thread interrupt a selector loop."""

    def __init__(self, selector):
        self.r, self.w = socket.socketpair()
        self.w.setblocking(False)
        selector.register(self.r, selectors.EVENT_READ, self)

    def wake(self) -> None:
        try:
            self.w.send(b"w")
        except OSError:
            pass                        # stopping, or the pipe is full: a wake is pending anyway

    def drain(self) -> None:
        self.r.recv(4096)

    def close(self) -> None:
        self.r.close()
        self.w.close()


class Transfers:
    """Runs transfers to their end in its own thread: one selector over their sockets.

    Loopback and LAN transfers are bound by per-packet system calls, which release the
    GIL, so a few of these loops side by side keep several cores busy. Every transfer
    that ends, however it ends, closes its socket and file and gives back its slot.
    """

    def __init__(self, name: str, admission: Admission):
        self._selector = selectors.DefaultSelector()
        self._waker = Waker(self._selector)
        self._inbox: list[tuple] = []
        self._lock = threading.Lock()
        self._sessions: dict[tuple, Context] = {}
        self._admission = admission
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def adopt(self, client: tuple, ctx: Context) -> None:
        with self._lock:
            self._inbox.append((client, ctx))
        self._waker.wake()

    def stop(self) -> None:
        self._stopping.set()
        self._waker.wake()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        next_check = time.monotonic() + 0.1
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(timeout=0.1):
                    self._dispatch(key.data)
                if time.monotonic() >= next_check:
                    self._check_timeouts()
                    next_check = time.monotonic() + 0.1
        finally:
            self._take_inbox()
            for client in list(self._sessions):
                self._end(client, "aborted")
            self._selector.close()
            self._waker.close()

    def _dispatch(self, data) -> None:
        with contained("in a transfer"):        # a broken transfer never stops the others
            if data is self._waker:
                self._waker.drain()
                self._take_inbox()
            else:
                self._on_packet(data)

    def _take_inbox(self) -> None:
        with self._lock:
            inbox, self._inbox = self._inbox, []
        for client, ctx in inbox:
            self._sessions[client] = ctx
            self._selector.register(ctx.sock, selectors.EVENT_READ, client)

    def _on_packet(self, client: tuple) -> None:
        ctx = self._sessions.get(client)
        if ctx is None:
            return
        try:
            buffer, address = ctx.sock.recvfrom(MAX_DATAGRAM)
        except OSError:
            return                      # e.g. an ICMP error queued on the socket
        try:
            result = step(ctx, buffer, address, client)
        except Exception:
            self._end(client, "error")  # close its handles; the catch-all logs why
            raise
        if result is not None:
            self._end(client, result)

    def _end(self, client: tuple, result: str) -> None:
        ctx = self._sessions.pop(client)
        try:
            if result in TOLD:
                ctx.fail(TOLD[result])
            self._selector.unregister(ctx.sock)
            ctx.end()
        finally:
            self._admission.release(client)
            TFTP_TRANSFERS.labels(result=result).inc()

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for client, ctx in list(self._sessions.items()):
            if ctx.due(now):
                self._retry(client, ctx, now)

    def _retry(self, client: tuple, ctx: Context, now: float) -> None:
        """Send the last packet again, or give up when its retries are spent."""
        try:
            if ctx.resend(now):
                return
            note("tftp-timeout", client, "gave up on %s", ctx.file_to_transfer)
            self._end(client, "timeout")
        except Exception as exc:  # noqa: BLE001 - one transfer's failure is its own
            note("tftp-transfer-end", client, "resending failed: %s", exc)
            self._end(client, "error")
