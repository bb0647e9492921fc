"""The DNS service against the real ``dig`` (bind9-dnsutils), over UDP and TCP on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import threading

import pytest
from dnslib import RCODE, DNSHeader, DNSQuestion, DNSRecord
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
        service.authority.add(name, "A", f"10.99.0.{i}")
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


# ---------------------------------------------------------------------------
# Hardening (issue 10 rows 9 and 11): what a stranger's packets can do to the service
# ---------------------------------------------------------------------------

def query_header(ident: int, qdcount: int = 1, arcount: int = 0) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, qdcount, 0, 0, arcount)


# five 63-byte labels: a 321-byte name, over the 255 bytes DNS allows
OVERSIZE = query_header(7) + b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) \
    + b"\x00\x00\x01\x00\x01"


def udp_exchange(port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65535)


def tcp_exchange(conn: socket.socket, data: bytes) -> bytes:
    conn.sendall(struct.pack("!H", len(data)) + data)
    head = conn.recv(2, socket.MSG_WAITALL)
    assert len(head) == 2, "the server closed the connection"
    return conn.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)


def rcode(reply: bytes) -> int:
    return reply[3] & 0x0F


def test_an_oversize_question_over_udp_is_formerr_without_a_traceback(dns, caplog):
    with caplog.at_level("INFO", logger="bootstrap.dns"):
        for _ in range(3):
            reply = udp_exchange(dns.port, OVERSIZE)
            assert reply[:2] == OVERSIZE[:2] and rcode(reply) == RCODE.FORMERR
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_an_oversize_question_over_tcp_is_formerr_and_the_connection_stays(dns, lab_plan):
    node = lab_plan.nodes["p01-u01"]
    with socket.create_connection(("127.0.0.1", dns.port), timeout=10) as conn:
        reply = tcp_exchange(conn, OVERSIZE)
        assert reply[:2] == OVERSIZE[:2] and rcode(reply) == RCODE.FORMERR
        good = DNSRecord.parse(tcp_exchange(conn, DNSRecord.question(node.fqdn).pack()))
        assert [str(rr.rdata) for rr in good.rr] == [node.address]


def test_the_tcp_listen_backlog_is_a_real_one(dns):
    listening = subprocess.run(["ss", "-ltnH", f"sport = :{dns.port}"], capture_output=True,
                               text=True, check=True).stdout.split()
    assert int(listening[2]) >= 128                 # Send-Q of a listening socket: its backlog


@pytest.fixture
def fresh(lab_plan):
    service = DnsService(lab_plan, "127.0.0.1", 0).start()
    yield service
    service.stop()


def junk_queries(count: int):
    """Distinct malformed questions: a name cut short, varied so no two are alike."""
    for i in range(count):
        yield query_header(i & 0xFFFF) + b"\x3f" + i.to_bytes(4, "big") + b"x" * (i % 200)


def test_junk_queries_get_formerr_and_leave_nothing_in_the_cache(fresh, lab_plan):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        for data in junk_queries(3000):
            sock.sendto(data, ("127.0.0.1", fresh.port))
            reply = sock.recv(65535)
            assert reply[:2] == data[:2] and rcode(reply) == RCODE.FORMERR
    assert len(fresh._cache) == 0 and fresh._cache.size == 0
    node = lab_plan.nodes["p01-u02"]
    assert dig(fresh, "+short", node.fqdn).stdout.split() == [node.address]


def test_dig_cookies_and_letter_case_share_one_cache_entry(fresh, lab_plan):
    node = lab_plan.nodes["p01-u03"]
    for name in [node.fqdn] * 4 + [node.fqdn.upper()]:       # each dig sends its own cookie
        out = dig(fresh, name).stdout
        assert [r[-1] for r in section(out, "ANSWER")] == [node.address]
        assert section(out, "QUESTION")[0][0] == ";" + name + "."    # the case is echoed
    assert len(fresh._cache) == 1


def test_the_cache_stays_within_its_entry_and_byte_bounds(lab_plan, monkeypatch):
    import bootstrap.dns
    monkeypatch.setattr(bootstrap.dns, "CACHE_ENTRIES", 500)
    monkeypatch.setattr(bootstrap.dns, "CACHE_BYTES", 100_000)
    service = DnsService(lab_plan, "127.0.0.1", 0).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(10)
            for i in range(3000):                   # well-formed, all different: NXDOMAIN
                query = DNSRecord.question(f"n{i}-{'x' * (i % 50)}.{lab_plan.zone.domain}")
                sock.sendto(query.pack(), ("127.0.0.1", service.port))
                assert rcode(sock.recv(65535)) == RCODE.NXDOMAIN
                assert len(service._cache) <= 500 and service._cache.size <= 100_000
        assert len(service._cache) > 0
    finally:
        service.stop()


def test_a_silent_upstream_cannot_queue_forwarded_queries_without_bound(lab_plan, monkeypatch):
    """1,000 questions for another zone to an upstream that never answers: FORWARD_MAX of
    them wait for it, every other one gets SERVFAIL at once, our own names are still
    answered, and stopping the service answers the waiting ones."""
    import bootstrap.dns
    monkeypatch.setattr(bootstrap.dns, "FORWARD_TIMEOUT", 120.0)  # the waiting ones stay so
    limit = getattr(bootstrap.dns, "FORWARD_MAX", 64)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        hole.bind(("127.0.0.1", 0))
        client.bind(("127.0.0.1", 0))
        front = DnsService(lab_plan, "127.0.0.1", 0, forward=True,
                           upstreams=[f"127.0.0.1:{hole.getsockname()[1]}"]).start()
        replies = []
        reader = threading.Thread(target=_collect, args=(client, replies, 1000), daemon=True)
        reader.start()
        try:
            for i in range(1000):
                client.sendto(DNSRecord(DNSHeader(id=i), q=DNSQuestion(f"w{i}.example.com"))
                              .pack(), ("127.0.0.1", front.port))
                if i % 50 == 49:                     # paced, so no socket buffer drops them
                    _wait_for(lambda: len(replies) >= i + 1 - limit, 60)
            _wait_for(lambda: len(replies) == 1000 - limit, 60)
            ours = lab_plan.nodes["p01-u01"]
            assert dig(front, "+short", ours.fqdn).stdout.split() == [ours.address]
            forwarded = [0]

            def all_forwarded():
                forwarded[0] += _drain(hole)
                return forwarded[0] >= limit
            _wait_for(all_forwarded, 60)
        finally:
            front.stop()
        assert forwarded[0] + _drain(hole) == limit      # what reached the upstream: no more
        reader.join(timeout=60)
        assert len(replies) == 1000 and all(rcode(r) == RCODE.SERVFAIL for r in replies)
        assert front.forwarder.in_flight == 0


def _drain(sock: socket.socket) -> int:
    """Datagrams waiting on ``sock``."""
    sock.setblocking(False)
    count = 0
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return count
        count += 1


def _collect(sock: socket.socket, replies: list, count: int) -> None:
    sock.settimeout(60)
    try:
        while len(replies) < count:
            replies.append(sock.recv(65535))
    except OSError:
        pass


def _wait_for(condition, deadline: float) -> None:
    import time
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not reached before the deadline"
        time.sleep(0.05)


def test_tcp_clients_beyond_the_limit_are_closed_and_a_freed_slot_serves_again(
        lab_plan, monkeypatch):
    import bootstrap.dns
    monkeypatch.setattr(bootstrap.dns, "TCP_CLIENTS", 4)
    service = DnsService(lab_plan, "127.0.0.1", 0).start()
    node = lab_plan.nodes["p01-u01"]
    question = DNSRecord.question(node.fqdn).pack()
    idle = [socket.create_connection(("127.0.0.1", service.port), timeout=10) for _ in range(4)]
    try:
        for conn in idle:                            # each one holds a slot, answered
            assert DNSRecord.parse(tcp_exchange(conn, question)).rr
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as extra:
            assert _closed(extra)
        idle.pop().close()
        _wait_for(lambda: _tcp_answers(service.port, question), 60)
    finally:
        for conn in idle:
            conn.close()
        service.stop()


def test_a_tcp_client_dribbling_bytes_is_cut_off(lab_plan, monkeypatch):
    import bootstrap.dns
    monkeypatch.setattr(bootstrap.dns, "TCP_TIMEOUT", 1.0)
    service = DnsService(lab_plan, "127.0.0.1", 0).start()
    stop = threading.Event()
    try:
        with socket.create_connection(("127.0.0.1", service.port), timeout=60) as conn:
            def dribble():                           # a byte every 0.2 s of a 400-byte message
                conn.sendall(struct.pack("!H", 400))
                while not stop.wait(0.2):
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        return
            threading.Thread(target=dribble, daemon=True).start()
            assert _closed(conn)                     # before the message could be whole
    finally:
        stop.set()
        service.stop()


def _closed(conn: socket.socket) -> bool:
    """True once the server closes ``conn`` (waits up to the socket's timeout)."""
    try:
        return conn.recv(1) == b""
    except ConnectionResetError:
        return True


def _tcp_answers(port: int, question: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            return bool(DNSRecord.parse(tcp_exchange(conn, question)).rr)
    except (OSError, AssertionError):
        return False


def test_a_failing_tcp_handler_logs_one_throttled_line_not_tracebacks(fresh, monkeypatch,
                                                                      capfd, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(fresh.responder, "answer", broken)
    with caplog.at_level("INFO", logger="bootstrap.dns"):
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", fresh.port), timeout=10) as conn:
                conn.sendall(struct.pack("!H", len(OVERSIZE)) + OVERSIZE)
                assert _closed(conn)
    assert "Traceback" not in capfd.readouterr().err
    assert 1 <= len([r for r in caplog.records if "a bug" in r.getMessage()]) <= 10
