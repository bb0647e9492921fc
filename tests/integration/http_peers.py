"""Helpers of the HTTP integration tests: a loopback copy of the lab zone and a live server.

The lab zone's networks are moved into 127.0.0.0/8, so a real client can send
from a node's own plan address (``curl --interface 127.17.1.13``) and the
service identifies it by source address exactly as it would on a pod network.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import time

from bootstrap.http.serving.wsgi import HttpServer
from bootstrap.plan import compile_plan
from bootstrap.process import free_port  # noqa: F401 - the HTTP tests take it from here
from bootstrap.state import Store
from bootstrap.zone import load_zone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "examples", "lab.yml")
SECRET = "integration-node-secret"
API_TOKEN = "integration-api-token"
KERNEL = bytes(range(256)) * 64      # 16 KiB stand-ins for the image files
INITRD = bytes(reversed(range(256))) * 128


def loopback_zone(folder, port: int) -> str:
    """The lab zone with its networks in 127/8 and the controller at 127.0.0.1:port."""
    with open(LAB, encoding="utf-8") as fh:
        text = fh.read()
    text = re.sub(r"supernet: 10\.(1[5-9])\.", r"supernet: 127.\1.", text)
    text = text.replace("http://10.17.0.2:8080", f"http://127.0.0.1:{port}")
    for rel, data in (("images/debian-12/linux", KERNEL), ("images/debian-12/initrd.gz", INITRD)):
        os.makedirs(os.path.join(folder, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(folder, rel), "wb") as fh:
            fh.write(data)
    shutil.copytree(os.path.join(ROOT, "examples", "firmware"), os.path.join(folder, "firmware"))
    path = os.path.join(folder, "lab.yml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def curl(*args, source: str | None = None, check: bool = True,
         max_time: float = 10) -> subprocess.CompletedProcess:
    """The real curl; ``source`` picks the loopback address it sends from."""
    cmd = ["curl", "-sS", "--max-time", str(max_time),
           *(["--interface", source] if source else []), *args]
    return subprocess.run(cmd, capture_output=True, check=check, timeout=max_time + 10)


def eventually(read, timeout: float = 10):
    """``read()`` once it is truthy: a gunicorn worker writes its events on a thread."""
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if curl("-o", "/dev/null", "-f", url, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout} s")


@contextlib.contextmanager
def served_zone(folder, workers: int = 2, front: str | None = None):
    """HttpServer (gunicorn alone, or behind ``front``) serving the loopback lab zone;
    yields (base URL, server, plan, state path)."""
    port = free_port()
    plan = compile_plan(load_zone(loopback_zone(folder, port)))
    state = os.path.join(folder, "state", "zone.db")
    store = Store(state)
    store.seed(plan)
    server = HttpServer(plan, store, "127.0.0.1", port, workers=workers, threads=4, front=front,
                        config={"NODE_SECRET": SECRET, "API_TOKEN": API_TOKEN})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/healthz")
        yield base, server, plan, state
    finally:
        server.shutdown()
        thread.join(timeout=20)
        store.close()


@contextlib.contextmanager
def gunicorn_zone(folder, workers: int = 2):
    """gunicorn serving the loopback lab zone; yields (base URL, plan, state path)."""
    with served_zone(folder, workers) as (base, _server, plan, state):
        yield base, plan, state


SLOW_REQUEST = b"GET /boot/ipxe HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"a" * 2000 + b"\r\n\r\n"


class SlowClients:
    """``count`` clients that each send a request one byte every ``interval`` seconds.

    A client the server drops is reconnected, so the pressure stays at ``count`` open
    connections for as long as it runs; ``rounds`` counts the passes over all of them.
    """

    def __init__(self, port: int, count: int = 200, interval: float = 1.0):
        self.port, self.count, self.interval = port, count, interval
        self.socks: list = [None] * count
        self.sent = [0] * count
        self.rounds = self.reconnects = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="slow-clients")

    def __enter__(self) -> "SlowClients":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)
        for sock in self.socks:
            if sock is not None:
                sock.close()

    def _drip(self, i: int) -> None:
        if self.socks[i] is None or self.sent[i] >= len(SLOW_REQUEST):
            if self.socks[i] is not None:
                self.socks[i].close()
                self.reconnects += 1
            self.socks[i] = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            self.sent[i] = 0
        try:
            self.socks[i].send(SLOW_REQUEST[self.sent[i]:self.sent[i] + 1])
            self.sent[i] += 1
        except OSError:  # dropped by the server: reconnect on the next pass
            self.sent[i] = len(SLOW_REQUEST)

    def _run(self) -> None:
        while not self.stopping.is_set():
            for i in range(self.count):
                try:
                    self._drip(i)
                except OSError:  # could not connect (backlog full): try again next pass
                    self.socks[i] = None
            self.rounds += 1
            self.stopping.wait(self.interval)

    def wait_rounds(self, rounds: int, timeout: float = 120) -> None:
        """Return once every client has sent ``rounds`` bytes' worth of passes."""
        start = self.rounds
        if not eventually(lambda: self.rounds >= start + rounds, timeout):
            raise RuntimeError(f"slow clients did not make {rounds} passes in {timeout} s")
