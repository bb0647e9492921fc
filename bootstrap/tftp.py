"""TFTP service: iPXE binaries from a root directory, anything else fetched from the controller.

The ToR appliance holds the iPXE binaries (Debian's ``ipxe`` package by default); a
file it does not hold is fetched once from ``<controller>/files/<name>``, cached on
disk atomically and then served (the "TFTP proxy on the ToR").

tftpy supplies the protocol (packet codec, option negotiation, per-transfer state
machine with retransmits); this module supplies the policy (which names are allowed,
where bytes come from) and the event loop. tftpy's own ``TftpServer.listen`` is not
used because it blocks every transfer while a file is opened, scans every session for
each packet and lets an unexpected exception end the server; here one bad request
never stops the loop and a controller fetch runs on a worker thread.
"""

from __future__ import annotations

import io
import logging
import os
import selectors
import socket
import struct
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import quote

from tftpy.TftpContexts import TftpContextServer
from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketERR, TftpPacketRRQ, TftpPacketWRQ
from tftpy.TftpShared import TftpErrors, TftpException, TftpTimeout, TftpTimeoutExpectACK
from tftpy.TftpStates import TftpStateExpectACK

from .metrics import TFTP_TRANSFERS

log = logging.getLogger(__name__)


def _quiet_tftpy() -> None:
    """tftpy logs every transfer's steps at INFO; keep that out of the service log
    unless someone configured the ``tftpy`` logger on purpose."""
    tftpy_log = logging.getLogger("tftpy")
    if tftpy_log.level == logging.NOTSET:
        tftpy_log.setLevel(logging.WARNING)

DEFAULT_ROOT = "/usr/lib/ipxe"
SESSION_TIMEOUT = 2.0          # seconds before a lost DATA is sent again
RETRIES = 5
FETCH_TIMEOUT = 15.0
MISS_TTL = 10.0                # a name the controller lacks is not asked again for this long
MISS_LIMIT = 10_000
MEMORY_LIMIT = 16 << 20        # files up to this size are served from memory
MAX_DATAGRAM = 65536


# ---------------------------------------------------------------------------
# Pure policy: which names may be served
# ---------------------------------------------------------------------------

def clean_name(raw: str) -> str | None:
    """The relative path a request names, or None when it must be refused.

    PXE firmware sends both ``undionly.kpxe`` and ``/undionly.kpxe``; an empty component,
    one starting with a dot (``..``, ``.``, hidden files, the cache's own ``.fetch-*``
    downloads in progress and ``.root``), a backslash or a control character is refused
    outright rather than normalised, so a name can never climb out of the root or the
    cache nor see half a download.
    """
    name = raw.lstrip("/")
    if not name or any(ord(c) < 0x20 or c in "\\\x7f" for c in name):
        return None
    parts = name.split("/")
    if any(not part or part.startswith(".") for part in parts):
        return None
    return "/".join(parts)


def _file_in(directory: str | None, name: str) -> str | None:
    if not directory:
        return None
    path = os.path.join(directory, name)
    return path if os.path.isfile(path) else None


# ---------------------------------------------------------------------------
# The controller fetch, once per name, cached atomically
# ---------------------------------------------------------------------------

def http_get(url: str, out, timeout: float = FETCH_TIMEOUT) -> bool:
    """Copy ``url`` into the binary file ``out``; False when the controller lacks it."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (our controller)
            while chunk := resp.read(1 << 16):
                out.write(chunk)
        return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


class Fetcher:
    """Fetches ``<controller>/files/<name>`` into ``cache_dir``, at most once at a time per name.

    Concurrent callers for the same name wait on the one fetch in flight (single
    flight). The file appears under its final name only when complete (write to a
    temporary file in the same directory, then ``os.replace``), so a reader never sees
    half a file. A miss is remembered for ``MISS_TTL`` seconds so clients retrying a
    wrong name do not hammer the controller.
    """

    def __init__(self, controller_url: str | None, cache_dir: str, get=http_get):
        self.base = (controller_url or "").rstrip("/")
        self.cache_dir = cache_dir
        self._get = get
        self._lock = threading.Lock()
        self._flights: dict[str, Future] = {}
        self._misses: dict[str, float] = {}

    def cached(self, name: str) -> str | None:
        return _file_in(self.cache_dir, name)

    def fetch(self, name: str) -> str | None:
        """The cached path of ``name``, fetching it first if needed; None if unavailable."""
        path = self.cached(name)
        if path or not self.base:
            return path
        with self._lock:
            flight = self._flights.get(name)
            owner = flight is None
            if owner:
                flight = self._flights[name] = Future()
        if not owner:
            return flight.result()
        try:
            path = self._fetch_once(name)
            flight.set_result(path)
        except BaseException as exc:  # waiters must never hang on a failed owner
            flight.set_result(None)
            if not isinstance(exc, Exception):
                raise
            log.warning("tftp: fetching %s from %s failed: %s", name, self.base, exc)
            path = None
        finally:
            with self._lock:
                del self._flights[name]
        return path

    def _fetch_once(self, name: str) -> str | None:
        path = self.cached(name)          # a flight that ended just before ours
        if path:
            return path
        if time.monotonic() < self._misses.get(name, 0.0):
            return None
        target = os.path.join(self.cache_dir, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".fetch-")
        try:
            with os.fdopen(fd, "wb") as out:
                found = self._get(f"{self.base}/files/{quote(name)}", out)
            if not found:
                if len(self._misses) >= MISS_LIMIT:      # random names must not grow it
                    self._misses.clear()
                self._misses[name] = time.monotonic() + MISS_TTL
                log.info("tftp: controller has no %s", name)
                return None
            os.replace(tmp, target)
            log.info("tftp: cached %s from the controller", name)
            return target
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


# ---------------------------------------------------------------------------
# Where a name's bytes come from
# ---------------------------------------------------------------------------

class FileSource:
    """Resolves a clean name to bytes: the root first, then the controller cache.

    Small files are kept in memory (keyed by path, size and mtime, so a replaced file
    is re-read) and every transfer gets its own ``BytesIO`` over the shared bytes.
    """

    def __init__(self, root: str, fetcher: Fetcher):
        self.root = root
        self.fetcher = fetcher
        self._memory: dict[str, tuple] = {}

    def local(self, name: str) -> str | None:
        return _file_in(self.root, name) or self.fetcher.cached(name)

    def needs_fetch(self, name: str) -> bool:
        return bool(self.fetcher.base) and self.local(name) is None

    def open(self, name: str):
        """A readable binary file object for ``name``, or None."""
        path = self.local(name)
        if path is None:
            return None
        st = os.stat(path)
        if st.st_size > MEMORY_LIMIT:
            return open(path, "rb")
        key = (st.st_size, st.st_mtime_ns)
        held = self._memory.get(path)
        if held is None or held[0] != key:
            with open(path, "rb") as fh:
                held = self._memory[path] = (key, fh.read())
        return io.BytesIO(held[1])


# ---------------------------------------------------------------------------
# The protocol adapter: a request loop handing tftpy transfer contexts to workers
# ---------------------------------------------------------------------------

def _error_packet(code: int) -> bytes:
    pkt = TftpPacketERR()
    pkt.errorcode = code
    return pkt.encode().buffer


OPCODE_BLOCK = struct.Struct("!HH")     # ACK and the head of DATA: opcode, block number
ACK, DATA = 4, 3


class _SentBlock:
    """The last DATA sent by the shortcut, as tftpy's resend and duplicate counting use it."""

    __slots__ = ("buffer", "blocknumber")

    def __init__(self, buffer: bytes, blocknumber: int):
        self.buffer, self.blocknumber = buffer, blocknumber

    def encode(self) -> "_SentBlock":
        return self

    def __str__(self) -> str:
        return f"DAT packet: block {self.blocknumber}"


class _Context(TftpContextServer):
    """tftpy's server transfer context with a shortcut for the steady state of a download.

    Nearly every packet of a transfer is the ACK of the block just sent; for that one
    case the next block is sent directly, exactly as tftpy's ``TftpStateExpectACK`` would
    but without building packet objects (half the per-packet time). Everything else
    (the ACK of an OACK, duplicates, errors, the last ACK) goes through tftpy's states.
    """

    def cycle(self):
        buffer, (raddress, rport) = self.sock.recvfrom(MAX_DATAGRAM)
        self.last_update = time.time()
        if not self._send_next_block(buffer, rport):
            self.state = self.state.handle(self.factory.parse(buffer), raddress, rport)
        self.retry_count = 0

    def _send_next_block(self, ack: bytes, rport: int) -> bool:
        if (len(ack) != 4 or rport != self.tidport or self.pending_complete
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


class _Waker:
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


class _Transfers:
    """Runs transfers to their end in its own thread: one selector over their sockets.

    Loopback and LAN transfers are bound by per-packet system calls, which release the
    GIL, so a few of these loops side by side keep several cores busy.
    """

    def __init__(self, name: str, active: set):
        self._selector = selectors.DefaultSelector()
        self._waker = _Waker(self._selector)
        self._inbox: list[tuple] = []
        self._lock = threading.Lock()
        self._sessions: dict[tuple, TftpContextServer] = {}
        self._active = active           # shared with the request loop: clients in transfer
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def adopt(self, client: tuple, ctx: TftpContextServer) -> None:
        with self._lock:
            self._inbox.append((client, ctx))
        self._waker.wake()

    def stop(self) -> None:
        self._stopping.set()
        self._waker.wake()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        next_check = time.monotonic() + 0.5
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(timeout=0.5):
                    self._dispatch(key.data)
                if time.monotonic() >= next_check:
                    self._check_timeouts()
                    next_check = time.monotonic() + 0.5
        finally:
            for client in list(self._sessions):
                self._end(client, "aborted")
            self._selector.close()
            self._waker.close()

    def _dispatch(self, data) -> None:
        try:
            if data is self._waker:
                self._waker.drain()
                self._take_inbox()
            else:
                self._on_packet(data)
        except Exception:  # a broken transfer never stops the others
            log.exception("tftp: unexpected error in a transfer")

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
        ctx.timeout_expectACK = False
        try:
            ctx.cycle()
        except TftpTimeoutExpectACK:
            ctx.timeout_expectACK = True
        except (TftpException, OSError) as exc:
            # PXE firmware often asks for tsize, then aborts with an ERROR and asks again.
            aborted = str(exc).startswith("Received ERR packet from peer")
            log.info("tftp: %s:%d: transfer of %s %s: %s", *client, ctx.file_to_transfer,
                     "aborted by the client" if aborted else "failed", exc)
            self._end(client, "client_abort" if aborted else "error")
            return
        if ctx.state is None:
            self._end(client, "ok")

    def _end(self, client: tuple, result: str) -> None:
        ctx = self._sessions.pop(client)
        self._selector.unregister(ctx.sock)
        ctx.end()
        self._active.discard(client)
        TFTP_TRANSFERS.labels(result=result).inc()

    def _check_timeouts(self) -> None:
        now = time.time()
        for client, ctx in list(self._sessions.items()):
            try:
                ctx.checkTimeout(now)
            except TftpTimeout:
                self._retry(client, ctx, now)

    def _retry(self, client: tuple, ctx: TftpContextServer, now: float) -> None:
        """Send the last packet again, or give up after ``retries`` silent periods."""
        ctx.retry_count += 1
        if ctx.retry_count >= ctx.retries:
            log.info("tftp: %s:%d: gave up on %s", *client, ctx.file_to_transfer)
            self._end(client, "timeout")
            return
        try:
            ctx.state.resendLast()
            ctx.last_update = now
        except Exception as exc:  # noqa: BLE001 - one transfer's failure is its own
            log.info("tftp: %s:%d: resending failed: %s", *client, exc)
            self._end(client, "error")


class TftpService:
    """A TFTP server on ``bind:port`` serving ``root``, proxying misses to ``controller_url``.

    ``serve_forever()`` runs the request loop in the calling thread; ``start()`` runs it
    in a daemon thread and returns at once (the socket is bound in the constructor);
    ``stop()`` ends it and closes every socket. ``port=0`` binds an ephemeral port,
    readable from ``.port``. Transfers run on ``workers`` threads.
    """

    def __init__(self, root: str = DEFAULT_ROOT, cache_dir: str | None = None,
                 controller_url: str | None = None, bind: str = "127.0.0.1", port: int = 69,
                 timeout: float = SESSION_TIMEOUT, retries: int = RETRIES, workers: int = 2):
        _quiet_tftpy()
        self.root = root
        self.cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "zone-tftp-cache")
        os.makedirs(self.cache_dir, exist_ok=True)
        self.source = FileSource(root, Fetcher(controller_url, self.cache_dir))
        self.timeout, self.retries, self.workers = timeout, retries, max(1, workers)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, port))
        self.port = self.sock.getsockname()[1]
        self._factory = TftpPacketFactory()
        self._active: set = set()                     # clients with a transfer running
        self._pending: dict[tuple, bytes] = {}       # client → RRQ waiting for a fetch
        self._ready: list[tuple] = []                 # clients whose fetch finished
        self._ready_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tftp-fetch")
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.sock, selectors.EVENT_READ, None)
        self._waker = _Waker(self._selector)
        self._loops: list[_Transfers] = []
        self._turn = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()      # serving starts, or stop wins: never half of both
        self._serving = False
        self._thread: threading.Thread | None = None
        # tftpy looks a name up under its root before asking us; an empty directory
        # (a dot name, which no request can reach) makes every lookup come to
        # FileSource, the one place that decides.
        self._empty_root = os.path.join(self.cache_dir, ".root")
        os.makedirs(self._empty_root, exist_ok=True)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> "TftpService":
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="tftp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the loops and close every socket; idempotent."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        if not self._serving:
            self._close()
            return
        self._waker.wake()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Run the request loop in this thread until :meth:`stop`."""
        with self._lock:
            if self._stopping.is_set():
                return                  # stopped before it began: stop() closed everything
            self._serving = True
        log.info("tftp: serving %s on %s:%d", self.root, *self.sock.getsockname())
        self._loops = [_Transfers(f"tftp-transfers-{i}", self._active)
                       for i in range(self.workers)]
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(timeout=1.0):
                    self._dispatch(key.data)
        finally:
            self._close()

    def _close(self) -> None:
        for loop in self._loops:
            loop.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._selector.close()
        self._waker.close()
        self.sock.close()

    # -- requests ----------------------------------------------------------

    def _dispatch(self, data) -> None:
        try:
            if data is self._waker:
                self._waker.drain()
                self._begin_fetched()
            else:
                self._on_request(*self.sock.recvfrom(MAX_DATAGRAM))
        except Exception:  # a bad packet never stops the server
            log.exception("tftp: unexpected error; dropping the packet")

    def _on_request(self, buffer: bytes, client: tuple) -> None:
        if client in self._active or client in self._pending:
            return                      # a retransmitted request; the transfer answers it
        reason, name = self._screen(buffer)
        if reason is not None:
            log.info("tftp: refused %s from %s:%d: %s", name or "-", *client, reason[1])
            self.sock.sendto(_error_packet(reason[0]), client)
            TFTP_TRANSFERS.labels(result="refused").inc()
            return
        if self.source.needs_fetch(name):
            self._pending[client] = buffer
            self._pool.submit(self.source.fetcher.fetch, name).add_done_callback(
                lambda _f, c=client: self._fetched(c))
            return
        self._begin(client, buffer)

    def _screen(self, buffer: bytes) -> tuple:
        """(None, name) for a read request we may serve, else ((error code, why), name)."""
        try:
            pkt = self._factory.parse(buffer)
        except Exception as exc:  # noqa: BLE001 - tftpy's decoder on untrusted bytes
            return (TftpErrors.IllegalTftpOp, f"malformed request ({exc!r})"), None
        if isinstance(pkt, TftpPacketWRQ):
            return (TftpErrors.AccessViolation, "write requests are refused"), pkt.filename
        if not isinstance(pkt, TftpPacketRRQ):
            return (TftpErrors.IllegalTftpOp, "not a read request"), None
        name = clean_name(pkt.filename)
        if name is None:
            return (TftpErrors.AccessViolation, "name outside the served tree"), pkt.filename
        return None, name

    def _begin(self, client: tuple, buffer: bytes) -> None:
        """Answer the request (OACK or first block), then hand the transfer to a worker."""
        ctx = _Context(client[0], client[1], self.timeout, self._empty_root,
                       dyn_file_func=self._open, upload_open=lambda *_: None,
                       retries=self.retries, flock=False)
        try:
            ctx.start(buffer)
        except TftpTimeoutExpectACK:
            ctx.timeout_expectACK = True
        except Exception as exc:  # noqa: BLE001 - e.g. tftpy's int() of a bad blksize
            log.info("tftp: %s:%d: %s", *client, exc)
            ctx.end()
            TFTP_TRANSFERS.labels(
                result="not_found" if "not found" in str(exc).lower() else "error").inc()
            return
        self._active.add(client)
        self._turn = (self._turn + 1) % len(self._loops)
        self._loops[self._turn].adopt(client, ctx)

    def _open(self, filename: str, raddress=None, rport=None):
        name = clean_name(filename)
        return self.source.open(name) if name else None

    # -- fetches -----------------------------------------------------------

    def _fetched(self, client: tuple) -> None:
        """Fetch thread: hand the client back to the request loop."""
        with self._ready_lock:
            self._ready.append(client)
        self._waker.wake()

    def _begin_fetched(self) -> None:
        with self._ready_lock:
            ready, self._ready = self._ready, []
        for client in ready:
            buffer = self._pending.pop(client, None)
            if buffer is not None:
                self._begin(client, buffer)   # serves the cached file or says not found
