"""The DNS service against the real ``dig`` (bind9-dnsutils), over UDP and TCP on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import threading

import pytest
from prometheus_client import REGISTRY

from bootstrap.dns import DnsService
from bootstrap.plan import compile_plan
from bootstrap.zone import parse_zone_text

TRANSPORTS = ["+notcp", "+tcp"]


@pytest.fixture(scope="module")
def dns(lab_plan):
    service = DnsService(lab_plan, "127.0.0.1", 0).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def other_plan(lab_text):
    """A second zone (other domain, other networks) for the forwarding tests."""
    text = lab_text.replace("lab1.example.net", "other.example.org").replace(" 10.1", " 10.2")
    return compile_plan(parse_zone_text(text, "other.yml"))


def dig(service, *args) -> subprocess.CompletedProcess:
    result = subprocess.run(["dig", "@127.0.0.1", "-p", str(service.port), "+tries=1", "+time=3",
                             *args], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def status(output: str) -> str:
    return re.search(r"status: (\w+)", output).group(1)


def section(output: str, name: str) -> list[list[str]]:
    """The records of one section of dig's output, each split into fields."""
    match = re.search(rf";; {name} SECTION:\n(.*?)(?:\n\n|\Z)", output, re.S)
    return [line.split() for line in match.group(1).splitlines()] if match else []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_and_ptr_for_a_server(dns, lab_plan, transport):
    node = lab_plan.nodes["p01-u04"]
    assert dig(dns, transport, "+short", node.fqdn, "A").stdout.split() == [node.address]
    assert dig(dns, transport, "+short", "-x", node.address).stdout.split() == [node.fqdn + "."]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_bmc_on_its_own_network(dns, lab_plan, transport):
    bmc = lab_plan.nodes["p01-u04-bmc"]
    assert dig(dns, transport, "+short", bmc.fqdn).stdout.split() == [bmc.address]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_soa_and_ns_at_the_apex(dns, lab_plan, transport):
    domain = lab_plan.zone.domain
    soa = dig(dns, transport, "+short", domain, "SOA").stdout.split()
    assert soa[:2] == [f"ns.{domain}.", f"hostmaster.{domain}."]
    out = dig(dns, transport, domain, "NS").stdout
    assert "aa" in re.search(r"flags: ([\w ]+);", out).group(1).split()
    assert [r[-1] for r in section(out, "ANSWER")] == [f"ns.{domain}."]
    assert [r[-1] for r in section(out, "ADDITIONAL")] == ["10.17.0.2"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reverse_zone_soa(dns, transport):
    soa = dig(dns, transport, "+short", "17.10.in-addr.arpa", "SOA").stdout.split()
    assert soa[0] == "ns.lab1.example.net." and len(soa) == 7


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_srv_and_txt(dns, lab_plan, transport):
    domain = lab_plan.zone.domain
    srv = dig(dns, transport, "+short", f"_http._tcp.{domain}", "SRV").stdout.split()
    assert srv == ["0", "0", "8080", f"ns.{domain}."]
    txt = dig(dns, transport, "+short", f"_zone.{domain}", "TXT").stdout
    assert f'"digest={lab_plan.zone.digest}"' in txt


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nxdomain_carries_the_soa(dns, lab_plan, transport):
    out = dig(dns, transport, f"p07-u01.{lab_plan.zone.domain}", "A").stdout
    assert status(out) == "NXDOMAIN"
    assert [r[3] for r in section(out, "AUTHORITY")] == ["SOA"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_other_zones_are_refused(dns, transport):
    assert status(dig(dns, transport, "www.example.com", "A").stdout) == "REFUSED"


def test_rcodes_are_counted(dns, lab_plan):
    def count():
        return REGISTRY.get_sample_value("zone_dns_queries_total", {"rcode": "NXDOMAIN"}) or 0
    dns.flush_metrics()
    before = count()
    for transport in ("+notcp", "+notcp", "+tcp"):
        dig(dns, transport, f"nobody.{lab_plan.zone.domain}")
    dns.flush_metrics()                              # UDP counts reach /metrics within 0.5 s
    assert count() == before + 3


def test_a_malformed_query_then_a_good_one_is_still_answered(dns, lab_plan):
    junk = [b"\x00", struct.pack("!HHHHHH", 9, 0x0100, 1, 0, 0, 0) + b"\x3fabc",
            struct.pack("!HHHHHH", 9, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
            b"\xff" * 3000]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        for data in junk:
            sock.sendto(data, ("127.0.0.1", dns.port))
        reply = sock.recv(65535)                     # the FORMERR for the cut-short name
    assert reply[:2] == struct.pack("!H", 9) and reply[3] & 0x0F == 1
    with socket.create_connection(("127.0.0.1", dns.port), timeout=3) as tcp:
        tcp.sendall(struct.pack("!H", 5) + b"\x01\x02\x03\x04\x05")
        tcp.sendall(struct.pack("!H", 40) + b"\x00" * 10)     # then hang up mid-message
    node = lab_plan.nodes["p01-u01"]
    assert dig(dns, "+short", node.fqdn).stdout.split() == [node.address]
    assert dig(dns, "+tcp", "+short", node.fqdn).stdout.split() == [node.address]


def test_a_truncated_udp_answer_makes_dig_retry_over_tcp(lab_plan):
    service = DnsService(lab_plan, "127.0.0.1", 0)
    name = f"many.{lab_plan.zone.domain}"
    for i in range(60):
        service.authority._add(name, "A", f"10.99.0.{i}")
    service.authority.existing.add(name)
    service.start()
    try:
        udp_only = dig(service, "+ignore", "+noedns", name).stdout
        assert re.search(r"flags: [\w ]*\btc\b", udp_only)
        assert len(dig(service, "+noedns", "+short", name).stdout.split()) == 60
    finally:
        service.stop()


def test_forwarding_relays_other_zones_to_the_upstream(lab_plan, other_plan):
    upstream = DnsService(other_plan, "127.0.0.1", 0).start()
    front = DnsService(lab_plan, "127.0.0.1", 0, forward=True,
                       upstreams=[f"127.0.0.1:{upstream.port}"]).start()
    try:
        node = other_plan.nodes["p01-u02"]
        for transport in TRANSPORTS:
            assert dig(front, transport, "+short", node.fqdn).stdout.split() == [node.address]
        assert status(dig(front, "nobody.example.com").stdout) == "REFUSED"   # upstream's word
        ours = lab_plan.nodes["p01-u02"]
        assert dig(front, "+short", ours.fqdn).stdout.split() == [ours.address]
    finally:
        front.stop()
        upstream.stop()


def test_forwarding_to_a_dead_upstream_is_servfail(lab_plan):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))                  # bound, never read: no answer comes
        front = DnsService(lab_plan, "127.0.0.1", 0, forward=True,
                           upstreams=[f"127.0.0.1:{hole.getsockname()[1]}"]).start()
        try:
            assert status(dig(front, "+time=5", "www.example.com").stdout) == "SERVFAIL"
        finally:
            front.stop()


def test_stop_ends_every_thread_and_frees_the_port(lab_plan):
    service = DnsService(lab_plan, "127.0.0.1", 0).start()
    assert dig(service, "+tcp", "+short", lab_plan.zone.domain, "NS").stdout.strip()
    service.stop()
    assert len(service._threads) >= 2 and not any(t.is_alive() for t in service._threads)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        udp.bind(("127.0.0.1", service.port))
        tcp.bind(("127.0.0.1", service.port))


def test_serve_forever_on_a_caller_thread_returns_after_stop(lab_plan):
    service = DnsService(lab_plan, "127.0.0.1", 0)
    runner = threading.Thread(target=service.serve_forever)
    runner.start()
    ours = lab_plan.nodes["p01-u01"]
    assert dig(service, "+short", ours.fqdn).stdout.split() == [ours.address]
    service.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()


def test_a_taken_port_fails_in_the_constructor(lab_plan):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(OSError):
            DnsService(lab_plan, "127.0.0.1", taken.getsockname()[1])


def test_stop_right_after_start_or_before_serving_returns(lab_plan):
    for begin in (lambda s: s.start(), lambda s: None):
        service = DnsService(lab_plan, "127.0.0.1", 0)
        begin(service)
        done = threading.Thread(target=service.stop)
        done.start()
        done.join(timeout=10)
        assert not done.is_alive()
        assert service.udp.fileno() == -1
