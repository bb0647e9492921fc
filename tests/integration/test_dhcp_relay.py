"""The DHCP service against real ISC dhcrelay, dhclient and busybox udhcpc.

Topology (every piece a network namespace of this test, veths only between them)::

    srv (br0 10.17.0.2, DhcpServer on :67)
     ├─ tora  up 10.17.0.101; swp1..4, swp9: 10.17.1.1 (pod gateway)  dhcrelay → giaddr 10.17.1.1
     ├─ torb  up 10.17.0.102; swp3: 10.17.1.3 (tor-b's own address)   dhcrelay → giaddr 10.17.1.3
     ├─ lom   up 10.17.0.103; swp3: 10.16.1.1 (pod gateway on lom)     dhcrelay → giaddr 10.16.1.1
     ├─ core1 up 10.17.0.104; swp1: 10.15.0.2 (core-1, the ToR's uplink)
     ├─ torm  up 10.17.0.105; swp48: 10.15.1.1 (mgmt gateway, the LoM switch's uplink)
     ├─ stray up 10.17.0.106; swp3: 10.99.0.1 (a relay outside the zone: not trusted)
     ├─ tapp  up 10.17.0.107; swp1: 10.17.1.1 (tor-a again, dhcrelay -m append: keeps a
     │        client's own Option 82 and adds its own after it)
     └─ rogue (a client straight on the server's segment)
    each client namespace: eth0 ↔ one relay port swpN

dhcrelay puts the receiving interface name in the circuit-id and sends no
remote-id, so ports are named swpN and switches are known by giaddr.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import threading

import pytest

from bootstrap.dhcp import codec, probe
from bootstrap.dhcp.server import DhcpServer
from bootstrap.metrics import DHCP_ANSWERS
from bootstrap.state import EventWriter, Store
from zonelab.netns import Namespaces, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]
SERVER = "10.17.0.2"
CONTROLLER = "http://10.17.0.2:8080"
TOOLS = ("dhcrelay", "dhclient", "udhcpc", "ip")
# relay namespace: (uplink address, address on every client port, client ports)
SWITCHES = {
    "tora": ("10.17.0.101", "10.17.1.1/24", ("swp1", "swp2", "swp3", "swp4", "swp9")),
    "torb": ("10.17.0.102", "10.17.1.3/24", ("swp3",)),
    "lom": ("10.17.0.103", "10.16.1.1/24", ("swp3",)),
    "core1": ("10.17.0.104", "10.15.0.2/24", ("swp1",)),    # core-1's own address: ToR ZTP
    "torm": ("10.17.0.105", "10.15.1.1/24", ("swp48",)),   # mgmt gateway: the LoM switch
    "stray": ("10.17.0.106", "10.99.0.1/24", ("swp3",)),   # a relay the zone does not know
    "tapp": ("10.17.0.107", "10.17.1.1/24", ("swp1",)),    # tor-a's relay in append mode
}
RELAY_MODE = {"tapp": "append"}   # what dhcrelay does with a client's Option 82; else replace
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}

UDHCPC_SCRIPT = r"""#!/bin/sh
# udhcpc event script: configure the interface, then record the event as one file (the
# test waits for it, so the address and route are in place by then). No resolv.conf.
case "$1" in
  bound|renew)
    ip addr replace "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    ;;
esac
d="$(dirname "$0")"; env > "$d/.event"; mv "$d/.event" "$d/event.$(date +%s%N).$1"
exit 0
"""

DHCLIENT_SCRIPT = r"""#!/bin/sh
# dhclient-script stand-in: configure the interface, then record the event. Nothing else.
case "$reason" in
  PREINIT) ip link set "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    [ -n "$new_routers" ] && ip route replace default via "${new_routers%% *}" dev "$interface"
    ;;
esac
d="$(dirname "$0")"; env > "$d/.event"; mv "$d/.event" "$d/event.$(date +%s%N).$reason"
exit 0
"""

DHCLIENT_CONF = """\
option pxe-arch code 93 = unsigned integer 16;
option ipxe-encap code 175 = string;
send vendor-class-identifier "PXEClient:Arch:00007:UNDI:003016";
send user-class "iPXE";
send pxe-arch 7;
request subnet-mask, routers, domain-name-servers, host-name, domain-name, ntp-servers,
        bootfile-name, tftp-server-name, dhcp-lease-time, dhcp-server-identifier, ipxe-encap;
timeout 20;
retry 1;
initial-interval 1;
"""


def _missing_tools():
    return [t for t in TOOLS if shutil.which(t) is None]


@contextlib.contextmanager
def topology(plan, tmp, **kw):
    if os.geteuid() != 0 or _missing_tools():
        pytest.skip(f"needs root and {', '.join(_missing_tools()) or 'namespaces'}")
    lab = Namespaces("dh")
    store = Store(str(tmp / "zone.db"))
    writer = EventWriter(store, interval=0.02)
    topo = None
    try:
        topo = Topology(lab, plan, writer, tmp, **kw)
        yield topo
    finally:
        if topo is not None:
            topo.stop()
        lab.close()
        writer.close()
        store.close()


@pytest.fixture(scope="module")
def net(lab_plan, tmp_path_factory):
    with topology(lab_plan, tmp_path_factory.mktemp("dhcp")) as topo:
        yield topo


class Topology:
    def __init__(self, lab: Lab, plan, writer: EventWriter, tmp, switches=SWITCHES, **server):
        self.lab, self.plan, self.writer, self.store, self.tmp = lab, plan, writer, writer.store, tmp
        self.srv = lab.namespace("srv")
        lab.bridge(self.srv, "br0", f"{SERVER}/24")
        self.relays, self.clients = {}, {}
        for name, (up, down, ports) in switches.items():
            self.relay(name, up, down, ports)
        self.clients[(None, "rogue0")] = self._client(None, "rogue0")
        self.srv.route("10.17.1.0/24", "via", "10.17.0.101")
        self.srv.route("10.17.1.3/32", "via", "10.17.0.102")
        self.srv.route("10.16.1.0/24", "via", "10.17.0.103")
        self.srv.route("10.15.0.2/32", "via", "10.17.0.104")
        self.srv.route("10.15.1.0/24", "via", "10.17.0.105")
        self.srv.route("10.99.0.0/24", "via", "10.17.0.106")
        with self.srv.entered():
            self.server = DhcpServer(plan, "0.0.0.0", server_id=SERVER, events=writer,
                                     http_base_url=CONTROLLER, **server)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        for name, (_, _, ports) in switches.items():
            mode = RELAY_MODE.get(name, "replace")
            cmd = ["dhcrelay", "-4", "-d", "--no-pid", "-a", "-m", mode, "-iu", "uplink"]
            for port in ports:
                cmd += ["-id", port]
            self.relays[name].popen(cmd + [SERVER])

    def relay(self, name: str, up: str, down: str, ports) -> None:
        """A switch: uplink on the server's bridge, a client cabled to each port swpN."""
        ns = self.relays[name] = self.lab.namespace(name)
        self.lab.link(ns, "uplink", self.srv, f"{name}-up", f"{up}/24")
        self.lab.attach(self.srv, f"{name}-up", "br0")
        ns.route("default", "via", SERVER)
        for key, value in (("ip_forward", "1"), ("conf.all.rp_filter", "0"),
                           ("conf.default.rp_filter", "0")):
            ns.sysctl(f"net.ipv4.{key}", value)
        for port in ports:
            self.clients[(name, port)] = self._client(name, port)
            # The pod gateway on every port, without a prefix route per port: the relay
            # learns each host's route the way a ToR learns it from ARP (Client.learn).
            ns.address(port, down, "noprefixroute")

    def _client(self, relay: str | None, port: str):
        """A client namespace whose eth0 is cabled to ``relay``'s ``port`` (None: the server's bridge)."""
        ns = self.lab.namespace(f"{relay or 'srv'}-{port}")
        folder = self.tmp / ns.name
        folder.mkdir()
        if relay is None:
            self.lab.link(ns, "eth0", self.srv, port)
            self.lab.attach(self.srv, port, "br0")
        else:
            self.lab.link(ns, "eth0", self.relays[relay], port)
        return Client(self, ns, folder, relay, port)

    def client(self, relay: str | None, port: str):
        return self.clients[(relay, port)]

    def events(self, kind: str) -> list:
        return [e for e in self.store.events(kind=kind, limit=10000)]

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.close()




class Client:
    def __init__(self, topo: Topology, ns, folder, relay, port):
        self.topo, self.ns, self.folder, self.relay, self.port = topo, ns, folder, relay, port
        self.proc = None

    def script(self, text: str) -> str:
        path = self.folder / "script"
        path.write_text(textwrap.dedent(text))
        path.chmod(0o755)
        return str(path)

    def udhcpc(self, *args: str, once: bool = True):
        cmd = ["udhcpc", "-f", "-i", "eth0", "-s", self.script(UDHCPC_SCRIPT), "-t", "6", "-T", "1",
               "-O", "hostname", "-O", "domain", "-O", "ntpsrv", "-O", "bootfile", "-O", "tftp",
               "-O", "dns", "-O", "router", *args]
        if once:
            return self.ns.run(cmd + ["-n", "-q"], check=False, timeout=30, env=CLEAN_ENV)
        self.proc = self.ns.popen(cmd, env=CLEAN_ENV)
        return self.proc

    def dhclient(self, conf: str = DHCLIENT_CONF):
        (self.folder / "dhclient.conf").write_text(conf)
        cmd = ["dhclient", "-4", "-d", "-v", "-1", "-cf", str(self.folder / "dhclient.conf"),
               "-lf", str(self.folder / "leases"), "-pf", str(self.folder / "pid"),
               "-sf", self.script(DHCLIENT_SCRIPT), "eth0"]
        self.proc = self.ns.popen(cmd, env=CLEAN_ENV)
        return self.proc

    def records(self) -> list:
        """Every script call as (event, env dict), in order (one file each, renamed whole)."""
        out = []
        for path in sorted(self.folder.glob("event.*")):
            body = path.read_text()
            env = dict(line.split("=", 1) for line in body.splitlines() if "=" in line)
            out.append((path.name.split(".", 2)[2], env))
        return out

    def bound(self, *events: str, count: int = 1):
        """The env of the ``count``-th script call among ``events``, once it happened."""
        def find():
            hits = [env for event, env in self.records() if event in events]
            return hits[count - 1] if len(hits) >= count else None
        env = wait_for(find, timeout=20)
        assert env is not None, f"no {events} #{count}: {self.records()}"
        return env

    @contextlib.contextmanager
    def socket(self, port: int = 68):
        """A UDP socket on this client's eth0, for packets no DHCP client would send."""
        with self.ns.entered():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
            sock.bind(("0.0.0.0", port))
            sock.settimeout(0.2)
            yield sock
        finally:
            sock.close()

    def learn(self, address: str) -> None:
        """The switch learns where the host is, as a ToR does from ARP."""
        self.topo.relays[self.relay].route(f"{address}/32", "dev", self.port)

    def stop(self):
        if self.proc is not None:
            self.topo.lab.stop(self.proc)


def wait_event(net: Topology, kind: str, **match):
    def find():
        for event in net.events(kind):
            if all(event["detail"].get(k) == v or event.get(k) == v for k, v in match.items()):
                return event
        return None
    return wait_for(find, timeout=10)


def test_udhcpc_bios_pxe_gets_unit_3_and_renews(net):
    client = net.client("tora", "swp3")
    client.udhcpc("-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000", "-R", once=False)
    env = client.bound("bound")
    assert env["ip"] == "10.17.1.13"
    assert env["subnet"] == "255.255.255.0"
    assert env["router"] == "10.17.1.1"
    assert env["hostname"] == "p01-u03"
    assert env["domain"] == "lab1.example.net"
    assert env["dns"].split() == ["192.0.2.53"]
    assert env["ntpsrv"].split() == ["192.0.2.123"]
    assert env["serverid"] == SERVER
    assert env["siaddr"] == SERVER and env["boot_file"] == "undionly.kpxe"
    assert env["tftp"] == SERVER and env["bootfile"] == "undionly.kpxe"
    assert env["lease"] == "3600"
    lease = wait_event(net, "lease", node="p01-u03", port=3)
    assert lease["detail"]["address"] == "10.17.1.13"
    # RENEW: unicast to the server through the relay's routing, no Option 82.
    client.learn("10.17.1.13")
    os.killpg(client.proc.pid, signal.SIGUSR1)  # busybox udhcpc: renew now
    renewed = client.bound("renew")
    assert renewed["ip"] == "10.17.1.13" and renewed["hostname"] == "p01-u03"
    assert wait_event(net, "lease", node="p01-u03", switch="renewal") is not None
    # RELEASE on exit (-R): unicast through tor-a, whose dhcrelay relays a copy of it too.
    releases = answers("release")
    client.stop()
    assert wait_for(lambda: answers("release") >= releases + 2, timeout=20)
    assert len(events_after_barrier(net, "release", "p01-u03")) == 1


def events_after_barrier(net: Topology, kind: str, node: str) -> list:
    """``kind`` events of ``node`` once everything queued before now is in the store."""
    mark = os.urandom(4).hex()
    net.writer.put("barrier", None, "test", mark=mark)
    assert wait_event(net, "barrier", mark=mark) is not None
    return [e for e in net.events(kind) if e["node"] == node]


def test_dhclient_ipxe_gets_boot_script_url_and_identity(net):
    client = net.client("tora", "swp4")
    client.dhclient()
    env = client.bound("BOUND")
    assert env["new_ip_address"] == "10.17.1.14"
    assert env["new_host_name"] == "p01-u04"
    assert env["new_domain_name"] == "lab1.example.net"
    assert env["new_routers"] == "10.17.1.1"
    assert env["new_subnet_mask"] == "255.255.255.0"
    assert env["new_domain_name_servers"] == "192.0.2.53"
    assert env["new_ntp_servers"] == "192.0.2.123"
    assert env["new_dhcp_server_identifier"] == SERVER
    assert env["new_bootfile_name"] == f"{CONTROLLER}/boot/ipxe"
    assert env["new_filename"] == f"{CONTROLLER}/boot/ipxe"  # BOOTP's file field too
    assert env["new_ipxe_encap"] == "b0:1:1"  # 175.176 = 1: iPXE, skip PXE's second round
    client.stop()


def test_two_relays_give_the_same_identity(net):
    a, b = net.client("tora", "swp2"), net.client("torb", "swp3")
    uefi = ("-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007")
    first, second = a.udhcpc(*uefi), b.udhcpc(*uefi)
    assert first.returncode == 0 and second.returncode == 0, (first.stdout, second.stdout)
    env_b = b.bound("bound")
    assert env_b["ip"] == "10.17.1.13" and env_b["hostname"] == "p01-u03"
    assert env_b["boot_file"] == "ipxe.efi" and env_b["siaddr"] == SERVER
    env_a = a.bound("bound")
    assert env_a["ip"] == "10.17.1.12" and env_a["hostname"] == "p01-u02"
    same = ("subnet", "router", "dns", "domain", "ntpsrv", "lease", "boot_file", "siaddr")
    assert {k: env_a[k] for k in same} == {k: env_b[k] for k in same}


@pytest.mark.parametrize("arch, boot_file", [("0006", "i386-efi/ipxe.efi"),
                                             ("000b", "arm64-efi/ipxe.efi")])
def test_ia32_and_arm64_uefi_get_their_boot_file(net, arch, boot_file):
    client = net.client("tora", "swp2")
    seen = len([e for e, _ in client.records() if e == "bound"])
    result = client.udhcpc("-x", f"0x5d:{arch}")
    assert result.returncode == 0, result.stdout
    env = client.bound("bound", count=seen + 1)
    assert env["ip"] == "10.17.1.12" and env["boot_file"] == boot_file
    assert env["bootfile"] == boot_file and env["siaddr"] == SERVER


def test_bmc_on_the_lom_network_gets_its_identity_and_no_boot_file(net):
    client = net.client("lom", "swp3")
    result = client.udhcpc()
    assert result.returncode == 0, result.stdout
    env = client.bound("bound")
    assert env["ip"] == "10.16.1.13" and env["hostname"] == "p01-u03-bmc"
    assert env["router"] == "10.16.1.1"
    assert "boot_file" not in env and "bootfile" not in env


def test_unknown_port_gets_nothing_and_an_event(net):
    client = net.client("tora", "swp9")
    result = client.udhcpc("-t", "2")
    assert result.returncode != 0
    assert [e for e, _ in client.records() if e == "bound"] == []
    event = wait_event(net, "unknown-location", port=9)
    assert event is not None and event["detail"]["circuit_id"] == "swp9"


def test_client_sending_its_own_option_82_without_relay_gets_nothing(net):
    client = net.client(None, "rogue0")
    before = DHCP_ANSWERS.labels(type="drop:untrusted-relay")._value.get()
    result = client.udhcpc("-t", "2", "-x", "0x52:010473777033")  # circuit-id "swp3"
    assert result.returncode != 0
    assert [e for e, _ in client.records() if e == "bound"] == []
    assert wait_event(net, "untrusted-relay", giaddr="0.0.0.0") is not None
    assert DHCP_ANSWERS.labels(type="drop:untrusted-relay")._value.get() > before


def test_relay_outside_the_zone_is_not_believed(net):
    client = net.client("stray", "swp3")
    result = client.udhcpc("-t", "2")
    assert result.returncode != 0
    assert [e for e, _ in client.records() if e == "bound"] == []
    assert wait_event(net, "untrusted-relay", giaddr="10.99.0.1") is not None


def test_relay_overwrites_a_forged_option_82(net):
    client = net.client("tora", "swp1")
    result = client.udhcpc("-x", "0x52:010473777033")  # claims swp3, cabled to swp1
    assert result.returncode == 0, result.stdout
    env = client.bound("bound")
    assert env["ip"] == "10.17.1.11" and env["hostname"] == "p01-u01"


def test_sonic_tor_behind_the_core_gets_its_ztp_json_url(net):
    client = net.client("core1", "swp1")
    result = client.udhcpc()
    assert result.returncode == 0, result.stdout
    env = client.bound("bound")
    assert env["ip"] == "10.15.1.2" and env["hostname"] == "p01-tor-a"
    assert env["bootfile"] == f"{CONTROLLER}/ztp/sonic/p01-tor-a.json"


def test_onie_lom_switch_gets_its_installer_url(net):
    client = net.client("torm", "swp48")
    result = client.udhcpc("-V", "onie_vendor:x86_64-accton_as4610_54-r0", "-O", "114")
    assert result.returncode == 0, result.stdout
    env = client.bound("bound")
    assert env["ip"] == "10.15.1.4" and env["hostname"] == "p01-lom"
    assert bytes.fromhex(env["opt114"]).decode() == f"{CONTROLLER}/onie/p01-lom"


# --- spoofing: a client must not choose its own location (issue 10) ------------------

def answers(kind: str) -> float:
    return DHCP_ANSWERS.labels(type=kind)._value.get()


def crafted_discover(mac: str, hidden=None, where: str = "file", **kw) -> bytes:
    """A broadcast DISCOVER; ``hidden`` Option 82 goes into ``where`` (option overload)."""
    packet = probe.request(codec.DISCOVER, mac=mac, xid=int(mac[-2:], 16), **kw)
    packet.flags = codec.BROADCAST_FLAG        # the relay broadcasts the answer back to us
    if hidden is not None:
        packet.options[codec.OVERLOAD] = b"\x02" if where == "file" else b"\x01"
        setattr(packet, where, codec.option(codec.RELAY_AGENT_INFO, hidden) + b"\xff")
    return codec.encode(packet)


def offers_to(sock, mac: str, until) -> list:
    """Replies for ``mac`` seen on ``sock`` until ``until()`` is true (or 20 s pass)."""
    got = []

    def done():
        try:
            data = sock.recv(4096)
        except socket.timeout:
            return until()
        reply = codec.decode(data)
        if reply.mac == mac:
            got.append(reply)
        return until()
    wait_for(done, timeout=20, interval=0)
    return got


def test_option_82_hidden_in_the_file_field_is_refused(net):
    """Before: the relay appended swp1, the server kept the hidden swp3 and offered unit 3."""
    client = net.client("tora", "swp1")
    with client.socket() as sock:
        # Control: the same packet without the hidden option gets swp1's identity.
        sock.sendto(crafted_discover("52:54:00:5f:00:01"), ("255.255.255.255", 67))
        got = offers_to(sock, "52:54:00:5f:00:01", lambda: False)
        assert got and got[0].yiaddr == "10.17.1.11"
        for where, hidden in (("file", probe.relay_agent("swp3")),
                              ("sname", probe.relay_agent("swp3", "p01-tor-b"))):
            spoofs, offers = answers("drop:option-82-spoof"), answers("offer")
            mac = "52:54:00:5f:00:02" if where == "file" else "52:54:00:5f:00:03"
            sock.sendto(crafted_discover(mac, hidden, where), ("255.255.255.255", 67))
            got = offers_to(sock, mac, lambda: answers("drop:option-82-spoof") > spoofs)
            assert got == [] and answers("offer") == offers, where
            event = wait_event(net, "option-82-spoof", mac=mac)
            assert event is not None and "sname/file" in event["detail"]["reason"]


def test_client_option_82_kept_by_an_appending_relay_is_refused(net):
    """dhcrelay -m append keeps the client's Option 82 and adds its own: two copies."""
    client = net.client("tapp", "swp1")
    mac = "52:54:00:5f:00:04"
    with client.socket() as sock:
        spoofs = answers("drop:option-82-spoof")
        sock.sendto(crafted_discover(mac, circuit="swp3"), ("255.255.255.255", 67))
        got = offers_to(sock, mac, lambda: answers("drop:option-82-spoof") > spoofs)
    assert got == []
    event = wait_event(net, "option-82-spoof", mac=mac)
    assert event is not None and "2 times" in event["detail"]["reason"]


@pytest.fixture
def rogue_host(net):
    """A host on the server's segment holding a pod address (a node, not a relay)."""
    client = net.client(None, "rogue0")
    client.ns.address("eth0", "10.17.1.77/32")
    client.ns.route(f"{SERVER}/32", "dev", "eth0")
    yield client
    client.ns.ip("addr", "del", "10.17.1.77/32", "dev", "eth0", check=False)


def test_giaddr_claimed_by_a_host_that_is_not_the_relay_is_refused(net, rogue_host):
    """Before: a relayed-looking DISCOVER from a node's address was offered unit 3."""
    mac = "52:54:00:5f:00:05"
    packet = codec.encode(probe.request(codec.DISCOVER, mac=mac, giaddr="10.17.1.1",
                                        circuit="swp3"))
    before, offers = answers("drop:relay-spoof"), answers("offer")
    with rogue_host.socket(67) as sock:
        sock.sendto(packet, (SERVER, 67))
        assert wait_for(lambda: answers("drop:relay-spoof") > before, timeout=20)
    assert answers("offer") == offers
    event = wait_event(net, "relay-spoof", mac=mac)
    assert event["detail"]["sender"] == "10.17.1.77" and event["detail"]["giaddr"] == "10.17.1.1"


def test_unrelayed_messages_speak_only_for_their_sender(net, rogue_host):
    """Before: a stray host's REQUEST/RELEASE with another node's ciaddr were believed."""
    before, acks = answers("drop:ciaddr-spoof"), answers("ack")
    releases = len([e for e in net.events("release") if e["node"] == "p01-u03"])
    with rogue_host.socket() as sock:
        for kind in (codec.REQUEST, codec.RELEASE, codec.DECLINE, codec.INFORM):
            packet = probe.request(kind, mac="52:54:00:5f:00:06", ciaddr="10.17.1.13")
            sock.sendto(codec.encode(packet), (SERVER, 67))
        assert wait_for(lambda: answers("drop:ciaddr-spoof") >= before + 4, timeout=20)
    assert answers("ack") == acks
    assert len([e for e in net.events("release") if e["node"] == "p01-u03"]) == releases
    assert wait_event(net, "ciaddr-spoof", ciaddr="10.17.1.13", sender="10.17.1.77")


def test_udhcpc_gets_a_reply_that_fits_its_576_bytes(lab_plan, tmp_path):
    """Many DNS servers make a reply of ~800 bytes; udhcpc says 576 in option 57 and
    dropped the oversized OFFER three times. The reply now leaves out what fits least."""
    many = tuple(f"192.0.2.{i}" for i in range(1, 100))
    with topology(lab_plan, tmp_path, switches={"tora": SWITCHES["tora"]},
                  dns_servers=many) as crowded:
        client = crowded.client("tora", "swp3")
        result = client.udhcpc("-t", "4")
        assert result.returncode == 0, result.stdout
        env = client.bound("bound")
        assert env["ip"] == "10.17.1.13" and env["subnet"] == "255.255.255.0"


def test_dhcpcd_behind_dhcrelay_gets_its_location_identity(net):
    """dhcpcd in test mode: asks, prints what its hooks would get, configures nothing.
    Its privileged helpers outlive the answer, so the test reads its output file and
    stops the whole session once the lease is there."""
    if shutil.which("dhcpcd") is None:
        pytest.skip("needs dhcpcd (Debian's dhcpcd-base)")
    client = net.client("tora", "swp2")
    out_path = client.folder / "dhcpcd.out"
    with open(out_path, "wb") as out:
        proc = client.ns.popen(["dhcpcd", "-T", "-4", "-t", "20", "-f", "/dev/null",
                                "-o", "domain_name", "-o", "host_name", "-o", "ntp_servers",
                                "eth0"], stdout=out, stderr=subprocess.DEVNULL, env=CLEAN_ENV)

    def lease():
        lines = out_path.read_text().splitlines()
        found = dict(line.split("=", 1) for line in lines if "=" in line)
        wanted = ("new_ip_address", "new_host_name", "new_routers", "new_domain_name",
                  "new_dhcp_server_identifier")
        return {k: v.strip("'") for k, v in found.items()} if all(
            k in found for k in wanted) else None
    got = wait_for(lease, timeout=30)
    net.lab.stop(proc)
    assert got is not None, out_path.read_text()
    assert got["new_ip_address"] == "10.17.1.12" and got["new_host_name"] == "p01-u02"
    assert got["new_routers"] == "10.17.1.1" and got["new_domain_name"] == "lab1.example.net"
    assert got["new_dhcp_server_identifier"] == SERVER
