"""No secret in a temp file, and nothing left in /tmp by a killed run.

``zone serve`` hands its HTTP child the plan and settings (the node-token secret
among them): before, through a pickle in the temp folder, left there when the
parent was killed before the child read it. A lab run (``zone up --lab``) killed
with SIGKILL left its ``zone-lab-*`` work folder (logs, BMC state, the targets'
SSH key) for ever; the next lab run now removes the folders of killed runs.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from zonelab.topology import OWNER, Lab
from http_peers import LAB, curl, free_port, loopback_zone

SECRET = "a-node-secret-that-must-stay-in-memory"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces: needs root")


def _holding_secret(folder) -> list[str]:
    """Files below ``folder`` that are ours or hold the secret (gunicorn's own unlinked
    worker files may vanish between listing and reading)."""
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as fh:
                    held = SECRET.encode() in fh.read()
            except OSError:
                continue
            if held or name.startswith("zone-"):
                found.append(path)
    return found


def test_zone_serve_hands_the_node_secret_to_its_http_child_through_no_file(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    zone = loopback_zone(tmp_path, port)
    env = dict(os.environ, TMPDIR=str(temp), ZONE_NODE_SECRET=SECRET)
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap.cli", "serve", zone,
                             "--state", str(tmp_path / "state" / "zone.db"), "--bind", "127.0.0.1",
                             "--http-port", str(port), "--no-dhcp", "--no-dns", "--no-tftp"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set = set()
    try:
        deadline = time.monotonic() + 60
        while not _up(port):
            seen.update(_holding_secret(temp))  # watched all through the start
            assert proc.poll() is None and time.monotonic() < deadline, "zone serve is not up"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seen.update(_holding_secret(temp))
    assert not seen


def _up(port: int) -> bool:
    return curl("-o", "/dev/null", "-f", f"http://127.0.0.1:{port}/healthz",
                check=False).returncode == 0


KILLED_RUN = """
import os, signal, sys
from zonelab.topology import Lab
from bootstrap.plan import compile_plan
from bootstrap.zone import load_zone
Lab(compile_plan(load_zone(sys.argv[1])), "p01", sys.argv[2])
open(os.path.join(sys.argv[2], "serve.log"), "w").write("a log of the killed run")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_next_lab_run_removes_the_work_folder_of_a_killed_one(tmp_path, lab_plan):
    killed = tmp_path / "zone-lab-killed"
    run = subprocess.run([sys.executable, "-c", KILLED_RUN, LAB, str(killed)], timeout=120)
    assert run.returncode == -signal.SIGKILL
    assert stat.S_IMODE(os.stat(killed).st_mode) == 0o700 and (killed / OWNER).exists()
    unknown = tmp_path / "zone-lab-not-ours"   # no owner file: not known to be a lab's
    unknown.mkdir()

    lab = Lab(lab_plan, "p01", str(tmp_path / "zone-lab-next"))
    try:
        lab.build()
    finally:
        lab.close()
    assert not killed.exists()
    assert unknown.exists()
    assert (tmp_path / "zone-lab-next").exists()  # a run that ended keeps its logs
    assert not (tmp_path / "zone-lab-next" / OWNER).exists()
