"""A ToR whose relay writes SONiC's Option 82, driven by a real busybox udhcpc.

dhcrelay puts the receiving interface's name in the circuit-id and cannot write
``p01-tor-a:Ethernet8`` (an interface name has at most 15 characters and no ':'),
so the ToR's relay here is a small one of ours (:class:`SonicRelay`): it takes the
client's broadcast on its port interface, appends Option 82 with SONiC's
``<hostname>:<port>`` circuit-id and the switch MAC as remote-id, sets giaddr,
forwards to the server and broadcasts the reply back on the port.

    srv (br0 10.17.0.2, DhcpServer on :67)
     └─ tor  up 10.17.0.101; Ethernet8: 10.17.1.1 (pod gateway), SonicRelay
          └─ client  eth0 ↔ tor's Ethernet8 (front-panel port 3: lanes 8-11)
"""

from __future__ import annotations

import os
import shutil
import socket
import threading

import pytest
from conftest import LAB
from test_dhcp_relay import SERVER, Client

from bootstrap.dhcp import codec
from bootstrap.dhcp.server import DhcpServer
from bootstrap.plan import compile_plan
from bootstrap.state import EventWriter, Store
from bootstrap.zone import parse_zone_text
from zonelab.netns import Namespaces, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]
TOR_MAC, TOR_B_MAC = "0c:29:ef:01:0a:01", "0c:29:ef:01:0b:01"
GATEWAY, UPLINK, PORT = "10.17.1.1", "10.17.0.101", "Ethernet8"


def sonic_plan():
    """The lab with SONiC relays; p01-tor-b's MAC set in the zone, tor-a's to be learned."""
    with open(LAB, encoding="utf-8") as fh:
        text = fh.read()
    text = text.replace('  circuit_id: "swp{port}"', "  relay: sonic")
    for side in ("a", "b"):
        text = text.replace(f'remote_id: "{{pod}}-tor-{side}"', "remote_id: mac")
    text = text.replace("{name: p01, index: 1}",
                        f'{{name: p01, index: 1, macs: {{tor-b: "{TOR_B_MAC}"}}}}')
    return compile_plan(parse_zone_text(text, "sonic-lab.yml"))


class SonicRelay:
    """One front-panel port's DHCP relay, writing Option 82 as SONiC's dhcrelay does."""

    def __init__(self, ns, hostname: str, port: str, remote_id: bytes):
        self.hostname, self.port, self.remote_id = hostname, port, remote_id
        self.stop = threading.Event()
        with ns.entered():
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.down = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", 67))
        self.sock.settimeout(0.2)
        self.down.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.down.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, port.encode())
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                data, _ = self.sock.recvfrom(4096)
                packet = codec.decode(data)
            except (socket.timeout, codec.Malformed):
                continue
            if packet.op == codec.BOOTREQUEST:
                self.up(packet)
            else:
                packet.options.pop(codec.RELAY_AGENT_INFO, None)
                self.down.sendto(codec.encode(packet), ("255.255.255.255", 68))

    def up(self, packet) -> None:
        packet.giaddr, packet.hops = GATEWAY, packet.hops + 1
        packet.options.pop(codec.RELAY_AGENT_INFO, None)   # replace a client's own
        packet.options[codec.RELAY_AGENT_INFO] = codec.tlv({
            codec.CIRCUIT_ID: f"{self.hostname}:{self.port}".encode(),
            codec.REMOTE_ID: self.remote_id})
        self.sock.sendto(codec.encode(packet), (SERVER, 67))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()
        self.down.close()


class _Topo:
    """What :class:`test_dhcp_relay.Client` needs of a topology."""

    def __init__(self, lab, tor):
        self.lab, self.relays = lab, {"tor": tor}


@pytest.fixture
def sonic_tor(tmp_path):
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("udhcpc", "ip")):
        pytest.skip("needs root, udhcpc and ip")
    plan = sonic_plan()
    store = Store(str(tmp_path / "zone.db"))
    writer = EventWriter(store, interval=0.02)
    lab, server, relay, thread = Namespaces("dn"), None, None, None
    try:
        srv, tor = lab.namespace("srv"), lab.namespace("tor")
        lab.bridge(srv, "br0", f"{SERVER}/24")
        lab.link(tor, "uplink", srv, "tor-up", f"{UPLINK}/24")
        lab.attach(srv, "tor-up", "br0")
        srv.route("10.17.1.0/24", "via", UPLINK)
        client_ns = lab.namespace("client")
        lab.link(tor, PORT, client_ns, "eth0", f"{GATEWAY}/24")
        folder = tmp_path / "client"
        folder.mkdir()
        with srv.entered():
            server = DhcpServer(plan, "0.0.0.0", server_id=SERVER, events=writer)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        relay = SonicRelay(tor, "p01-tor-a", PORT, bytes.fromhex(TOR_MAC.replace(":", "")))
        yield relay, Client(_Topo(lab, tor), client_ns, folder, "tor", PORT), server, store
    finally:
        if relay is not None:
            relay.close()
        if server is not None:
            server.shutdown()
            thread.join(timeout=5)
            server.close()
        lab.close()
        writer.close()
        store.close()


def test_udhcpc_behind_a_sonic_relay_gets_its_unit_then_a_conflicting_mac_is_refused(sonic_tor):
    relay, client, server, store = sonic_tor
    # p01-tor-a's MAC is not learned yet: the circuit-id names the switch and port.
    result = client.udhcpc("-t", "6")
    assert result.returncode == 0, result.stdout
    env = client.bound("bound")
    assert env["ip"] == "10.17.1.13" and env["hostname"] == "p01-u03"
    assert env["router"] == GATEWAY
    # Learned (as from the store at start): the MAC agrees with the circuit-id.
    server.answerer.learn_macs({"p01-tor-a": TOR_MAC})
    assert client.udhcpc("-t", "6").returncode == 0
    assert client.bound("bound", count=2)["hostname"] == "p01-u03"
    # The relay now writes p01-tor-b's MAC (set in the zone) with tor-a's circuit-id:
    # Option 82 contradicts itself, so no answer and one event saying so.
    relay.remote_id = bytes.fromhex(TOR_B_MAC.replace(":", ""))
    refused = client.udhcpc("-t", "2")
    assert refused.returncode != 0
    assert len([e for e, _ in client.records() if e == "bound"]) == 2

    def conflict():
        return [e for e in store.events(kind="remote-id-conflict", limit=100)]
    events = wait_for(conflict, timeout=20)
    assert events and events[0]["detail"]["remote_id"] == TOR_B_MAC
    assert "p01-tor-b" in events[0]["detail"]["reason"]
