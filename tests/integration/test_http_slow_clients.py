"""Slow clients cannot stop the default HTTP service (issue 10, row 2).

200 real sockets each send a request one byte every 5 s and never finish it; meanwhile
a real curl from a node's address must still get its iPXE script. gunicorn alone holds
one thread per such client (2 workers x 8 threads here), so it needs the nginx front,
which ``zone serve`` puts on by default when nginx is installed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from http_peers import SlowClients, curl, free_port, loopback_zone, wait_until_up

NGINX = "/usr/sbin/nginx"
U03 = "127.17.1.13"
pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="needs Debian nginx-light")


def serve_http_only(tmp_path, *options: str):
    """``zone serve`` with only HTTP, on the loopback lab zone; (process, port, log path)."""
    port = free_port()
    zone = loopback_zone(tmp_path, port)
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bootstrap.cli", "serve", zone,
                                 "--state", str(tmp_path / "state" / "zone.db"),
                                 "--bind", "127.0.0.1", "--http-port", str(port),
                                 "--no-dhcp", "--no-tftp", "--no-dns", *options],
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, port, log


@pytest.mark.parametrize("options", [(), ("--http-front", "gunicorn")], ids=["default", "gunicorn"])
def test_boots_are_answered_while_200_clients_dribble(tmp_path, options):
    """The default (nginx in front) and gunicorn alone (its worker reads requests in its
    event loop, a thread only for a whole request)."""
    proc, port, log = serve_http_only(tmp_path, *options)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        with SlowClients(port, count=200, interval=5.0) as slow:
            slow.wait_rounds(2)  # every one of them connected and mid-request
            # a generous deadline: before, gunicorn never answered at all
            answer = curl(f"http://127.0.0.1:{port}/boot/ipxe", source=U03, check=False,
                          max_time=60)
            assert answer.returncode == 0, answer.stderr
            assert "/cloud-init/p01-u03/" in answer.stdout.decode()
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    front = "HTTP front: nginx" in log.read_text()
    assert front == (options == ())


def test_malformed_requests_write_a_few_log_lines_not_one_each(tmp_path):
    """gunicorn warns of every malformed request; the service rate-limits those lines."""
    port = free_port()
    zone = loopback_zone(tmp_path, port)
    log = open(tmp_path / "http.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap.http.wsgi", zone,
                             "--state", str(tmp_path / "zone.db"), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        for _ in range(100):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"NOT A REQUEST\r\n\r\n")
                sock.recv(4096)  # gunicorn's 400: the request was read and refused
        assert curl("-f", f"http://127.0.0.1:{port}/healthz").returncode == 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        log.close()
    lines = (tmp_path / "http.log").read_text().count("Invalid request from ip=")
    assert 1 <= lines <= 20  # a burst per worker, then a trickle; 100 unthrottled
