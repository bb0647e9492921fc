"""A full or read-only state disk degrades ``zone serve``; it does not stop it.

The state database lives on a small filesystem the test mounts (tmpfs, or ext4 on a
loop file for the read-only case) and ``zone serve`` runs on loopback with high
ports. The test fills (or breaks) that filesystem while real clients keep asking:
curl for iPXE scripts, dig for names, tftp-hpa for a boot loader, a DHCP packet for
an event. Before the fix the first heartbeat write after the disk filled raised
and the whole process exited, taking every service with it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bootstrap.state import Store
from http_peers import curl, eventually, free_port, loopback_zone, wait_until_up

U03, U04 = "127.17.1.13", "127.17.1.14"   # provision addresses in the loopback zone
OUTAGE = 12.0   # seconds of outage to ride out: past the old 4 s exit, over two heartbeats

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts filesystems: needs root")


@contextlib.contextmanager
def mounted(folder, *mount_args):
    """A filesystem mounted on ``folder`` for the test, unmounted after it."""
    os.makedirs(folder, exist_ok=True)
    done = subprocess.run(["mount", *mount_args, str(folder)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    try:
        yield str(folder)
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(folder)], check=True)


class Served:
    """``zone serve`` of the loopback lab zone, in a child process, on high ports."""

    def __init__(self, tmp_path, state: str):
        udp = socket.SOCK_DGRAM
        self.port, self.dns, self.tftp, self.dhcp = (free_port(), free_port(udp),
                                                     free_port(udp), free_port(udp))
        self.base = f"http://127.0.0.1:{self.port}"
        self.zone, self.state = loopback_zone(tmp_path, self.port), state
        self.log = open(tmp_path / "serve.log", "wb")  # beside, not on, the small disk
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bootstrap.cli", "serve", self.zone, "--state", state,
             "--bind", "127.0.0.1", "--http-port", str(self.port), "--dns-port", str(self.dns),
             "--tftp-port", str(self.tftp), "--dhcp-port", str(self.dhcp)],
            stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def health(self) -> dict:
        return json.loads(curl(self.base + "/healthz").stdout)

    def metric(self, name: str, **labels) -> float:
        text = curl(self.base + "/metrics").stdout.decode()
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def answers(self, tmp_path) -> None:
        """Every service answers from the zone: HTTP boot script, DNS name, TFTP file."""
        assert self.proc.poll() is None, "zone serve exited"
        script = curl(self.base + "/boot/ipxe", source=U03).stdout.decode()
        assert "/cloud-init/p01-u03/" in script
        dig = subprocess.run(["dig", "+short", "+time=5", "+tries=2", "-p", str(self.dns),
                              "@127.0.0.1", "p01-u03.lab1.example.net"],
                             capture_output=True, text=True, timeout=30)
        assert dig.stdout.split() == [U03]
        out = tmp_path / "undionly.kpxe"
        subprocess.run(["tftp", "-m", "binary", "127.0.0.1", str(self.tftp), "-c", "get",
                        "undionly.kpxe", str(out)], check=True, timeout=60, capture_output=True)
        assert out.read_bytes() == open("/usr/lib/ipxe/undionly.kpxe", "rb").read()
        out.unlink()

    def dhcp_probe(self, giaddr: str, mac: bytes) -> None:
        """A relayed DISCOVER from a relay the zone does not know: one event, no answer."""
        packet = bytearray(240)
        packet[0:4] = b"\x01\x01\x06\x01"
        packet[4:8] = os.urandom(4)
        packet[24:28] = socket.inet_aton(giaddr)
        packet[28:34] = mac
        packet[236:240] = b"\x63\x82\x53\x63"
        packet += b"\x35\x01\x01"  # DHCPDISCOVER
        packet += b"\x52\x06\x01\x04swp1\xff"  # Option 82 as a relay appends it: circuit-id
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(bytes(packet), ("127.0.0.1", self.dhcp))


@pytest.fixture
def serve_on(tmp_path):
    started = []

    def start(state: str) -> Served:
        started.append(Served(tmp_path, state))  # stopped below even if it never came up
        wait_until_up(started[-1].base + "/healthz", timeout=60)
        return started[-1]
    yield start
    for served in started:
        served.stop()


def fill(folder: str) -> str:
    """A file that takes every free block of ``folder``'s filesystem."""
    path = os.path.join(folder, "filler")
    chunk = b"\0" * (1 << 16)
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return path


def ride_out(served: Served, tmp_path) -> None:
    """Answers keep coming for :data:`OUTAGE` seconds and at least two failed heartbeats."""
    start = time.monotonic()
    while time.monotonic() - start < OUTAGE or served.metric(
            "zone_state_write_errors_total") < 2:
        served.answers(tmp_path)
        assert time.monotonic() - start < 120, "no heartbeat failed: did the disk fill?"
        time.sleep(1)


def test_a_full_state_disk_degrades_zone_serve_and_events_flow_again(tmp_path, serve_on):
    with mounted(tmp_path / "state", "-t", "tmpfs", "-o", "size=16m", "tmpfs") as disk:
        served = serve_on(os.path.join(disk, "zone.db"))
        served.answers(tmp_path)
        assert served.health()["status"] == "ok"
        filler = fill(disk)

        assert eventually(lambda: served.health()["status"] == "degraded", 30)
        assert any("full" in p for p in served.health()["problems"])
        served.dhcp_probe("127.0.0.9", b"\x52\x54\x00\x0a\x00\x01")
        assert eventually(lambda: served.metric("zone_events_dropped_total",
                                                reason="disk-full") >= 1, 30)
        ride_out(served, tmp_path)

        os.unlink(filler)  # room again: events flow, health recovers
        served.dhcp_probe("127.0.0.10", b"\x52\x54\x00\x0a\x00\x02")
        store = Store(served.state)
        assert eventually(lambda: any(e["detail"].get("giaddr") == "127.0.0.10"
                                      for e in store.events(limit=1000)), 30)
        curl(served.base + "/boot/ipxe", source=U04)
        assert eventually(lambda: store.node("p01-u04")["state"] == "booting", 30)
        assert eventually(lambda: served.health()["status"] == "ok", 60), served.health()
        store.close()
        served.stop()


def _ext4_errors_read_only(tmp_path) -> contextlib.AbstractContextManager:
    image = tmp_path / "state.img"
    with open(image, "wb") as fh:
        fh.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    return mounted(tmp_path / "state", "-o", "loop,errors=remount-ro", str(image))


def _fail_the_filesystem(folder: str) -> None:
    """What the kernel does on a disk error with errors=remount-ro: writes refused from
    now on, to files already open too (``mount -o remount,ro`` refuses while the
    database is open for writing)."""
    source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", folder], capture_output=True,
                            text=True, check=True).stdout.strip()
    trigger = f"/sys/fs/ext4/{os.path.basename(source)}/trigger_fs_error"
    if not os.path.exists(trigger):
        pytest.skip("this kernel has no ext4 trigger_fs_error")
    with open(trigger, "w") as fh:
        fh.write("1")


def test_a_state_disk_turned_read_only_degrades_zone_serve(tmp_path, serve_on):
    with _ext4_errors_read_only(tmp_path) as disk:
        served = serve_on(os.path.join(disk, "zone.db"))
        served.answers(tmp_path)
        store = Store(served.state)  # a disk fails in service: after a heartbeat was written
        assert eventually(lambda: all(s["heartbeat"] > s["started"] for s in store.services()), 30)
        store.close()
        _fail_the_filesystem(disk)
        with pytest.raises(OSError):
            open(os.path.join(disk, "probe"), "w").close()

        assert eventually(lambda: served.health()["status"] == "degraded", 60)
        served.dhcp_probe("127.0.0.9", b"\x52\x54\x00\x0b\x00\x01")
        assert eventually(lambda: served.metric("zone_events_dropped_total") >= 1, 30)
        ride_out(served, tmp_path)
        status = subprocess.run([sys.executable, "-m", "bootstrap.cli", "status", served.zone,
                                 "--state", served.state, "--json"],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert {s["kind"] for s in json.loads(status.stdout)["services"]} >= {"dhcp", "dns"}
        served.stop()


def _status(zone: str, state: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bootstrap.cli", "status", zone, "--state", state,
                           "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_zone_status_reads_a_state_db_on_a_filesystem_remounted_read_only(tmp_path):
    zone = loopback_zone(tmp_path, free_port())
    with mounted(tmp_path / "state", "-t", "tmpfs", "-o", "size=4m", "tmpfs") as disk:
        state = os.path.join(disk, "zone.db")
        _status(zone, state)  # creates and seeds it
        store = Store(state)
        store.transition("p01-u03", "discovered", source="dhcp")
        store.close()
        subprocess.run(["mount", "-o", "remount,ro", disk], check=True)
        snap = _status(zone, state)
        assert snap["events"][-1]["node"] == "p01-u03"
        assert any("read-only" in p for p in snap["state_problems"])
        text = subprocess.run([sys.executable, "-m", "bootstrap.cli", "status", zone, "--state",
                               state], capture_output=True, text=True, timeout=60)
        assert text.returncode == 0 and "read-only" in text.stdout


def test_zone_status_marks_the_services_of_a_killed_server_stale(tmp_path, serve_on):
    served = serve_on(str(tmp_path / "db" / "zone.db"))
    live = _status(served.zone, served.state)["services"]
    assert {s["kind"] for s in live} == {"http", "dhcp", "tftp", "dns"}
    assert all(s["alive"] and s["stale"] is None for s in live)
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait()
    dead = _status(served.zone, served.state)["services"]
    assert dead and not any(s["alive"] for s in dead)
    assert {s["stale"] for s in dead} == {f"process {served.proc.pid} is gone"}
    text = subprocess.run([sys.executable, "-m", "bootstrap.cli", "status", served.zone,
                           "--state", served.state], capture_output=True, text=True, timeout=60)
    assert text.stdout.count("STALE (process") == 4
