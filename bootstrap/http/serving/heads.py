"""A gunicorn worker that gives a thread only to a request that has fully arrived.

gunicorn's ``gthread`` worker hands each connection to a thread as soon as its first
byte arrives, and the thread then blocks reading the rest. A client sending one byte
every few seconds holds a thread for as long as it likes: a few dozen such clients
hold them all and nobody else gets an answer (issue 10: 40 clients stopped 2 x 8
threads). nginx in front (``front.py``, the default when installed) holds them
without a thread; this worker is the mitigation when gunicorn serves alone.

Its event loop reads each request's head (and a body announced by Content-Length, up
to ``MAX_BODY``) without a thread, gives up on a connection that has not sent it
within ``HEAD_SECONDS``, and only then hands the bytes to gunicorn's own parser in a
thread. A chunked body is still read by the thread.
"""

from __future__ import annotations

import re
import selectors
import time
from collections import deque
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_SECONDS = 10.0      # a request head (and small body) must arrive within this
MAX_BODY = 1024 * 1024   # as create_app's MAX_CONTENT_LENGTH: larger goes to the thread
MAX_HEAD = 64 * 1024     # gunicorn refuses longer heads itself; hand them over
_LENGTH = re.compile(rb"\ncontent-length:[ \t]*(\d{1,12})[ \t]*\r?\n", re.I)


def request_end(data: bytes) -> int | None:
    """Length of the first whole request in ``data`` (head plus a Content-Length body),
    ``len(data)`` when the rest is for gunicorn to judge, None while still incomplete."""
    # a bare-LF head is gunicorn's to refuse (400), not ours to wait on
    ends = [at + len(blank) for blank in (b"\r\n\r\n", b"\n\n") if (at := data.find(blank)) >= 0]
    if not ends:
        return len(data) if len(data) > MAX_HEAD else None
    end = min(ends)
    length = _LENGTH.search(data, 0, end)
    if length is None:
        return end
    size = int(length.group(1))
    if size > MAX_BODY:
        return len(data)
    return end + size if len(data) >= end + size else None


class _Conn(TConn):
    """A connection with the bytes the event loop read ahead for it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.ahead = b""
        self.data_ready = True  # gunicorn need not wait for data: the loop did


class HeadFirstWorker(ThreadWorker):
    """``gthread`` with each request read by the event loop before a thread takes it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reading: deque = deque()  # connections still sending a request, oldest first

    def accept(self, listener):
        try:
            sock, address = listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        self.nr_conns += 1
        self._read_request(_Conn(self.cfg, sock, address, listener.getsockname()))

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection's next request: read by the loop too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_request(conn)

    def finish_request(self, conn, fs):
        super().finish_request(conn, fs)
        if conn.ahead and conn in self.keepalived_conns:  # a pipelined request already read
            self.on_client_socket_readable(conn, conn.sock)

    def _read_request(self, conn) -> None:
        conn.timeout = time.monotonic() + HEAD_SECONDS
        self.reading.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))
        if conn.ahead:
            self._hand_over(conn)

    def _readable(self, conn, _client) -> None:
        try:
            chunk = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away
            self._forget(conn)
            self.nr_conns -= 1
            conn.close()
            return
        conn.ahead += chunk
        self._hand_over(conn)

    def _hand_over(self, conn) -> None:
        """A whole request read: give exactly it to gunicorn's parser in a thread."""
        end = request_end(conn.ahead)
        if end is None:
            return
        self._forget(conn)
        conn.sock.setblocking(True)
        conn.init()  # the parser (once per connection)
        conn.parser.unreader.unread(conn.ahead[:end])
        conn.ahead = conn.ahead[end:]
        self.enqueue_req(conn)

    def _forget(self, conn) -> None:
        self.poller.unregister(conn.sock)
        self.reading.remove(conn)

    def murder_pending(self):
        """Also close connections that did not send a request within HEAD_SECONDS."""
        super().murder_pending()
        now = time.monotonic()
        while self.reading and self.reading[0].timeout <= now:
            conn = self.reading[0]
            self._forget(conn)
            self.nr_conns -= 1
            conn.close()
