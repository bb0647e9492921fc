"""Serving the HTTP app: gunicorn in production, a werkzeug thread in tests.

:func:`serve_http` runs gunicorn's master in the calling process (it must be the
main thread: gunicorn handles signals) and forks workers; each worker opens its
own connection to the state database, since SQLite handles must not cross a fork.
:func:`spawn_http` runs the same in a child process for an orchestrator;
:func:`serving` runs the app on a thread, for tests that need a real socket.

From a shell: ``python3 -m bootstrap.http.wsgi ZONE --state PATH --port N``, or
``ZONE_FILE=… ZONE_STATE=… gunicorn 'bootstrap.http.wsgi:app_from_env()'``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import socket
import sys
import threading

from gunicorn.app.base import BaseApplication
from werkzeug.serving import make_server

from ..plan import Plan, compile_plan
from ..state import Store
from ..zone import load_zone
from . import create_app
from .settings import node_secret

log = logging.getLogger("bootstrap.http")


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


def _worker_factory(plan: Plan, store_path: str, config: dict):
    def factory():
        return create_app(plan, Store(store_path), config)
    return factory


def gunicorn_options(bind: str, port: int, workers: int, threads: int) -> dict:
    return {"bind": f"{bind}:{port}", "workers": workers, "threads": threads,
            "worker_class": "gthread", "timeout": 60, "graceful_timeout": 5, "keepalive": 5,
            "proc_name": f"zone-http-{port}", "errorlog": "-", "loglevel": "warning"}


def serve_http(plan: Plan, store: Store, bind: str = "0.0.0.0", port: int = 8080,
               config: dict | None = None, workers: int = 1, threads: int = 16) -> int:
    """Serve until SIGTERM/SIGINT with gunicorn; returns gunicorn's exit status.

    The per-node token secret is settled here, before the fork, so every worker
    signs alike. The service is registered in ``store`` with the zone digest.
    """
    config = dict(config or {})
    config.setdefault("NODE_SECRET", node_secret(config, store.path))
    store.register_service(f"http-{socket.gethostname()}-{port}", "http", f"{bind}:{port}",
                           plan.zone.digest)
    app = _Gunicorn(_worker_factory(plan, store.path, config),
                    gunicorn_options(bind, port, workers, threads))
    try:
        app.run()
    except SystemExit as exc:  # gunicorn's master leaves through sys.exit
        return int(exc.code or 0)
    return 0


def spawn_http(plan: Plan, store: Store, bind: str = "0.0.0.0", port: int = 8080,
               config: dict | None = None, workers: int = 1, threads: int = 16):
    """:func:`serve_http` in a forked child; returns the started process (terminate() stops it)."""
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=serve_http, name=f"zone-http-{port}",
                       args=(plan, store, bind, port, config, workers, threads), daemon=False)
    proc.start()
    return proc


class ThreadedServer:
    """The app on a werkzeug server thread: ``url``, ``port`` and ``close()``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.server = make_server(host, port, app, threaded=True)
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
    """Factory for the gunicorn command line: ZONE_FILE, ZONE_STATE (default beside the zone)."""
    from ..cli import default_state
    zone_file = os.environ["ZONE_FILE"]
    plan = compile_plan(load_zone(zone_file))
    store = Store(os.environ.get("ZONE_STATE") or default_state(zone_file))
    store.seed(plan)
    return create_app(plan, store)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bootstrap.http.wsgi",
                                     description="serve the zone's HTTP service with gunicorn")
    parser.add_argument("zone")
    parser.add_argument("--state", required=True)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--public-url", help="base of handed-out URLs (default controller.url)")
    parser.add_argument("--trust-x-forwarded-for", action="store_true")
    args = parser.parse_args(argv)
    plan = compile_plan(load_zone(args.zone))
    store = Store(args.state)
    store.seed(plan)
    config = {"TRUST_X_FORWARDED_FOR": args.trust_x_forwarded_for}
    if args.public_url:
        config["PUBLIC_URL"] = args.public_url
    return serve_http(plan, store, args.bind, args.port, config, args.workers, args.threads)


if __name__ == "__main__":
    sys.exit(main())
