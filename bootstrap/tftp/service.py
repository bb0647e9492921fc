"""The TFTP service: a request loop on one socket handing transfers to a few loop threads."""

from __future__ import annotations

import logging
import os
import resource
import selectors
import socket
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from tftpy.TftpShared import TftpErrors

from ..metrics import TFTP_TRANSFERS
from ..service import Service, listen_error
from .cache import CacheDir, Fetcher, FileSource
from .packets import BLKSIZE_MAX, BLKSIZE_MIN, Refusal, error_packet, read_request
from .transfers import MAX_DATAGRAM, Admission, Context, Transfers, Waker, contained, note

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/usr/lib/ipxe"
SESSION_TIMEOUT = 1.0           # seconds before the first resend; then backoff
RETRIES = 4                     # resends once the peer has answered
MAX_TRANSFERS = 1024            # open transfers in all (each holds a socket)...
MAX_PER_SOURCE = 128            # ...and from one address
FD_RESERVE = 64                 # descriptors kept for everything else in the process
IP_MTU = getattr(socket, "IP_MTU", 14)     # Linux <linux/in.h>; Python 3.11 lacks the name
HEADERS = 20 + 8 + 4                        # IPv4, UDP, TFTP DATA
BUSY = Refusal(TftpErrors.NotDefined, "busy", "busy")


def _quiet_tftpy() -> None:
    """tftpy logs every step, resend and stray packet, each of which a stranger can
    cause; keep it out of the service log (ours is rate-limited) unless someone
    configured the ``tftpy`` logger on purpose."""
    tftpy_log = logging.getLogger("tftpy")
    if tftpy_log.level == logging.NOTSET:
        tftpy_log.setLevel(logging.CRITICAL)


def path_blksize(host: str) -> int:
    """The largest block a datagram to ``host`` carries unfragmented: the route's MTU
    (the kernel's, including what path MTU discovery learnt) less the IPv4, UDP and
    TFTP headers. The route to the client, not the interface the request came in on:
    the two are the same unless routing is asymmetric, and the route is what our
    blocks take. BLKSIZE_MAX when the kernel does not say."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, 9))    # connecting a UDP socket sends nothing
            mtu = probe.getsockopt(socket.IPPROTO_IP, IP_MTU)
        except OSError:
            return BLKSIZE_MAX
    return max(BLKSIZE_MIN, min(BLKSIZE_MAX, mtu - HEADERS))


def transfer_limit(wanted: int) -> int:
    """``wanted``, lowered so that every transfer can hold a socket and a file."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, (soft - FD_RESERVE) // 2))


class TftpService(Service):
    """A TFTP server on ``bind:port`` serving ``root``, proxying misses to ``controller_url``.

    A :class:`~bootstrap.service.Service`: the request loop runs on the serving thread.
    ``port=0`` binds an ephemeral port, readable from ``.port``. Transfers run on
    ``workers`` threads; at most
    ``max_transfers`` are open (``per_source`` from one address), the rest are refused
    with an ERROR. Fetched files are cached in ``cache_dir``, at most ``cache_bytes``
    and ``cache_files``.
    """

    name = "tftp"

    def __init__(self, root: str = DEFAULT_ROOT, cache_dir: str | None = None,
                 controller_url: str | None = None, bind: str = "127.0.0.1", port: int = 69,
                 timeout: float = SESSION_TIMEOUT, retries: int = RETRIES, workers: int = 2,
                 max_transfers: int = MAX_TRANSFERS, per_source: int = MAX_PER_SOURCE,
                 cache_bytes: int | None = None, cache_files: int | None = None):
        super().__init__()
        _quiet_tftpy()
        self.root = root
        self.cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "zone-tftp-cache")
        bounds = {k: v for k, v in (("max_bytes", cache_bytes), ("max_files", cache_files))
                  if v is not None}
        cache = CacheDir(self.cache_dir, **bounds)
        self.source = FileSource(root, Fetcher(controller_url, self.cache_dir, cache=cache))
        self.timeout, self.retries, self.workers = timeout, retries, max(1, workers)
        self.admission = Admission(transfer_limit(max_transfers), per_source)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((bind, port))
        except OSError as exc:
            self.sock.close()
            raise listen_error("TFTP", bind, port, exc) from None
        self.port = self.sock.getsockname()[1]
        self.endpoint = (bind, self.port)
        self._pending: dict[tuple, tuple] = {}       # client → (request, name) awaiting a fetch
        self._ready: list[tuple] = []                 # clients whose fetch finished
        self._ready_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tftp-fetch")
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.sock, selectors.EVENT_READ, None)
        self._waker = Waker(self._selector)
        self._loops: list[Transfers] = []
        self._turn = 0
        # tftpy looks a name up under its root before asking us; an empty directory
        # (a dot name, which no request can reach) makes every lookup come to
        # FileSource, the one place that decides.
        self._empty_root = os.path.join(self.cache_dir, ".root")
        os.makedirs(self._empty_root, exist_ok=True)

    @property
    def open_transfers(self) -> int:
        """Transfers running or waiting for a fetch (each holds, or will hold, a socket)."""
        return len(self.admission)

    # -- lifecycle (the order and locking: bootstrap.service) ------------------

    def _serve_loop(self) -> None:
        log.info("tftp: serving %s on %s:%d", self.root, *self.sock.getsockname())
        self._loops = [Transfers(f"tftp-transfers-{i}", self.admission)
                       for i in range(self.workers)]
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=1.0):
                self._dispatch(key.data)

    def _interrupt(self) -> None:
        self._waker.wake()

    def _counts(self) -> dict:
        return {"transfers": self.open_transfers}

    def _release(self) -> None:
        for loop in self._loops:
            loop.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._selector.close()
        self._waker.close()
        self.sock.close()

    # -- requests ----------------------------------------------------------

    def _dispatch(self, data) -> None:
        with contained("; dropping the packet"):     # a bad packet never stops the server
            if data is self._waker:
                self._waker.drain()
                self._begin_fetched()
            else:
                self.handle_request(*self.sock.recvfrom(MAX_DATAGRAM))

    def handle_request(self, buffer: bytes, client: tuple) -> None:
        """One datagram to the service port: start a transfer, or refuse it."""
        if client in self.admission:
            return                      # a retransmitted request; the transfer answers it
        pkt, name = read_request(buffer)
        if pkt is None:
            self._refuse(client, len(buffer), name)
            return
        busy = self.admission.take(client)
        if busy is not None:
            self._refuse(client, len(buffer), BUSY._replace(why=busy, name=name))
            return
        try:
            self._fetch_or_begin(client, pkt, name, len(buffer))
        except BaseException:
            self._pending.pop(client, None)
            self.admission.release(client)      # whatever failed, the slot is not lost
            raise

    def _fetch_or_begin(self, client: tuple, pkt, name: str, request_len: int) -> None:
        if self.source.needs_fetch(name):
            self._pending[client] = (pkt, name, request_len)
            self._pool.submit(self.source.fetcher.fetch, name).add_done_callback(
                lambda _f, c=client: self._fetched(c))
            return
        self._begin(client, pkt, name, request_len)

    def _refuse(self, client: tuple, request_len: int, refusal: Refusal) -> None:
        note("tftp-refused", client, "refused %s: %s", refusal.name or "-", refusal.why)
        TFTP_TRANSFERS.labels(result="refused").inc()
        answer = error_packet(refusal.code, refusal.message, request_len)
        if answer is not None:
            try:
                self.sock.sendto(answer, client)
            except OSError:
                pass                    # e.g. no route back: nothing more to say

    def _begin(self, client: tuple, pkt, name: str, request_len: int) -> None:
        """Answer the request (OACK or first block), then hand the transfer to a loop."""
        ctx = None
        try:
            ctx = self.open_transfer(client, pkt, name)
        except Exception as exc:  # noqa: BLE001 - e.g. out of descriptors: refuse, don't crash
            note("tftp-transfer-end", client, "could not start %s: %s", name, exc)
        if ctx is None:
            self.admission.release(client)
            self._refuse(client, request_len,
                         Refusal(TftpErrors.FileNotFound, "file not found", "not found", name)
                         if self.source.local(name) is None else BUSY._replace(name=name))
            return
        self._turn = (self._turn + 1) % len(self._loops)
        self._loops[self._turn].adopt(client, ctx)

    def open_transfer(self, client: tuple, pkt, name: str) -> Context | None:
        """A started transfer context for a checked request; None if the file is not here.

        Its socket and file are closed again if starting fails.
        """
        fileobj = self.source.open(name)
        if fileobj is None:
            return None
        try:
            ctx = Context(client[0], client[1], self.timeout, self._empty_root,
                          retries=self.retries, flock=False)
        except BaseException:
            fileobj.close()
            raise
        try:
            ctx.begin(pkt, fileobj, path_blksize(client[0]))
        except BaseException:
            ctx.end()
            raise
        return ctx

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
            waiting = self._pending.pop(client, None)
            if waiting is not None:
                self._begin(client, *waiting)   # serves the cached file or says not found
