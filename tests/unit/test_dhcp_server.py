"""The UDP adapter on loopback: a relay socket talks to a live DhcpServer.

The "relay" is a socket on a loopback address listed in the zone's
``dhcp.trusted_relays``; the server replies to it on port 67, as to any relay.
Also: hardware replacement, workers on one port, and a fuzz storm that must
not stop the server from answering the next good packet.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time

import pytest

from bootstrap.dhcp import codec, probe
from bootstrap.dhcp.codec import DISCOVER, REQUEST
from bootstrap.dhcp.server import DhcpServer
from bootstrap.errors import InputError
from bootstrap.metrics import DHCP_ANSWERS
from bootstrap.plan import compile_plan
from bootstrap.state import EventWriter, Store
from bootstrap.zone import parse_zone_text

RELAY = f"127.{os.getpid() % 200 + 20}.{os.getpid() // 200 % 250 + 1}.67"
SERVER_ID = "10.17.0.2"


@pytest.fixture(scope="module")
def plan(lab_text):
    text = lab_text.replace("dhcp: {lease_time: 3600}",
                            f"dhcp: {{lease_time: 3600, trusted_relays: [{RELAY}]}}")
    return compile_plan(parse_zone_text(text))


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "zone.db"))
    yield store
    store.close()


@pytest.fixture
def relay():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((RELAY, 67))
    sock.settimeout(3)
    yield sock
    sock.close()


class Running:
    """A DhcpServer on 127.0.0.1:<ephemeral> serving in a thread."""

    def __init__(self, plan, store=None, workers=1):
        self.writer = EventWriter(store, interval=0.01) if store is not None else None
        self.server = DhcpServer(plan, "127.0.0.1", port=0, server_id=SERVER_ID,
                                 events=self.writer, workers=workers)
        self.address = self.server.address
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.close()
        if self.writer is not None:
            self.writer.close()


@pytest.fixture
def running(plan, store):
    run = Running(plan, store)
    yield run
    run.stop()


def exchange(relay, address, kind=DISCOVER, **kw) -> codec.Packet:
    kw.setdefault("giaddr", RELAY)
    kw.setdefault("remote", "p01-tor-a")
    relay.sendto(codec.encode(probe.request(kind, **kw)), address)
    data, _ = relay.recvfrom(4096)
    return codec.decode(data)


def test_dora_through_a_relay(running, relay, store):
    offer = exchange(relay, running.address, circuit="swp4", xid=1, arch=0)
    assert offer.message_type == codec.OFFER and offer.yiaddr == "10.17.1.14"
    assert offer.file == b"undionly.kpxe" and offer.options[82] == probe.relay_agent("swp4", "p01-tor-a")
    ack = exchange(relay, running.address, REQUEST, circuit="swp4", xid=2,
                   requested=offer.yiaddr, server_id=SERVER_ID)
    assert ack.message_type == codec.ACK and ack.options[codec.HOSTNAME] == b"p01-u04"
    running.writer.close()
    leases = store.events(kind="lease")
    assert [(e["node"], e["source"], e["detail"]["address"]) for e in leases] == \
        [("p01-u04", "dhcp", "10.17.1.14")]


def test_new_hardware_at_a_known_location_keeps_the_identity(running, relay, store):
    first = exchange(relay, running.address, REQUEST, circuit="swp2", mac="52:54:00:00:00:aa")
    second = exchange(relay, running.address, REQUEST, circuit="swp2", mac="52:54:00:00:00:bb")
    assert first.yiaddr == second.yiaddr == "10.17.1.12"
    running.writer.close()
    replaced = store.events(kind="hardware-replaced")
    assert len(replaced) == 1 and replaced[0]["node"] == "p01-u02"
    assert replaced[0]["detail"]["old_mac"] == "52:54:00:00:00:aa"
    assert replaced[0]["detail"]["mac"] == "52:54:00:00:00:bb"


def test_known_macs_come_from_the_store_across_restarts(plan, relay, store):
    store.seed(plan)
    store.update("p01-u01", mac="52:54:00:00:00:01")
    run = Running(plan, store)
    try:
        exchange(relay, run.address, REQUEST, circuit="swp1", mac="52:54:00:00:00:99")
    finally:
        run.stop()
    assert store.events(kind="hardware-replaced")[0]["detail"]["old_mac"] == "52:54:00:00:00:01"


def _mutations(good: bytes, rng: random.Random):
    """Random junk, truncations, bit flips and bad lengths around a good packet."""
    yield b""
    yield good[:rng.randrange(len(good))]
    yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 700)))
    flipped = bytearray(good)
    for _ in range(rng.randrange(1, 8)):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    yield bytes(flipped)
    yield good[:240] + bytes((rng.randrange(1, 255), 255)) + b"x" * 10
    yield good[:240] + b"\x00" * 3000 + b"\xff"
    yield good + b"\x00" * 5000


def test_fuzz_storm_never_stops_the_server(running, relay):
    good = codec.encode(probe.request(DISCOVER, giaddr=RELAY, circuit="swp3", remote="p01-tor-a"))
    rng = random.Random(1234)
    before = DHCP_ANSWERS.labels(type="drop:malformed")._value.get()
    relay.settimeout(0.001)
    for _ in range(300):
        for junk in _mutations(good, rng):
            relay.sendto(junk, running.address)
    relay.settimeout(3)
    time.sleep(0.2)
    while True:  # answers to flipped-but-valid packets may be queued: drain them
        try:
            relay.settimeout(0.3)
            relay.recvfrom(4096)
        except socket.timeout:
            break
    relay.settimeout(3)
    assert running.thread.is_alive()
    assert DHCP_ANSWERS.labels(type="drop:malformed")._value.get() > before + 300
    answer = exchange(relay, running.address, circuit="swp3", xid=0xC0FFEE)
    assert answer.xid == 0xC0FFEE and answer.yiaddr == "10.17.1.13"


def test_workers_share_the_port_and_report_to_the_parent(plan, relay, store):
    run = Running(plan, store, workers=2)
    try:
        got = {}
        for xid in range(1, 41):
            reply = exchange(relay, run.address, REQUEST, circuit=f"swp{xid % 4 + 1}", xid=xid)
            got[reply.xid] = reply.yiaddr
        (child,) = run.server._children
        # xid % 2 picks the socket: with the child stopped, odd xids wait for it.
        os.kill(child.pid, signal.SIGSTOP)
        try:
            assert exchange(relay, run.address, circuit="swp1", xid=100).xid == 100
            relay.settimeout(0.5)
            with pytest.raises(socket.timeout):
                exchange(relay, run.address, circuit="swp1", xid=101)
        finally:
            os.kill(child.pid, signal.SIGCONT)
        relay.settimeout(3)
        assert relay.recvfrom(4096) and True
    finally:
        run.stop()
    assert got == {x: f"10.17.1.{11 + x % 4}" for x in range(1, 41)}
    leases = store.events(kind="lease", limit=1000)
    assert len(leases) == 40  # the child's events reach the parent's writer


def test_shutdown_before_serving_returns_and_a_busy_port_is_an_input_error(plan):
    server = DhcpServer(plan, "127.0.0.1", port=0, server_id=SERVER_ID)
    try:
        server.shutdown()
        done = threading.Thread(target=server.serve_forever)
        done.start()
        done.join(timeout=5)
        assert not done.is_alive()
        with pytest.raises(InputError, match="cannot listen"):
            DhcpServer(plan, "127.0.0.1", port=server.address[1], server_id=SERVER_ID)
    finally:
        server.close()
    with pytest.raises(InputError, match="server_id"):
        DhcpServer(plan, "0.0.0.0", port=0)
