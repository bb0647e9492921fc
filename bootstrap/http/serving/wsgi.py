"""Serving the HTTP app: gunicorn in production, a werkzeug thread in tests.

:func:`serve_http` runs gunicorn's master in the calling process (it must be the
main thread: gunicorn handles signals) and forks workers; each worker opens its
own connection to the state database, since SQLite handles must not cross a fork.
Workers count in prometheus_client's multiprocess mode, in a private folder made
per start (:func:`metrics_folder`): a scrape sums every worker's files, so counters
never go backwards whichever worker answers. We chose it over one exporter process
because the samples stay in each worker (no IPC per request) and gunicorn's master
needs no extra thread; ``mark_process_dead`` runs as a worker exits.
:class:`HttpServer` runs the same in a child process for ``zone serve``'s threads;
:func:`serving` runs the app on a thread, for tests that need a real socket.

From a shell: ``python3 -m bootstrap.http.wsgi ZONE --state PATH --port N``, or
``ZONE_FILE=… ZONE_STATE=… gunicorn 'bootstrap.http.wsgi:app_from_env()'``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pathlib
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from prometheus_client import make_wsgi_app
from werkzeug.serving import WSGIRequestHandler, make_server

from ... import logs
from ...errors import WorkError
from ...plan import Plan, compile_plan
from ...process import die_with_parent, free_port
from ...state import Store, default_path
from ...throttle import Throttle
from ...zone import load_zone
from ..app.factory import create_app
from ..core.problems import LOGS
from ..core.settings import node_secret
from .front import FRONTS, publish_node, resolve_front
from .heads import HeadFirstWorker

log = logging.getLogger("bootstrap.http")
# Measured with bench/http on 2 cores: one process per core (the GIL) and 8 threads each
# beat 1 x 16, 2 x 4 and 2 x 16 in requests/s and in CPU per request.
WORKERS = min(os.cpu_count() or 1, 4)
ACCESS = logging.getLogger("bootstrap.http.access")
# Every request of a client is logged, but one flooding us cannot write at line rate.
ACCESS_LINES = Throttle(rate=50, burst=500)
THREADS = 8


class _Gunicorn(BaseApplication):
    """gunicorn driven from Python: options given here, the app built in each worker."""

    def __init__(self, factory, options: dict):
        self.factory, self.options = factory, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.factory()


def _worker_factory(plan: Plan, store_path: str, config: dict, scripts: dict):
    """Builds a worker's app after the fork, with the scripts the master rendered."""
    config = dict(config)
    config.setdefault("EVENT_BATCH", True)  # a worker's events: written by a thread, batched

    def factory():
        app = create_app(plan, Store(store_path), config)
        svc = app.extensions["zone"]
        svc.rendered.update(scripts)
        if config.get("FRONT_DIR"):  # behind nginx: a node's file follows its state
            svc.on_state_change.append(publish_node)
        return app
    return factory


MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
OWNED = "ZONE_METRICS_DIR_OWNER"  # the pid that made the folder and removes it


def metrics_folder() -> str:
    """A fresh private (0700) folder for the workers' metric files: stale files of an
    earlier run would be summed into the new one's counters."""
    return tempfile.mkdtemp(prefix="zone-metrics-")


def _child_exit(server, worker) -> None:
    """gunicorn hook, in the master once a worker is gone: its live gauges end with it."""
    if os.environ.get(MULTIPROC):
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)


def _worker_exit(server, worker) -> None:
    """gunicorn hook, in the worker as it stops: write the events it still holds."""
    app = getattr(worker, "wsgi", None)
    zone = getattr(app, "extensions", {}).get("zone")
    if zone is not None:
        zone.close()


class ThrottledLogger(Logger):
    """gunicorn's error log with its warnings and tracebacks rate-limited per kind and client
    (:mod:`bootstrap.throttle`): gunicorn warns of every malformed request ("Invalid
    request from ip=…"), so without a limit a stranger writes our log at line rate.

    Also our access log: one line per request on ``bootstrap.http.access``, in the
    format :mod:`bootstrap.logs` was set to (gunicorn's own lines too)."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(logs.formatter())

    def access(self, resp, req, environ, request_time):
        client = environ.get("REMOTE_ADDR") or "-"
        if ACCESS_LINES.allow("access-log", client):
            fields = access_fields(req.method, req.path, resp.status_code, resp.sent,
                                   request_time.total_seconds(), client,
                                   environ.get("HTTP_X_FORWARDED_FOR"))
            ACCESS.info("request", extra=fields)  # the fields say it all, in text or JSON

    def warning(self, msg, *args, **kwargs):
        if _log_allowed(msg):
            super().warning(msg, *args, **kwargs)

    def exception(self, msg, *args, **kwargs):
        if _log_allowed(msg):
            super().exception(msg, *args, **kwargs)


def access_fields(method: str, path: str, status, sent, seconds: float, client: str,
                  forwarded: str | None = None) -> dict:
    """An access line's fields. The path has no query string: one may carry a node token."""
    fields = {"method": str(method)[:16], "path": str(path)[:256], "status": int(status or 0),
              "bytes": int(sent or 0), "duration_ms": round(seconds * 1000, 3),
              "client": client}
    if forwarded:  # behind nginx the peer is loopback; the node is the one nginx names
        fields["forwarded_for"] = forwarded.split(",")[0].strip()[:64]
    return fields


def _log_allowed(msg) -> bool:
    kind, _, rest = str(msg).partition(" from ip=")
    return LOGS.allow("gunicorn: " + kind[:40], rest.partition(": ")[0])


def gunicorn_options(bind: str, port: int, workers: int, threads: int) -> dict:
    return {"bind": f"{bind}:{port}", "workers": workers, "threads": threads,
            "worker_class": HeadFirstWorker, "timeout": 60, "graceful_timeout": 5, "keepalive": 5,
            "proc_name": f"zone-http-{port}", "errorlog": "-", "loglevel": "warning",
            "logger_class": ThrottledLogger, "worker_exit": _worker_exit,
            "child_exit": _child_exit}


def serve_http(plan: Plan, store: Store, bind: str = "0.0.0.0", port: int = 8080,
               config: dict | None = None, workers: int = WORKERS, threads: int = THREADS,
               register: bool = True) -> int:
    """Serve until SIGTERM/SIGINT with gunicorn; returns gunicorn's exit status.

    Must run on the main thread of its process (gunicorn's master handles signals).
    The per-node token secret is settled here, before the fork, so every worker
    signs alike, and every server's install script is rendered, so workers inherit them
    instead of each rendering 10,000 while the servers ask. With ``register`` the
    service is recorded in ``store`` with the zone digest (``zone status`` shows it).
    """
    config = dict(config or {})
    config.setdefault("NODE_SECRET", node_secret(config, store.path))
    if register:
        store.register_service(f"{socket.gethostname()}:{os.getpid()}:http", "http",
                               f"{bind}:{port}", plan.zone.digest)
    scripts = create_app(plan, store, config).extensions["zone"].warm()
    app = _Gunicorn(_worker_factory(plan, store.path, config, scripts),
                    gunicorn_options(bind, port, workers, threads))
    try:
        app.run()
    except SystemExit as exc:  # gunicorn's master leaves through sys.exit
        return int(exc.code or 0)
    return 0


def _die_with_parent(parent: int) -> None:
    """Linux: SIGTERM this process when the one that started it dies (no orphaned server).
    Exits through sys.exit, not os._exit, so the metrics folder's clean-up still runs."""
    die_with_parent()
    if parent and os.getppid() != parent:  # it died before prctl: nobody will stop us
        sys.exit(0)


def send_spec(stream, plan: Plan, config: dict) -> None:
    """The plan and settings (the node secret among them) for a child server, through its
    stdin: no file holds them, so a killed parent leaves no secret in a temp folder."""
    try:
        with stream:
            pickle.dump({"plan": plan, "config": config}, stream)
    except OSError:  # the child died first (or was stopped): its exit status tells
        pass


def read_spec(stream) -> tuple[Plan, dict]:
    spec = pickle.load(stream)
    return spec["plan"], spec["config"]


class HttpServer:
    """gunicorn in a child process, driven like a server object from a thread.

    For ``zone serve``, which runs every service on a thread of one process:
    ``serve_forever()`` starts ``python3 -m bootstrap.http.wsgi`` (a fresh
    interpreter: the parent has threads and locks a fork would copy) and waits on
    it; ``shutdown()`` stops it gracefully. An in-memory store cannot be shared
    with a child: it is served on a werkzeug thread instead (tests only).
    """

    def __init__(self, plan: Plan, store: Store, bind: str = "0.0.0.0", port: int = 8080,
                 config: dict | None = None, workers: int = WORKERS, threads: int = THREADS,
                 front: str | None = None):
        self.plan, self.store, self.bind, self.port = plan, store, bind, port
        self.config = dict(config or {})
        self.config.setdefault("NODE_SECRET", node_secret(self.config, store.path))
        self.workers, self.threads = workers, threads
        self.proc = self.local = self.exporter = self.metrics_dir = None
        # an in-memory store is served on a thread: no child, no front
        self.front = resolve_front(front) if store.path != ":memory:" else None
        self.nginx = None
        self.front_died = False
        # Behind a front, gunicorn listens on a private loopback port only nginx talks to.
        self.app_bind, self.app_port = (("127.0.0.1", free_port()) if self.front
                                        else (bind, port))
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bootstrap.http.wsgi", "--spec", "-",
                "--parent", str(os.getpid()),
                "--state", self.store.path, "--bind", self.app_bind, "--port", str(self.app_port),
                "--workers", str(self.workers), "--threads", str(self.threads)]

    def _start(self) -> None:
        if self.store.path == ":memory:":
            app = create_app(self.plan, self.store, self.config)
            self.local = ThreadedServer(app, self.bind, self.port)
        else:
            # Our process's counters (DHCP, TFTP, DNS) for the child's /metrics, on loopback.
            self.exporter = ThreadedServer(make_wsgi_app(), "127.0.0.1", 0)
            self.config["PARENT_METRICS_URL"] = self.exporter.url + "/metrics"
            if self.front:
                self._start_front()
            self.metrics_dir = metrics_folder()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE,
                                         env=_child_env(self.metrics_dir))
            if self.nginx is not None:
                threading.Thread(target=self._watch_front, daemon=True,
                                 name="zone-http-front").start()

    def _start_front(self) -> None:
        """nginx on the public port; gunicorn trusts the X-Forwarded-For nginx sets."""
        from .front import NginxFront
        folder = front_folder(self.store.path)
        svc = create_app(self.plan, Store(self.store.path),
                         dict(self.config, EVENT_BATCH=True)).extensions["zone"]
        self.nginx = NginxFront(svc, folder, self.bind, self.port, self.app_port, self.workers,
                                bool(self.config.get("TRUST_X_FORWARDED_FOR")))
        self.config.update(TRUST_X_FORWARDED_FOR=True, FRONT_DIR=self.nginx.scripts)
        self.nginx.start()

    def _watch_front(self) -> None:
        """nginx gone while serving: stop gunicorn too, so serve_forever reports it."""
        code = self.nginx.proc.wait()
        if not self.stopping.is_set():
            log.error("nginx in front of the HTTP service exited with status %s: %s", code,
                      self.nginx.error_tail())
            self.front_died = True
            self.proc.terminate()

    def serve_forever(self) -> None:
        with self.lock:
            if self.stopping.is_set():
                return
            self._start()
        if self.local is not None:
            self.local.thread.join()
            return
        send_spec(self.proc.stdin, self.plan, self.config)  # outside the lock: shutdown may
        code = self.proc.wait()                             # stop a child that reads slowly
        if (code or self.front_died) and not self.stopping.is_set():
            raise WorkError(f"the HTTP service on {self.bind}:{self.port} exited "
                            f"with status {code}")

    def shutdown(self, timeout: float = 10) -> None:
        with self.lock:
            self.stopping.set()
        for server in (self.local, self.exporter):
            if server is not None:
                server.close()
        if self.nginx is not None:  # the public port first; it drains into gunicorn
            self.nginx.stop(timeout)
            shutil.rmtree(self.nginx.folder, ignore_errors=True)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: gunicorn finishes the requests in flight
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self.metrics_dir is not None:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)


def front_folder(state_path: str) -> str:
    """A fresh folder for the front, beside the state database; in the temp dir when that
    folder cannot take it (a full or read-only state disk must not stop HTTP)."""
    try:
        return tempfile.mkdtemp(prefix="zone-front-",
                                dir=os.path.dirname(os.path.abspath(state_path)))
    except OSError as exc:
        log.warning("nginx front: not beside the state (%s): in %s", exc, tempfile.gettempdir())
        return tempfile.mkdtemp(prefix="zone-front-")


def _child_env(metrics_dir: str) -> dict:
    """Our environment, with this package importable even when it is not installed and
    the workers' metrics folder (read by prometheus_client as it is imported)."""
    package_parent = str(pathlib.Path(os.path.abspath(__file__)).parents[3])  # holds bootstrap/
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONPATH=package_parent + (os.pathsep + path if path else ""))
    env[MULTIPROC] = metrics_dir
    env.pop(OWNED, None)  # the parent removes it
    return env


class _QuietHandler(WSGIRequestHandler):
    """No request lines on stderr: a query string may carry a node token."""

    def log_request(self, *args, **kwargs) -> None:
        pass


class ThreadedServer:
    """The app on a werkzeug server thread: ``url``, ``port`` and ``close()``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name=f"zone-http-{self.port}")
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@contextlib.contextmanager
def serving(app, host: str = "127.0.0.1", port: int = 0):
    """``with serving(app) as server:`` a real socket for the duration of a test."""
    server = ThreadedServer(app, host, port)
    try:
        yield server
    finally:
        server.close()


def app_from_env():
    """Factory for the gunicorn command line: ZONE_FILE, ZONE_STATE (default beside the zone).

    With more than one worker, set PROMETHEUS_MULTIPROC_DIR to an empty folder of its own
    (emptied before each start), or each scrape shows one worker's counters only."""
    zone_file = os.environ["ZONE_FILE"]
    plan = compile_plan(load_zone(zone_file))
    store = Store(os.environ.get("ZONE_STATE") or default_path(zone_file))
    store.seed(plan)
    return create_app(plan, store)


def _reexec_with_metrics_folder() -> None:
    """Re-run this command with a metrics folder of its own: prometheus_client chose its
    single-process mode when it was imported, before we could set one."""
    env = dict(os.environ, **{MULTIPROC: metrics_folder(), OWNED: str(os.getpid())})
    os.execve(sys.executable, [sys.executable, "-m", "bootstrap.http.wsgi", *sys.argv[1:]], env)


def main(argv=None) -> int:
    if argv is None and not os.environ.get(MULTIPROC):
        _reexec_with_metrics_folder()
    try:
        return _main(argv)
    finally:  # gunicorn's workers leave through here too (sys.exit): only the master cleans
        if os.environ.get(OWNED) == str(os.getpid()):
            shutil.rmtree(os.environ[MULTIPROC], ignore_errors=True)


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bootstrap.http.wsgi",
                                     description="serve the zone's HTTP service with gunicorn")
    parser.add_argument("zone", nargs="?", help="the zone file (or --spec)")
    parser.add_argument("--spec", choices=("-",),
                        help="-: the plan and settings, as HttpServer writes them on stdin")
    parser.add_argument("--parent", type=int, default=0, help="exit when this process dies")
    parser.add_argument("--state", required=True)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--public-url", help="base of handed-out URLs (default controller.url)")
    parser.add_argument("--trust-x-forwarded-for", action="store_true")
    parser.add_argument("--front", choices=FRONTS, help="nginx answers /boot/ipxe from files "
                        "(auto: when nginx is installed); default gunicorn alone")
    args = parser.parse_args(argv)
    logs.setup()  # as the zone serve that started us: ZONE_LOG_FORMAT
    if args.spec:
        plan, config = read_spec(sys.stdin.buffer)
        # HttpServer's metrics folder goes with us too: a killed zone serve cannot remove it
        os.environ[OWNED] = str(os.getpid())
    elif args.zone:
        plan, config = compile_plan(load_zone(args.zone)), {}
    else:
        parser.error("give a zone file or --spec")
    if args.parent:
        _die_with_parent(args.parent)
    store = Store(args.state)
    store.seed(plan)
    config.setdefault("TRUST_X_FORWARDED_FOR", args.trust_x_forwarded_for)
    if args.public_url:
        config["PUBLIC_URL"] = args.public_url
    front = resolve_front(args.front)
    if front:
        return _serve_fronted(plan, store, args, config, front)
    return serve_http(plan, store, args.bind, args.port, config, args.workers, args.threads,
                      register=not args.spec)


def _serve_fronted(plan: Plan, store: Store, args, config: dict, front: str) -> int:
    """:class:`HttpServer` with its front, from the main thread, until SIGTERM/SIGINT."""
    server = HttpServer(plan, store, args.bind, args.port, config, args.workers, args.threads,
                        front=front)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="zone-http")
    thread.start()
    while not stop.wait(0.5) and thread.is_alive():
        pass
    server.shutdown()
    thread.join(timeout=20)
    return 0
