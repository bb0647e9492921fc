"""The service contract: what ``zone serve`` asks of DHCP, DNS, TFTP and HTTP.

Every pod service is a :class:`Service`, and :mod:`bootstrap.serve` uses nothing else:

- **construction binds** its sockets, so a taken or missing address fails there,
  before any thread starts, with a :class:`ListenError` of one line
  (``DNS cannot listen on 127.0.0.1:53: Address already in use``). ``port=0`` binds an
  ephemeral port; :attr:`Service.endpoint` says which.
- :meth:`~Service.start` serves on a daemon thread and returns at once (the service).
- :meth:`~Service.serve` serves on the calling thread until :meth:`~Service.stop`; it
  returns at once when stop came first, and raises what ended it when it failed.
- :meth:`~Service.stop` ends serving, waits (a bounded time) for ``serve`` to return and
  closes every socket; it is idempotent, and safe before ``start`` or ``serve`` and from
  any thread.
- :meth:`~Service.health` is a small dict: ``service``, ``state`` (``ready``, ``serving``
  or ``stopped``), ``address`` and a few counts of the service's own.

The locking that makes "serving starts, or stop wins: never half of both" lives here
once; a service supplies the pieces in between (:meth:`~Service._serving_starts`,
:meth:`~Service._serve_loop`, :meth:`~Service._interrupt`, :meth:`~Service._release`).
"""

from __future__ import annotations

import threading
from typing import Self

from .errors import InputError

STOP_WAIT = 5.0     # seconds stop() waits for serve() to return before closing anyway


class ListenError(InputError, OSError):
    """A service cannot bind its address: the user's to fix (a port taken, an address
    not ours). An :class:`OSError` too, as the bind failure it reports."""


def listen_error(service: str, address: str, port: int, exc: OSError) -> ListenError:
    return ListenError(f"{service} cannot listen on {address}:{port}: {exc.strerror or exc}")


class Service:
    """Base of the pod services: start, serve, stop and health, with their locking."""

    name = "service"
    endpoint: tuple = ("", 0)        # (address, port) bound, set by the constructor

    def __init__(self):
        self._lifecycle = threading.Lock()   # serving starts, or stop wins: never half of both
        self._stopping = threading.Event()  # the loops end when it is set
        self._served = threading.Event()    # serve() has returned
        self._serving = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Serve on a daemon thread; returns at once."""
        self._thread = threading.Thread(target=self.serve, name=self.name, daemon=True)
        self._thread.start()
        return self

    def serve(self) -> None:
        """Serve on this thread until :meth:`stop` (at once, when it came first)."""
        with self._lifecycle:
            if self._stopping.is_set():
                return
            self._serving = True
            self._serving_starts()
        try:
            self._serve_loop()
        finally:
            self._served.set()

    def serve_forever(self) -> None:
        """:meth:`serve`, under the name ``socketserver`` gives it."""
        self.serve()

    def stop(self) -> None:
        """End serving and close everything; idempotent."""
        with self._lifecycle:
            if self._stopped:
                return
            self._stopped = True
            self._stopping.set()
        if self._serving:
            self._interrupt()
            self._served.wait(STOP_WAIT)
        self._release()

    def health(self) -> dict:
        state = ("stopped" if self._stopping.is_set() else
                 "serving" if self._serving else "ready")
        host, port = self.endpoint[:2]
        return {"service": self.name, "state": state, "address": f"{host}:{port}",
                **self._counts()}

    # -- what each service supplies ------------------------------------------

    def _serving_starts(self) -> None:
        """Under the lock, as serving starts: what :meth:`_interrupt` relies on being started."""

    def _serve_loop(self) -> None:
        """The serving loop: return once ``self._stopping`` is set (and woken)."""
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Make a running :meth:`_serve_loop` see ``self._stopping`` soon (it may poll instead)."""

    def _release(self) -> None:
        """Close the sockets and whatever else is held (once, after serving ended)."""

    def _counts(self) -> dict:
        """A few figures of the service's own for :meth:`health`."""
        return {}
