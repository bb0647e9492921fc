"""The service contract (bootstrap/service.py) and the process helpers (bootstrap/process.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from bootstrap.process import free_port

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
