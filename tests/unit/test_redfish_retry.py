"""Retries against a real HTTP peer on 127.0.0.1 that fails the first N requests of a
kind (500 "database is locked", 503 with Retry-After, a connection reset) and then
answers: the client gets through when repeating is safe, repeats nothing that is not,
and gives up after its bound with one line naming the last error and the attempts."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bootstrap.redfish import client as rc
from bootstrap.redfish import systems
from bootstrap.redfish.errors import (AuthFailed, BmcServerError, BmcUnreachable, Transient,
                                      passing)
from bootstrap.redfish.tasks import Backoff, follow
from bootstrap.redfish.update_service import TaskRef

SYSTEM = "/redfish/v1/Systems/s1"
RESET = f"{SYSTEM}/Actions/ComputerSystem.Reset"
LOCKED = {"error": {"code": "Base.1.0.GeneralError", "message": "database is locked",
                    "@Message.ExtendedInfo": [{"MessageId": "Base.1.0.GeneralError"}]}}


class Peer(ThreadingHTTPServer):
    """A small BMC: one system whose power a reset turns on, and a task that is done.

    ``fail(method, kind, times)`` makes the next ``times`` requests of ``method`` fail:
    ``500`` (nothing done), ``500-after`` (done, then 500: the answer is lost),
    ``503`` (with ``Retry-After: retry_after``), ``502``, ``401`` or ``reset`` (TCP RST).
    """

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.plan: dict = {}
        self.seen: list = []
        self.power = "Off"
        self.retry_after = "0"

    def fail(self, method: str, kind: str, times: int = 1) -> "Peer":
        self.plan.setdefault(method, []).extend([kind] * times)
        return self

    def next_failure(self, method: str) -> str | None:
        with self.lock:
            queue = self.plan.get(method) or []
            kind = queue.pop(0) if queue else None
            self.seen.append((method, kind))
            return kind

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.seen if m == method)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.handle_one("GET")

    def do_PATCH(self):
        self.handle_one("PATCH")

    def do_POST(self):
        self.handle_one("POST")

    def handle_one(self, method: str) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.server.next_failure(method)
        if kind == "reset":
            self.reset_connection()
        elif kind in ("500", "502", "401"):
            self.send(int(kind), LOCKED)
        elif kind == "503":
            self.send(503, LOCKED, {"Retry-After": self.server.retry_after})
        else:
            self.act(method)
            self.send(500, LOCKED) if kind == "500-after" else self.answer(method)

    def act(self, method: str) -> None:
        if method == "POST" and self.path == RESET:
            self.server.power = "On"

    def answer(self, method: str) -> None:
        if method != "GET":
            self.send(204, None)
        elif self.path.startswith("/task"):
            self.send(200, {"TaskState": "Completed", "TaskStatus": "OK"})
        else:
            self.send(200, {"@odata.id": SYSTEM, "Id": "s1", "PowerState": self.server.power})

    def send(self, status: int, body, headers: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reset_connection(self) -> None:
        """Close with RST (linger 0), as a BMC whose web server restarts does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


@pytest.fixture
def peer():
    server = Peer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def client_for(url: str, retries: int = 4) -> rc.BmcClient:
    """A client whose pauses are recorded, not slept: tests wait on nothing."""
    c = rc.BmcClient(rc.Endpoint("p01-u04-bmc", url, "s1"), rc.Credentials("u", "p"),
                     rc.Tls(False), rc.Policy(timeout=10, retries=retries, backoff=0.5,
                                              backoff_cap=2.0, retry_after_cap=30.0))
    c.slept = []
    c._sleep = c.slept.append
    return c.connect()


def test_get_through_database_is_locked(peer, caplog):
    peer.fail("GET", "500", 3)
    c = client_for(peer.url)
    with caplog.at_level(logging.DEBUG, logger="bootstrap.redfish.client"):
        assert c.get(SYSTEM, "system")["PowerState"] == "Off"
    assert peer.count("GET") == 4
    # exponential, capped at 2.0, each drawn from the upper half of its step (jitter)
    for pause, step in zip(c.slept, (0.5, 1.0, 2.0)):
        assert step / 2 <= pause <= step
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3 and all(r.levelno == logging.DEBUG for r in caplog.records)
    assert "system: HTTP 500: database is locked; retry 1 of 4" in retries[0]


def test_jitter_spreads_a_fleet():
    pauses = {round(next(rc.Policy().pauses()), 6) for _ in range(20)}
    assert len(pauses) > 1


def test_503_retry_after_is_honoured_and_capped(peer):
    c = client_for(peer.url)
    peer.retry_after = "2"
    peer.fail("GET", "503")
    c.get(SYSTEM)
    peer.retry_after = "3600"          # a BMC asking for an hour waits only the cap
    peer.fail("GET", "503")
    c.get(SYSTEM)
    peer.retry_after = formatdate(usegmt=True)   # an HTTP date (now): no wait
    peer.fail("GET", "503")
    c.get(SYSTEM)
    assert c.slept[:2] == [2.0, 30.0] and c.slept[2] <= 1.0
    assert peer.count("GET") == 6


def test_connection_reset_is_retried_for_a_read(peer):
    peer.fail("GET", "reset", 2)
    c = client_for(peer.url)
    assert c.get(SYSTEM)["Id"] == "s1" and peer.count("GET") == 3


def test_gives_up_after_the_bound_with_one_line(peer):
    peer.fail("GET", "500", 10)
    c = client_for(peer.url, retries=2)
    with pytest.raises(BmcServerError) as err:
        c.get(SYSTEM, "system")
    text = str(err.value)
    assert text == "p01-u04-bmc: system: HTTP 500: database is locked (gave up after 3 attempts)"
    assert "\n" not in text and peer.count("GET") == 3 and len(c.slept) == 2


def test_reset_connection_gives_up_naming_it(peer):
    peer.fail("GET", "reset", 10)
    with pytest.raises(BmcUnreachable, match=r"cannot connect .*gave up after 2 attempts\)$"):
        client_for(peer.url, retries=1).get(SYSTEM, "system")


def test_credentials_refused_are_never_retried(peer):
    peer.fail("GET", "401", 3)
    c = client_for(peer.url)
    with pytest.raises(AuthFailed, match="system: HTTP 401: credentials refused$"):
        c.get(SYSTEM, "system")
    assert peer.count("GET") == 1 and c.slept == []


def test_patch_is_idempotent_and_repeated(peer):
    peer.fail("PATCH", "502").fail("PATCH", "500-after")
    c = client_for(peer.url)
    assert c.patch(SYSTEM, systems.boot_once_body("Pxe"), "boot").status == 204
    assert peer.count("PATCH") == 3


def test_post_whose_answer_was_lost_is_not_repeated(peer):
    peer.fail("POST", "500-after")
    c = client_for(peer.url)
    with pytest.raises(BmcServerError, match="reset ForceRestart: HTTP 500: database is locked$"):
        c.post(RESET, {"ResetType": "ForceRestart"}, "reset ForceRestart")
    peer.fail("POST", "reset")       # reset after the request was sent: it may have acted
    with pytest.raises(BmcUnreachable):
        c.post(RESET, {"ResetType": "ForceRestart"}, "reset ForceRestart")
    assert peer.count("POST") == 2


def test_post_the_bmc_did_not_act_on_is_repeated(peer):
    peer.fail("POST", "503", 2)
    c = client_for(peer.url)
    assert c.post(RESET, {"ResetType": "On"}, "reset On").status == 204
    assert peer.count("POST") == 3


def test_power_on_is_repeated_only_after_looking(peer):
    system = systems.System.from_json({"@odata.id": SYSTEM, "PowerState": "Off"})
    peer.fail("POST", "500-after")       # it powered on, the answer was lost: look, do not repeat
    c = client_for(peer.url)
    assert systems.reset(c, system) == "On"
    assert peer.count("POST") == 1 and peer.power == "On"
    peer.power = "Off"
    peer.fail("POST", "500")             # it did not act: still off, so send it again
    assert systems.reset(c, system) == "On"
    assert peer.count("POST") == 3 and peer.power == "On"


def test_nothing_listening_is_retried_even_for_a_post():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]    # bound, never listening: connection refused
        c = client_for(f"http://127.0.0.1:{port}", retries=2)
        with pytest.raises(BmcUnreachable, match=r"Connection refused\) \(gave up after 3"):
            c.post(RESET, {"ResetType": "ForceRestart"}, "reset")


def test_task_polls_ride_through_a_busy_bmc(peer):
    peer.fail("GET", "500", 7)           # more than one request's retries: follow polls on
    c = client_for(peer.url, retries=1)
    ticks = []
    out = follow(c, TaskRef(None, "/tasks/1"), 100, Backoff(1, 1), clock=lambda: len(ticks),
                 sleep=ticks.append)
    assert out.ok and peer.count("GET") == 8


def test_what_passes_and_what_does_not():
    tls = rc._unreachable(requests.exceptions.SSLError("certificate verify failed"), "b", "x")
    assert tls.final and not passing(tls) and "TLS failure (certificate verify failed)" in str(tls)
    slow = rc._unreachable(requests.exceptions.ReadTimeout("slow"), "b", "x")
    assert slow.maybe_sent and passing(slow) and str(slow) == "b: x: timed out"
    assert not rc._unreachable(requests.exceptions.ConnectTimeout("x"), "b", "x").maybe_sent
    assert passing(Transient("busy", "b")) and not passing(AuthFailed("no", "b"))
    assert rc._retry_after("soon") is None and rc._retry_after("-4") == 0.0


def test_a_client_never_connected_fails_at_once():
    c = rc.BmcClient(rc.Endpoint("b", "http://127.0.0.1:9", "s1"), rc.Credentials("u", "p"),
                     rc.Tls(False))
    c._sleep = pytest.fail            # any pause would be a retry
    with pytest.raises(BmcUnreachable, match="^b: not connected$"):
        c.get(SYSTEM)
