"""``zone serve``: the pod services (DHCP, TFTP, DNS, HTTP) in one process.

Each service is a thin adapter over the same plan and keeps the one contract of
:mod:`bootstrap.service` (HTTP through :class:`HttpAdapter`); this module only serves them
on threads, registers the process (with the zone file's hash, so ``zone status``
shows drift between the two ToRs of a pair), marks it alive every few seconds
(``zone status`` calls a service stale when that stops) and stops them together.
The state disk is not needed to answer: when it is full or read-only the services
go on, and only records and events are lost (counted; ``/healthz`` says degraded).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import sqlite3
import threading
from dataclasses import dataclass
from urllib.parse import urlparse

from .errors import BootstrapError, InputError, WorkError
from .plan import Plan, compile_plan
from .service import Service
from .state import HEARTBEAT_SECONDS, EventWriter, Store
from .zone import Zone

log = logging.getLogger("bootstrap.serve")


@dataclass
class ServeOptions:
    bind: str = "0.0.0.0"
    server_id: str | None = None     # our address as clients see it (DHCP option 54)
    http_port: int = 8080
    dhcp_port: int = 67
    tftp_port: int = 69
    dns_port: int = 53
    dhcp: bool = True
    tftp: bool = True
    dns: bool = True
    http: bool = True
    workers: int = 1
    dns_forward: bool = False        # forward other zones to dns.upstreams
    tftp_root: str = "/usr/lib/ipxe"
    cache_dir: str | None = None
    http_front: str | None = "auto"  # nginx answers /boot/ipxe (http/front.py) when installed


def pod_plan(zone: Zone, pod: str | None) -> Plan:
    """The plan limited to one pod (and the core); addresses do not change."""
    if pod is None:
        return compile_plan(zone)
    pods = tuple(p for p in zone.pods if p.name == pod)
    if not pods:
        raise InputError(f"--pod {pod}: no such pod")
    return compile_plan(dataclasses.replace(zone, pods=pods))


def server_address(plan: Plan, options: ServeOptions) -> str:
    """The address clients reach us on: --server-id, the bind address or the controller's."""
    if options.server_id:
        return options.server_id
    if options.bind not in ("0.0.0.0", ""):
        return options.bind
    host = urlparse(plan.zone.controller_url).hostname or "127.0.0.1"
    try:
        return socket.gethostbyname(host)
    except OSError:
        raise InputError(f"cannot tell this server's address from {host}: give --server-id") from None


class HttpAdapter(Service):
    """The HTTP service (gunicorn in a child process, :class:`HttpServer`) under the
    service contract. The child binds the port, so a taken port shows as the child's
    exit, from :meth:`serve`, not from the constructor."""

    name = "http"

    def __init__(self, server):
        super().__init__()
        self.server = server
        self.endpoint = (server.bind, server.port)

    def _serve_loop(self) -> None:
        self.server.serve_forever()

    def _interrupt(self) -> None:
        self.server.shutdown()      # returns once the child has exited


class Services:
    def __init__(self, plan: Plan, store: Store, options: ServeOptions):
        self.plan, self.store, self.options = plan, store, options
        self.events = EventWriter(store)
        self.address = server_address(plan, options)
        self.running: list[tuple[str, Service, threading.Thread]] = []
        self.stopped = threading.Event()
        self.failure: str | None = None   # why a service ended on its own: zone serve exits 1

    def start(self) -> None:
        o = self.options
        starters = [(o.http, "http", self._http), (o.dhcp, "dhcp", self._dhcp),
                    (o.tftp, "tftp", self._tftp), (o.dns, "dns", self._dns)]
        try:
            for wanted, name, make in starters:
                if wanted:
                    service = make()
                    thread = threading.Thread(target=self._guard, args=(name, service),
                                              daemon=True, name=f"svc-{name}")
                    thread.start()
                    self.running.append((name, service, thread))
                    self._register(name)
        except InputError:  # a port taken, an address not ours: said in one line
            self.stop()
            raise
        except OSError as exc:
            self.stop()
            raise InputError(f"{name} cannot start: {exc}") from None
        except Exception as exc:  # a service that cannot start stops the others cleanly
            self.stop()
            raise WorkError(f"a service failed to start: {exc!r}") from exc

    def _guard(self, name: str, service: Service) -> None:
        """Serve until stopped; a service that ends on its own ends ``zone serve`` with
        its reason, so a supervisor's restart-on-failure fires."""
        try:
            service.serve()
            why = None if self.stopped.is_set() else f"the {name} service exited"
        except (BootstrapError, OSError) as exc:  # said in one line: no traceback
            why = f"the {name} service died: {exc}"
        except Exception as exc:  # a bug: the traceback helps, the rest stops cleanly
            log.exception("%s service died", name)
            why = f"the {name} service died: {exc!r}"
        if why is not None and self.failure is None:
            log.error("%s", why)
            self.failure = why
        self.stopped.set()

    def _dhcp(self):
        from .dhcp.server import DhcpServer

        o = self.options
        return DhcpServer(self.plan, o.bind, o.dhcp_port, server_id=self.address,
                          events=self.events, tftp_server=self.address,
                          http_base_url=self.plan.zone.controller_url, workers=o.workers)

    def _tftp(self):
        from .tftp import TftpService

        o = self.options
        cache = o.cache_dir or os.path.join(os.path.dirname(self.store.path) or ".", "tftp-cache")
        return TftpService(o.tftp_root, cache, self.plan.zone.controller_url, o.bind, o.tftp_port)

    def _dns(self):
        from .dns import DnsService

        return DnsService(self.plan, self.options.bind, self.options.dns_port,
                          forward=self.options.dns_forward)

    def _http(self):
        from .http.serving.wsgi import HttpServer

        return HttpAdapter(HttpServer(self.plan, self.store, self.options.bind,
                                      self.options.http_port, front=self.options.http_front))

    @staticmethod
    def ident(name: str) -> str:
        return f"{name}-{socket.gethostname()}-{os.getpid()}"

    def _register(self, name: str) -> None:
        """Record the service for ``zone status``; a state disk that is full or read-only
        only loses the record (the heartbeat retries it), never the service."""
        with contextlib.suppress(sqlite3.Error):  # logged and counted by the store
            self.store.register_service(self.ident(name), name, self.address,
                                        self.plan.zone.digest)

    def heartbeat(self) -> bool:
        """Each running service marked alive (registered again if its record is missing);
        False when the state disk refused the write: the next interval tries again."""
        try:
            for name, _service, _thread in self.running:
                if not self.store.heartbeat(self.ident(name)):
                    self._register(name)
        except sqlite3.Error:  # logged, rate-limited, by the store; we serve on
            return False
        return True

    def health(self) -> dict:
        """Each running service's :meth:`~bootstrap.service.Service.health`, by name."""
        return {name: service.health() for name, service, _thread in self.running}

    def wait(self, interval: float = HEARTBEAT_SECONDS) -> None:
        while not self.stopped.wait(interval):
            self.heartbeat()

    def stop(self) -> None:
        self.stopped.set()
        for name, service, _thread in reversed(self.running):
            try:
                service.stop()
            except Exception:  # stopping must reach every service
                log.exception("stopping %s", name)
            with contextlib.suppress(sqlite3.Error):  # a read-only disk keeps the record
                self.store.unregister_service(self.ident(name))
        self.events.close()

