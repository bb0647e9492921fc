"""The service contract (bootstrap/service.py) and the process helpers (bootstrap/process.py)."""

from __future__ import annotations

import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from bootstrap.dhcp.server import DhcpServer
from bootstrap.dns import DnsService
from bootstrap.errors import InputError
from bootstrap.http.serving.wsgi import HttpServer
from bootstrap.process import free_port
from bootstrap.serve import HttpAdapter, ServeOptions, Services
from bootstrap.service import ListenError, Service
from bootstrap.state import Store
from bootstrap.tftp import TftpService

DEADLINE = 30.0
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped yet (it has ended either way)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_free_port_is_bindable_for_tcp_and_udp():
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        port = free_port(kind)
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_child_dies_with_its_parent():
    """A parent started with die_with_parent as preexec_fn starts ``sleep``; killing the
    parent with SIGKILL (no cleanup of its own) takes the sleep with it."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys\n"
         "from bootstrap.process import die_with_parent\n"
         "child = subprocess.Popen(['sleep', '600'], preexec_fn=die_with_parent)\n"
         "print(child.pid, flush=True)\n"
         "child.wait()\n"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        child = int(parent.stdout.readline())
        assert not _gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=DEADLINE)
        assert _wait_gone(child)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import os\n"
                           "from bootstrap.process import die_with_parent\n" + code],
                          capture_output=True, text=True, timeout=DEADLINE, check=False, cwd=ROOT)


def test_with_its_parent_already_gone_a_process_exits_at_once():
    gone = _run("die_with_parent(parent=1)\nprint('still here')")  # as if pid 1 had started us
    assert gone.returncode == 0 and "still here" not in gone.stdout
    there = _run("die_with_parent(parent=os.getppid())\nprint('still here')")
    assert there.returncode == 0 and "still here" in there.stdout


# ---------------------------------------------------------------------------
# The service contract
# ---------------------------------------------------------------------------

HOOKS = ("_serving_starts", "_serve_loop", "_interrupt", "_release", "_counts")
CONTRACT = ("start", "serve", "serve_forever", "stop", "health")


def _dhcp(plan, tmp_path, port=0):
    return DhcpServer(plan, "127.0.0.1", port, server_id="127.0.0.1")


def _dns(plan, tmp_path, port=0):
    return DnsService(plan, "127.0.0.1", port)


def _tftp(plan, tmp_path, port=0):
    return TftpService(str(tmp_path), str(tmp_path / "cache"), None, "127.0.0.1", port)


def _http(plan, tmp_path, port=0):
    store = Store(":memory:")
    store.seed(plan)
    return HttpAdapter(HttpServer(plan, store, "127.0.0.1", port or free_port()))


MAKERS = {"dhcp": _dhcp, "dns": _dns, "tftp": _tftp, "http": _http}
BOUND = ("dhcp", "dns", "tftp")          # bind in the constructor (HTTP's child binds)


def _eventually(check, what: str):
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.parametrize("cls", [DhcpServer, DnsService, TftpService, HttpAdapter])
def test_each_service_keeps_the_contract_methods_and_hooks(cls):
    """Only the base defines the contract; a hook overridden takes no arguments (a
    method of the same name with another meaning, as TFTP's _begin was, fails here)."""
    assert issubclass(cls, Service)
    for name in CONTRACT:
        assert getattr(cls, name) is getattr(Service, name), f"{cls.__name__}.{name}"
    for name in HOOKS:
        assert list(inspect.signature(getattr(cls, name)).parameters) == ["self"], name


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_stop_before_serving_is_safe_idempotent_and_final(kind, lab_plan, tmp_path):
    service = MAKERS[kind](lab_plan, tmp_path)
    assert service.health()["state"] == "ready"
    service.stop()
    service.stop()
    done = threading.Thread(target=service.serve)     # after stop: returns at once
    done.start()
    done.join(timeout=DEADLINE)
    assert not done.is_alive()
    assert service.health()["state"] == "stopped"


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_start_serves_until_stop_from_another_thread(kind, lab_plan, tmp_path):
    service = MAKERS[kind](lab_plan, tmp_path).start()
    try:
        _eventually(lambda: service.health()["state"] == "serving", f"{kind} serving")
        health = service.health()
        assert health["service"] == kind and health["address"].startswith("127.0.0.1:")
        json.dumps(health)                            # small and plain: fit for /healthz
    finally:
        stopper = threading.Thread(target=service.stop)
        stopper.start()
        stopper.join(timeout=DEADLINE)
    assert not stopper.is_alive()
    service._thread.join(timeout=DEADLINE)
    assert not service._thread.is_alive() and service.health()["state"] == "stopped"
    service.stop()


@pytest.mark.parametrize("kind", BOUND)
def test_a_taken_port_is_one_line_naming_the_service(kind, lab_plan, tmp_path):
    first = MAKERS[kind](lab_plan, tmp_path)
    try:
        with pytest.raises(ListenError) as caught:
            MAKERS[kind](lab_plan, tmp_path, first.endpoint[1])
    finally:
        first.stop()
    message = str(caught.value)
    assert isinstance(caught.value, InputError) and isinstance(caught.value, OSError)
    assert message == f"{kind.upper()} cannot listen on 127.0.0.1:{first.endpoint[1]}: " \
                      "Address already in use"


def test_zone_serve_runs_and_stops_every_service_through_the_contract(lab_plan, tmp_path):
    port = free_port()
    options = ServeOptions(bind="127.0.0.1", http_port=port, dhcp_port=0, tftp_port=0,
                           dns_port=0, tftp_root=str(tmp_path))
    store = Store(str(tmp_path / "state.db"))
    store.seed(lab_plan)
    services = Services(lab_plan, store, options)
    services.start()
    try:
        _eventually(lambda: all(h["state"] == "serving" for h in services.health().values()),
                    "every service serving")
        assert sorted(services.health()) == ["dhcp", "dns", "http", "tftp"]
        _eventually(lambda: _http_ok(f"http://127.0.0.1:{port}/healthz"), "HTTP answering")
    finally:
        services.stop()
    assert {h["state"] for h in services.health().values()} == {"stopped"}
    for _name, _service, thread in services.running:
        thread.join(timeout=DEADLINE)
        assert not thread.is_alive()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status in (200, 503)
    except OSError:
        return False


# ---------------------------------------------------------------------------
# The DNS responder's outcome for other zones: typed, not the string "forward"
# ---------------------------------------------------------------------------

def test_a_question_for_another_zone_is_the_typed_forward_outcome(lab_plan):
    from dnslib import DNSRecord

    from bootstrap.dns import FORWARD, Responder, Route

    query = bytes(DNSRecord.question("www.example.org").pack())
    assert Responder(lab_plan, forward=True, upstreams=["192.0.2.53"]).answer(query) \
        == (FORWARD, None)
    assert FORWARD is Route.FORWARD and FORWARD != "forward"
    reply, rcode = Responder(lab_plan).answer(query)           # forwarding off: refused
    assert isinstance(reply, (bytes, bytearray)) and rcode == "REFUSED"
