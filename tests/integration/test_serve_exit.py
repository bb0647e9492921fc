"""zone serve under a supervisor: a service that cannot serve ends it with exit 1 and one
line that says why (no traceback), so systemd's Restart=on-failure fires."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from bootstrap.process import free_port
from conftest import LAB

pytestmark = pytest.mark.timeout(120)


def test_http_port_taken_exits_1_with_one_line(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "bootstrap", "serve", LAB, "--state",
             str(tmp_path / "zone.db"), "--bind", "127.0.0.1", "--no-dhcp", "--no-tftp",
             "--no-dns", "--http-port", str(port), "--http-front", "gunicorn"],
            capture_output=True, text=True, timeout=90)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the http service died") and str(port) in last, last
